//! Tests against the real PostgreSQL (127.0.0.1:5432, user `postgres`):
//! each creates its own database and drops it.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int32Array, Int64Array, IntervalMonthDayNanoArray, LargeStringArray, ListArray,
    RecordBatch, StringArray, StructArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    TimestampNanosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, IntervalMonthDayNano, Schema};
use serde_json::json;
use sluice_core::TableName;
use sluice_core::config::{PostgresDestination, WriteMode};
use sluice_core::connector::{
    Checkpoint, CommittedState, ConnectorError, Destination, WriteRequest,
};

use super::PgDestination;
use crate::postgres::PgConnector;

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own, dropped at the end.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new(tag: &str) -> TestDb {
        let name = format!(
            "sluice_t_{tag}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let admin = PgConnector::from_url(ADMIN)
            .unwrap()
            .connect()
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        PgConnector::from_url(&self.url)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn drop_db(self) {
        let admin = PgConnector::from_url(ADMIN)
            .unwrap()
            .connect()
            .await
            .unwrap();
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }

    pub fn dest(&self, schema: Option<&str>) -> PgDestination {
        PgDestination::new(
            "wh",
            &PostgresDestination {
                kind: "postgres".into(),
                url: self.url.clone(),
                schema: schema.map(str::to_string),
            },
        )
        .unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.client()
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    /// One row of text values.
    pub async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        let row = self.client().await.query_one(sql, &[]).await.unwrap();
        (0..row.len()).map(|i| row.try_get(i).unwrap()).collect()
    }
}

fn req(mode: WriteMode, run: &str) -> WriteRequest {
    WriteRequest {
        table: TableName::new("app", "t"),
        mode,
        primary_key: vec!["id".into()],
        full_refresh: false,
        run_id: run.into(),
        stream_id: "app.t".into(),
        evolution: Default::default(),
        on_error: sluice_core::config::OnError::Fail,
    }
}

fn cp(n: u64) -> Checkpoint {
    Checkpoint {
        state: json!({ "n": n }),
        position: format!("cp {n}"),
    }
}

fn rows(ids: &[i64], name: &str) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(vec![name; ids.len()])),
        ],
    )
    .unwrap()
}

async fn load(dest: &PgDestination, r: WriteRequest, batches: Vec<RecordBatch>, seq: u64) {
    let mut w = dest.open(r).await.unwrap();
    for b in batches {
        w.write(RecordBatch::new_empty(b.schema())).await.unwrap();
        w.write(b).await.unwrap();
    }
    w.checkpoint(seq, &cp(seq)).await.unwrap();
    let c = w.finish().await.unwrap().unwrap();
    assert_eq!(c.seq, seq);
}

