//! Lake writer tests against real Delta tables in temp folders.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;
use sluice_core::TableName;
use sluice_core::config::WriteMode;
use sluice_core::connector::{Checkpoint, CommittedState, Destination, WriteRequest};
use sluice_core::evolution::EvolutionPolicy;
use sluice_core::quarantine::{QuarantineBuilder, QuarantinedRow};

use crate::{Lake, LakeDestination, QueryEngine};

fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

fn request(mode: WriteMode) -> WriteRequest {
    WriteRequest {
        table: TableName::new("shop", "orders"),
        mode,
        primary_key: vec!["id".into()],
        full_refresh: false,
        run_id: "run-1".into(),
        stream_id: "shop.orders".into(),
        evolution: EvolutionPolicy::default(),
        on_error: sluice_core::config::OnError::Fail,
    }
}

fn cp(n: u64) -> Checkpoint {
    Checkpoint {
        state: json!({ "n": n }),
        position: format!("file {n}"),
    }
}

async fn query(lake: &Lake, sql: &str) -> Vec<RecordBatch> {
    let engine = QueryEngine::new(lake).await.unwrap();
    engine.sql(sql).await.unwrap().collect().await.unwrap()
}

async fn rows_of(lake: &Lake, sql: &str) -> Vec<String> {
    let batches = query(lake, sql).await;
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| arrow::util::display::array_value_to_string(b.column(c), r).unwrap())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

async fn write_all(
    dest: &LakeDestination,
    req: WriteRequest,
    batches: Vec<RecordBatch>,
    seq: u64,
) -> sluice_core::connector::Committed {
    let mut w = dest.open(req).await.unwrap();
    for b in batches {
        w.write(b).await.unwrap();
    }
    w.checkpoint(seq, &cp(seq)).await.unwrap();
    w.finish().await.unwrap().expect("a commit")
}

fn setup() -> (tempfile::TempDir, Lake, LakeDestination) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::from_config(dir.path(), None, []).unwrap();
    let dest = LakeDestination::new(lake.clone());
    (dir, lake, dest)
}

#[tokio::test]
async fn append_commits_data_with_its_checkpoint() {
    let (_d, lake, dest) = setup();
    let t = TableName::new("shop", "orders");
    assert_eq!(
        dest.committed_state(&t, "shop.orders").await.unwrap(),
        CommittedState::NoTable
    );
    let c = write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[1, 2], &["a", "b"])],
        1,
    )
    .await;
    assert_eq!((c.seq, c.rows), (1, 2));
    write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[3], &["c"])],
        2,
    )
    .await;
    match dest.committed_state(&t, "shop.orders").await.unwrap() {
        CommittedState::Table(Some(s)) => {
            assert_eq!(s.seq, 2);
            assert_eq!(s.value, json!({"n": 2}));
            assert_eq!(s.run_id.as_deref(), Some("run-1"));
        }
        other => panic!("{other:?}"),
    }
    let info = lake.info(&t).await.unwrap();
    assert_eq!(info.rows, 3);
    assert_eq!(info.last_run_id.as_deref(), Some("run-1"));
    assert_eq!(
        rows_of(&lake, "SELECT id, name FROM shop.orders ORDER BY id").await,
        ["1|a", "2|b", "3|c"]
    );
    assert_eq!(lake.list().await.unwrap(), vec![t]);
}

#[tokio::test]
async fn abort_leaves_nothing_visible() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[1], &["a"])],
        1,
    )
    .await;
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(batch(&[2, 3], &["b", "c"])).await.unwrap();
    w.abort().await;
    drop(w);
    assert_eq!(
        rows_of(&lake, "SELECT count(*) FROM shop.orders").await,
        ["1"]
    );
}

#[tokio::test]
async fn overwrite_replaces_in_one_commit() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[1, 2], &["a", "b"])],
        1,
    )
    .await;
    write_all(
        &dest,
        request(WriteMode::Overwrite),
        vec![batch(&[9], &["z"])],
        2,
    )
    .await;
    assert_eq!(
        rows_of(&lake, "SELECT id, name FROM shop.orders").await,
        ["9|z"]
    );
}

#[tokio::test]
async fn overwrite_with_nothing_announced_keeps_the_table() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[1], &["a"])],
        1,
    )
    .await;
    let mut w = dest.open(request(WriteMode::Overwrite)).await.unwrap();
    w.checkpoint(2, &cp(2)).await.unwrap();
    let c = w.finish().await.unwrap().unwrap();
    assert_eq!(c.rows, 0);
    assert_eq!(
        rows_of(&lake, "SELECT count(*) FROM shop.orders").await,
        ["1"]
    );
}

