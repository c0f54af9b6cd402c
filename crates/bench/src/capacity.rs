//! `capacity`: calls per second with an instant backend (responder delay 0, pool 64) for 50,
//! 200 and 1,000 closed-loop MCP clients, through snowflake-mcp and through the bare MCP server
//! of [`crate::floor`] under the same load generator in the same run. Their ratio is how much
//! of the protocol's own capacity the server keeps: with nothing to wait for, everything the
//! server does per call is CPU taken from the next call. The relay floor (the bare server
//! plus one Snowflake round trip per call, see [`crate::floor`]) runs beside them, to show how
//! much of the distance is the Snowflake exchange itself and how much the server's own.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::harness::{start_floor, start_responder, start_server, RelayTo, Server, Usage};
use crate::load::{self, summarize, Class};

/// What one run of closed-loop sessions gave.
struct Rate {
    calls_per_sec: f64,
    errors: usize,
    p50_ms: f64,
    /// The server's CPU time per call (over the whole run, warm-up included).
    cpu_per_call: Duration,
    /// Progress notifications the clients heard per call (in the window).
    progress_per_call: f64,
}

/// Calls per second, errors, p50 and CPU per call of `clients` closed-loop sessions on
/// `server` for `secs`.
async fn rate(server: &Server, clients: usize, secs: Duration) -> Result<Rate, String> {
    let classes = [Class {
        name: "all".into(),
        sessions: clients,
        token: None,
        in_flight: 1,
    }];
    let (before, started) = (Usage::of(server.pid), Instant::now());
    let reports = load::run(&server.url, &classes, secs, Duration::from_secs(2)).await?;
    let cores = Usage::of(server.pid)
        .cpu
        .saturating_sub(before.cpu)
        .as_secs_f64()
        / started.elapsed().as_secs_f64();
    let s = &summarize(&reports, secs.as_secs_f64())[0];
    Ok(Rate {
        calls_per_sec: s.1,
        errors: s.5,
        p50_ms: s.2,
        cpu_per_call: Duration::from_secs_f64(cores / s.1.max(1.0)),
        progress_per_call: reports[0].progress_heard as f64 / reports[0].completed.max(1) as f64,
    })
}

pub async fn capacity(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::ZERO).await;
    let _ = writeln!(
        out,
        "## Capacity with an instant backend (responder delay 0, pool 64, {} s per row)\n",
        secs.as_secs()
    );
    let _ = writeln!(out, "| clients | bare rmcp server calls/s | relay floor calls/s | snowflake-mcp calls/s | ratio to bare | ratio to relay | CPU per call, bare / relay / snowflake-mcp ms | snowflake-mcp p50 ms | progress notifications per call | errors |\n|---|---|---|---|---|---|---|---|---|---|");
    for clients in [50usize, 200, 1000] {
        let floor = start_floor(None).await?;
        let bare = rate(&floor, clients, secs).await?;
        drop(floor);
        let floor = start_floor(Some(RelayTo { port, sessions: 64 })).await?;
        let relay = rate(&floor, clients, secs).await?;
        drop(floor);
        let config = format!("[server]\nmax_connections = 8192\n[pool]\nmax_sessions = 64\n[scheduler]\nqueue_timeout_secs = 120\nmax_queue_total = 100000\n[anonymous]\nmax_concurrent_total = {clients}\n");
        let server = start_server(bin, port, &config).await?;
        let ours = rate(&server, clients, secs).await?;
        drop(server);
        let ratio = ours.calls_per_sec / bare.calls_per_sec.max(1.0);
        let to_relay = ours.calls_per_sec / relay.calls_per_sec.max(1.0);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let _ = writeln!(
            out,
            "| {clients} | {:.0} | {:.0} | {:.0} | {ratio:.3} | {to_relay:.3} | {:.3} / {:.3} / {:.3} | {:.1} | {:.2} | {} |",
            bare.calls_per_sec,
            relay.calls_per_sec,
            ours.calls_per_sec,
            ms(bare.cpu_per_call),
            ms(relay.cpu_per_call),
            ms(ours.cpu_per_call),
            ours.p50_ms,
            ours.progress_per_call,
            ours.errors
        );
        let errors = ours.errors;
        if clients != 200 {
            crate::checks::at_least(
                format!("capacity against the bare server, {clients} clients"),
                ratio,
                0.8,
            );
        }
        crate::checks::at_most(
            format!("errors at capacity, {clients} clients"),
            errors as f64,
            0.0,
        );
    }
    let _ = writeln!(out);
    Ok(())
}
