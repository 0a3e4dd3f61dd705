//! `type: sqlite` sources end to end: a database file made here with
//! rusqlite, loaded into the lake by the real binary.

use crate::support::Project;

/// The minimal config of the docs, as written.
const CONFIG: &str = "sources:
  app:
    type: sqlite
    path: data/app.db
    include: [orders, customers]
    streams:
      orders: { replication: incremental, cursor: updated_at, primary_key: [id], write_mode: merge }
";

const SCHEMA: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, vip BOOLEAN);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  amount DECIMAL(10,2),
  status VARCHAR(12),
  ordered_on DATE,
  updated_at DATETIME
);
CREATE TABLE internal_notes (body TEXT);
INSERT INTO customers VALUES (1, 'Ada', 1), (2, 'Grace', 0);
INSERT INTO orders VALUES
  (1, 1, 12.5, 'new', '2024-03-01', '2024-03-01 10:00:00'),
  (2, 2, 7, 'paid', '2024-03-01', '2024-03-01T11:00:00Z'),
  (3, 1, 19.99, 'new', '2024-03-02', '2024-03-02 09:00:00');
";

fn exec(p: &Project, sql: &str) {
    let path = p.path().join("data/app.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn project(config: &str) -> Project {
    let p = Project::new(config);
    exec(&p, SCHEMA);
    p
}

#[test]
fn minimal_config_loads_the_included_tables() {
    let p = project(CONFIG);
    let out = p.ok(&["run"]);
    assert!(out.contains("app.orders"), "{out}");
    assert_eq!(p.scalar("SELECT count(*) FROM app.orders"), 3);
    assert_eq!(p.scalar("SELECT count(*) FROM app.customers"), 2);
    assert_eq!(
        p.query("SELECT id, amount, status, ordered_on, updated_at FROM app.orders ORDER BY id"),
        vec![
            vec!["1", "12.50", "new", "2024-03-01", "2024-03-01T10:00:00Z"],
            vec!["2", "7.00", "paid", "2024-03-01", "2024-03-01T11:00:00Z"],
            vec!["3", "19.99", "new", "2024-03-02", "2024-03-02T09:00:00Z"],
        ]
    );
    assert_eq!(
        p.query("SELECT name, vip FROM app.customers ORDER BY id"),
        vec![vec!["Ada", "true"], vec!["Grace", "false"]]
    );
    // Not included: not loaded.
    assert!(
        !p.run(&["sql", "SELECT * FROM app.internal_notes"])
            .status
            .success()
    );
}

#[test]
fn discover_prints_tables_columns_and_keys() {
    let p = project(CONFIG);
    let out = p.ok(&["discover", "app"]);
    assert!(out.contains("app.orders"), "{out}");
    assert!(out.contains("table: main.orders"), "{out}");
    assert!(out.contains("primary key: id"), "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("updated_at"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("DATETIME") && line.contains("timestamptz"),
        "{out}"
    );
    assert!(!out.contains("internal_notes"), "{out}");
    let json = p.json(&["discover", "app"]);
    let streams = json.as_array().unwrap();
    let names: Vec<&str> = streams
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["customers", "orders"]);
    let orders = &streams[1];
    assert_eq!(orders["primary_key"], serde_json::json!(["id"]));
    let types: Vec<(String, String)> = orders["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("id", "int64"),
        ("customer_id", "int64"),
        ("amount", "decimal(10,2)"),
        ("status", "string"),
        ("ordered_on", "date"),
        ("updated_at", "timestamptz"),
    ];
    assert_eq!(types, want.map(|(a, b)| (a.to_string(), b.to_string())));
    // The connector list names it.
    assert!(p.ok(&["connectors"]).contains("sqlite"));
}

