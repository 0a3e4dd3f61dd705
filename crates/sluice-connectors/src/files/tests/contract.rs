//! The conformance check on every format.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;
use sluice_core::config::OnError;

use super::{fixture, project, source};
use crate::conformance::{ConformanceOptions, check_source};

#[tokio::test]
async fn csv_jsonl_and_parquet_streams_keep_the_contract() {
    let dir = project(&[
        ("csv/a.csv", b"id,name\n1,a\n2,b\n"),
        ("csv/b.csv", b"id,name,extra\n3,c,1.5\n"),
        ("json/e.jsonl", &fixture("nested.jsonl")),
        ("csv/empty/e.csv", b""),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["a", "b"])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.path().join("p.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let src = source(
        dir.path(),
        json!({
            "streams": {
                "csv": {"path": "csv/**/*.csv"},
                "jsonl": {"path": "json/*.jsonl"},
                "parquet": {"path": "p.parquet"},
                "cursored": {"path": "csv/*.csv", "cursor": "id"},
                "full": {"path": "csv/a.csv", "replication": "full"},
            }
        }),
    );
    let options = ConformanceOptions {
        batch_size: 1,
        on_error: OnError::Fail,
        incremental: vec![
            "csv".into(),
            "jsonl".into(),
            "parquet".into(),
            "cursored".into(),
        ],
    };
    let reports = check_source(&src, &options).await.unwrap();
    let rows: Vec<(String, u64, u64)> = reports
        .iter()
        .map(|r| (r.name.clone(), r.rows, r.reread_rows))
        .collect();
    assert_eq!(
        rows,
        [
            ("csv".to_string(), 3, 0),
            ("jsonl".to_string(), 2, 0),
            ("parquet".to_string(), 2, 0),
            ("cursored".to_string(), 3, 0),
            ("full".to_string(), 2, 2),
        ]
    );
}

#[tokio::test]
async fn quarantining_streams_keep_the_contract() {
    let dir = project(&[
        ("w.csv", &fixture("wrong_field_count.csv")),
        ("b.jsonl", &fixture("bad_lines.jsonl")),
    ]);
    let src = source(
        dir.path(),
        json!({"streams": {"w": {"path": "w.csv"}, "b": {"path": "b.jsonl", "infer_rows": 2}}}),
    );
    let options = ConformanceOptions {
        batch_size: 2,
        on_error: OnError::Quarantine,
        incremental: vec!["w".into(), "b".into()],
    };
    let reports = check_source(&src, &options).await.unwrap();
    assert_eq!(reports[0].quarantined, 2);
    assert_eq!(reports[1].quarantined, 2);
}
