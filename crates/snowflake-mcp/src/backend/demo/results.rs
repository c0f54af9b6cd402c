//! The engine's Arrow batches as the tools' rows, shaped as Snowflake's would be: columns typed
//! with Snowflake's names (`NUMBER(p,s)`, `FLOAT`, `VARCHAR`, `DATE`, `TIMESTAMP_NTZ`,
//! `BOOLEAN`, `VARIANT`, `ARRAY`), values encoded exactly as the Snowflake backend encodes them
//! (both go through `snowflake_client::Value`), and reading capped at the row and byte limits.

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value as Json;
use snowflake_client::{Decimal, Value};

use crate::backend::{QueryLimits, QueryOutput, ResultColumn};

/// Snowflake's name for an Arrow type.
pub fn snowflake_type(t: &DataType) -> String {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            "NUMBER(38,0)".into()
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "NUMBER(38,0)".into()
        }
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("NUMBER({p},{s})"),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "FLOAT".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP_NTZ".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP_LTZ".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::LargeUtf8 => "VARIANT".into(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "ARRAY".into(),
        DataType::Struct(_) | DataType::Map(..) => "OBJECT".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY".into(),
        _ => "VARCHAR".into(),
    }
}

/// One value of an array, as the Snowflake client would have decoded it.
pub fn value(a: &ArrayRef, i: usize) -> Value {
    // A column of the NULL type (`SELECT NULL AS X`) has no null buffer: `is_null` says false.
    if a.is_null(i) || a.data_type() == &DataType::Null {
        return Value::Null;
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("date");
    match a.data_type() {
        DataType::Boolean => Value::Boolean(a.as_boolean().value(i)),
        // The common types read in place; the rarer ones are cast one value at a time.
        DataType::Int64 => number(a.as_primitive::<Int64Type>().value(i) as i128, 0),
        DataType::Float64 => Value::Real(
            a.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(i),
        ),
        t if t.is_integer() => {
            match datafusion::arrow::compute::cast(&a.slice(i, 1), &DataType::Int64) {
                Ok(x) => number(x.as_primitive::<Int64Type>().value(0) as i128, 0),
                Err(_) => text(a, i),
            }
        }
        DataType::Decimal128(_, s) => {
            let v = a
                .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(i);
            number(v, (*s).max(0) as u32)
        }
        DataType::Float16 | DataType::Float32 => {
            match datafusion::arrow::compute::cast(&a.slice(i, 1), &DataType::Float64) {
                Ok(x) => Value::Real(
                    x.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .value(0),
                ),
                Err(_) => text(a, i),
            }
        }
        DataType::Date32 => {
            let days = a
                .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                .value(i);
            Value::Date(epoch + chrono::Duration::days(days as i64))
        }
        DataType::Timestamp(_, zone) => {
            match datafusion::arrow::compute::cast(
                &a.slice(i, 1),
                &DataType::Timestamp(TimeUnit::Nanosecond, zone.clone()),
            ) {
                Ok(x) => {
                    let n = x
                        .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
                        .value(0);
                    let t = chrono::DateTime::from_timestamp_nanos(n);
                    match zone {
                        None => Value::TimestampNtz(t.naive_utc()),
                        Some(_) => Value::TimestampLtz(t),
                    }
                }
                Err(_) => text(a, i),
            }
        }
        DataType::LargeUtf8 => Value::Json(a.as_string::<i64>().value(i).to_string()),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            Value::Json(json(a, i).to_string())
        }
        _ => text(a, i),
    }
}

fn number(unscaled: i128, scale: u32) -> Value {
    Decimal::new(unscaled, scale).map_or(Value::Null, Value::Number)
}

fn text(a: &ArrayRef, i: usize) -> Value {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(a.as_ref(), &options) {
        Ok(f) => Value::Text(f.value(i).to_string()),
        Err(_) => Value::Null,
    }
}

/// An element of a list (or the list itself) as JSON, for ARRAY values.
fn json(a: &ArrayRef, i: usize) -> Json {
    if a.is_null(i) {
        return Json::Null;
    }
    let items = match a.data_type() {
        DataType::List(_) => Some(a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => Some(a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(..) => Some(a.as_fixed_size_list().value(i)),
        _ => None,
    };
    match items {
        Some(items) => Json::Array((0..items.len()).map(|j| json(&items, j)).collect()),
        None => value(a, i).to_json(),
    }
}

/// Rows gathered from a stream of batches, up to the caps.
pub struct Collector {
    columns: Vec<ResultColumn>,
    rows: Vec<Vec<Json>>,
    bytes: usize,
    limits: QueryLimits,
    truncated: bool,
}

impl Collector {
    pub fn new(schema: &Schema, limits: QueryLimits) -> Collector {
        Collector {
            columns: schema
                .fields()
                .iter()
                .map(|f| ResultColumn {
                    name: f.name().clone(),
                    type_name: snowflake_type(f.data_type()),
                })
                .collect(),
            rows: Vec::new(),
            bytes: 0,
            limits,
            truncated: false,
        }
    }

    /// Take a batch's rows; false once a cap is reached (the rest is not wanted).
    pub fn add(&mut self, batch: &RecordBatch) -> bool {
        for i in 0..batch.num_rows() {
            if self.rows.len() >= self.limits.max_rows {
                self.truncated = true;
                return false;
            }
            let row: Vec<Json> = batch
                .columns()
                .iter()
                .map(|c| value(c, i).to_json())
                .collect();
            let size: usize = row.iter().map(|v| v.to_string().len()).sum();
            if self.bytes + size > self.limits.max_bytes {
                self.truncated = true;
                return false;
            }
            self.bytes += size;
            self.rows.push(row);
        }
        true
    }

    pub fn finish(self, query_id: String) -> QueryOutput {
        QueryOutput {
            columns: self.columns,
            rows: self.rows,
            truncated: self.truncated,
            query_id,
            total_rows: None,
        }
    }
}
