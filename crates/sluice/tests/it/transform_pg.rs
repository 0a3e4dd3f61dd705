//! `sluice transform build` on PostgreSQL: the `shop` fixture project with
//! a `type: postgres` output (127.0.0.1:5432, user `postgres`, a database
//! of its own), checked against the goldens dbt-duckdb made.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::copy_dir;

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// The 8 relations of `shop` (3 seeds, 3 views, 2 tables).
const RELATIONS: [&str; 8] = [
    "raw_riders",
    "raw_rentals",
    "raw_charges",
    "stg_riders",
    "stg_rentals",
    "stg_charges",
    "rider_activity",
    "rental_payments",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(conninfo: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A fresh database, dropped when the value is.
struct PgDb {
    name: String,
}

impl PgDb {
    fn new() -> PgDb {
        let name = format!(
            "sluice_t_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let sql = format!("CREATE DATABASE {name}");
        runtime().block_on(async { client(ADMIN).await.batch_execute(&sql).await.unwrap() });
        PgDb { name }
    }

    /// Every row of `schema.name` as a JSON object (`row_to_json`).
    fn rows(&self, schema: &str, name: &str) -> Vec<Value> {
        let conninfo = format!("{ADMIN} dbname={}", self.name);
        let sql = format!("SELECT row_to_json(t)::text FROM \"{schema}\".\"{name}\" t");
        runtime().block_on(async {
            client(&conninfo)
                .await
                .query(&sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
                .collect()
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        runtime().block_on(async {
            let _ = client(ADMIN).await.batch_execute(&sql).await;
        });
    }
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt/shop")
}

/// The shop project in a temp dir, its profile pointing at `db`.
fn shop(db: &PgDb) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for part in ["dbt_project.yml", "models", "seeds", "macros"] {
        let from = fixture().join(part);
        if from.is_dir() {
            copy_dir(&from, &d.path().join(part));
        } else {
            std::fs::copy(&from, d.path().join(part)).unwrap();
        }
    }
    std::fs::write(
        d.path().join("profiles.yml"),
        format!(
            "shop:\n  target: dev\n  outputs:\n    dev: {{type: sluice, schema: main}}\n    pg:\n      type: postgres\n      host: 127.0.0.1\n      port: 5432\n      user: postgres\n      password: \"\"\n      dbname: {}\n      schema: main\n      threads: 1\n",
            db.name
        ),
    )
    .unwrap();
    d
}

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--project-dir")
        .arg(dir)
        .arg("--no-progress")
        .args(args)
        .env_remove("SLUICE_PROJECT_DIR")
        .env_remove("DBT_PROFILES_DIR")
        .env_remove("SLUICE_LOG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A value in a form that sorts and compares: numbers rounded to 6 decimals.
fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{:.6}", n.as_f64().unwrap()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", canonical(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() <= 1e-6
        }
        _ => a == b,
    }
}

/// `rows` equal the golden rows of `name`, in any order.
fn assert_golden(name: &str, mut rows: Vec<Value>) {
    let golden = std::fs::read_to_string(fixture().join(format!("golden/{name}.jsonl"))).unwrap();
    let mut golden: Vec<Value> = golden
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), golden.len(), "{name}: row count");
    let columns = |r: &Value| r.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(columns(&rows[0]), columns(&golden[0]), "{name}: columns");
    rows.sort_by_cached_key(canonical);
    golden.sort_by_cached_key(canonical);
    for (row, want) in rows.iter().zip(&golden) {
        let (row, want) = (row.as_object().unwrap(), want.as_object().unwrap());
        for (column, expected) in want {
            assert!(
                same_value(&row[column], expected),
                "{name}.{column}: got {} for {}, golden {expected} in {want:?}",
                row[column],
                row.get("rider_id").or_else(|| row.values().next()).unwrap()
            );
        }
    }
}

#[test]
fn build_on_postgres_matches_the_duckdb_goldens() {
    let db = PgDb::new();
    let d = shop(&db);
    for round in 1..=2 {
        // The second build replaces everything that the first made.
        let out = sluice(d.path(), &["transform", "build", "--target", "pg"]);
        let all = text(&out);
        assert!(out.status.success(), "round {round}:\n{all}");
        assert!(
            all.contains("PASS=28 WARN=0 ERROR=0 SKIP=0 TOTAL=28"),
            "round {round}:\n{all}"
        );
        assert!(
            all.contains("on postgres (postgres://postgres@127.0.0.1:5432/"),
            "{all}"
        );
        for name in RELATIONS {
            assert_golden(name, db.rows("main", name));
        }
    }
    let results: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("target/run_results.json")).unwrap())
            .unwrap();
    assert_eq!(results["results"].as_array().unwrap().len(), 28);
}

