//! `type: mysql` sources against the real MariaDB on 127.0.0.1:3306 (root,
//! no password; `scripts/services.sh` starts it). Each test creates its own
//! database with the `mysql` client and drops it at the end.

use std::process::Command;

use crate::support::Project;

/// A throwaway database on the local server.
struct MyDb {
    name: String,
}

impl MyDb {
    fn new(tag: &str, setup: &str) -> MyDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let db = MyDb {
            name: format!("sluice_it_{tag}_{}_{nanos}", std::process::id()),
        };
        db.exec(&format!("CREATE DATABASE `{}`", db.name), false);
        db.exec(setup, true);
        db
    }

    /// Run SQL (in the database when `inside`).
    fn exec(&self, sql: &str, inside: bool) {
        let mut c = Command::new("mysql");
        c.args(["-h", "127.0.0.1", "-P", "3306", "-uroot"]);
        if inside {
            c.arg(&self.name);
        }
        let out = c
            .arg("-e")
            .arg(sql)
            .output()
            .expect("the `mysql` client (scripts/services.sh installs it)");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.name)
    }

    /// A project whose `.env` points `APP_DB_URL` at this database.
    fn project(&self, yml: &str) -> Project {
        let p = Project::new(yml);
        p.write(".env", format!("APP_DB_URL={}\n", self.url()));
        p
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let _ = Command::new("mysql")
            .args(["-h", "127.0.0.1", "-P", "3306", "-uroot", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .status();
    }
}

const APP: &str = "
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80));
CREATE TABLE orders (
  id BIGINT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
  status ENUM('new','paid','shipped') NOT NULL, updated_at DATETIME(6) NULL
);
CREATE TABLE audit_log (id INT PRIMARY KEY, msg TEXT);
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', NULL);
INSERT INTO orders VALUES
  (1, 1, 10.50, 'new', '2024-01-01 10:00:00'),
  (2, 1, 20.00, 'paid', '2024-01-02 10:00:00'),
  (3, 2, 30.25, 'shipped', '2024-01-02 10:00:00');
";

/// The minimal config, as written.
const MINIMAL: &str = "sources:
  app:
    type: mysql
    url: ${APP_DB_URL}        # mysql://root@127.0.0.1:3306/appdb
    include: [orders, customers]     # MySQL: schema = the database; bare names = the URL's database
    streams:
      orders: { replication: incremental, cursor: updated_at, primary_key: [id], write_mode: merge }
";

#[test]
fn minimal_config_loads_both_tables_and_discovers_them() {
    let db = MyDb::new("minimal", APP);
    let p = db.project(MINIMAL);
    let text = p.ok(&["discover", "app"]);
    assert!(text.contains("app.orders"), "{text}");
    assert!(
        text.contains(&format!("table: {}.orders", db.name)),
        "{text}"
    );
    for needle in [
        "decimal(12,2)",
        "enum('new','paid','shipped')",
        "datetime(6)",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    assert!(text.contains("primary key: id"), "{text}");
    assert!(!text.contains("audit_log"), "not included: {text}");
    let json = p.json(&["discover", "app"]);
    let streams: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["customers", "orders"]);
    assert_eq!(json[1]["primary_key"], serde_json::json!(["id"]));
    assert_eq!(json[1]["columns"][0]["name"], "id");
    assert_eq!(json[1]["columns"][0]["type"], "int64");
    assert_eq!(json[1]["columns"][4]["type"], "timestamp");
    let amount = &json[1]["columns"][2];
    assert_eq!(
        (&amount["type"], &amount["source_type"], &amount["nullable"]),
        (
            &serde_json::json!("decimal(12,2)"),
            &serde_json::json!("decimal(12,2)"),
            &serde_json::json!(false)
        ),
        "{amount:#}"
    );

    let s = p.run_json(&[], "app.orders");
    assert_eq!(s["rows_written"], 3, "{s:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM app.customers"), 2);
    assert_eq!(
        p.query("SELECT id, amount, status FROM app.orders ORDER BY id"),
        vec![
            vec!["1", "10.50", "new"],
            vec!["2", "20.00", "paid"],
            vec!["3", "30.25", "shipped"]
        ]
    );
}

