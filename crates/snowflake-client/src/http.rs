//! The HTTP layer: one request to Snowflake, its envelope, and retries where they are safe.
//!
//! Every REST answer is an envelope `{"success": bool, "code": "...", "message": "...",
//! "data": {...}}`; a failure keeps its code, and SQL failures carry `data.sqlState` and
//! `data.queryId`. Request bodies are JSON, gzip-compressed (`Content-Encoding: gzip`), and
//! authorised with `Authorization: Snowflake Token="<session token>"`.
//!
//! Every request has a deadline: the time its caller may still spend (a statement's timeout plus
//! a margin, a few seconds for a heartbeat or a logout). One attempt waits at most until the
//! deadline and never longer than [`MAX_REQUEST`] (Snowflake holds a statement's request for
//! about 45 s, then answers "still running" to be polled), so a network that goes silent under
//! an open connection costs what the call had left, not minutes.
//!
//! Retries (exponential backoff with jitter, a few attempts) depend on what repeating means:
//! [`Retry::Always`] for requests that change nothing or are idempotent (heartbeat, result
//! polling, chunk downloads, token renewal, abort, close, login), [`Retry::NotSent`] for
//! statements — repeated only when the request cannot have reached Snowflake (the connection
//! was refused) or Snowflake refused it before starting (HTTP 429 or 503).

use std::time::Duration;

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT,
};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::gzip::gzip;
use crate::settings::Secret;

/// How a request may be repeated after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating is harmless.
    Always,
    /// Repeat only if the request surely did not start anything.
    NotSent,
}

const MAX_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Snowflake answers "still running" (333333/333334) after about 45 s, so one request never
/// needs more than this.
pub(crate) const MAX_REQUEST: Duration = Duration::from_secs(60);

/// The answer envelope of every REST call.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl Envelope {
    /// The error this envelope reports (when `success` is false).
    pub fn error(&self) -> Error {
        let data = |key: &str| {
            self.data
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let code = self.code.clone().or_else(|| data("errorCode"));
        Error::from_snowflake(
            code,
            data("sqlState"),
            self.message.clone().unwrap_or_default(),
        )
        .with_query_id(data("queryId"))
    }
}

/// An HTTP client bound to one Snowflake endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
}

