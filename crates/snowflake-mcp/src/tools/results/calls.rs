//! The calls that use result handles: `run_query` within its bound, `get_result`,
//! `fetch_rows` and `cancel_query`.
//!
//! A page read from a kept result is admitted like a query (its rows and bytes reserved and
//! charged; the query itself given back) and scheduled like one, under the caller's share.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::JsonObject;
use serde_json::json;

use super::job::{name_the_result, Answer, Job};
use super::{new_id, Record, Status};
use crate::backend::{QueryLimits, StoredPage};
use crate::error::ToolError;
use crate::observe::{attribution, progress};
use crate::state::{Amounts, Cost};
use crate::tools::arguments::{parse, CancelQuery, FetchRows, GetResult, RunQuery};
use crate::tools::{success, Caller, Outcome, Tools};

/// The longest a call may be asked to wait: clients' own timeouts are shorter.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How often a statement running elsewhere is asked about while a call waits for it.
const POLL: Duration = Duration::from_millis(500);

/// The wait a call asked for (`wait_secs`), else `default_secs`, within [`MAX_WAIT`].
fn wait_bound(asked: Option<f64>, default_secs: u64) -> Result<Duration, ToolError> {
    match asked {
        Some(s) if s.is_nan() || s < 0.0 => Err(ToolError::invalid("wait_secs must be 0 or more")),
        Some(s) => Ok(Duration::from_secs_f64(s.min(MAX_WAIT.as_secs_f64()))),
        None => Ok(Duration::from_secs(default_secs).min(MAX_WAIT)),
    }
}

/// Stops a job whose call went away before answering: nobody else knows its handle.
struct StopUnlessAnswered(Option<Arc<Job>>);

impl Drop for StopUnlessAnswered {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            job.cancel();
        }
    }
}

fn outcome(answer: Answer) -> Result<Outcome, ToolError> {
    answer.map(|(result, returned)| Outcome {
        result,
        new_context: None,
        returned,
    })
}

/// The answer for a statement still running.
fn running(result_id: &str, query_id: Option<String>, elapsed_ms: u64) -> Outcome {
    let mut structured =
        json!({"status": "running", "result_id": result_id, "elapsed_ms": elapsed_ms});
    let named = match &query_id {
        Some(q) => {
            structured["query_id"] = json!(q);
            format!(" (query id {q})")
        }
        None => String::new(),
    };
    let text = format!(
        "running: the statement is still running after {:.1} s{named}. Call get_result with result_id \"{result_id}\" (wait_secs up to 60) for its answer, or cancel_query to stop it.",
        elapsed_ms as f64 / 1000.0
    );
    Outcome::plain(success(structured, text))
}

fn stored_error(record: &Record) -> ToolError {
    let (kind, message) = record
        .error
        .clone()
        .unwrap_or_else(|| ("cancelled".into(), "the query was stopped".into()));
    let kind = match kind.as_str() {
        "cancelled" => "cancelled",
        "timeout" => "timeout",
        "sql_error" => "sql_error",
        _ => "unavailable",
    };
    ToolError::new(kind, message)
}

impl Tools {
    /// `run_query`: start the statement as a job and wait for it within the call's bound;
    /// past it, answer with its handle and leave it running.
    pub(in crate::tools) async fn run_query_within(
        self: &Arc<Self>,
        args: JsonObject,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let a: RunQuery = parse(args.clone())?;
        let wait = wait_bound(a.wait_secs, self.limits.answer_within_secs)?;
        let job = Job::new(
            new_id(),
            caller.client.id.clone(),
            a.sql.clone(),
            caller.context.clone(),
        );
        self.results.remember(&job);
        let (tools, who, task) = (self.clone(), caller.clone(), job.clone());
        let (client, tag) = attribution::fork();
        // Boxed where they are made: a future is copied whole each time it is moved (into a
        // task-local scope, into the task, into the future that awaits it), so the statement
        // path goes on the heap once and only pointers move (`memmove` under spawn and the
        // scopes was ~2 % of the server's CPU in perf at load; BENCHMARKS.md).
        let work = progress::forked(
            progress::fork(),
            Box::pin(async move {
                let answer = Box::pin(async {
                    let outcome = tools.call_now("run_query", args, &who).await;
                    outcome.map(|o| (o.result, o.returned))
                });
                task.run(&tools.results, answer).await;
            }),
        );
        // A task of its own even when the statement ends at once: running it inside the call's
        // task (to save the spawn) nests the whole statement path under rmcp's request futures,
        // and the demo engine's planner then overflowed a worker's stack (tried 2026-12-03).
        tokio::spawn(attribution::scope(client, tag, work));

        let mut stop = StopUnlessAnswered(Some(job.clone()));
        let finished = job.wait(wait).await || job.detach().await;
        stop.0 = None;
        if !finished {
            return Ok(running(&job.id, job.query_id(), job.elapsed_ms()));
        }
        let answer = job
            .answer()
            .unwrap_or_else(|| Err(ToolError::internal("no answer")));
        let named = matches!(&answer, Ok((r, _)) if r.structured_content.as_ref().is_some_and(|s| s.get("result_id").is_some()));
        if !named {
            // Nobody holds its handle: nothing to keep.
            self.results.forget(&job);
        }
        outcome(answer)
    }

