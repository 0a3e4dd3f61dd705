//! The MySQL source against the real MariaDB on 127.0.0.1:3306 (root, no
//! password; `scripts/services.sh` starts it). Each test makes its own
//! database and drops it.

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};
use sluice_core::config::{DatabaseSource, OnError, StreamOptions};
use sluice_core::connector::{ConnectorError, Message, ReadRequest, Source};
use sluice_core::error::Classify;

use super::{MySource, Protocol};
use crate::conformance::{ConformanceOptions, check_source};

const SERVER: &str = "mysql://root@127.0.0.1:3306";

/// A database that is dropped when the test ends (even by a panic).
struct TestDb {
    name: String,
}

impl TestDb {
    async fn new(tag: &str, setup: &[&str]) -> TestDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("sluice_t_{tag}_{}_{nanos}", std::process::id());
        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(SERVER).unwrap())
            .await
            .expect("MariaDB on 127.0.0.1:3306 (run scripts/services.sh)");
        conn.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap();
        conn.query_drop(format!("USE `{name}`")).await.unwrap();
        for sql in setup {
            conn.query_drop(*sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.disconnect().await.unwrap();
        TestDb { name }
    }

    fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }

    fn source(&self, config: Value) -> MySource {
        let mut config = config;
        config["type"] = json!("mysql");
        config["url"] = json!(self.url());
        let config: DatabaseSource = serde_json::from_value(config).unwrap();
        MySource::new("app", &config, &StreamOptions::default()).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mysql")
            .args(["-h", "127.0.0.1", "-P", "3306", "-uroot", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .status();
    }
}

/// Read a stream; the batches (concatenated), quarantined rows and state.
async fn read(
    src: &MySource,
    stream: &str,
    state: Option<Value>,
    on_error: OnError,
) -> Result<(RecordBatch, Vec<String>, Value), ConnectorError> {
    let mut messages = src
        .read(ReadRequest {
            stream: stream.into(),
            state,
            on_error,
            batch_size: 2,
            known_schema: None,
        })
        .await?;
    let (mut schema, mut batches, mut bad, mut state) = (None, vec![], vec![], Value::Null);
    while let Some(m) = messages.next().await {
        match m? {
            Message::Schema(s) => schema = Some(s),
            Message::Batch(b) => batches.push(b),
            Message::Quarantine(q) => {
                let reasons = q.column_by_name("reason").unwrap().as_string::<i32>();
                let columns = q.column_by_name("column").unwrap().as_string::<i32>();
                for i in 0..q.num_rows() {
                    bad.push(format!("{}: {}", columns.value(i), reasons.value(i)));
                }
            }
            Message::Checkpoint(c) => state = c.state,
            _ => {}
        }
    }
    let batch = arrow::compute::concat_batches(&schema.unwrap(), &batches).unwrap();
    Ok((batch, bad, state))
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| panic!("{name} is {}", b.column_by_name(name).unwrap().data_type()))
}

const ORDERS: &[&str] = &[
    "CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL, updated_at DATETIME(6))",
    "INSERT INTO orders VALUES (1, 10.50, '2024-01-01 10:00:00'), (2, 20.00, '2024-01-02 10:00:00'), \
     (3, 30.25, '2024-01-02 10:00:00'), (4, 4.00, '2024-01-03 00:00:00.5')",
    "CREATE TABLE customers (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(40))",
    "INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace')",
    "CREATE VIEW big_orders AS SELECT id FROM orders WHERE amount > 15",
];

#[tokio::test]
async fn source_keeps_the_connector_contract() {
    let db = TestDb::new("contract", ORDERS).await;
    let src = db.source(json!({
        "streams": {"orders": {"cursor": "updated_at", "primary_key": ["id"]}}
    }));
    let options = ConformanceOptions {
        batch_size: 3,
        on_error: OnError::Fail,
        incremental: vec!["orders".into()],
    };
    let reports = check_source(&src, &options).await.unwrap();
    let rows: Vec<(String, u64)> = reports.iter().map(|r| (r.name.clone(), r.rows)).collect();
    // The view is not picked up without being named.
    assert_eq!(rows, [("customers".into(), 2), ("orders".into(), 4)]);
    let check = src.check().await.unwrap();
    assert!(
        check.contains("MariaDB") && check.contains("2 tables selected"),
        "{check}"
    );
}

