//! The catalogue cache: answers to catalogue questions (and plans) per role and arguments for
//! `cache.metadata_ttl_secs`, with identical concurrent requests sharing one fetch. Failures are
//! never cached.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::backend::{ColumnInfo, Named, ObjectInfo, ScanEstimate};
use crate::error::ToolError;
use crate::lock;

/// A cached catalogue answer.
#[derive(Clone, Debug)]
pub(super) enum Cached {
    Named(Vec<Named>),
    Objects(Vec<ObjectInfo>),
    Columns(Vec<ColumnInfo>),
    Plan(ScanEstimate),
}

type Cell = Arc<OnceCell<Result<Cached, ToolError>>>;

struct Entry {
    cell: Cell,
    born: Instant,
}

/// Cache counters.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

pub(super) struct MetadataCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<String, Entry>>,
    pub(super) stats: CacheStats,
}

impl MetadataCache {
    pub(super) fn new(ttl: Duration, max_entries: usize) -> MetadataCache {
        MetadataCache {
            ttl,
            max_entries: max_entries.max(1),
            entries: Mutex::new(HashMap::new()),
            stats: CacheStats::default(),
        }
    }

    /// A fresh cached answer for `key`, if there is one.
    pub(super) fn fresh(&self, key: &str) -> Option<Cached> {
        let entries = lock(&self.entries);
        let e = entries.get(key)?;
        if e.born.elapsed() >= self.ttl {
            return None;
        }
        match e.cell.get() {
            Some(Ok(v)) => Some(v.clone()),
            _ => None,
        }
    }

    /// The cached answer for `key`, or the one computed by `fetch` — once, however many
    /// identical requests arrive together. Callers come here holding their own scheduler
    /// permit, so only fetches that are already running are shared; and a failure is never
    /// shared: a caller whose shared fetch failed (another client's cancellation, say) runs its
    /// own, and gets only its own errors.
    pub(super) async fn get_or_fetch<F, Fut>(
        &self,
        key: String,
        fetch: F,
    ) -> Result<Cached, ToolError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, ToolError>>,
    {
        let cell = {
            let mut entries = lock(&self.entries);
            match entries.get(&key) {
                Some(e) if !e.cell.initialized() || e.born.elapsed() < self.ttl => e.cell.clone(),
                _ => {
                    if entries.len() >= self.max_entries {
                        let ttl = self.ttl;
                        entries.retain(|_, e| !e.cell.initialized() || e.born.elapsed() < ttl);
                        if entries.len() >= self.max_entries {
                            entries.clear();
                        }
                    }
                    let cell: Cell = Arc::default();
                    entries.insert(
                        key.clone(),
                        Entry {
                            cell: cell.clone(),
                            born: Instant::now(),
                        },
                    );
                    cell
                }
            }
        };
        let mut fetch = Some(fetch);
        let mut fetched = false;
        let mut result = cell
            .get_or_init(|| {
                fetched = true;
                (fetch.take().expect("called once"))()
            })
            .await
            .clone();
        if result.is_err() && !fetched {
            if let Some(fetch) = fetch.take() {
                fetched = true;
                result = fetch().await;
            }
        }
        let counter = if fetched {
            &self.stats.misses
        } else {
            &self.stats.hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if result.is_err() || self.ttl.is_zero() {
            let mut entries = lock(&self.entries);
            if entries
                .get(&key)
                .is_some_and(|e| Arc::ptr_eq(&e.cell, &cell))
            {
                entries.remove(&key);
            }
        }
        result
    }
}

/// The tool a catalogue cache key belongs to (its kind follows the role).
pub(super) fn tool_of(key: &str) -> &'static str {
    match key.split('\u{1}').nth(1) {
        Some("databases") => "list_databases",
        Some("schemas") => "list_schemas",
        Some("objects") => "list_objects",
        Some("explain") => "explain_query",
        _ => "describe_object",
    }
}