#[tokio::test]
async fn postgres_destination_passes_the_conformance_check() {
    use crate::conformance::destination::{DestinationCheck, check_destination};
    let db = TestDb::new("conf").await;
    let dest = db.dest(None);
    let url = db.url.clone();
    let count = |t: TableName| {
        let url = url.clone();
        async move {
            let c = PgConnector::from_url(&url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            c.query_one(
                &format!("SELECT count(*) FROM {}.{}", t.schema, t.name),
                &[],
            )
            .await
            .and_then(|r| r.try_get::<_, i64>(0))
            .unwrap_or(-1) as u64
        }
    };
    let result = check_destination(
        &dest,
        DestinationCheck {
            table: TableName::new("conformance", "t"),
            tracks_state: true,
            count_rows: &count,
        },
    )
    .await;
    let quarantined = db.count("conformance.t__quarantine").await;
    db.drop_db().await;
    result.unwrap();
    assert_eq!(quarantined, 1);
}

#[tokio::test]
async fn merge_upserts_last_arrival_and_records_the_checkpoint() {
    let db = TestDb::new("merge").await;
    let dest = db.dest(Some("analytics"));
    load(
        &dest,
        req(WriteMode::Merge, "r1"),
        vec![rows(&[1, 2, 3], "a")],
        1,
    )
    .await;
    // Key 2 twice in one load: the last arrival wins; key 4 is new.
    load(
        &dest,
        req(WriteMode::Merge, "r2"),
        vec![rows(&[2, 4], "b"), rows(&[2], "c")],
        2,
    )
    .await;
    let count = db.count("analytics.t").await;
    let names = db
        .texts("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM analytics.t")
        .await;
    let state = dest
        .committed_state(&TableName::new("app", "t"), "app.t")
        .await
        .unwrap();
    db.drop_db().await;
    assert_eq!(count, 4);
    assert_eq!(names[0].as_deref(), Some("1=a,2=c,3=a,4=b"));
    match state {
        CommittedState::Table(Some(s)) => {
            assert_eq!(s.seq, 2);
            assert_eq!(s.value, json!({"n": 2}));
            assert_eq!(s.run_id.as_deref(), Some("r2"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn merge_without_a_key_is_refused_with_a_hint() {
    let db = TestDb::new("nokey").await;
    let dest = db.dest(None);
    let mut r = req(WriteMode::Merge, "r1");
    r.primary_key.clear();
    let err = dest.open(r).await.err().unwrap();
    db.drop_db().await;
    let text = err.to_string();
    assert!(text.contains("needs a primary key"), "{text}");
    use sluice_core::error::Classify;
    assert!(err.hint().unwrap().contains("primary_key"));
}

#[tokio::test]
async fn overwrite_swaps_the_table_and_abort_leaves_the_old_one() {
    let db = TestDb::new("swap").await;
    let dest = db.dest(None);
    load(
        &dest,
        req(WriteMode::Append, "r1"),
        vec![rows(&[1, 2, 3], "a")],
        1,
    )
    .await;
    // An aborted overwrite leaves the old table whole.
    let mut w = dest.open(req(WriteMode::Overwrite, "r2")).await.unwrap();
    w.write(rows(&[9], "x")).await.unwrap();
    w.abort().await;
    drop(w);
    assert_eq!(db.count("app.t").await, 3);
    load(
        &dest,
        req(WriteMode::Overwrite, "r3"),
        vec![rows(&[7, 8], "z")],
        2,
    )
    .await;
    let after = db.count("app.t").await;
    let leftovers = db
        .texts("SELECT count(*)::text FROM pg_class WHERE relname LIKE '%sluice_new%'")
        .await;
    let state = dest
        .committed_state(&TableName::new("app", "t"), "app.t")
        .await
        .unwrap();
    db.drop_db().await;
    assert_eq!(after, 2);
    assert_eq!(leftovers[0].as_deref(), Some("0"));
    assert!(matches!(state, CommittedState::Table(Some(s)) if s.seq == 2));
}

#[tokio::test]
async fn evolution_adds_widens_and_refuses() {
    let db = TestDb::new("evol").await;
    let dest = db.dest(None);
    let narrow = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("n", DataType::Int32, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int32Array::from(vec![5])),
        ],
    )
    .unwrap();
    load(&dest, req(WriteMode::Append, "r1"), vec![narrow], 1).await;
    let wide = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
            Field::new("extra", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![2])),
            Arc::new(Int64Array::from(vec![5_000_000_000])),
            Arc::new(StringArray::from(vec!["e"])),
        ],
    )
    .unwrap();
    let mut w = dest.open(req(WriteMode::Append, "r2")).await.unwrap();
    w.write(wide).await.unwrap();
    w.checkpoint(2, &cp(2)).await.unwrap();
    let c = w.finish().await.unwrap().unwrap();
    let types = db
        .texts(
            "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 't'",
        )
        .await;
    let refused = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("n", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let mut w = dest.open(req(WriteMode::Append, "r3")).await.unwrap();
    let err = w.write(refused).await.unwrap_err();
    w.abort().await;
    let known = dest
        .table_schema(&TableName::new("app", "t"))
        .await
        .unwrap()
        .unwrap();
    db.drop_db().await;
    assert_eq!(c.changes.len(), 2, "{:?}", c.changes);
    assert_eq!(types[0].as_deref(), Some("id bigint, n bigint, extra text"));
    assert!(matches!(err, ConnectorError::SchemaRefused { .. }), "{err}");
    assert!(err.to_string().contains("`n`"), "{err}");
    use sluice_core::error::Classify;
    assert!(err.hint().unwrap().contains("--full-refresh"));
    assert_eq!(
        known.field_with_name("n").unwrap().data_type(),
        &DataType::Int64
    );
}

#[tokio::test]
async fn every_type_round_trips() {
    let db = TestDb::new("types").await;
    let dest = db.dest(None);
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
        Some(vec![]),
    ]);
    let strukt = StructArray::from(vec![(
        Arc::new(Field::new("a", DataType::Int32, true)),
        Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
    )]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(-8), None, Some(7)])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(0)])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(1e300), None, Some(-2.5)])),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(-123_456), None, Some(5)])
                    .with_precision_and_scale(12, 3)
                    .unwrap(),
            ),
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![Some("héllo"), None, Some("")])),
        ),
        (
            "ls",
            Arc::new(LargeStringArray::from(vec![Some("x"), None, Some("y")])),
        ),
        (
            "bin",
            Arc::new(BinaryArray::from(vec![
                Some(&b"\x00\xff"[..]),
                None,
                Some(b""),
            ])),
        ),
        (
            "d",
            Arc::new(Date32Array::from(vec![Some(19_000), None, Some(-1)])),
        ),
        (
            "tm",
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(3_723_000_001),
                None,
                Some(0),
            ])),
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_700_000_000_123_456),
                None,
                Some(-1),
            ])),
        ),
        (
            "tsz",
            Arc::new(
                TimestampNanosecondArray::from(vec![
                    Some(1_700_000_000_000_000_000),
                    None,
                    Some(0),
                ])
                .with_timezone("+02:00"),
            ),
        ),
        (
            "iv",
            Arc::new(IntervalMonthDayNanoArray::from(vec![
                Some(IntervalMonthDayNano::new(14, 3, 4_000_000_000)),
                None,
                Some(IntervalMonthDayNano::new(0, 0, 0)),
            ])),
        ),
        ("arr", Arc::new(list)),
        ("obj", Arc::new(strukt)),
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    load(&dest, req(WriteMode::Append, "r1"), vec![batch], 1).await;
    let types = db
        .texts(
            "SELECT string_agg(column_name || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
             FROM information_schema.columns c JOIN pg_attribute a ON a.attrelid = 'app.t'::regclass AND a.attname = c.column_name \
             WHERE table_schema = 'app' AND table_name = 't'",
        )
        .await;
    let first = db
        .texts(
            "SELECT i8::text, u64::text, f32::text, f64::text, dec::text, b::text, s, ls, encode(bin, 'hex'), d::text, \
             tm::text, ts::text, (tsz AT TIME ZONE 'UTC')::text, iv::text, arr::text, obj::text FROM app.t WHERE id = 1",
        )
        .await;
    let nulls = db
        .texts("SELECT num_nulls(i8, u64, f32, f64, dec, b, s, ls, bin, d, tm, ts, tsz, iv, arr)::text, obj::text FROM app.t WHERE id = 2")
        .await;
    let third = db
        .texts("SELECT dec::text, d::text, ts::text, arr::text, encode(bin, 'hex') FROM app.t WHERE id = 3")
        .await;
    db.drop_db().await;
    assert_eq!(
        types[0].as_deref(),
        Some(
            "id bigint, i8 smallint, u64 numeric(20,0), f32 real, f64 double precision, dec numeric(12,3), \
             b boolean, s text, ls text, bin bytea, d date, tm time without time zone, \
             ts timestamp without time zone, tsz timestamp with time zone, iv interval, arr integer[], obj jsonb"
        )
    );
    let first: Vec<&str> = first.iter().map(|v| v.as_deref().unwrap()).collect();
    assert_eq!(
        first,
        [
            "-8",
            "18446744073709551615",
            "1.5",
            "1e+300",
            "-123.456",
            "true",
            "héllo",
            "x",
            "00ff",
            "2022-01-08",
            "01:02:03.000001",
            "2023-11-14 22:13:20.123456",
            "2023-11-14 22:13:20",
            "1 year 2 mons 3 days 00:00:04",
            "{1,NULL,3}",
            "{\"a\": 1}"
        ]
    );
    // The struct row itself is valid, with a NULL field.
    assert_eq!(
        nulls,
        [Some("15".to_string()), Some("{\"a\": null}".to_string())]
    );
    let third: Vec<&str> = third.iter().map(|v| v.as_deref().unwrap()).collect();
    assert_eq!(
        third,
        [
            "0.005",
            "1969-12-31",
            "1969-12-31 23:59:59.999999",
            "{}",
            ""
        ]
    );
}