#[tokio::test]
async fn discovery_reports_columns_keys_and_named_views() {
    let db = TestDb::new("discover", ORDERS).await;
    let src = db.source(json!({"include": ["orders", "big_orders", "customers"]}));
    let streams = src.discover().await.unwrap();
    let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["big_orders", "customers", "orders"]);
    let orders = &streams[2];
    assert_eq!(orders.primary_key, ["id"]);
    let amount = orders.columns.iter().find(|c| c.name == "amount").unwrap();
    assert_eq!(
        (amount.source_type.as_str(), amount.nullable),
        ("decimal(10,2)", false)
    );
    assert_eq!(
        orders
            .schema
            .as_ref()
            .unwrap()
            .field(1)
            .data_type()
            .to_string(),
        "Decimal128(10, 2)"
    );
    assert!(
        orders
            .details
            .contains(&("table".to_string(), format!("{}.orders", db.name))),
        "{:?}",
        orders.details
    );
    assert_eq!(
        streams[1]
            .schema
            .as_ref()
            .unwrap()
            .field(0)
            .data_type()
            .to_string(),
        "UInt64"
    );
    let e = db
        .source(json!({"include": ["ordrs"]}))
        .discover()
        .await
        .unwrap_err();
    assert!(e.hint().unwrap().contains("did you mean"), "{e}");
}

