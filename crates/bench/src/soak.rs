//! Soak: many MCP sessions for minutes with a realistic mix, watching for leaks.
//!
//! Every virtual user holds one MCP session (an rmcp client over Streamable HTTP, as one of
//! ten configured clients) and loops until the end: think for a random time, then one of
//! `run_query` (most), a catalogue call (`list_databases`, `list_schemas`, `describe_object`),
//! a call cancelled midway (`notifications/cancelled`), a disconnect midway (the client's
//! connections drop without a cancellation; a new session follows) or a clean reconnect
//! (DELETE, then a new session). The server's RSS is sampled all along; the responder counts
//! logins, logouts and the most Snowflake sessions open at once. At the end every session is
//! closed, the server gets SIGTERM, and logins must equal logouts.
//!
//! Every row of the report's table has a target; when one is missed the soak still prints the
//! whole report, then fails (non-zero exit) naming the missed targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest, ServerResult};
use rmcp::service::{PeerRequestOptions, ServiceError};
use serde_json::{json, Value};

use crate::load::{connect, Client};

/// What to run.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Concurrent MCP sessions (virtual users).
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Snowflake sessions in the server's pool.
    #[arg(long, default_value_t = 32)]
    pub pool: usize,
    /// The responder's delay per statement, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub delay_ms: u64,
    /// Mean think time between a user's operations, in milliseconds (uniform, 0 to twice this).
    #[arg(long, default_value_t = 2000)]
    pub think_ms: u64,
    /// RSS is compared from this many seconds on (default: a fifth of the run, at most 60).
    #[arg(long)]
    pub warmup: Option<u64>,
    /// The server's `[server] resume_secs`: how long answers are kept for resuming streams. The
    /// buffer fills for this long before it is in steady state (default 300 in the server).
    #[arg(long, default_value_t = 30)]
    pub resume_secs: u64,
}

/// Outcomes by name: `ok …`, `planned …` and `unplanned …`.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, key: impl Into<String>) {
        *self.0.lock().unwrap().entry(key.into()).or_default() += 1;
    }
    fn unplanned(&self, op: &str, error: &str) {
        // One line per distinct error; long messages cut.
        let short: String = error.chars().take(120).collect();
        self.add(format!("unplanned {op}: {short}"));
    }
}

/// A small xorshift generator: reproducible per user, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn args(v: Value) -> CallToolRequestParams {
    let (name, arguments) = (
        v["tool"].as_str().unwrap_or_default().to_string(),
        v["args"].clone(),
    );
    CallToolRequestParams::new(name)
        .with_arguments(arguments.as_object().cloned().unwrap_or_default())
}

/// The tool result as `Ok` or the error kind.
fn classify(r: Result<rmcp::model::CallToolResult, ServiceError>) -> Result<(), String> {
    match r {
        Ok(r) if r.is_error != Some(true) => Ok(()),
        Ok(r) => {
            let meta = serde_json::to_value(&r.meta).unwrap_or_default();
            Err(match meta["error"]["kind"].as_str() {
                Some(kind) => format!(
                    "{kind}: {}",
                    meta["error"]["message"].as_str().unwrap_or("")
                ),
                None => format!("{:?}", r.content),
            })
        }
        Err(e) => Err(format!("mcp: {e}")),
    }
}

async fn call(client: &Client, params: CallToolRequestParams) -> Result<(), String> {
    classify(client.call_tool(params).await)
}

