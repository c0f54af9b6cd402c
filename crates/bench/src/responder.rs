//! A Snowflake-protocol responder with a fixed delay and a fixed one-row result.
//!
//! It speaks just enough of the connector REST protocol for the server to log in, switch
//! context and run statements: every statement waits `delay` (`USE` statements answer at once)
//! and returns `[[1]]`. It measures the server, not an emulator: it has no limit of its own
//! on concurrency. It also counts statements that overlap on one session token, which must
//! never happen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

#[derive(Default)]
pub struct ResponderStats {
    pub statements: AtomicU64,
    pub overlaps: AtomicU64,
    pub logins: AtomicU64,
    running: Mutex<HashMap<String, u32>>,
}

/// Serve on `listener` until the process ends.
pub async fn run(listener: tokio::net::TcpListener, delay: Duration, stats: Arc<ResponderStats>) {
    let next_token = Arc::new(AtomicU64::new(1));
    let login_stats = stats.clone();
    let app = axum::Router::new()
        .route(
            "/session/v1/login-request",
            post(move || {
                let (next_token, stats) = (next_token.clone(), login_stats.clone());
                async move {
                    stats.logins.fetch_add(1, Ordering::Relaxed);
                    let token = format!("tok-{}", next_token.fetch_add(1, Ordering::Relaxed));
                    Json(json!({"success": true, "data": {"token": token, "serverVersion": "bench",
                        "sessionInfo": {"databaseName": "BENCH", "schemaName": "PUBLIC", "warehouseName": "WH", "roleName": "R"}}}))
                }
            }),
        )
        .route(
            "/queries/v1/query-request",
            post(move |headers: HeaderMap, body: Bytes| {
                let stats = stats.clone();
                async move { statement(&stats, &headers, &body, delay).await }
            }),
        )
        .fallback(|| async { Json(json!({"success": true, "data": {}})) });
    let _ = axum::serve(listener, app).await;
}

async fn statement(
    stats: &ResponderStats,
    headers: &HeaderMap,
    body: &[u8],
    delay: Duration,
) -> Json<Value> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = gunzip(body);
    let sql = serde_json::from_slice::<Value>(&text)
        .ok()
        .and_then(|v| v["sqlText"].as_str().map(str::to_string))
        .unwrap_or_default();
    {
        let mut running = stats.running.lock().unwrap();
        let n = running.entry(token.clone()).or_default();
        if *n > 0 {
            stats.overlaps.fetch_add(1, Ordering::Relaxed);
        }
        *n += 1;
    }
    stats.statements.fetch_add(1, Ordering::Relaxed);
    if !sql.starts_with("USE ") && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(n) = stats.running.lock().unwrap().get_mut(&token) {
        *n -= 1;
    }
    Json(json!({"success": true, "data": {
        "queryId": "bench-query",
        "rowtype": [{"name": "N", "type": "fixed", "scale": 0, "precision": 38, "nullable": false}],
        "queryResultFormat": "json",
        "rowset": [["1"]],
        "total": 1,
    }}))
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if !body.starts_with(&[0x1f, 0x8b])
        || flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .is_err()
    {
        return body.to_vec();
    }
    out
}