#[tokio::test]
async fn every_type_maps_with_extremes_and_nulls() {
    let db = TestDb::new("types", &[
        "CREATE TABLE t (id INT PRIMARY KEY, \
         ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, \
         mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED, \
         b BOOL, d DECIMAL(38,10), f FLOAT, dbl DOUBLE, bt BIT(10), b64 BIT(64), \
         c CHAR(3), vc VARCHAR(20), tx TEXT, lt LONGTEXT, e ENUM('a','b'), st SET('x','y'), \
         dt DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL, y YEAR, j JSON, \
         bn BINARY(2), vb VARBINARY(10), bl BLOB, g GEOMETRY)",
        "SET time_zone = '+00:00'",
        "INSERT INTO t VALUES (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, \
         -9223372036854775808, 18446744073709551615, TRUE, -1234567890123456789012345678.0123456789, \
         1.5, -2.25e300, b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111', \
         'abc', 'héllo ✓', 'long', REPEAT('x', 1000), 'b', 'x,y', '9999-12-31', '23:59:59.999999', \
         '1000-01-01 00:00:00.000001', '2038-01-19 03:14:07.999999', 2155, '{\"k\": [1, 2]}', \
         x'00ff', x'', x'deadbeef', ST_GeomFromText('POINT(1 2)'))",
        "INSERT INTO t (id) VALUES (2)",
    ]).await;
    let src = db.source(json!({}));
    let (b, bad, _) = read(&src, "t", None, OnError::Fail).await.unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(b.num_rows(), 2);
    assert_eq!(col::<Int8Array>(&b, "ti").value(0), -128);
    assert_eq!(col::<UInt8Array>(&b, "tiu").value(0), 255);
    assert_eq!(col::<Int16Array>(&b, "si").value(0), -32768);
    assert_eq!(col::<UInt16Array>(&b, "siu").value(0), 65535);
    assert_eq!(col::<Int32Array>(&b, "mi").value(0), -8_388_608);
    assert_eq!(col::<UInt32Array>(&b, "miu").value(0), 16_777_215);
    assert_eq!(col::<Int32Array>(&b, "i").value(0), i32::MIN);
    assert_eq!(col::<UInt32Array>(&b, "iu").value(0), u32::MAX);
    assert_eq!(col::<Int64Array>(&b, "bi").value(0), i64::MIN);
    assert_eq!(col::<UInt64Array>(&b, "biu").value(0), u64::MAX);
    assert!(col::<BooleanArray>(&b, "b").value(0));
    let d = col::<Decimal128Array>(&b, "d");
    assert_eq!(d.data_type().to_string(), "Decimal128(38, 10)");
    assert_eq!(
        d.value_as_string(0),
        "-1234567890123456789012345678.0123456789"
    );
    assert_eq!(col::<Float32Array>(&b, "f").value(0), 1.5);
    assert_eq!(col::<Float64Array>(&b, "dbl").value(0), -2.25e300);
    assert_eq!(col::<Int64Array>(&b, "bt").value(0), 513);
    assert_eq!(col::<BinaryArray>(&b, "b64").value(0), [0xff; 8]);
    assert_eq!(col::<StringArray>(&b, "c").value(0), "abc");
    assert_eq!(col::<StringArray>(&b, "vc").value(0), "héllo ✓");
    assert_eq!(col::<StringArray>(&b, "tx").value(0), "long");
    assert_eq!(col::<StringArray>(&b, "lt").value(0).len(), 1000);
    assert_eq!(col::<StringArray>(&b, "e").value(0), "b");
    assert_eq!(col::<StringArray>(&b, "st").value(0), "x,y");
    assert_eq!(
        col::<Date32Array>(&b, "dt")
            .value_as_date(0)
            .unwrap()
            .to_string(),
        "9999-12-31"
    );
    assert_eq!(
        col::<Time64MicrosecondArray>(&b, "tm").value(0),
        86_400_000_000 - 1
    );
    let dtm = col::<TimestampMicrosecondArray>(&b, "dtm");
    assert_eq!(
        dtm.value_as_datetime(0).unwrap().to_string(),
        "1000-01-01 00:00:00.000001"
    );
    let ts = col::<TimestampMicrosecondArray>(&b, "ts");
    assert_eq!(ts.data_type().to_string(), "Timestamp(µs, \"UTC\")");
    assert_eq!(ts.value(0), 2_147_483_647_999_999);
    assert_eq!(col::<Int16Array>(&b, "y").value(0), 2155);
    assert!(col::<StringArray>(&b, "j").value(0).contains("\"k\""));
    assert_eq!(col::<BinaryArray>(&b, "bn").value(0), [0x00, 0xff]);
    assert_eq!(col::<BinaryArray>(&b, "vb").value(0), b"");
    assert_eq!(
        col::<BinaryArray>(&b, "bl").value(0),
        [0xde, 0xad, 0xbe, 0xef]
    );
    assert_eq!(col::<StringArray>(&b, "g").value(0), "POINT(1 2)");
    for (i, f) in b.schema().fields().iter().enumerate().skip(1) {
        assert!(
            b.column(i).is_null(1),
            "{} is not NULL in the NULL row",
            f.name()
        );
    }
    // The text protocol reads the same values.
    let (text, _, _) = read(&src.with_protocol(Protocol::Text), "t", None, OnError::Fail)
        .await
        .unwrap();
    assert_eq!(text, b);
}

