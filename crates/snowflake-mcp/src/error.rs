//! Tool errors: what a refused or failed tool call tells the model.
//!
//! Every failure becomes a tool result with `isError: true`, a text whose first word is the
//! kind and which says what to do next (`rate_limited: retry in 1.2 s ...`), and the
//! machine-readable part in the result's `_meta.error`: `{kind, message, retry_after_ms?, code?,
//! sql_state?, query_id?}`. There is deliberately **no `structuredContent`**: the TypeScript SDK
//! (inside most MCP clients) validates any `structuredContent` against the tool's
//! `outputSchema`, errors included, and would replace our message with a schema complaint.
//! Kinds are stable strings a client can branch on. Snowflake errors keep their code, SQL state
//! and query id; nothing from another client's request ever lands here.

use rmcp::model::{CallToolResult, ContentBlock, MetaObject};
use serde_json::{json, Map};
use snowflake_client::{Error as SnowflakeError, ErrorKind};

/// A tool failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolError {
    pub kind: &'static str,
    pub message: String,
    pub retry_after_ms: Option<u64>,
    /// Snowflake's own identification of the failure, when it came from Snowflake (boxed to
    /// keep the error small on the happy path).
    pub snowflake: Option<Box<SnowflakeDetails>>,
    /// More machine-readable fields for `_meta.error` (e.g. a `confirmation_required`'s
    /// `confirm` token and what a person is shown, `prompt`).
    pub extra: Option<Box<Map<String, serde_json::Value>>>,
}

/// Snowflake's code, SQL state and query id of a failed statement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnowflakeDetails {
    pub code: Option<String>,
    pub sql_state: Option<String>,
    pub query_id: Option<String>,
}

impl ToolError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ToolError {
            kind,
            message: message.into(),
            retry_after_ms: None,
            snowflake: None,
            extra: None,
        }
    }

    /// Add a field to `_meta.error`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra
            .get_or_insert_with(Box::default)
            .insert(key.into(), value.into());
        self
    }

    /// A bad argument: the model should fix the call.
    pub fn invalid(message: impl Into<String>) -> Self {
        ToolError::new("invalid_argument", message)
    }

    /// A statement the read-only guard refused.
    pub fn refused(message: impl Into<String>) -> Self {
        ToolError::new("not_allowed", message)
    }

    /// Something that should not happen; the message is still safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        ToolError::new("internal", message)
    }

    /// The machine-readable error: `{kind, message, retry_after_ms?, code?, sql_state?,
    /// query_id?}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = Map::new();
        error.insert("kind".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        if let Some(ms) = self.retry_after_ms {
            error.insert("retry_after_ms".into(), json!(ms));
        }
        if let Some(details) = &self.snowflake {
            for (key, value) in [
                ("code", &details.code),
                ("sql_state", &details.sql_state),
                ("query_id", &details.query_id),
            ] {
                if let Some(v) = value {
                    error.insert(key.into(), json!(v));
                }
            }
        }
        for (key, value) in self.extra.iter().flat_map(|e| e.iter()) {
            error.entry(key.clone()).or_insert_with(|| value.clone());
        }
        serde_json::Value::Object(error)
    }

    /// The text the model reads: the kind first, then the message, then when to retry.
    pub fn text(&self) -> String {
        match self.retry_after_ms {
            Some(ms) if !self.message.contains("retry in") => format!(
                "{}: {} (retry in {:.1} s)",
                self.kind,
                self.message,
                ms as f64 / 1000.0
            ),
            _ => format!("{}: {}", self.kind, self.message),
        }
    }

    /// The tool result for this error: `isError`, the text, `_meta.error`; no structured content.
    pub fn into_result(self) -> CallToolResult {
        let mut result = CallToolResult::error(vec![ContentBlock::text(self.text())]);
        let mut meta = Map::new();
        meta.insert("error".into(), self.to_json());
        result.meta = Some(MetaObject(meta));
        result
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl From<SnowflakeError> for ToolError {
    fn from(e: SnowflakeError) -> Self {
        let (kind, next) = match e.kind() {
            // No answer at all, not Snowflake's own timeout (000630): narrowing will not help.
            ErrorKind::Timeout if e.is_unanswered() => (
                "unavailable",
                "Snowflake stopped answering; the server retired that session and recovers by itself — try again shortly.",
            ),
            ErrorKind::Sql => (
                "sql_error",
                "Fix the SQL and try again (describe_object shows column names and types).",
            ),
            ErrorKind::Timeout => (
                "timeout",
                "Narrow the query (filters, fewer columns, LIMIT) and try again.",
            ),
            ErrorKind::Cancelled => ("cancelled", "The statement was cancelled."),
            ErrorKind::Network | ErrorKind::SessionExpired => (
                "unavailable",
                "Snowflake could not be reached; try again shortly.",
            ),
            ErrorKind::Authentication | ErrorKind::Config => (
                "unavailable",
                "The server cannot log in to Snowflake; an operator must fix its settings.",
            ),
            _ => ("backend_error", "Try again; if it persists, report it."),
        };
        let retry_after_ms = (kind == "unavailable").then_some(2_000);
        ToolError {
            kind,
            message: format!("{} {next}", e.message()),
            retry_after_ms,
            extra: None,
            snowflake: Some(Box::new(SnowflakeDetails {
                code: e.code().map(str::to_string),
                sql_state: e.sql_state().map(str::to_string),
                query_id: e.query_id().map(str::to_string),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snowflake_sql_errors_keep_code_state_and_query_id() {
        let e = SnowflakeError::from_snowflake(
            Some("002003".into()),
            Some("42S02".into()),
            "Table 'X' does not exist",
        )
        .with_query_id(Some("q1".into()));
        let t = ToolError::from(e);
        assert_eq!(t.kind, "sql_error");
        let r = t.into_result();
        assert_eq!(r.is_error, Some(true));
        assert!(
            r.structured_content.is_none(),
            "errors carry no structuredContent"
        );
        let text = r.content[0].as_text().unwrap().text.clone();
        assert!(
            text.starts_with("sql_error: Table 'X' does not exist"),
            "{text}"
        );
        let s = r.meta.unwrap().0["error"].clone();
        assert_eq!(s["kind"], "sql_error");
        assert_eq!(s["code"], "002003");
        assert_eq!(s["sql_state"], "42S02");
        assert_eq!(s["query_id"], "q1");
        assert!(s["message"].as_str().unwrap().contains("Fix the SQL"));
    }

    #[test]
    fn network_errors_carry_a_retry_hint() {
        let e = SnowflakeError::new(ErrorKind::Network, "connection refused");
        let r = ToolError::from(e).into_result();
        let text = r.content[0].as_text().unwrap().text.clone();
        assert!(
            text.starts_with("unavailable: ") && text.ends_with("(retry in 2.0 s)"),
            "{text}"
        );
        let s = r.meta.unwrap().0["error"].clone();
        assert_eq!(s["kind"], "unavailable");
        assert_eq!(s["retry_after_ms"], 2000);
    }
}