/// One column per MySQL type: a row of extremes and a row of NULLs, checked
/// through `sluice sql` (what lands in the lake).
#[test]
fn every_type_lands_with_extremes_and_nulls() {
    // (column, MySQL type, extreme value, what `sluice sql` shows)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("c_tinyint", "TINYINT", "-128", "-128"),
        ("c_tinyint_u", "TINYINT UNSIGNED", "255", "255"),
        ("c_smallint", "SMALLINT", "-32768", "-32768"),
        ("c_smallint_u", "SMALLINT UNSIGNED", "65535", "65535"),
        ("c_mediumint", "MEDIUMINT", "-8388608", "-8388608"),
        (
            "c_mediumint_u",
            "MEDIUMINT UNSIGNED",
            "16777215",
            "16777215",
        ),
        ("c_int", "INT", "-2147483648", "-2147483648"),
        ("c_int_u", "INT UNSIGNED", "4294967295", "4294967295"),
        (
            "c_bigint",
            "BIGINT",
            "-9223372036854775808",
            "-9223372036854775808",
        ),
        (
            "c_bigint_u",
            "BIGINT UNSIGNED",
            "18446744073709551615",
            "18446744073709551615",
        ),
        ("c_bool", "BOOL", "TRUE", "true"),
        ("c_tinyint1", "TINYINT(1)", "0", "false"),
        (
            "c_decimal",
            "DECIMAL(20,4)",
            "-9999999999999999.9999",
            "-9999999999999999.9999",
        ),
        ("c_float", "FLOAT", "-1.5", "-1.5"),
        (
            "c_double",
            "DOUBLE",
            "1.7976931348623157e308",
            "1.7976931348623157e308",
        ),
        ("c_bit", "BIT(12)", "b'111111111111'", "4095"),
        ("c_char", "CHAR(4)", "'abcd'", "abcd"),
        ("c_varchar", "VARCHAR(32)", "'Grüße ✓'", "Grüße ✓"),
        ("c_text", "TEXT", "'some text'", "some text"),
        ("c_longtext", "LONGTEXT", "REPEAT('z', 70000)", "70000"),
        ("c_enum", "ENUM('small','large')", "'large'", "large"),
        ("c_set", "SET('a','b','c')", "'a,c'", "a,c"),
        ("c_date", "DATE", "'9999-12-31'", "9999-12-31"),
        ("c_time", "TIME(6)", "'23:59:59.999999'", "23:59:59.999999"),
        (
            "c_datetime",
            "DATETIME(6)",
            "'1000-01-01 00:00:00.000001'",
            "1000-01-01T00:00:00.000001",
        ),
        (
            "c_timestamp",
            "TIMESTAMP(6) NULL",
            "'2038-01-19 03:14:07.999999'",
            "2038-01-19T03:14:07.999999Z",
        ),
        ("c_year", "YEAR", "2155", "2155"),
        ("c_json", "JSON", "'{\"k\":[1,2]}'", "{\"k\":[1,2]}"),
        ("c_binary", "BINARY(2)", "x'00ff'", "00ff"),
        ("c_varbinary", "VARBINARY(8)", "x'cafe'", "cafe"),
        ("c_blob", "BLOB", "x'deadbeef'", "deadbeef"),
        (
            "c_geometry",
            "GEOMETRY",
            "ST_GeomFromText('POINT(1 2)')",
            "POINT(1 2)",
        ),
    ];
    let columns: Vec<String> = cases
        .iter()
        .map(|(c, t, _, _)| format!("{c} {t}"))
        .collect();
    let values: Vec<&str> = cases.iter().map(|(_, _, v, _)| *v).collect();
    let names: Vec<&str> = cases.iter().map(|(c, ..)| *c).collect();
    let setup = format!(
        "SET time_zone = '+00:00';
         CREATE TABLE types (id INT PRIMARY KEY, {});
         INSERT INTO types (id, {}) VALUES (1, {});
         INSERT INTO types (id) VALUES (2);",
        columns.join(", "),
        names.join(", "),
        values.join(", ")
    );
    let db = MyDb::new("types", &setup);
    let p = db.project("sources:\n  app:\n    type: mariadb\n    url: ${APP_DB_URL}\n");
    p.ok(&["run"]);
    for (column, ty, _, expected) in cases {
        let shown = match *column {
            "c_longtext" => format!("SELECT length({column}) FROM app.types WHERE id = 1"),
            c if c.starts_with("c_b") && (c.contains("binary") || c.contains("blob")) => {
                format!("SELECT encode({column}, 'hex') FROM app.types WHERE id = 1")
            }
            _ => format!("SELECT {column} FROM app.types WHERE id = 1"),
        };
        let got = p.ok(&["sql", &shown, "--format", "csv"]);
        // One CSV cell: quotes around it, doubled inside.
        let cell = got.lines().nth(1).unwrap_or_default();
        let value = cell
            .strip_prefix('"')
            .and_then(|c| c.strip_suffix('"'))
            .map_or(cell.to_string(), |c| c.replace("\"\"", "\""));
        assert_eq!(value, *expected, "{ty}: {got}");
        let null = p.scalar(&format!(
            "SELECT count(*) FROM app.types WHERE id = 2 AND {column} IS NULL"
        ));
        assert_eq!(null, 1, "{ty}: the NULL row");
    }
}

