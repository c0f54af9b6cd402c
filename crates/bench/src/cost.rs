//! Cost quotas: session-time (`statement_seconds_per_day`) and estimated credits
//! (`credits_per_day`), with a neighbour without quota beside them.
//!
//! Configured clients run from the server's start for the measured time, on a pool large
//! enough that nobody queues (the quotas, not the scheduler, are what is measured):
//!
//! - `seconds`: `statement_seconds_per_day = 21`, 4 sessions flooding 500 ms statements: each
//!   statement reserves session-time before it starts (half of what is left, in whole seconds,
//!   at least one, at most its timeout) and gives back what it did not use;
//! - `seconds-long`: `statement_seconds_per_day = 8`, 1 session of 3000 ms statements: once
//!   under 6 s are left, a statement's reservation is under 3 s, so its timeout is capped to it
//!   and the responder stops it there (error 000630, as Snowflake does);
//! - `seconds-burst`: `statement_seconds_per_day = 4`, 4 sessions of 3000 ms statements
//!   started at once (issue 19: they once held Snowflake for 12 s): they split the 4 s;
//! - `credits`: `credits_per_day = 0.02` on `BENCH_MEDIUM` (the responder's `SHOW WAREHOUSES`
//!   says Medium: 4 credits per hour), 4 sessions of 500 ms statements; it also has a large
//!   `statement_seconds_per_day` so that `get_context` shows the session-time it was charged;
//! - `neighbour`: no quota, 2 sessions of 100 ms statements with 100 ms think time.
//!
//! A refused call waits 200 ms before the next. At the end `get_context` of each client tells
//! what the server charged. The report flags (and the command fails on) a session-time or
//! credits overrun of more than a second in total, a quota never refused, a
//! refusal that names no quota or reset time, credits charged off the estimate, and any error
//! of the neighbour.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{sha, start_responder, start_server};
use crate::load::{self, percentile_ms, sorted};

const POOL: usize = 12;
/// Thinking time after a `quota_exceeded` refusal.
const AFTER_REFUSAL: Duration = Duration::from_millis(200);
/// The warehouse of the `credits` client, and its size's credits per hour (Medium).
const WAREHOUSE: (&str, f64) = ("BENCH_MEDIUM", 4.0);
/// The most a client's cost quota may be overrun, in total (issue 19).
const MAX_OVERRUN: Duration = Duration::from_secs(1);
/// What measuring adds: session-time is measured around the statement (lease, fetch), not by
/// Snowflake.
const SLACK: f64 = 0.1;
/// The floods with a `statement_seconds_per_day` quota come first.
const SECONDS_FLOODS: usize = 3;

#[derive(Clone, Copy)]
struct Flood {
    name: &'static str,
    sessions: usize,
    delay_ms: u64,
    think: Duration,
    /// Quota lines of its `[[clients]]` entry.
    quota: &'static str,
    warehouse: Option<&'static str>,
}

/// What one client's calls came to.
#[derive(Default)]
struct Calls {
    /// Latencies of the calls that succeeded, and of those stopped at their timeout: the calls
    /// that held a Snowflake session.
    ran: Vec<Duration>,
    timeouts: usize,
    refused: usize,
    first_refusal: Option<String>,
    /// Other errors by kind.
    errors: BTreeMap<String, usize>,
    /// `get_context`'s `limits.quotas` at the end.
    quotas: Value,
}

impl Calls {
    /// Session-time the client saw its calls take, seconds (an upper bound of what they held).
    fn held_s(&self) -> f64 {
        self.ran.iter().map(Duration::as_secs_f64).sum()
    }

    fn used(&self, quota: &str) -> Option<(f64, f64)> {
        let q = &self.quotas[quota];
        Some((q["used"].as_f64()?, q["limit"].as_f64()?))
    }
}

/// One session's closed loop until `end`.
async fn session_loop(client: &load::Client, f: &Flood, end: Instant) -> Calls {
    let sql = format!("SELECT 1 /* delay_ms={} */", f.delay_ms);
    let mut calls = Calls::default();
    while Instant::now() < end {
        let t0 = Instant::now();
        let r = load::call_tool(client, "run_query", json!({ "sql": sql })).await;
        let took = t0.elapsed();
        let error = match r {
            Ok(r) if r.is_error != Some(true) => None,
            Ok(r) => Some(load::text(&r)),
            Err(e) => Some(format!("transport: {e}")),
        };
        let kind = error.as_deref().map(|e| e.split(':').next().unwrap_or(e));
        match kind {
            None => calls.ran.push(took),
            Some("timeout") => {
                calls.timeouts += 1;
                calls.ran.push(took);
            }
            Some("quota_exceeded") => {
                calls.refused += 1;
                calls.first_refusal = calls.first_refusal.take().or(error);
                tokio::time::sleep(AFTER_REFUSAL).await;
            }
            Some(other) => *calls.errors.entry(other.to_string()).or_default() += 1,
        }
        if !f.think.is_zero() {
            tokio::time::sleep(f.think).await;
        }
    }
    calls
}

