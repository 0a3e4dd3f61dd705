//! `sluice transform compile|ls` on a dbt project (no sluice.yml needed).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::copy_dir;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--project-dir")
        .arg(dir)
        .arg("--no-progress")
        .args(args)
        .env_remove("SLUICE_PROJECT_DIR")
        .env_remove("DBT_PROFILES_DIR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn shop() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "dbt_project.yml",
        "name: shop\nprofile: shop\nmodels:\n  shop:\n    staging: {+materialized: view}\n    marts: {+materialized: table}\n",
    );
    write(
        dir,
        "profiles.yml",
        "shop:\n  target: dev\n  outputs:\n    dev: {type: sluice, schema: analytics}\n",
    );
    write(dir, "seeds/raw_orders.csv", "id,amount_cents\n1,500\n");
    write(
        dir,
        "macros/money.sql",
        "{% macro dollars(col) %}({{ col }} / 100.0){% endmacro %}",
    );
    write(
        dir,
        "models/staging/stg_orders.sql",
        "select id, {{ dollars('amount_cents') }} as amount\nfrom {{ ref('raw_orders') }}",
    );
    write(
        dir,
        "models/marts/orders.sql",
        "{{ config(schema='marts') }}\nselect * from {{ ref('stg_orders') }}",
    );
    d
}

#[test]
fn compile_writes_rendered_sql_and_ls_lists_nodes_in_build_order() {
    let d = shop();
    let out = sluice(d.path(), &["transform", "compile"]);
    assert!(out.status.success(), "{out:?}");
    let compiled = std::fs::read_to_string(
        d.path()
            .join("target/compiled/shop/models/staging/stg_orders.sql"),
    )
    .unwrap();
    assert_eq!(
        compiled,
        "select id, (amount_cents / 100.0) as amount\nfrom \"analytics\".\"raw_orders\""
    );
    let out = sluice(d.path(), &["--json", "transform", "ls"]);
    assert!(out.status.success(), "{out:?}");
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["raw_orders", "stg_orders", "orders"]);
    assert_eq!(nodes[2]["materialized"], "table");
    assert_eq!(nodes[2]["relation"], "\"analytics_marts\".\"orders\"");
    assert_eq!(nodes[1]["materialized"], "view");
}

