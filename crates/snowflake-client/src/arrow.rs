//! Arrow result decoding: `rowsetBase64` and Arrow result chunks into [`Value`] rows.
//!
//! Snowflake sends an Arrow IPC *stream* (schema message, then record batches). The Arrow type
//! alone does not say what a column means, so each array is read according to the column's
//! Snowflake type from `rowtype`:
//!
//! | Snowflake type | Arrow encodings accepted |
//! |---|---|
//! | FIXED | Int8/16/32/64 holding `value * 10^scale`; Decimal128 (its own scale); Float64 |
//! | REAL | Float64, Float32 |
//! | TEXT, VARIANT, OBJECT, ARRAY | Utf8, LargeUtf8, Utf8View |
//! | BOOLEAN | Boolean |
//! | DATE | Date32 (days), Date64 (ms) |
//! | TIME | Int32/Int64 in units of `10^-scale` s since midnight |
//! | TIMESTAMP_NTZ/LTZ | Int64 in units of `10^-scale` s; or struct `{epoch: s, fraction: ns}` |
//! | TIMESTAMP_TZ | struct `{epoch: 10^-scale s, timezone}`; or `{epoch: s, fraction: ns, timezone}` |
//! | BINARY | Binary, LargeBinary, FixedSizeBinary, BinaryView |
//!
//! `timezone` is the offset in minutes plus 1440. Any array may be all-null (Arrow `Null`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::value::{
    date_from_days, instant_from_parts, offset_from_encoded, split_scaled, time_from_parts, Column,
    ColumnType, Decimal, Value,
};

/// Decode every record batch of an Arrow IPC stream into rows.
///
/// We split the stream ourselves instead of using `StreamReader` so that the schema can be
/// relaxed first: emulators send timestamp structs whose children hold nulls the parent does
/// not mask, which Arrow's validation rejects when the children are declared non-nullable.
pub(crate) fn decode_ipc_stream(columns: &[Column], bytes: &[u8]) -> Result<Vec<Vec<Value>>> {
    let bad = |what: String| Error::protocol(format!("cannot read the Arrow result: {what}"));
    let mut rows = Vec::new();
    let mut schema: Option<SchemaRef> = None;
    let mut pos = 0usize;
    let take = |n: usize, pos: &mut usize| -> Result<&[u8]> {
        let end = pos
            .checked_add(n)
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| bad("the stream ends early".into()))?;
        let slice = &bytes[*pos..end];
        *pos = end;
        Ok(slice)
    };
    while pos + 4 <= bytes.len() {
        let mut len = i32::from_le_bytes(take(4, &mut pos)?.try_into().expect("4 bytes"));
        if len == -1 {
            // Continuation marker of the current format; the length follows.
            if pos + 4 > bytes.len() {
                break;
            }
            len = i32::from_le_bytes(take(4, &mut pos)?.try_into().expect("4 bytes"));
        }
        if len == 0 {
            break;
        }
        let len =
            usize::try_from(len).map_err(|_| bad(format!("negative message length {len}")))?;
        let meta = take(len, &mut pos)?;
        let message = arrow_ipc::root_as_message(meta).map_err(|e| bad(format!("{e}")))?;
        let body_len = usize::try_from(message.bodyLength())
            .map_err(|_| bad("negative body length".into()))?;
        let body = take(body_len, &mut pos)?;
        match message.header_type() {
            arrow_ipc::MessageHeader::Schema => {
                let fb = message
                    .header_as_schema()
                    .ok_or_else(|| bad("bad schema message".into()))?;
                let parsed =
                    arrow_ipc::convert::try_fb_to_schema(fb).map_err(|e| bad(e.to_string()))?;
                schema = Some(Arc::new(relax_structs(&parsed)));
            }
            arrow_ipc::MessageHeader::RecordBatch => {
                let fb = message
                    .header_as_record_batch()
                    .ok_or_else(|| bad("bad record batch message".into()))?;
                let schema = schema
                    .clone()
                    .ok_or_else(|| bad("a record batch came before the schema".into()))?;
                let batch = arrow_ipc::reader::read_record_batch(
                    &Buffer::from(body.to_vec()),
                    fb,
                    schema,
                    &HashMap::new(),
                    None,
                    &message.version(),
                )
                .map_err(|e| Error::protocol(format!("cannot read an Arrow record batch: {e}")))?;
                decode_batch(columns, &batch, &mut rows)?;
            }
            other => return Err(bad(format!("unsupported message {other:?}"))),
        }
    }
    Ok(rows)
}

