//! Running the demo's statements on SQLite: one statement at a time on the worker's connection,
//! stopped at the row and byte caps and at the deadline, interrupted when its caller goes away,
//! with SQLite's errors and column types told in Snowflake's words.

use std::time::Instant;

use rusqlite::{types::ValueRef, Connection};
use serde_json::{json, Value};

use crate::backend::{QueryLimits, QueryOutput, ResultColumn};
use crate::error::ToolError;

pub(super) fn internal(e: rusqlite::Error) -> ToolError {
    ToolError::internal(format!("demo database: {e}"))
}

pub(super) fn sql_error(e: rusqlite::Error) -> ToolError {
    let interrupted = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted);
    if interrupted {
        return ToolError::new("timeout", "the statement ran past its time limit and was stopped. Narrow the query and try again.");
    }
    ToolError::new(
        "sql_error",
        format!("{e}. The demo runs SQLite SQL over tables in SALES; fix the SQL and try again."),
    )
}

/// Interrupts the statement of a [`DemoBackend::with_conn`](super::DemoBackend::with_conn) whose caller went away: the flag
/// stops a job that has not started, the handle interrupts one that runs.
#[derive(Default)]
pub(super) struct InterruptOnDrop(
    pub(super) std::sync::Arc<std::sync::Mutex<(bool, Option<rusqlite::InterruptHandle>)>>,
    bool,
);

impl InterruptOnDrop {
    pub(super) fn disarm(mut self) {
        self.1 = true;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if self.1 {
            return;
        }
        let mut slot = crate::lock(&self.0);
        slot.0 = true;
        if let Some(handle) = &slot.1 {
            handle.interrupt();
        }
    }
}

/// Run one statement on SQLite, stopping at the caps and at the deadline.
pub(super) fn run_sqlite(
    c: &Connection,
    sql: &str,
    limits: QueryLimits,
    query_id: String,
) -> Result<QueryOutput, ToolError> {
    let deadline = Instant::now() + limits.timeout;
    c.progress_handler(10_000, Some(move || Instant::now() > deadline));
    let mut stmt = c.prepare(sql).map_err(sql_error)?;
    let mut columns: Vec<ResultColumn> = stmt
        .columns()
        .iter()
        .map(|col| ResultColumn {
            name: col.name().to_ascii_uppercase(),
            type_name: col.decl_type().map(snowflake_type).unwrap_or_default(),
        })
        .collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    let mut cursor = stmt.query([]).map_err(sql_error)?;
    while let Some(row) = cursor.next().map_err(sql_error)? {
        if rows.len() >= limits.max_rows {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(width);
        for i in 0..width {
            out.push(match row.get_ref(i).map_err(sql_error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => json!(n),
                ValueRef::Real(f) => json!(f),
                ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => {
                    json!(b.iter().map(|x| format!("{x:02X}")).collect::<String>())
                }
            });
        }
        // Expressions have no declared type: name it after the first value seen.
        for (column, value) in columns.iter_mut().zip(&out) {
            if column.type_name.is_empty() && !value.is_null() {
                column.type_name = match value {
                    Value::Number(n) if n.is_i64() => "NUMBER(38,0)",
                    Value::Number(_) => "FLOAT",
                    _ => "VARCHAR",
                }
                .into();
            }
        }
        let size: usize = out.iter().map(|v| v.to_string().len()).sum();
        if bytes + size > limits.max_bytes {
            truncated = true;
            break;
        }
        bytes += size;
        rows.push(out);
    }
    drop(cursor);
    c.progress_handler(0, None::<fn() -> bool>);
    for column in columns.iter_mut().filter(|c| c.type_name.is_empty()) {
        column.type_name = "VARCHAR".into();
    }
    Ok(QueryOutput {
        columns,
        rows,
        truncated,
        query_id,
    })
}

/// SQLite declared types shown with Snowflake's names.
pub(super) fn snowflake_type(decl: &str) -> String {
    let d = decl.to_ascii_uppercase();
    if d.starts_with("INT") {
        "NUMBER(38,0)".into()
    } else if d.starts_with("DECIMAL") || d.starts_with("NUMERIC") {
        d.replace("DECIMAL", "NUMBER").replace("NUMERIC", "NUMBER")
    } else if d == "REAL" || d.starts_with("FLOAT") || d.starts_with("DOUBLE") {
        "FLOAT".into()
    } else if d.is_empty() || d.starts_with("TEXT") || d.starts_with("VARCHAR") {
        "VARCHAR".into()
    } else {
        d
    }
}