#[test]
fn errors_are_located_with_hints() {
    let d = shop();
    write(
        d.path(),
        "models/marts/bad.sql",
        "select 1\nfrom {{ ref('stg_order') }}",
    );
    let out = sluice(d.path(), &["transform", "compile"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("models/marts/bad.sql:2"), "{err}");
    assert!(err.contains("did you mean `stg_orders`?"), "{err}");

    let d = shop();
    let out = sluice(d.path(), &["transform", "ls", "--target", "prod"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no output `prod`"), "{err}");
    assert!(err.contains("hint: its outputs: dev"), "{err}");

    let out = sluice(d.path(), &["transform", "ls", "--vars", "[1, 2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vars"));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Rows of `query` through `sluice sql`, as JSON objects.
fn rows(dir: &Path, query: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = sluice(dir, &["sql", "--format", "jsonl", query]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A row as text with numbers rounded, for order-free comparison.
fn canonical(row: &serde_json::Map<String, serde_json::Value>) -> String {
    row.iter()
        .map(|(k, v)| match v {
            serde_json::Value::Number(n) => format!("{k}={:.6}", n.as_f64().unwrap()),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join("|")
}

#[test]
fn the_shop_fixture_builds_with_the_same_tables_as_dbt_duckdb() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt/shop");
    copy_dir(&fixture, dir);
    let out = sluice(dir, &["transform", "build"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("Done. PASS=28 WARN=0 ERROR=0 SKIP=0 TOTAL=28"),
        "{shown}"
    );
    for table in [
        "raw_riders",
        "raw_rentals",
        "raw_charges",
        "stg_riders",
        "stg_rentals",
        "stg_charges",
        "rider_activity",
        "rental_payments",
    ] {
        let golden: Vec<serde_json::Map<String, serde_json::Value>> =
            std::fs::read_to_string(fixture.join(format!("golden/{table}.jsonl")))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let ours = rows(dir, &format!("select * from main.{table}"));
        let columns: Vec<String> = rows(
            dir,
            &format!("select column_name from information_schema.columns where table_schema = 'main' and table_name = '{table}' order by ordinal_position"),
        )
        .iter()
        .map(|r| r["column_name"].as_str().unwrap().to_string())
        .collect();
        assert_eq!(
            columns,
            golden[0].keys().cloned().collect::<Vec<_>>(),
            "{table}: columns"
        );
        let mut a: Vec<String> = ours.iter().map(canonical).collect();
        let mut b: Vec<String> = golden
            .iter()
            .map(|r| {
                // sluice sql leaves NULLs out of a JSON row; so does the comparison.
                let kept: serde_json::Map<String, serde_json::Value> = r
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                canonical(&kept)
            })
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{table}: rows differ from dbt-duckdb's");
    }
    // dbt's artifacts, readable as dbt's.
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("target/run_results.json")).unwrap())
            .unwrap();
    let results = results["results"].as_array().unwrap();
    assert_eq!(results.len(), 28);
    assert_eq!(results.iter().filter(|r| r["status"] == "pass").count(), 20);
    assert!(results.iter().all(|r| r["unique_id"].is_string()));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("target/manifest.json")).unwrap()).unwrap();
    let nodes = manifest["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 28);
    let test = nodes
        .values()
        .find(|n| n["name"] == "relationships_stg_rentals_rider_id__rider_id__ref_stg_riders_")
        .unwrap();
    assert_eq!(test["test_metadata"]["name"], "relationships");
    assert_eq!(test["attached_node"], "model.shop.stg_rentals");
    assert_eq!(
        manifest["parent_map"]["model.shop.rider_activity"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Views are views: the lake holds 5 tables and 3 views, all queryable.
    let out = sluice(dir, &["--json", "tables"]);
    let tables: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tables.as_array().unwrap().len(), 5);
    assert_eq!(
        rows(dir, "select count(*) as n from main.stg_rentals")[0]["n"],
        60
    );
}

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "dbt_project.yml",
        "name: p\nprofile: p\nmodels:\n  p:\n    +materialized: table\n",
    );
    write(
        d.path(),
        "profiles.yml",
        "p:\n  target: dev\n  outputs:\n    dev: {type: sluice, schema: main}\n",
    );
    for (path, body) in files {
        write(d.path(), path, body);
    }
    d
}

#[test]
fn a_failing_test_skips_what_is_downstream_and_errors_point_at_the_compiled_line() {
    let d = project(&[
        (
            "seeds/people.csv",
            "id,name,age\n1,ann,30\n2,,41\n2,bob,17\n",
        ),
        (
            "models/adults.sql",
            "select id, name from {{ ref('people') }} where age >= 18",
        ),
        (
            "models/named.sql",
            "select * from {{ ref('adults') }} where name is not null",
        ),
        (
            "models/bad.sql",
            "select id,\n  nickname\nfrom {{ ref('people') }}",
        ),
        ("models/after_bad.sql", "select * from {{ ref('bad') }}"),
        ("models/ages.sql", "select age from {{ ref('people') }}"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: adults\n    columns:\n      - name: name\n        tests: [not_null]\n      - name: id\n        tests:\n          - unique:\n              config: {severity: warn}\n  - name: named\n    columns:\n      - name: id\n        tests:\n          - not_null:\n              config: {store_failures: true}\n",
        ),
        (
            "tests/no_minors.sql",
            "select * from {{ ref('ages') }} where age < 18",
        ),
    ]);
    let dir = d.path();
    let out = sluice(dir, &["transform", "build"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    // not_null on adults.name fails → named (its child) and named's test are skipped.
    assert!(
        shown.contains("Done. PASS=4 WARN=0 ERROR=3 SKIP=3 TOTAL=10"),
        "{shown}"
    );
    assert!(
        shown.contains("Failure in test not_null_adults_name"),
        "{shown}"
    );
    assert!(
        shown.contains("Got 1 result, configured to fail if != 0"),
        "{shown}"
    );
    assert!(
        shown.contains("model `bad` (models/bad.sql)") && shown.contains("nickname"),
        "{shown}"
    );
    assert!(
        shown.contains("compiled SQL: target/compiled/p/models/bad.sql, line 2"),
        "{shown}"
    );
    assert!(shown.contains("Failure in test no_minors"), "{shown}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("target/run_results.json")).unwrap())
            .unwrap();
    let status = |name: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["unique_id"]
                    .as_str()
                    .unwrap()
                    .contains(&format!(".{name}"))
            })
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("named"), "skipped");
    assert_eq!(status("after_bad"), "skipped");
    assert_eq!(status("bad"), "error");
    assert_eq!(status("not_null_adults_name"), "fail");
    // With the bad model and the failing test out, the warn test warns and
    // store_failures keeps the failing rows.
    write(
        dir,
        "seeds/people.csv",
        "id,name,age\n1,ann,30\n2,cy,41\n2,bob,19\n3,,50\n",
    );
    write(dir, "models/named.sql", "select * from {{ ref('adults') }}");
    write(
        dir,
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: adults\n    columns:\n      - name: id\n        tests:\n          - unique:\n              config: {severity: warn}\n  - name: named\n    columns:\n      - name: name\n        tests:\n          - not_null:\n              config: {store_failures: true, severity: warn}\n",
    );
    let out = sluice(
        dir,
        &[
            "transform",
            "build",
            "--exclude",
            "bad",
            "after_bad",
            "no_minors",
        ],
    );
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("Done. PASS=4 WARN=2 ERROR=0 SKIP=0 TOTAL=6"),
        "{shown}"
    );
    let failing = rows(
        dir,
        "select count(*) as n from main_dbt_test__audit.not_null_named_name",
    );
    assert_eq!(failing[0]["n"], 1);
}

#[test]
fn incremental_models_merge_append_and_rebuild_on_full_refresh() {
    let d = project(&[
        (
            "seeds/events.csv",
            "id,kind,amount\n1,a,10\n2,b,20\n3,a,30\n",
        ),
        (
            "models/totals.sql",
            "{{ config(materialized='incremental', unique_key='id', incremental_strategy='merge') }}\nselect id, kind, amount from {{ ref('events') }}\n{% if is_incremental() %}where id >= (select max(id) from {{ this }}){% endif %}",
        ),
        (
            "models/log.sql",
            "{{ config(materialized='incremental') }}\nselect id, amount from {{ ref('events') }}\n{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}",
        ),
    ]);
    let dir = d.path();
    let out = sluice(dir, &["transform", "build"]);
    assert!(out.status.success(), "{}", text(&out));
    // New rows and a change to the last one.
    write(
        dir,
        "seeds/events.csv",
        "id,kind,amount\n1,a,10\n2,b,20\n3,a,35\n4,c,40\n5,c,50\n",
    );
    let out = sluice(dir, &["transform", "build"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("MERGE 3"), "{shown}");
    assert!(shown.contains("INSERT 2"), "{shown}");
    let t = rows(dir, "select id, amount from main.totals order by id");
    let amounts: Vec<i64> = t.iter().map(|r| r["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, vec![10, 20, 35, 40, 50]);
    let l = rows(dir, "select count(*) as n, sum(amount) as s from main.log");
    assert_eq!(
        (l[0]["n"].as_i64(), l[0]["s"].as_i64()),
        (Some(5), Some(150))
    );
    // A new column is ignored by default, and fails the run with on_schema_change: fail.
    write(
        dir,
        "models/log.sql",
        "{{ config(materialized='incremental', on_schema_change='fail') }}\nselect id, amount, kind from {{ ref('events') }}\n{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}",
    );
    let out = sluice(dir, &["transform", "run", "-s", "log"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("kind"), "{}", text(&out));
    // --full-refresh rebuilds it with the new column.
    let out = sluice(dir, &["transform", "run", "-s", "log", "--full-refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let l = rows(dir, "select count(*) as n, count(kind) as k from main.log");
    assert_eq!((l[0]["n"].as_i64(), l[0]["k"].as_i64()), (Some(5), Some(5)));
}

#[test]
fn ephemeral_models_are_ctes_and_a_view_can_become_a_table() {
    let d = project(&[
        ("seeds/nums.csv", "n\n1\n2\n3\n4\n"),
        (
            "models/evens.sql",
            "{{ config(materialized='ephemeral') }}\nselect n from {{ ref('nums') }} where n % 2 = 0",
        ),
        (
            "models/doubled.sql",
            "{{ config(materialized='view') }}\nwith e as (select n from {{ ref('evens') }})\nselect n * 2 as d from e",
        ),
        (
            "models/ratio.sql",
            "select n / 2 as half from {{ ref('nums') }}",
        ),
    ]);
    let dir = d.path();
    let out = sluice(dir, &["transform", "build"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    // The ephemeral model ran as a CTE, not as a node.
    assert!(shown.contains("TOTAL=3"), "{shown}");
    let compiled =
        std::fs::read_to_string(dir.join("target/compiled/p/models/doubled.sql")).unwrap();
    assert!(
        compiled.starts_with("\nwith __dbt__cte__evens as (")
            || compiled.contains("with __dbt__cte__evens as ("),
        "{compiled}"
    );
    // Integer division is flagged, with the model and its line.
    assert!(
        shown.contains("model `ratio`") && shown.contains("line 1: `n / 2` divides integers"),
        "{shown}"
    );
    let r = rows(dir, "select d from main.doubled order by d");
    assert_eq!(r.len(), 2);
    assert_eq!(r[1]["d"], 8);
    // The view becomes a table; its readers see the same rows.
    write(
        dir,
        "models/doubled.sql",
        "with e as (select n from {{ ref('evens') }})\nselect n * 2 as d from e",
    );
    let out = sluice(dir, &["transform", "run", "-s", "doubled"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sluice(dir, &["--json", "tables"]);
    let tables: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        tables
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "main.doubled"),
        "{tables}"
    );
    assert_eq!(
        rows(dir, "select sum(d) as s from main.doubled")[0]["s"],
        12
    );
}

#[test]
fn selection_picks_nodes_like_dbt_and_state_modified_compares_with_a_previous_manifest() {
    let d = project(&[
        ("seeds/s.csv", "id\n1\n"),
        (
            "models/a.sql",
            "{{ config(tags=['nightly']) }}select * from {{ ref('s') }}",
        ),
        ("models/b.sql", "select * from {{ ref('a') }}"),
        ("models/c.sql", "select * from {{ ref('b') }}"),
    ]);
    let dir = d.path();
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json", "transform", "ls"];
        all.extend_from_slice(args);
        let out = sluice(dir, &all);
        assert!(out.status.success(), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&["-s", "+b"]), vec!["s", "a", "b"]);
    assert_eq!(names(&["-s", "a+", "--exclude", "c"]), vec!["a", "b"]);
    assert_eq!(names(&["-s", "tag:nightly"]), vec!["a"]);
    let out = sluice(dir, &["transform", "build"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::rename(dir.join("target"), dir.join("prev")).unwrap();
    write(
        dir,
        "models/b.sql",
        "select id, 1 as one from {{ ref('a') }}",
    );
    assert_eq!(
        names(&["-s", "state:modified+", "--state", "prev"]),
        vec!["b", "c"]
    );
    let out = sluice(dir, &["transform", "run", "-s", "nope"]);
    assert!(text(&out).contains("TOTAL=0"), "{}", text(&out));
    let out = sluice(dir, &["transform", "ls", "-s", "state:modified"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--state"), "{}", text(&out));
}

#[test]
fn snapshots_keep_type_2_history_with_timestamp_and_check_strategies() {
    let d = project(&[
        (
            "seeds/customers.csv",
            "id,tier,updated_at\n1,gold,2024-01-01 00:00:00\n2,silver,2024-01-01 00:00:00\n3,bronze,2024-01-01 00:00:00\n",
        ),
        (
            "snapshots/customers_snap.sql",
            "{% snapshot customers_ts %}\n{{ config(target_schema='snapshots', unique_key='id', strategy='timestamp', updated_at='updated_at', invalidate_hard_deletes=True) }}\nselect * from {{ ref('customers') }}\n{% endsnapshot %}\n\n{% snapshot customers_check %}\n{{ config(target_schema='snapshots', unique_key='id', strategy='check', check_cols=['tier']) }}\nselect id, tier from {{ ref('customers') }}\n{% endsnapshot %}\n",
        ),
        (
            "models/current_tiers.sql",
            "select id, tier from {{ ref('customers_ts') }} where dbt_valid_to is null",
        ),
    ]);
    let dir = d.path();
    let out = sluice(dir, &["transform", "build"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("SNAPSHOT 3"), "{shown}");
    // 1 changes tier (newer updated_at), 2 is deleted, 4 is new, 3 is unchanged.
    write(
        dir,
        "seeds/customers.csv",
        "id,tier,updated_at\n1,platinum,2024-02-01 00:00:00\n3,bronze,2024-01-01 00:00:00\n4,gold,2024-02-01 00:00:00\n",
    );
    let out = sluice(dir, &["transform", "build"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    let history = rows(
        dir,
        "select id, tier, cast(dbt_valid_from as varchar) as valid_from, cast(dbt_valid_to as varchar) as valid_to, dbt_scd_id from snapshots.customers_ts order by id, dbt_valid_from",
    );
    let summary: Vec<String> = history
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["id"],
                r["tier"].as_str().unwrap(),
                r["valid_from"].as_str().unwrap(),
                r.get("valid_to").and_then(|v| v.as_str()).unwrap_or("open")
            )
        })
        .collect();
    assert_eq!(summary[0], "1 gold 2024-01-01T00:00:00 2024-02-01T00:00:00");
    assert_eq!(summary[1], "1 platinum 2024-02-01T00:00:00 open");
    assert!(
        summary[2].starts_with("2 silver 2024-01-01T00:00:00 "),
        "{summary:?}"
    );
    assert!(
        !summary[2].ends_with("open"),
        "a hard delete closes the row: {summary:?}"
    );
    assert_eq!(summary[3], "3 bronze 2024-01-01T00:00:00 open");
    assert_eq!(summary[4], "4 gold 2024-02-01T00:00:00 open");
    assert_eq!(summary.len(), 5);
    assert!(
        history
            .iter()
            .all(|r| r["dbt_scd_id"].as_str().unwrap().len() == 32)
    );
    // The model downstream of the snapshot sees the current rows.
    let current = rows(dir, "select count(*) as n from main.current_tiers");
    assert_eq!(current[0]["n"], 3);
    // check: only id 1's tier changed; 2 stays open (no hard-delete config).
    let check = rows(
        dir,
        "select id, tier, dbt_valid_to is null as open from snapshots.customers_check order by id, dbt_valid_from",
    );
    let got: Vec<String> = check
        .iter()
        .map(|r| format!("{} {} {}", r["id"], r["tier"].as_str().unwrap(), r["open"]))
        .collect();
    assert_eq!(
        got,
        vec![
            "1 gold false",
            "1 platinum true",
            "2 silver true",
            "3 bronze true",
            "4 gold true"
        ]
    );
    // A run without changes adds nothing.
    let out = sluice(dir, &["transform", "snapshot"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        rows(dir, "select count(*) as n from snapshots.customers_ts")[0]["n"],
        5
    );
}

#[test]
fn unit_tests_run_the_model_on_given_rows_without_the_lake() {
    let d = project(&[
        (
            "seeds/orders.csv",
            "id,customer,amount,day\n1,ann,10,2024-01-01\n",
        ),
        (
            "models/totals.sql",
            "select customer, sum(amount) as total, count(*) as n\nfrom {{ ref('orders') }}\nwhere day >= cast('2024-01-01' as date)\ngroup by customer",
        ),
        (
            "models/recent.sql",
            "{{ config(materialized='incremental') }}\nselect id, amount from {{ ref('orders') }}\n{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}",
        ),
        (
            "models/unit.yml",
            r#"version: 2
unit_tests:
  - name: sums_per_customer
    model: totals
    given:
      - input: ref('orders')
        rows:
          - {id: 1, customer: ann, amount: 10, day: 2024-01-02}
          - {id: 2, customer: ann, amount: 5, day: 2024-01-03}
          - {id: 3, customer: bob, amount: 7, day: 2023-12-31}
    expect:
      rows:
        - {customer: ann, total: 15}
  - name: wrong_on_purpose
    model: totals
    given:
      - input: ref('orders')
        format: csv
        rows: |
          id,customer,amount,day
          1,cy,3,2024-05-01
    expect:
      format: csv
      rows: |
        customer,total
        cy,4
  - name: only_new_rows
    model: recent
    overrides:
      macros: {is_incremental: true}
    given:
      - input: ref('orders')
        rows: [{id: 1, amount: 1}, {id: 2, amount: 2}, {id: 3, amount: 3}]
      - input: this
        rows: [{id: 1, amount: 1}]
    expect:
      rows: [{id: 2, amount: 2}, {id: 3, amount: 3}]
"#,
        ),
    ]);
    let dir = d.path();
    let out = sluice(dir, &["transform", "test", "-s", "test_type:unit"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("Done. PASS=2 WARN=0 ERROR=1 SKIP=0 TOTAL=3"),
        "{shown}"
    );
    assert!(
        shown.contains("- expected, not returned: customer=cy, total=4")
            && shown.contains("+ returned, not expected: customer=cy, total=3"),
        "{shown}"
    );
    // Nothing touched the lake: no table was made.
    let out = sluice(dir, &["--json", "tables"]);
    let tables: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tables.as_array().unwrap().len(), 0, "{tables}");
    // In build, a failing unit test skips its model (and only it).
    let out = sluice(dir, &["transform", "build"]);
    let shown = text(&out);
    assert!(
        shown.contains("SKIP  table       \"main\".\"totals\""),
        "{shown}"
    );
    assert!(
        shown.contains("OK    incremental \"main\".\"recent\""),
        "{shown}"
    );
}

/// `sluice` run in `cwd` with no `--project-dir`, as a user in a folder.
fn sluice_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(cwd)
        .arg("--no-progress")
        .args(args)
        .env_remove("SLUICE_PROJECT_DIR")
        .env_remove("DBT_PROFILES_DIR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn a_transform_section_runs_the_dbt_project_and_sources_join_their_streams() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "data/orders.csv", "id,amount\n1,10\n2,20\n3,30\n");
    write(dir, "crm/customers.csv", "id,name\n1,Ada\n");
    let config = "sources:\n  raw:\n    type: files\n    format: csv\n    path: data/orders.csv\n    stream: orders\n  crm:\n    type: files\n    format: csv\n    path: crm/customers.csv\n    stream: customers\n    table: raw.customers\ntransform:\n  project_dir: dbt\n  schema: analytics\n";
    write(dir, "sluice.yml", config);
    write(dir, "dbt/dbt_project.yml", "name: t\nprofile: t\n");
    write(
        dir,
        "dbt/models/sources.yml",
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: orders\n      - name: customers\n      - name: refunds\n",
    );
    write(
        dir,
        "dbt/models/big_orders.sql",
        "select id, amount from {{ source('raw', 'orders') }} where amount > 15",
    );
    let ls = |cwd: &Path| -> serde_json::Value {
        let out = sluice_in(cwd, &["--json", "transform", "ls"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let loaded_by = |v: &serde_json::Value, name: &str| -> serde_json::Value {
        v.as_array()
            .unwrap()
            .iter()
            .find(|n| n["resource_type"] == "source" && n["name"] == name)
            .unwrap()["loaded_by"]
            .clone()
    };
    // From sluice.yml alone: the files sources name their tables.
    let v = ls(dir);
    assert_eq!(loaded_by(&v, "orders"), "raw.orders");
    assert_eq!(loaded_by(&v, "customers"), "crm.customers");
    assert_eq!(loaded_by(&v, "refunds"), serde_json::Value::Null);
    let model = v
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "big_orders")
        .unwrap();
    assert_eq!(model["relation"], "\"analytics\".\"big_orders\"");

    // Before the load: the missing source is named with the stream to run.
    let out = sluice_in(dir, &["transform", "run"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("source `raw.orders` reads \"raw\".\"orders\", which does not exist yet"),
        "{t}"
    );
    assert!(t.contains("hint: `sluice run raw.orders` loads it"), "{t}");

    let out = sluice_in(dir, &["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sluice_in(dir, &["transform", "run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("PASS=1"), "{}", text(&out));
    // The models landed in the Sluice project's lake, not dbt/.sluice.
    assert!(!dir.join("dbt/.sluice").exists());
    let got = rows(dir, "select id from analytics.big_orders order by id");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["id"], 2);
    // manifest.json carries the join for tools that read it.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dbt/target/manifest.json")).unwrap())
            .unwrap();
    let source = &manifest["sources"]["source.t.raw.orders"];
    assert_eq!(source["loader"], "sluice");
    assert_eq!(source["meta"]["sluice"]["stream"], "raw.orders");

    // From the dbt folder, the enclosing sluice.yml still owns it.
    let v = ls(&dir.join("dbt"));
    assert_eq!(loaded_by(&v, "orders"), "raw.orders");
    let out = sluice_in(
        &dir.join("dbt"),
        &[
            "--json",
            "sql",
            "select count(*) as n from analytics.big_orders",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // A stream the file no longer names is still known from the lake's
    // history of the table it loaded.
    write(dir, "sluice.yml", &config.replace("  crm:\n    type: files\n    format: csv\n    path: crm/customers.csv\n    stream: customers\n    table: raw.customers\n", ""));
    let v = ls(dir);
    assert_eq!(loaded_by(&v, "customers"), "crm.customers");

    // An engine that is not one.
    write(
        dir,
        "sluice.yml",
        &format!(
            "{config}  engine: nope\ndestinations:\n  out:\n    type: parquet\n    path: out\n"
        ),
    );
    let out = sluice_in(dir, &["transform", "ls"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("`transform.engine: nope` is neither `lake` nor a destination"),
        "{t}"
    );
    assert!(t.contains("hint: use `engine: lake`"), "{t}");
    write(
        dir,
        "sluice.yml",
        &format!(
            "{config}  engine: out\ndestinations:\n  out:\n    type: parquet\n    path: out\n"
        ),
    );
    let t = text(&sluice_in(dir, &["transform", "ls"]));
    assert!(
        t.contains("is a `type: parquet` destination, which cannot run models"),
        "{t}"
    );
}

#[test]
fn jinja_sees_the_runs_invocation_id_and_full_refresh_flag() {
    let d = project(&[(
        "models/m.sql",
        "{{ config(materialized='table') }}select '{{ invocation_id }}' as inv, {{ 'true' if flags.FULL_REFRESH else 'false' }} as fr",
    )]);
    let dir = d.path();
    let out = sluice(dir, &["--json", "transform", "run", "--full-refresh"]);
    assert!(out.status.success(), "{}", text(&out));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = results["metadata"]["invocation_id"].as_str().unwrap();
    let got = rows(dir, "select inv, fr from main.m");
    assert_eq!(got[0]["inv"], id);
    assert_eq!(got[0]["fr"], true);
    let out = sluice(dir, &["transform", "run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows(dir, "select fr from main.m")[0]["fr"], false);
}

/// The shop fixture with two declared sources: one on a seed's table
/// (present after a build), one on a table nothing loads.
fn shop_with_sources() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt/shop");
    copy_dir(&fixture, d.path());
    write(
        d.path(),
        "models/sources.yml",
        "version: 2\nsources:\n  - name: raw\n    schema: main\n    tables:\n      - name: raw_riders\n        description: The riders as loaded.\n      - name: not_loaded\n",
    );
    d
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `{column: type}` of a catalog entry, and the columns in index order.
fn catalog_columns(entry: &serde_json::Value) -> (Vec<String>, Vec<(String, String)>) {
    let cols = entry["columns"].as_object().unwrap();
    let mut ordered: Vec<(u64, String)> = cols
        .values()
        .map(|c| {
            (
                c["index"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ordered.sort();
    let indexes: Vec<u64> = ordered.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, (1..=cols.len() as u64).collect::<Vec<_>>());
    let types = cols
        .iter()
        .map(|(k, c)| (k.clone(), c["type"].as_str().unwrap().to_string()))
        .collect();
    (ordered.into_iter().map(|(_, n)| n).collect(), types)
}

fn has_type(types: &[(String, String)], column: &str, expected: &str) -> bool {
    types.iter().any(|(c, t)| c == column && t == expected)
}

#[test]
fn docs_generate_writes_dbt_s_catalog_with_the_lake_s_types_and_delta_stats() {
    let d = shop_with_sources();
    let dir = d.path();
    // Before a build nothing exists: every relation is a note, none an error.
    let out = sluice(dir, &["--json", "transform", "docs", "generate"]);
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["nodes"], 0, "{summary}");
    assert_eq!(
        summary["missing"].as_array().unwrap().len(),
        10,
        "{summary}"
    );

    let out = sluice(dir, &["transform", "build"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sluice(dir, &["transform", "docs", "generate"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("catalog of `shop`: 8 nodes and 1 sources from sluice"),
        "{shown}"
    );
    assert!(
        shown.contains("note: 1 relations do not exist yet")
            && shown.contains("source `source.shop.raw.not_loaded` (\"main\".\"not_loaded\")"),
        "{shown}"
    );

    let catalog = json_file(&dir.join("target/catalog.json"));
    assert_eq!(
        catalog["metadata"]["dbt_schema_version"],
        "https://schemas.getdbt.com/dbt/catalog/v1.json"
    );
    assert_eq!(catalog["errors"], serde_json::Value::Null);
    let manifest = json_file(&dir.join("target/manifest.json"));
    assert_eq!(
        catalog["metadata"]["invocation_id"],
        manifest["metadata"]["invocation_id"]
    );
    let nodes = catalog["nodes"].as_object().unwrap();
    assert_eq!(nodes.len(), 8);
    assert!(nodes.keys().all(|k| !k.starts_with("test.")));

    // A view: columns from its plan, no stats.
    let stg = &nodes["model.shop.stg_riders"];
    assert_eq!(
        stg["metadata"],
        serde_json::json!({"type": "VIEW", "schema": "main", "name": "stg_riders", "database": null, "comment": null, "owner": null})
    );
    let (order, types) = catalog_columns(stg);
    assert_eq!(
        order,
        [
            "rider_id",
            "first_name",
            "last_name",
            "rider_name",
            "home_district",
            "signup_date",
            "joined_after_launch"
        ]
    );
    assert!(has_type(&types, "rider_id", "BIGINT"), "{types:?}");
    assert!(has_type(&types, "rider_name", "VARCHAR"), "{types:?}");
    assert!(has_type(&types, "signup_date", "DATE"), "{types:?}");
    assert!(
        has_type(&types, "joined_after_launch", "BOOLEAN"),
        "{types:?}"
    );
    assert_eq!(stg["stats"]["has_stats"]["value"], false);
    assert_eq!(stg["unique_id"], "model.shop.stg_riders");

    // A table: stats from the Delta log.
    let activity = &nodes["model.shop.rider_activity"];
    assert_eq!(activity["metadata"]["type"], "BASE TABLE");
    let count = rows(dir, "select count(*) as n from main.rider_activity")[0]["n"].clone();
    assert_eq!(activity["stats"]["row_count"]["value"], count);
    assert_eq!(activity["stats"]["row_count"]["label"], "Row Count");
    assert!(activity["stats"]["bytes"]["value"].as_u64().unwrap() > 0);
    assert_eq!(activity["stats"]["has_stats"]["value"], true);

    // A seed, with `column_types: {amount_cents: bigint}`.
    let charges = &nodes["seed.shop.raw_charges"];
    let (_, types) = catalog_columns(charges);
    assert!(has_type(&types, "amount_cents", "BIGINT"), "{types:?}");
    assert_eq!(charges["stats"]["row_count"]["value"], 63);

    // The source on a built table is there; the other is left out.
    let sources = catalog["sources"].as_object().unwrap();
    let keys: Vec<&String> = sources.keys().collect();
    assert_eq!(keys, ["source.shop.raw.raw_riders"]);
    let (order, _) = catalog_columns(&sources["source.shop.raw.raw_riders"]);
    assert_eq!(order[0], "rider_id");

    // The page embeds both, escaped, with the catalog's types.
    let page = std::fs::read_to_string(dir.join("target/index.html")).unwrap();
    assert!(page.contains("<script id=\"data\" type=\"application/json\">"));
    assert!(page.contains("\"model.shop.rider_activity\""));
    assert!(page.contains("[\"joined_after_launch\",\"BOOLEAN\",\"True when the rider signed up on or after `var('launch_date')`.\"]"));
    assert!(
        dir.join("target/compiled/shop/models/staging/stg_riders.sql")
            .exists()
    );

    // A selection narrows the catalog to the selected nodes and their sources.
    let out = sluice(
        dir,
        &[
            "--json",
            "transform",
            "docs",
            "generate",
            "-s",
            "stg_riders",
            "--no-compile",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["nodes"], 1, "{summary}");
    assert_eq!(summary["sources"], 0, "{summary}");
    assert_eq!(summary["missing"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["engine"], "sluice");
}

/// `GET path` over a real TCP connection: status line, headers, body.
fn http_get(addr: &str, path: &str) -> (String, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let (status, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    (
        status.to_string(),
        headers.to_lowercase(),
        raw[split + 4..].to_vec(),
    )
}

#[test]
fn docs_serve_hands_out_the_page_and_the_catalog_over_http_until_interrupted() {
    use std::io::BufRead;
    let d = shop();
    let dir = d.path();
    let out = sluice(dir, &["transform", "docs", "serve"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("hint: run `sluice transform docs generate` first"),
        "{}",
        text(&out)
    );
    let out = sluice(dir, &["transform", "docs", "generate"]);
    assert!(out.status.success(), "{}", text(&out));

    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--project-dir")
        .arg(dir)
        .args(["transform", "docs", "serve", "--port", "0"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");

    let (status, headers, body) = http_get(&addr, "/");
    assert!(status.contains("200"), "{status}");
    assert!(headers.contains("content-type: text/html"), "{headers}");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("<script id=\"data\" type=\"application/json\">"));
    let (status, headers, body) = http_get(&addr, "/catalog.json");
    assert!(status.contains("200"), "{status}");
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    let catalog: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        catalog["metadata"]["dbt_schema_version"],
        "https://schemas.getdbt.com/dbt/catalog/v1.json"
    );
    let (status, _, body) = http_get(&addr, "/manifest.json");
    assert!(status.contains("200"), "{status}");
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(manifest["nodes"]["model.shop.orders"].is_object());
    let (status, _, _) = http_get(&addr, "/..%2Fdbt_project.yml");
    assert!(status.contains("404"), "{status}");

    // Ctrl-C stops it cleanly.
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// The `withpkg` fixture and its local package side by side in a temp folder.
fn withpkg() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt");
    for name in ["withpkg", "mini_utils"] {
        copy_dir(&fixtures.join(name), &d.path().join(name));
    }
    d
}

#[test]
fn a_local_package_installs_with_deps_and_its_macros_models_and_tests_build() {
    let d = withpkg();
    let dir = d.path().join("withpkg");
    // Not installed yet: refused as dbt refuses it.
    let out = sluice(&dir, &["transform", "build"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "found 1 package(s) specified in packages.yml, but only 0 package(s) installed in `dbt_packages`"
        ),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("hint: run `sluice transform deps`"),
        "{}",
        text(&out)
    );

    let out = sluice(&dir, &["transform", "deps"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("mini_utils: linked (dbt_packages/mini_utils)"),
        "{}",
        text(&out)
    );
    assert!(
        dir.join("dbt_packages/mini_utils/dbt_project.yml")
            .is_file()
    );
    // Already there: nothing written.
    let out = sluice(&dir, &["--json", "transform", "deps"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packages"][0]["status"], "up to date", "{v}");

    let out = sluice(&dir, &["transform", "build"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PASS=9 WARN=0 ERROR=0 SKIP=0 TOTAL=9"),
        "{}",
        text(&out)
    );
    // The package's model: in the schema the root's `models: mini_utils:`
    // gives it, scaled by the var the root sets for the package (4, not 10),
    // labelled by the package's own `label`.
    let pkg: Vec<String> = rows(&dir, "select * from main_pkg.pkg_model order by code")
        .iter()
        .map(canonical)
        .collect();
    assert_eq!(
        pkg,
        vec![
            "code=\"A\"|scaled=4.000000|tag=\"pkg:A\"",
            "code=\"B\"|scaled=8.000000|tag=\"pkg:B\"",
        ]
    );
    // The root's model: the dispatched macro is the root's (0, not null),
    // bare `label` is the root's, `mini_utils.label` the package's,
    // `doubled` calls its sibling `times`.
    let root: Vec<String> = rows(&dir, "select * from main.order_rates order by id")
        .iter()
        .map(canonical)
        .collect();
    assert_eq!(
        root,
        vec![
            "id=1.000000|code=\"A\"|scaled=4.000000|unit_price=5.000000|root_tag=\"root:A\"|pkg_tag=\"pkg:A\"|twice=4.000000",
            "id=2.000000|code=\"B\"|scaled=8.000000|unit_price=0.000000|root_tag=\"root:B\"|pkg_tag=\"pkg:B\"|twice=0.000000",
            "id=3.000000|code=\"A\"|scaled=4.000000|unit_price=1.500000|root_tag=\"root:A\"|pkg_tag=\"pkg:A\"|twice=8.000000",
        ]
    );

    // `package:` selection, and the manifest's package names.
    let out = sluice(
        &dir,
        &["--json", "transform", "ls", "-s", "package:mini_utils"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["unique_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.contains(&"model.mini_utils.pkg_model"), "{ids:?}");
    assert!(ids.contains(&"seed.mini_utils.pkg_rates"), "{ids:?}");
    assert!(
        ids.iter()
            .all(|i| i.split('.').nth(1) == Some("mini_utils")),
        "{ids:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap())
            .unwrap();
    let model = &manifest["nodes"]["model.mini_utils.pkg_model"];
    assert_eq!(model["package_name"], "mini_utils");
    assert_eq!(model["original_file_path"], "models/pkg_model.sql");
    assert_eq!(
        manifest["nodes"]["model.withpkg.order_rates"]["depends_on"]["nodes"],
        serde_json::json!(["seed.withpkg.orders", "model.mini_utils.pkg_model"])
    );
    assert_eq!(
        manifest["macros"]["macro.mini_utils.safe_divide"]["package_name"],
        "mini_utils"
    );
    assert_eq!(
        manifest["macros"]["macro.withpkg.label"]["package_name"],
        "withpkg"
    );
    assert!(
        dir.join("target/compiled/mini_utils/models/pkg_model.sql")
            .is_file()
    );
}

#[test]
fn deps_names_hub_and_git_packages_it_cannot_fetch() {
    let d = withpkg();
    let dir = d.path().join("withpkg");
    write(
        &dir,
        "packages.yml",
        "packages:\n  - local: ../mini_utils\n  - package: dbt-labs/dbt_utils\n    version: [\">=1.0.0\", \"<2.0.0\"]\n",
    );
    let out = sluice(&dir, &["transform", "deps"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "packages.yml: `package: dbt-labs/dbt_utils` is not installed in `dbt_packages/`, and Sluice cannot fetch hub, git or tarball packages yet"
        ),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("hint: run `dbt deps` once"),
        "{}",
        text(&out)
    );
    // The local one was installed before the error; a run still refuses.
    let out = sluice(&dir, &["transform", "run"]);
    assert!(
        text(&out).contains(
            "found 2 package(s) specified in packages.yml, but only 1 package(s) installed"
        ),
        "{}",
        text(&out)
    );
    // Vendored: found, nothing fetched.
    write(
        &dir,
        "dbt_packages/dbt_utils/dbt_project.yml",
        "name: dbt_utils\nconfig-version: 2\n",
    );
    let out = sluice(&dir, &["transform", "deps"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("dbt_utils: up to date (package: dbt-labs/dbt_utils)"),
        "{}",
        text(&out)
    );
}

/// The `pivot` fixture in a temp dir.
fn pivot() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt/pivot");
    copy_dir(&fixture, d.path());
    d
}

#[test]
fn run_query_and_statement_ask_the_lake_when_a_model_runs() {
    let d = pivot();
    let dir = d.path();
    // parse and ls need no database: the `nodb` output points at nothing.
    for args in [
        &["transform", "parse", "--target", "nodb"][..],
        &["transform", "ls", "--target", "nodb"][..],
    ] {
        let out = sluice(dir, args);
        assert!(out.status.success(), "{args:?}:\n{}", text(&out));
    }
    let out = sluice(dir, &["--json", "transform", "ls", "--target", "nodb"]);
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let order_payments = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "order_payments")
        .unwrap();
    assert_eq!(
        order_payments["depends_on"],
        serde_json::json!(["stg_payments"])
    );

    let out = sluice(dir, &["transform", "build"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // print_table's table, when the model ran.
    assert!(
        all.contains("| payment_method | n   |") && all.contains("| credit_card    | 3   |"),
        "{all}"
    );
    let mut got: Vec<String> = rows(dir, "select * from main.order_payments")
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
        let mut m = serde_json::Map::new();
        m.insert("order_id".into(), (*o).into());
        m.insert("bank_transfer_amount".into(), (*b).into());
        m.insert("coupon_amount".into(), (*c).into());
        m.insert("credit_card_amount".into(), (*cc).into());
        m.insert("gift_card_amount".into(), (*g).into());
        canonical(&m)
    })
    .collect();
    want.sort();
    assert_eq!(got, want);
    let summary = rows(dir, "select * from main.payment_summary");
    assert_eq!(
        serde_json::Value::Object(summary[0].clone()),
        serde_json::json!({
            "payments": 6,
            "biggest_amount": 2500,
            "code": "SELECT",
            "result_columns": "payment_method,n",
            "methods": 4,
            "counts": "bank_transfer=1;coupon=1;credit_card=3;gift_card=1"
        })
    );

    // compile renders them with the lake too (the tables exist now).
    let out = sluice(dir, &["transform", "compile", "--select", "order_payments"]);
    assert!(out.status.success(), "{}", text(&out));
    let compiled =
        std::fs::read_to_string(dir.join("target/compiled/pivot/models/order_payments.sql"))
            .unwrap();
    assert!(
        compiled.contains("then amount end), 0) as gift_card_amount"),
        "{compiled}"
    );

    // A failing query names the model, the file and line of the call, the
    // engine's message and the query.
    write(
        dir,
        "models/broken.sql",
        "select 1 as x\n{% set r = run_query('select * from ' ~ ref('stg_payments') ~ ' where nope = 1') %}\n",
    );
    let out = sluice(dir, &["transform", "run", "--select", "broken"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("model `broken`: models/broken.sql:2: run_query: the query failed: ")
            && all.contains("nope")
            && all.contains("query: select * from \"main\".\"stg_payments\" where nope = 1"),
        "{all}"
    );
    // Writes on the lake are refused with a hint.
    write(
        dir,
        "models/broken.sql",
        "{% call statement('w') %}insert into main.raw_payments values (7, 5, 'cash', 1){% endcall %}\nselect 1 as x\n",
    );
    let out = sluice(dir, &["transform", "run", "--select", "broken"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(
            "models/broken.sql:1: statement: the query failed: the lake runs only queries"
        ) && all.contains("hint: build the relation with a model"),
        "{all}"
    );
}
