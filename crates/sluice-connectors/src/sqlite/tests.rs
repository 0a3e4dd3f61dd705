//! The SQLite source on real database files made here with rusqlite.

use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};
use sluice_core::config::{DatabaseSource, OnError, StreamOptions};
use sluice_core::connector::{ConnectorError, Message, ReadRequest, Source};
use tempfile::TempDir;

use super::SqliteSource;
use crate::conformance::{ConformanceOptions, check_source, read_all};

/// A project folder with `app.db` built by `sql`.
fn db(sql: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    conn.execute_batch(sql).unwrap();
    dir
}

fn exec(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("app.db")).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn source(dir: &Path, mut config: Value) -> Result<SqliteSource, ConnectorError> {
    config["type"] = "sqlite".into();
    if config.get("path").is_none() && config.get("url").is_none() {
        config["path"] = "app.db".into();
    }
    let config: DatabaseSource = serde_json::from_value(config).unwrap();
    SqliteSource::new("app", &config, &StreamOptions::default(), dir)
}

/// What one read sent.
#[derive(Debug, Default)]
struct Read {
    batches: Vec<RecordBatch>,
    quarantine: Vec<RecordBatch>,
    state: Option<Value>,
}

impl Read {
    /// Column `name` of every batch, as text (NULL for nulls).
    fn column(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for b in &self.batches {
            let col = b.column_by_name(name).unwrap();
            let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).unwrap();
            for i in 0..col.len() {
                out.push(if col.is_null(i) {
                    "NULL".to_string()
                } else {
                    f.value(i).to_string()
                });
            }
        }
        out
    }

    /// Quarantine rows as (line, column, value, reason).
    fn quarantined(&self) -> Vec<(String, String, String, String)> {
        let mut out = Vec::new();
        for b in &self.quarantine {
            let cell = |name: &str, i: usize| {
                let col = b.column_by_name(name).unwrap();
                let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).unwrap();
                f.value(i).to_string()
            };
            for i in 0..b.num_rows() {
                out.push((
                    cell("line", i),
                    cell("column", i),
                    cell("value", i),
                    cell("reason", i),
                ));
            }
        }
        out
    }
}

async fn read(
    src: &SqliteSource,
    stream: &str,
    state: Option<Value>,
    on_error: OnError,
) -> Result<Read, ConnectorError> {
    let request = ReadRequest {
        stream: stream.into(),
        state,
        on_error,
        batch_size: 2,
        known_schema: None,
    };
    let mut out = Read::default();
    for m in read_all(src, request).await? {
        match m {
            Message::Batch(b) => out.batches.push(b),
            Message::Quarantine(q) => out.quarantine.push(q),
            Message::Checkpoint(c) => out.state = Some(c.state),
            _ => {}
        }
    }
    Ok(out)
}

const ORDERS: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount DECIMAL(10,2),
                     updated_at DATETIME);
CREATE TABLE audit_log (at TEXT);
INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace');
INSERT INTO orders VALUES
  (1, 1, 12.5, '2024-03-01 10:00:00'),
  (2, 2, 7, '2024-03-01T11:00:00Z'),
  (3, 1, '19.99', '2024-03-02 09:00:00.250');
";

#[tokio::test]
async fn sqlite_source_keeps_the_contract() {
    let dir = db(ORDERS);
    let src = source(
        dir.path(),
        json!({"include": ["orders", "customers"],
               "streams": {"orders": {"cursor": "updated_at"}}}),
    )
    .unwrap();
    let options = ConformanceOptions {
        batch_size: 2,
        on_error: OnError::Fail,
        incremental: vec!["orders".into()],
    };
    let reports = check_source(&src, &options).await.unwrap();
    let rows: Vec<(String, u64, u64)> = reports
        .iter()
        .map(|r| (r.name.clone(), r.rows, r.reread_rows))
        .collect();
    assert_eq!(rows, [("customers".into(), 2, 2), ("orders".into(), 3, 0)]);
    assert!(src.check().await.unwrap().contains("2 tables selected"));
}

