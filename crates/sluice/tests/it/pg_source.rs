//! `type: postgres` sources against the real PostgreSQL on 127.0.0.1:5432.
//!
//! Each test creates its own database and drops it at the end.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Project;

/// A throwaway database on the local server.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub fn new(tag: &str) -> PgDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("sluice_t_{tag}_{}_{nanos}", std::process::id());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Run SQL (several statements allowed); stop at the first error.
    pub fn exec(&self, sql: &str) {
        psql(&self.name, sql);
    }

    /// One value, as text.
    pub fn value(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .args(["-d", &self.name, "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn psql(db: &str, sql: &str) {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-d", db, "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql failed: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rows of a lake query as JSON objects.
fn rows(p: &Project, sql: &str) -> Vec<Value> {
    p.ok(&["sql", sql, "--format", "jsonl"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const APP: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email varchar(80));
INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 50) i;
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id int REFERENCES customers(id),
  amount numeric(12,2) NOT NULL,
  status text NOT NULL,
  updated_at timestamptz NOT NULL
);
INSERT INTO orders
  SELECT i, 1 + i % 50, (i % 1000) * 1.25, 'new', timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 1000) i;
CREATE TABLE audit_log (id int, msg text);
";

/// The minimal source file, word for word.
const MINIMAL: &str = "sources:
  app:
    type: postgres
    url: ${APP_DB_URL}
    include: [public.orders, public.customers]
    streams:
      orders: { replication: incremental, cursor: updated_at, primary_key: [id], write_mode: merge }
";

#[test]
fn the_minimal_source_loads_then_merges_what_changed() {
    let db = PgDb::new("minimal");
    db.exec(APP);
    let p = Project::new(MINIMAL);
    p.write(".env", format!("APP_DB_URL={}\n", db.url()));

    let orders = p.run_json(&[], "app.orders");
    assert_eq!(orders["rows_written"], 1000, "{orders:#}");
    let customers = p.run_json(&[], "app.customers");
    assert_eq!(customers["rows_written"], 50, "{customers:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM app.orders"), 1000);
    assert_eq!(p.scalar("SELECT count(*) FROM app.customers"), 50);
    // Not included: never read.
    assert!(!p.ok(&["tables"]).contains("audit_log"));
    assert_eq!(
        p.query("SELECT sum(amount) FROM app.orders")[0][0],
        db.value("SELECT sum(amount) FROM orders")
    );

    // Change 10 rows, add 5, and run again: only those come back.
    db.exec(
        "UPDATE orders SET status = 'shipped', updated_at = timestamptz '2026-06-01 00:00:00+00' + id * interval '1 second' WHERE id <= 10;
         INSERT INTO orders SELECT i, 1, 9.99, 'new', timestamptz '2026-07-01 00:00:00+00' FROM generate_series(1001, 1005) i;",
    );
    let second = p.run_json(&["-s", "app.orders"], "app.orders");
    // The row at the bookmark is read again and recognised, never written twice.
    assert_eq!(second["rows_written"], 15, "{second:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM app.orders"), 1005);
    assert_eq!(p.scalar("SELECT count(DISTINCT id) FROM app.orders"), 1005);
    assert_eq!(
        p.scalar("SELECT count(*) FROM app.orders WHERE status = 'shipped'"),
        10
    );

    // Nothing changed: nothing written.
    let third = p.run_json(&["-s", "app.orders"], "app.orders");
    assert_eq!(third["rows_written"], 0, "{third:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM app.orders"), 1005);

    // The bookmark is readable without the database.
    let state = p.json(&["state", "show"]);
    let text = state.to_string();
    assert!(text.contains("2026-07-01"), "{state:#}");
    // The password-free URL is all anyone sees; the state holds no URL at all.
    assert!(!text.contains("postgres://"), "{state:#}");
}

