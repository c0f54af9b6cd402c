//! One statement run in a task of its own, so it can outlive the call that started it.
//!
//! The task runs the whole `run_query` path (quota ticket, scheduler place, lease, statement,
//! audit) and ends it the same way whoever is waiting. The call waits for it up to its bound;
//! past it the call *detaches* it: the task writes the `running` record and the call answers
//! with the handle. When the statement ends, the task writes the final record (so any replica
//! can answer for it) and keeps the answer in memory for a while. Only the task writes a job's
//! records, one after the other, so a `running` record can never overwrite a finished one.
//!
//! `cancel_query` stops the job: the statement's future is dropped, which aborts it on
//! Snowflake, refunds or charges its ticket and records the call as cancelled.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolResult, ContentBlock, Resource};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::{Record, Results, Status, STORE_WAIT};
use crate::error::ToolError;
use crate::lock;
use crate::observe::progress::Tracker;
use crate::Context;

/// What a `run_query` answered: its result and the rows and bytes it returned.
pub type Answer = Result<(CallToolResult, Option<(u64, u64)>), ToolError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Detached: the `running` record is written.
    Saved,
    Finished,
}

pub struct Job {
    pub(super) id: String,
    /// The store's key for `id` ([`super::digest`]), computed once.
    pub(super) digest: String,
    pub(super) owner: Arc<str>,
    /// The statement, for the operator's console.
    pub(super) sql: String,
    context: Context,
    started: Instant,
    started_ms: i64,
    phase: watch::Sender<Phase>,
    answer: Mutex<Option<Answer>>,
    finished_at: Mutex<Option<Instant>>,
    tracker: OnceLock<Tracker>,
    detach: Notify,
    cancel: CancellationToken,
    /// Who stopped it, when not its client: the answer says so.
    stopped_by: Mutex<Option<String>>,
}

impl Job {
    pub(super) fn new(id: String, owner: Arc<str>, sql: String, context: Context) -> Arc<Job> {
        Arc::new(Job {
            digest: super::digest(&id),
            id,
            owner,
            sql,
            context,
            started: Instant::now(),
            started_ms: chrono::Utc::now().timestamp_millis(),
            phase: watch::Sender::new(Phase::Running),
            answer: Mutex::default(),
            finished_at: Mutex::default(),
            tracker: OnceLock::new(),
            detach: Notify::new(),
            cancel: CancellationToken::new(),
            stopped_by: Mutex::default(),
        })
    }

    /// Snowflake's query id, once it named the statement.
    pub(super) fn query_id(&self) -> Option<String> {
        self.tracker.get().and_then(Tracker::query_id)
    }

