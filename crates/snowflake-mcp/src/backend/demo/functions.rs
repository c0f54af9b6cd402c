//! Snowflake functions the engine lacks, added as DataFusion scalar functions: date arithmetic
//! with Snowflake's unit arguments (`DATEADD`, `DATEDIFF`, `DATE_TRUNC` keeping dates dates,
//! `LAST_DAY`) and semi-structured values (`PARSE_JSON`, paths into a value, `OBJECT_CONSTRUCT`).
//!
//! Semi-structured values (VARIANT, OBJECT, ARRAY) travel as JSON text in `LargeUtf8` columns:
//! that type marks them, so results show them as JSON, typed `VARIANT`. Everything else a
//! model writes is either native to DataFusion or rewritten into native SQL (`rewrite.rs`).
//! Semantics follow Snowflake's documentation: "Date & time functions"
//! (<https://docs.snowflake.com/en/sql-reference/functions-date-time>) and "Semi-structured
//! data functions" (<https://docs.snowflake.com/en/sql-reference/functions-semistructured>).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, LargeStringBuilder, StringBuilder,
    TimestampNanosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value as Json;

/// Every function added here, for registration.
pub fn all() -> Vec<ScalarUDF> {
    [
        Function::new("snow_dateadd", 3, same_as_last, dateadd),
        Function::new("snow_datediff", 3, |_| DataType::Int64, datediff),
        Function::new("snow_date_trunc", 2, same_as_last, date_trunc),
        Function::new("last_day", 1, |_| DataType::Date32, last_day),
        Function::new("parse_json", 1, |_| DataType::LargeUtf8, parse_json),
        Function::new("variant_get", 2, |_| DataType::LargeUtf8, variant_get),
        Function::new("variant_text", 1, |_| DataType::Utf8, variant_text),
        Function::new("to_variant", 1, |_| DataType::LargeUtf8, to_variant),
        Function::variadic(
            "object_construct",
            |_| DataType::LargeUtf8,
            object_construct,
        ),
    ]
    .into_iter()
    .map(ScalarUDF::new_from_impl)
    .collect()
}

type Body = fn(&[ArrayRef]) -> Result<ArrayRef>;

/// A function over whole arrays: its name, how many arguments, its result type from its
/// argument types, and its body.
#[derive(Debug)]
struct Function {
    name: &'static str,
    signature: Signature,
    returns: fn(&[DataType]) -> DataType,
    body: Body,
}

impl Function {
    fn new(
        name: &'static str,
        args: usize,
        returns: fn(&[DataType]) -> DataType,
        body: Body,
    ) -> Self {
        Function {
            name,
            signature: Signature::any(args, Volatility::Immutable),
            returns,
            body,
        }
    }

    fn variadic(name: &'static str, returns: fn(&[DataType]) -> DataType, body: Body) -> Self {
        Function {
            name,
            signature: Signature::variadic_any(Volatility::Immutable),
            returns,
            body,
        }
    }
}

impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Function {}

impl Hash for Function {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok((self.returns)(arg_types))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array((self.body)(&arrays)?))
    }
}

/// Dates stay dates; anything else is a timestamp.
fn same_as_last(types: &[DataType]) -> DataType {
    match types.last() {
        Some(DataType::Date32) => DataType::Date32,
        _ => DataType::Timestamp(TimeUnit::Nanosecond, None),
    }
}

/// A date or time part, by any of the names Snowflake accepts for it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Nanosecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

fn unit(name: &str) -> Result<Unit> {
    Ok(match name.to_ascii_lowercase().trim_end_matches('s') {
        "y" | "yy" | "yyy" | "yyyy" | "yr" | "year" => Unit::Year,
        "q" | "qtr" | "quarter" => Unit::Quarter,
        "mm" | "mon" | "month" => Unit::Month,
        "w" | "wk" | "week" | "weekofyear" | "woy" | "wy" => Unit::Week,
        "d" | "dd" | "day" | "dayofmonth" => Unit::Day,
        "h" | "hh" | "hr" | "hour" => Unit::Hour,
        "m" | "mi" | "min" | "minute" => Unit::Minute,
        "" | "sec" | "second" => Unit::Second,
        "n" | "nanosecond" | "ns" | "nsec" => Unit::Nanosecond,
        _ => return exec_err!("invalid date or time part '{name}'"),
    })
}

/// Each row's unit (the argument is almost always one literal).
fn units(a: &ArrayRef) -> Result<Vec<Option<Unit>>> {
    let text = cast(a, &DataType::Utf8)?;
    text.as_string::<i32>()
        .iter()
        .map(|u| u.map(unit).transpose())
        .collect()
}

fn timestamps(a: &ArrayRef) -> Result<Vec<Option<NaiveDateTime>>> {
    let ts = cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
    let ts: &TimestampNanosecondArray = ts.as_primitive();
    Ok(ts
        .iter()
        .map(|n| n.map(|n| chrono::DateTime::from_timestamp_nanos(n).naive_utc()))
        .collect())
}

