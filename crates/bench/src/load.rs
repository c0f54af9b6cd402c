//! The MCP load generator: classes of sessions calling a tool in a closed loop.
//!
//! Each class has a number of MCP sessions (each its own rmcp client over Streamable HTTP),
//! an optional bearer token (so classes can be configured clients with weights), and a number
//! of calls each session keeps in flight. For a fixed duration every session calls `run_query`
//! back to back; the report gives per-class throughput and latency percentiles, per-session
//! completions, and Jain's fairness index across classes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::handler::client::ClientHandler;
use rmcp::model::{CallToolRequestParams, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

/// One class of load.
#[derive(Clone, Debug)]
pub struct Class {
    pub name: String,
    pub sessions: usize,
    pub token: Option<String>,
    pub in_flight: usize,
}

impl std::str::FromStr for Class {
    type Err = String;
    /// `NAME=SESSIONS[xIN_FLIGHT][@TOKEN]`, e.g. `heavy=2x8@tok-heavy`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, rest) = s
            .split_once('=')
            .ok_or("class is NAME=SESSIONS[xIN_FLIGHT][@TOKEN]")?;
        let (counts, token) = match rest.split_once('@') {
            Some((c, t)) => (c, Some(t.to_string())),
            None => (rest, None),
        };
        let (sessions, in_flight) = counts.split_once('x').unwrap_or((counts, "1"));
        Ok(Class {
            name: name.to_string(),
            sessions: sessions
                .parse()
                .map_err(|_| format!("bad session count in {s}"))?,
            token,
            in_flight: in_flight
                .parse()
                .map_err(|_| format!("bad in-flight count in {s}"))?,
        })
    }
}

/// What one class achieved.
pub struct ClassReport {
    pub name: String,
    pub completed: usize,
    pub errors: usize,
    pub latencies: Vec<Duration>,
    pub per_session: Vec<usize>,
    /// The first error's text, if any.
    pub first_error: Option<String>,
    /// Progress notifications all classes' clients heard within the window (the same in
    /// every class's report).
    pub progress_heard: u64,
}

/// Progress notifications heard by every client of this process so far.
static PROGRESS_HEARD: AtomicU64 = AtomicU64::new(0);

/// What the load generator's clients do with what the server sends them: rmcp's defaults,
/// but progress notifications are counted ([`PROGRESS_HEARD`]). rmcp's client asks for
/// progress on every request, as a client showing it would.
#[derive(Clone, Copy, Default)]
pub struct Listener;

impl ClientHandler for Listener {
    async fn on_progress(
        &self,
        _params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        PROGRESS_HEARD.fetch_add(1, Ordering::Relaxed);
    }
}

pub type Client = RunningService<RoleClient, Listener>;

/// Progress notifications heard so far (see [`PROGRESS_HEARD`]).
pub fn progress_heard() -> u64 {
    PROGRESS_HEARD.load(Ordering::Relaxed)
}

pub async fn connect(url: &str, token: Option<&str>) -> Result<Client, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(t) = token {
        config = config.auth_header(t.to_string());
    }
    Listener
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|e| e.to_string())
}

/// Call tool `name` with `args`; the result, errors included (`is_error`).
pub async fn call_tool(
    client: &Client,
    name: &'static str,
    args: serde_json::Value,
) -> Result<rmcp::model::CallToolResult, String> {
    let args = args.as_object().cloned().unwrap_or_default();
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args))
        .await
        .map_err(|e| e.to_string())
}

/// Run `sql`; a refusal or failure is the error's text (its first word is the kind).
pub async fn call(client: &Client, sql: &str) -> Result<(), String> {
    let r = call_tool(client, "run_query", json!({"sql": sql})).await?;
    if r.is_error == Some(true) {
        return Err(text(&r));
    }
    Ok(())
}

