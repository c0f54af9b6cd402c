//! Errors: what went wrong, sorted into kinds a caller can act on.
//!
//! Snowflake answers failures with a six-digit `code`, often a five-character ANSI `sqlState`,
//! and a message. We keep all three (plus the query id when there is one) and sort the failure
//! into an [`ErrorKind`], so a caller can decide what to do — retry, log in again, show the SQL
//! error to a person — without parsing messages. Secrets never reach an error: messages are built
//! from Snowflake's answers and our own words, never from the settings.

use std::fmt;

/// What kind of failure this is; the part of an error a program branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The settings are incomplete or contradictory, or a key file cannot be read.
    Config,
    /// Snowflake refused the credentials (wrong password, bad key, unknown user, invalid token).
    Authentication,
    /// The statement failed: syntax, missing object, missing privilege, no warehouse, ...
    Sql,
    /// The session token expired or the session is gone and could not be renewed.
    SessionExpired,
    /// The server could not be reached or the connection broke (DNS, refused, reset, TLS).
    Network,
    /// The server answered something this client does not understand (bad HTTP status, bad JSON,
    /// undecodable Arrow), or Snowflake reported an internal error.
    Protocol,
    /// The statement was cancelled (by [`crate::AbortHandle::abort`] or by Snowflake).
    Cancelled,
    /// The statement, or waiting for it, took longer than allowed.
    Timeout,
}

