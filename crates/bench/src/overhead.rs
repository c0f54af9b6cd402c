//! `overhead`: the server's own added latency per call. The same `SELECT 1`, sequentially and at
//! backend delay 0: straight from snowflake-client to the responder; as an MCP `run_query`
//! through the bare MCP server of [`crate::floor`] (the protocol's floor: HTTP, JSON-RPC, rmcp);
//! through the relay floor (the same bare server, running the statement on the responder first:
//! the protocol plus one Snowflake round trip, measured as one path); and through
//! snowflake-mcp. What the server adds is its difference to the relay floor; beside it, the
//! older estimate — the difference to the bare floor minus the direct round trip.
//!
//! The four paths are measured *interleaved*, one call of each per round, in an order that
//! rotates from round to round, all four processes up at once: this host's load drifts by
//! ±0.1 ms per call from one minute to the next, which measuring the paths one after the other
//! turned into differences between them (the seventh session's alternated runs). Interleaved,
//! every path sees the same minute, and the median of the call-by-call differences between
//! the server and the relay floor is printed beside the difference of their medians.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::harness::{start_floor, start_responder, start_server, RelayTo, Server, Usage};
use crate::load::{self, percentile_ms, sorted};

const CALLS: usize = 2000;
const WARM_UP: usize = 50;

/// One MCP path under measurement: its process, a client on one MCP session, and each call's
/// time.
struct Path {
    server: Server,
    client: load::Client,
    took: Vec<Duration>,
    before: Usage,
}

impl Path {
    async fn open(server: Server) -> Result<Path, String> {
        let client = load::connect(&server.url, None).await?;
        for _ in 0..WARM_UP {
            load::call(&client, "SELECT 1").await?;
        }
        Ok(Path {
            server,
            client,
            took: Vec::with_capacity(CALLS),
            before: Usage::default(),
        })
    }

    async fn call(&mut self) -> Result<(), String> {
        let t = Instant::now();
        load::call(&self.client, "SELECT 1").await?;
        self.took.push(t.elapsed());
        Ok(())
    }
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
    let mut paths = [
        Path::open(start_floor(None).await?).await?,
        Path::open(start_floor(Some(RelayTo { port, sessions: 4 })).await?).await?,
        Path::open(start_server(bin, port, "[pool]\nmax_sessions = 4\n").await?).await?,
    ];
    for path in &mut paths {
        path.before = Usage::of(path.server.pid);
    }
    // Each round calls every path once, starting one path later than the round before: no
    // path always follows the same other one.
    for round in 0..CALLS {
        for turn in 0..=paths.len() {
            match (round + turn) % (paths.len() + 1) {
                0 => {
                    let t = Instant::now();
                    let r = session.query("SELECT 1").await.map_err(|e| e.to_string())?;
                    r.collect(snowflake_client::RowLimits::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    direct.push(t.elapsed());
                }
                n => paths[n - 1].call().await?,
            }
        }
    }
    // Call by call, the server against the relay floor in the same round.
    let [_, relay_floor, server] = &paths;
    let mut paired: Vec<f64> = server
        .took
        .iter()
        .zip(&relay_floor.took)
        .map(|(v, r)| v.as_secs_f64() * 1e3 - r.as_secs_f64() * 1e3)
        .collect();
    paired.sort_by(f64::total_cmp);
    let paired_at = |q: f64| load::quantile(&paired, q).unwrap_or(f64::NAN);
    let direct = sorted(direct);
    let [(bare, bare_cpu), (relay, relay_cpu), (via, via_cpu)] = paths.map(|p| {
        let used = Usage::of(p.server.pid).per_call_since(p.before, CALLS);
        (sorted(p.took), used)
    });
    let p = |v: &[Duration], q: f64| percentile_ms(v, q);
    let _ = writeln!(
        out,
        "## Added latency per call (backend delay 0, {CALLS} sequential calls on each path, the paths interleaved call by call)\n"
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
        "\nAdded by snowflake-mcp above the relay floor: **{:.3} ms** at p50, **{:.3} ms** at p99 (above the bare floor less the direct round trip: {:.3} / {:.3} ms). Call by call, each server call less the relay floor's call in the same round: median {:.3} ms, p10 {:.3}, p90 {:.3}.\n",
        added(0.5),
        added(0.99),
        estimated(0.5),
        estimated(0.99),
        paired_at(0.5),
        paired_at(0.1),
        paired_at(0.9)
    );
    crate::checks::at_most("overhead above the floor, p50 (ms)", added(0.5), 0.15);
    crate::checks::at_most("overhead above the floor, p99 (ms)", added(0.99), 0.5);
    Ok(())
}