async fn connect_retrying(
    url: &str,
    token: &str,
    end: Instant,
    tally: &Tally,
) -> Option<Arc<Client>> {
    while Instant::now() < end {
        match connect(url, Some(token)).await {
            Ok(c) => return Some(Arc::new(c)),
            Err(e) => {
                tally.unplanned("connect", &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    None
}

/// One virtual user until `end`.
async fn user(
    url: String,
    token: String,
    seed: u64,
    start: Instant,
    end: Instant,
    o: Options,
    tally: Arc<Tally>,
) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    tokio::time::sleep_until(start.into()).await;
    let Some(mut client) = connect_retrying(&url, &token, end, &tally).await else {
        return;
    };
    tally.add("ok connect");
    let delay = o.delay_ms.max(1);
    loop {
        tokio::time::sleep(Duration::from_millis(rng.below(2 * o.think_ms + 1))).await;
        if Instant::now() >= end {
            break;
        }
        let roll = rng.below(1000);
        let query = args(json!({"tool": "run_query", "args": {"sql": format!("SELECT {roll}")}}));
        match roll {
            // Most: a query.
            0..=699 => match call(&client, query).await {
                Ok(()) => tally.add("ok run_query"),
                Err(e) => tally.unplanned("run_query", &e),
            },
            // Catalogue calls.
            700..=849 => {
                let (op, v) = match roll % 3 {
                    0 => (
                        "list_databases",
                        json!({"tool": "list_databases", "args": {}}),
                    ),
                    1 => (
                        "list_schemas",
                        json!({"tool": "list_schemas", "args": {"database": "BENCH"}}),
                    ),
                    _ => (
                        "describe_object",
                        json!({"tool": "describe_object", "args": {"name": "BENCH.PUBLIC.T"}}),
                    ),
                };
                match call(&client, args(v)).await {
                    Ok(()) => tally.add(format!("ok {op}")),
                    Err(e) => tally.unplanned(op, &e),
                }
            }
            // A call cancelled after a random time (queued, running or already done).
            850..=939 => {
                let request = ClientRequest::CallToolRequest(CallToolRequest::new(query));
                match client
                    .send_cancellable_request(request, PeerRequestOptions::no_options())
                    .await
                {
                    Ok(mut handle) => {
                        let wait = Duration::from_millis(rng.below(2 * delay));
                        tokio::select! {
                            r = &mut handle.rx => match r.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                                Ok(ServerResult::CallToolResult(r)) => match classify(Ok(r)) {
                                    Ok(()) => tally.add("ok run_query (cancel came too late)"),
                                    Err(e) => tally.unplanned("run_query before cancel", &e),
                                },
                                Ok(other) => tally.unplanned("run_query before cancel", &format!("{other:?}")),
                                Err(e) => tally.unplanned("run_query before cancel", &e),
                            },
                            _ = tokio::time::sleep(wait) => match handle.cancel(Some("soak".into())).await {
                                Ok(()) => tally.add("planned cancelled"),
                                Err(e) => tally.unplanned("cancel", &e.to_string()),
                            },
                        }
                    }
                    Err(e) => tally.unplanned("send_cancellable_request", &e.to_string()),
                }
            }
            // A disconnect midway: the connections drop (no cancellation), then a new session.
            940..=979 => {
                let running = client.clone();
                let task = tokio::spawn(async move { call(&running, query).await });
                tokio::time::sleep(Duration::from_millis(rng.below(2 * delay))).await;
                client.cancellation_token().cancel();
                match task.await {
                    Ok(Ok(())) => tally.add("ok run_query (before disconnect)"),
                    _ => tally.add("planned disconnected"),
                }
                let Some(c) = connect_retrying(&url, &token, end, &tally).await else {
                    return;
                };
                client = c;
                tally.add("ok reconnect");
            }
            // A clean reconnect: DELETE the session, open a new one.
            _ => {
                if let Ok(c) = Arc::try_unwrap(client) {
                    let _ = c.cancel().await;
                }
                let Some(c) = connect_retrying(&url, &token, end, &tally).await else {
                    return;
                };
                client = c;
                tally.add("ok reconnect");
            }
        }
    }
    if let Ok(c) = Arc::try_unwrap(client) {
        let _ = c.cancel().await;
    }
}

pub async fn soak(bin: &str, seconds: u64, o: &Options, out: &mut String) -> Result<(), String> {
    const CLIENTS: usize = 10;
    let (port, stats) = crate::harness::start_responder(Duration::from_millis(o.delay_ms)).await;
    let mut config = format!(
        "[server]\nresume_secs = {}\n[pool]\nmax_sessions = {}\n[scheduler]\nqueue_timeout_secs = 120\nmax_queue_per_client = {}\nmax_queue_total = 100000\n[sessions]\nmax_total = {}\nmax_per_client = {}\n",
        o.resume_secs,
        o.pool,
        o.sessions,
        4 * o.sessions + 100,
        4 * o.sessions + 100
    );
    for i in 0..CLIENTS {
        let _ = write!(
            config,
            "[[clients]]\nid = \"soak{i}\"\ntoken_sha256 = \"{}\"\nmax_concurrent = {}\n",
            crate::harness::sha(&format!("soak-token-{i}")),
            o.pool
        );
    }
    let mut server = crate::harness::start_server(bin, port, &config).await?;
    let pid = server.pid;
    let t0 = Instant::now();
    let rss_start = crate::harness::rss_kib(pid);
    // Users start over the first tenth of the run (at most 10 s), so connecting is no storm.
    let ramp = Duration::from_secs(seconds.min(100)) / 10;
    let end = t0 + Duration::from_secs(seconds);
    let tally = Arc::new(Tally::default());
    let mut users = Vec::new();
    for i in 0..o.sessions {
        let start = t0 + ramp.mul_f64(i as f64 / o.sessions as f64);
        let token = format!("soak-token-{}", i % CLIENTS);
        users.push(tokio::spawn(user(
            server.url.clone(),
            token,
            i as u64 + 1,
            start,
            end,
            o.clone(),
            tally.clone(),
        )));
    }
    // RSS every 5 s until every user is done.
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut open_max_sampled = 0;
    let users_done = async {
        for u in users {
            let _ = u.await;
        }
    };
    tokio::pin!(users_done);
    loop {
        tokio::select! {
            _ = &mut users_done => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                samples.push((t0.elapsed().as_secs(), crate::harness::rss_kib(pid)));
                open_max_sampled = open_max_sampled.max(stats.open());
                eprintln!("soak: {:>4} s  server RSS {:.1} MiB  Snowflake sessions open {}", t0.elapsed().as_secs(), crate::harness::rss_kib(pid) as f64 / 1024.0, stats.open());
            }
        }
    }
    let ran = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_end = crate::harness::rss_kib(pid);
    let (logins_before, logouts_before) = (
        stats.logins.load(Ordering::SeqCst),
        stats.logouts.load(Ordering::SeqCst),
    );
    // SIGTERM, then wait for the process to end.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exited = tokio::time::timeout(Duration::from_secs(60), server.child.wait()).await;
    let exit = match exited {
        Ok(Ok(status)) => format!("exited ({status})"),
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => "still running 60 s after SIGTERM".into(),
    };
    let (logins, logouts) = (
        stats.logins.load(Ordering::SeqCst),
        stats.logouts.load(Ordering::SeqCst),
    );
    let missed = report(
        out,
        seconds,
        o,
        &tally,
        &samples,
        (rss_start, rss_end),
        ran,
        (logins_before, logouts_before),
        (logins, logouts),
        &stats,
        &exit,
    );
    if missed.is_empty() {
        Ok(())
    } else {
        Err(format!("soak targets missed: {}", missed.join("; ")))
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    out: &mut String,
    seconds: u64,
    o: &Options,
    tally: &Tally,
    samples: &[(u64, u64)],
    (rss_start, rss_end): (u64, u64),
    ran: Duration,
    (logins_before, logouts_before): (u64, u64),
    (logins, logouts): (u64, u64),
    stats: &crate::responder::ResponderStats,
    exit: &str,
) -> Vec<String> {
    let mib = |k: u64| k as f64 / 1024.0;
    let warmup = o.warmup.unwrap_or((seconds / 5).min(60));
    let rss_warm = samples
        .iter()
        .find(|(t, _)| *t >= warmup)
        .map_or(rss_end, |s| s.1);
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warmup)
        .map(|s| s.1)
        .collect();
    let (lo, hi) = (
        after.iter().min().copied().unwrap_or(rss_end),
        after.iter().max().copied().unwrap_or(rss_end),
    );
    let growth = (rss_end as f64 / rss_warm.max(1) as f64 - 1.0) * 100.0;
    let tally = tally.0.lock().unwrap();
    let count = |prefix: &str| {
        tally
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let (ok, planned, unplanned) = (count("ok "), count("planned "), count("unplanned "));
    let peak = stats.peak_open.load(Ordering::SeqCst);
    let overlaps = stats.overlaps.load(Ordering::Relaxed);
    let mut missed = Vec::new();
    if unplanned > 0 {
        missed.push(format!("{unplanned} unplanned errors (target 0)"));
    }
    if growth >= 10.0 {
        missed.push(format!("RSS grew {growth:+.1} % (target < 10 %)"));
    }
    if peak > o.pool as u64 {
        missed.push(format!(
            "{peak} Snowflake sessions open at once (target <= pool, {})",
            o.pool
        ));
    }
    if logins != logouts || !exit.starts_with("exited") {
        missed.push(format!(
            "{logins} logins against {logouts} logouts after SIGTERM (target equal; server {exit})"
        ));
    }
    if overlaps > 0 {
        missed.push(format!(
            "{overlaps} statements overlapped on one session (target 0)"
        ));
    }
    let _ = writeln!(out, "## Soak ({} MCP sessions, {} s, pool {}, backend delay {} ms, think time 0–{} ms, resume_secs {})\n", o.sessions, seconds, o.pool, o.delay_ms, 2 * o.think_ms, o.resume_secs);
    let _ = writeln!(out, "| check | result | target |\n|---|---|---|");
    let _ = writeln!(out, "| unplanned errors | **{unplanned}** (of {} operations; {planned} planned: cancellations and disconnects) | 0 |", ok + planned + unplanned);
    let _ = writeln!(out, "| server RSS after warm-up ({warmup} s) → end | {:.1} → {:.1} MiB: **{growth:+.1} %** (min {:.1}, max {:.1} after warm-up; {:.1} MiB at start) | growth < 10 % |", mib(rss_warm), mib(rss_end), mib(lo), mib(hi), mib(rss_start));
    let _ = writeln!(
        out,
        "| most Snowflake sessions open at once | **{peak}** | ≤ pool ({}) |",
        o.pool
    );
    let _ = writeln!(out, "| logins / logouts after SIGTERM | **{logins} / {logouts}** (before SIGTERM {logins_before} / {logouts_before}; server {exit}) | equal |");
    let _ = writeln!(
        out,
        "| statements overlapping on one Snowflake session | {overlaps} | 0 |"
    );
    let _ = writeln!(out, "\nOperations ({:.0} s of load, {:.0} operations/s; statements the responder aborted: {}):\n", ran.as_secs_f64(), (ok + planned + unplanned) as f64 / ran.as_secs_f64(), stats.aborts.load(Ordering::Relaxed));
    let _ = writeln!(out, "| outcome | count |\n|---|---|");
    for (k, n) in tally.iter() {
        let _ = writeln!(out, "| {k} | {n} |");
    }
    let _ = write!(out, "\nServer RSS (MiB) every 30 s:");
    for (t, k) in samples.iter().filter(|(t, _)| t % 30 < 5) {
        let _ = write!(out, " {t} s: {:.1};", mib(*k));
    }
    let _ = writeln!(out, "\n");
    let _ = writeln!(
        out,
        "Targets: {}\n",
        if missed.is_empty() {
            "all met".to_string()
        } else {
            format!("**missed** — {}", missed.join("; "))
        }
    );
    missed
}