/// Run every flood from now for `secs`; then each client's `get_context` quotas.
async fn run(url: &str, floods: &[Flood], secs: Duration) -> Result<Vec<Calls>, String> {
    let mut sessions = Vec::new();
    for (fi, f) in floods.iter().enumerate() {
        for _ in 0..f.sessions {
            sessions.push((fi, load::connect(url, Some(f.name)).await?));
        }
    }
    let end = Instant::now() + secs;
    let mut tasks = Vec::new();
    for (fi, client) in sessions {
        let f = floods[fi];
        tasks.push(tokio::spawn(async move {
            let calls = session_loop(&client, &f, end).await;
            (fi, client, calls)
        }));
    }
    let mut out: Vec<Calls> = floods.iter().map(|_| Calls::default()).collect();
    let mut clients = Vec::new();
    for t in tasks {
        let (fi, client, c) = t.await.map_err(|e| e.to_string())?;
        let o = &mut out[fi];
        o.ran.extend(c.ran);
        o.timeouts += c.timeouts;
        o.refused += c.refused;
        o.first_refusal = o.first_refusal.take().or(c.first_refusal);
        for (k, n) in c.errors {
            *o.errors.entry(k).or_default() += n;
        }
        clients.push((fi, client));
    }
    for (fi, client) in &clients {
        if out[*fi].quotas.is_null() {
            let r = load::call_tool(client, "get_context", json!({})).await?;
            let limits = r.structured_content.unwrap_or_default();
            out[*fi].quotas = limits["limits"]["quotas"].clone();
        }
    }
    for (_, c) in clients {
        let _ = c.cancel().await;
    }
    Ok(out)
}

