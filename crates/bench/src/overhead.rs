//! `overhead`: the server's own added latency per call. The same `SELECT 1`, sequentially and at
//! backend delay 0: straight from snowflake-client to the responder; as an MCP `run_query`
//! through the bare MCP server of [`crate::floor`] (the protocol's floor: HTTP, JSON-RPC, rmcp);
//! through the relay floor (the same bare server, running the statement on the responder first:
//! the protocol plus one Snowflake round trip, measured as one path); and through
//! snowflake-mcp. What the server adds is its difference to the relay floor; beside it, the
//! older estimate — the difference to the bare floor minus the direct round trip.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::harness::{start_floor, start_responder, start_server, RelayTo, Server, Usage};
use crate::load::{self, percentile_ms, sorted};

const CALLS: usize = 2000;

/// `CALLS` sequential `run_query` calls on one MCP session to `server`, after a warm-up, and
/// the CPU time the server spent per call meanwhile.
async fn sequential(server: &Server) -> Result<(Vec<Duration>, Usage), String> {
    let client = load::connect(&server.url, None).await?;
    for _ in 0..50 {
        load::call(&client, "SELECT 1").await?;
    }
    let mut took = Vec::with_capacity(CALLS);
    let before = Usage::of(server.pid);
    for _ in 0..CALLS {
        let t = Instant::now();
        load::call(&client, "SELECT 1").await?;
        took.push(t.elapsed());
    }
    let used = Usage::of(server.pid).per_call_since(before, CALLS);
    Ok((sorted(took), used))
}

pub async fn overhead(bin: &str, out: &mut String) -> Result<(), String> {
    let (port, _) = start_responder(Duration::ZERO).await;
    let settings = crate::harness::responder_settings(port);
    let mut session = snowflake_client::Client::new(&settings)
        .map_err(|e| e.to_string())?
        .login()
        .await
        .map_err(|e| e.to_string())?;
    let mut direct = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let r = session.query("SELECT 1").await.map_err(|e| e.to_string())?;
        r.collect(snowflake_client::RowLimits::default())
            .await
            .map_err(|e| e.to_string())?;
        direct.push(t.elapsed());
    }
    let direct = sorted(direct);
    let floor = start_floor(None).await?;
    let (bare, bare_cpu) = sequential(&floor).await?;
    drop(floor);
    let floor = start_floor(Some(RelayTo { port, sessions: 4 })).await?;
    let (relay, relay_cpu) = sequential(&floor).await?;
    drop(floor);
    let server = start_server(bin, port, "[pool]\nmax_sessions = 4\n").await?;
    let (via, via_cpu) = sequential(&server).await?;
    drop(server);
    let p = |v: &[Duration], q: f64| percentile_ms(v, q);
    let _ = writeln!(
        out,
        "## Added latency per call (backend delay 0, {CALLS} sequential calls)\n"
    );
    let _ = writeln!(
        out,
        "| path | p50 ms | p99 ms | server CPU per call ms | server thread wake-ups per call |\n|---|---|---|---|---|"
    );
    for (what, v, cpu) in [
        (
            "direct snowflake-client call to the responder",
            &direct,
            None,
        ),
        (
            "MCP `run_query` through a bare rmcp server answering at once (the floor)",
            &bare,
            Some(bare_cpu),
        ),
        (
            "MCP `run_query` through the relay floor (the bare server plus one Snowflake round trip)",
            &relay,
            Some(relay_cpu),
        ),
        (
            "MCP `run_query` through snowflake-mcp (HTTP, rmcp client)",
            &via,
            Some(via_cpu),
        ),
    ] {
        let (cpu, runs) = cpu.map_or(("–".into(), "–".into()), |u: Usage| {
            (
                format!("{:.3}", u.cpu.as_secs_f64() * 1e3),
                u.runs.to_string(),
            )
        });
        let _ = writeln!(
            out,
            "| {what} | {:.3} | {:.3} | {cpu} | {runs} |",
            p(v, 0.5),
            p(v, 0.99)
        );
    }
    // The server's own part: above the floor and the Snowflake round trip it must make.
    let added = |q: f64| p(&via, q) - p(&relay, q);
    let estimated = |q: f64| p(&via, q) - p(&bare, q) - p(&direct, q);
    let _ = writeln!(
        out,
        "\nAdded by snowflake-mcp above the relay floor: **{:.3} ms** at p50, **{:.3} ms** at p99 (above the bare floor less the direct round trip: {:.3} / {:.3} ms).\n",
        added(0.5),
        added(0.99),
        estimated(0.5),
        estimated(0.99)
    );
    crate::checks::at_most("overhead above the floor, p50 (ms)", added(0.5), 0.15);
    crate::checks::at_most("overhead above the floor, p99 (ms)", added(0.99), 0.5);
    Ok(())
}
