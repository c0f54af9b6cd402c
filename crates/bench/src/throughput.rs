//! `throughput`: calls per second against pool size at a fixed backend delay (50 ms), each pool
//! size with a fixed number of concurrent anonymous clients (100 to 1,000), compared with the
//! ideal of pool size over delay; also latency percentiles, Jain's index over the clients, and
//! how many statements the responder saw overlapping on one Snowflake session. The responder
//! also times each session's cycle: how long its statements took there (the delay, plus the
//! timer's rounding) and the hand-over — from a statement's answer to the session's next
//! statement, which is all the server's doing (reading the answer, replying, granting the
//! session to the next waiter, sending its statement). The relay floor (see [`crate::floor`])
//! runs each row first on the same pool: what a server that only relays leaves of the ideal on
//! this machine, and its own hand-over.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::harness::{start_floor, start_responder, start_server, RelayTo};
use crate::load::{self, jain, summarize, Class};

pub async fn throughput(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let delay = Duration::from_millis(50);
    let (port, stats) = start_responder(delay).await;
    let _ = writeln!(
        out,
        "## Throughput against pool size (backend delay 50 ms, {} s per row)\n",
        secs.as_secs()
    );
    let mut first_errors = Vec::new();
    let _ = writeln!(out, "| pool | concurrent clients | calls/s | ideal (pool / delay) | ratio | p50 ms | p99 ms | errors | Jain's index over clients | statement at the responder ms | hand-over ms | relay floor: ratio, hand-over ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (pool, clients) in [(4usize, 100usize), (16, 200), (64, 400), (64, 1000)] {
        let classes = [Class {
            name: "all".into(),
            sessions: clients,
            token: None,
            in_flight: 1,
        }];
        // The relay floor on the same pool: what relaying alone leaves of the ideal.
        let floor = start_floor(Some(RelayTo {
            port,
            sessions: pool,
        }))
        .await?;
        stats.take_cycle();
        let reports = load::run(&floor.url, &classes, secs, Duration::from_secs(2)).await?;
        drop(floor);
        let relay_cycle = stats.take_cycle();
        let relay = summarize(&reports, secs.as_secs_f64())[0].1;
        // Every session is its own anonymous client; their group cap must not be the limit, nor
        // the cap on connections (each session holds about two: its calls and its SSE stream).
        let config = format!("[server]\nmax_connections = 4096\n[pool]\nmax_sessions = {pool}\n[scheduler]\nqueue_timeout_secs = 120\nmax_queue_total = 100000\n[anonymous]\nmax_concurrent_total = {clients}\n");
        let server = start_server(bin, port, &config).await?;
        stats.take_cycle();
        let reports = load::run(&server.url, &classes, secs, Duration::from_secs(2)).await?;
        // A session's cycle: its statement, then the time until its next one arrives.
        let cycle = stats.take_cycle();
        let s = &summarize(&reports, secs.as_secs_f64())[0];
        let ideal = pool as f64 / delay.as_secs_f64();
        let per_client: Vec<f64> = reports[0].per_session.iter().map(|&n| n as f64).collect();
        if let Some(e) = &reports[0].first_error {
            first_errors.push(format!("- pool {pool}, {clients} clients: `{e}`"));
        }
        let row = format!("pool {pool}, {clients} clients");
        crate::checks::at_least(format!("throughput / ideal, {row}"), s.1 / ideal, 0.98);
        crate::checks::at_most(format!("errors, {row}"), s.5 as f64, 0.0);
        crate::checks::at_least(format!("Jain's index, {row}"), jain(&per_client), 0.99);
        let _ = writeln!(
            out,
            "| {pool} | {clients} | {:.1} | {ideal:.0} | {:.3} | {:.1} | {:.1} | {} | {:.4} | {:.2} | {:.2} | {:.3}, {:.2} |",
            s.1,
            s.1 / ideal,
            s.2,
            s.4,
            s.5,
            jain(&per_client),
            cycle.busy_ms,
            cycle.gap_ms,
            relay / ideal,
            relay_cycle.gap_ms
        );
    }
    if !first_errors.is_empty() {
        let _ = writeln!(
            out,
            "\nFirst error of each row with errors:\n\n{}",
            first_errors.join("\n")
        );
    }
    let _ = writeln!(
        out,
        "\nStatements overlapping on one Snowflake session during these runs: {}.\n",
        stats.overlaps.load(Ordering::Relaxed)
    );
    Ok(())
}