#[test]
fn discover_lists_tables_columns_and_keys() {
    let db = PgDb::new("discover");
    db.exec(APP);
    let p = Project::new(&format!(
        "sources:\n  app:\n    type: postgres\n    url: {}\n",
        db.url()
    ));
    let text = p.ok(&["discover", "app"]);
    for needle in [
        "orders",
        "customers",
        "audit_log",
        "numeric(12,2)",
        "timestamptz",
        "id",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    let json = p.json(&["discover", "app"]);
    let streams = json.as_array().unwrap_or_else(|| panic!("{json:#}"));
    let orders = streams.iter().find(|s| s["stream"] == "orders").unwrap();
    assert_eq!(orders["primary_key"], serde_json::json!(["id"]));
    let audit = streams.iter().find(|s| s["stream"] == "audit_log").unwrap();
    assert_eq!(audit["primary_key"], serde_json::json!([]));
    let cols = orders["columns"].as_array().unwrap();
    let amount = cols.iter().find(|c| c["name"] == "amount").unwrap();
    assert_eq!(amount["type"], "decimal(12,2)", "{amount:#}");
    assert_eq!(amount["source_type"], "numeric(12,2)", "{amount:#}");
    assert_eq!(
        amount["nullable"], false,
        "NOT NULL is the table's word: {amount:#}"
    );
}

/// Every mapped type, one row of values and one row of NULLs.
#[test]
fn every_type_maps_with_values_and_nulls() {
    let db = PgDb::new("types");
    db.exec(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE TABLE t (
           id int PRIMARY KEY,
           c_int2 smallint, c_int4 integer, c_int8 bigint,
           c_num numeric(12,3), c_num_free numeric,
           c_real real, c_double double precision, c_bool boolean,
           c_text text, c_varchar varchar(10), c_char char(4),
           c_date date, c_time time, c_ts timestamp, c_tstz timestamptz,
           c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb, c_bytea bytea,
           c_int_arr int[], c_text_arr text[], c_enum mood, c_domain positive, c_inet inet
         );
         INSERT INTO t VALUES (1,
           -32768, 2147483647, -9223372036854775808,
           -123456789.125, 3.14159265358979323846264338327950288,
           1.5, -2.25e100, true,
           'héllo ''quoted'' \"x\", comma', 'varchar', 'ab',
           '2024-02-29', '23:59:59.999999', '1999-12-31 23:59:59.5', '2024-06-01 12:00:00+02',
           '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
           '{\"a\": [1, 2]}', '{\"b\": {\"c\": null}}', '\\x00ff10',
           '{1,NULL,3}', '{\"x\",\"y z\"}', 'happy', 7, '192.168.0.1/24');
         INSERT INTO t (id) VALUES (2);",
    );
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n",
        db.url()
    ));
    let out = p.run_json(&[], "pg.t");
    assert_eq!(out["rows_written"], 2, "{out:#}");

    let all = rows(&p, "SELECT * FROM pg.t ORDER BY id");
    let v = &all[0];
    assert_eq!(v["c_int2"], -32768);
    assert_eq!(v["c_int4"], 2147483647);
    assert_eq!(v["c_int8"], i64::MIN);
    assert_eq!(
        p.query("SELECT CAST(c_num AS VARCHAR) FROM pg.t WHERE id = 1")[0][0],
        "-123456789.125"
    );
    assert_eq!(v["c_num_free"], "3.14159265358979323846264338327950288");
    assert_eq!(v["c_real"], 1.5);
    assert_eq!(v["c_double"], -2.25e100);
    assert_eq!(v["c_bool"], true);
    assert_eq!(v["c_text"], "héllo 'quoted' \"x\", comma");
    assert_eq!(v["c_varchar"], "varchar");
    assert_eq!(v["c_char"], "ab  ", "char(n) keeps its padding");
    assert_eq!(v["c_date"], "2024-02-29");
    assert_eq!(v["c_time"], "23:59:59.999999");
    assert_eq!(v["c_ts"], "1999-12-31T23:59:59.500");
    assert_eq!(v["c_tstz"], "2024-06-01T10:00:00Z");
    assert_eq!(v["c_uuid"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(
        serde_json::from_str::<Value>(v["c_json"].as_str().unwrap()).unwrap(),
        serde_json::json!({"a": [1, 2]})
    );
    assert_eq!(
        serde_json::from_str::<Value>(v["c_jsonb"].as_str().unwrap()).unwrap(),
        serde_json::json!({"b": {"c": null}})
    );
    assert_eq!(v["c_int_arr"], serde_json::json!([1, null, 3]));
    assert_eq!(v["c_text_arr"], serde_json::json!(["x", "y z"]));
    assert_eq!(v["c_enum"], "happy");
    assert_eq!(v["c_domain"], 7);
    assert_eq!(v["c_inet"], "192.168.0.1/24");
    // Binary and interval columns: compare as text in SQL.
    assert_eq!(
        p.query("SELECT encode(c_bytea, 'hex') FROM pg.t WHERE id = 1")[0][0],
        "00ff10"
    );
    let interval =
        p.query("SELECT CAST(c_interval AS VARCHAR) FROM pg.t WHERE id = 1")[0][0].clone();
    assert!(
        interval.contains("14") && interval.contains("3") && interval.contains("4"),
        "1 year 2 mons 3 days 04:05:06.5 read as {interval}"
    );

    // Row 2: NULL everywhere, in every type.
    let nulls = &all[1];
    for (k, val) in nulls.as_object().unwrap() {
        if k != "id" {
            assert!(val.is_null(), "{k} should be NULL: {nulls:#}");
        }
    }

    // The lake's types say what discovery promised.
    let schema = p.ok(&["sql", "DESCRIBE pg.t", "--format", "csv"]);
    for (col, ty) in [
        ("c_int2", "Int16"),
        ("c_int8", "Int64"),
        ("c_num", "Decimal128(12, 3)"),
        ("c_num_free", "Utf8"),
        ("c_real", "Float32"),
        ("c_date", "Date32"),
        ("c_bytea", "Binary"),
    ] {
        let line = schema
            .lines()
            .find(|l| l.starts_with(&format!("{col},")))
            .unwrap_or_else(|| panic!("no {col} in\n{schema}"));
        assert!(line.contains(ty), "{col}: expected {ty}, got {line}");
    }
}

/// Odd values are bad records that name table, column and row; never silently lost.
#[test]
fn infinite_dates_are_quarantined_with_their_location() {
    let db = PgDb::new("badvals");
    db.exec(
        "CREATE TABLE ev (id int PRIMARY KEY, at date, ts timestamp);
         INSERT INTO ev VALUES (1, '2024-01-01', '2024-01-01 00:00'), (2, 'infinity', now()), (3, '2024-01-03', '-infinity');",
    );
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    streams:\n      ev: {{ on_error: quarantine }}\n",
        db.url()
    ));
    let out = p.run_json(&[], "pg.ev");
    assert_eq!(out["rows_written"], 1, "{out:#}");
    assert_eq!(out["rows_quarantined"], 2, "{out:#}");
    let bad = rows(&p, "SELECT * FROM pg.ev__quarantine ORDER BY line");
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0]["column"], "at");
    assert!(
        bad[0]["reason"].as_str().unwrap().contains("infinity"),
        "{bad:#?}"
    );
    assert_eq!(bad[1]["column"], "ts");
    // The row number within the table read and the whole row, as JSON.
    assert!(bad[0]["line"].is_number(), "{bad:#?}");
    assert!(
        bad[0]["record"].as_str().unwrap().contains("\"id\":2"),
        "{bad:#?}"
    );

    // The default policy fails the stream with the same location.
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n",
        db.url()
    ));
    let err = p.fails(&["run"], 1);
    assert!(err.contains("ev") && err.contains("at"), "{err}");
    assert!(err.contains("infinity"), "{err}");
}

