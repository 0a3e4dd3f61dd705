use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;
use sluice_core::TableName;
use sluice_core::config::{FileDestination as Cfg, WriteMode};
use sluice_core::connector::{Checkpoint, Destination, WriteRequest};

use super::FileDestination;

fn batch(ids: &[i64]) -> RecordBatch {
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

fn req(mode: WriteMode, run: &str) -> WriteRequest {
    WriteRequest {
        table: TableName::new("shop", "orders"),
        mode,
        primary_key: vec![],
        full_refresh: false,
        run_id: run.into(),
        stream_id: "shop.orders".into(),
        evolution: Default::default(),
        on_error: sluice_core::config::OnError::Fail,
    }
}

async fn load(dest: &FileDestination, mode: WriteMode, run: &str, ids: &[i64]) {
    let mut w = dest.open(req(mode, run)).await.unwrap();
    w.write(batch(ids)).await.unwrap();
    w.checkpoint(
        1,
        &Checkpoint {
            state: json!({}),
            position: String::new(),
        },
    )
    .await
    .unwrap();
    w.finish().await.unwrap().unwrap();
}

fn parts(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("part-"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn csv_append_then_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let dest = FileDestination::new(
        &Cfg {
            kind: "csv".into(),
            path: "out".into(),
            compression: None,
        },
        dir.path(),
    )
    .unwrap();
    load(&dest, WriteMode::Append, "r1", &[1, 2]).await;
    load(&dest, WriteMode::Append, "r2", &[3]).await;
    let tdir = dir.path().join("out/shop/orders");
    assert_eq!(parts(&tdir), ["part-r1-00001.csv", "part-r2-00001.csv"]);
    let text = std::fs::read_to_string(tdir.join("part-r1-00001.csv")).unwrap();
    assert_eq!(text, "id,name\n1,n1\n2,n2\n");
    load(&dest, WriteMode::Overwrite, "r3", &[9]).await;
    assert_eq!(parts(&tdir), ["part-r3-00001.csv"]);
}

#[tokio::test]
async fn parquet_parts_are_readable_and_merge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dest = FileDestination::new(
        &Cfg {
            kind: "parquet".into(),
            path: "out".into(),
            compression: Some("zstd".into()),
        },
        dir.path(),
    )
    .unwrap();
    load(&dest, WriteMode::Append, "r1", &[1, 2, 3]).await;
    let file =
        std::fs::File::open(dir.path().join("out/shop/orders/part-r1-00001.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 3);
    let err = dest.open(req(WriteMode::Merge, "r2")).await.err().unwrap();
    assert!(err.to_string().contains("does not support"), "{err}");
    assert!(!dest.supports(WriteMode::Merge));
}

#[tokio::test]
async fn abort_leaves_no_part() {
    let dir = tempfile::tempdir().unwrap();
    let dest = FileDestination::new(
        &Cfg {
            kind: "jsonl".into(),
            path: "out".into(),
            compression: None,
        },
        dir.path(),
    )
    .unwrap();
    let mut w = dest.open(req(WriteMode::Append, "r1")).await.unwrap();
    w.write(batch(&[1])).await.unwrap();
    w.abort().await;
    let tdir = dir.path().join("out/shop/orders");
    assert!(parts(&tdir).is_empty());
}

#[tokio::test]
async fn schema_rules_apply_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dest = FileDestination::new(
        &Cfg {
            kind: "jsonl".into(),
            path: "out".into(),
            compression: None,
        },
        dir.path(),
    )
    .unwrap();
    load(&dest, WriteMode::Append, "r1", &[1]).await;
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let mut w = dest.open(req(WriteMode::Append, "r2")).await.unwrap();
    let err = w.write(bad).await.unwrap_err();
    assert!(err.to_string().contains("changed type"), "{err}");
}

#[tokio::test]
async fn file_destinations_pass_the_conformance_check() {
    use crate::conformance::destination::{DestinationCheck, check_destination};
    for kind in ["parquet", "csv", "jsonl"] {
        let dir = tempfile::tempdir().unwrap();
        let dest = FileDestination::new(
            &Cfg {
                kind: kind.into(),
                path: "out".into(),
                compression: None,
            },
            dir.path(),
        )
        .unwrap();
        let root = dir.path().join("out");
        let count = |t: TableName| {
            let folder = root.join(&t.schema).join(&t.name);
            async move { count_rows(&folder) }
        };
        check_destination(
            &dest,
            DestinationCheck {
                table: TableName::new("conformance", "t"),
                tracks_state: false,
                count_rows: &count,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

/// Rows in the visible part files of a folder.
fn count_rows(folder: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("part-") || name.ends_with(".tmp") {
            continue;
        }
        let path = e.path();
        n += if name.ends_with(".parquet") {
            let f = std::fs::File::open(&path).unwrap();
            parquet::file::reader::SerializedFileReader::new(f)
                .map(|r| {
                    parquet::file::reader::FileReader::metadata(&r)
                        .file_metadata()
                        .num_rows() as u64
                })
                .unwrap()
        } else if name.ends_with(".csv") {
            std::fs::read_to_string(&path).unwrap().lines().count() as u64 - 1
        } else {
            std::fs::read_to_string(&path).unwrap().lines().count() as u64
        };
    }
    n
}
