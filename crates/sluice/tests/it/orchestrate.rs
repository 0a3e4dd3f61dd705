//! `sluice run [JOB]` and `sluice graph`: one asset graph over loads, dbt
//! models and checks, planned and executed with the run history recorded.

use serde_json::Value;

use crate::support::Project;

/// Two files sources feeding a small dbt project, with checks on a model.
fn shop(stg_max_rows: u32) -> Project {
    let p = Project::new(&format!(
        "sources:
  raw:
    type: files
    path: data/orders.csv
    stream: orders
    checks:
      - not_null: id
  crm:
    type: files
    path: data/customers.csv
    stream: customers
transform:
  project_dir: dbt
checks:
  main.stg_orders:
    - row_count: {{max: {stg_max_rows}}}
jobs:
  loads:
    select: kind:stream
  marts:
    description: the order marts and what they read
    select: +fct_orders
"
    ));
    p.write(
        "data/orders.csv",
        "id,customer_id,amount\n1,1,10\n2,1,20\n3,2,30\n",
    );
    p.write("data/customers.csv", "id,name\n1,Ada\n2,Grace\n");
    p.write("dbt/dbt_project.yml", "name: shop\nprofile: shop\n");
    p.write(
        "dbt/models/sources.yml",
        "version: 2
sources:
  - name: raw
    tables: [{name: orders}]
  - name: crm
    tables: [{name: customers}]
models:
  - name: fct_orders
    columns:
      - name: customer_id
        data_tests: [not_null]
",
    );
    p.write(
        "dbt/models/stg_orders.sql",
        "select id, customer_id, amount from {{ source('raw', 'orders') }}",
    );
    p.write(
        "dbt/models/fct_orders.sql",
        "select o.customer_id, c.name, sum(o.amount) as total
from {{ ref('stg_orders') }} o join {{ source('crm', 'customers') }} c on c.id = o.customer_id
group by o.customer_id, c.name",
    );
    p.write(
        "dbt/models/people.sql",
        "select name from {{ source('crm', 'customers') }}",
    );
    p
}

fn step<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {summary:#}"))
}