impl Transport {
    pub fn new(base: Url) -> Result<Self> {
        // reqwest is built without a default crypto provider; install ring's once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Transport { http, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `path` (with query) resolved against the endpoint.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| Error::protocol(format!("bad URL path '{path}': {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// POST a JSON body and read the envelope, giving up at `deadline`.
    pub async fn post(
        &self,
        url: Url,
        token: Option<&Secret>,
        body: &Value,
        retry: Retry,
        deadline: Instant,
    ) -> Result<Envelope> {
        // `to_vec`, not `to_string`: `Display` goes through the formatting machinery, which
        // was most of this request's own cost in a profile.
        let json = serde_json::to_vec(body)
            .map_err(|e| Error::protocol(format!("cannot encode a request: {e}")))?;
        let compressed = gzip(&json)?;
        self.send(retry, deadline, |wait| {
            self.http
                .post(url.clone())
                .timeout(wait)
                .headers(headers(token))
                .header(CONTENT_ENCODING, "gzip")
                .body(compressed.clone())
        })
        .await
    }

    /// GET an envelope (result polling), giving up at `deadline`.
    pub async fn get(
        &self,
        url: Url,
        token: Option<&Secret>,
        deadline: Instant,
    ) -> Result<Envelope> {
        self.send(Retry::Always, deadline, |wait| {
            self.http
                .get(url.clone())
                .timeout(wait)
                .headers(headers(token))
        })
        .await
    }

    /// GET raw bytes from a result-chunk URL (cloud storage, not Snowflake itself).
    pub async fn get_bytes(
        &self,
        url: &str,
        extra: &HeaderMap,
        deadline: Instant,
    ) -> Result<Vec<u8>> {
        let url =
            Url::parse(url).map_err(|e| Error::protocol(format!("bad result chunk URL: {e}")))?;
        let url = &url;
        with_retries(deadline, |wait| async move {
            let err = match self
                .http
                .get(url.clone())
                .timeout(wait)
                .headers(extra.clone())
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                    Ok(bytes) => return Ok(bytes.to_vec()),
                    Err(e) => network_error(&e),
                },
                Ok(resp) => status_error(resp.status(), "downloading a result chunk"),
                Err(e) => network_error(&e),
            };
            let transient = err.is_transient();
            Err((err, transient))
        })
        .await
    }

    /// POST a JSON body to a REST API (`/api/v2/...`) and hand back the response once its
    /// status is a success, for the caller to read (JSON or an event stream). Repeated only when
    /// it cannot have started anything: the connection was refused, or 429 / 503. A refusal
    /// keeps its HTTP status and Snowflake's `code`, `message` and `request_id`.
    pub async fn post_api(
        &self,
        url: Url,
        token: &Secret,
        body: &Value,
        deadline: Instant,
    ) -> Result<reqwest::Response> {
        let body = body.to_string();
        let mut sent = headers(Some(token));
        sent.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        // Not `with_retries`: its one-minute cap per attempt would cut off a Cortex answer that
        // takes longer (agents run for minutes); the caller's deadline bounds the whole call,
        // body included.
        let mut tries = 0;
        loop {
            tries += 1;
            let request = self
                .http
                .post(url.clone())
                .headers(sent.clone())
                .body(body.clone())
                .send();
            let failure = match tokio::time::timeout_at(deadline, request).await {
                Err(_) => return Err(out_of_time()),
                Ok(Err(e)) => (network_error(&e), e.is_connect()),
                Ok(Ok(resp)) if resp.status().is_success() => return Ok(resp),
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let again = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    );
                    let bytes = tokio::time::timeout_at(deadline, resp.bytes())
                        .await
                        .ok()
                        .and_then(|b| b.ok())
                        .unwrap_or_default();
                    (api_error(status, &bytes), again)
                }
            };
            let pause = backoff(tries);
            if !failure.1 || tries >= MAX_ATTEMPTS || Instant::now() + pause >= deadline {
                return Err(failure.0);
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn send(
        &self,
        retry: Retry,
        deadline: Instant,
        build: impl Fn(Duration) -> reqwest::RequestBuilder,
    ) -> Result<Envelope> {
        let build = &build;
        with_retries(deadline, |wait| async move {
            let resp = match build(wait).send().await {
                Ok(resp) => resp,
                Err(e) => {
                    let not_sent = e.is_connect();
                    return Err((network_error(&e), retry == Retry::Always || not_sent));
                }
            };
            let status = resp.status();
            let refused_before_start = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            let transient = refused_before_start
                || matches!(
                    status,
                    StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
                );
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| (network_error(&e), retry == Retry::Always))?;
            // Snowflake (and emulators) put a JSON envelope on many error statuses too; when
            // there is one it says more than the status does.
            match serde_json::from_slice::<Envelope>(&bytes) {
                Ok(env)
                    if status.is_success()
                        || !env.success && (env.code.is_some() || env.message.is_some()) =>
                {
                    Ok(env)
                }
                _ if status.is_success() => Err((
                    Error::protocol(format!(
                        "Snowflake answered HTTP {status} with a body that is not a JSON envelope"
                    )),
                    false,
                )),
                _ => Err((
                    status_error(status, "calling Snowflake"),
                    retry == Retry::Always && transient || refused_before_start,
                )),
            }
        })
        .await
    }
}

/// Run `attempt` (given how long it may wait) until it succeeds, says its failure may not be
/// repeated, [`MAX_ATTEMPTS`] are spent or `deadline` passes, with [`backoff`] in between.
async fn with_retries<T, F, Fut>(deadline: Instant, attempt: F) -> Result<T>
where
    F: Fn(Duration) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, (Error, bool)>>,
{
    let mut tries = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(out_of_time());
        }
        tries += 1;
        // reqwest's own timeout, and ours around it in case a connector ignores it.
        let wait = left.min(MAX_REQUEST);
        let outcome = match tokio::time::timeout(wait, attempt(wait)).await {
            Ok(outcome) => outcome,
            Err(_) => Err((out_of_time(), false)),
        };
        match outcome {
            Ok(value) => return Ok(value),
            Err((err, may_repeat)) if may_repeat && tries < MAX_ATTEMPTS => {
                tracing::debug!(attempt = tries, error = %err, "retrying Snowflake request");
                let pause = backoff(tries);
                if Instant::now() + pause >= deadline {
                    return Err(err);
                }
                tokio::time::sleep(pause).await;
            }
            Err((err, _)) => return Err(err),
        }
    }
}