#[tokio::test]
async fn quarantining_streams_keep_the_contract() {
    let dir = db(&format!(
        "{ORDERS} INSERT INTO orders VALUES (4, 'abc', 1, '2024-03-03 00:00:00'), (5, 1, 1, NULL);"
    ));
    let src = source(
        dir.path(),
        json!({"include": ["orders"], "streams": {"orders": {"cursor": "updated_at"}}}),
    )
    .unwrap();
    let options = ConformanceOptions {
        batch_size: 2,
        on_error: OnError::Quarantine,
        incremental: vec!["orders".into()],
    };
    let reports = check_source(&src, &options).await.unwrap();
    assert_eq!((reports[0].rows, reports[0].quarantined), (3, 2));
}

#[tokio::test]
async fn discovery_reports_types_keys_and_nullability() {
    let dir = db(ORDERS);
    let src = source(dir.path(), json!({})).unwrap();
    let streams = src.discover().await.unwrap();
    let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["audit_log", "customers", "orders"]);
    let orders = &streams[2];
    assert_eq!(orders.primary_key, ["id"]);
    let schema = orders.schema.as_ref().unwrap();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| sluice_core::types::type_name(f.data_type()))
        .collect();
    assert_eq!(types, ["int64", "int64", "decimal(10,2)", "timestamptz"]);
    let details: Vec<String> = orders
        .details
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    assert!(
        details.contains(&"table: main.orders".to_string()),
        "{details:?}"
    );
    let amount = orders.columns.iter().find(|c| c.name == "amount").unwrap();
    assert_eq!(amount.source_type, "DECIMAL(10,2)");
    let audit = &streams[0];
    assert!(audit.primary_key.is_empty());
    assert!(!details.iter().any(|d| d.starts_with("rows (estimate)")));
    // After ANALYZE, sqlite_stat1 gives a row estimate.
    exec(
        dir.path(),
        "CREATE INDEX orders_customer ON orders(customer_id); ANALYZE;",
    );
    let src = source(dir.path(), json!({"include": "orders"})).unwrap();
    let orders = &src.discover().await.unwrap()[0];
    assert!(
        orders
            .details
            .contains(&("rows (estimate)".to_string(), "3".to_string())),
        "{:?}",
        orders.details
    );
}

#[tokio::test]
async fn a_missing_file_names_the_resolved_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), json!({"path": "data/nope.db"})).unwrap();
    let e = src.discover().await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&dir.path().join("data/nope.db").display().to_string()),
        "{text}"
    );
    assert!(text.contains("does not exist"), "{text}");
    use sluice_core::error::Classify;
    assert!(e.hint().unwrap().contains("`path`"));
    // The file is opened read-only: discovery never creates it.
    assert!(!dir.path().join("data/nope.db").exists());
    // A file that is not a database says so.
    std::fs::write(dir.path().join("x.db"), vec![b'x'; 4096]).unwrap();
    let src = source(dir.path(), json!({"path": "x.db"})).unwrap();
    assert!(
        src.discover()
            .await
            .unwrap_err()
            .to_string()
            .contains("not a SQLite database")
    );
}

#[tokio::test]
async fn urls_and_absolute_paths() {
    let dir = db(ORDERS);
    let abs = format!("sqlite://{}", dir.path().join("app.db").display());
    for config in [json!({"url": abs}), json!({"url": "sqlite://app.db"})] {
        let src = source(dir.path(), config).unwrap();
        assert_eq!(src.discover().await.unwrap().len(), 3);
    }
    let e = source(dir.path(), json!({"url": "postgres://x/y"}))
        .err()
        .unwrap();
    assert!(e.to_string().contains("not a SQLite URL"), "{e}");
}

