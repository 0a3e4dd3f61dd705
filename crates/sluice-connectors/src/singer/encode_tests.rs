//! Arrow → Singer encoding: the schema mapping, the exact text of values,
//! and round trips through `schema::stream_schema` and the message parser.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
    Int64Array, ListArray, MapBuilder, StringArray, StringBuilder, StructArray,
    Time64MicrosecondArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema, SchemaRef, TimeUnit};
use serde_json::{Value, json};

use super::*;
use crate::singer::message::{SingerMessage, parse};
use crate::singer::stream_schema;

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Every type `schema.rs` produces, nullable, as a tap's stream would have them.
fn round_trip_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("amount", DataType::Decimal128(12, 2), true),
        Field::new("name", DataType::Utf8, true),
        Field::new("active", DataType::Boolean, true),
        Field::new("updated_at", utc(), true),
        Field::new("day", DataType::Date32, true),
        Field::new("at", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new(
            "address",
            DataType::Struct(Fields::from(vec![
                Field::new("city", DataType::Utf8, true),
                Field::new("zip", DataType::Int64, true),
            ])),
            true,
        ),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            true,
        ),
    ]))
}

fn round_trip_batch() -> RecordBatch {
    let schema = round_trip_schema();
    let address = StructArray::new(
        Fields::from(vec![
            Field::new("city", DataType::Utf8, true),
            Field::new("zip", DataType::Int64, true),
        ]),
        vec![
            Arc::new(StringArray::from(vec![Some("Lyon"), None, Some("Oslo")])) as ArrayRef,
            Arc::new(Int64Array::from(vec![Some(69001), None, None])),
        ],
        Some(vec![true, false, true].into()),
    );
    let tags = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
        Some(vec![]),
    ]);
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![Some(1), Some(-2), None])),
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-0.25)])),
            Arc::new(
                Decimal128Array::from(vec![Some(1230), Some(-5), None])
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec![
                Some("a \"quoted\"\nline"),
                Some("é ✓"),
                None,
            ])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(1_714_564_800_000_000),
                    Some(1_714_564_800_250_000),
                    None,
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(Date32Array::from(vec![Some(19_844), None, Some(0)])),
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(43_200_000_000),
                Some(1),
                None,
            ])),
            Arc::new(address),
            Arc::new(tags),
        ],
    )
    .unwrap()
}