#[tokio::test]
async fn values_arrow_cannot_hold_are_bad_records_and_zero_dates_null() {
    let db = TestDb::new(
        "bad",
        &[
            "SET SESSION sql_mode = ''",
            "CREATE TABLE t (id INT PRIMARY KEY, flag TINYINT(1), tm TIME, dt DATE, dtm DATETIME)",
            "INSERT INTO t VALUES (1, 1, '12:00:00', '0000-00-00', '0000-00-00 00:00:00'), \
         (2, 7, '00:00:00', '2024-01-01', NULL), (3, 0, '100:00:00', NULL, NULL), \
         (4, 0, '-01:00:00', NULL, NULL)",
        ],
    )
    .await;
    for protocol in [Protocol::Binary, Protocol::Text] {
        let src = db.source(json!({})).with_protocol(protocol);
        let (b, bad, _) = read(&src, "t", None, OnError::Quarantine).await.unwrap();
        assert_eq!(col::<Int32Array>(&b, "id").values(), &[1]);
        assert!(b.column_by_name("dt").unwrap().is_null(0));
        assert!(b.column_by_name("dtm").unwrap().is_null(0));
        assert_eq!(bad.len(), 3, "{protocol:?}: {bad:?}");
        assert!(bad[0].starts_with("flag: 7 is not a boolean"), "{bad:?}");
        assert!(
            bad[1].starts_with("tm: the time `100:00:00` is outside"),
            "{bad:?}"
        );
        assert!(
            bad[2].starts_with("tm: the time `-01:00:00` is outside"),
            "{bad:?}"
        );
        let e = read(&src, "t", None, OnError::Fail).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("{}.t", db.name)) && text.contains("flag"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn declared_columns_are_read_with_a_cast() {
    let db = TestDb::new("declared", &[
        "CREATE TABLE t (id INT PRIMARY KEY, tm TIME, flag TINYINT(1), n DECIMAL(50,2), amount FLOAT, at DATETIME)",
        "INSERT INTO t VALUES (1, '100:00:00', 7, 123456789012345678901234567890123456789012345.25, 1.5, '2024-01-01 10:00:00')",
    ])
    .await;
    let src = db.source(json!({"streams": {"t": {"columns": {
        "tm": "string", "flag": "int64", "n": "decimal(38,2)", "amount": "float64", "at": "string", "id": "uint64"
    }}}}));
    let info = src.discover().await.unwrap();
    let tm = info[0].columns.iter().find(|c| c.name == "tm").unwrap();
    assert!(
        tm.note
            .as_deref()
            .unwrap_or_default()
            .contains("declared `string`"),
        "{tm:?}"
    );
    // Undeclared, the wide decimal is text, exactly.
    let plain = db.source(json!({}));
    let (b, bad, _) = read(&plain, "t", None, OnError::Quarantine).await.unwrap();
    // One bad record for the row, naming both values at fault.
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("tm:") && bad[0].contains("also `flag`"),
        "{bad:?}"
    );
    assert_eq!(b.num_rows(), 0);
    let e = read(&plain, "t", None, OnError::Fail).await.unwrap_err();
    assert!(
        e.to_string().contains(".t")
            && e.to_string()
                .contains("123456789012345678901234567890123456789012345.25"),
        "{e}"
    );
    assert!(matches!(e, ConnectorError::BadRecord { .. }));
    let (b, bad, _) = read(&src, "t", None, OnError::Quarantine).await.unwrap();
    assert_eq!(col::<StringArray>(&b, "tm").value(0), "100:00:00");
    assert_eq!(col::<Int64Array>(&b, "flag").value(0), 7);
    assert_eq!(col::<Float64Array>(&b, "amount").value(0), 1.5);
    assert_eq!(col::<StringArray>(&b, "at").value(0), "2024-01-01 10:00:00");
    assert_eq!(col::<UInt64Array>(&b, "id").value(0), 1);
    // 45 integer digits do not fit decimal(38,2): MySQL clips to the largest value
    // with a warning; the row is read.
    assert!(bad.is_empty(), "{bad:?}");
    let e = db
        .source(json!({"streams": {"t": {"columns": {"nope": "string"}}}}))
        .discover()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`nope`"), "{e}");
}

#[tokio::test]
async fn incremental_reads_from_the_bookmark_and_refuses_bad_cursors() {
    let db = TestDb::new("cursor", ORDERS).await;
    let src = db.source(json!({
        "streams": {"orders": {"cursor": "updated_at"}, "customers": {"cursor": "name"}}
    }));
    let (b, _, state) = read(&src, "orders", None, OnError::Fail).await.unwrap();
    assert_eq!(b.num_rows(), 4);
    assert_eq!(state["cursor"]["value"], "2024-01-03T00:00:00.500");
    let (again, _, _) = read(&src, "orders", Some(state.clone()), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(again.num_rows(), 0);
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&db.url()).unwrap())
        .await
        .unwrap();
    conn.query_drop(
        "INSERT INTO orders VALUES (5, 5, '2024-01-03 00:00:00.5'), (6, 6, '2024-02-01'), (7, 7, NULL); \
         UPDATE orders SET updated_at = '2024-03-01' WHERE id = 1",
    )
    .await
    .unwrap();
    conn.disconnect().await.unwrap();
    let (b, bad, state) = read(&src, "orders", Some(state), OnError::Quarantine)
        .await
        .unwrap();
    let mut ids = col::<Int32Array>(&b, "id").values().to_vec();
    ids.sort_unstable();
    assert_eq!(ids, [1, 5, 6]);
    assert_eq!(bad, ["updated_at: the cursor column `updated_at` is NULL"]);
    assert_eq!(state["cursor"]["value"], "2024-03-01T00:00:00");
    // Text cursors compare by code point, whatever the collation.
    let (b, _, state) = read(&src, "customers", None, OnError::Fail).await.unwrap();
    assert_eq!(b.num_rows(), 2);
    let (b, _, _) = read(&src, "customers", Some(state), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(b.num_rows(), 0);

    let odd = TestDb::new(
        "oddcursor",
        &["CREATE TABLE t (id INT, v BLOB, wide DECIMAL(65,2), flag BOOL, g GEOMETRY)"],
    )
    .await;
    for (column, says) in [
        ("v", "has no order"),
        ("flag", "has no order"),
        ("wide", "read as text"),
        ("g", "read as text"),
    ] {
        let e = odd
            .source(json!({"streams": {"t": {"cursor": column}}}))
            .read(ReadRequest {
                stream: "t".into(),
                state: None,
                on_error: OnError::Fail,
                batch_size: 10,
                known_schema: None,
            })
            .await
            .err()
            .unwrap();
        assert!(
            e.to_string().contains(says) && e.hint().is_some(),
            "{column}: {e}"
        );
    }
}

/// The bookmark goes back into SQL as a literal MySQL reads the same way,
/// for every orderable cursor type.
#[tokio::test]
async fn bookmarks_of_every_cursor_type_round_trip_through_sql() {
    let cases = [
        (
            "TIMESTAMP(6) NULL",
            "'2024-01-01 10:00:00.25'",
            "'2024-01-01 10:00:00.5'",
        ),
        (
            "TIMESTAMP NULL",
            "'2024-01-01 10:00:00'",
            "'2024-01-01 10:00:01'",
        ),
        ("DATETIME", "'2024-01-01 10:00:00'", "'2024-01-01 10:00:01'"),
        ("DATE", "'2024-01-01'", "'2024-01-02'"),
        ("TIME(3)", "'10:00:00.125'", "'10:00:00.126'"),
        ("DECIMAL(10,3)", "1.500", "1.501"),
        (
            "BIGINT UNSIGNED",
            "18446744073709551614",
            "18446744073709551615",
        ),
        ("INT", "-5", "-4"),
        ("DOUBLE", "0.1", "0.2"),
        // Stored as 0.699999988…: a row equal to the bookmark must come back.
        ("FLOAT", "0.7", "0.8"),
        ("YEAR", "2001", "2002"),
        (
            "VARCHAR(10) COLLATE utf8mb4_general_ci",
            "'Zeta'",
            "'alpha'",
        ),
        ("VARCHAR(10)", "'it''s \\\\'", "'it''s \\\\z'"),
    ];
    for (ty, first, later) in cases {
        let db = TestDb::new(
            "bookmark",
            &[
                &format!("CREATE TABLE t (id INT PRIMARY KEY, c {ty})"),
                &format!("INSERT INTO t VALUES (1, {first}), (2, {first})"),
            ],
        )
        .await;
        let src = db.source(json!({"streams": {"t": {"cursor": "c"}}}));
        let (b, _, state) = read(&src, "t", None, OnError::Fail).await.unwrap();
        assert_eq!(b.num_rows(), 2, "{ty}");
        let (b, _, _) = read(&src, "t", Some(state.clone()), OnError::Fail)
            .await
            .unwrap();
        assert_eq!(b.num_rows(), 0, "{ty}: {state}");
        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&db.url()).unwrap())
            .await
            .unwrap();
        conn.query_drop(format!("INSERT INTO t VALUES (3, {first}), (4, {later})"))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        let (b, _, _) = read(&src, "t", Some(state.clone()), OnError::Fail)
            .await
            .unwrap();
        let mut ids = col::<Int32Array>(&b, "id").values().to_vec();
        ids.sort_unstable();
        assert_eq!(ids, [3, 4], "{ty}: {state}");
    }
}