#[test]
fn cursor_rules_are_enforced_with_hints() {
    let db = PgDb::new("cursor");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, updated_at timestamp, doc jsonb);
         INSERT INTO t VALUES (1, '2024-01-01', '{}'), (2, NULL, '{}'), (3, '2024-01-03', '{}');
         CREATE TABLE nokey (id int, updated_at timestamp);
         INSERT INTO nokey VALUES (1, '2024-01-01');",
    );
    // NULL cursors are bad records: quarantined, never skipped in silence.
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    include: [t]\n    streams:\n      t: {{ replication: incremental, cursor: updated_at, on_error: quarantine }}\n",
        db.url()
    ));
    let out = p.run_json(&[], "pg.t");
    assert_eq!(out["rows_written"], 2, "{out:#}");
    assert_eq!(out["rows_quarantined"], 1, "{out:#}");
    let bad = rows(&p, "SELECT * FROM pg.t__quarantine");
    assert!(
        bad[0]["reason"].as_str().unwrap().contains("NULL"),
        "{bad:#?}"
    );

    // A cursor that cannot be ordered is refused before anything is read.
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    include: [t]\n    streams:\n      t: {{ replication: incremental, cursor: doc }}\n",
        db.url()
    ));
    let err = p.fails(&["run"], 1);
    assert!(err.contains("doc") && err.contains("hint"), "{err}");

    // A cursor that is not a column says which columns there are.
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    include: [t]\n    streams:\n      t: {{ replication: incremental, cursor: updatd_at }}\n",
        db.url()
    ));
    let err = p.fails(&["run"], 1);
    assert!(err.contains("updated_at"), "{err}");

    // merge needs a key: a table without one is refused with a hint.
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    include: [nokey]\n    streams:\n      nokey: {{ write_mode: merge }}\n",
        db.url()
    ));
    let err = p.fails(&["run"], 2);
    assert!(err.contains("nokey") && err.contains("primary"), "{err}");
    assert!(err.contains("hint"), "{err}");
}