#[test]
fn second_run_merges_updates_and_appends_new_rows() {
    let db = MyDb::new("incr", APP);
    let p = db.project(MINIMAL);
    p.ok(&["run"]);
    db.exec(
        "UPDATE orders SET amount = 99.99, status = 'paid', updated_at = '2024-02-01 00:00:00' WHERE id = 1;
         INSERT INTO orders VALUES (4, 2, 4.00, 'new', '2024-01-02 10:00:00'), (5, 2, 5.00, 'new', '2024-02-02 00:00:00');",
        true,
    );
    let s = p.run_json(&[], "app.orders");
    // Row 1 changed, 4 is at the old bookmark (new there), 5 is past it; 2
    // and 3 sit at the bookmark and were loaded already.
    assert_eq!(
        (s["rows_written"].as_i64(), s["rows_skipped"].as_i64()),
        (Some(3), Some(2)),
        "{s:#}"
    );
    assert_eq!(
        p.query("SELECT id, amount, status FROM app.orders ORDER BY id"),
        vec![
            vec!["1", "99.99", "paid"],
            vec!["2", "20.00", "paid"],
            vec!["3", "30.25", "shipped"],
            vec!["4", "4.00", "new"],
            vec!["5", "5.00", "new"]
        ]
    );
    // Nothing new: nothing written.
    let s = p.run_json(&[], "app.orders");
    assert_eq!(s["rows_written"], 0, "{s:#}");
    assert_eq!(p.scalar("SELECT count(DISTINCT id) FROM app.orders"), 5);
}

#[test]
fn null_cursor_rows_are_quarantined() {
    let db = MyDb::new("nullcur", APP);
    db.exec("INSERT INTO orders VALUES (9, 1, 1.00, 'new', NULL)", true);
    let p = db.project(&MINIMAL.replace(
        "write_mode: merge }",
        "write_mode: merge, on_error: quarantine }",
    ));
    let s = p.run_json(&[], "app.orders");
    assert_eq!(
        (s["rows_written"].as_i64(), s["rows_quarantined"].as_i64()),
        (Some(3), Some(1)),
        "{s:#}"
    );
    let q = p.query("SELECT \"column\", reason FROM app.orders__quarantine");
    assert_eq!(q[0][0], "updated_at", "{q:?}");
    assert!(q[0][1].contains("is NULL"), "{q:?}");
    // Without quarantine the run fails and says how to fix it.
    let p = db.project(MINIMAL);
    let err = String::from_utf8_lossy(&p.run(&["run"]).stderr).to_string();
    assert!(err.contains("updated_at") && err.contains("hint:"), "{err}");
}