fn lines(out: &[u8]) -> Vec<Value> {
    out.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn schema_maps_every_type_family() {
    let schema = Schema::new(vec![
        Field::new("i8", DataType::Int8, false),
        Field::new("u64", DataType::UInt64, true),
        Field::new("f32", DataType::Float32, true),
        Field::new("d", DataType::Decimal128(38, 9), true),
        Field::new("neg", DataType::Decimal128(5, -2), true),
        Field::new("s", DataType::LargeUtf8, true),
        Field::new("b", DataType::Boolean, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            true,
        ),
        Field::new("naive", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("d32", DataType::Date32, true),
        Field::new("d64", DataType::Date64, true),
        Field::new("t", DataType::Time32(TimeUnit::Millisecond), true),
        Field::new("bin", DataType::Binary, true),
        Field::new(
            "dict",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("dur", DataType::Duration(TimeUnit::Second), true),
    ]);
    let js = json_schema(&schema);
    let p = &js["properties"];
    assert_eq!(js["type"], "object");
    assert_eq!(p["i8"], json!({"type": "integer"}));
    assert_eq!(p["u64"], json!({"type": ["integer", "null"]}));
    assert_eq!(p["f32"], json!({"type": ["number", "null"]}));
    assert_eq!(
        p["d"],
        json!({"type": ["number", "null"], "format": "singer.decimal", "precision": 38, "scale": 9})
    );
    assert_eq!(p["neg"], json!({"type": ["number", "null"]}));
    assert_eq!(p["s"], json!({"type": ["string", "null"]}));
    assert_eq!(p["b"], json!({"type": ["boolean", "null"]}));
    assert_eq!(
        p["ts"],
        json!({"type": ["string", "null"], "format": "date-time"})
    );
    assert_eq!(p["naive"]["format"], "date-time");
    assert_eq!(
        p["d32"],
        json!({"type": ["string", "null"], "format": "date"})
    );
    assert_eq!(p["d64"]["format"], "date-time");
    assert_eq!(
        p["t"],
        json!({"type": ["string", "null"], "format": "time"})
    );
    assert_eq!(
        p["bin"],
        json!({"type": ["string", "null"], "contentEncoding": "base64"})
    );
    assert_eq!(p["dict"], json!({"type": ["string", "null"]}));
    assert_eq!(p["dur"], json!({"type": ["string", "null"]}));
    // Property order is column order.
    let names: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(names[0], "i8");
    assert_eq!(names[14], "dur");
}

#[test]
fn schema_round_trips_through_stream_schema() {
    let schema = round_trip_schema();
    let js = json_schema(&schema);
    let back = stream_schema("orders", &js, &["id".to_string()]).unwrap();
    assert_eq!(back.schema, schema);
    assert!(back.notes.is_empty(), "{:?}", back.notes);
    assert_eq!(back.key_properties, ["id"]);
}

#[test]
fn records_round_trip_through_the_parser_and_arrow_json() {
    let batch = round_trip_batch();
    let mut out = Vec::new();
    RecordEncoder::new("orders")
        .encode(&batch, &mut out)
        .unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(text.lines().count(), 3);
    // The reader side: envelope scan, then arrow-json with the mapped schema.
    let schema = stream_schema("orders", &json_schema(&batch.schema()), &[])
        .unwrap()
        .schema;
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .build_decoder()
        .unwrap();
    for line in text.lines() {
        match parse(line.as_bytes()).unwrap() {
            SingerMessage::Record {
                stream,
                record,
                version,
            } => {
                assert_eq!(stream, "orders");
                assert_eq!(version, None);
                decoder.decode(record).unwrap();
            }
            other => panic!("not a record: {other:?}"),
        }
    }
    let decoded = decoder.flush().unwrap().unwrap();
    assert_eq!(decoded, batch);
}

#[test]
fn values_are_written_as_singer_expects() {
    let batch = round_trip_batch();
    let mut out = Vec::new();
    RecordEncoder::new("orders")
        .encode(&batch, &mut out)
        .unwrap();
    let rows = lines(&out);
    assert_eq!(rows[0]["type"], "RECORD");
    assert_eq!(rows[0]["stream"], "orders");
    let r0 = &rows[0]["record"];
    let r1 = &rows[1]["record"];
    let r2 = &rows[2]["record"];
    assert_eq!(r0["updated_at"], "2024-05-01T12:00:00Z");
    assert_eq!(r1["updated_at"], "2024-05-01T12:00:00.250Z");
    assert_eq!(r0["day"], "2024-05-01");
    assert_eq!(r0["at"], "12:00:00");
    assert_eq!(r1["at"], "00:00:00.000001");
    assert_eq!(r0["address"], json!({"city": "Lyon", "zip": 69001}));
    assert_eq!(r1["address"], Value::Null);
    assert_eq!(r0["tags"], json!([1, 2]));
    assert_eq!(r2["tags"], json!([]));
    // Nulls are explicit: every property is in every record.
    assert_eq!(r2["id"], Value::Null);
    assert!(r2.as_object().unwrap().contains_key("id"));
    // Decimals are numbers with their exact digits.
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""amount":12.30"#), "{text}");
    assert!(text.contains(r#""amount":-0.05"#), "{text}");
}

#[test]
fn zoned_timestamps_are_utc_with_z_and_naive_ones_have_no_offset() {
    let paris =
        TimestampMillisecondArray::from(vec![Some(1_714_564_800_123)]).with_timezone("+02:00");
    let naive = TimestampMillisecondArray::from(vec![Some(1_714_564_800_000)]);
    let batch = RecordBatch::try_from_iter(vec![
        ("zoned", Arc::new(paris) as ArrayRef),
        ("naive", Arc::new(naive) as ArrayRef),
    ])
    .unwrap();
    let mut out = Vec::new();
    RecordEncoder::new("s").encode(&batch, &mut out).unwrap();
    let r = &lines(&out)[0]["record"];
    assert_eq!(r["zoned"], "2024-05-01T12:00:00.123Z");
    assert_eq!(r["naive"], "2024-05-01T12:00:00");
}

#[test]
fn binary_is_base64_and_nan_is_null_and_maps_are_text() {
    let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Array::builder(2));
    map.keys().append_value("a");
    map.values().append_value(1);
    map.append(true).unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "bin",
            Arc::new(BinaryArray::from(vec![b"foob".as_slice()])) as ArrayRef,
        ),
        (
            "f",
            Arc::new(Float64Array::from(vec![f64::NAN])) as ArrayRef,
        ),
        ("m", Arc::new(map.finish()) as ArrayRef),
    ])
    .unwrap();
    let mut out = Vec::new();
    RecordEncoder::new("s").encode(&batch, &mut out).unwrap();
    let r = &lines(&out)[0]["record"];
    assert_eq!(r["bin"], "Zm9vYg==");
    assert_eq!(r["f"], Value::Null);
    assert!(r["m"].is_string(), "{r}");
    assert_eq!(
        json_schema(&batch.schema())["properties"]["m"],
        json!({"type": "string"})
    );
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        let mut out = Vec::new();
        base64_into(input.as_bytes(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "{input}");
    }
    let mut out = Vec::new();
    base64_into(&[0xff, 0xfe, 0x00], &mut out);
    assert_eq!(out, b"//4A");
}

#[test]
fn envelope_escapes_the_stream_and_carries_the_version() {
    let batch = RecordBatch::try_from_iter(vec![(
        "id",
        Arc::new(Int64Array::from(vec![7])) as ArrayRef,
    )])
    .unwrap();
    let mut out = Vec::new();
    RecordEncoder::new("we\"ird")
        .with_version(1_700_000_000)
        .encode(&batch, &mut out)
        .unwrap();
    let m = &lines(&out)[0];
    assert_eq!(
        *m,
        json!({"type": "RECORD", "stream": "we\"ird", "record": {"id": 7}, "version": 1_700_000_000})
    );
    match parse(out.strip_suffix(b"\n").unwrap()).unwrap() {
        SingerMessage::Record { version, .. } => assert_eq!(version, Some(1_700_000_000)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_messages() {
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
    let line = schema_line("orders", &schema, &["id".into()], &["id".into()]);
    assert!(line.ends_with(b"\n"));
    match parse(line.strip_suffix(b"\n").unwrap()).unwrap() {
        SingerMessage::Schema {
            stream,
            key_properties,
            bookmark_properties,
            ..
        } => {
            assert_eq!(stream, "orders");
            assert_eq!(key_properties, ["id"]);
            assert_eq!(bookmark_properties, ["id"]);
        }
        other => panic!("{other:?}"),
    }
    let state = state_line(&json!({"bookmarks": {"orders": {"n": 1}}}));
    assert_eq!(
        serde_json::from_slice::<Value>(&state).unwrap(),
        json!({"type": "STATE", "value": {"bookmarks": {"orders": {"n": 1}}}})
    );
    let av = activate_version_line("orders", 5);
    match parse(av.strip_suffix(b"\n").unwrap()).unwrap() {
        SingerMessage::ActivateVersion { stream, version } => {
            assert_eq!(stream, "orders");
            assert_eq!(version, 5);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn projection_keeps_the_selected_columns_in_order() {
    let batch = round_trip_batch();
    let kept = project(&batch, &|c| c == "name" || c == "id").unwrap();
    let schema = kept.schema();
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["id", "name"]);
    let all = project(&batch, &|_| true).unwrap();
    assert_eq!(all, batch);
}