#[tokio::test]
async fn merge_upserts_and_last_duplicate_wins() {
    let (_d, lake, dest) = setup();
    // First load into a new table, with a duplicate key inside the load.
    write_all(
        &dest,
        request(WriteMode::Merge),
        vec![batch(&[1, 2], &["a", "b"]), batch(&[2], &["b2"])],
        1,
    )
    .await;
    assert_eq!(
        rows_of(&lake, "SELECT id, name FROM shop.orders ORDER BY id").await,
        ["1|a", "2|b2"]
    );
    // Second load updates 1 and inserts 3.
    write_all(
        &dest,
        request(WriteMode::Merge),
        vec![batch(&[1, 3], &["a2", "c"])],
        2,
    )
    .await;
    assert_eq!(
        rows_of(&lake, "SELECT id, name FROM shop.orders ORDER BY id").await,
        ["1|a2", "2|b2", "3|c"]
    );
    match dest
        .committed_state(&TableName::new("shop", "orders"), "shop.orders")
        .await
        .unwrap()
    {
        CommittedState::Table(Some(s)) => assert_eq!(s.seq, 2),
        other => panic!("{other:?}"),
    }
    // Re-running the same load is idempotent.
    write_all(
        &dest,
        request(WriteMode::Merge),
        vec![batch(&[1, 3], &["a2", "c"])],
        3,
    )
    .await;
    assert_eq!(
        rows_of(&lake, "SELECT count(*) FROM shop.orders").await,
        ["3"]
    );
}

#[tokio::test]
async fn full_refresh_of_merge_dedupes_and_replaces() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Merge),
        vec![batch(&[1, 2], &["a", "b"])],
        1,
    )
    .await;
    let mut req = request(WriteMode::Merge);
    req.full_refresh = true;
    write_all(&dest, req, vec![batch(&[5, 5], &["x", "y"])], 2).await;
    assert_eq!(
        rows_of(&lake, "SELECT id, name FROM shop.orders").await,
        ["5|y"]
    );
}

#[tokio::test]
async fn new_columns_are_added_and_old_rows_read_null() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[1], &["a"])],
        1,
    )
    .await;
    let wider = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(StringArray::from(vec!["b"])),
            Arc::new(Float64Array::from(vec![2.5])),
        ],
    )
    .unwrap();
    let c = write_all(&dest, request(WriteMode::Append), vec![wider], 2).await;
    assert_eq!(c.changes.len(), 1, "{:?}", c.changes);
    assert_eq!(
        rows_of(&lake, "SELECT id, amount FROM shop.orders ORDER BY id").await,
        ["1|", "2|2.5"]
    );
}

#[tokio::test]
async fn int_widens_to_float_and_old_files_still_read() {
    let (_d, lake, dest) = setup();
    let ints = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![1, 2]))],
    )
    .unwrap();
    write_all(&dest, request(WriteMode::Append), vec![ints], 1).await;
    let floats = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, true)])),
        vec![Arc::new(Float64Array::from(vec![3.5]))],
    )
    .unwrap();
    let c = write_all(&dest, request(WriteMode::Append), vec![floats], 2).await;
    assert_eq!(c.changes.len(), 1);
    let batches = query(&lake, "SELECT v FROM shop.orders ORDER BY v").await;
    assert_eq!(batches[0].schema().field(0).data_type(), &DataType::Float64);
    assert_eq!(
        rows_of(&lake, "SELECT v FROM shop.orders ORDER BY v").await,
        ["1.0", "2.0", "3.5"]
    );
}

#[tokio::test]
async fn unsafe_type_change_is_refused_with_hint() {
    let (_d, _lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[1], &["a"])],
        1,
    )
    .await;
    let strings = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    let err = w.write(strings.clone()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("`id` changed type from int64 to string"),
        "{err}"
    );
    use sluice_core::error::Classify;
    assert!(err.hint().unwrap().contains("--full-refresh"));
    // With --full-refresh the new schema replaces the old one.
    let mut req = request(WriteMode::Append);
    req.full_refresh = true;
    write_all(&dest, req, vec![strings], 2).await;
}

