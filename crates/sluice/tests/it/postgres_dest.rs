//! CSV files → the PostgreSQL destination, through the real CLI and server
//! (127.0.0.1:5432, user `postgres`): each test has its own database.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Project, orders_csv};

/// A database of its own, dropped when the test ends.
struct PgDb {
    name: String,
}

impl PgDb {
    fn new(tag: &str) -> PgDb {
        let name = format!(
            "sluice_it_{tag}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    fn q(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }

    fn n(&self, sql: &str) -> i64 {
        let out = self.q(sql);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {out:?}"))
    }

    /// A project loading `data/*.csv` as stream `s.t` into this database.
    fn project(&self, stream_options: &str) -> Project {
        let p = Project::new(&format!(
            "destinations:\n  wh: {{ type: postgres, url: ${{WH_URL}}, schema: analytics }}\n\
             sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n    destination: wh\n{stream_options}"
        ));
        p.write(".env", format!("WH_URL={}\n", self.url()));
        p
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atc",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
        ])
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn merge_then_incremental_run_upserts() {
    let db = PgDb::new("merge");
    let p = db.project("    primary_key: [id]\n    write_mode: merge\n");
    p.write("data/a.csv", orders_csv(0, 5));
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["status"], "success", "{s:#}");
    assert_eq!(s["destination"], "postgres");
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), 5);
    // Second run: only the new file, which changes 3 and 4 and adds 5..7.
    p.write(
        "data/b.csv",
        "id,name,amount\n3,changed,1.5\n4,changed,2.5\n5,n5,3.5\n6,n6,4.5\n7,n7,5.5\n",
    );
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["rows_read"], 5, "{s:#}");
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), 8);
    assert_eq!(
        db.q("SELECT name FROM analytics.t WHERE id = 3").trim(),
        "changed"
    );
    assert_eq!(
        db.q("SELECT name FROM analytics.t WHERE id = 0").trim(),
        "name 0"
    );
    // Third run: nothing new, nothing loaded, the checkpoint still moves.
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["rows_read"], 0, "{s:#}");
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), 8);
    assert_eq!(
        db.n("SELECT seq FROM analytics._sluice_checkpoints WHERE table_name = 't' AND stream = 's.t'"),
        3
    );
    // Merge made the key the primary key.
    assert!(db.q("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'analytics.t'::regclass AND indisprimary").contains("(id)"));
}

#[test]
fn append_and_overwrite() {
    let db = PgDb::new("append");
    let p = db.project("    write_mode: append\n");
    p.write("data/a.csv", orders_csv(0, 10));
    p.ok(&["run"]);
    p.write("data/b.csv", orders_csv(10, 15));
    p.ok(&["run"]);
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), 15);
    assert_eq!(db.n("SELECT count(DISTINCT id) FROM analytics.t"), 15);
    // CSV types land as PostgreSQL types.
    assert_eq!(
        db.q("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'analytics' AND table_name = 't'").trim(),
        "id bigint, name text, amount double precision"
    );

    // Overwrite: the table is swapped for the new contents, whatever was there.
    let p = db.project("    write_mode: overwrite\n");
    p.write("data/a.csv", orders_csv(100, 103));
    let before = db.n("SELECT 'analytics.t'::regclass::oid::bigint");
    p.ok(&["run"]);
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), 3);
    assert_eq!(db.n("SELECT min(id) FROM analytics.t"), 100);
    assert_ne!(
        db.n("SELECT 'analytics.t'::regclass::oid::bigint"),
        before,
        "a new table was swapped in"
    );
    assert_eq!(
        db.n("SELECT count(*) FROM pg_class WHERE relname LIKE '%sluice_new%'"),
        0
    );
}

#[test]
fn evolution_adds_widens_and_refuses() {
    let db = PgDb::new("evol");
    let p = db.project("    write_mode: append\n");
    p.write("data/a.csv", "id,amount\n1,5\n2,6\n");
    p.ok(&["run"]);
    // A new column and integers that became decimals.
    p.write("data/b.csv", "id,amount,note\n3,6.5,hello\n");
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["status"], "success", "{s:#}");
    let changes = s["schema_changes"].to_string();
    assert!(
        changes.contains("note") && changes.contains("amount"),
        "{changes}"
    );
    assert_eq!(
        db.q("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'analytics' AND table_name = 't'").trim(),
        "id bigint, amount double precision, note text"
    );
    assert_eq!(
        db.n("SELECT count(*) FROM analytics.t WHERE note IS NULL"),
        2
    );
    // A declared type the rules refuse (float → string) stops the stream, naming table and column.
    let p2 = db.project("    write_mode: append\n    columns: { amount: string }\n");
    p2.write("data/c.csv", "id,amount\n4,x\n");
    let out = p2.run(&["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`amount`") && err.contains("s.t") && err.contains("--full-refresh"),
        "{err}"
    );
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), 3);
}

