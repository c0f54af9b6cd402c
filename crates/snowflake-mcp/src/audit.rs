//! Audit: every tool call that reaches the database, recorded in the state store (and, when
//! configured, appended as a JSON line to a file for log shippers).
//!
//! A record is written before the call's answer goes out (one SQLite insert, no fsync), so
//! `query_history` always shows the calls a client has seen answered — its own, never another
//! client's. Old records are pruned after `retention_days`.

use crate::lock;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::ToolError;
use crate::store::{AuditRecord, StateStore};

#[derive(Clone)]
pub struct Auditor {
    store: Arc<dyn StateStore>,
    jsonl: Option<Arc<Mutex<std::fs::File>>>,
}

impl Auditor {
    /// Record to `store`, and to the JSON-lines file at `jsonl` when given.
    pub fn new(store: Arc<dyn StateStore>, jsonl: Option<&Path>) -> Result<Auditor, String> {
        let jsonl = match jsonl {
            Some(path) => Some(Arc::new(Mutex::new(
                {
                    let mut options = std::fs::OpenOptions::new();
                    options.create(true).append(true);
                    // The audit holds every client's SQL: readable by the server's user only.
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    options.open(path)
                }
                .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))?,
            ))),
            None => None,
        };
        Ok(Auditor { store, jsonl })
    }

    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Record one call; failures are logged, never shown to the caller.
    pub async fn record(&self, record: AuditRecord) {
        if let Some(file) = &self.jsonl {
            if let Ok(line) = serde_json::to_string(&record) {
                let mut f = lock(file);
                let _ = writeln!(f, "{line}");
            }
        }
        if let Err(e) = self.store.record(&record).await {
            tracing::error!(error = %e, "could not write an audit record");
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
        }
    }

    /// Record the call's outcome.
    pub async fn finish(mut self, outcome: Result<CallSummary, &ToolError>) {
        if let Some(mut record) = self.record.take() {
            fill(&mut record, outcome, self.started.elapsed());
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
        let auditor = self.auditor.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { auditor.record(record).await });
        }
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
