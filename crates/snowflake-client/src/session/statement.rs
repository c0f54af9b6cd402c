//! Running one statement: submitting it, polling while Snowflake says it still runs, and giving
//! up — aborting it — once the time it may take has passed without an answer.
//!
//! As the official drivers do, a statement is one `query-request` (`asyncExec: false`) that
//! Snowflake holds for up to about 45 s; a statement still running then answers 333333/333334
//! with a `getResultUrl`, which is polled with GETs (each again held for a while) until the
//! result is there. No request waits past the statement's deadline: its timeout plus a margin
//! ([`slack`]) from when it was sent, or the caller's own deadline when that is earlier. When the
//! deadline passes without an answer — Snowflake, or the network in front of it, went silent on
//! an open connection — the statement is aborted (for at most [`ABORT_WAIT`]), the session stays
//! poisoned (the statement may still run) and the error says Snowflake did not answer
//! ([`Error::is_unanswered`]), so the owner retires the session.

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::{lock, Session, ABORT_WAIT};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Envelope, Retry};
use crate::result::{parse_query_data, QueryResult, RESULT_WAIT};

/// Codes of "statement still running; poll the result URL".
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];

/// Options for one statement.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    /// Server-side `STATEMENT_TIMEOUT_IN_SECONDS`; the client also stops waiting (and aborts the
    /// statement) a few seconds after it.
    pub timeout: Option<Duration>,
    /// `QUERY_TAG` recorded by Snowflake in its query history.
    pub query_tag: Option<String>,
    /// The caller's own deadline: no request of this statement (nor of its result's chunks)
    /// waits past it, and the statement is aborted when it passes.
    pub deadline: Option<Instant>,
    /// Submit the statement asynchronously (`asyncExec: true`, as the drivers' `execute_async`
    /// does) and poll for its result. Snowflake then keeps running it if this process goes away
    /// (unless `ABORT_DETACHED_QUERY` is set), so another process can read its result by query
    /// id ([`Session::stored_result`]); a synchronous statement is aborted when its connection
    /// is lost.
    pub detached: bool,
    /// Filled with Snowflake's query id as soon as Snowflake names it (for a detached
    /// statement, at once; otherwise when it reports it still runs, or when it finishes), so a
    /// caller can hand out the id of a statement still running.
    pub query_id: Option<QueryIdCell>,
}

/// Where [`QueryOptions::query_id`] is reported: set once, read from any task.
pub type QueryIdCell = std::sync::Arc<std::sync::OnceLock<String>>;

/// How long past a statement's own timeout we keep waiting for Snowflake to report it: Snowflake
/// enforces the timeout itself (000630), so this only covers the network and its reaction time.
/// A quarter of the timeout, between 2 and 5 s.
pub(crate) fn slack(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_secs(2), Duration::from_secs(5))
}