    /// `get_result`: the statement's status, or its first page once it ended.
    pub(in crate::tools) async fn get_result(
        &self,
        a: GetResult,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let wait = wait_bound(a.wait_secs, self.limits.answer_within_secs)?;
        if let Some(job) = self.results.local(&a.result_id, &caller.client.id) {
            if job.wait(wait).await {
                // Its first page was charged when the statement ended.
                let answer = job
                    .answer()
                    .unwrap_or_else(|| Err(ToolError::internal("no answer")));
                return outcome(answer);
            }
            return Ok(running(&job.id, job.query_id(), job.elapsed_ms()));
        }
        // A statement queued or starting on another replica has no query id yet: its record
        // gets one, or its end, when that replica writes it.
        let deadline = tokio::time::Instant::now() + wait;
        let mut record = self.results.record(&a.result_id, &caller.client.id).await?;
        while record.query_id.is_none()
            && record.status == Status::Running
            && tokio::time::Instant::now() + POLL < deadline
        {
            tokio::time::sleep(POLL).await;
            record = self.results.record(&a.result_id, &caller.client.id).await?;
        }
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let limit = self.limits.default_max_rows;
        match self
            .read_page(&a.result_id, &record, caller, 0, limit, wait)
            .await?
        {
            Some(page) => Ok(page),
            None => Ok(running(
                &a.result_id,
                record.query_id.clone(),
                (chrono::Utc::now().timestamp_millis() - record.started_ms).max(0) as u64,
            )),
        }
    }

    /// `fetch_rows`: a page of a finished result, from Snowflake's kept result.
    pub(in crate::tools) async fn fetch_rows(
        &self,
        a: FetchRows,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let offset = match (&a.cursor, a.offset) {
            (Some(_), Some(_)) => {
                return Err(ToolError::invalid("pass cursor or offset, not both"))
            }
            (Some(c), None) => c.trim().parse::<u64>().map_err(|_| {
                ToolError::invalid("cursor is the `next` value of the previous page")
            })?,
            (None, offset) => offset.unwrap_or(0),
        };
        if a.limit == Some(0) {
            return Err(ToolError::invalid("limit must be at least 1"));
        }
        let limit =
            caller
                .client
                .row_cap(self.limits.max_rows, self.limits.default_max_rows, a.limit);
        if self
            .results
            .local(&a.result_id, &caller.client.id)
            .is_some_and(|j| j.answer().is_none())
        {
            return Err(still_running());
        }
        let record = self.results.record(&a.result_id, &caller.client.id).await?;
        self.read_page(&a.result_id, &record, caller, offset, limit, Duration::ZERO)
            .await?
            .ok_or_else(still_running)
    }