/// Back to an array of the argument's type: a date argument gives dates.
fn output(values: Vec<Option<NaiveDateTime>>, like: &ArrayRef) -> Result<ArrayRef> {
    as_type(values, like.data_type())
}

fn as_type(values: Vec<Option<NaiveDateTime>>, data_type: &DataType) -> Result<ArrayRef> {
    let nanos: TimestampNanosecondArray = values
        .into_iter()
        .map(|v| v.and_then(|t| t.and_utc().timestamp_nanos_opt()))
        .collect();
    let nanos: ArrayRef = Arc::new(nanos);
    Ok(match data_type {
        DataType::Date32 => cast(&nanos, &DataType::Date32)?,
        _ => nanos,
    })
}

fn add_months(t: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let total = t.year() as i64 * 12 + t.month0() as i64 + months;
    let (year, month0) = (total.div_euclid(12) as i32, total.rem_euclid(12) as u32);
    // Snowflake keeps the day, or takes the month's last day when it has fewer.
    let last = last_of_month(year, month0 + 1)?;
    let date = NaiveDate::from_ymd_opt(year, month0 + 1, t.day().min(last.day()))?;
    Some(date.and_time(t.time()))
}

fn last_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()
}

fn dateadd(args: &[ArrayRef]) -> Result<ArrayRef> {
    let units = units(&args[0])?;
    let amounts = cast(&args[1], &DataType::Int64)?;
    let amounts = amounts.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let times = timestamps(&args[2])?;
    let mut out = Vec::with_capacity(times.len());
    for i in 0..times.len() {
        let (Some(u), Some(t)) = (units[i.min(units.len() - 1)], times[i]) else {
            out.push(None);
            continue;
        };
        if amounts.is_null(i) {
            out.push(None);
            continue;
        }
        let n = amounts.value(i);
        out.push(match u {
            Unit::Year => add_months(t, n * 12),
            Unit::Quarter => add_months(t, n * 3),
            Unit::Month => add_months(t, n),
            Unit::Week => t.checked_add_signed(Duration::weeks(n)),
            Unit::Day => t.checked_add_signed(Duration::days(n)),
            Unit::Hour => t.checked_add_signed(Duration::hours(n)),
            Unit::Minute => t.checked_add_signed(Duration::minutes(n)),
            Unit::Second => t.checked_add_signed(Duration::seconds(n)),
            Unit::Nanosecond => t.checked_add_signed(Duration::nanoseconds(n)),
        });
    }
    output(out, &args[2])
}

/// The start of `u` containing `t` (weeks start on Monday, Snowflake's default).
fn truncate(t: NaiveDateTime, u: Unit) -> Option<NaiveDateTime> {
    let d = t.date();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
    match u {
        Unit::Year => midnight(NaiveDate::from_ymd_opt(d.year(), 1, 1)?),
        Unit::Quarter => midnight(NaiveDate::from_ymd_opt(
            d.year(),
            d.month0() / 3 * 3 + 1,
            1,
        )?),
        Unit::Month => midnight(NaiveDate::from_ymd_opt(d.year(), d.month(), 1)?),
        Unit::Week => midnight(d - Duration::days(d.weekday().num_days_from_monday() as i64)),
        Unit::Day => midnight(d),
        Unit::Hour => d.and_hms_opt(t.hour(), 0, 0),
        Unit::Minute => d.and_hms_opt(t.hour(), t.minute(), 0),
        Unit::Second => d.and_hms_opt(t.hour(), t.minute(), t.second()),
        Unit::Nanosecond => Some(t),
    }
}

fn date_trunc(args: &[ArrayRef]) -> Result<ArrayRef> {
    let units = units(&args[0])?;
    let times = timestamps(&args[1])?;
    let out = (0..times.len())
        .map(|i| match (times[i], units[i.min(units.len() - 1)]) {
            (Some(t), Some(u)) => truncate(t, u),
            _ => None,
        })
        .collect();
    output(out, &args[1])
}

/// Snowflake counts the unit boundaries crossed between the two values.
fn datediff(args: &[ArrayRef]) -> Result<ArrayRef> {
    let units = units(&args[0])?;
    let (from, to) = (timestamps(&args[1])?, timestamps(&args[2])?);
    let mut out = Int64Builder::new();
    for i in 0..from.len() {
        let (Some(u), Some(a), Some(b)) = (units[i.min(units.len() - 1)], from[i], to[i]) else {
            out.append_null();
            continue;
        };
        let months = |t: NaiveDateTime| t.year() as i64 * 12 + t.month0() as i64;
        let span =
            |u: Unit| -> Option<i64> { Some((truncate(b, u)? - truncate(a, u)?).num_seconds()) };
        out.append_option(match u {
            Unit::Year => Some(b.year() as i64 - a.year() as i64),
            Unit::Quarter => Some(months(b).div_euclid(3) - months(a).div_euclid(3)),
            Unit::Month => Some(months(b) - months(a)),
            Unit::Week => span(Unit::Week).map(|s| s / (7 * 86_400)),
            Unit::Day => span(Unit::Day).map(|s| s / 86_400),
            Unit::Hour => span(Unit::Hour).map(|s| s / 3_600),
            Unit::Minute => span(Unit::Minute).map(|s| s / 60),
            Unit::Second => span(Unit::Second),
            Unit::Nanosecond => (b - a).num_nanoseconds(),
        });
    }
    Ok(Arc::new(out.finish()))
}

