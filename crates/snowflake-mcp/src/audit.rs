//! Audit: every tool call that reaches the database, recorded in the state store (and, when
//! configured, appended as a JSON line to a file for log shippers).
//!
//! A record is written before the call's answer goes out (one SQLite insert, no fsync), so
//! `query_history` always shows the calls a client has seen answered — its own, never another
//! client's. Old records are pruned after `retention_days`.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::store::{AuditRecord, StateStore};

pub struct Auditor {
    store: Arc<dyn StateStore>,
    jsonl: Option<Arc<Mutex<std::fs::File>>>,
}

impl Auditor {
    /// Record to `store`, and to the JSON-lines file at `jsonl` when given.
    pub fn new(store: Arc<dyn StateStore>, jsonl: Option<&Path>) -> Result<Auditor, String> {
        let jsonl = match jsonl {
            Some(path) => Some(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
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
                let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(f, "{line}");
            }
        }
        if let Err(e) = self.store.record(&record).await {
            tracing::error!(error = %e, "could not write an audit record");
        }
    }
}
