//! `memory`: the server's RSS with 10,000 idle MCP sessions, just opened and once parked, and a
//! check that parked sessions still answer. Sessions are opened with plain JSON-RPC POSTs
//! ([`post`]), not rmcp clients.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{rss_kib, start_responder, start_server};

/// POST one JSON-RPC message (to session `id` when given); the session id answered and the body.
async fn post(
    http: &reqwest::Client,
    url: &str,
    id: Option<&str>,
    body: &'static str,
) -> Option<(Option<String>, String)> {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(id) = id {
        request = request
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", "2025-06-18");
    }
    let r = request.send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let id = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Some((id, r.text().await.ok()?))
}

pub async fn memory(bin: &str, out: &mut String) -> Result<(), String> {
    const SESSIONS: usize = 10_000;
    // Default [sessions] park_after_secs (60) plus a sweep period (15).
    const PARKED_AFTER: Duration = Duration::from_secs(80);
    let (port, _) = start_responder(Duration::ZERO).await;
    let server = start_server(
        bin,
        port,
        "[sessions]\nmax_total = 20000\nmax_per_client = 20000\n",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(server.pid);
    let http = reqwest::Client::new();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let (http, url, sem) = (http.clone(), server.url.clone(), semaphore.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            let id = post(&http, &url, None, init).await?.0?;
            let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
            post(&http, &url, Some(&id), initialized).await?;
            Some(id)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        if let Ok(Some(id)) = t.await {
            ids.push(id);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = rss_kib(server.pid);
    tokio::time::sleep(PARKED_AFTER).await;
    let parked = rss_kib(server.pid);
    // Parked sessions must still answer: every hundredth lists its tools.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let mut resumed = 0;
    for id in ids.iter().step_by(100) {
        if let Some((_, body)) = post(&http, &server.url, Some(id), list).await {
            resumed += usize::from(body.contains("run_query"));
        }
    }
    let opened = ids.len().max(1) as f64;
    let per = |kib: u64| kib.saturating_sub(before) as f64 / opened;
    let _ = writeln!(out, "## Memory with idle MCP sessions\n");
    let _ = writeln!(
        out,
        "| sessions open | server RSS before | just opened (live) | per session | after {} s idle (parked) | per session | parked sessions that answered `tools/list` |\n|---|---|---|---|---|---|---|",
        PARKED_AFTER.as_secs()
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(
        out,
        "| {} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.1} MiB | {:.2} KiB | {resumed} of {} |\n",
        ids.len(),
        mib(before),
        mib(live),
        per(live),
        mib(parked),
        per(parked),
        ids.len().div_ceil(100)
    );
    Ok(())
}