/// The text of a tool result's first content block.
pub fn text(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// Run every class for `duration` after a short warm-up of `warmup`.
pub async fn run(
    url: &str,
    classes: &[Class],
    duration: Duration,
    warmup: Duration,
) -> Result<Vec<ClassReport>, String> {
    // Connect everything first, so connecting is not measured.
    let mut sessions = Vec::new();
    for (ci, class) in classes.iter().enumerate() {
        for _ in 0..class.sessions {
            sessions.push((ci, Arc::new(connect(url, class.token.as_deref()).await?)));
        }
    }
    let start = Instant::now() + warmup;
    let end = start + duration;
    let heard = tokio::spawn(async move {
        tokio::time::sleep_until(start.into()).await;
        let before = progress_heard();
        tokio::time::sleep_until(end.into()).await;
        progress_heard() - before
    });
    let mut tasks = Vec::new();
    for (si, (ci, client)) in sessions.iter().enumerate() {
        for _ in 0..classes[*ci].in_flight {
            let client = client.clone();
            let (ci, si) = (*ci, si);
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut errors, mut first_error) = (0, None);
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let outcome = call(&client, "SELECT 1").await;
                    let t1 = Instant::now();
                    // Count by completion time, so slow calls straddling the window edge are not lost.
                    if t1 >= start && t1 <= end {
                        match outcome {
                            Ok(()) => latencies.push(t1 - t0),
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                }
                (ci, si, latencies, errors, first_error)
            }));
        }
    }
    let mut reports: Vec<ClassReport> = classes
        .iter()
        .map(|c| ClassReport {
            name: c.name.clone(),
            completed: 0,
            errors: 0,
            latencies: Vec::new(),
            per_session: Vec::new(),
            first_error: None,
            progress_heard: 0,
        })
        .collect();
    let mut per_session = vec![0usize; sessions.len()];
    for t in tasks {
        let (ci, si, latencies, errors, first_error) = t.await.map_err(|e| e.to_string())?;
        reports[ci].first_error = reports[ci].first_error.take().or(first_error);
        reports[ci].completed += latencies.len();
        reports[ci].errors += errors;
        per_session[si] += latencies.len();
        reports[ci].latencies.extend(latencies);
    }
    for (si, (ci, _)) in sessions.iter().enumerate() {
        reports[*ci].per_session.push(per_session[si]);
    }
    let heard = heard.await.map_err(|e| e.to_string())?;
    for report in &mut reports {
        report.progress_heard = heard;
    }
    for (_, client) in sessions {
        if let Ok(c) = Arc::try_unwrap(client) {
            let _ = c.cancel().await;
        }
    }
    Ok(reports)
}

/// `l` in ascending order, for [`percentile_ms`].
pub fn sorted(mut l: Vec<Duration>) -> Vec<Duration> {
    l.sort();
    l
}

/// Per class: name, calls per second over `seconds`, p50, p95 and p99 in ms, errors.
pub fn summarize(
    reports: &[ClassReport],
    seconds: f64,
) -> Vec<(String, f64, f64, f64, f64, usize)> {
    reports
        .iter()
        .map(|r| {
            let l = sorted(r.latencies.clone());
            (
                r.name.clone(),
                r.completed as f64 / seconds,
                percentile_ms(&l, 0.5),
                percentile_ms(&l, 0.95),
                percentile_ms(&l, 0.99),
                r.errors,
            )
        })
        .collect()
}

/// The `q`-quantile of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    quantile(sorted, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// The value at quantile `q` (0–1) of `sorted`, by nearest rank; `None` when it is empty.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((last as f64) * q).round() as usize])
}

/// Jain's fairness index of `x`: 1.0 when all are equal, 1/n when one takes everything.
pub fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (x.len() as f64 * squares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_index_and_percentiles() {
        assert!((jain(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-9);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-9);
        let l: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&l, 0.5).round(), 51.0);
        assert_eq!(percentile_ms(&l, 0.99).round(), 99.0);
        let c: Class = "heavy=2x8@tok".parse().unwrap();
        assert_eq!(
            (c.sessions, c.in_flight, c.token.as_deref()),
            (2, 8, Some("tok"))
        );
    }
}