    pub(super) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) fn finished_before(&self, age: Duration) -> bool {
        lock(&self.finished_at).is_some_and(|at| at.elapsed() > age)
    }

    /// Wait up to `within` for the statement to end; whether it did.
    pub(super) async fn wait(&self, within: Duration) -> bool {
        let mut phase = self.phase.subscribe();
        let _ = tokio::time::timeout(within, phase.wait_for(|p| *p == Phase::Finished)).await;
        let finished = *phase.borrow() == Phase::Finished;
        finished
    }

    /// Leave the statement running past its call: once its `running` record is written,
    /// returns `false`; `true` if it ended meanwhile (its answer is ready).
    pub(super) async fn detach(&self) -> bool {
        self.detach.notify_one();
        let mut phase = self.phase.subscribe();
        let _ =
            tokio::time::timeout(STORE_WAIT * 2, phase.wait_for(|p| *p != Phase::Running)).await;
        let finished = *phase.borrow() == Phase::Finished;
        finished
    }

    /// The answer, once the statement ended.
    pub(super) fn answer(&self) -> Option<Answer> {
        lock(&self.answer).clone()
    }

    pub(super) fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Stop the statement for someone other than its client (`by` says who).
    pub(super) fn stop_for(&self, by: &str) {
        *lock(&self.stopped_by) = Some(by.to_string());
        self.cancel.cancel();
    }

    /// Still running (not finished).
    pub(super) fn running(&self) -> bool {
        *self.phase.borrow() != Phase::Finished
    }

    fn record(&self, status: Status, answer: Option<&Answer>) -> Record {
        let (mut total_rows, mut error) = (None, None);
        match answer {
            Some(Ok((result, _))) => {
                total_rows = result
                    .structured_content
                    .as_ref()
                    .and_then(|s| s["total_rows"].as_u64());
            }
            Some(Err(e)) => error = Some((e.kind.to_string(), e.message.clone())),
            None => {}
        }
        Record {
            query_id: self.query_id(),
            context: crate::state::context_json(&self.context),
            status,
            started_ms: self.started_ms,
            finished_ms: answer.map(|_| chrono::Utc::now().timestamp_millis()),
            total_rows,
            error,
        }
    }

    /// The job's task: run `work` to its end (or until `cancel_query`), writing records as
    /// described in the module's doc. `work` comes boxed by its caller, where it is made, so
    /// that nothing above it holds (and copies) the statement path's future.
    pub(super) async fn run(
        self: Arc<Self>,
        results: &Results,
        mut work: Pin<Box<dyn Future<Output = Answer> + Send + '_>>,
    ) {
        let _ = self.tracker.set(crate::observe::progress::tracker());
        let mut detached = false;
        let mut answer = loop {
            tokio::select! {
                answer = &mut work => break answer,
                _ = self.cancel.cancelled() => {
                    let message = match lock(&self.stopped_by).as_deref() {
                        Some(by) => format!("the query was stopped by {by}"),
                        None => "the query was stopped with cancel_query".to_string(),
                    };
                    break Err(ToolError::new("cancelled", message))
                }
                _ = self.detach.notified(), if !detached => {
                    detached = true;
                    if let Err(e) = results.save(&self.id, &self.owner, &self.record(Status::Running, None)).await {
                        tracing::error!(error = %e.message, "could not keep a running statement's handle; only this replica knows it");
                    }
                    self.phase.send_replace(Phase::Saved);
                }
            }
        };
        // A stopped statement is aborted here (dropping its future aborts it on Snowflake).
        drop(work);
        let truncated = matches!(&answer, Ok((r, _)) if r.structured_content.as_ref().is_some_and(|s| s["truncated"] == json!(true)));
        if detached || truncated {
            let status = Status::of(&answer);
            match results
                .save(&self.id, &self.owner, &self.record(status, Some(&answer)))
                .await
            {
                Ok(()) => {
                    if let Ok((result, _)) = &mut answer {
                        name_the_result(result, &self.id, 0);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e.message, "could not keep a result's handle; it cannot be paged")
                }
            }
        }
        *lock(&self.answer) = Some(answer);
        *lock(&self.finished_at) = Some(Instant::now());
        self.phase.send_replace(Phase::Finished);
    }
}

/// Add the handle (and where the next page starts, when more rows follow) to a page that
/// started at row `offset`.
pub(super) fn name_the_result(result: &mut CallToolResult, result_id: &str, offset: u64) {
    let Some(s) = result.structured_content.as_mut() else {
        return;
    };
    s["result_id"] = json!(result_id);
    let more = s["truncated"] == json!(true);
    let count = s["row_count"].as_u64().unwrap_or(0);
    let mut line = format!("result_id: {result_id}");
    if more {
        let next = (offset + count).to_string();
        let how = format!(
            "More rows: call fetch_rows with this result_id and cursor \"{next}\" (the query is not run again)."
        );
        line.push_str(&format!("\n{how}"));
        if let Some(note) = s["note"].as_str() {
            s["note"] = Value::String(format!("{note} {how}"));
        }
        s["next"] = Value::String(next);
    }
    if let Some(ContentBlock::Text(t)) = result.content.first_mut() {
        t.text = format!("{}\n{line}", t.text);
    }
    // The whole result as a resource, for clients that attach or render resources.
    let link = Resource::new(format!("{RESOURCE_PREFIX}{result_id}.csv"), "query result")
        .with_description("all rows of this result as CSV (.json also works), up to the byte cap")
        .with_mime_type("text/csv");
    result.content.push(ContentBlock::resource_link(link));
}

/// Where result resources live (served by the transport's `resources/read`).
pub const RESOURCE_PREFIX: &str = "snowflake-mcp://results/";
