//! Snowflake's REST API v2 (`/api/v2/...`: Cortex Analyst, Cortex Search, Cortex Agents),
//! called **as a session**.
//!
//! Snowflake documents Bearer tokens for these endpoints (key-pair JWT, OAuth, programmatic
//! access tokens: docs.snowflake.com/en/developer-guide/snowflake-rest-api/authentication).
//! Snowflake's own MCP server calls them with the connector's session token instead,
//! `Authorization: Snowflake Token="<session token>"` (Snowflake-Labs/mcp,
//! `mcp_server_snowflake/server.py` `get_api_headers`), and so does this module: the call then
//! runs as the session's user, role and warehouse — the context a gateway applied for its
//! client, and for a signed-in person their own identity. [`Session::api`] takes `&mut self`,
//! so a session does one thing at a time here too.
//!
//! On HTTP 401 the token is renewed once (master token, else a new login) and the call
//! repeated, as Snowflake-Labs/mcp reconnects once on a 401. A POST is otherwise repeated only
//! when it cannot have started anything (see [`Transport::post_api`]): Cortex calls cost credits.
//!
//! An answer is JSON, or an event stream (`text/event-stream`: Cortex Agents stream by
//! default) handed to the caller event by event as it arrives. Either is bounded by the
//! caller's deadline and by [`MAX_ANSWER_BYTES`].
//!
//! [`Transport::post_api`]: crate::http::Transport::post_api

use serde_json::Value;
use tokio::time::Instant;

use super::Session;
use crate::error::{Error, Result, SESSION_TOKEN_EXPIRED};

/// The most an answer may hold (all events together).
pub(crate) const MAX_ANSWER_BYTES: usize = 32 << 20;

/// One server-sent event: its `event:` name (`message` when none) and its `data:` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiEvent {
    pub event: String,
    pub data: String,
}

impl Session {
    /// POST `body` to `path` (such as `api/v2/cortex/analyst/message`) as this session, by
    /// `deadline`. A JSON answer is returned; an event stream goes to `on_event` as it comes,
    /// and `Value::Null` is returned when it ends.
    pub async fn api(
        &mut self,
        path: &str,
        body: &Value,
        deadline: Instant,
        on_event: &mut (dyn FnMut(ApiEvent) + Send),
    ) -> Result<Value> {
        self.check_open()?;
        let transport = self.client.transport.clone();
        let url = transport.url(path, &[])?;
        let first = transport
            .post_api(url.clone(), &self.shared.session_token(), body, deadline)
            .await;
        let response = match first {
            Err(e) if e.http_status() == Some(401) => {
                self.renew(SESSION_TOKEN_EXPIRED, deadline).await?;
                transport
                    .post_api(url, &self.shared.session_token(), body, deadline)
                    .await?
            }
            other => other?,
        };
        read_answer(response, deadline, on_event).await
    }
}

async fn read_answer(
    mut response: reqwest::Response,
    deadline: Instant,
    on_event: &mut (dyn FnMut(ApiEvent) + Send),
) -> Result<Value> {
    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let mut events = EventParser::default();
    let mut body = Vec::new();
    let mut read = 0usize;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => {
                return Err(Error::new(
                    crate::ErrorKind::Timeout,
                    "Snowflake's answer did not end in time",
                ))
            }
            Ok(Err(e)) => return Err(crate::http::network_error(&e)),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        read += chunk.len();
        if read > MAX_ANSWER_BYTES {
            return Err(Error::protocol(format!(
                "Snowflake's answer is larger than {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        if streamed {
            for event in events.push(&chunk) {
                on_event(event);
            }
        } else {
            body.extend_from_slice(&chunk);
        }
    }
    if streamed {
        if let Some(last) = events.finish() {
            on_event(last);
        }
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::protocol(format!("Snowflake's answer is not JSON: {e}")))
}

/// Splits a `text/event-stream` into events (the WHATWG server-sent events format: fields
/// `event:` and `data:`, events ended by a blank line; comments and other fields ignored).
#[derive(Default)]
pub(crate) struct EventParser {
    pending: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl EventParser {
    /// Take bytes; return the events they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<ApiEvent> {
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                done.extend(self.dispatch());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_string(),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        done
    }

    /// The event left open when the stream ended without a blank line.
    pub(crate) fn finish(&mut self) -> Option<ApiEvent> {
        if !self.pending.is_empty() {
            let mut rest = std::mem::take(&mut self.pending);
            rest.push(b'\n');
            if let Some(e) = self.push(&rest).pop() {
                return Some(e);
            }
        }
        self.dispatch()
    }

    fn dispatch(&mut self) -> Option<ApiEvent> {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return None;
        }
        Some(ApiEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data: std::mem::take(&mut self.data).join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut p = EventParser::default();
        let mut got = p.push(b"event: response.status\r\ndata: {\"status\":");
        assert!(got.is_empty());
        got.extend(p.push(b"\"planning\"}\r\n\r\n: a comment\n\ndata: a\ndata: b\n\n"));
        got.extend(p.push(b"event: done\ndata: [DONE]"));
        got.extend(p.finish());
        assert_eq!(
            got,
            vec![
                ApiEvent {
                    event: "response.status".into(),
                    data: "{\"status\":\"planning\"}".into()
                },
                ApiEvent {
                    event: "message".into(),
                    data: "a\nb".into()
                },
                ApiEvent {
                    event: "done".into(),
                    data: "[DONE]".into()
                },
            ]
        );
    }
}