#[tokio::test]
async fn quarantine_rows_land_next_to_the_table() {
    let (_d, lake, dest) = setup();
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(batch(&[1], &["a"])).await.unwrap();
    let mut q = QuarantineBuilder::default();
    q.push(&QuarantinedRow {
        file: Some("data/o.csv".into()),
        line: Some(7),
        column: Some("id".into()),
        value: Some("x".into()),
        reason: "expected int64".into(),
        record: None,
    });
    w.quarantine(q.finish().unwrap()).await.unwrap();
    w.checkpoint(1, &cp(1)).await.unwrap();
    let c = w.finish().await.unwrap().unwrap();
    assert_eq!((c.rows, c.quarantined), (1, 1));
    assert_eq!(
        rows_of(
            &lake,
            "SELECT run_id, stream, line, reason FROM shop.orders__quarantine"
        )
        .await,
        ["run-1|shop.orders|7|expected int64"]
    );
}

#[tokio::test]
async fn empty_stream_with_schema_creates_an_empty_table() {
    let (_d, lake, dest) = setup();
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(batch(&[], &[]).slice(0, 0)).await.unwrap();
    w.checkpoint(1, &cp(1)).await.unwrap();
    let c = w.finish().await.unwrap().unwrap();
    assert!(c.version.is_some());
    assert_eq!(
        rows_of(&lake, "SELECT count(*) FROM shop.orders").await,
        ["0"]
    );
    let batches = query(&lake, "SELECT * FROM shop.orders").await;
    let cols = batches.first().map(|b| b.num_columns()).unwrap_or(2);
    assert_eq!(cols, 2);
    let _ = batches.first().map(|b| b.column(0).len());
}

#[tokio::test]
async fn lake_passes_the_destination_conformance_check() {
    use sluice_connectors::conformance::destination::{DestinationCheck, check_destination};
    let (_d, lake, dest) = setup();
    let count = |t: TableName| {
        let lake = lake.clone();
        async move {
            let rows = rows_of(&lake, &format!("SELECT count(*) FROM {t}")).await;
            rows[0].parse::<u64>().unwrap()
        }
    };
    check_destination(
        &dest,
        DestinationCheck {
            table: TableName::new("conformance", "t"),
            tracks_state: true,
            count_rows: &count,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn merge_keeps_columns_the_source_did_not_send() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Merge),
        vec![batch(&[1, 2], &["a", "b"])],
        1,
    )
    .await;
    let ids_only = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![2, 3]))],
    )
    .unwrap();
    write_all(&dest, request(WriteMode::Merge), vec![ids_only], 2).await;
    assert_eq!(
        rows_of(&lake, "SELECT id, name FROM shop.orders ORDER BY id").await,
        ["1|a", "2|b", "3|"]
    );
}

/// Batches with different columns in ONE commit: each matched row updates
/// only the columns its own batch sent.
#[tokio::test]
async fn merge_within_one_commit_keeps_what_each_batch_did_not_send() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Merge),
        vec![batch(&[1, 2, 3], &["a", "b", "c"])],
        1,
    )
    .await;
    let ids_only = |ids: Vec<i64>| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(ids))],
        )
        .unwrap()
    };
    // id 1: only its key arrives (name kept); id 2: a new name; id 4: new
    // without a name; id 3: renamed, then its key alone again (the last
    // arrival wins, and it did not send `name`, so the stored one stays).
    write_all(
        &dest,
        request(WriteMode::Merge),
        vec![
            ids_only(vec![1]),
            batch(&[2, 3], &["b2", "c2"]),
            ids_only(vec![4, 3]),
        ],
        2,
    )
    .await;
    assert_eq!(
        rows_of(&lake, "SELECT id, name FROM shop.orders ORDER BY id").await,
        ["1|a", "2|b2", "3|c", "4|"]
    );
}

#[tokio::test]
async fn all_null_columns_take_the_table_type() {
    let (_d, lake, dest) = setup();
    write_all(
        &dest,
        request(WriteMode::Append),
        vec![batch(&[1], &["a"])],
        1,
    )
    .await;
    let nulls = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Null, true),
            Field::new("extra", DataType::Null, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(arrow::array::NullArray::new(1)),
            Arc::new(arrow::array::NullArray::new(1)),
        ],
    )
    .unwrap();
    let c = write_all(&dest, request(WriteMode::Append), vec![nulls], 2).await;
    assert_eq!(c.changes.len(), 1, "{:?}", c.changes);
    assert_eq!(c.changes[0].to_string(), "added column `extra` (string)");
    assert_eq!(
        rows_of(&lake, "SELECT count(*) FROM shop.orders WHERE name IS NULL").await,
        ["1"]
    );
}