/// The schema with every struct child declared nullable (see [`decode_ipc_stream`]).
fn relax_structs(schema: &Schema) -> Schema {
    fn relax(field: &Field) -> Field {
        match field.data_type() {
            DataType::Struct(children) => {
                let children: Vec<Field> = children
                    .iter()
                    .map(|c| relax(c).with_nullable(true))
                    .collect();
                field
                    .clone()
                    .with_data_type(DataType::Struct(Fields::from(children)))
            }
            _ => field.clone(),
        }
    }
    let fields: Vec<Field> = schema.fields().iter().map(|f| relax(f)).collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Append the rows of one record batch.
pub(crate) fn decode_batch(
    columns: &[Column],
    batch: &RecordBatch,
    rows: &mut Vec<Vec<Value>>,
) -> Result<()> {
    if batch.num_columns() != columns.len() {
        return Err(Error::protocol(format!(
            "the Arrow result has {} columns but rowtype describes {}",
            batch.num_columns(),
            columns.len()
        )));
    }
    let decoded: Vec<Vec<Value>> = columns
        .iter()
        .zip(batch.columns())
        .map(|(column, array)| decode_array(column, array))
        .collect::<Result<_>>()?;
    let start = rows.len();
    rows.extend((0..batch.num_rows()).map(|_| Vec::with_capacity(columns.len())));
    for column_values in decoded {
        for (row, value) in rows[start..].iter_mut().zip(column_values) {
            row.push(value);
        }
    }
    Ok(())
}

/// Decode one column's array, cell by cell, nulls included.
fn decode_array(column: &Column, array: &ArrayRef) -> Result<Vec<Value>> {
    let unsupported = || {
        Error::protocol(format!(
            "column {} ({}) arrived as Arrow {}, which this client cannot read",
            column.name,
            column.column_type.sql_name(),
            array.data_type()
        ))
    };
    if array.data_type() == &DataType::Null {
        return Ok(vec![Value::Null; array.len()]);
    }
    let scale = column.scale.unwrap_or(0);
    let ints = || -> Option<Box<dyn Fn(usize) -> i64 + '_>> {
        Some(match array.data_type() {
            DataType::Int8 => Box::new(|i| i64::from(array.as_primitive::<Int8Type>().value(i))),
            DataType::Int16 => Box::new(|i| i64::from(array.as_primitive::<Int16Type>().value(i))),
            DataType::Int32 => Box::new(|i| i64::from(array.as_primitive::<Int32Type>().value(i))),
            DataType::Int64 => Box::new(|i| array.as_primitive::<Int64Type>().value(i)),
            _ => return None,
        })
    };
    let cell: Box<dyn Fn(usize) -> Result<Value> + '_> =
        match (&column.column_type, array.data_type()) {
            (ColumnType::Fixed, DataType::Decimal128(_, s)) => {
                let s = u32::try_from(*s).map_err(|_| unsupported())?;
                let a = array.as_primitive::<Decimal128Type>();
                Box::new(move |i| Ok(Value::Number(Decimal::new(a.value(i), s)?)))
            }
            (ColumnType::Fixed, DataType::Float64) | (ColumnType::Real, DataType::Float64) => {
                let a = array.as_primitive::<Float64Type>();
                Box::new(move |i| Ok(Value::Real(a.value(i))))
            }
            (ColumnType::Real, DataType::Float32) => {
                let a = array.as_primitive::<Float32Type>();
                Box::new(move |i| Ok(Value::Real(f64::from(a.value(i)))))
            }
            (ColumnType::Fixed, _) => {
                let get = ints().ok_or_else(unsupported)?;
                Box::new(move |i| Ok(Value::Number(Decimal::new(i128::from(get(i)), scale)?)))
            }
            (ColumnType::Boolean, DataType::Boolean) => {
                let a = array.as_boolean();
                Box::new(move |i| Ok(Value::Boolean(a.value(i))))
            }
            (ColumnType::Date, DataType::Date32) => {
                let a = array.as_primitive::<Date32Type>();
                Box::new(move |i| Ok(Value::Date(date_from_days(i64::from(a.value(i)))?)))
            }
            (ColumnType::Date, DataType::Date64) => {
                let a = array.as_primitive::<Date64Type>();
                Box::new(move |i| {
                    Ok(Value::Date(date_from_days(
                        a.value(i).div_euclid(86_400_000),
                    )?))
                })
            }
            (ColumnType::Time, _) => {
                let get = ints().ok_or_else(unsupported)?;
                Box::new(move |i| {
                    let (secs, nanos) = split_scaled(get(i), scale);
                    Ok(Value::Time(time_from_parts(secs, nanos)?))
                })
            }
            (ColumnType::TimestampNtz | ColumnType::TimestampLtz, DataType::Struct(_)) => {
                let parts =
                    TimestampParts::new(array.as_struct(), scale).ok_or_else(unsupported)?;
                let ltz = column.column_type == ColumnType::TimestampLtz;
                Box::new(move |i| {
                    if parts.epoch.is_null(i) {
                        return Ok(Value::Null);
                    }
                    let (secs, nanos) = parts.instant(i);
                    let instant = instant_from_parts(secs, nanos)?;
                    Ok(if ltz {
                        Value::TimestampLtz(instant)
                    } else {
                        Value::TimestampNtz(instant.naive_utc())
                    })
                })
            }
            (ColumnType::TimestampNtz | ColumnType::TimestampLtz, _) => {
                let get = ints().ok_or_else(unsupported)?;
                let ltz = column.column_type == ColumnType::TimestampLtz;
                Box::new(move |i| {
                    let (secs, nanos) = split_scaled(get(i), scale);
                    let instant = instant_from_parts(secs, nanos)?;
                    Ok(if ltz {
                        Value::TimestampLtz(instant)
                    } else {
                        Value::TimestampNtz(instant.naive_utc())
                    })
                })
            }
            (ColumnType::TimestampTz, DataType::Struct(_)) => {
                let parts =
                    TimestampParts::new(array.as_struct(), scale).ok_or_else(unsupported)?;
                if parts.timezone.is_none() {
                    return Err(unsupported());
                }
                Box::new(move |i| {
                    if parts.epoch.is_null(i) {
                        return Ok(Value::Null);
                    }
                    let (secs, nanos) = parts.instant(i);
                    let offset = offset_from_encoded(parts.timezone(i))?;
                    Ok(Value::TimestampTz(
                        instant_from_parts(secs, nanos)?.with_timezone(&offset),
                    ))
                })
            }
            (ColumnType::Binary, DataType::Binary) => {
                let a = array.as_binary::<i32>();
                Box::new(move |i| Ok(Value::Binary(a.value(i).to_vec())))
            }
            (ColumnType::Binary, DataType::LargeBinary) => {
                let a = array.as_binary::<i64>();
                Box::new(move |i| Ok(Value::Binary(a.value(i).to_vec())))
            }
            (ColumnType::Binary, DataType::FixedSizeBinary(_)) => {
                let a = array.as_fixed_size_binary();
                Box::new(move |i| Ok(Value::Binary(a.value(i).to_vec())))
            }
            (ColumnType::Binary, DataType::BinaryView) => {
                let a = array.as_binary_view();
                Box::new(move |i| Ok(Value::Binary(a.value(i).to_vec())))
            }
            (t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                let json = matches!(
                    t,
                    ColumnType::Variant | ColumnType::Object | ColumnType::Array
                );
                let text: Box<dyn Fn(usize) -> String + '_> = match array.data_type() {
                    DataType::Utf8 => Box::new(|i| array.as_string::<i32>().value(i).to_string()),
                    DataType::LargeUtf8 => {
                        Box::new(|i| array.as_string::<i64>().value(i).to_string())
                    }
                    _ => Box::new(|i| array.as_string_view().value(i).to_string()),
                };
                if !(json || matches!(t, ColumnType::Text | ColumnType::Other(_))) {
                    return Err(unsupported());
                }
                Box::new(move |i| {
                    let s = text(i);
                    Ok(if json { Value::Json(s) } else { Value::Text(s) })
                })
            }
            _ => return Err(unsupported()),
        };
    (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                Ok(Value::Null)
            } else {
                cell(i)
            }
        })
        .collect()
}

