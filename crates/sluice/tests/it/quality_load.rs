//! Checks while data flows: row checks on each batch before commit, per
//! `on_fail`, table checks on the committed table, results in the history.

use crate::support::Project;

const ORDERS: &str = "id,email,status,amount
1,a@b.io,placed,10.5
2,bad-email,shipped,20
3,c@d.org,lost,-5
4,e@f.com,placed,
5,g@h.net,shipped,7
";

fn project(on_fail: &str, extra_checks: &str) -> Project {
    let p = Project::new(&format!(
        "sources:
  shop:
    type: files
    path: data/orders*.csv
    stream: orders
    on_fail: {on_fail}
    checks:
      - not_null: amount
      - accepted_values: {{column: status, values: [placed, shipped]}}
      - range: {{column: amount, min: 0}}
      - format: {{column: email, format: email, severity: warn}}
{extra_checks}"
    ));
    p.write("data/orders1.csv", ORDERS);
    p
}

fn check<'a>(outcome: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    outcome["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {outcome:#}"))
}

#[test]
fn on_fail_quarantine_sets_failing_rows_aside_with_the_checks_that_failed() {
    let p = project("quarantine", "");
    let s = p.run_json(&[], "shop.orders");
    assert_eq!(s["status"], "success", "{s:#}");
    // Rows 3 (lost, -5) and 4 (NULL amount) fail enforced checks; row 2's
    // bad email only warns (severity: warn) and is loaded.
    assert_eq!(s["rows_written"], 3, "{s:#}");
    assert_eq!(s["rows_quarantined"], 2, "{s:#}");
    assert_eq!(
        p.scalar("SELECT count(*) FROM shop.orders WHERE id IN (1, 2, 5)"),
        3
    );
    let q = p.query("SELECT \"column\", value, reason FROM shop.orders__quarantine ORDER BY value");
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(q[0][0], "amount");
    assert_eq!(q[0][1], "NULL");
    assert!(
        q[0][2].contains("check `shop.orders.not_null_amount` failed"),
        "{q:?}"
    );
    assert_eq!(q[1][0], "status");
    assert_eq!(q[1][1], "lost");
    let reason = q[1][2..].join(",");
    assert!(
        reason.contains("accepted_values_status") && reason.contains("range_amount"),
        "both failed checks are named: {q:?}"
    );
    // Results of the load: quarantined failures are warnings; the email
    // check counted its row.
    let nn = check(&s, "shop.orders.not_null_amount");
    assert_eq!(nn["phase"], "load");
    assert_eq!(nn["failing_rows"], 1);
    assert_eq!(nn["total_rows"], 5);
    assert_eq!(nn["status"], "warn");
    let email = check(&s, "shop.orders.format_email");
    assert_eq!(email["failing_rows"], 1);
    assert_eq!(email["samples"][0]["email"], "bad-email");
    // And they are in the history.
    let h = p.json(&["check", "history", "shop.orders.not_null_amount"]);
    assert_eq!(h.as_array().map(Vec::len), Some(1), "{h:#}");
    assert_eq!(h[0]["phase"], "load");
}