#[test]
fn split_ranges_read_the_same_rows_and_keep_state() {
    let db = PgDb::new("split");
    db.exec(
        "CREATE TABLE big (id bigint PRIMARY KEY, v text, updated_at timestamp NOT NULL);
         INSERT INTO big SELECT i, 'v' || i, timestamp '2026-01-01' + i * interval '1 second' FROM generate_series(1, 20000) i;",
    );
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    max_connections: 4\n    streams:\n      big:\n        replication: incremental\n        cursor: updated_at\n        write_mode: merge\n        split: {{ column: id, ranges: 4 }}\n",
        db.url()
    ));
    let out = p.run_json(&[], "pg.big");
    assert_eq!(out["rows_written"], 20000, "{out:#}");
    assert_eq!(p.scalar("SELECT count(DISTINCT id) FROM pg.big"), 20000);
    assert_eq!(p.scalar("SELECT sum(id) FROM pg.big"), 20000 * 20001 / 2);

    // The bookmark is the maximum over all ranges, not the last range's.
    db.exec(
        "UPDATE big SET v = 'changed', updated_at = timestamp '2027-01-01' WHERE id IN (3, 19999);",
    );
    let out = p.run_json(&[], "pg.big");
    assert_eq!(out["rows_written"], 2, "{out:#}");
    assert_eq!(
        p.scalar("SELECT count(*) FROM pg.big WHERE v = 'changed'"),
        2
    );
    assert_eq!(p.scalar("SELECT count(*) FROM pg.big"), 20000);

    // A split column that cannot be ranged is refused.
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    streams:\n      big: {{ split: {{ column: v }} }}\n",
        db.url()
    ));
    // The stream fails (exit 1); other streams of the run would still load.
    let err = p.fails(&["run"], 1);
    assert!(err.contains("integer"), "{err}");
}

#[test]
fn declared_columns_override_the_mapping() {
    let db = PgDb::new("columns");
    db.exec(
        "CREATE TABLE m (id int PRIMARY KEY, amount numeric, code int);
         INSERT INTO m VALUES (1, 12.5, 7), (2, NULL, NULL);",
    );
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    streams:\n      m:\n        columns: {{ amount: 'decimal(10,2)', code: string }}\n",
        db.url()
    ));
    p.ok(&["run"]);
    let all = rows(&p, "SELECT * FROM pg.m ORDER BY id");
    assert_eq!(all[0]["amount"], 12.5);
    assert!(
        p.ok(&["sql", "DESCRIBE pg.m", "--format", "csv"])
            .contains("Decimal128(10, 2)")
    );
    assert_eq!(all[0]["code"], "7");
    assert!(all[1]["amount"].is_null());
}

