//! Statement results: the first rowset, further chunks fetched lazily, and row/byte caps.
//!
//! A query answer holds `rowtype` (the columns), the first rows inline — JSON `rowset` or Arrow
//! `rowsetBase64` — and, for big results, a list of `chunks` with the headers needed to download
//! them from cloud storage (`chunkHeaders`, or the SSE-C key `qrmk`). A [`QueryResult`] decodes the
//! inline rows at once and downloads each chunk only when [`QueryResult::next_batch`] reaches it,
//! so [`QueryResult::collect`] with a cap stops downloading as soon as the cap is met.
//!
//! Chunk downloads stop at the result's deadline (the statement's caller's, or
//! [`RESULT_WAIT`] after the answer arrived), like every other request.
//!
//! JSON chunks are rows separated by commas without the outer brackets (`["1","a"],["2","b"]`);
//! Arrow chunks are IPC streams. Either may arrive gzip-compressed.

use std::collections::VecDeque;
use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value as Json;
use tokio::time::Instant;

use crate::arrow::decode_ipc_stream;
use crate::error::{Error, Result};
use crate::http::Transport;
use crate::value::{decode_json_rows, Column, RowType, Value};

/// How long the chunks of a result may take to download when its caller set no deadline.
pub(crate) const RESULT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Caps on what [`QueryResult::collect`] keeps. The default keeps everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLimits {
    /// At most this many rows.
    pub max_rows: usize,
    /// At most this many bytes of cell data (by [`Value::approx_size`]).
    pub max_bytes: usize,
}

impl Default for RowLimits {
    fn default() -> Self {
        RowLimits {
            max_rows: usize::MAX,
            max_bytes: usize::MAX,
        }
    }
}

/// Rows collected under [`RowLimits`].
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    pub query_id: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// True when the result had more rows than the limits let through.
    pub truncated: bool,
    /// Bytes of cell data kept (by [`Value::approx_size`]).
    pub bytes: usize,
    /// Total rows of the result, as Snowflake counted them, when it said.
    pub total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ChunkRef {
    url: String,
    #[serde(default, rename = "rowCount")]
    row_count: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Arrow,
}

/// The wire form of a finished statement's `data`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryData {
    #[serde(default)]
    pub query_id: Option<String>,
    #[serde(default)]
    rowtype: Vec<RowType>,
    #[serde(default)]
    rowset: Option<Vec<Vec<Option<String>>>>,
    #[serde(default)]
    rowset_base64: Option<String>,
    #[serde(default)]
    query_result_format: Option<String>,
    #[serde(default)]
    chunks: Vec<ChunkRef>,
    #[serde(default)]
    chunk_headers: Option<std::collections::HashMap<String, String>>,
    #[serde(default)]
    qrmk: Option<String>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    pub statement_type_id: Option<i64>,
    #[serde(default)]
    pub final_database_name: Option<String>,
    #[serde(default)]
    pub final_schema_name: Option<String>,
    #[serde(default)]
    pub final_warehouse_name: Option<String>,
    #[serde(default)]
    pub final_role_name: Option<String>,
}

/// The answer to one statement. Rows beyond the first batch are downloaded on demand.
#[derive(Debug)]
pub struct QueryResult {
    query_id: String,
    columns: Vec<Column>,
    statement_type_id: Option<i64>,
    total: Option<u64>,
    first: Option<Vec<Vec<Value>>>,
    chunks: VecDeque<ChunkRef>,
    chunk_headers: HeaderMap,
    format: Format,
    transport: Transport,
    deadline: Instant,
    /// Rows passed over by [`QueryResult::skip`].
    skipped: u64,
}

