//! A Snowflake-protocol responder with a fixed delay and a fixed one-row result.
//!
//! It speaks just enough of the connector REST protocol for the server to log in, switch
//! context, run statements, abort them and log out: every statement waits `delay`, or the
//! `N` of a `/* delay_ms=N */` comment in its text (`USE` statements answer at once; the wait is
//! [`crate::precise`], not tokio's millisecond-rounded timer) and returns
//! `[[1]]`. Like Snowflake, it stops a statement at its `STATEMENT_TIMEOUT_IN_SECONDS` with
//! error 000630. `SHOW WAREHOUSES LIKE 'W'` returns W with a size read from its name's last
//! part (`BENCH_MEDIUM` is Medium, X-Small when none); other `SHOW` and `DESCRIBE` statements
//! return one row with the columns the server reads. It measures the server, not an emulator:
//! it has no limit of its own on concurrency. It counts statements that overlap on one session
//! token, which must never happen, and logins, logouts and the most sessions ever open at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::Notify;

#[derive(Default)]
pub struct ResponderStats {
    pub statements: AtomicU64,
    pub overlaps: AtomicU64,
    pub logins: AtomicU64,
    /// `POST /session?delete=true`.
    pub logouts: AtomicU64,
    /// Statements ended early by `/queries/v1/abort-request`.
    pub aborts: AtomicU64,
    /// Statements stopped at their `STATEMENT_TIMEOUT_IN_SECONDS`.
    pub timeouts: AtomicU64,
    /// The most sessions logged in and not yet logged out at any one time.
    pub peak_open: AtomicU64,
    /// Statements running per session token, and what wakes them on an abort.
    running: Mutex<HashMap<String, (u32, Arc<Notify>)>>,
    /// When each session's last statement was answered: the start of its idle time.
    answered: Mutex<HashMap<String, Instant>>,
    /// Idle time between a session's answer and its next statement (µs, summed), and how many
    /// such gaps: the server's hand-over from one statement to the next.
    gap_us: AtomicU64,
    gaps: AtomicU64,
    /// Time statements spent at the responder (µs, summed), and how many.
    busy_us: AtomicU64,
    timed: AtomicU64,
}

/// A session's average cycle as the responder saw it since the last [`ResponderStats::take_cycle`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Cycle {
    /// Mean time a statement took at the responder, ms.
    pub busy_ms: f64,
    /// Mean time from a session's answer to its next statement, ms.
    pub gap_ms: f64,
}

impl ResponderStats {
    /// The mean statement and hand-over times since the last call, and start counting anew.
    pub fn take_cycle(&self) -> Cycle {
        let mean = |sum: &AtomicU64, n: &AtomicU64| {
            let (sum, n) = (sum.swap(0, Ordering::SeqCst), n.swap(0, Ordering::SeqCst));
            sum as f64 / 1e3 / n.max(1) as f64
        };
        Cycle {
            busy_ms: mean(&self.busy_us, &self.timed),
            gap_ms: mean(&self.gap_us, &self.gaps),
        }
    }

    /// Sessions logged in and not logged out now.
    pub fn open(&self) -> u64 {
        let logouts = self.logouts.load(Ordering::SeqCst);
        self.logins.load(Ordering::SeqCst).saturating_sub(logouts)
    }
}

