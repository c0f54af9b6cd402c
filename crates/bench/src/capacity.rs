//! `capacity`: calls per second with an instant backend (responder delay 0, pool 64) for 50,
//! 200 and 1,000 closed-loop MCP clients, through snowflake-mcp and through the bare MCP server
//! of [`crate::floor`] under the same load generator in the same run. Their ratio is how much
//! of the protocol's own capacity the server keeps: with nothing to wait for, everything the
//! server does per call is CPU taken from the next call.

use std::fmt::Write as _;
use std::time::Duration;

use crate::harness::{start_floor, start_responder, start_server};
use crate::load::{self, summarize, Class};

/// Calls per second (and errors) of `clients` closed-loop sessions on `url` for `secs`.
async fn rate(url: &str, clients: usize, secs: Duration) -> Result<(f64, usize, f64), String> {
    let classes = [Class {
        name: "all".into(),
        sessions: clients,
        token: None,
        in_flight: 1,
    }];
    let reports = load::run(url, &classes, secs, Duration::from_secs(2)).await?;
    let s = &summarize(&reports, secs.as_secs_f64())[0];
    Ok((s.1, s.5, s.2))
}

pub async fn capacity(bin: &str, secs: Duration, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::ZERO).await;
    let _ = writeln!(
        out,
        "## Capacity with an instant backend (responder delay 0, pool 64, {} s per row)\n",
        secs.as_secs()
    );
    let _ = writeln!(out, "| clients | bare rmcp server calls/s | snowflake-mcp calls/s | ratio | snowflake-mcp p50 ms | errors |\n|---|---|---|---|---|---|");
    for clients in [50usize, 200, 1000] {
        let floor = start_floor().await?;
        let (bare, _, _) = rate(&floor.url, clients, secs).await?;
        drop(floor);
        let config = format!("[server]\nmax_connections = 8192\n[pool]\nmax_sessions = 64\n[scheduler]\nqueue_timeout_secs = 120\nmax_queue_total = 100000\n[anonymous]\nmax_concurrent_total = {clients}\n");
        let server = start_server(bin, port, &config).await?;
        let (ours, errors, p50) = rate(&server.url, clients, secs).await?;
        drop(server);
        let ratio = ours / bare.max(1.0);
        let _ = writeln!(
            out,
            "| {clients} | {bare:.0} | {ours:.0} | {ratio:.3} | {p50:.1} | {errors} |"
        );
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
