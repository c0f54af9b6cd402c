//! `DEMO.INFORMATION_SCHEMA`: the views `TABLES`, `COLUMNS`, `SCHEMATA` and `VIEWS` with
//! Snowflake's column names (<https://docs.snowflake.com/en/sql-reference/info-schema>), built
//! from `catalog.rs`; and the small table builder `show.rs` shares.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampSecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::catalog::{DATABASE, INFORMATION_SCHEMA, ROLE, SCHEMA, TABLES};

/// One cell: text, a number, or a creation time (all the demo's objects share one).
#[derive(Clone)]
pub(super) enum Cell {
    S(Option<String>),
    N(Option<i64>),
    Created,
}

pub(super) fn s(v: impl Into<String>) -> Cell {
    Cell::S(Some(v.into()))
}

pub(super) const NULL: Cell = Cell::S(None);
/// When the demo's objects say they were created (2024-01-01 00:00:00 UTC).
const CREATED: i64 = 1_704_067_200;

/// A result built from named columns and rows of cells.
pub(super) fn batch(names: &[&str], rows: Vec<Vec<Cell>>) -> Result<RecordBatch, String> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let column = rows.iter().map(|r| r[i].clone());
        let kind = rows.first().map(|r| r[i].clone()).unwrap_or(NULL);
        let (t, array): (DataType, ArrayRef) = match kind {
            Cell::N(_) => (
                DataType::Int64,
                Arc::new(Int64Array::from_iter(column.map(|c| match c {
                    Cell::N(n) => n,
                    _ => None,
                }))),
            ),
            Cell::Created => (
                DataType::Timestamp(TimeUnit::Second, Some("+00:00".into())),
                Arc::new(
                    TimestampSecondArray::from_iter(column.map(|_| Some(CREATED)))
                        .with_timezone("+00:00"),
                ),
            ),
            Cell::S(_) => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter(column.map(|c| match c {
                    Cell::S(s) => s,
                    Cell::N(n) => n.map(|n| n.to_string()),
                    Cell::Created => None,
                }))),
            ),
        };
        fields.push(Field::new(*name, t, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

const INFORMATION_VIEWS: [&str; 4] = ["COLUMNS", "SCHEMATA", "TABLES", "VIEWS"];

/// `DEMO.INFORMATION_SCHEMA`'s views, as tables of the engine.
pub fn information_schema(
    rows: &HashMap<&str, usize>,
) -> Result<Vec<(&'static str, RecordBatch)>, String> {
    let mut tables = Vec::new();
    for t in TABLES {
        let kind = if t.view.is_some() {
            "VIEW"
        } else {
            "BASE TABLE"
        };
        let count = (t.view.is_none()).then(|| rows.get(t.name).copied().unwrap_or(0) as i64);
        tables.push(vec![
            s(DATABASE),
            s(SCHEMA),
            s(t.name),
            s(ROLE),
            s(kind),
            s("NO"),
            NULL,
            Cell::N(count),
            Cell::N(count.map(|c| c * 64)),
            Cell::N(Some(1)),
            Cell::Created,
            Cell::Created,
            s(t.comment),
        ]);
    }
    for v in INFORMATION_VIEWS {
        tables.push(vec![
            s(DATABASE),
            s(INFORMATION_SCHEMA),
            s(v),
            NULL,
            s("VIEW"),
            s("NO"),
            NULL,
            Cell::N(None),
            Cell::N(None),
            Cell::N(None),
            Cell::Created,
            Cell::Created,
            NULL,
        ]);
    }
    let mut columns = Vec::new();
    for t in TABLES {
        for (i, c) in t.columns.iter().enumerate() {
            let (precision, scale) = precision_scale(c.snowflake);
            let text = c.data_type() == "TEXT";
            columns.push(vec![
                s(DATABASE),
                s(SCHEMA),
                s(t.name),
                s(c.name),
                Cell::N(Some(i as i64 + 1)),
                NULL,
                s(if c.nullable { "YES" } else { "NO" }),
                s(c.data_type()),
                Cell::N(text.then_some(16_777_216)),
                Cell::N(text.then_some(16_777_216)),
                Cell::N(precision),
                Cell::N(precision.map(|_| 10)),
                Cell::N(scale),
                NULL,
            ]);
        }
    }
    let schemata = [SCHEMA, INFORMATION_SCHEMA]
        .iter()
        .map(|name| {
            vec![
                s(DATABASE),
                s(*name),
                s(ROLE),
                s("NO"),
                s("NO"),
                Cell::N(Some(1)),
                Cell::Created,
                Cell::Created,
                NULL,
            ]
        })
        .collect();
    let views = TABLES
        .iter()
        .filter_map(|t| {
            let sql = t.view?;
            Some(vec![
                s(DATABASE),
                s(SCHEMA),
                s(t.name),
                s(ROLE),
                s(format!("CREATE VIEW {} AS {sql}", t.name)),
                s("NONE"),
                s("NO"),
                s("NO"),
                s("false"),
                Cell::Created,
                Cell::Created,
                s(t.comment),
            ])
        })
        .collect();
    Ok(vec![
        (
            "TABLES",
            batch(
                &[
                    "TABLE_CATALOG",
                    "TABLE_SCHEMA",
                    "TABLE_NAME",
                    "TABLE_OWNER",
                    "TABLE_TYPE",
                    "IS_TRANSIENT",
                    "CLUSTERING_KEY",
                    "ROW_COUNT",
                    "BYTES",
                    "RETENTION_TIME",
                    "CREATED",
                    "LAST_ALTERED",
                    "COMMENT",
                ],
                tables,
            )?,
        ),
        (
            "COLUMNS",
            batch(
                &[
                    "TABLE_CATALOG",
                    "TABLE_SCHEMA",
                    "TABLE_NAME",
                    "COLUMN_NAME",
                    "ORDINAL_POSITION",
                    "COLUMN_DEFAULT",
                    "IS_NULLABLE",
                    "DATA_TYPE",
                    "CHARACTER_MAXIMUM_LENGTH",
                    "CHARACTER_OCTET_LENGTH",
                    "NUMERIC_PRECISION",
                    "NUMERIC_PRECISION_RADIX",
                    "NUMERIC_SCALE",
                    "COMMENT",
                ],
                columns,
            )?,
        ),
        (
            "SCHEMATA",
            batch(
                &[
                    "CATALOG_NAME",
                    "SCHEMA_NAME",
                    "SCHEMA_OWNER",
                    "IS_TRANSIENT",
                    "IS_MANAGED_ACCESS",
                    "RETENTION_TIME",
                    "CREATED",
                    "LAST_ALTERED",
                    "COMMENT",
                ],
                schemata,
            )?,
        ),
        (
            "VIEWS",
            batch(
                &[
                    "TABLE_CATALOG",
                    "TABLE_SCHEMA",
                    "TABLE_NAME",
                    "TABLE_OWNER",
                    "VIEW_DEFINITION",
                    "CHECK_OPTION",
                    "IS_UPDATABLE",
                    "INSERTABLE_INTO",
                    "IS_SECURE",
                    "CREATED",
                    "LAST_ALTERED",
                    "COMMENT",
                ],
                views,
            )?,
        ),
    ])
}

pub(super) fn precision_scale(snowflake: &str) -> (Option<i64>, Option<i64>) {
    let Some(args) = snowflake.strip_prefix("NUMBER(") else {
        return (None, None);
    };
    let mut parts = args.trim_end_matches(')').split(',');
    let p = parts.next().and_then(|p| p.trim().parse().ok());
    let s = parts.next().and_then(|s| s.trim().parse().ok());
    (p, s)
}