/// One column of `declared` type: `good` SQL literals read as `want`, then a
/// NULL, then `bad` (a value that does not fit) is quarantined with its
/// rowid, column, value and a reason containing `why`.
async fn type_case(declared: &str, good: &[&str], want: &[&str], bad: &str, why: &str) {
    let mut sql = format!("CREATE TABLE t (id INTEGER PRIMARY KEY, v {declared});\n");
    for (i, g) in good.iter().enumerate() {
        sql.push_str(&format!("INSERT INTO t VALUES ({}, {g});\n", i + 1));
    }
    let null_id = good.len() + 1;
    let bad_id = good.len() + 2;
    sql.push_str(&format!(
        "INSERT INTO t VALUES ({null_id}, NULL);\nINSERT INTO t VALUES ({bad_id}, {bad});\n"
    ));
    let dir = db(&sql);
    let src = source(dir.path(), json!({})).unwrap();
    let r = read(&src, "t", None, OnError::Quarantine).await.unwrap();
    let mut expected: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    expected.push("NULL".into());
    assert_eq!(r.column("v"), expected, "{declared}");
    let q = r.quarantined();
    assert_eq!(q.len(), 1, "{declared}: {q:?}");
    let (line, column, _value, reason) = &q[0];
    assert_eq!(
        (line.as_str(), column.as_str()),
        (bad_id.to_string().as_str(), "v")
    );
    assert!(reason.contains(why), "{declared}: {reason}");
    assert!(reason.contains(&format!("rowid {bad_id}")), "{reason}");
    // With on_error: fail the same value stops the stream with its location.
    let e = read(&src, "t", None, OnError::Fail).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("`main.t`")
            && text.contains(&format!("record {bad_id}"))
            && text.contains("column `v`"),
        "{text}"
    );
}

#[tokio::test]
async fn integer_columns() {
    type_case(
        "BIGINT",
        &["1", "-9223372036854775808", "'42'"],
        &["1", "-9223372036854775808", "42"],
        "'abc'",
        "a text is not an integer",
    )
    .await;
    type_case("INTEGER", &["7"], &["7"], "2.5", "a real is not an integer").await;
}

#[tokio::test]
async fn real_columns() {
    type_case(
        "DOUBLE",
        &["1.5", "2"],
        &["1.5", "2.0"],
        "x'00'",
        "a blob is not a number",
    )
    .await;
}

#[tokio::test]
async fn text_columns() {
    type_case(
        "VARCHAR(10)",
        &["'héllo'", "12"],
        &["héllo", "12"],
        "x'ff'",
        "not UTF-8 text",
    )
    .await;
}

#[tokio::test]
async fn columns_without_a_type_read_as_text() {
    type_case(
        "",
        &["'a'", "3", "1.5", "2.0"],
        &["a", "3", "1.5", "2.0"],
        "x'fe'",
        "not UTF-8 text",
    )
    .await;
}

#[tokio::test]
async fn blob_columns() {
    type_case(
        "BLOB",
        &["x'0102'", "'ab'"],
        &["0102", "6162"],
        "5",
        "an integer is not a blob",
    )
    .await;
}

#[tokio::test]
async fn boolean_columns() {
    type_case(
        "BOOLEAN",
        &["1", "0", "'true'", "TRUE"],
        &["true", "false", "true", "true"],
        "2",
        "not a boolean",
    )
    .await;
}

#[tokio::test]
async fn decimal_columns() {
    type_case(
        "NUMERIC(10,2)",
        &["12.5", "3", "'0.1'", "-7.005"],
        &["12.50", "3.00", "0.10", "-7.01"],
        "'abc'",
        "is not a decimal number",
    )
    .await;
    type_case(
        "DECIMAL(4,2)",
        &["'12.3'"],
        &["12.30"],
        "123.4",
        "more than 4 digits",
    )
    .await;
}

#[tokio::test]
async fn date_columns() {
    type_case(
        "DATE",
        &[
            "'2024-03-01'",
            "1709251200",
            "2460370.5",
            "'2024-03-01 00:00:00'",
        ],
        &["2024-03-01", "2024-03-01", "2024-03-01", "2024-03-01"],
        "'01/03/2024'",
        "not an ISO date",
    )
    .await;
}