#[test]
fn split_ranges_read_the_same_rows_as_one_query() {
    let db = MyDb::new(
        "split",
        "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(10), updated_at DATETIME);
         SET SESSION max_recursive_iterations = 100000;
         INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1003)
           SELECT i * 3, CONCAT('v', i), TIMESTAMP('2024-01-01') + INTERVAL (i % 50) HOUR FROM n;",
    );
    let p = db.project(
        "sources:
  one:
    type: mysql
    url: ${APP_DB_URL}
  split:
    type: mysql
    url: ${APP_DB_URL}
    max_connections: 3
    streams:
      big: { cursor: updated_at, primary_key: [id], write_mode: merge, split: { column: id, ranges: 4 } }
",
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM split.big"), 1003);
    let whole = p.query("SELECT id, v FROM one.big ORDER BY id");
    let split = p.query("SELECT id, v FROM split.big ORDER BY id");
    assert_eq!(whole.len(), 1003);
    assert_eq!(whole, split);
    // The state after a split read is the same bookmark: nothing new, nothing read.
    db.exec(
        "INSERT INTO big VALUES (1, 'new', '2025-01-01'), (100000, 'new2', '2025-01-01')",
        true,
    );
    let s = p.run_json(&["--select", "split"], "split.big");
    assert_eq!(s["rows_written"], 2, "{s:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM split.big"), 1005);
}

#[test]
fn bad_urls_and_wrong_passwords_are_clear_errors_without_the_password() {
    let db = MyDb::new("errors", APP);
    let p = Project::new(MINIMAL);
    p.write(
        ".env",
        format!(
            "APP_DB_URL=mysql://root:hunter2secret@127.0.0.1:3306/{}\n",
            db.name
        ),
    );
    let out = p.run(&["run"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(err.contains("Cannot connect to MySQL"), "{err}");
    assert!(err.contains("password"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");

    p.write(
        ".env",
        "APP_DB_URL=mysql://root:hunter2secret@127.0.0.1:1/appdb\n",
    );
    let out = p.run(&["discover", "app"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains("127.0.0.1:1") && err.contains("accepts TCP connections"),
        "{err}"
    );
    assert!(!err.contains("hunter2secret"), "{err}");

    p.write(
        ".env",
        "APP_DB_URL=mysql://root:hunter2secret@127.0.0.1:notaport/appdb\n",
    );
    let err = String::from_utf8_lossy(&p.run(&["run"]).stderr).to_string();
    assert!(
        err.contains("not valid") && !err.contains("hunter2secret"),
        "{err}"
    );
}

#[test]
fn merge_without_a_primary_key_is_refused() {
    let db = MyDb::new(
        "nokey",
        "CREATE TABLE events (id INT, at DATETIME); INSERT INTO events VALUES (1, NOW());",
    );
    let p = db.project(
        "sources:\n  app:\n    type: mysql\n    url: ${APP_DB_URL}\n    streams:\n      events: { write_mode: merge }\n",
    );
    let err = String::from_utf8_lossy(&p.run(&["run"]).stderr).to_string();
    assert!(err.contains("primary") && err.contains("hint:"), "{err}");
}

#[test]
fn killed_incremental_load_reruns_without_loss_or_duplicates() {
    const N: i64 = 300_000;
    let db = MyDb::new(
        "kill",
        &format!(
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, note VARCHAR(40), updated_at DATETIME(6) NULL);
             SET SESSION max_recursive_iterations = 1000000;
             INSERT INTO orders WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N})
               SELECT i, i % 1000, CONCAT('note ', i), TIMESTAMP('2024-01-01') + INTERVAL (i % 1000) MINUTE FROM n;"
        ),
    );
    let p = db.project(
        "sources:\n  app:\n    type: mysql\n    url: ${APP_DB_URL}\n    streams:\n      orders: { cursor: updated_at, primary_key: [id], write_mode: merge }\n",
    );
    p.ok(&["run"]);
    // Every row changes; the second run is killed while it reads them.
    db.exec(
        "UPDATE orders SET amount = amount + 1, updated_at = updated_at + INTERVAL 1 YEAR",
        true,
    );
    let mut child = p
        .cmd(&["run"])
        .env("SLUICE_COMMIT_BYTES", "0")
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let finished = child.try_wait().unwrap().is_some();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!finished, "the load ended before it could be killed");
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM app.orders"), N);
    assert_eq!(p.scalar("SELECT count(DISTINCT id) FROM app.orders"), N);
    assert_eq!(
        p.scalar("SELECT count(*) FROM app.orders WHERE updated_at < TIMESTAMP '2025-01-01'"),
        0,
        "every change arrived"
    );
    assert_eq!(
        p.scalar("SELECT CAST(sum(amount) AS BIGINT) FROM app.orders"),
        (0..N).map(|i| (i + 1) % 1000 + 1).sum::<i64>()
    );
}
