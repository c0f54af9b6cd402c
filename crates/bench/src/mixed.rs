//! Session-time fairness and warehouses: statements of different lengths, asked of the
//! responder with `/* delay_ms=N */`.
//!
//! `mixed`: clients with different statement lengths and weights saturate a small pool; the
//! report gives each client's share of calls and of session-time (completed calls times their
//! statement length) and Jain's index over session-time share divided by weight share.
//! `light-heavy`: a light client's latency beside two clients flooding 2-second statements.
//! `warehouses`: a client on a light warehouse while another floods a capped warehouse.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{sha, start_responder, start_server};
use crate::load::{self, jain, percentile_ms, sorted};

/// One client's load: `sessions` closed loops of `delay_ms` statements, `think` between calls.
#[derive(Clone)]
struct Load {
    name: String,
    sessions: usize,
    delay_ms: u64,
    think: Duration,
}

struct Outcome {
    calls: usize,
    errors: usize,
    latencies: Vec<Duration>,
}

/// Run every load (token = its name) for `secs` after `warmup`; calls counted on completion.
async fn run(
    url: &str,
    loads: &[Load],
    secs: Duration,
    warmup: Duration,
) -> Result<Vec<Outcome>, String> {
    let mut clients = Vec::new();
    for (li, l) in loads.iter().enumerate() {
        for _ in 0..l.sessions {
            clients.push((li, Arc::new(load::connect(url, Some(&l.name)).await?)));
        }
    }
    let start = Instant::now() + warmup;
    let end = start + secs;
    let mut tasks = Vec::new();
    for (li, client) in &clients {
        let (li, client) = (*li, client.clone());
        let sql = format!("SELECT 1 /* delay_ms={} */", loads[li].delay_ms);
        let think = loads[li].think;
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0);
            while Instant::now() < end {
                let t0 = Instant::now();
                let outcome = load::call(&client, &sql).await;
                let t1 = Instant::now();
                if t1 >= start && t1 <= end {
                    match outcome {
                        Ok(()) => latencies.push(t1 - t0),
                        Err(_) => errors += 1,
                    }
                }
                if !think.is_zero() {
                    tokio::time::sleep(think).await;
                }
            }
            (li, latencies, errors)
        }));
    }
    let mut out: Vec<Outcome> = loads
        .iter()
        .map(|_| Outcome {
            calls: 0,
            errors: 0,
            latencies: Vec::new(),
        })
        .collect();
    for t in tasks {
        let (li, latencies, errors) = t.await.map_err(|e| e.to_string())?;
        out[li].calls += latencies.len();
        out[li].errors += errors;
        out[li].latencies.extend(latencies);
    }
    for (_, c) in clients {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }
    Ok(out)
}

fn client_config(
    name: &str,
    weight: u32,
    max_concurrent: usize,
    warehouse: Option<&str>,
) -> String {
    let mut s = format!(
        "[[clients]]\nid = \"{name}\"\ntoken_sha256 = \"{}\"\nweight = {weight}\nmax_concurrent = {max_concurrent}\n",
        sha(name)
    );
    if let Some(w) = warehouse {
        let _ = writeln!(s, "default_context = {{ warehouse = \"{w}\" }}");
    }
    s
}

const SCHEDULER: &str = "[scheduler]\nqueue_timeout_secs = 300\nmax_queue_per_client = 1000\nmax_queue_total = 100000\n";