#[tokio::test]
async fn text_with_nul_is_a_located_bad_record() {
    let db = TestDb::new("nul").await;
    let dest = db.dest(None);
    let mut w = dest.open(req(WriteMode::Append, "r1")).await.unwrap();
    let err = w.write(rows(&[1], "a\0b")).await.unwrap_err();
    w.abort().await;
    db.drop_db().await;
    let text = err.to_string();
    assert!(
        text.contains("column `name`") && text.contains("NUL") && text.contains("app.t"),
        "{text}"
    );
}

/// `on_error: quarantine`: the row PostgreSQL cannot store goes to the
/// quarantine table with its reason; the others load.
#[tokio::test]
async fn text_with_nul_is_quarantined_when_asked() {
    let db = TestDb::new("nulq").await;
    let dest = db.dest(None);
    let mut request = req(WriteMode::Append, "r1");
    request.on_error = sluice_core::config::OnError::Quarantine;
    let mut w = dest.open(request).await.unwrap();
    w.write(rows(&[1], "ok")).await.unwrap();
    w.write(rows(&[2], "a\0b")).await.unwrap();
    w.write(rows(&[3], "fine")).await.unwrap();
    w.checkpoint(1, &cp(1)).await.unwrap();
    let c = w.finish().await.unwrap().expect("a commit");
    assert_eq!((c.rows, c.quarantined), (2, 1));
    let count = db.count("app.t").await;
    let quarantined = db.count("app.t__quarantine").await;
    db.drop_db().await;
    assert_eq!((count, quarantined), (2, 1));
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

/// A column added and a column widened between two batches of one commit:
/// every write mode evolves its load table and the table once, and the
/// commit (and the next one) succeeds.
#[tokio::test]
async fn every_mode_survives_schema_changes_within_one_commit() {
    let kept = "1=5/-,2=5/-,3=6/e,4=5000000000/-";
    for (mode, expected, rows_next) in [
        (WriteMode::Append, kept, 5),
        (WriteMode::Overwrite, &kept[6..], 1),
        (WriteMode::Merge, kept, 5),
    ] {
        let db = TestDb::new("midtx").await;
        let dest = db.dest(None);
        let narrow = |id: i64| {
            batch(vec![
                ("id", Arc::new(Int64Array::from(vec![id]))),
                ("n", Arc::new(Int32Array::from(vec![5]))),
            ])
        };
        load(&dest, req(mode, "r1"), vec![narrow(1)], 1).await;
        let mut w = dest.open(req(mode, "r2")).await.unwrap();
        w.write(narrow(2)).await.unwrap();
        // An added column…
        w.write(batch(vec![
            ("id", Arc::new(Int64Array::from(vec![3]))),
            ("n", Arc::new(Int32Array::from(vec![6]))),
            ("extra", Arc::new(StringArray::from(vec!["e"]))),
        ]))
        .await
        .unwrap();
        // … then a widened one, in the same transaction.
        w.write(batch(vec![
            ("id", Arc::new(Int64Array::from(vec![4]))),
            ("n", Arc::new(Int64Array::from(vec![5_000_000_000]))),
        ]))
        .await
        .unwrap();
        assert!(w.checkpoint(2, &cp(2)).await.unwrap().is_none());
        let c = w.finish().await.unwrap().unwrap();
        let types = db
            .texts(
                "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) \
                 FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 't'",
            )
            .await;
        let values = db
            .texts("SELECT string_agg(id || '=' || n || '/' || coalesce(extra, '-'), ',' ORDER BY id) FROM app.t")
            .await;
        // The next run writes into the evolved table.
        let mut w = dest.open(req(mode, "r3")).await.unwrap();
        w.write(narrow(5)).await.unwrap();
        w.checkpoint(3, &cp(3)).await.unwrap();
        let next = w.finish().await.unwrap().unwrap();
        let count = db.count("app.t").await;
        db.drop_db().await;
        assert_eq!((c.seq, c.rows, next.seq), (2, 3, 3), "{mode:?}");
        assert_eq!(count, rows_next, "{mode:?}");
        assert_eq!(c.changes.len(), 2, "{mode:?}: {:?}", c.changes);
        assert_eq!(
            types[0].as_deref(),
            Some("id bigint, n bigint, extra text"),
            "{mode:?}"
        );
        assert_eq!(values[0].as_deref(), Some(expected), "{mode:?}");
    }
}

/// Merge: a matched row gets only the columns its batch was sent with, even
/// when another batch of the same commit had more (or fewer) columns.
#[tokio::test]
async fn merge_keeps_columns_a_batch_did_not_send() {
    let db = TestDb::new("mergecols").await;
    let dest = db.dest(None);
    let full = |ids: Vec<i64>, a: Vec<&str>, c: Vec<&str>| {
        batch(vec![
            ("id", Arc::new(Int64Array::from(ids))),
            ("a", Arc::new(StringArray::from(a))),
            ("c", Arc::new(StringArray::from(c))),
        ])
    };
    let without_c = |ids: Vec<i64>, a: Vec<&str>| {
        batch(vec![
            ("id", Arc::new(Int64Array::from(ids))),
            ("a", Arc::new(StringArray::from(a))),
        ])
    };
    load(
        &dest,
        req(WriteMode::Merge, "r1"),
        vec![full(vec![1, 2], vec!["a0", "b0"], vec!["x", "y"])],
        1,
    )
    .await;
    let mut w = dest.open(req(WriteMode::Merge, "r2")).await.unwrap();
    // Key 1 without `c`, then a batch with `c` (key 2 updated, key 3 new),
    // then key 2 again without `c`, and key 4 new without `c`.
    w.write(without_c(vec![1], vec!["a1"])).await.unwrap();
    w.write(full(vec![2, 3], vec!["b1", "n"], vec!["y2", "z"]))
        .await
        .unwrap();
    w.write(without_c(vec![2, 4], vec!["b2", "m"]))
        .await
        .unwrap();
    w.checkpoint(2, &cp(2)).await.unwrap();
    let c = w.finish().await.unwrap().unwrap();
    let values = db
        .texts("SELECT string_agg(id || '=' || a || '/' || coalesce(c, 'NULL'), ',' ORDER BY id) FROM app.t")
        .await;
    let state = dest
        .committed_state(&TableName::new("app", "t"), "app.t")
        .await
        .unwrap();
    db.drop_db().await;
    assert_eq!(c.rows, 5);
    assert_eq!(values[0].as_deref(), Some("1=a1/x,2=b2/y2,3=n/z,4=m/NULL"));
    assert!(matches!(state, CommittedState::Table(Some(s)) if s.seq == 2));
}