#[test]
fn bad_url_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Project::new(&format!(
        "destinations:\n  wh: {{ type: postgres, url: \"postgres://app:s3cret@127.0.0.1:{port}/shop?connect_timeout=1\" }}\n\
         sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n    destination: wh\n"
    ));
    p.write("data/a.csv", orders_csv(0, 2));
    let out = p.run(&["run"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("shop") && err.contains("hint"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    // `sluice debug` checks the destination too.
    let out = p.run(&["debug"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("destination wh") && all.contains(&format!("{port}")),
        "{all}"
    );
}

#[test]
fn connectors_and_debug_list_the_destination() {
    let db = PgDb::new("debug");
    let p = db.project("");
    p.write("data/a.csv", orders_csv(0, 2));
    let list = p.ok(&["connectors"]);
    assert!(
        list.contains("postgres")
            && list.contains("exactly-once (checkpoint in the same transaction)"),
        "{list}"
    );
    let out = p.run(&["debug"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("PostgreSQL") && all.contains("schema `analytics`"),
        "{all}"
    );

    // `extract --to` sends a lake-bound source to the warehouse, with its own bookmark.
    let p = Project::new(&format!(
        "destinations:\n  wh: {{ type: postgres, url: \"{}\", schema: other }}\n\
         sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n",
        db.url()
    ));
    p.write("data/a.csv", orders_csv(0, 4));
    let v = p.json(&["extract", "s", "--to", "wh"]);
    assert_eq!(v["streams"][0]["rows_written"], 4, "{v:#}");
    assert_eq!(db.n("SELECT count(*) FROM other.t"), 4);
    assert!(
        !p.path().join(".sluice/lake/s/t").exists(),
        "the lake was not written"
    );
}

const FILES: u64 = 12;
const ROWS: u64 = 40_000;

#[test]
fn killed_merge_load_resumes_without_duplicates() {
    let db = PgDb::new("crash");
    let p = db.project("    primary_key: [id]\n    write_mode: merge\n");
    for f in 0..FILES {
        p.write(
            &format!("data/part_{f:02}.csv"),
            orders_csv(f * ROWS, (f + 1) * ROWS),
        );
    }
    // Commit after every file; kill after the second commit.
    let mut child = p
        .cmd(&["run"])
        .env("SLUICE_COMMIT_BYTES", "0")
        .spawn()
        .unwrap();
    let started = Instant::now();
    let seq = || {
        psql(
            &db.name,
            "SELECT coalesce(max(seq), 0) FROM analytics._sluice_checkpoints WHERE to_regclass('analytics._sluice_checkpoints') IS NOT NULL",
        )
        .trim()
        .parse::<i64>()
        .unwrap_or(0)
    };
    loop {
        let exists = psql(
            &db.name,
            "SELECT to_regclass('analytics._sluice_checkpoints') IS NOT NULL",
        );
        if exists.trim() == "t" && seq() >= 2 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the load ended before it could be killed: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no commit within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = seq();
    assert!(
        done < FILES as i64,
        "killed too late to prove anything ({done} commits)"
    );
    let partial = db.n("SELECT count(*) FROM analytics.t");
    assert_eq!(
        partial % ROWS as i64,
        0,
        "only whole commits are visible: {partial}"
    );

    let s = p.run_json(&[], "s.t");
    assert_eq!(s["status"], "success", "{s:#}");
    assert!(
        s["rows_read"].as_u64().unwrap() < FILES * ROWS,
        "the re-run resumed, it did not start over: {s:#}"
    );
    let total = (FILES * ROWS) as i64;
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), total);
    assert_eq!(db.n("SELECT count(DISTINCT id) FROM analytics.t"), total);
    assert_eq!(db.n("SELECT max(id) FROM analytics.t"), total - 1);
}

/// Data-quality checks on a PostgreSQL destination: row checks during the
/// load, table checks in the database after it, `sluice check` on tables
/// keyed `<destination>:schema.table`, failures stored in the database.
#[test]
fn checks_run_in_the_destination_database() {
    let db = PgDb::new("checks");
    let p = db.project(
        "    on_fail: quarantine
    checks:
      - not_null: name
      - range: {column: amount, min: 0, max: 50}
      - unique: id
      - median: {column: amount, min: 0, max: 100}
checks:
  wh:analytics.t:
    - quantile: {column: amount, quantile: 0.5, max: 100}
    - distinct_count: {column: name, min: 3}
    - sql: {query: 'select * from {table} where amount >= 20', name: big, store_failures: true}
",
    );
    p.write(
        "data/a.csv",
        "id,name,amount\n1,a,10\n2,b,20\n2,c,30\n3,,60\n",
    );
    // Row 4 fails two row checks: quarantined in the database. The duplicate
    // id fails the table check after the commit.
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["status"], "failed", "{s:#}");
    assert_eq!(s["rows_written"], 3, "{s:#}");
    assert_eq!(s["rows_quarantined"], 1, "{s:#}");
    assert!(
        s["error"].as_str().unwrap_or_default().contains(
            "check `wh:analytics.t.unique_id` failed after the load: 1 duplicated value in 3 rows"
        ),
        "{s:#}"
    );
    assert_eq!(db.n("SELECT count(*) FROM analytics.t"), 3);
    assert!(
        db.q("SELECT reason FROM analytics.t__quarantine")
            .contains("wh:analytics.t.not_null_name")
    );
    let median = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "wh:analytics.t.median_amount")
        .cloned()
        .unwrap_or_default();
    assert_eq!(median["status"], "pass", "{s:#}");
    assert_eq!(median["observed"], 20.0, "{median:#}");

    let out = p.run(&["--json", "check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let get = |id: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id}: {report:#}"))
    };
    let unique = get("wh:analytics.t.unique_id");
    assert_eq!(unique["status"], "fail");
    assert_eq!(unique["samples"][0]["id"], 2, "{unique:#}");
    assert_eq!(get("wh:analytics.t.distinct_count_name")["observed"], 3.0);
    assert_eq!(get("wh:analytics.t.quantile_amount")["observed"], 20.0);
    let big = get("wh:analytics.t.big");
    assert_eq!(big["failing_rows"], 2, "{big:#}");
    assert_eq!(big["stored_failures"], "wh:checks.wh__analytics__t__big");
    assert_eq!(db.n("SELECT count(*) FROM checks.wh__analytics__t__big"), 2);
}
