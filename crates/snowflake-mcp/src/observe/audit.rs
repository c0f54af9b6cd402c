//! Audit: every tool call that reaches the database, recorded in the state store (and, when
//! configured, appended as a JSON line to a file for log shippers).
//!
//! Records go through a bounded buffer to one writer task that commits them in batches (one
//! transaction for all waiting records; the JSON lines are written on the blocking pool, never
//! on the async runtime). By default a call answers once its record is queued: the writer
//! commits it a moment later, with whatever else queued meanwhile, so the commit is not on the
//! call's path (it was about a third of a millisecond of each call; BENCHMARKS.md), and gathers
//! for up to [`LINGER`] first, so a busy server commits a few dozen times a second instead of
//! once per call. A `kill -9` can then lose the records of the last 20 ms or so of calls; a
//! graceful stop flushes them, and `query_history` flushes before it reads. With `[audit] wait_for_commit = true` a call
//! instead waits for its record's batch — so a `kill -9` right after an answer still finds its
//! record — but never longer than [`AUDIT_WAIT`]: a locked or slow state store delays the
//! audit, not the clients. A full buffer drops the record and counts it
//! ([`Auditor::dropped`], in `/metrics`), never silently. Old records are pruned after
//! `retention_days`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::ToolError;
use crate::lock;
use crate::state::{AuditRecord, StateStore};

/// Records waiting to be written, at most.
const BUFFER: usize = 10_000;
/// Records written in one transaction, at most.
const BATCH: usize = 512;
/// The longest a call waits for its audit record to be committed.
pub const AUDIT_WAIT: Duration = Duration::from_millis(500);
/// How long the writer gathers records into a batch that nobody waits for.
const LINGER: Duration = Duration::from_millis(20);

enum Message {
    Record(Box<AuditRecord>, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn StateStore>,
    queue: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
    /// Whether a call waits for its record's commit (`[audit] wait_for_commit`).
    wait_for_commit: bool,
}

impl Auditor {
    /// Record to `store`, and to the JSON-lines file at `jsonl` when given. Starts the writer
    /// task (call inside a tokio runtime).
    pub fn new(store: Arc<dyn StateStore>, jsonl: Option<&Path>) -> Result<Auditor, String> {
        let jsonl = match jsonl {
            Some(path) => Some({
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                // The audit holds every client's SQL: readable by the server's user only.
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                options
                    .open(path)
                    .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))?
            }),
            None => None,
        };
        let (queue, inbox) = mpsc::channel(BUFFER);
        tokio::spawn(write_batches(store.clone(), jsonl, inbox));
        Ok(Auditor {
            store,
            queue,
            dropped: Arc::default(),
            wait_for_commit: false,
        })
    }

    /// Make every call wait (at most [`AUDIT_WAIT`]) until its record is committed.
    pub fn waiting_for_commit(mut self, wait: bool) -> Auditor {
        self.wait_for_commit = wait;
        self
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Records dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Record one call: queue it and, with `wait_for_commit`, wait (at most [`AUDIT_WAIT`])
    /// until it is committed; failures are logged and counted, never shown to the caller.
    pub async fn record(&self, record: AuditRecord) {
        if !self.wait_for_commit {
            self.enqueue(record, None);
            return;
        }
        let (done, committed) = oneshot::channel();
        if self.enqueue(record, Some(done)) {
            let _ = tokio::time::timeout(AUDIT_WAIT, committed).await;
        }
    }

    /// Record one call without waiting (from `Drop`).
    pub fn record_later(&self, record: AuditRecord) {
        self.enqueue(record, None);
    }

    fn enqueue(&self, record: AuditRecord, done: Option<oneshot::Sender<()>>) -> bool {
        match self.queue.try_send(Message::Record(Box::new(record), done)) {
            Ok(()) => true,
            Err(_) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::error!(
                        dropped = n,
                        "the audit buffer is full: records are being dropped"
                    );
                }
                false
            }
        }
    }

    /// Wait until every record queued so far is written (before reading history, at shutdown).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), flushed).await;
        }
    }
}