#[test]
fn connection_errors_say_what_to_check_and_hide_the_password() {
    let p = Project::new("sources:\n  pg:\n    type: postgres\n    url: ${PG_URL}\n");
    // Nothing listens on port 1.
    p.write(
        ".env",
        "PG_URL=postgres://app:hunter2secret@127.0.0.1:1/appdb?connect_timeout=2\n",
    );
    let started = Instant::now();
    let err = p.fails(&["run"], 1);
    assert!(err.contains("127.0.0.1") && err.contains('1'), "{err}");
    assert!(err.contains("appdb"), "{err}");
    assert!(err.contains("hint"), "{err}");
    assert!(!err.contains("hunter2secret"), "the password leaked: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "gave up too slowly"
    );

    // A database that does not exist is not retried and says so; it is a
    // mistake in the project file (exit 2), located there.
    let p = Project::new(
        "sources:\n  pg:\n    type: postgres\n    url: postgres://postgres@127.0.0.1:5432/sluice_no_such_db\n",
    );
    let err = p.fails(&["run"], 2);
    assert!(err.contains("sluice.yml:3"), "{err}");
    assert!(err.contains("sluice_no_such_db"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

/// Kill the second (incremental, merge) load mid-way and run again:
/// nothing lost, nothing twice.
#[test]
fn killed_incremental_merge_resumes_without_loss_or_duplicates() {
    let db = PgDb::new("crash");
    db.exec(
        "CREATE TABLE o (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
         INSERT INTO o SELECT i, 'a', timestamptz '2026-01-01 00:00+00' + i * interval '1 ms' FROM generate_series(1, 1000) i;",
    );
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    streams:\n      o: {{ replication: incremental, cursor: updated_at, write_mode: merge }}\n",
        db.url()
    ));
    p.ok(&["run"]);
    db.exec(
        "UPDATE o SET v = 'b', updated_at = updated_at + interval '1 year' WHERE id % 2 = 0;
         INSERT INTO o SELECT i, 'c', timestamptz '2027-06-01 00:00+00' + i * interval '1 ms' FROM generate_series(1001, 400000) i;",
    );
    let mut child = p.cmd(&["run"]).spawn().unwrap();
    // Let it read part of the table, then SIGKILL it.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the load ended before it could be killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM pg.o"), 400000);
    assert_eq!(p.scalar("SELECT count(DISTINCT id) FROM pg.o"), 400000);
    assert_eq!(p.scalar("SELECT count(*) FROM pg.o WHERE v = 'b'"), 500);
    assert_eq!(p.scalar("SELECT count(*) FROM pg.o WHERE v = 'a'"), 500);
    // And once more: nothing new.
    let out = p.run_json(&[], "pg.o");
    assert_eq!(out["rows_written"], 0, "{out:#}");
}

/// A text cursor under a collation that orders `a` before `Z` (ICU) while
/// the bookmark is Arrow's (byte order: `Z` < `a`): the new row `a` must
/// still arrive, however the column's collation compares.
#[test]
fn text_cursors_compare_by_code_point_whatever_the_collation() {
    let db = PgDb::new("collation");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, k text COLLATE \"und-x-icu\" NOT NULL);
         INSERT INTO t VALUES (1, 'A'), (2, 'Z');",
    );
    let p = Project::new(&format!(
        "sources:\n  pg:\n    type: postgres\n    url: {}\n    streams:\n      t: {{ cursor: k }}\n",
        db.url()
    ));
    assert_eq!(p.run_json(&[], "pg.t")["rows_written"], 2);
    db.exec("INSERT INTO t VALUES (3, 'a'), (4, 'B');");
    // `a` sorts after the bookmark `Z` by code point (and is new); `B` before it.
    let out = p.run_json(&[], "pg.t");
    assert_eq!(out["rows_written"], 1, "{out:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM pg.t WHERE k = 'a'"), 1);
}