#[tokio::test]
async fn timestamp_columns() {
    type_case(
        "DATETIME",
        &[
            "'2024-03-01 12:00:00'",
            "'2024-03-01T14:00:00.5+02:00'",
            "1709294400",
            "'2024-03-01T12:00Z'",
        ],
        &[
            "2024-03-01T12:00:00Z",
            "2024-03-01T12:00:00.500Z",
            "2024-03-01T12:00:00Z",
            "2024-03-01T12:00:00Z",
        ],
        "'yesterday'",
        "not an ISO-8601 date-time",
    )
    .await;
}

#[tokio::test]
async fn time_columns() {
    type_case(
        "TIME",
        &["'12:30:05'", "'08:00'"],
        &["12:30:05", "08:00:00"],
        "'noon'",
        "not a time",
    )
    .await;
}

#[tokio::test]
async fn json_columns() {
    type_case(
        "JSON",
        &["'{\"a\": 1}'"],
        &["{\"a\": 1}"],
        "x'80'",
        "not UTF-8 text",
    )
    .await;
}

#[tokio::test]
async fn declared_columns_override_the_mapping() {
    let dir = db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, price NUMERIC, n TEXT);
                  INSERT INTO t VALUES (1, 12.25, '5'), (2, '3', '6');",
    );
    let src = source(
        dir.path(),
        json!({"streams": {"t": {"columns": {"price": "decimal(6,2)", "n": "int64"}}}}),
    )
    .unwrap();
    let r = read(&src, "t", None, OnError::Fail).await.unwrap();
    assert_eq!(r.column("price"), ["12.25", "3.00"]);
    assert_eq!(r.column("n"), ["5", "6"]);
    let e = source(
        dir.path(),
        json!({"streams": {"t": {"columns": {"nope": "int64"}}}}),
    )
    .unwrap()
    .discover()
    .await
    .unwrap_err();
    assert!(e.to_string().contains("`nope`"), "{e}");
}

#[tokio::test]
async fn incremental_reads_only_new_rows_whatever_the_timestamp_form() {
    let dir = db(ORDERS);
    let src = source(
        dir.path(),
        json!({"streams": {"orders": {"cursor": "updated_at"}}}),
    )
    .unwrap();
    let first = read(&src, "orders", None, OnError::Fail).await.unwrap();
    assert_eq!(first.column("id"), ["1", "2", "3"]);
    let state = first.state.unwrap();
    // Later rows in every stored form: a space, a `T`, an offset, unix seconds;
    // one older row and one NULL cursor.
    exec(
        dir.path(),
        "INSERT INTO orders VALUES
           (4, 1, 1, '2024-03-02 09:00:01'),
           (5, 1, 1, '2024-03-02T10:00:00+00:00'),
           (6, 1, 1, '2024-03-03T00:30:00+02:00'),
           (7, 1, 1, 1709400000),
           (8, 1, 1, '2024-01-01 00:00:00'),
           (9, 1, 1, NULL);
         UPDATE orders SET updated_at = '2024-03-04 08:00:00' WHERE id = 1;",
    );
    let second = read(&src, "orders", Some(state.clone()), OnError::Quarantine)
        .await
        .unwrap();
    let mut ids = second.column("id");
    ids.sort();
    assert_eq!(ids, ["1", "4", "5", "6", "7"]);
    let q = second.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!((q[0].0.as_str(), q[0].1.as_str()), ("9", "updated_at"));
    // The NULL cursor with on_error: fail is refused with a hint.
    let e = read(&src, "orders", Some(state), OnError::Fail)
        .await
        .unwrap_err();
    use sluice_core::error::Classify;
    assert!(e.hint().unwrap().contains("cursor value"), "{e}");
}

