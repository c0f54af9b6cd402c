//! A counting proxy in front of a Snowflake-protocol server.
//!
//! It forwards every request unchanged and watches the protocol: logins and closes (so a test
//! can check the peak number of open Snowflake sessions), and statements per session token (so
//! a test can check that no two statements ever ran on one session at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

/// What crossed the proxy.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub logins: AtomicUsize,
    pub closes: AtomicUsize,
    pub open: AtomicUsize,
    pub peak_open: AtomicUsize,
    pub statements: AtomicUsize,
    /// Statements that started while another ran on the same session token.
    pub overlaps: AtomicUsize,
    pub aborts: AtomicUsize,
    running: Mutex<HashMap<String, usize>>,
    /// Successful logins: (AUTHENTICATOR, TOKEN sent if any, session token returned).
    pub login_records: Mutex<Vec<(String, Option<String>, String)>>,
    /// Every statement: (session token, SQL text), in order.
    pub statement_tokens: Mutex<Vec<(String, String)>>,
}

/// The session token inside `Authorization: Snowflake Token="..."`.
/// The JSON of a (possibly gzip-compressed) request body.
fn body_json(body: &[u8]) -> serde_json::Value {
    let mut text = String::new();
    let mut gz = flate2::read::GzDecoder::new(body);
    if std::io::Read::read_to_string(&mut gz, &mut text).is_err() {
        text = String::from_utf8_lossy(body).into_owned();
    }
    serde_json::from_str(&text).unwrap_or_default()
}

fn session_token(header: &str) -> String {
    header
        .split("Token=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .unwrap_or(header)
        .to_string()
}

/// A running proxy on a loopback port; stops when dropped.
pub struct Proxy {
    pub port: u16,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Forward to `http://127.0.0.1:<upstream_port>`.
    pub async fn start(upstream_port: u16) -> Proxy {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_gzip()
            .build()
            .expect("HTTP client");
        let stats = Arc::new(ProxyStats::default());
        let s = stats.clone();
        let app =
            axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let (http, stats) = (http.clone(), s.clone());
                    async move {
                        forward(&http, &stats, upstream_port, method, uri, headers, body).await
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Proxy { port, stats, task }
    }
}

async fn forward(
    http: &reqwest::Client,
    stats: &ProxyStats,
    upstream: u16,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let is_statement = path == "/queries/v1/query-request";
    if is_statement {
        let sql = body_json(&body)["sqlText"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        stats
            .statement_tokens
            .lock()
            .unwrap()
            .push((session_token(&token), sql));
        stats.statements.fetch_add(1, Ordering::SeqCst);
        let mut running = stats.running.lock().unwrap();
        let n = running.entry(token.clone()).or_default();
        if *n > 0 {
            stats.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        *n += 1;
    }
    if path == "/queries/v1/abort-request" {
        stats.aborts.fetch_add(1, Ordering::SeqCst);
    }
    let login = (path == "/session/v1/login-request").then(|| {
        let v = body_json(&body);
        (
            v["data"]["AUTHENTICATOR"]
                .as_str()
                .unwrap_or("SNOWFLAKE")
                .to_string(),
            v["data"]["TOKEN"].as_str().map(str::to_string),
        )
    });
    let url = format!(
        "http://127.0.0.1:{upstream}{}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut request = http.request(method, url).body(body);
    for (k, v) in headers.iter() {
        if k != "host" && k != "content-length" {
            request = request.header(k, v);
        }
    }
    let outcome = request.send().await;
    if is_statement {
        let mut running = stats.running.lock().unwrap();
        if let Some(n) = running.get_mut(&token) {
            *n -= 1;
        }
    }
    let response = match outcome {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(e.to_string()))
                .unwrap()
        }
    };
    let status = response.status();
    let content_type = response.headers().get("content-type").cloned();
    let bytes = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        let answer = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default();
        let ok = answer["success"] == true;
        if let (true, Some((authenticator, sent))) = (ok, login) {
            let returned = answer["data"]["token"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            stats
                .login_records
                .lock()
                .unwrap()
                .push((authenticator, sent, returned));
        }
        if ok && path == "/session/v1/login-request" {
            stats.logins.fetch_add(1, Ordering::SeqCst);
            let open = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
            stats.peak_open.fetch_max(open, Ordering::SeqCst);
        }
        if ok && path == "/session" && uri.query().unwrap_or_default().contains("delete=true") {
            stats.closes.fetch_add(1, Ordering::SeqCst);
            stats.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let mut builder = Response::builder().status(status.as_u16());
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Body::from(bytes)).unwrap()
}