    /// Rows `offset..` of a handle's result, charged to the caller; `None` while the statement
    /// still runs after `wait`.
    async fn read_page(
        &self,
        result_id: &str,
        record: &Record,
        caller: &Caller,
        offset: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<Option<Outcome>, ToolError> {
        if record.status.failed() {
            return Err(stored_error(record));
        }
        let Some(query_id) = record.query_id.as_deref() else {
            // Left queued by a process that is gone, or not started yet on another replica.
            let age = chrono::Utc::now().timestamp_millis() - record.started_ms;
            if age as u128 > self.limits.statement_timeout().as_millis() + 60_000 {
                return Err(ToolError::new(
                    "unavailable",
                    "the server that queued this query stopped before it started; run it again",
                ));
            }
            return Ok(None);
        };
        let want = Amounts {
            rows: limit as u64,
            bytes: self.limits.max_result_bytes as u64,
        };
        let ticket = self
            .admission
            .reserve(&caller.client, want, Cost::default())
            .await?;
        let granted = ticket.as_ref().map_or(want, |t| t.granted().amounts);
        let limits = QueryLimits {
            max_rows: limit.min(granted.rows as usize),
            max_bytes: self.limits.max_result_bytes.min(granted.bytes as usize),
            timeout: Duration::ZERO,
        };
        let ctx = record.context();
        let share = caller.client.share();
        let deadline = tokio::time::Instant::now() + wait;
        let page = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let limits = QueryLimits {
                timeout: left.clamp(Duration::from_secs(2), self.limits.statement_timeout()),
                ..limits
            };
            match self
                .gateway
                .read_result(&share, &ctx, query_id, offset, limits)
                .await
            {
                Ok(StoredPage::Done(page)) => break Ok(Some(page)),
                Ok(StoredPage::Running) if left > POLL => tokio::time::sleep(POLL).await,
                Ok(StoredPage::Running) => break Ok(None),
                Err(e) if e.kind == "sql_error" || e.kind == "cancelled" => {
                    // The statement failed or was stopped where it ran: say so from now on.
                    let mut failed = record.clone();
                    failed.status = Status::of::<()>(&Err(e.clone()));
                    failed.error = Some((e.kind.to_string(), e.message.clone()));
                    let _ = self
                        .results
                        .save(result_id, &caller.client.id, &failed)
                        .await;
                    break Err(e);
                }
                Err(e) => break Err(e),
            }
        };
        let page = match page {
            Ok(Some(page)) => page,
            other => {
                if let Some(t) = ticket {
                    t.settle_page(Amounts::default()).await;
                }
                return other.map(|_| None);
            }
        };
        if record.status == Status::Running {
            let mut done = record.clone();
            done.status = Status::Done;
            done.total_rows = page.total_rows;
            let _ = self.results.save(result_id, &caller.client.id, &done).await;
        }
        let mut out =
            crate::tools::render::page(page, offset, limits.max_rows, self.limits.max_result_bytes);
        name_the_result(&mut out.result, result_id, offset);
        if let Some(t) = ticket {
            let (rows, bytes) = out.returned.unwrap_or_default();
            t.settle_page(Amounts { rows, bytes }).await;
        }
        Ok(Some(out))
    }

    /// `cancel_query`: stop the statement, here or wherever it runs.
    pub(in crate::tools) async fn cancel_query(
        &self,
        a: CancelQuery,
        caller: &Caller,
    ) -> Result<Outcome, ToolError> {
        let (status, query_id) = match self.results.local(&a.result_id, &caller.client.id) {
            Some(job) => {
                job.cancel();
                job.wait(Duration::from_secs(10)).await;
                let status = job
                    .answer()
                    .map_or("cancelling", |a| Status::of(&a).as_str());
                (status, job.query_id())
            }
            None => {
                let mut record = self.results.record(&a.result_id, &caller.client.id).await?;
                if record.status == Status::Running {
                    if let Some(q) = record.query_id.as_deref() {
                        let share = caller.client.share();
                        self.gateway
                            .cancel_query(&share, &record.context(), q)
                            .await?;
                    }
                    record.status = Status::Cancelled;
                    record.error = Some((
                        "cancelled".into(),
                        "the query was stopped with cancel_query".into(),
                    ));
                    self.results
                        .save(&a.result_id, &caller.client.id, &record)
                        .await?;
                }
                (record.status.as_str(), record.query_id.clone())
            }
        };
        let text = match status {
            "cancelled" => "cancelled: the statement was stopped.".to_string(),
            "done" => "done: the statement had already finished; get_result reads it.".to_string(),
            other => format!("{other}: the statement had already ended."),
        };
        let mut structured = json!({"status": status, "result_id": a.result_id});
        if let Some(q) = query_id {
            structured["query_id"] = json!(q);
        }
        Ok(Outcome::plain(success(structured, text)))
    }
}

fn still_running() -> ToolError {
    ToolError::invalid("the query is still running; call get_result with its result_id first")
}
