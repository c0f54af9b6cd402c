//! Results that outlive their call: a statement still running when `run_query` must answer,
//! and a result bigger than one page, are named by a `result_id` the model uses with
//! `get_result`, `fetch_rows` and `cancel_query`.
//!
//! Two halves. The statements this process runs are [`Job`]s (`job.rs`): tasks of their own
//! that keep their place in the scheduler, their quota ticket and their audit record, whether
//! or not their call is still waiting. What must outlive the process is a [`Record`] in the
//! state store: the owner, the query id, the context and the status, kept as long as Snowflake
//! keeps the result (24 hours). A restarted server, or another replica, answers from the
//! record and the engine's kept result (read by query id, never by running the statement
//! again).
//!
//! A `result_id` is 256 random bits; the store keys records by its SHA-256, so a copy of the
//! store holds no usable handle. Every lookup checks the owner: another client's id is
//! `not_found`, exactly as an unknown one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ToolError;
use crate::lock;
use crate::state::StateStore;
use crate::Context;

mod calls;
mod job;

pub use job::{Job, RESOURCE_PREFIX};

/// How long a result is kept: Snowflake keeps query results 24 hours.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a finished statement's first page stays in memory for `get_result`.
const KEEP_FINISHED: Duration = Duration::from_secs(15 * 60);
/// Jobs kept in memory before finished ones are forgotten early.
const MAX_JOBS: usize = 10_000;
/// The state store must answer a handle's save or load within this.
const STORE_WAIT: Duration = Duration::from_secs(3);

/// Where a handle's statement stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    /// How a statement that ended with `outcome` ended.
    pub fn of<T>(outcome: &Result<T, ToolError>) -> Status {
        match outcome {
            Ok(_) => Status::Done,
            Err(e) if e.kind == "cancelled" => Status::Cancelled,
            Err(_) => Status::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Ended without a result.
    pub fn failed(self) -> bool {
        matches!(self, Status::Failed | Status::Cancelled)
    }
}

/// A statement running on this replica, as the console shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Running {
    pub id: String,
    pub client: String,
    pub sql: String,
    pub elapsed_ms: u64,
    pub query_id: Option<String>,
}

impl Running {
    fn of(id: &str, job: &Job) -> Running {
        Running {
            id: id.to_string(),
            client: job.owner.to_string(),
            sql: job.sql.clone(),
            elapsed_ms: job.elapsed_ms(),
            query_id: job.query_id(),
        }
    }
}

/// What the state store keeps of a handle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Snowflake's query id, once it named the statement.
    pub query_id: Option<String>,
    /// The context the statement ran in (JSON), where its result is read again.
    pub context: String,
    pub status: Status,
    pub started_ms: i64,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    #[serde(default)]
    pub total_rows: Option<u64>,
    /// Why it failed: the error kind and message.
    #[serde(default)]
    pub error: Option<(String, String)>,
}

impl Record {
    pub fn context(&self) -> Context {
        crate::state::context_from_json(&self.context).unwrap_or_default()
    }
}

/// The statements this process runs for result handles, and the records of all of them.
pub struct Results {
    store: Arc<dyn StateStore>,
    /// Jobs by handle digest: running, or finished less than [`KEEP_FINISHED`] ago.
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

/// A new `result_id`: 256 random bits.
fn new_id() -> String {
    format!(
        "r{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The store's key for a handle.
fn digest(result_id: &str) -> String {
    crate::sha256_hex(result_id)
}

fn not_found() -> ToolError {
    ToolError::new(
        "not_found",
        "no such result_id for this client (results are kept 24 hours); run the query again",
    )
}

impl Results {
    pub fn new(store: Arc<dyn StateStore>) -> Results {
        Results {
            store,
            jobs: Mutex::default(),
        }
    }

    /// Forget `job` at once (nobody holds its handle).
    fn forget(&self, job: &Job) {
        lock(&self.jobs).remove(&job.digest);
    }

    /// Forget finished jobs kept past [`KEEP_FINISHED`] (their records stay in the store).
    pub fn prune(&self) {
        lock(&self.jobs).retain(|_, job| !job.finished_before(KEEP_FINISHED));
    }

    /// Track `job`. Memory stays bounded: past [`MAX_JOBS`], finished jobs are forgotten at
    /// once (their records stay in the store; running ones are bounded by the scheduler's
    /// queues).
    fn remember(&self, job: &Arc<Job>) {
        let mut jobs = lock(&self.jobs);
        if jobs.len() >= MAX_JOBS {
            jobs.retain(|_, job| !job.finished_before(Duration::ZERO));
        }
        jobs.insert(job.digest.clone(), job.clone());
    }

    /// The statements running on this replica now, longest-running first (for the console).
    /// Each is named by the first 16 hex digits of its handle's digest: enough to stop it from
    /// the console, and no use as a handle.
    pub fn running(&self) -> Vec<Running> {
        let mut list: Vec<Running> = lock(&self.jobs)
            .iter()
            .filter(|(_, job)| job.running())
            .map(|(digest, job)| Running::of(&digest[..16], job))
            .collect();
        list.sort_by_key(|r| std::cmp::Reverse(r.elapsed_ms));
        list
    }

    /// Stop the running statement the console names `id` (see [`Results::running`]) for `by`;
    /// what was stopped, or `None` when no such statement runs here.
    pub fn stop(&self, id: &str, by: &str) -> Option<Running> {
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let job = lock(&self.jobs)
            .iter()
            .find(|(digest, job)| digest.starts_with(id) && job.running())
            .map(|(_, job)| job.clone())?;
        job.stop_for(by);
        Some(Running::of(id, &job))
    }

    /// This process's job for `result_id`, if `owner` owns it.
    fn local(&self, result_id: &str, owner: &str) -> Option<Arc<Job>> {
        lock(&self.jobs)
            .get(&digest(result_id))
            .filter(|j| &*j.owner == owner)
            .cloned()
    }

    /// The stored record of `result_id`, if `owner` owns it; `not_found` otherwise.
    async fn record(&self, result_id: &str, owner: &str) -> Result<Record, ToolError> {
        let loaded = tokio::time::timeout(STORE_WAIT, self.store.load_handle(&digest(result_id)))
            .await
            .map_err(|_| store_unavailable("did not answer"))?
            .map_err(|e| store_unavailable(&e.to_string()))?;
        match loaded {
            Some(h) if h.owner == owner => serde_json::from_str(&h.record).map_err(|e| {
                ToolError::internal(format!("a stored result record is unreadable: {e}"))
            }),
            _ => Err(not_found()),
        }
    }

    /// Keep `record` for `result_id` until its result expires.
    async fn save(&self, result_id: &str, owner: &str, record: &Record) -> Result<(), ToolError> {
        let text = serde_json::to_string(record).map_err(|e| ToolError::internal(e.to_string()))?;
        let expires = record.started_ms + RETENTION.as_millis() as i64;
        let saved = tokio::time::timeout(
            STORE_WAIT,
            self.store
                .save_handle(&digest(result_id), owner, &text, expires),
        )
        .await
        .map_err(|_| store_unavailable("did not answer"))?
        .map_err(|e| store_unavailable(&e.to_string()))?;
        if saved {
            Ok(())
        } else {
            Err(ToolError::internal(
                "a result handle collided with another client's",
            ))
        }
    }
}

fn store_unavailable(why: &str) -> ToolError {
    let mut e = ToolError::new(
        "unavailable",
        format!("the state store holding result handles {why}; retry shortly"),
    );
    e.retry_after_ms = Some(1000);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_unguessable_and_stored_by_digest() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 65);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), a);
    }
}