#[tokio::test]
async fn a_cursor_without_an_order_is_refused() {
    let dir = db("CREATE TABLE t (id INTEGER, b BLOB); INSERT INTO t VALUES (1, x'00');");
    let src = source(dir.path(), json!({"streams": {"t": {"cursor": "b"}}})).unwrap();
    let e = read(&src, "t", None, OnError::Fail).await.unwrap_err();
    use sluice_core::error::Classify;
    assert!(e.to_string().contains("has no order"), "{e}");
    assert!(e.hint().is_some());
    let src = source(dir.path(), json!({"streams": {"t": {"cursor": "idd"}}})).unwrap();
    let e = read(&src, "t", None, OnError::Fail).await.unwrap_err();
    assert!(e.hint().unwrap().contains("did you mean `id`"), "{e}");
}

#[tokio::test]
async fn split_ranges_read_every_row_once() {
    let mut sql = String::from(
        "CREATE TABLE t (id INTEGER, v TEXT);
         INSERT INTO t VALUES (NULL, 'null key'), ('x', 'text key'), (-5.5, 'real key');",
    );
    for i in 1..=100 {
        sql.push_str(&format!("INSERT INTO t VALUES ({i}, 'r{i}');"));
    }
    let dir = db(&sql);
    let whole = source(dir.path(), json!({})).unwrap();
    let whole = read(&whole, "t", None, OnError::Quarantine).await.unwrap();
    for ranges in [1, 3, 7] {
        let split = source(
            dir.path(),
            json!({"max_connections": 3, "streams": {"t": {"split": {"column": "id", "ranges": ranges}}}}),
        )
        .unwrap();
        let r = read(&split, "t", None, OnError::Quarantine).await.unwrap();
        let (mut a, mut b) = (r.column("v"), whole.column("v"));
        a.sort();
        b.sort();
        assert_eq!(a, b, "{ranges} ranges");
        assert_eq!(
            r.quarantined().len(),
            2,
            "text and real keys are bad records"
        );
    }
    let e = source(
        dir.path(),
        json!({"streams": {"t": {"split": {"column": "v"}}}}),
    )
    .unwrap();
    let e = read(&e, "t", None, OnError::Fail).await.unwrap_err();
    assert!(e.to_string().contains("integer column"), "{e}");
}

#[tokio::test]
async fn views_and_tables_without_rowid() {
    let dir = db(
        "CREATE TABLE kv (k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
                  INSERT INTO kv VALUES ('a', 1), ('b', 'two'), ('c', 3);
                  CREATE VIEW big AS SELECT k, n * 10 AS n10 FROM kv WHERE k <> 'b';
                  CREATE TABLE \"Odd \"\"Name\" (x INTEGER);
                  INSERT INTO \"Odd \"\"Name\" VALUES (1);",
    );
    let src = source(dir.path(), json!({})).unwrap();
    let names: Vec<String> = src
        .discover()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["odd_name", "big", "kv"]);
    let kv = read(&src, "kv", None, OnError::Quarantine).await.unwrap();
    assert_eq!(kv.column("k"), ["a", "c"]);
    // No rowid: the record number is the row's position in the read.
    assert_eq!(kv.quarantined()[0].0, "2");
    let big = read(&src, "big", None, OnError::Fail).await.unwrap();
    assert_eq!(big.column("n10"), ["10", "30"]);
    let odd = read(&src, "odd_name", None, OnError::Fail).await.unwrap();
    assert_eq!(odd.column("x"), ["1"]);
}

#[tokio::test]
async fn reads_a_wal_database_while_an_application_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    app.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY);
         INSERT INTO t VALUES (1), (2);",
    )
    .unwrap();
    // An open write transaction: its rows are not visible, committed ones are.
    app.execute_batch("BEGIN; INSERT INTO t VALUES (3);")
        .unwrap();
    let src = source(dir.path(), json!({})).unwrap();
    let r = read(&src, "t", None, OnError::Fail).await.unwrap();
    assert_eq!(r.column("id"), ["1", "2"]);
    app.execute_batch("COMMIT;").unwrap();
    let r = read(&src, "t", None, OnError::Fail).await.unwrap();
    assert_eq!(r.column("id"), ["1", "2", "3"]);
}