/// Mixed statement lengths: weights 1:1 with 2000/50 ms, then 1:2:4 with 700/50/300 ms.
pub async fn mixed(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    const POOL: usize = 4;
    let (port, stats) = start_responder(Duration::from_millis(50)).await;
    let warmup = Duration::from_secs(5);
    let _ = writeln!(out, "## Session-time fairness with mixed statement lengths (pool {POOL}, each client 8 sessions in closed loops, {} s after {} s warm-up)\n", secs.as_secs(), warmup.as_secs());
    for (weights, delays) in [
        (vec![1u32, 1], vec![2000u64, 50]),
        (vec![1, 2, 4], vec![700, 50, 300]),
    ] {
        let mut config = format!("[pool]\nmax_sessions = {POOL}\n{SCHEDULER}");
        let mut loads = Vec::new();
        for (i, (w, d)) in weights.iter().zip(&delays).enumerate() {
            let name = format!("c{i}-{d}ms");
            config.push_str(&client_config(&name, *w, POOL, None));
            loads.push(Load {
                name,
                sessions: 8,
                delay_ms: *d,
                think: Duration::ZERO,
            });
        }
        let server = start_server(bin, port, &config).await?;
        let outcomes = run(&server.url, &loads, secs, warmup).await?;
        drop(server);
        let calls: usize = outcomes.iter().map(|o| o.calls).sum();
        let time = |o: &Outcome, l: &Load| o.calls as f64 * l.delay_ms as f64 / 1000.0;
        let total_time: f64 = outcomes.iter().zip(&loads).map(|(o, l)| time(o, l)).sum();
        let weight_sum: u32 = weights.iter().sum();
        let _ = writeln!(out, "Weights {weights:?}, statement lengths {delays:?} ms:\n\n| client | weight share | calls | share of calls | session-time s | share of session-time | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|---|---|");
        let mut normalized = Vec::new();
        for ((o, l), w) in outcomes.iter().zip(&loads).zip(&weights) {
            let target = *w as f64 / weight_sum as f64;
            let share = time(o, l) / total_time.max(1e-9);
            normalized.push(share / target);
            let lat = sorted(o.latencies.clone());
            let _ = writeln!(
                out,
                "| {} | {:.3} | {} | {:.3} | {:.1} | {:.3} | {:.0} | {:.0} | {} |",
                l.name,
                target,
                o.calls,
                o.calls as f64 / calls.max(1) as f64,
                time(o, l),
                share,
                percentile_ms(&lat, 0.5),
                percentile_ms(&lat, 0.99),
                o.errors
            );
        }
        let _ = writeln!(out, "\nPool session-time used: {total_time:.1} s of {:.1} s available ({:.3}). Jain's index over session-time share / weight share: **{:.4}**\n", secs.as_secs_f64() * POOL as f64, total_time / (secs.as_secs_f64() * POOL as f64), jain(&normalized));
    }
    let _ = writeln!(
        out,
        "Statements overlapping on one Snowflake session: {}.\n",
        stats.overlaps.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

fn latency_table(
    out: &mut String,
    label: &str,
    loads: &[Load],
    outcomes: &[Outcome],
    secs: Duration,
) {
    for (l, o) in loads.iter().zip(outcomes) {
        let lat = sorted(o.latencies.clone());
        let _ = writeln!(
            out,
            "| {label} | {} ({} ms statements) | {} | {:.1} | {:.0} | {:.0} | {} |",
            l.name,
            l.delay_ms,
            o.calls,
            o.calls as f64 / secs.as_secs_f64(),
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 0.99),
            o.errors
        );
    }
}

const TABLE: &str =
    "| run | client | calls | calls/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|";

/// A light client (2 sessions, 50 ms statements, 100 ms think time) alone and beside two
/// clients each flooding 2000 ms statements from 8 sessions; pool 4.
pub async fn light_heavy(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::from_millis(50)).await;
    let mut config = format!("[pool]\nmax_sessions = 4\n{SCHEDULER}");
    for name in ["light", "heavy1", "heavy2"] {
        config.push_str(&client_config(name, 1, 4, None));
    }
    let light = Load {
        name: "light".into(),
        sessions: 2,
        delay_ms: 50,
        think: Duration::from_millis(100),
    };
    let heavy = |n: &str| Load {
        name: n.into(),
        sessions: 8,
        delay_ms: 2000,
        think: Duration::ZERO,
    };
    let _ = writeln!(out, "## A light client beside two clients flooding 2-second statements (pool 4, {} s after 5 s warm-up)\n\n{TABLE}", secs.as_secs());
    let mut p99 = Vec::new();
    for (label, loads) in [
        ("light alone", vec![light.clone()]),
        (
            "light + 2 heavy",
            vec![light.clone(), heavy("heavy1"), heavy("heavy2")],
        ),
    ] {
        let server = start_server(bin, port, &config).await?;
        let outcomes = run(&server.url, &loads, secs, Duration::from_secs(5)).await?;
        drop(server);
        latency_table(out, label, &loads, &outcomes, secs);
        p99.push(percentile_ms(&sorted(outcomes[0].latencies.clone()), 0.99));
    }
    let _ = writeln!(out, "\nLight p99 beside the flood minus light p99 alone: **{:.0} ms** (target: at most one heavy statement, 2000 ms).\n", p99[1] - p99[0]);
    Ok(())
}

/// Two warehouses, `[warehouses.FLOODED] max_concurrent = 2`, pool 8: client `y` on OTHER
/// (2 sessions, 50 ms statements, 100 ms think) alone and while `x` floods FLOODED.
pub async fn warehouses(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::from_millis(50)).await;
    let mut config =
        format!("[pool]\nmax_sessions = 8\n{SCHEDULER}[warehouses.FLOODED]\nmax_concurrent = 2\n");
    config.push_str(&client_config("x", 1, 8, Some("FLOODED")));
    config.push_str(&client_config("y", 1, 8, Some("OTHER")));
    let y = Load {
        name: "y".into(),
        sessions: 2,
        delay_ms: 50,
        think: Duration::from_millis(100),
    };
    let x = Load {
        name: "x".into(),
        sessions: 16,
        delay_ms: 500,
        think: Duration::ZERO,
    };
    let _ = writeln!(out, "## Two warehouses, one flooded (pool 8, `[warehouses.FLOODED] max_concurrent = 2`, {} s after 5 s warm-up)\n\n{TABLE}", secs.as_secs());
    let mut p = Vec::new();
    for (label, loads) in [
        ("y alone (OTHER)", vec![y.clone()]),
        ("y (OTHER) + x flooding FLOODED", vec![y.clone(), x.clone()]),
    ] {
        let server = start_server(bin, port, &config).await?;
        let outcomes = run(&server.url, &loads, secs, Duration::from_secs(5)).await?;
        drop(server);
        latency_table(out, label, &loads, &outcomes, secs);
        let lat = sorted(outcomes[0].latencies.clone());
        p.push((percentile_ms(&lat, 0.5), percentile_ms(&lat, 0.99)));
    }
    let _ = writeln!(out, "\ny's p50 with the flood / alone: **{:.3}**, p99: **{:.3}** (target: within 10 %). x is held to 2 statements in flight, about 4 calls/s at 500 ms.\n", p[1].0 / p[0].0, p[1].1 / p[0].1);
    Ok(())
}
