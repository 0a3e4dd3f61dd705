//! `sluice transform compile|ls` on a dbt project (no sluice.yml needed).

use std::path::Path;
use std::process::{Command, Output};

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
