//! The JSON rowset decoder: `rowset` cells (strings or null) read against their column's type
//! into [`Value`]s. The encodings are listed in the [parent module](super); a cell that does not
//! match its column's type is a protocol error naming the column.

use super::time::{date_from_days, instant_from_parts, offset_from_encoded, time_from_parts};
use super::{Column, ColumnType, Decimal, Value};
use crate::error::{Error, Result};

/// Parse `"-12.345"` seconds text into whole seconds and nanoseconds (floor semantics).
fn parse_seconds(text: &str) -> Result<(i64, u32)> {
    let d = Decimal::parse(text.trim())?;
    let scale = d.scale().min(9);
    // Drop digits below nanoseconds, then re-express in nanoseconds.
    let nanos_total = d.unscaled() / 10i128.pow(d.scale() - scale) * 10i128.pow(9 - scale);
    let secs = nanos_total.div_euclid(1_000_000_000);
    let nanos = nanos_total.rem_euclid(1_000_000_000) as u32;
    let secs =
        i64::try_from(secs).map_err(|_| Error::protocol(format!("'{text}' is out of range")))?;
    Ok((secs, nanos))
}

/// Decode one JSON rowset cell of the given column.
pub(crate) fn decode_json_cell(column: &Column, cell: Option<&str>) -> Result<Value> {
    let Some(text) = cell else {
        return Ok(Value::Null);
    };
    let bad = |what: &str| {
        Error::protocol(format!(
            "column {} ({}): '{text}' is not a valid {what}",
            column.name,
            column.column_type.sql_name()
        ))
    };
    Ok(match &column.column_type {
        ColumnType::Fixed => Value::Number(Decimal::parse(text).map_err(|_| bad("number"))?),
        ColumnType::Real => Value::Real(match text.to_ascii_lowercase().as_str() {
            "inf" | "infinity" => f64::INFINITY,
            "-inf" | "-infinity" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            t => t.parse().map_err(|_| bad("float"))?,
        }),
        ColumnType::Boolean => Value::Boolean(match text.to_ascii_lowercase().as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(bad("boolean")),
        }),
        ColumnType::Date => Value::Date(date_from_days(text.parse().map_err(|_| bad("date"))?)?),
        ColumnType::Time => {
            let (secs, nanos) = parse_seconds(text).map_err(|_| bad("time"))?;
            Value::Time(time_from_parts(secs, nanos)?)
        }
        ColumnType::TimestampNtz => {
            let (secs, nanos) = parse_seconds(text).map_err(|_| bad("timestamp"))?;
            Value::TimestampNtz(instant_from_parts(secs, nanos)?.naive_utc())
        }
        ColumnType::TimestampLtz => {
            let (secs, nanos) = parse_seconds(text).map_err(|_| bad("timestamp"))?;
            Value::TimestampLtz(instant_from_parts(secs, nanos)?)
        }
        ColumnType::TimestampTz => {
            let (epoch, tz) = text
                .trim()
                .split_once(' ')
                .ok_or_else(|| bad("timestamp"))?;
            let (secs, nanos) = parse_seconds(epoch).map_err(|_| bad("timestamp"))?;
            let offset = offset_from_encoded(tz.trim().parse().map_err(|_| bad("time zone"))?)?;
            Value::TimestampTz(instant_from_parts(secs, nanos)?.with_timezone(&offset))
        }
        ColumnType::Binary => Value::Binary(decode_hex(text).ok_or_else(|| bad("hex string"))?),
        ColumnType::Variant | ColumnType::Object | ColumnType::Array => {
            Value::Json(text.to_string())
        }
        ColumnType::Text | ColumnType::Other(_) => Value::Text(text.to_string()),
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decode JSON rowset rows (arrays of nullable strings) against the columns.
pub(crate) fn decode_json_rows(
    columns: &[Column],
    rows: Vec<Vec<Option<String>>>,
) -> Result<Vec<Vec<Value>>> {
    rows.into_iter()
        .map(|row| {
            if row.len() != columns.len() {
                return Err(Error::protocol(format!(
                    "a result row has {} cells but the result has {} columns",
                    row.len(),
                    columns.len()
                )));
            }
            columns
                .iter()
                .zip(row.iter())
                .map(|(c, cell)| decode_json_cell(c, cell.as_deref()))
                .collect()
        })
        .collect()
}