/// Snowflake (or the network in between) did not answer before the deadline.
fn out_of_time() -> Error {
    Error::new(
        ErrorKind::Timeout,
        "Snowflake did not answer in time (HTTP request timed out)",
    )
}

fn headers(token: Option<&Secret>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(ACCEPT, HeaderValue::from_static("application/snowflake"));
    h.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("snowflake-mcp/", env!("CARGO_PKG_VERSION"))),
    );
    if let Some(token) = token {
        if let Ok(mut v) = HeaderValue::from_str(&format!("Snowflake Token=\"{}\"", token.expose()))
        {
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
    }
    h
}

/// 100 ms, 200 ms, 400 ms, ... with up to 50% random jitter so retries do not march in step.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(6));
    let jitter =
        u64::from(uuid::Uuid::new_v4().as_u128() as u16) % (base.as_millis() as u64 / 2 + 1);
    base + Duration::from_millis(jitter)
}

/// A REST API refusal: its status, and Snowflake's `{code, message, request_id}` when the
/// body has them (the documented error shape of the `/api/v2` endpoints).
fn api_error(status: StatusCode, body: &[u8]) -> Error {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
    let mut message = text("message").unwrap_or_else(|| format!("HTTP {status}"));
    if let Some(id) = text("request_id") {
        message.push_str(&format!(" (request id {id})"));
    }
    let kind = match status {
        StatusCode::UNAUTHORIZED => ErrorKind::Authentication,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => ErrorKind::Network,
        _ => ErrorKind::Sql,
    };
    let code = text("code").or_else(|| {
        json.get("code")
            .filter(|c| c.is_number())
            .map(Value::to_string)
    });
    let mut error = Error::new(kind, message).with_http_status(status.as_u16());
    if let Some(code) = code {
        error = error.with_code(code);
    }
    error
}

fn status_error(status: StatusCode, doing: &str) -> Error {
    let kind = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        ErrorKind::Network
    } else {
        ErrorKind::Protocol
    };
    Error::new(kind, format!("HTTP {status} while {doing}"))
}

/// Describe a transport failure in plain words: DNS, refused, timeout, TLS.
pub(crate) fn network_error(e: &reqwest::Error) -> Error {
    let chain = error_chain(e);
    let lower = chain.to_ascii_lowercase();
    let what = if e.is_timeout() {
        return out_of_time();
    } else if lower.contains("dns")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
    {
        "cannot resolve the host name (unknown account or host?)"
    } else if lower.contains("connection refused") {
        "the connection was refused (nothing listens at that host and port)"
    } else if lower.contains("certificate") || lower.contains("tls") {
        "the TLS handshake failed (wrong protocol or an untrusted certificate?)"
    } else {
        "the network request failed"
    };
    Error::new(ErrorKind::Network, format!("{what}: {chain}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_errors_read_code_state_and_query_id() {
        let env: Envelope = serde_json::from_str(
            r#"{"success":false,"code":"002003","message":"Object 'X' does not exist","data":{"sqlState":"42S02","queryId":"q-1"}}"#,
        )
        .unwrap();
        let e = env.error();
        assert_eq!(e.kind(), ErrorKind::Sql);
        assert_eq!(e.code(), Some("002003"));
        assert_eq!(e.sql_state(), Some("42S02"));
        assert_eq!(e.query_id(), Some("q-1"));
        let env: Envelope = serde_json::from_str(
            r#"{"success":false,"message":"m","data":{"errorCode":"390100"}}"#,
        )
        .unwrap();
        assert_eq!(env.error().kind(), ErrorKind::Authentication);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..10 {
            let b = backoff(attempt);
            let base = FIRST_BACKOFF * 2u32.pow((attempt - 1).min(6));
            assert!(
                b >= base && b <= base + base / 2 + Duration::from_millis(1),
                "{attempt}: {b:?}"
            );
        }
    }

    #[test]
    fn token_header_is_sensitive() {
        let h = headers(Some(&Secret::new("abc")));
        assert!(h[AUTHORIZATION].is_sensitive());
        assert!(!format!("{h:?}").contains("abc"));
    }
}