fn last_day(args: &[ArrayRef]) -> Result<ArrayRef> {
    let times = timestamps(&args[0])?;
    let out = times
        .into_iter()
        .map(|t| last_of_month(t?.year(), t?.month())?.and_hms_opt(0, 0, 0))
        .collect();
    as_type(out, &DataType::Date32)
}

fn strings(a: &ArrayRef) -> Result<Vec<Option<String>>> {
    let text = cast(a, &DataType::Utf8)?;
    Ok(text
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

fn variants(values: impl IntoIterator<Item = Option<Json>>) -> ArrayRef {
    let mut out = LargeStringBuilder::new();
    for v in values {
        match v {
            Some(v) => out.append_value(v.to_string()),
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

fn parse_json(args: &[ArrayRef]) -> Result<ArrayRef> {
    let mut out = Vec::new();
    for s in strings(&args[0])? {
        out.push(match s {
            None => None,
            Some(s) => match serde_json::from_str::<Json>(&s) {
                Ok(v) => Some(v),
                Err(e) => return exec_err!("Error parsing JSON: {e}"),
            },
        });
    }
    Ok(variants(out))
}

/// `v:a.b[0]`: each step a key or an index; a missing step is NULL, as in Snowflake.
fn variant_get(args: &[ArrayRef]) -> Result<ArrayRef> {
    let (values, paths) = (strings(&args[0])?, strings(&args[1])?);
    let out = values.iter().enumerate().map(|(i, v)| {
        let mut at: Json = serde_json::from_str(v.as_deref()?).ok()?;
        let path = paths[i.min(paths.len() - 1)].as_deref()?;
        for step in path.split(['.', '[']).filter(|s| !s.is_empty()) {
            at = match step.strip_suffix(']') {
                Some(n) => at.get(n.parse::<usize>().ok()?)?.clone(),
                None => at.get(step.trim_matches('"'))?.clone(),
            };
        }
        (!at.is_null()).then_some(at)
    });
    Ok(variants(out.collect::<Vec<_>>()))
}

/// A value as text: a JSON string without its quotes, anything else as JSON.
fn variant_text(args: &[ArrayRef]) -> Result<ArrayRef> {
    let mut out = StringBuilder::new();
    for v in strings(&args[0])? {
        match v.map(|v| serde_json::from_str::<Json>(&v).unwrap_or(Json::String(v))) {
            Some(Json::String(s)) => out.append_value(s),
            Some(Json::Null) | None => out.append_null(),
            Some(other) => out.append_value(other.to_string()),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// One row of an argument as JSON.
fn json_at(a: &ArrayRef, i: usize) -> Json {
    if a.is_null(i) {
        return Json::Null;
    }
    match a.data_type() {
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>().value(i);
            serde_json::from_str(s).unwrap_or(Json::String(s.into()))
        }
        DataType::Boolean => Json::Bool(a.as_boolean().value(i)),
        t if t.is_integer() => cast(&a.slice(i, 1), &DataType::Int64)
            .ok()
            .map(|x| {
                Json::from(
                    x.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(0),
                )
            })
            .unwrap_or(Json::Null),
        t if t.is_numeric() => cast(&a.slice(i, 1), &DataType::Float64)
            .ok()
            .and_then(|x| {
                serde_json::Number::from_f64(
                    x.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .value(0),
                )
            })
            .map(Json::Number)
            .unwrap_or(Json::Null),
        _ => cast(&a.slice(i, 1), &DataType::Utf8)
            .ok()
            .map(|x| Json::String(x.as_string::<i32>().value(0).to_string()))
            .unwrap_or(Json::Null),
    }
}

/// `OBJECT_CONSTRUCT(k1, v1, …)`: pairs with a NULL value are left out, as in Snowflake.
fn object_construct(args: &[ArrayRef]) -> Result<ArrayRef> {
    if args.len() % 2 != 0 {
        return exec_err!("OBJECT_CONSTRUCT takes key-value pairs");
    }
    let rows = args.first().map_or(1, |a| a.len());
    let out = (0..rows).map(|i| {
        let mut object = serde_json::Map::new();
        for pair in args.chunks(2) {
            let (Json::String(k), v) = (json_at(&pair[0], i), json_at(&pair[1], i)) else {
                continue;
            };
            if !v.is_null() {
                object.insert(k, v);
            }
        }
        Some(Json::Object(object))
    });
    Ok(variants(out.collect::<Vec<_>>()))
}

/// `x::VARIANT`: the value as a semi-structured one (a string stays a string).
fn to_variant(args: &[ArrayRef]) -> Result<ArrayRef> {
    let a = &args[0];
    Ok(variants(
        (0..a.len())
            .map(|i| Some(json_at(a, i)).filter(|v| !v.is_null()))
            .collect::<Vec<_>>(),
    ))
}
