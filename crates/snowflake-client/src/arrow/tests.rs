//! Unit tests of the Arrow decoder: Arrow IPC streams written with `arrow-ipc`'s own writer, one
//! column of every Snowflake type with nulls and scales, both timestamp struct layouts, and
//! mismatched encodings.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
    Int64Array, Int8Array, NullArray, RecordBatch, StringArray, StructArray,
};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Fields, Schema};

use super::decode_ipc_stream;
use crate::value::{Column, ColumnType, Value};

fn column(t: &str, scale: u32) -> Column {
    Column {
        name: t.to_uppercase(),
        column_type: ColumnType::from_name(t),
        nullable: true,
        precision: None,
        scale: Some(scale),
        length: None,
    }
}

fn ipc(arrays: Vec<ArrayRef>) -> Vec<u8> {
    let fields: Vec<Field> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    out
}

fn ts_struct(epoch: Vec<Option<i64>>, fraction: Vec<i32>, tz: Option<Vec<i32>>) -> ArrayRef {
    let nulls: Vec<bool> = epoch.iter().map(Option::is_some).collect();
    let mut fields = vec![
        (
            Arc::new(Field::new("epoch", DataType::Int64, false)),
            Arc::new(Int64Array::from(
                epoch.iter().map(|e| e.unwrap_or(0)).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            Arc::new(Field::new("fraction", DataType::Int32, false)),
            Arc::new(Int32Array::from(fraction)) as ArrayRef,
        ),
    ];
    if let Some(tz) = tz {
        fields.push((
            Arc::new(Field::new("timezone", DataType::Int32, false)),
            Arc::new(Int32Array::from(tz)) as ArrayRef,
        ));
    }
    let (f, a): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    Arc::new(StructArray::new(Fields::from(f), a, Some(nulls.into())))
}

#[test]
fn every_type_with_nulls_and_scales() {
    let columns = vec![
        column("fixed", 2),
        column("fixed", 0),
        column("fixed", 0),
        column("real", 0),
        column("text", 0),
        column("boolean", 0),
        column("date", 0),
        column("time", 9),
        column("timestamp_ntz", 9),
        column("timestamp_ltz", 3),
        column("timestamp_tz", 9),
        column("variant", 0),
        column("binary", 0),
        column("text", 0),
    ];
    let bytes = ipc(vec![
        Arc::new(Int64Array::from(vec![Some(-1250), None])),
        Arc::new(
            Decimal128Array::from(vec![Some(12_345i128), None])
                .with_precision_and_scale(38, 3)
                .unwrap(),
        ),
        Arc::new(Int8Array::from(vec![Some(7), None])),
        Arc::new(Float64Array::from(vec![Some(2.5), None])),
        Arc::new(StringArray::from(vec![Some("héllo"), None])),
        Arc::new(BooleanArray::from(vec![Some(true), None])),
        Arc::new(Date32Array::from(vec![Some(19000), None])),
        Arc::new(Int64Array::from(vec![Some(3_723_000_000_500), None])),
        ts_struct(vec![Some(1_700_000_000), None], vec![123_456_789, 0], None),
        Arc::new(Int64Array::from(vec![Some(-500), None])),
        ts_struct(
            vec![Some(1_700_000_000), None],
            vec![0, 0],
            Some(vec![1500, 1440]),
        ),
        Arc::new(StringArray::from(vec![Some("{\"a\":[1,2]}"), None])),
        Arc::new(BinaryArray::from(vec![Some(&b"\x01\xff"[..]), None])),
        Arc::new(NullArray::new(2)),
    ]);
    let rows = decode_ipc_stream(&columns, &bytes).unwrap();
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r[0].to_string(), "-12.50");
    assert_eq!(r[1].to_string(), "12.345");
    assert_eq!(r[2].to_string(), "7");
    assert_eq!(r[3], Value::Real(2.5));
    assert_eq!(r[4], Value::Text("héllo".into()));
    assert_eq!(r[5], Value::Boolean(true));
    assert_eq!(r[6].to_string(), "2022-01-08");
    assert_eq!(r[7].to_string(), "01:02:03.000000500");
    assert_eq!(r[8].to_string(), "2023-11-14 22:13:20.123456789");
    assert_eq!(r[9].to_string(), "1969-12-31 23:59:59.500 +00:00");
    assert_eq!(r[10].to_string(), "2023-11-14 23:13:20 +01:00");
    assert_eq!(r[11].to_json()["a"][1], 2);
    assert_eq!(r[12], Value::Binary(vec![1, 255]));
    assert_eq!(r[13], Value::Null);
    assert!(rows[1].iter().all(Value::is_null), "{:?}", rows[1]);
}

#[test]
fn tz_struct_with_scaled_epoch_and_no_fraction() {
    let epoch = Arc::new(Int64Array::from(vec![1_700_000_000_123i64]));
    let tz = Arc::new(Int32Array::from(vec![1440 - 300]));
    let s: ArrayRef = Arc::new(StructArray::new(
        Fields::from(vec![
            Field::new("epoch", DataType::Int64, false),
            Field::new("timezone", DataType::Int32, false),
        ]),
        vec![epoch as ArrayRef, tz as ArrayRef],
        None,
    ));
    let rows = decode_ipc_stream(&[column("timestamp_tz", 3)], &ipc(vec![s])).unwrap();
    assert_eq!(rows[0][0].to_string(), "2023-11-14 17:13:20.123 -05:00");
}

#[test]
fn mismatched_encodings_are_protocol_errors() {
    let bytes = ipc(vec![Arc::new(BooleanArray::from(vec![true]))]);
    let e = decode_ipc_stream(&[column("date", 0)], &bytes).unwrap_err();
    assert!(e.message().contains("column DATE"), "{e}");
    let e = decode_ipc_stream(&[column("date", 0), column("text", 0)], &bytes).unwrap_err();
    assert!(e.message().contains("rowtype describes 2"), "{e}");
    let e = decode_ipc_stream(&[column("text", 0)], b"not arrow").unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Protocol);
    assert!(decode_ipc_stream(&[column("text", 0)], b"")
        .unwrap()
        .is_empty());
}