impl ErrorKind {
    /// A short stable name, e.g. for metrics labels and structured tool errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Sql => "sql",
            ErrorKind::SessionExpired => "session_expired",
            ErrorKind::Network => "network",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timeout",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from the Snowflake client. Cheap to clone; carries Snowflake's own details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    code: Option<String>,
    sql_state: Option<String>,
    query_id: Option<String>,
    /// The HTTP status of a REST API (`/api/v2/...`) refusal.
    http_status: Option<u16>,
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Snowflake codes that mean "this session token is no longer good".
pub(crate) const SESSION_TOKEN_EXPIRED: &str = "390112";
pub(crate) const MASTER_TOKEN_EXPIRED: &str = "390114";
pub(crate) const SESSION_GONE: [&str; 3] = ["390104", "390111", "390113"];

impl Error {
    /// An error of `kind` with a message in plain words.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            code: None,
            sql_state: None,
            query_id: None,
            http_status: None,
        }
    }

    /// Attach the HTTP status a REST API answered with.
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Attach the code Snowflake gave.
    pub(crate) fn with_code(mut self, code: String) -> Self {
        self.code = Some(code);
        self
    }

    /// The HTTP status of a refused REST API (`/api/v2/...`) call.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// An error as Snowflake reported it: sorted into a kind by its code and SQL state.
    pub fn from_snowflake(
        code: Option<String>,
        sql_state: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let code = code.filter(|c| !c.is_empty());
        let sql_state = sql_state.filter(|s| !s.is_empty());
        let kind = classify(code.as_deref(), sql_state.as_deref());
        let mut message: String = message.into();
        if message.trim().is_empty() {
            message = format!(
                "Snowflake reported error {}",
                code.as_deref().unwrap_or("without a code")
            );
        }
        Error {
            kind,
            message,
            code,
            sql_state,
            query_id: None,
            http_status: None,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Protocol, message)
    }

    /// Attach the query id of the statement that failed.
    pub fn with_query_id(mut self, query_id: Option<String>) -> Self {
        if query_id.as_deref().is_some_and(|q| !q.is_empty()) {
            self.query_id = query_id;
        }
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, in plain words (Snowflake's own message for SQL errors).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Snowflake's six-digit error code, e.g. `002003` (object does not exist).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The ANSI SQL state, e.g. `42S02`.
    pub fn sql_state(&self) -> Option<&str> {
        self.sql_state.as_deref()
    }

    /// The id of the query that failed, when Snowflake gave one.
    pub fn query_id(&self) -> Option<&str> {
        self.query_id.as_deref()
    }

    /// True when repeating the same request later may succeed (network trouble, busy server).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Network)
    }

    /// True when Snowflake itself said nothing: the network failed, or no answer came before
    /// the deadline. (A statement that Snowflake stopped at its own timeout, 000630, has a code:
    /// Snowflake answered.) A session this happened to cannot be trusted with another statement.
    pub fn is_unanswered(&self) -> bool {
        matches!(self.kind, ErrorKind::Network | ErrorKind::Timeout) && self.code.is_none()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (&self.code, &self.sql_state) {
            (Some(code), Some(state)) => write!(f, " (code {code}, SQL state {state})")?,
            (Some(code), None) => write!(f, " (code {code})")?,
            (None, Some(state)) => write!(f, " (SQL state {state})")?,
            (None, None) => {}
        }
        if let Some(id) = &self.query_id {
            write!(f, " [query id {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Sort a Snowflake failure by its code (and SQL state where the code is not telling).
fn classify(code: Option<&str>, sql_state: Option<&str>) -> ErrorKind {
    match code {
        Some(SESSION_TOKEN_EXPIRED | MASTER_TOKEN_EXPIRED) => ErrorKind::SessionExpired,
        Some(c) if SESSION_GONE.contains(&c) => ErrorKind::SessionExpired,
        // 000604: "SQL execution canceled"; 000605: "Identified SQL statement is not currently
        // executing" (abort of a finished statement).
        Some("000604") => ErrorKind::Cancelled,
        // 000630: statement reached its STATEMENT_TIMEOUT_IN_SECONDS.
        Some("000630") => ErrorKind::Timeout,
        // 390xxx are the login and session family: wrong password (390100), user locked (390102),
        // JWT invalid (390144), OAuth token invalid (390303/390318), ...
        Some(c) if c.starts_with("390") => ErrorKind::Authentication,
        // 25xxxx and 26xxxx: the service itself failed (e.g. 261000 internal error).
        Some(c) if c.starts_with("25") || c.starts_with("26") => ErrorKind::Protocol,
        Some(_) => ErrorKind::Sql,
        None if sql_state.is_some() => ErrorKind::Sql,
        None => ErrorKind::Protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str, state: Option<&str>) -> ErrorKind {
        Error::from_snowflake(Some(code.into()), state.map(Into::into), "m").kind()
    }

    #[test]
    fn codes_sort_into_kinds() {
        assert_eq!(kind("390112", None), ErrorKind::SessionExpired);
        assert_eq!(kind("390114", None), ErrorKind::SessionExpired);
        assert_eq!(kind("390104", None), ErrorKind::SessionExpired);
        assert_eq!(kind("390100", Some("08004")), ErrorKind::Authentication);
        assert_eq!(kind("390144", None), ErrorKind::Authentication);
        assert_eq!(kind("002003", Some("42S02")), ErrorKind::Sql);
        assert_eq!(kind("001003", Some("42000")), ErrorKind::Sql);
        assert_eq!(kind("000604", Some("57014")), ErrorKind::Cancelled);
        assert_eq!(kind("000630", Some("57014")), ErrorKind::Timeout);
        assert_eq!(kind("261000", None), ErrorKind::Protocol);
        assert_eq!(
            Error::from_snowflake(None, Some("42000".into()), "x").kind(),
            ErrorKind::Sql
        );
        assert_eq!(
            Error::from_snowflake(None, None, "x").kind(),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn display_keeps_code_state_and_query_id() {
        let e = Error::from_snowflake(
            Some("002003".into()),
            Some("42S02".into()),
            "Table 'T' does not exist",
        )
        .with_query_id(Some("01b2-abc".into()));
        assert_eq!(e.code(), Some("002003"));
        assert_eq!(e.sql_state(), Some("42S02"));
        assert_eq!(e.query_id(), Some("01b2-abc"));
        assert_eq!(
            e.to_string(),
            "Table 'T' does not exist (code 002003, SQL state 42S02) [query id 01b2-abc]"
        );
    }

    #[test]
    fn empty_message_and_empty_fields_are_filled_or_dropped() {
        let e = Error::from_snowflake(Some("000123".into()), Some(String::new()), " ")
            .with_query_id(Some(String::new()));
        assert_eq!(e.sql_state(), None);
        assert_eq!(e.query_id(), None);
        assert!(e.message().contains("000123"));
    }
}
