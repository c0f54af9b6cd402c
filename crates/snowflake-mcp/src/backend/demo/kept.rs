//! The demo's kept results and running statements: what Snowflake keeps for 24 hours by query
//! id, so that pages of a big result are read without running it again, and a statement can be
//! stopped by its id.
//!
//! Every result is written, batch by batch as it is computed, to an Arrow IPC file
//! `<cache>/results/<query id>.arrow` — on disk, so a restarted server (or a second one on the
//! same machine) still reads it. Files older than [`RETENTION`] go, and at most [`MAX_FILES`]
//! are kept; a result is kept up to [`MAX_KEPT_BYTES`] (pages past that end early, and the
//! docs say so).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::arrow::record_batch::RecordBatch;

use super::results::Collector;
use crate::backend::{QueryLimits, QueryOutput};
use crate::error::ToolError;
use crate::lock;

/// How long a result is kept: Snowflake's own retention.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Results kept at most (the oldest go first).
pub const MAX_FILES: usize = 500;
/// Bytes of one result kept at most.
pub const MAX_KEPT_BYTES: usize = 256 << 20;

/// The footer's record of how many rows each batch holds (`"8192,8192,1230"`).
const BATCH_ROWS: &str = "batch_rows";

pub struct Kept {
    dir: PathBuf,
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    written: AtomicU64,
}

impl Kept {
    pub fn open(cache_dir: &Path) -> Result<Kept, String> {
        let dir = cache_dir.join("results");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let kept = Kept {
            dir,
            running: Mutex::default(),
            written: AtomicU64::new(0),
        };
        kept.prune();
        Ok(kept)
    }

    fn path(&self, query_id: &str) -> PathBuf {
        self.dir.join(format!("{query_id}.arrow"))
    }

    /// Where a result is written while its statement runs (renamed when it ends): another
    /// server on the same cache directory sees the statement running.
    fn partial(&self, query_id: &str) -> PathBuf {
        self.dir.join(format!("{query_id}.arrow.part"))
    }

    /// Drop results past their retention, and the oldest beyond [`MAX_FILES`].
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        let excess = files.len().saturating_sub(MAX_FILES);
        for (i, (modified, path)) in files.iter().enumerate() {
            if i < excess || modified.elapsed().is_ok_and(|age| age > RETENTION) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Start keeping query `query_id`'s result, before its statement runs (from now on other
    /// servers see it running); [`KeptWriter::open`] once its schema is known.
    pub fn begin(&self, query_id: &str) -> Result<KeptWriter, ToolError> {
        if self.written.fetch_add(1, Ordering::Relaxed) % 50 == 49 {
            self.prune();
        }
        let path = self.partial(query_id);
        File::create(&path).map_err(|e| ToolError::internal(e.to_string()))?;
        Ok(KeptWriter {
            writer: None,
            done: self.path(query_id),
            path,
            bytes: 0,
            rows: 0,
            written: Vec::new(),
            finished: false,
        })
    }

    /// Record that `query_id` runs, until the returned guard is dropped.
    pub fn running(self: &Arc<Self>, query_id: &str, abort: tokio::task::AbortHandle) -> Running {
        lock(&self.running).insert(query_id.to_string(), abort);
        Running {
            kept: self.clone(),
            query_id: query_id.to_string(),
        }
    }

    /// Whether `query_id` runs here, or (its result still being written) in another server
    /// on the same cache directory.
    pub fn is_running(&self, query_id: &str) -> bool {
        lock(&self.running).contains_key(query_id) || self.partial(query_id).exists()
    }

    /// Stop `query_id` if it runs here.
    pub fn cancel(&self, query_id: &str) -> bool {
        match lock(&self.running).get(query_id) {
            Some(abort) => {
                abort.abort();
                true
            }
            None => false,
        }
    }

    /// Rows `offset..` of a kept result under `limits`; `None` when nothing is kept for it.
    pub fn read(
        &self,
        query_id: &str,
        offset: u64,
        limits: QueryLimits,
    ) -> Result<Option<QueryOutput>, ToolError> {
        let Ok(file) = File::open(self.path(query_id)) else {
            return Ok(None);
        };
        let failed = |e: &dyn std::fmt::Display| {
            ToolError::internal(format!("the demo's kept result is unreadable: {e}"))
        };
        let mut reader = FileReader::try_new(file, None).map_err(|e| failed(&e))?;
        // The footer says how many rows each batch holds: a page seeks to its first batch
        // instead of decoding every batch before it (or after it, to count them).
        let counts: Vec<u64> = reader
            .custom_metadata()
            .get(BATCH_ROWS)
            .ok_or_else(|| failed(&"it has no batch row counts"))?
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| failed(&e))?;
        let total: u64 = counts.iter().sum();
        let mut rows = Collector::new(&reader.schema(), limits);
        // The batch the page starts in, and the rows of it before the page.
        let (mut first, mut skip) = (None, offset);
        for (i, &n) in counts.iter().enumerate() {
            if skip < n {
                first = Some(i);
                break;
            }
            skip -= n;
        }
        if let Some(first) = first {
            reader.set_index(first).map_err(|e| failed(&e))?;
            for batch in reader {
                let batch = batch.map_err(|e| failed(&e))?;
                let n = batch.num_rows() as u64;
                let full = !rows.add(&batch.slice(skip as usize, (n - skip) as usize));
                skip = 0;
                if full {
                    break;
                }
            }
        }
        let mut out = rows.finish(query_id.to_string());
        out.total_rows = Some(total);
        Ok(Some(out))
    }
}

/// A running statement's entry; removed when the statement ends, however it ends.
pub struct Running {
    kept: Arc<Kept>,
    query_id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.kept.running).remove(&self.query_id);
    }
}

/// Writes one result's batches as they come. A result that never finished (its statement
/// failed or was stopped) is not kept.
pub struct KeptWriter {
    writer: Option<FileWriter<File>>,
    /// Written here, then renamed to `done`.
    path: PathBuf,
    done: PathBuf,
    bytes: usize,
    rows: u64,
    /// Rows of each batch written, for the footer ([`BATCH_ROWS`]).
    written: Vec<u64>,
    finished: bool,
}

impl Drop for KeptWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.writer.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl KeptWriter {
    /// Write the result's batches of `schema` from now on.
    pub fn open(&mut self, schema: &Schema) -> Result<(), ToolError> {
        let file = File::create(&self.path).map_err(|e| ToolError::internal(e.to_string()))?;
        let writer =
            FileWriter::try_new(file, schema).map_err(|e| ToolError::internal(e.to_string()))?;
        self.writer = Some(writer);
        Ok(())
    }

    /// Keep `batch` (until the result passes [`MAX_KEPT_BYTES`]); counts its rows either way.
    pub fn add(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        self.bytes += batch.get_array_memory_size();
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        if self.bytes > MAX_KEPT_BYTES || writer.write(batch).is_err() {
            self.finish_file();
        } else {
            self.written.push(batch.num_rows() as u64);
        }
    }

    fn finish_file(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            let counts: Vec<String> = self.written.iter().map(u64::to_string).collect();
            writer.write_metadata(BATCH_ROWS, counts.join(","));
            if let Err(e) = writer.finish() {
                tracing::warn!(error = %e, "the demo could not keep a result");
            }
        }
    }

    /// Close the file; the rows the result had.
    pub fn finish(mut self) -> u64 {
        self.finish_file();
        if std::fs::rename(&self.path, &self.done).is_ok() {
            self.finished = true;
        }
        self.rows
    }
}