/// The writer task: everything waiting, in one transaction, then the acknowledgements.
async fn write_batches(
    store: Arc<dyn StateStore>,
    mut jsonl: Option<std::fs::File>,
    mut inbox: mpsc::Receiver<Message>,
) {
    while let Some(first) = inbox.recv().await {
        let mut records = Vec::new();
        let mut acks = Vec::new();
        let take = |m: Message, records: &mut Vec<AuditRecord>, acks: &mut Vec<_>| match m {
            Message::Record(r, done) => {
                records.push(*r);
                acks.extend(done);
            }
            Message::Flush(done) => acks.push(done),
        };
        take(first, &mut records, &mut acks);
        // Nobody waits for this batch: let what comes in the next moment gather in the buffer
        // and take it all at once, so a steady stream of calls costs one commit per `LINGER`,
        // not one per call. The writer does not listen meanwhile: a listening writer is woken
        // by every record (often from the other worker thread), a sleeping one once. A record
        // or flush that waits for its commit and arrives now waits out the rest of `LINGER`.
        if acks.is_empty() {
            tokio::time::sleep(LINGER).await;
        }
        while records.len() < BATCH {
            match inbox.try_recv() {
                Ok(m) => take(m, &mut records, &mut acks),
                Err(_) => break,
            }
        }
        if !records.is_empty() {
            if let Some(file) = jsonl.take() {
                let lines: Vec<String> = records
                    .iter()
                    .filter_map(|r| serde_json::to_string(r).ok())
                    .collect();
                jsonl = tokio::task::spawn_blocking(move || {
                    let mut file = file;
                    for line in lines {
                        let _ = writeln!(file, "{line}");
                    }
                    file
                })
                .await
                .ok();
            }
            if let Err(e) = store.record_batch(&records).await {
                tracing::error!(error = %e, records = records.len(), "could not write audit records");
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// The audit record of a call in progress: written by [`PendingAudit::finish`] with the call's
/// outcome, or — when the call is dropped first (cancelled, or aborted at shutdown) — written
/// from `Drop` as `cancelled`, so no call vanishes from the audit or `query_history`.
pub struct PendingAudit {
    auditor: Auditor,
    record: Option<AuditRecord>,
    started: std::time::Instant,
    note: Arc<std::sync::Mutex<WriteNote>>,
}

/// What a write adds to its call's record (see [`note_write`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteNote {
    /// Kind and target: `INSERT SCRATCH.PUBLIC.T`.
    pub write: Option<String>,
    /// Who confirmed it, how, and what they were shown; or why nobody was asked.
    pub confirmed: Option<String>,
}

tokio::task_local! {
    static NOTE: Arc<std::sync::Mutex<WriteNote>>;
}

/// Note on the record of the call being audited (inside [`PendingAudit::scope`]) what it
/// writes and how that was confirmed. Outside an audited call this does nothing.
pub fn note_write(note: WriteNote) {
    let _ = NOTE.try_with(|slot| *lock(slot) = note);
}

impl PendingAudit {
    pub fn new(
        auditor: Auditor,
        tool: &str,
        statement: Option<String>,
        client: &str,
        session_id: Option<String>,
    ) -> Self {
        PendingAudit {
            auditor,
            record: Some(AuditRecord {
                client_id: client.to_string(),
                session_id,
                tool: tool.to_string(),
                statement,
                status: "cancelled".into(),
                ..Default::default()
            }),
            started: std::time::Instant::now(),
            note: Arc::default(),
        }
    }

    /// Run the call's `work` where [`note_write`] reaches this record.
    pub async fn scope<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        NOTE.scope(self.note.clone(), work).await
    }

    fn noted(&self, record: &mut AuditRecord) {
        let note = lock(&self.note).clone();
        record.write = note.write;
        record.confirmed = note.confirmed;
    }

    /// Record the call's outcome.
    pub async fn finish(mut self, outcome: Result<CallSummary, &ToolError>) {
        if let Some(mut record) = self.record.take() {
            fill(&mut record, outcome, self.started.elapsed());
            self.noted(&mut record);
            self.auditor.record(record).await;
        }
    }
}

impl Drop for PendingAudit {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.time_ms = chrono::Utc::now().timestamp_millis();
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        self.noted(&mut record);
        self.auditor.record_later(record);
    }
}

/// A Unix-milliseconds time as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// What the audit keeps of a successful call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSummary {
    pub query_id: Option<String>,
    pub rows: u64,
    pub bytes: u64,
}

/// Fill `record` with the outcome of its call.
fn fill(
    record: &mut AuditRecord,
    outcome: Result<CallSummary, &ToolError>,
    took: std::time::Duration,
) {
    let (status, query_id, error_code, rows, bytes) = match outcome {
        Ok(s) => ("ok".to_string(), s.query_id, None, s.rows, s.bytes),
        Err(e) => {
            let details = e.snowflake.as_deref();
            (
                e.kind.to_string(),
                details.and_then(|d| d.query_id.clone()),
                details.and_then(|d| d.code.clone()),
                0,
                0,
            )
        }
    };
    record.time_ms = chrono::Utc::now().timestamp_millis();
    record.status = status;
    record.query_id = query_id;
    record.error_code = error_code;
    record.rows = rows;
    record.bytes = bytes;
    record.duration_ms = took.as_millis() as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sql: &str) -> AuditRecord {
        AuditRecord {
            client_id: "a".into(),
            tool: "run_query".into(),
            statement: Some(sql.into()),
            status: "ok".into(),
            ..Default::default()
        }
    }

    fn store(name: &str) -> Arc<dyn StateStore> {
        let path = std::env::temp_dir().join(format!(
            "snowflake-mcp-audit-unit-{}-{name}.db",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Arc::new(crate::state::SqliteStore::open(&path).unwrap())
    }

    #[tokio::test]
    async fn waiting_for_the_commit_finds_the_record_as_the_call_returns() {
        let store = store("wait");
        let auditor = Auditor::new(store.clone(), None)
            .unwrap()
            .waiting_for_commit(true);
        auditor.record(record("SELECT 1")).await;
        assert_eq!(store.history("a", 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn by_default_a_record_is_committed_after_the_call_and_a_flush_waits_for_it() {
        let store = store("later");
        let auditor = Auditor::new(store.clone(), None).unwrap();
        for i in 0..100 {
            auditor.record(record(&format!("SELECT {i}"))).await;
        }
        auditor.flush().await;
        assert_eq!(store.history("a", 1000).await.unwrap().len(), 100);
        assert_eq!(auditor.dropped(), 0);
    }
}
