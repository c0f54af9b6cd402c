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
use crate::tools::{Caller, Outcome};

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

/// A Unix-milliseconds time as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The audit record of one call.
pub fn audit_record(
    tool: &str,
    statement: Option<String>,
    caller: &Caller,
    outcome: &Result<Outcome, ToolError>,
    took: std::time::Duration,
) -> AuditRecord {
    let (status, query_id, error_code, rows, bytes) = match outcome {
        Ok(o) => {
            let qid = o
                .result
                .structured_content
                .as_ref()
                .and_then(|s| s["query_id"].as_str())
                .map(str::to_string);
            let (rows, bytes) = o.returned.unwrap_or_default();
            ("ok".to_string(), qid, None, rows, bytes)
        }
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
    AuditRecord {
        time_ms: chrono::Utc::now().timestamp_millis(),
        client_id: caller.client.id.to_string(),
        session_id: caller.session_id.clone(),
        tool: tool.to_string(),
        statement,
        query_id,
        status,
        rows,
        bytes,
        duration_ms: took.as_millis() as u64,
        error_code,
    }
}