#[test]
fn second_run_merges_updated_and_new_rows() {
    let p = project(CONFIG);
    p.ok(&["run"]);
    exec(
        &p,
        "UPDATE orders SET status = 'shipped', updated_at = '2024-03-03 08:00:00' WHERE id = 1;
         INSERT INTO orders VALUES (4, 2, 1.25, 'new', '2024-03-03', '2024-03-03T09:30:00+01:00');",
    );
    let s = p.run_json(&[], "app.orders");
    // Only what changed since the bookmark is read (the row at the bookmark,
    // already loaded, is skipped).
    assert_eq!(s["rows_written"], 2, "{s:#}");
    assert_eq!(
        p.query("SELECT id, status, updated_at FROM app.orders ORDER BY id"),
        vec![
            vec!["1", "shipped", "2024-03-03T08:00:00Z"],
            vec!["2", "paid", "2024-03-01T11:00:00Z"],
            vec!["3", "new", "2024-03-02T09:00:00Z"],
            vec!["4", "new", "2024-03-03T08:30:00Z"],
        ]
    );
    assert_eq!(
        p.scalar("SELECT count(DISTINCT id) - count(*) FROM app.orders"),
        0
    );
    // Nothing new: nothing written.
    let s = p.run_json(&[], "app.orders");
    assert_eq!(s["rows_written"], 0, "{s:#}");
}

#[test]
fn values_that_do_not_fit_are_quarantined_with_their_location() {
    let p = project(&format!("{CONFIG}    on_error: quarantine\n"));
    exec(
        &p,
        "INSERT INTO orders VALUES (5, 1, 'lots', 'new', '2024-03-02', '2024-03-02 10:00:00');
         INSERT INTO orders VALUES (6, 'abc', 1, 'new', 'someday', '2024-03-02 10:00:00');",
    );
    let s = p.run_json(&[], "app.orders");
    assert_eq!(
        (s["rows_written"].as_u64(), s["rows_quarantined"].as_u64()),
        (Some(3), Some(2)),
        "{s:#}"
    );
    let q = p.query(
        "SELECT file, line, \"column\", value, reason FROM app.orders__quarantine ORDER BY line",
    );
    assert_eq!(q[0][..4], ["main.orders", "5", "amount", "lots"]);
    assert!(q[0][4].contains("is not a decimal number"), "{q:?}");
    assert_eq!(q[1][..4], ["main.orders", "6", "customer_id", "abc"]);
    assert!(
        q[1][4].contains("not an integer") && q[1][4].contains("rowid 6"),
        "{q:?}"
    );
    // Without quarantine the first bad value stops the stream, located.
    let p = project(CONFIG);
    exec(
        &p,
        "INSERT INTO orders VALUES (5, 1, 'lots', 'new', NULL, NULL);",
    );
    let err = p.fails(&["run"], 1);
    assert!(
        err.contains("`main.orders`")
            && err.contains("record 5")
            && err.contains("column `amount`"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let p = Project::new(CONFIG);
    // A configuration error (exit 2), pointing at the source in sluice.yml.
    let err = p.fails(&["run"], 2);
    assert!(err.contains("sluice.yml:3:5"), "{err}");
    let resolved = p.path().join("data/app.db");
    assert!(err.contains(&resolved.display().to_string()), "{err}");
    assert!(
        err.contains("does not exist") && err.contains("hint:"),
        "{err}"
    );
    assert!(!resolved.exists(), "read-only: the file is never created");
    // A url: works too.
    let p = project(&CONFIG.replace("path: data/app.db", "url: sqlite://data/app.db"));
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM app.orders"), 3);
}

#[test]
fn split_reads_the_same_rows_as_unsplit() {
    let mut rows = String::from("BEGIN;\n");
    for i in 10..510 {
        rows.push_str(&format!(
            "INSERT INTO orders VALUES ({i}, 1, {i}.25, 'new', '2024-03-01', '2024-03-01 10:00:00');\n"
        ));
    }
    rows.push_str("COMMIT;\n");
    let split = "sources:
  app:
    type: sqlite
    path: data/app.db
    max_connections: 3
    include: [orders]
    streams:
      orders: { split: { column: id, ranges: 4 } }
";
    let plain =
        "sources:\n  app:\n    type: sqlite\n    path: data/app.db\n    include: [orders]\n";
    let (a, b) = (project(split), project(plain));
    exec(&a, &rows);
    exec(&b, &rows);
    a.ok(&["run"]);
    b.ok(&["run"]);
    let sql = "SELECT count(*), sum(id), sum(amount) FROM app.orders";
    assert_eq!(a.query(sql), b.query(sql));
    assert_eq!(a.scalar("SELECT count(*) FROM app.orders"), 503);
}
