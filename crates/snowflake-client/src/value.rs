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
//!
//! The types live here with their rendering ([`Value::to_json`], `Display`); [`Decimal`] has a
//! module of its own, the date and time conversions both decoders share are in `time`, and the
//! JSON rowset decoder is in `json`.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::Deserialize;

mod decimal;
mod json;
#[cfg(test)]
mod tests;
mod time;

pub use decimal::Decimal;
pub(crate) use json::decode_json_rows;
pub(crate) use time::{
    date_from_days, instant_from_parts, offset_from_encoded, split_scaled, time_from_parts,
};

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