#[test]
fn on_fail_stop_commits_nothing_of_the_failing_batch_and_names_the_check() {
    let p = project("stop", "");
    let err = p.fails(&["run"], 1);
    assert!(
        err.contains("Stream `shop.orders`: 2 rows of a batch fail checks"),
        "{err}"
    );
    assert!(
        err.contains("check `shop.orders.accepted_values_status` failed: `status` is lost"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("on_fail: quarantine"),
        "{err}"
    );
    let tables = p.ok(&["tables"]);
    assert!(
        !tables.contains("shop.orders "),
        "nothing committed: {tables}"
    );
    assert!(
        p.ok(&["state", "show"]).contains("no state")
            || !p.ok(&["state", "show"]).contains("shop.orders")
    );
    // The failure is recorded.
    let h = p.json(&["check", "history", "shop.orders.range_amount"]);
    assert_eq!(h[0]["status"], "fail", "{h:#}");
}

#[test]
fn on_fail_warn_loads_everything_and_table_checks_run_after_the_commit() {
    let p = project(
        "warn",
        "      - unique: id\n      - row_count: {min: 1, max: 4}\n",
    );
    let s = p.run_json(&[], "shop.orders");
    assert_eq!(s["status"], "success", "{s:#}");
    assert_eq!(s["rows_written"], 5);
    assert_eq!(s["rows_quarantined"], 0);
    let rc = check(&s, "shop.orders.row_count");
    assert_eq!(rc["phase"], "table");
    assert_eq!(rc["observed"], 5);
    assert_eq!(rc["status"], "warn", "on_fail: warn reports only: {rc:#}");
    assert_eq!(check(&s, "shop.orders.unique_id")["status"], "pass");
    assert!(
        check(&s, "shop.orders.range_amount")["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with("loaded (on_fail: warn)")
    );
}

#[test]
fn a_failing_table_check_after_the_load_fails_the_stream_but_keeps_the_rows() {
    let p = project("quarantine", "      - row_count: {max: 2}\n");
    let s = p.run_json(&[], "shop.orders");
    assert_eq!(s["status"], "failed", "{s:#}");
    assert!(
        s["error"]
            .as_str()
            .unwrap_or_default()
            .contains("check `shop.orders.row_count` failed after the load"),
        "{s:#}"
    );
    assert!(
        s["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("rows are committed"),
        "{s:#}"
    );
    assert_eq!(p.scalar("SELECT count(*) FROM shop.orders"), 3);
    // State advanced with the commit: a second run reads nothing new.
    let again = p.run_json(&[], "shop.orders");
    assert_eq!(again["rows_read"], 0, "{again:#}");
}

#[test]
fn a_check_on_a_missing_column_is_a_located_error_before_any_row_moves() {
    let p = project("stop", "      - length: {column: emial, max: 5}\n");
    // The table does not exist yet: the columns are checked against the
    // stream's schema, before its first batch is written.
    let err = p.fails(&["run"], 1);
    assert!(err.contains("sluice.yml:12"), "{err}");
    assert!(err.contains("no column `emial`"), "{err}");
    assert!(
        err.contains("hint: its columns are: id, email, status, amount"),
        "{err}"
    );
    let tables = p.ok(&["tables"]);
    assert!(!tables.contains("shop.orders "), "{tables}");
}

#[test]
fn dbt_data_tests_run_with_sluice_check_in_the_same_result_format() {
    let p = Project::new(
        "sources:
  raw:
    type: files
    path: data/orders.csv
    stream: orders
    checks:
      - not_null: id
transform:
  project_dir: dbt
  schema: analytics
checks:
  analytics.big_orders:
    - row_count: {min: 1}
",
    );
    p.write(
        "data/orders.csv",
        "id,status,amount\n1,placed,10\n2,lost,20\n3,placed,30\n3,placed,40\n",
    );
    p.write("dbt/dbt_project.yml", "name: t\nprofile: t\n");
    p.write(
        "dbt/models/schema.yml",
        "version: 2
sources:
  - name: raw
    tables:
      - name: orders
        columns:
          - name: id
            data_tests: [unique]
models:
  - name: big_orders
    columns:
      - name: status
        data_tests:
          - accepted_values:
              values: [placed]
              config: {severity: warn}
",
    );
    p.write(
        "dbt/models/big_orders.sql",
        "select id, status, amount from {{ source('raw', 'orders') }} where amount > 15",
    );
    // `sluice run` would stop at the failing test: load and build only.
    p.ok(&["run", "--no-checks"]);
    p.ok(&["transform", "run"]);
    let out = p.run(&["--json", "check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the unique test fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let results = report["results"].as_array().expect("results");
    let find = |phase: &str, id_part: &str| {
        results
            .iter()
            .find(|r| r["phase"] == phase && r["id"].as_str().unwrap_or_default().contains(id_part))
            .unwrap_or_else(|| panic!("no {phase} result like {id_part}: {report:#}"))
    };
    assert_eq!(find("table", "raw.orders.not_null_id")["status"], "pass");
    assert_eq!(
        find("table", "analytics.big_orders.row_count")["observed"],
        3
    );
    let unique = find("dbt", "raw.orders.source_unique_raw_orders_id");
    assert_eq!(unique["kind"], "dbt:unique");
    assert_eq!(unique["status"], "fail");
    assert_eq!(unique["failing_rows"], 1);
    let accepted = find(
        "dbt",
        "analytics.big_orders.accepted_values_big_orders_status",
    );
    assert_eq!(accepted["status"], "warn", "{accepted:#}");
    assert_eq!(report["summary"]["fail"], 1, "{report:#}");
    // `--no-dbt` leaves them out; `transform test` records them too.
    assert!(
        p.json(&["check", "--no-dbt"])["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["phase"] != "dbt")
    );
    let _ = p.run(&["transform", "test"]);
    let h = p.json(&["check", "history", "raw.orders.source_unique_raw_orders_id"]);
    assert_eq!(h.as_array().map(Vec::len), Some(2), "{h:#}");
}

#[test]
fn a_failed_check_on_a_source_table_holds_back_the_models_built_from_it() {
    let p = Project::new(
        "sources:
  raw:
    type: files
    path: data/orders*.csv
    stream: orders
    on_fail: quarantine
    checks:
      - unique: id
  crm:
    type: files
    path: data/customers.csv
    stream: customers
transform:
  project_dir: dbt
",
    );
    p.write("data/orders1.csv", "id,amount\n1,10\n2,20\n2,30\n");
    p.write("data/customers.csv", "id,name\n1,Ada\n");
    p.write("dbt/dbt_project.yml", "name: t\nprofile: t\n");
    p.write(
        "dbt/models/sources.yml",
        "version: 2\nsources:\n  - name: raw\n    tables: [{name: orders}]\n  - name: crm\n    tables: [{name: customers}]\n",
    );
    p.write(
        "dbt/models/order_totals.sql",
        "select sum(amount) as total from {{ source('raw', 'orders') }}",
    );
    p.write(
        "dbt/models/big_totals.sql",
        "select * from {{ ref('order_totals') }} where total > 0",
    );
    p.write(
        "dbt/models/people.sql",
        "select name from {{ source('crm', 'customers') }}",
    );
    // The duplicate id fails the table check after the load.
    let s = p.run_json(&[], "raw.orders");
    assert_eq!(s["status"], "failed", "{s:#}");
    let out = p.run(&["transform", "run"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("not building 2 nodes (order_totals, big_totals): source `raw.orders`"),
        "{err}"
    );
    assert!(err.contains("raw.orders.unique_id"), "{err}");
    assert_eq!(p.scalar("SELECT count(*) FROM main.people"), 1);
    assert!(!p.ok(&["tables"]).contains("order_totals"));
    // Forced, or once the data is fixed and re-checked, they build.
    p.ok(&["transform", "run", "--ignore-checks"]);
    assert_eq!(p.scalar("SELECT total FROM main.order_totals"), 60);
}

#[test]
fn the_check_history_is_queryable_with_sql_and_a_check_declared_twice_is_refused() {
    let p = project("warn", "");
    p.ok(&["run"]);
    p.fails(&["check"], 1);
    let rows = p.query(
        "SELECT phase, count(*) FROM sluice.history.check_results WHERE check_id = 'shop.orders.not_null_amount' GROUP BY phase ORDER BY phase",
    );
    assert_eq!(
        rows,
        vec![
            vec!["load".to_string(), "1".into()],
            vec!["table".into(), "1".into()]
        ]
    );
    assert_eq!(
        p.scalar(
            "SELECT max(failing_rows) FROM sluice.history.check_results WHERE status = 'fail'"
        ),
        1
    );
    // The same check on the stream and in the top-level map.
    let yml = std::fs::read_to_string(p.path().join("sluice.yml")).expect("yml");
    p.write(
        "sluice.yml",
        format!("{yml}checks:\n  shop.orders:\n    - not_null: amount\n"),
    );
    let err = p.fails(&["check"], 2);
    assert!(err.contains("sluice.yml:14"), "{err}");
    assert!(
        err.contains("`shop.orders.not_null_amount`: is declared twice (also on line 8)"),
        "{err}"
    );
}
