//! JSON Lines and Parquet through the whole `Source`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::json;
use sluice_core::config::OnError;

use super::{bad_record, fixture, project, read, source};

#[tokio::test]
async fn jsonl_rows_with_timestamps_inferred_from_strings() {
    let dir = project(&[("e.jsonl", &fixture("bad_lines.jsonl"))]);
    let src = source(dir.path(), json!({"path": "e.jsonl", "infer_rows": 2}));
    let (location, message) = bad_record(read(&src, "e", None, OnError::Fail).await);
    assert_eq!(location.line, Some(4));
    assert_eq!(
        message,
        "the line ends inside a JSON value (truncated record)"
    );

    let run = read(&src, "e", None, OnError::Quarantine).await.unwrap();
    let types: Vec<DataType> = run.schemas[0]
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Int64,
            DataType::Utf8,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        ]
    );
    assert_eq!(run.column("id"), ["1", "2", "5"]);
    let q = run.quarantine();
    assert_eq!(
        q.iter().map(|r| r.line).collect::<Vec<_>>(),
        [Some(4), Some(5)]
    );
    assert_eq!(
        (q[1].column.as_deref(), q[1].value.as_deref()),
        (Some("id"), Some("x"))
    );
    assert_eq!(
        q[1].reason,
        "expected int64 (inferred from the first 2 lines)"
    );
    assert_eq!(
        q[1].record.as_deref(),
        Some(r#"{"id": "x", "name": "carol", "at": "2024-01-03T10:00:00Z"}"#)
    );
    assert_eq!(run.state()["files"]["e.jsonl"]["rows"], 3);
}

#[tokio::test]
async fn jsonl_nested_values_as_structs_or_json_text() {
    let dir = project(&[("n.jsonl", &fixture("nested.jsonl"))]);
    let run = read(
        &source(dir.path(), json!({"path": "n.jsonl"})),
        "n",
        None,
        OnError::Fail,
    )
    .await
    .unwrap();
    let schema = run.schemas[0].clone();
    assert!(matches!(
        schema.field_with_name("user").unwrap().data_type(),
        DataType::Struct(_)
    ));
    assert!(matches!(
        schema.field_with_name("items").unwrap().data_type(),
        DataType::List(_)
    ));
    assert_eq!(run.rows(), 2);

    let src = source(
        dir.path(),
        json!({"path": "n.jsonl", "json": {"nested": "json"}}),
    );
    let run = read(&src, "n", None, OnError::Fail).await.unwrap();
    let schema = run.schemas[0].clone();
    assert_eq!(
        schema.field_with_name("user").unwrap().data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        run.column("user"),
        [
            r#"{"name":"alice","tags":["a","b"]}"#,
            r#"{"name":"bob","tags":[]}"#
        ]
    );
    assert_eq!(run.column("items"), [r#"[{"sku":"x","qty":2}]"#, "[]"]);
}

#[tokio::test]
async fn jsonl_fields_outside_the_sample_are_not_dropped_silently() {
    let dir = project(&[("s.jsonl", b"{\"a\": 1}\n{\"a\": 2, \"b\": \"late\"}\n")]);
    let src = source(dir.path(), json!({"path": "s.jsonl", "infer_rows": 1}));
    let (location, message) = bad_record(read(&src, "s", None, OnError::Fail).await);
    assert_eq!(
        (location.line, location.column.as_deref()),
        (Some(2), Some("b"))
    );
    assert_eq!(
        message,
        "field `b` is not in the schema inferred from the first 1 lines"
    );
    // Declaring it is the fix.
    let src = source(
        dir.path(),
        json!({"path": "s.jsonl", "infer_rows": 1, "columns": {"b": "string", "a": "decimal(5,1)"}}),
    );
    let run = read(&src, "s", None, OnError::Fail).await.unwrap();
    assert_eq!(run.column("b"), ["NULL", "late"]);
    assert_eq!(run.column("a"), ["1.0", "2.0"]);
}

fn write_parquet(path: &std::path::Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn sample_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("code", DataType::Utf8, true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "local",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(StringArray::from(vec![Some("10"), Some("x"), None])),
        Arc::new(
            TimestampNanosecondArray::from(vec![1_700_000_000_123_456_789, 0, 1])
                .with_timezone("UTC"),
        ),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_000),
            None,
            Some(2_500),
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

#[tokio::test]
async fn parquet_timestamps_become_microseconds() {
    let dir = project(&[]);
    write_parquet(&dir.path().join("p.parquet"), &sample_batch());
    let run = read(
        &source(dir.path(), json!({"path": "p.parquet"})),
        "p",
        None,
        OnError::Fail,
    )
    .await
    .unwrap();
    let schema = run.schemas[0].clone();
    assert_eq!(
        schema.field(2).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        schema.field(3).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(run.column("at")[0], "2023-11-14T22:13:20.123456Z");
    assert_eq!(
        run.column("local"),
        ["1970-01-01T00:00:01", "NULL", "1970-01-01T00:00:02.500"]
    );
    let size = std::fs::metadata(dir.path().join("p.parquet"))
        .unwrap()
        .len();
    assert_eq!(run.progress.bytes, size);
}

#[tokio::test]
async fn parquet_declared_casts_locate_bad_values() {
    let dir = project(&[]);
    write_parquet(&dir.path().join("p.parquet"), &sample_batch());
    let src = source(
        dir.path(),
        json!({"path": "p.parquet", "columns": {"code": "int64"}}),
    );
    let (location, message) = bad_record(read(&src, "p", None, OnError::Fail).await);
    assert_eq!(
        (
            location.record,
            location.column.as_deref(),
            location.value.as_deref()
        ),
        (Some(2), Some("code"), Some("x"))
    );
    assert_eq!(message, "expected int64 (declared in `columns:`)");
    let run = read(&src, "p", None, OnError::Quarantine).await.unwrap();
    assert_eq!(run.column("code"), ["10", "NULL"]);
    let q = run.quarantine();
    assert!(
        q[0].record.as_deref().unwrap().contains(r#""code":"x""#),
        "{q:?}"
    );
}

#[tokio::test]
async fn corrupt_parquet_names_the_file() {
    let dir = project(&[("bad/corrupt.parquet", &fixture("corrupt.parquet"))]);
    let src = source(dir.path(), json!({"path": "bad/*.parquet", "stream": "p"}));
    let err = read(&src, "p", None, OnError::Fail).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`bad/corrupt.parquet` is not a readable Parquet file"),
        "{err}"
    );
}