#[test]
fn postgres_errors_point_at_the_compiled_line() {
    let db = PgDb::new();
    let d = shop(&db);
    let out = sluice(d.path(), &["transform", "seed", "--target", "pg"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(
        d.path().join("models/marts/broken.sql"),
        "select\n    rider_id,\n    ridr_name\nfrom {{ ref('raw_riders') }}\n",
    )
    .unwrap();
    let out = sluice(
        d.path(),
        &["transform", "run", "--target", "pg", "--select", "broken"],
    );
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("column \"ridr_name\" does not exist"), "{all}");
    assert!(
        all.contains("target/compiled/shop/models/marts/broken.sql, line 3"),
        "{all}"
    );

    // A profile without a user: what to add.
    let profiles = std::fs::read_to_string(d.path().join("profiles.yml")).unwrap();
    std::fs::write(
        d.path().join("profiles.yml"),
        profiles.replace("      user: postgres\n", ""),
    )
    .unwrap();
    let out = sluice(d.path(), &["transform", "run", "--target", "pg"]);
    let all = text(&out);
    assert!(!out.status.success());
    assert!(
        all.contains("output `pg`: the output has no `user`") && all.contains("hint:"),
        "{all}"
    );
}

#[test]
fn snapshots_run_inside_postgres() {
    let db = PgDb::new();
    let d = shop(&db);
    let dir = d.path();
    std::fs::create_dir_all(dir.join("snapshots")).unwrap();
    std::fs::write(
        dir.join("snapshots/riders.sql"),
        "{% snapshot riders_history %}\n{{ config(target_schema='history', unique_key='rider_id', strategy='check', check_cols=['home_district'], invalidate_hard_deletes=True) }}\nselect rider_id, home_district from {{ ref('raw_riders') }}\n{% endsnapshot %}\n",
    )
    .unwrap();
    let out = sluice(
        dir,
        &[
            "transform",
            "build",
            "--target",
            "pg",
            "-s",
            "raw_riders",
            "riders_history",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    // Rider 101 moves; rider 102 is gone.
    let seed = dir.join("seeds/raw_riders.csv");
    let csv = std::fs::read_to_string(&seed).unwrap();
    let csv: String = csv
        .lines()
        .filter(|l| !l.starts_with("102,"))
        .map(|l| l.replace("101,Ada,Okafor,Old Town", "101,Ada,Okafor,Harbour") + "\n")
        .collect();
    std::fs::write(&seed, csv).unwrap();
    let out = sluice(
        dir,
        &[
            "transform",
            "build",
            "--target",
            "pg",
            "-s",
            "raw_riders",
            "riders_history",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let rows = db.rows("history", "riders_history");
    assert_eq!(rows.len(), 25, "24 riders + a new version of 101");
    let open = |id: i64| {
        rows.iter()
            .filter(|r| r["rider_id"] == id)
            .map(|r| {
                (
                    r["home_district"].as_str().unwrap().to_string(),
                    r["dbt_valid_to"].is_null(),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut ada = open(101);
    ada.sort();
    assert_eq!(
        ada,
        vec![
            ("Harbour".to_string(), true),
            ("Old Town".to_string(), false)
        ]
    );
    assert_eq!(open(102), vec![("Riverside".to_string(), false)]);
}

#[test]
fn a_transform_section_runs_models_in_a_postgres_destination_that_streams_load() {
    let db = PgDb::new();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("data/orders.csv", "id,amount\n1,10\n2,20\n3,30\n");
    // The URL (a secret in real life) comes from .env, as for any destination.
    write(
        ".env",
        &format!("WH_URL=postgres://postgres@127.0.0.1:5432/{}\n", db.name),
    );
    write(
        "sluice.yml",
        "destinations:\n  wh: { type: postgres, url: ${WH_URL} }\nsources:\n  raw:\n    type: files\n    format: csv\n    path: data/orders.csv\n    stream: orders\n    destination: wh\ntransform:\n  project_dir: dbt\n  engine: wh\n  schema: analytics\n",
    );
    write("dbt/dbt_project.yml", "name: t\nprofile: t\n");
    write(
        "dbt/models/sources.yml",
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: orders\n",
    );
    write(
        "dbt/models/big_orders.sql",
        "select id, amount from {{ source('raw', 'orders') }} where amount > 15",
    );
    let out = sluice(dir, &["--json", "transform", "ls"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = v
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["resource_type"] == "source")
        .unwrap();
    assert_eq!(source["loaded_by"], "raw.orders");
    let out = sluice(dir, &["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sluice(dir, &["transform", "run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("on postgres"), "{}", text(&out));
    let mut ids: Vec<i64> = db
        .rows("analytics", "big_orders")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![2, 3]);
}

/// Columns of a catalog entry as `(index, name, type)`, in index order.
fn catalog_columns(entry: &Value) -> Vec<(u64, String, String)> {
    let mut cols: Vec<(u64, String, String)> = entry["columns"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| {
            (
                c["index"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    cols.sort();
    cols
}

#[test]
fn docs_generate_reads_the_catalog_from_pg_catalog() {
    let db = PgDb::new();
    let d = shop(&db);
    std::fs::write(
        d.path().join("models/sources.yml"),
        "version: 2\nsources:\n  - name: raw\n    schema: main\n    tables: [{name: raw_riders}, {name: not_loaded}]\n",
    )
    .unwrap();
    let out = sluice(d.path(), &["transform", "build", "--target", "pg"]);
    assert!(out.status.success(), "{}", text(&out));
    let conninfo = format!("{ADMIN} dbname={}", db.name);
    runtime().block_on(async {
        client(&conninfo)
            .await
            .batch_execute(
                "COMMENT ON TABLE main.raw_riders IS 'Riders as loaded'; COMMENT ON COLUMN main.raw_riders.rider_id IS 'The id'",
            )
            .await
            .unwrap()
    });
    let out = sluice(
        d.path(),
        &["--json", "transform", "docs", "generate", "--target", "pg"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["engine"], "postgres");
    assert_eq!(summary["nodes"], 8, "{summary}");
    assert_eq!(summary["sources"], 1, "{summary}");
    assert_eq!(
        summary["missing"],
        serde_json::json!([{"unique_id": "source.shop.raw.not_loaded", "relation": "\"main\".\"not_loaded\""}])
    );

    let catalog: Value =
        serde_json::from_slice(&std::fs::read(d.path().join("target/catalog.json")).unwrap())
            .unwrap();
    let stg = &catalog["nodes"]["model.shop.stg_riders"];
    assert_eq!(
        stg["metadata"],
        serde_json::json!({"type": "VIEW", "schema": "main", "name": "stg_riders", "database": db.name, "comment": null, "owner": "postgres"})
    );
    let cols = catalog_columns(stg);
    let typed: Vec<(&str, &str)> = cols
        .iter()
        .map(|(_, n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        typed,
        [
            ("rider_id", "bigint"),
            ("first_name", "text"),
            ("last_name", "text"),
            ("rider_name", "text"),
            ("home_district", "text"),
            ("signup_date", "date"),
            ("joined_after_launch", "boolean"),
        ]
    );
    assert_eq!(cols[0].0, 1);
    // dbt-postgres has no size statistics.
    assert_eq!(
        stg["stats"],
        serde_json::json!({"has_stats": {"id": "has_stats", "label": "Has Stats?", "value": false, "include": false, "description": "Indicates whether there are statistics for this table"}})
    );
    let activity = &catalog["nodes"]["model.shop.rider_activity"];
    assert_eq!(activity["metadata"]["type"], "BASE TABLE");
    let charges = catalog_columns(&catalog["nodes"]["seed.shop.raw_charges"]);
    assert!(
        charges
            .iter()
            .any(|(_, n, t)| n == "amount_cents" && t == "bigint"),
        "{charges:?}"
    );
    let source = &catalog["sources"]["source.shop.raw.raw_riders"];
    assert_eq!(source["metadata"]["comment"], "Riders as loaded");
    assert_eq!(source["columns"]["rider_id"]["comment"], "The id");
    assert!(catalog["sources"]["source.shop.raw.not_loaded"].is_null());
}

#[test]
fn a_local_package_builds_inside_postgres() {
    let db = PgDb::new();
    let d = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt");
    for name in ["withpkg", "mini_utils"] {
        copy_dir(&fixtures.join(name), &d.path().join(name));
    }
    let dir = d.path().join("withpkg");
    std::fs::write(
        dir.join("profiles.yml"),
        format!(
            "withpkg:\n  target: pg\n  outputs:\n    pg:\n      type: postgres\n      host: 127.0.0.1\n      port: 5432\n      user: postgres\n      password: \"\"\n      dbname: {}\n      schema: main\n      threads: 1\n",
            db.name
        ),
    )
    .unwrap();
    let out = sluice(&dir, &["transform", "deps"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sluice(&dir, &["transform", "build"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PASS=9 WARN=0 ERROR=0 SKIP=0 TOTAL=9"),
        "{}",
        text(&out)
    );
    let mut pkg: Vec<String> = db
        .rows("main_pkg", "pkg_model")
        .iter()
        .map(canonical)
        .collect();
    pkg.sort();
    assert_eq!(
        pkg,
        vec![
            "code=\"A\",scaled=4.000000,tag=\"pkg:A\"",
            "code=\"B\",scaled=8.000000,tag=\"pkg:B\"",
        ]
    );
    let mut root: Vec<String> = db
        .rows("main", "order_rates")
        .iter()
        .map(canonical)
        .collect();
    root.sort();
    assert_eq!(
        root,
        vec![
            "id=1.000000,code=\"A\",scaled=4.000000,unit_price=5.000000,root_tag=\"root:A\",pkg_tag=\"pkg:A\",twice=4.000000",
            "id=2.000000,code=\"B\",scaled=8.000000,unit_price=0.000000,root_tag=\"root:B\",pkg_tag=\"pkg:B\",twice=0.000000",
            "id=3.000000,code=\"A\",scaled=4.000000,unit_price=1.500000,root_tag=\"root:A\",pkg_tag=\"pkg:A\",twice=8.000000",
        ]
    );
}

/// The `pivot` fixture in a temp dir, a `pg` output pointing at `db`.
fn pivot(db: &PgDb) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt/pivot");
    copy_dir(&fixture, d.path());
    let profiles = std::fs::read_to_string(d.path().join("profiles.yml")).unwrap();
    std::fs::write(
        d.path().join("profiles.yml"),
        format!(
            "{profiles}    pg:\n      type: postgres\n      host: 127.0.0.1\n      port: 5432\n      user: postgres\n      password: \"\"\n      dbname: {}\n      schema: main\n",
            db.name
        ),
    )
    .unwrap();
    d
}

#[test]
fn run_query_and_statement_ask_postgres_when_a_model_runs() {
    let db = PgDb::new();
    let d = pivot(&db);
    // parse and ls need no database (the `nodb` output points at nothing).
    for args in [
        &["transform", "parse", "--target", "nodb"][..],
        &["transform", "ls", "--target", "nodb"][..],
    ] {
        let out = sluice(d.path(), args);
        assert!(out.status.success(), "{args:?}:\n{}", text(&out));
    }
    // A statement that writes is fine on PostgreSQL: a pre-step making a
    // table the model then reads.
    std::fs::write(
        d.path().join("models/audit.sql"),
        "{% call statement('setup') %}create table if not exists main.audit_log (n int); insert into main.audit_log values (1), (2){% endcall %}\n{% set r = load_result('setup') %}\nselect '{{ r['response'].code if execute else '' }}' as code, (select count(*) from main.audit_log) as n from {{ ref('stg_payments') }} limit 1\n",
    )
    .unwrap();
    let out = sluice(d.path(), &["transform", "build", "--target", "pg"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("| credit_card    | 3   |"), "{all}");
    let mut got: Vec<String> = db
        .rows("main", "order_payments")
        .iter()
        .map(canonical)
        .collect();
    got.sort();
    let mut want: Vec<String> = [
        (1, 0, 100, 1000, 0),
        (2, 2500, 0, 0, 0),
        (3, 0, 0, 1000, 0),
        (4, 0, 0, 0, 1500),
    ]
    .iter()
    .map(|(o, b, c, cc, g)| {
        canonical(&serde_json::json!({
            "order_id": o,
            "bank_transfer_amount": b,
            "coupon_amount": c,
            "credit_card_amount": cc,
            "gift_card_amount": g,
        }))
    })
    .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        db.rows("main", "payment_summary"),
        vec![serde_json::json!({
            "payments": 6,
            "biggest_amount": 2500,
            "code": "SELECT",
            "result_columns": "payment_method,n",
            "methods": 4,
            "counts": "bank_transfer=1;coupon=1;credit_card=3;gift_card=1"
        })]
    );
    assert_eq!(
        db.rows("main", "audit"),
        vec![serde_json::json!({"code": "CREATE TABLE", "n": 2})]
    );

    // A failing query: the model, the file and line of the call,
    // PostgreSQL's message and the query.
    std::fs::write(
        d.path().join("models/audit.sql"),
        "select 1 as x\n{% set r = run_query('select nope from ' ~ ref('stg_payments')) %}\n",
    )
    .unwrap();
    let out = sluice(
        d.path(),
        &["transform", "run", "--target", "pg", "--select", "audit"],
    );
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("model `audit`: models/audit.sql:2: run_query: the query failed: running the query: column \"nope\" does not exist (SQLSTATE 42703)")
            && all.contains(&format!(
                "query: select nope from \"{}\".\"main\".\"stg_payments\"",
                db.name
            )),
        "{all}"
    );
}
