//! The typed value model: one Rust value per Snowflake cell, and the JSON rowset decoder.
//!
//! Snowflake describes each result column in `rowtype` (type name, precision, scale, nullable).
//! Cells arrive either as JSON strings (`rowset`, decoded here) or as Arrow arrays
//! (`rowsetBase64`, decoded in [`crate::arrow`]); both end as [`Value`]. Numbers of type FIXED
//! are exact [`Decimal`]s (Snowflake's NUMBER(38, s) fits an `i128`), never floats.
//!
//! JSON rowset encodings (all cells are strings or null):
//! FIXED `"-12.50"`; REAL `"1.5"`, `"inf"`, `"NaN"`; BOOLEAN `"1"`/`"0"` or `"true"`/`"false"`;
//! DATE days since 1970-01-01 (`"19000"`); TIME seconds since midnight with fraction
//! (`"3600.5"`); TIMESTAMP_NTZ/LTZ seconds since the epoch with fraction; TIMESTAMP_TZ the same
//! then a space and the offset in minutes plus 1440 (`"1700000000.0 1500"` is +01:00);
//! BINARY hex; VARIANT/OBJECT/ARRAY JSON text.

use std::fmt;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Snowflake's logical column types, as named in `rowtype[].type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Fixed,
    Real,
    Text,
    Boolean,
    Date,
    Time,
    TimestampNtz,
    TimestampLtz,
    TimestampTz,
    Variant,
    Object,
    Array,
    Binary,
    /// A type this client does not know (kept by name; cells decode as text where possible).
    Other(String),
}

impl ColumnType {
    /// From the `rowtype` name (case-insensitive).
    pub fn from_name(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "fixed" | "number" | "decimal" => ColumnType::Fixed,
            "real" | "float" | "double" => ColumnType::Real,
            "text" | "varchar" | "string" => ColumnType::Text,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time,
            "timestamp_ntz" | "timestamp" => ColumnType::TimestampNtz,
            "timestamp_ltz" => ColumnType::TimestampLtz,
            "timestamp_tz" => ColumnType::TimestampTz,
            "variant" => ColumnType::Variant,
            "object" => ColumnType::Object,
            "array" => ColumnType::Array,
            "binary" => ColumnType::Binary,
            _ => ColumnType::Other(name.to_string()),
        }
    }

    /// The SQL-ish name shown to people, e.g. `NUMBER`, `TIMESTAMP_NTZ`.
    pub fn sql_name(&self) -> &str {
        match self {
            ColumnType::Fixed => "NUMBER",
            ColumnType::Real => "FLOAT",
            ColumnType::Text => "VARCHAR",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Date => "DATE",
            ColumnType::Time => "TIME",
            ColumnType::TimestampNtz => "TIMESTAMP_NTZ",
            ColumnType::TimestampLtz => "TIMESTAMP_LTZ",
            ColumnType::TimestampTz => "TIMESTAMP_TZ",
            ColumnType::Variant => "VARIANT",
            ColumnType::Object => "OBJECT",
            ColumnType::Array => "ARRAY",
            ColumnType::Binary => "BINARY",
            ColumnType::Other(name) => name,
        }
    }
}

/// Metadata of one result column, from `rowtype`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
    pub precision: Option<u32>,
    /// Digits after the decimal point (FIXED) or fractional-second digits (TIME, TIMESTAMP_*).
    pub scale: Option<u32>,
    /// Maximum length in characters (TEXT) or bytes (BINARY).
    pub length: Option<u64>,
}

/// The wire form of one `rowtype` entry.
#[derive(Debug, Deserialize)]
pub(crate) struct RowType {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    nullable: Option<bool>,
    #[serde(default)]
    precision: Option<u32>,
    #[serde(default)]
    scale: Option<u32>,
    #[serde(default)]
    length: Option<u64>,
    #[serde(default, rename = "byteLength")]
    byte_length: Option<u64>,
}