impl QueryResult {
    pub(crate) fn from_data(
        data: QueryData,
        transport: Transport,
        deadline: Instant,
    ) -> Result<Self> {
        let query_id = data.query_id.unwrap_or_default();
        let columns: Vec<Column> = data.rowtype.into_iter().map(Column::from).collect();
        let format = match data.query_result_format.as_deref() {
            Some(f) if f.eq_ignore_ascii_case("arrow") => Format::Arrow,
            Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
            None if data.rowset_base64.is_some() => Format::Arrow,
            None => Format::Json,
            Some(other) => return Err(Error::protocol(format!("unknown result format '{other}'"))),
        };
        let first = match format {
            Format::Arrow => {
                let b64 = data.rowset_base64.unwrap_or_default();
                let bytes = STANDARD
                    .decode(b64.trim())
                    .map_err(|e| Error::protocol(format!("rowsetBase64 is not base64: {e}")))?;
                decode_ipc_stream(&columns, &bytes)
            }
            Format::Json => decode_json_rows(&columns, data.rowset.unwrap_or_default()),
        }
        .map_err(|e| e.with_query_id(Some(query_id.clone())))?;
        let mut chunk_headers = HeaderMap::new();
        if let Some(h) = data.chunk_headers {
            for (k, v) in h {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                    chunk_headers.insert(k, v);
                }
            }
        } else if let Some(qrmk) = data.qrmk {
            chunk_headers.insert(
                "x-amz-server-side-encryption-customer-algorithm",
                HeaderValue::from_static("AES256"),
            );
            if let Ok(mut v) = HeaderValue::try_from(qrmk) {
                v.set_sensitive(true);
                chunk_headers.insert("x-amz-server-side-encryption-customer-key", v);
            }
        }
        Ok(QueryResult {
            query_id,
            columns,
            statement_type_id: data.statement_type_id,
            total: data.total,
            first: Some(first),
            chunks: data.chunks.into(),
            chunk_headers,
            format,
            transport,
            deadline,
            skipped: 0,
        })
    }

    /// Give up downloading chunks at `deadline` (what the caller may still spend).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Snowflake's query id.
    pub fn query_id(&self) -> &str {
        &self.query_id
    }

    /// The result's columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Snowflake's statement type id (e.g. 0x1000 for SELECT), when given.
    pub fn statement_type_id(&self) -> Option<i64> {
        self.statement_type_id
    }

    /// Total rows of the result, when Snowflake said.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Result chunks not downloaded yet.
    pub fn pending_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// The next batch of rows: first the inline rows, then one downloaded chunk per call.
    /// `None` once everything was returned.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Vec<Value>>>> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        let Some(chunk) = self.chunks.pop_front() else {
            return Ok(None);
        };
        let body = self
            .transport
            .get_bytes(&chunk.url, &self.chunk_headers, self.deadline)
            .await?;
        let body = gunzip_if_needed(body)?;
        let rows = match self.format {
            Format::Arrow => decode_ipc_stream(&self.columns, &body)?,
            Format::Json => {
                let mut text = Vec::with_capacity(body.len() + 2);
                text.push(b'[');
                text.extend_from_slice(&body);
                text.push(b']');
                let raw: Vec<Vec<Option<String>>> = serde_json::from_slice(&text).map_err(|e| {
                    Error::protocol(format!("a JSON result chunk is malformed: {e}"))
                })?;
                decode_json_rows(&self.columns, raw)?
            }
        };
        if chunk.row_count != 0 && chunk.row_count != rows.len() as u64 {
            tracing::warn!(
                expected = chunk.row_count,
                got = rows.len(),
                "result chunk row count differs"
            );
        }
        Ok(Some(rows))
    }

    /// Pass over the first `n` rows, downloading only the chunk the next row lies in: a chunk
    /// whose row count Snowflake gave and that lies wholly before it is skipped unread. This is
    /// how a page deep in a big result is read without its earlier chunks.
    pub async fn skip(&mut self, mut n: u64) -> Result<()> {
        while n > 0 {
            if let Some(first) = self.first.as_mut() {
                let take = (first.len() as u64).min(n) as usize;
                first.drain(..take);
                n -= take as u64;
                self.skipped += take as u64;
                if first.is_empty() {
                    self.first = None;
                }
                continue;
            }
            match self.chunks.front() {
                None => return Ok(()),
                Some(chunk) if chunk.row_count != 0 && chunk.row_count <= n => {
                    n -= chunk.row_count;
                    self.skipped += chunk.row_count;
                    self.chunks.pop_front();
                }
                Some(_) => {
                    // The next row is inside this chunk (or its size is unknown): read it.
                    self.first = self.next_batch().await?;
                    if self.first.is_none() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Collect rows up to `limits`, downloading no chunk once a cap is reached.
    pub async fn collect(mut self, limits: RowLimits) -> Result<Rows> {
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        'fetch: loop {
            if rows.len() >= limits.max_rows {
                truncated = self.first.as_ref().is_some_and(|f| !f.is_empty())
                    || !self.chunks.is_empty()
                    || self
                        .total
                        .is_some_and(|t| t > self.skipped + rows.len() as u64);
                break;
            }
            let Some(batch) = self.next_batch().await? else {
                break;
            };
            for row in batch {
                let size: usize = row.iter().map(Value::approx_size).sum();
                if rows.len() >= limits.max_rows || bytes.saturating_add(size) > limits.max_bytes {
                    truncated = true;
                    break 'fetch;
                }
                bytes += size;
                rows.push(row);
            }
        }
        Ok(Rows {
            query_id: self.query_id,
            columns: self.columns,
            rows,
            truncated,
            bytes,
            total: self.total,
        })
    }
}

fn gunzip_if_needed(body: Vec<u8>) -> Result<Vec<u8>> {
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(body.len() * 4);
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::protocol(format!("cannot decompress a result chunk: {e}")))?;
        Ok(out)
    } else {
        Ok(body)
    }
}

/// Parse a finished statement's `data` object.
pub(crate) fn parse_query_data(data: Json) -> Result<QueryData> {
    serde_json::from_value(data)
        .map_err(|e| Error::protocol(format!("cannot read the statement's answer: {e}")))
}
