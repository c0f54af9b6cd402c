//! Unit tests of the value model: exact decimals, every JSON cell type (nulls included), bad
//! cells, JSON rendering, and the floor division of scaled times.

use chrono::{DateTime, NaiveDate, NaiveTime};

use super::json::{decode_json_cell, decode_json_rows};
use super::time::split_scaled;
use super::{Column, ColumnType, Decimal, Value};

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