impl From<RowType> for Column {
    fn from(r: RowType) -> Self {
        let column_type = ColumnType::from_name(&r.type_name);
        let length = match column_type {
            ColumnType::Binary => r.byte_length.or(r.length),
            _ => r.length,
        };
        Column {
            name: r.name,
            column_type,
            nullable: r.nullable.unwrap_or(true),
            precision: r.precision,
            scale: r.scale,
            length,
        }
    }
}

/// An exact decimal number: `unscaled / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    unscaled: i128,
    scale: u32,
}

impl Decimal {
    /// `unscaled / 10^scale`; scales above 38 are refused.
    pub fn new(unscaled: i128, scale: u32) -> Result<Self> {
        if scale > 38 {
            return Err(Error::protocol(format!(
                "decimal scale {scale} is above 38"
            )));
        }
        Ok(Decimal { unscaled, scale })
    }

    pub fn unscaled(&self) -> i128 {
        self.unscaled
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The value as an integer when it has no fractional part.
    pub fn to_i128(&self) -> Option<i128> {
        let p = 10i128.pow(self.scale);
        (self.unscaled % p == 0).then(|| self.unscaled / p)
    }

    /// The nearest `f64` (may lose precision; for display and arithmetic, not storage).
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// Parse `-123.4500` style text exactly (no exponent).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::protocol(format!("'{text}' is not a decimal number"));
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let mut unscaled: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            unscaled = unscaled
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or_else(bad)?;
        }
        Decimal::new(
            if negative { -unscaled } else { unscaled },
            frac.len() as u32,
        )
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.unscaled);
        }
        let digits = self.unscaled.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        let sign = if self.unscaled < 0 { "-" } else { "" };
        write!(f, "{sign}{int}.{frac}")
    }
}

/// One cell of a result.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    /// FIXED (NUMBER, INT, DECIMAL): exact.
    Number(Decimal),
    /// REAL (FLOAT, DOUBLE).
    Real(f64),
    Text(String),
    Binary(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    TimestampNtz(NaiveDateTime),
    /// TIMESTAMP_LTZ: an instant; shown in the session's time zone by Snowflake, UTC here.
    TimestampLtz(DateTime<Utc>),
    TimestampTz(DateTime<FixedOffset>),
    /// VARIANT, OBJECT, ARRAY: the JSON text as Snowflake sent it.
    Json(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Roughly how many bytes this cell takes when rendered; used for byte caps.
    pub fn approx_size(&self) -> usize {
        match self {
            Value::Null => 4,
            Value::Boolean(_) => 5,
            Value::Number(_) | Value::Real(_) => 20,
            Value::Text(s) | Value::Json(s) => s.len() + 2,
            Value::Binary(b) => b.len() * 2 + 2,
            Value::Date(_) => 12,
            Value::Time(_) => 20,
            Value::TimestampNtz(_) | Value::TimestampLtz(_) | Value::TimestampTz(_) => 36,
        }
    }

    /// The cell as JSON: numbers that fit an `f64` exactly become JSON numbers, other exact
    /// decimals stay strings so no digit is lost; times are ISO 8601; binary is hex.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Boolean(b) => J::Bool(*b),
            Value::Number(d) => match d.to_i128() {
                Some(i) if i.unsigned_abs() <= (1u128 << 53) => J::from(i as i64),
                _ if d.scale() > 0 && d.unscaled().unsigned_abs() < 1_000_000_000_000_000 => {
                    serde_json::Number::from_f64(d.to_f64()).map_or(J::Null, J::Number)
                }
                _ => J::String(d.to_string()),
            },
            Value::Real(f) => {
                serde_json::Number::from_f64(*f).map_or_else(|| J::String(f.to_string()), J::Number)
            }
            Value::Json(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| J::String(text.clone()))
            }
            other => J::String(other.to_string()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Number(d) => write!(f, "{d}"),
            Value::Real(x) => write!(f, "{x}"),
            Value::Text(s) | Value::Json(s) => f.write_str(s),
            Value::Binary(b) => b.iter().try_for_each(|byte| write!(f, "{byte:02X}")),
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{t}"),
            Value::TimestampNtz(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f")),
            Value::TimestampLtz(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f %:z")),
            Value::TimestampTz(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f %:z")),
        }
    }
}

pub(crate) fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// A date from days since the epoch.
pub(crate) fn date_from_days(days: i64) -> Result<NaiveDate> {
    epoch_date()
        .checked_add_signed(Duration::days(days))
        .ok_or_else(|| Error::protocol(format!("date {days} days from 1970 is out of range")))
}

/// A time of day from seconds and nanoseconds since midnight.
pub(crate) fn time_from_parts(secs: i64, nanos: u32) -> Result<NaiveTime> {
    u32::try_from(secs)
        .ok()
        .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, nanos))
        .ok_or_else(|| Error::protocol(format!("time {secs}s after midnight is out of range")))
}