/// The scenario; a non-empty list of problems fails the command.
pub async fn cost_quota(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let floods = [
        Flood {
            name: "seconds",
            sessions: 4,
            delay_ms: 500,
            think: Duration::ZERO,
            quota: "statement_seconds_per_day = 21",
            warehouse: None,
        },
        Flood {
            name: "seconds-long",
            sessions: 1,
            delay_ms: 3000,
            think: Duration::ZERO,
            quota: "statement_seconds_per_day = 8",
            warehouse: None,
        },
        Flood {
            name: "seconds-burst",
            sessions: 4,
            delay_ms: 3000,
            think: Duration::ZERO,
            quota: "statement_seconds_per_day = 4",
            warehouse: None,
        },
        Flood {
            name: "credits",
            sessions: 4,
            delay_ms: 500,
            think: Duration::ZERO,
            quota: "credits_per_day = 0.02\nstatement_seconds_per_day = 3600",
            warehouse: Some(WAREHOUSE.0),
        },
        Flood {
            name: "neighbour",
            sessions: 2,
            delay_ms: 100,
            think: Duration::from_millis(100),
            quota: "",
            warehouse: None,
        },
    ];
    let (port, stats) = start_responder(Duration::from_millis(50)).await;
    let mut config = format!("[pool]\nmax_sessions = {POOL}\n");
    for f in &floods {
        let _ = writeln!(
            config,
            "[[clients]]\nid = \"{}\"\ntoken_sha256 = \"{}\"\nmax_concurrent = {}\n{}",
            f.name,
            sha(f.name),
            f.sessions,
            f.quota
        );
        if let Some(w) = f.warehouse {
            let _ = writeln!(config, "default_context = {{ warehouse = \"{w}\" }}");
        }
    }
    let server = start_server(bin, port, &config).await?;
    let calls = run(&server.url, &floods, secs).await?;
    drop(server);
    let mut problems = Vec::new();
    let _ = writeln!(out, "## Cost quotas (pool {POOL}, nobody queues; {} s from the server's start; a refused call waits {} ms before the next)\n", secs.as_secs(), AFTER_REFUSAL.as_millis());

    let _ = writeln!(out, "Session-time (`statement_seconds_per_day`):\n\n| client | sessions x statement | quota s | calls that ran | stopped at their capped timeout | refused `quota_exceeded` | session-time seen by the client s | used per `get_context` s | over the quota s | allowed overshoot s |\n|---|---|---|---|---|---|---|---|---|---|");
    for (f, c) in floods.iter().zip(&calls).take(SECONDS_FLOODS) {
        let Some((used, limit)) = c.used("statement_seconds_per_day") else {
            problems.push(format!(
                "{}: get_context shows no statement_seconds_per_day",
                f.name
            ));
            continue;
        };
        // Session-time is reserved before a statement starts, and its timeout capped to the
        // reservation (at least a second): the quota is overrun by under a second in total.
        let allowed = MAX_OVERRUN.as_secs_f64();
        let over = used - limit;
        let _ = writeln!(
            out,
            "| {} | {} x {} ms | {limit:.0} | {} | {} | {} | {:.2} | {used:.2} | {over:+.2} | {allowed:.2} |",
            f.name,
            f.sessions,
            f.delay_ms,
            c.ran.len(),
            c.timeouts,
            c.refused,
            c.held_s(),
        );
        if over > allowed + SLACK {
            problems.push(format!(
                "{}: {used:.2} s used of a {limit:.0} s quota, overrun by more than {allowed:.2} s",
                f.name
            ));
        }
        if used > c.held_s() + 0.1 || used < c.held_s() * 0.95 {
            problems.push(format!(
                "{}: charged {used:.2} s but the client saw its statements take {:.2} s",
                f.name,
                c.held_s()
            ));
        }
    }
    let _ = writeln!(out);

    let credits = (&floods[SECONDS_FLOODS], &calls[SECONDS_FLOODS]);
    let rate = WAREHOUSE.1;
    let _ = writeln!(out, "Estimated credits (`credits_per_day`):\n\n| client | sessions x statement | warehouse (size, credits/h) | quota credits | calls that ran | refused `quota_exceeded` | session-time used s | credits charged | expected: session-time x rate / 3600 | charged / expected |\n|---|---|---|---|---|---|---|---|---|---|");
    match (
        credits.1.used("credits_per_day"),
        credits.1.used("statement_seconds_per_day"),
    ) {
        (Some((charged, limit)), Some((seconds, _))) => {
            let expected = seconds * rate / 3600.0;
            let ratio = charged / expected.max(1e-9);
            let w = credits.0.warehouse.unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} x {} ms | {w} ({}, {rate}) | {limit} | {} | {} | {seconds:.2} | {charged:.3} | {expected:.4} | {ratio:.2} |",
                credits.0.name,
                credits.0.sessions,
                credits.0.delay_ms,
                crate::responder::warehouse_size(w),
                credits.1.ran.len(),
                credits.1.refused,
            );
            // Charged in thousandths of a credit: allow one of them besides 5 %.
            if (charged - expected).abs() > expected * 0.05 + 0.001 {
                problems.push(format!("credits: charged {charged:.3} credits for {seconds:.2} s on a {rate}-credit/h warehouse, expected {expected:.4}"));
            }
            // Credits are reserved like seconds: overrun by at most a second's worth.
            let over = (MAX_OVERRUN.as_secs_f64() + SLACK) * rate / 3600.0;
            if charged > limit + over {
                problems.push(format!(
                    "credits: charged {charged:.4} credits of a {limit} quota, overrun by more than {over:.4}"
                ));
            }
        }
        _ => problems.push("credits: get_context shows no credits_per_day".into()),
    }
    let _ = writeln!(out);

    let (f, c) = (&floods[SECONDS_FLOODS + 1], &calls[SECONDS_FLOODS + 1]);
    let lat = sorted(c.ran.clone());
    let errors: usize = c.errors.values().sum::<usize>() + c.refused + c.timeouts;
    let _ = writeln!(out, "Beside them, a client without quota:\n\n| client | sessions x statement | calls | calls/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|\n| {} | {} x {} ms, {} ms think | {} | {:.1} | {:.0} | {:.0} | {errors} |\n", f.name, f.sessions, f.delay_ms, f.think.as_millis(), c.ran.len(), c.ran.len() as f64 / secs.as_secs_f64(), percentile_ms(&lat, 0.5), percentile_ms(&lat, 0.99));
    if errors > 0 {
        problems.push(format!("neighbour: {errors} errors"));
    }

    let _ = writeln!(
        out,
        "First refusal of each client, and `get_context`'s `limits.quotas` at the end:\n"
    );
    for (f, c) in floods.iter().zip(&calls).take(SECONDS_FLOODS + 1) {
        match &c.first_refusal {
            Some(text) => {
                let _ = writeln!(out, "- {}: `{text}`", f.name);
                let names_quota = if f.name == "credits" {
                    "credit"
                } else {
                    "statement seconds"
                };
                if !text.contains(names_quota) || !text.contains("resets at") {
                    problems.push(format!("{}: the refusal does not name the quota ({names_quota}) and its reset time", f.name));
                }
            }
            None => problems.push(format!("{}: never refused", f.name)),
        }
        let _ = writeln!(out, "  - `{}`", c.quotas);
        for (kind, n) in &c.errors {
            problems.push(format!("{}: {n} unexpected {kind} errors", f.name));
        }
    }
    let _ = writeln!(out, "\nStatements the responder stopped at their timeout: {}; overlapping on one Snowflake session: {}.\n", stats.timeouts.load(std::sync::atomic::Ordering::Relaxed), stats.overlaps.load(std::sync::atomic::Ordering::Relaxed));
    if problems.is_empty() {
        let _ = writeln!(out, "No problems found.\n");
        Ok(())
    } else {
        let _ = writeln!(out, "Problems:\n");
        for p in &problems {
            let _ = writeln!(out, "- {p}");
        }
        let _ = writeln!(out);
        Err(format!("cost-quota: {} problems", problems.len()))
    }
}