fn step_ids(summary: &Value) -> Vec<String> {
    summary["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn one_run_loads_then_builds_then_checks_in_graph_order() {
    let p = shop(10);
    let summary = p.json(&["run"]);
    assert_eq!(summary["status"], "success", "{summary:#}");
    for id in [
        "raw.orders",
        "crm.customers",
        "stg_orders",
        "stg_orders:checks",
        "fct_orders",
        "fct_orders:checks",
        "people",
    ] {
        assert_eq!(step(&summary, id)["status"], "success", "{id}: {summary:#}");
    }
    assert_eq!(step(&summary, "raw.orders")["output"]["rows"], 3);
    assert_eq!(
        step(&summary, "stg_orders:checks")["output"]["message"],
        "1 of 1 checks passed"
    );
    // The model read what the load wrote, in the same run.
    assert_eq!(
        p.query("SELECT name, total FROM main.fct_orders ORDER BY name"),
        [["Ada", "30"], ["Grace", "30"]]
    );
    // Each step started after what it waits for finished.
    let finished = |id: &str| {
        step(&summary, id)["finished_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let started = |id: &str| {
        step(&summary, id)["started_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(started("stg_orders") >= finished("raw.orders"));
    assert!(started("fct_orders") >= finished("stg_orders:checks"));
    assert!(started("fct_orders") >= finished("crm.customers"));
    // The top-level check and the dbt test were recorded as check results.
    let checks = summary["check_results"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["id"] == "main.stg_orders.row_count"),
        "{checks:#?}"
    );
    assert!(
        checks.iter().any(|c| c["kind"] == "dbt:not_null"),
        "{checks:#?}"
    );

    // The human summary: loads table, then steps.
    let out = p.ok(&["run", "marts"]);
    assert!(out.contains("fct_orders"), "{out}");
    assert!(out.contains("steps ok, 0 failed, 0 skipped"), "{out}");
}

#[test]
fn a_failed_check_skips_what_reads_the_table_and_from_failure_reruns_only_that() {
    let p = shop(2);
    let out = p.run(&["--json", "run"]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "failed");
    let checks = step(&summary, "stg_orders:checks");
    assert_eq!(checks["status"], "failed");
    assert!(
        checks["error"]
            .as_str()
            .unwrap()
            .contains("main.stg_orders.row_count"),
        "{checks:#}"
    );
    assert_eq!(step(&summary, "fct_orders")["status"], "skipped");
    assert_eq!(
        step(&summary, "fct_orders")["error"],
        "`stg_orders:checks` failed"
    );
    assert_eq!(step(&summary, "fct_orders:checks")["status"], "skipped");
    // The rest went on.
    assert_eq!(step(&summary, "people")["status"], "success");
    assert!(!p.ok(&["tables"]).contains("fct_orders"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--from-failure"),
        "the hint names the re-run: {stderr}"
    );

    // Fix the check, re-run only what failed or was skipped.
    let run_id = summary["run_id"].as_str().unwrap();
    let yml = std::fs::read_to_string(p.path().join("sluice.yml")).unwrap();
    p.write("sluice.yml", yml.replace("max: 2", "max: 10"));
    let again = p.json(&["run", "--from-failure", &run_id[..13]]);
    assert_eq!(again["status"], "success", "{again:#}");
    assert_eq!(
        step_ids(&again),
        ["stg_orders:checks", "fct_orders", "fct_orders:checks"]
    );
    assert_eq!(again["parent_run_id"], run_id);
    assert_eq!(p.scalar("SELECT count(*) FROM main.fct_orders"), 2);
    // Nothing left to re-run.
    let err = p.fails(
        &["run", "--from-failure", again["run_id"].as_str().unwrap()],
        2,
    );
    assert!(
        err.contains("has no failed, skipped or cancelled step"),
        "{err}"
    );
}

#[test]
fn jobs_and_selectors_choose_the_assets() {
    let p = shop(10);
    let loads = p.json(&["run", "loads"]);
    assert_eq!(step_ids(&loads), ["raw.orders", "crm.customers"]);
    assert_eq!(loads["job"], "loads");
    assert!(!p.ok(&["tables"]).contains("stg_orders"));

    // `+fct_orders`: the model and everything above it, with their checks.
    let marts = p.json(&["run", "marts"]);
    assert_eq!(
        step_ids(&marts),
        [
            "raw.orders",
            "crm.customers",
            "stg_orders",
            "stg_orders:checks",
            "fct_orders",
            "fct_orders:checks"
        ]
    );
    // --select narrows a job; --exclude and --no-checks leave things out.
    let one = p.json(&["run", "marts", "--select", "stg_orders", "--no-checks"]);
    assert_eq!(step_ids(&one), ["stg_orders"]);
    let people = p.json(&["run", "-s", "source:crm+", "--exclude", "fct_orders"]);
    assert_eq!(step_ids(&people), ["crm.customers", "people"]);

    // Mistakes are named, with what exists.
    let err = p.fails(&["run", "nightly"], 2);
    assert!(err.contains("no job `nightly`"), "{err}");
    assert!(err.contains("the jobs: loads, marts"), "{err}");
    let err = p.fails(&["run", "-s", "stg_order"], 2);
    assert!(
        err.contains("`stg_order` matches no asset (did you mean stg_orders?)"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");

    // A dry run prints the plan and runs nothing.
    let out = p.ok(&["run", "marts", "--dry-run"]);
    assert!(out.contains("fct_orders:checks"), "{out}");
    assert!(out.contains("6 steps (dry run: nothing ran)"), "{out}");
}

#[test]
fn graph_prints_assets_edges_and_checks_as_text_dot_and_json() {
    let p = shop(10);
    let text = p.ok(&["graph"]);
    assert!(text.contains("raw.orders [stream]"), "{text}");
    assert!(text.contains("checks while loading: not_null_id"), "{text}");
    assert!(
        text.contains("stg_orders [model] -> main.stg_orders"),
        "{text}"
    );
    assert!(text.contains("reads: stg_orders, crm.customers"), "{text}");
    assert!(text.contains("checks: row_count"), "{text}");
    assert!(text.contains("5 assets"), "{text}");

    let dot = p.ok(&["graph", "--format", "dot"]);
    assert!(dot.starts_with("digraph sluice {"), "{dot}");
    assert!(dot.contains("\"raw.orders\" -> \"stg_orders\";"), "{dot}");

    let json = p.json(&["graph", "marts"]);
    let keys: Vec<&str> = json["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["raw.orders", "crm.customers", "stg_orders", "fct_orders"]
    );
    let fct = &json["assets"][3];
    assert_eq!(fct["kind"], "model");
    assert_eq!(fct["path"], "models/fct_orders.sql");
    assert_eq!(json["steps"].as_array().unwrap().len(), 6);
    // A dbt source names the stream that loads it.
    let people = p.json(&["graph", "-s", "source:crm"]);
    assert_eq!(people["assets"][0]["key"], "crm.customers");
}

#[test]
fn a_failing_destination_is_retried_with_backoff_and_the_history_keeps_every_try() {
    let p = Project::new(
        "sources:
  raw:
    type: files
    path: data/orders.csv
    stream: orders
    destination: wh
  ok:
    type: files
    path: data/orders.csv
    stream: copy
  bad:
    type: files
    path: data/bad.csv
    stream: rows
destinations:
  wh:
    type: postgres
    url: postgres://postgres@127.0.0.1:1/nothing_listens_here
orchestration:
  retries: 1
  retry_delay: 1s
",
    );
    p.write("data/orders.csv", "id,amount\n1,10\n");
    p.write("data/bad.csv", "id,amount\n1\n");
    let out = p.run(&["--json", "run"]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = step(&summary, "raw.orders");
    assert_eq!(s["status"], "failed", "{summary:#}");
    assert_eq!(s["attempts"], 2, "{s:#}");
    assert_eq!(step(&summary, "ok.copy")["status"], "success");
    // Bad data is not retried: it would fail the same way.
    let bad = step(&summary, "bad.rows");
    assert_eq!(
        (&bad["status"], &bad["attempts"]),
        (&"failed".into(), &1.into()),
        "{bad:#}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("raw.orders: try 1 failed"), "{stderr}");
    assert!(stderr.contains("retrying in"), "{stderr}");
    // The run store has the steps and every event.
    let run_id = summary["run_id"].as_str().unwrap();
    let logs = p.ok(&["runs", "logs", run_id]);
    assert!(logs.contains("try 1 failed"), "{logs}");
    assert_eq!(
        p.query(&format!(
            "SELECT status, attempts FROM sluice.history.steps WHERE run_id = '{run_id}' AND step_id = 'raw.orders'"
        )),
        [["failed", "2"]]
    );
}

#[test]
fn extract_still_loads_one_source_and_refuses_an_unknown_one() {
    let p = shop(10);
    let summary = p.json(&["extract", "crm"]);
    assert_eq!(step_ids(&summary), ["crm.customers"]);
    assert_eq!(summary["streams"][0]["rows_written"], 2);
    let err = p.fails(&["extract", "nope"], 1);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn a_backfill_runs_each_partition_once_and_resumes() {
    let p = Project::new(
        "sources:
  raw:
    type: files
    path: data/orders.csv
    stream: orders
transform:
  project_dir: dbt
jobs:
  daily:
    select: +daily_totals
    partitions: {every: daily, start: 2026-11-01}
",
    );
    p.write(
        "data/orders.csv",
        "id,ordered_at\n1,2026-11-01T08:00:00Z\n2,2026-11-01T20:00:00Z\n3,2026-11-02T09:00:00Z\n4,2026-11-03T01:00:00Z\n5,2026-11-03T02:00:00Z\n6,2026-11-03T23:59:00Z\n",
    );
    p.write("dbt/dbt_project.yml", "name: shop\nprofile: shop\n");
    p.write(
        "dbt/models/sources.yml",
        "version: 2\nsources:\n  - name: raw\n    tables: [{name: orders}]\n",
    );
    p.write(
        "dbt/models/daily_totals.sql",
        "{{ config(materialized='incremental') }}
select '{{ var('partition_key') }}' as day, count(*) as n
from {{ source('raw', 'orders') }}
where ordered_at >= cast('{{ var('partition_start') }}' as timestamp)
  and ordered_at < cast('{{ var('partition_end') }}' as timestamp)",
    );
    let plan = p.ok(&[
        "backfill",
        "daily",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
        "--dry-run",
    ]);
    assert!(plan.contains("3 partitions, 0 done, 3 to run"), "{plan}");
    let first = p.json(&[
        "backfill",
        "daily",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
    ]);
    assert_eq!(first["runs"].as_array().unwrap().len(), 2, "{first:#}");
    // The same range again, wider: the two done partitions are skipped.
    let resumed = p.json(&[
        "backfill",
        "daily",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
    ]);
    assert_eq!(resumed["skipped_done"], 2, "{resumed:#}");
    assert_eq!(resumed["runs"][0]["partition"], "2026-11-03");
    assert_eq!(resumed["runs"][0]["status"], "success");
    assert_eq!(
        p.query("SELECT day, n FROM main.daily_totals ORDER BY day"),
        [
            ["2026-11-01", "2"],
            ["2026-11-02", "1"],
            ["2026-11-03", "3"]
        ]
    );
    let plan = p.ok(&[
        "backfill",
        "daily",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
        "--dry-run",
    ]);
    assert!(plan.contains("3 partitions, 3 done, 0 to run"), "{plan}");
    let runs = p.json(&["runs", "list", "--job", "daily"]);
    let mut parts: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["partition"].as_str().unwrap())
        .collect();
    parts.sort();
    assert_eq!(parts, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    assert!(
        runs[0]["trigger"]
            .as_str()
            .unwrap()
            .starts_with("backfill:daily:")
    );
    // One partition by hand; a key that is not one is named.
    let one = p.json(&["run", "daily", "--partition", "2026-11-02"]);
    assert_eq!(one["partition"], "2026-11-02");
    let err = p.fails(&["run", "daily", "--partition", "2026-13-01"], 2);
    assert!(err.contains("2026-13-01"), "{err}");
    let err = p.fails(
        &[
            "backfill",
            "nope",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
        ],
        2,
    );
    assert!(err.contains("no job `nope`"), "{err}");
}

#[test]
fn what_a_load_says_is_in_the_run_log() {
    let p = Project::new(
        "sources:
  raw:
    type: files
    path: data/*.csv
    stream: orders
    write_mode: append
",
    );
    p.write("data/a.csv", "id,amount\n1,10\n");
    p.ok(&["run"]);
    p.write("data/b.csv", "id,amount,note\n2,20,gift\n");
    let run = p.json(&["run"]);
    let id = run["run_id"].as_str().unwrap();
    let events = p.json(&["runs", "logs", id]);
    let logs: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "log")
        .collect();
    assert!(
        logs.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("added column `note`")),
        "{events:#}"
    );
    // Written before the step's end, in order.
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"step_started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"step_success"), "{kinds:?}");
}

#[test]
fn a_failing_check_upstream_holds_a_model_back_until_it_is_fixed_or_removed() {
    let p = Project::new(
        "sources:
  raw:
    type: files
    path: data/orders.csv
    stream: orders
    checks:
      - unique: id
transform:
  project_dir: dbt
",
    );
    p.write("data/orders.csv", "id,amount\n1,10\n1,20\n");
    p.write("dbt/dbt_project.yml", "name: shop\nprofile: shop\n");
    p.write(
        "dbt/models/sources.yml",
        "version: 2\nsources:\n  - name: raw\n    tables: [{name: orders}]\n",
    );
    p.write(
        "dbt/models/stg_orders.sql",
        "select id, amount from {{ source('raw', 'orders') }}",
    );
    let out = p.run(&["--json", "run"]);
    assert_eq!(out.status.code(), Some(1));
    // The model alone, without its load: held back by the failed check.
    let out = p.run(&["--json", "run", "-s", "stg_orders"]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = step(&summary, "stg_orders")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains("held back") && err.contains("raw.orders.unique_id"),
        "{err}"
    );
    // The check removed from sluice.yml no longer holds anything back.
    let yml = std::fs::read_to_string(p.path().join("sluice.yml")).unwrap();
    p.write(
        "sluice.yml",
        yml.replace("    checks:\n      - unique: id\n", ""),
    );
    let ok = p.json(&["run", "-s", "stg_orders"]);
    assert_eq!(ok["status"], "success", "{ok:#}");
}
