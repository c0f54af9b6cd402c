//! `overhead`: the server's own added latency per call. The same `SELECT 1`, sequentially and at
//! backend delay 0, once straight from snowflake-client to the responder and once as an MCP
//! `run_query` through snowflake-mcp; the difference of the medians is what the server and the
//! MCP round trip add.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::harness::{start_responder, start_server};
use crate::load::{self, percentile_ms, sorted};

pub async fn overhead(bin: &str, out: &mut String) -> Result<(), String> {
    const CALLS: usize = 2000;
    let (port, _) = start_responder(Duration::ZERO).await;
    let settings = snowflake_client::ConnectionSettings {
        account: Some("bench".into()),
        user: Some("bench".into()),
        password: Some(snowflake_client::Secret::new("bench")),
        host: Some("127.0.0.1".into()),
        port: Some(port),
        protocol: Some("http".into()),
        ..Default::default()
    };
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
    let server = start_server(bin, port, "[pool]\nmax_sessions = 4\n").await?;
    let client = load::connect(&server.url, None).await?;
    load::call(&client, "SELECT 1").await?;
    let mut via = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        load::call(&client, "SELECT 1").await?;
        via.push(t.elapsed());
    }
    let (direct, via) = (sorted(direct), sorted(via));
    let _ = writeln!(
        out,
        "## Added latency per call (backend delay 0, {CALLS} sequential calls)\n"
    );
    let _ = writeln!(out, "| path | p50 ms | p99 ms |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| direct snowflake-client call to the responder | {:.3} | {:.3} |",
        percentile_ms(&direct, 0.5),
        percentile_ms(&direct, 0.99)
    );
    let _ = writeln!(
        out,
        "| MCP `run_query` through snowflake-mcp (HTTP, rmcp client) | {:.3} | {:.3} |",
        percentile_ms(&via, 0.5),
        percentile_ms(&via, 0.99)
    );
    let _ = writeln!(
        out,
        "\nAdded by the server and the MCP round trip at p50: **{:.3} ms**.\n",
        percentile_ms(&via, 0.5) - percentile_ms(&direct, 0.5)
    );
    Ok(())
}