/// When to stop waiting for a statement sent at `sent`: the earlier of its timeout plus
/// [`slack`] and the caller's deadline; `None` when neither is set.
fn statement_deadline(sent: Instant, options: &QueryOptions) -> Option<Instant> {
    let own = options.timeout.map(|t| sent + t + slack(t));
    match (own, options.deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Session {
    /// Run one statement with default options.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult> {
        self.query_with(sql, &QueryOptions::default()).await
    }

    /// Run one statement and wait for it to finish (polling while Snowflake says it runs), at
    /// most until its deadline (see [`QueryOptions`]).
    pub async fn query_with(&mut self, sql: &str, options: &QueryOptions) -> Result<QueryResult> {
        if self.poisoned {
            return Err(Error::new(
                ErrorKind::SessionExpired,
                "this session was interrupted in the middle of a statement; open a new session",
            ));
        }
        self.check_open()?;
        let request_id = uuid::Uuid::new_v4().to_string();
        *lock(&self.shared.running) = Some(request_id.clone());
        // Stays true if this future is dropped before the statement finished.
        self.poisoned = true;
        let sent = Instant::now();
        let deadline = statement_deadline(sent, options);
        // Without any deadline each request is still bounded (see `http`); polling goes on as
        // long as Snowflake answers that the statement runs.
        let far = sent + Duration::from_secs(365 * 24 * 3600);
        let run = self.run(sql, options, &request_id, deadline.unwrap_or(far));
        let outcome = match tokio::time::timeout_at(deadline.unwrap_or(far), run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::new(ErrorKind::Timeout, "no answer")),
        };
        *lock(&self.shared.running) = None;
        match outcome {
            Err(e) if e.kind() == ErrorKind::Timeout && e.is_unanswered() => {
                // Snowflake went silent, or did not enforce the timeout: stop the statement
                // ourselves, briefly. The session stays poisoned: it may keep running anyway.
                let aborted = self
                    .handle()
                    .abort_request(&request_id, Instant::now() + ABORT_WAIT)
                    .await;
                tracing::debug!(
                    aborted = aborted.is_ok(),
                    "abandoned a statement without an answer"
                );
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "Snowflake did not answer the statement within {:.0} s; it was abandoned{}",
                        sent.elapsed().as_secs_f64(),
                        if aborted.is_ok() { " and aborted" } else { "" }
                    ),
                ))
            }
            outcome => {
                self.poisoned = false;
                outcome
            }
        }
    }

    async fn run(
        &mut self,
        sql: &str,
        options: &QueryOptions,
        request_id: &str,
        deadline: Instant,
    ) -> Result<QueryResult> {
        self.sequence += 1;
        let mut parameters = Map::new();
        if let Some(t) = options.timeout {
            parameters.insert(
                "STATEMENT_TIMEOUT_IN_SECONDS".into(),
                json!(t.as_secs().max(1)),
            );
        }
        if let Some(tag) = &options.query_tag {
            parameters.insert("QUERY_TAG".into(), json!(tag));
        }
        let body = json!({
            "sqlText": sql,
            "asyncExec": options.detached,
            "sequenceId": self.sequence,
            "querySubmissionTime": chrono::Utc::now().timestamp_millis(),
            "isInternal": false,
            "describeOnly": false,
            "parameters": parameters,
        });
        let transport = self.client.transport.clone();
        let url = transport.url("queries/v1/query-request", &[("requestId", request_id)])?;
        let mut env = self
            .with_renewal(deadline, |token| {
                let (transport, url, body) = (&transport, url.clone(), &body);
                async move {
                    transport
                        .post(url, Some(&token), body, Retry::NotSent, deadline)
                        .await
                }
            })
            .await?;
        let mut wait = Duration::from_millis(20);
        report_query_id(&env, options);
        while is_in_progress(&env) {
            let path = env
                .data
                .get("getResultUrl")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::protocol("Snowflake said the statement runs but gave no result URL")
                })?
                .to_string();
            let url = transport.url(&path, &[])?;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
            env = self
                .with_renewal(deadline, |token| {
                    let (transport, url) = (&transport, url.clone());
                    async move { transport.get(url, Some(&token), deadline).await }
                })
                .await?;
        }
        report_query_id(&env, options);
        if !env.success {
            return Err(env.error());
        }
        let data = parse_query_data(env.data)?;
        let reported = |r: &Option<String>| r.as_ref().filter(|r| !r.is_empty()).cloned();
        if let Some(db) = reported(&data.final_database_name) {
            if self.context.database.as_ref() != Some(&db) {
                // A new database: the old schema no longer applies, whatever is reported next.
                self.context.schema = None;
            }
            self.context.database = Some(db);
        }
        for (known, value) in [
            (&mut self.context.schema, reported(&data.final_schema_name)),
            (
                &mut self.context.warehouse,
                reported(&data.final_warehouse_name),
            ),
            (&mut self.context.role, reported(&data.final_role_name)),
        ] {
            if value.is_some() {
                *known = value;
            }
        }
        // Chunks are the caller's to wait for: by its deadline, else a while from now.
        let chunks_by = options
            .deadline
            .unwrap_or_else(|| Instant::now() + RESULT_WAIT);
        QueryResult::from_data(data, transport, chunks_by)
    }
}

fn report_query_id(env: &Envelope, options: &QueryOptions) {
    if let (Some(cell), Some(id)) = (
        &options.query_id,
        env.data.get("queryId").and_then(Value::as_str),
    ) {
        if !id.is_empty() {
            let _ = cell.set(id.to_string());
        }
    }
}

pub(super) fn is_in_progress(env: &Envelope) -> bool {
    env.code
        .as_deref()
        .is_some_and(|c| IN_PROGRESS.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_past_a_timeout_is_a_quarter_between_two_and_five_seconds() {
        let s = Duration::from_secs;
        assert_eq!(slack(s(1)), s(2));
        assert_eq!(slack(s(12)), s(3));
        assert_eq!(slack(s(20)), s(5));
        assert_eq!(slack(s(3600)), s(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_statement_waits_for_the_earlier_of_its_timeout_and_the_callers_deadline() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut o = QueryOptions {
            timeout: Some(s(20)),
            ..Default::default()
        };
        assert_eq!(statement_deadline(now, &o), Some(now + s(25)));
        o.deadline = Some(now + s(10));
        assert_eq!(statement_deadline(now, &o), Some(now + s(10)));
        o.timeout = None;
        assert_eq!(statement_deadline(now, &o), Some(now + s(10)));
        o.deadline = None;
        assert_eq!(statement_deadline(now, &o), None);
    }
}