/// An instant from seconds and nanoseconds since the epoch.
pub(crate) fn instant_from_parts(secs: i64, nanos: u32) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| Error::protocol(format!("timestamp {secs}s from 1970 is out of range")))
}

/// Snowflake encodes a time zone as its offset in minutes plus 1440.
pub(crate) fn offset_from_encoded(encoded: i64) -> Result<FixedOffset> {
    i32::try_from((encoded - 1440) * 60)
        .ok()
        .and_then(FixedOffset::east_opt)
        .ok_or_else(|| Error::protocol(format!("time zone code {encoded} is out of range")))
}

/// Split a value in units of `10^-scale` into whole units and nanoseconds (floor division, so
/// negative values before 1970 are right).
pub(crate) fn split_scaled(value: i64, scale: u32) -> (i64, u32) {
    let scale = scale.min(9);
    let per_sec = 10i64.pow(scale);
    let secs = value.div_euclid(per_sec);
    let frac = value.rem_euclid(per_sec);
    (secs, (frac * 10i64.pow(9 - scale)) as u32)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn col(t: &str, scale: Option<u32>) -> Column {
        Column {
            name: "C".into(),
            column_type: ColumnType::from_name(t),
            nullable: true,
            precision: None,
            scale,
            length: None,
        }
    }

    fn cell(t: &str, scale: Option<u32>, text: &str) -> Value {
        decode_json_cell(&col(t, scale), Some(text)).unwrap()
    }

    #[test]
    fn decimals_are_exact_and_print_back() {
        for text in [
            "0",
            "-0.05",
            "12.50",
            "99999999999999999999999999999999999999",
            "-1.000000001",
        ] {
            assert_eq!(
                Decimal::parse(text).unwrap().to_string(),
                text.trim_start_matches('+')
            );
        }
        assert_eq!(Decimal::new(-5, 3).unwrap().to_string(), "-0.005");
        assert_eq!(Decimal::new(1234, 2).unwrap().to_i128(), None);
        assert_eq!(Decimal::new(1200, 2).unwrap().to_i128(), Some(12));
        assert!(Decimal::parse("1e5").is_err());
        assert!(Decimal::parse("").is_err());
        assert!(Decimal::parse("-").is_err());
    }

    #[test]
    fn json_cells_of_every_type() {
        assert_eq!(
            cell("fixed", Some(2), "-12.50"),
            Value::Number(Decimal::new(-1250, 2).unwrap())
        );
        assert_eq!(cell("real", None, "1.5"), Value::Real(1.5));
        assert!(matches!(cell("real", None, "NaN"), Value::Real(x) if x.is_nan()));
        assert_eq!(cell("real", None, "-inf"), Value::Real(f64::NEG_INFINITY));
        assert_eq!(cell("text", None, "héllo"), Value::Text("héllo".into()));
        assert_eq!(cell("boolean", None, "1"), Value::Boolean(true));
        assert_eq!(cell("boolean", None, "false"), Value::Boolean(false));
        assert_eq!(
            cell("date", None, "19000"),
            Value::Date(NaiveDate::from_ymd_opt(2022, 1, 8).unwrap())
        );
        assert_eq!(
            cell("date", None, "-1"),
            Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap())
        );
        assert_eq!(
            cell("time", Some(9), "3723.000000500"),
            Value::Time(NaiveTime::from_hms_nano_opt(1, 2, 3, 500).unwrap())
        );
        let ntz = cell("timestamp_ntz", Some(9), "1700000000.123456789");
        assert_eq!(ntz.to_string(), "2023-11-14 22:13:20.123456789");
        let before_epoch = cell("timestamp_ntz", Some(3), "-0.5");
        assert_eq!(before_epoch.to_string(), "1969-12-31 23:59:59.500");
        let ltz = cell("timestamp_ltz", Some(0), "1700000000");
        assert_eq!(
            ltz,
            Value::TimestampLtz(DateTime::from_timestamp(1_700_000_000, 0).unwrap())
        );
        let tz = cell("timestamp_tz", Some(9), "1700000000.000000000 1500");
        assert_eq!(tz.to_string(), "2023-11-14 23:13:20 +01:00");
        let tz_neg = cell("timestamp_tz", Some(0), "1700000000 1140");
        assert_eq!(tz_neg.to_string(), "2023-11-14 17:13:20 -05:00");
        assert_eq!(
            cell("binary", None, "CAFE"),
            Value::Binary(vec![0xCA, 0xFE])
        );
        assert_eq!(cell("variant", None, "{\"a\":1}").to_json()["a"], 1);
        assert_eq!(cell("array", None, "[1,2]"), Value::Json("[1,2]".into()));
        assert_eq!(cell("object", None, "{}"), Value::Json("{}".into()));
        for t in [
            "fixed",
            "real",
            "text",
            "boolean",
            "date",
            "time",
            "timestamp_ntz",
            "timestamp_ltz",
            "timestamp_tz",
            "binary",
            "variant",
        ] {
            assert_eq!(
                decode_json_cell(&col(t, Some(0)), None).unwrap(),
                Value::Null,
                "{t}"
            );
        }
    }

    #[test]
    fn bad_json_cells_are_protocol_errors_naming_the_column() {
        for (t, text) in [
            ("fixed", "abc"),
            ("boolean", "yes"),
            ("date", "x"),
            ("binary", "ABC"),
            ("timestamp_tz", "17"),
        ] {
            let e = decode_json_cell(&col(t, Some(0)), Some(text)).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Protocol);
            assert!(e.message().contains("column C"), "{e}");
        }
        let e = decode_json_rows(&[col("text", None)], vec![vec![None, None]]).unwrap_err();
        assert!(e.message().contains("2 cells"));
    }

    #[test]
    fn json_rendering_keeps_exactness() {
        assert_eq!(
            Value::Number(Decimal::new(42, 0).unwrap()).to_json(),
            serde_json::json!(42)
        );
        assert_eq!(
            Value::Number(Decimal::new(125, 2).unwrap()).to_json(),
            serde_json::json!(1.25)
        );
        let big = Decimal::parse("123456789012345678901234567890").unwrap();
        assert_eq!(
            Value::Number(big).to_json(),
            serde_json::json!("123456789012345678901234567890")
        );
        assert_eq!(
            Value::Binary(vec![1, 255]).to_json(),
            serde_json::json!("01FF")
        );
        assert_eq!(Value::Null.to_json(), serde_json::Value::Null);
    }

    #[test]
    fn split_scaled_floors_negative_values() {
        assert_eq!(split_scaled(1_500, 3), (1, 500_000_000));
        assert_eq!(split_scaled(-1, 3), (-1, 999_000_000));
        assert_eq!(split_scaled(7, 0), (7, 0));
    }
}