#[tokio::test]
async fn streams_and_ranges_share_the_source_connections() {
    let db = TestDb::new("shared", ORDERS).await;
    let src = db.source(json!({
        "max_connections": 1,
        "streams": {"orders": {"split": {"column": "id", "ranges": 3}}, "customers": {"split": {"column": "id"}}}
    }));
    let both = futures::future::join(
        read(&src, "orders", None, OnError::Fail),
        read(&src, "customers", None, OnError::Fail),
    );
    let (orders, customers) = tokio::time::timeout(std::time::Duration::from_secs(30), both)
        .await
        .expect("one connection is enough for two split streams");
    let mut ids = col::<Int32Array>(&orders.unwrap().0, "id")
        .values()
        .to_vec();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4]);
    assert_eq!(customers.unwrap().0.num_rows(), 2);
}

/// 1M rows through both protocols; prints rows/s. Run with
/// `cargo nextest run -p sluice-connectors protocol_speed --run-ignored only --no-capture`.
#[tokio::test]
#[ignore = "a measurement, not a check (about a minute)"]
async fn protocol_speed() {
    let db = TestDb::new("speed", &[
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(12,2), \
         status VARCHAR(16), note VARCHAR(64), created_at DATETIME(6), updated_at TIMESTAMP(6) NULL)",
        "SET SESSION max_recursive_iterations = 2000000",
        "INSERT INTO orders WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
         SELECT i, i % 1000, (i % 10000) / 100, ELT(1 + i % 3, 'new', 'paid', 'shipped'), \
         CONCAT('order number ', i), TIMESTAMP('2024-01-01') + INTERVAL i SECOND, \
         TIMESTAMP('2024-01-01') + INTERVAL i SECOND FROM n",
    ])
    .await;
    let start = std::time::Instant::now();
    let out = std::process::Command::new("mysql")
        .args([
            "-h",
            "127.0.0.1",
            "-uroot",
            "-N",
            "-B",
            "--quick",
            &db.name,
            "-e",
        ])
        .arg("SELECT * FROM orders")
        .output()
        .unwrap();
    eprintln!(
        "mysql client (--quick, to memory): {} bytes in {:.2} s",
        out.stdout.len(),
        start.elapsed().as_secs_f64()
    );
    for protocol in [Protocol::Text, Protocol::Binary].repeat(3) {
        let src = db.source(json!({})).with_protocol(protocol);
        let start = std::time::Instant::now();
        let mut messages = src
            .read(ReadRequest {
                stream: "orders".into(),
                state: None,
                on_error: OnError::Fail,
                batch_size: 65_536,
                known_schema: None,
            })
            .await
            .unwrap();
        let mut rows = 0;
        while let Some(m) = messages.next().await {
            if let Message::Batch(b) = m.unwrap() {
                rows += b.num_rows();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{protocol:?}: {rows} rows in {secs:.2} s ({:.0} rows/s)",
            rows as f64 / secs
        );
        assert_eq!(rows, 1_000_000);
    }
}