/// Serve on `listener` until the process ends.
pub async fn run(listener: tokio::net::TcpListener, delay: Duration, stats: Arc<ResponderStats>) {
    let next_token = Arc::new(AtomicU64::new(1));
    let (login_stats, logout_stats, abort_stats) = (stats.clone(), stats.clone(), stats.clone());
    let app = axum::Router::new()
        .route(
            "/session/v1/login-request",
            post(move || {
                let (next_token, stats) = (next_token.clone(), login_stats.clone());
                async move {
                    stats.logins.fetch_add(1, Ordering::SeqCst);
                    stats.peak_open.fetch_max(stats.open(), Ordering::SeqCst);
                    let n = next_token.fetch_add(1, Ordering::Relaxed);
                    let token = format!("tok-{n}");
                    Json(json!({"success": true, "data": {"token": token, "serverVersion": "bench", "sessionId": n,
                        "sessionInfo": {"databaseName": "BENCH", "schemaName": "PUBLIC", "warehouseName": "WH", "roleName": "R"}}}))
                }
            }),
        )
        .route(
            "/session",
            post(move |query: Query<HashMap<String, String>>| {
                let stats = logout_stats.clone();
                async move {
                    if query.get("delete").map(String::as_str) == Some("true") {
                        stats.logouts.fetch_add(1, Ordering::SeqCst);
                    }
                    Json(json!({"success": true, "data": {}}))
                }
            }),
        )
        .route(
            "/queries/v1/abort-request",
            post(move |headers: HeaderMap| {
                let stats = abort_stats.clone();
                async move {
                    let token = authorization(&headers);
                    if let Some((_, wake)) = stats.running.lock().unwrap().get(&token) {
                        wake.notify_waiters();
                    }
                    Json(json!({"success": true, "data": {}}))
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

fn authorization(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Counts one statement as running on its token until dropped, even when the server drops the
/// request midway.
struct Running<'a> {
    stats: &'a ResponderStats,
    token: String,
    wake: Arc<Notify>,
    started: Instant,
}

impl<'a> Running<'a> {
    fn new(stats: &'a ResponderStats, token: String) -> Self {
        let mut running = stats.running.lock().unwrap();
        let (n, wake) = running
            .entry(token.clone())
            .or_insert_with(|| (0, Arc::default()));
        if *n > 0 {
            stats.overlaps.fetch_add(1, Ordering::Relaxed);
        }
        *n += 1;
        let wake = wake.clone();
        drop(running);
        let started = Instant::now();
        if let Some(answered) = stats.answered.lock().unwrap().remove(&token) {
            let gap = started.duration_since(answered).as_micros() as u64;
            stats.gap_us.fetch_add(gap, Ordering::Relaxed);
            stats.gaps.fetch_add(1, Ordering::Relaxed);
        }
        Running {
            stats,
            token,
            wake,
            started,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let busy = now.duration_since(self.started).as_micros() as u64;
        self.stats.busy_us.fetch_add(busy, Ordering::Relaxed);
        self.stats.timed.fetch_add(1, Ordering::Relaxed);
        let token = self.token.clone();
        self.stats.answered.lock().unwrap().insert(token, now);
        let mut running = self.stats.running.lock().unwrap();
        if let Some((n, _)) = running.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.token);
            }
        }
    }
}

async fn statement(
    stats: &ResponderStats,
    headers: &HeaderMap,
    body: &[u8],
    delay: Duration,
) -> Json<Value> {
    let request = serde_json::from_slice::<Value>(&gunzip(body)).unwrap_or_default();
    let sql = request["sqlText"].as_str().unwrap_or_default();
    let timeout = request["parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"]
        .as_u64()
        .map(Duration::from_secs);
    let running = Running::new(stats, authorization(headers));
    stats.statements.fetch_add(1, Ordering::Relaxed);
    let delay = requested_delay(sql).unwrap_or(delay);
    if !sql.starts_with("USE ") && !delay.is_zero() {
        let stop = timeout.filter(|t| *t < delay);
        let aborted = running.wake.notified();
        tokio::select! {
            _ = crate::precise::sleep(stop.unwrap_or(delay)) => {
                if let Some(t) = stop {
                    stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    let s = t.as_secs();
                    return Json(json!({"success": false, "code": "000630",
                        "message": format!("Statement reached its statement or warehouse timeout of {s} second(s) and was canceled."),
                        "data": {"queryId": "bench-query"}}));
                }
            }
            _ = aborted => {
                stats.aborts.fetch_add(1, Ordering::Relaxed);
                return Json(json!({"success": false, "code": "000604",
                    "message": "SQL execution canceled", "data": {"queryId": "bench-query"}}));
            }
        }
    }
    drop(running);
    if let Some(name) = sql.strip_prefix("SHOW WAREHOUSES LIKE '") {
        let name = name.trim_end_matches('\'');
        return text_table(
            &["name", "state", "size"],
            json!([name, "STARTED", warehouse_size(name)]),
        );
    }
    if sql.starts_with("SHOW ") || sql.starts_with("DESC") {
        return text_table(
            &["name", "type", "null?", "comment"],
            json!(["N", "NUMBER(38,0)", "N", null]),
        );
    }
    Json(json!({"success": true, "data": {
        "queryId": "bench-query",
        "rowtype": [{"name": "N", "type": "fixed", "scale": 0, "precision": 38, "nullable": false}],
        "queryResultFormat": "json",
        "rowset": [["1"]],
        "total": 1,
    }}))
}

/// A one-row answer of text columns.
fn text_table(columns: &[&str], row: Value) -> Json<Value> {
    let rowtype: Vec<Value> = columns
        .iter()
        .map(|name| json!({"name": name, "type": "text", "nullable": true}))
        .collect();
    Json(json!({"success": true, "data": {
        "queryId": "bench-query",
        "rowtype": rowtype,
        "queryResultFormat": "json",
        "rowset": [row],
        "total": 1,
    }}))
}

/// The duration a statement asks for with `/* delay_ms=N */`, if any.
pub fn requested_delay(sql: &str) -> Option<Duration> {
    let rest = &sql[sql.find("delay_ms=")? + "delay_ms=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Duration::from_millis)
}

/// The size of warehouse `name`, from the last `_` part of its name: `BENCH_MEDIUM` is Medium,
/// `WH_2XLARGE` 2X-Large; X-Small (Snowflake's default) when that part is no size.
pub fn warehouse_size(name: &str) -> &'static str {
    let last = name.rsplit('_').next().unwrap_or_default();
    const SIZES: [(&str, &str); 10] = [
        ("XSMALL", "X-Small"),
        ("SMALL", "Small"),
        ("MEDIUM", "Medium"),
        ("LARGE", "Large"),
        ("XLARGE", "X-Large"),
        ("2XLARGE", "2X-Large"),
        ("3XLARGE", "3X-Large"),
        ("4XLARGE", "4X-Large"),
        ("5XLARGE", "5X-Large"),
        ("6XLARGE", "6X-Large"),
    ];
    SIZES
        .iter()
        .find(|(key, _)| last.eq_ignore_ascii_case(key))
        .map_or("X-Small", |(_, size)| size)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_asks_for_its_delay() {
        let d = requested_delay("SELECT 1 /* delay_ms=2000 */");
        assert_eq!(d, Some(Duration::from_millis(2000)));
        assert_eq!(requested_delay("SELECT 1"), None);
        assert_eq!(requested_delay("SELECT 1 /* delay_ms= */"), None);
        assert_eq!(warehouse_size("BENCH_MEDIUM"), "Medium");
        assert_eq!(warehouse_size("wh_2xlarge"), "2X-Large");
        assert_eq!(warehouse_size("WH"), "X-Small");
    }
}