/// The fields of Snowflake's timestamp structs.
struct TimestampParts<'a> {
    epoch: &'a arrow_array::Int64Array,
    fraction: Option<&'a arrow_array::Int32Array>,
    timezone: Option<&'a arrow_array::Int32Array>,
    scale: u32,
}

impl<'a> TimestampParts<'a> {
    fn new(s: &'a StructArray, scale: u32) -> Option<Self> {
        let field = |name: &str| s.column_by_name(name);
        let epoch = field("epoch")?.as_primitive_opt::<Int64Type>()?;
        let fraction = match field("fraction") {
            Some(a) => Some(a.as_primitive_opt::<Int32Type>()?),
            None => None,
        };
        let timezone = match field("timezone") {
            Some(a) => Some(a.as_primitive_opt::<Int32Type>()?),
            None => None,
        };
        Some(TimestampParts {
            epoch,
            fraction,
            timezone,
            scale,
        })
    }

    /// With a `fraction` field, `epoch` is whole seconds and `fraction` nanoseconds; without
    /// one, `epoch` is in units of `10^-scale` seconds.
    fn instant(&self, i: usize) -> (i64, u32) {
        match self.fraction {
            Some(f) => (self.epoch.value(i), f.value(i).clamp(0, 999_999_999) as u32),
            None => split_scaled(self.epoch.value(i), self.scale),
        }
    }

    fn timezone(&self, i: usize) -> i64 {
        self.timezone.map_or(1440, |t| i64::from(t.value(i)))
    }
}

#[cfg(test)]
mod tests;
