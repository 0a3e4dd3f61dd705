//! Data-quality checks through the CLI: `sluice run` loads real CSV files
//! into the lake, `sluice check` judges them; results, exit codes, stored
//! failures, history, anomalies, schema changes, reports, config errors and
//! `--select`.

use serde_json::Value;

use crate::support::Project;

/// A timestamp `hours` ago, as RFC 3339 (so freshness is stable whenever the
/// test runs).
/// These tests check tables with `sluice check`: the loads only report
/// their checks (`on_fail: warn`; quality_load.rs covers the other modes).
/// Appended last, so the lines of the checks stay as written.
fn warned(yml: &str) -> String {
    format!("{yml}\ndefaults:\n  on_fail: warn\n")
}

fn project(yml: &str) -> Project {
    Project::new(&warned(yml))
}

fn ago(hours: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `sluice --json check ARGS…`: exit code and the report.
fn check(p: &Project, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json", "check"];
    a.extend_from_slice(args);
    let out = p.run(&a);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

/// The result of check `id` in a report.
fn result<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no result for {id} in {report:#}"))
}

/// The ids of a report's results, sorted.
fn ids(report: &Value) -> Vec<String> {
    let mut v: Vec<String> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// (status, failing_rows) of one result.
fn verdict(report: &Value, id: &str) -> (String, Option<u64>) {
    let r = result(report, id);
    (
        r["status"].as_str().unwrap().to_string(),
        r["failing_rows"].as_u64(),
    )
}

/// Orders with one known defect per check (see the comments), and
/// customers 1..3 for `relationships`.
fn orders_csv() -> String {
    let rows = [
        // id, customer_id, email, status, amount, sku, ordered_at
        format!("1,1,a@x.com,placed,10,ABC-1,{}", ago(5)),
        format!("2,2,b@x.com,shipped,20,ABC-2,{}", ago(4)),
        // email NULL
        format!("3,3,,placed,30,ABC-3,{}", ago(3)),
        // email malformed; status not accepted; sku fails the regex; amount 40 fails the expression
        format!("4,1,bad-email,returned,40,AB-4,{}", ago(3)),
        // amount 0: passes `min: 0`, fails `min: 0, inclusive: false`
        format!("5,2,e@x.com,placed,0,ABC-5,{}", ago(2)),
        // customer 9 does not exist
        format!("6,9,f@x.com,placed,50,ABC-6,{}", ago(2)),
        // sku too long (and fails the regex)
        format!("7,3,g@x.com,shipped,60,ABCDEFGHIJK-7,{}", ago(1)),
        // (3, g@x.com) a second time: email and the combination duplicated; amount > 65
        format!("8,3,g@x.com,placed,70,ABC-8,{}", ago(1)),
    ];
    format!(
        "id,customer_id,email,status,amount,sku,ordered_at\n{}\n",
        rows.join("\n")
    )
}

const ALL_KINDS: &str = r#"sources:
  src:
    type: files
    path: data/orders*.csv
    stream: orders
    checks:
      - not_null: [id, email]
      - unique: id
      - unique: email
      - unique: [customer_id, email]
      - accepted_values: {column: status, values: [placed, shipped]}
      - range: {column: amount, min: 0, max: 100}
      - range: {column: amount, min: 0, inclusive: false, name: amount_positive}
      - regex: {column: sku, pattern: '^[A-Z]{3}-[0-9]+$'}
      - format: {column: email, format: email}
      - length: {column: sku, min: 3, max: 10}
      - expression: {query: "amount <> 40", name: not_forty}
      - row_count: {min: 5, max: 100}
      - row_count: {min: 20, name: at_least_20}
      - freshness: {column: ordered_at, max_age: 1d}
      - freshness: {column: ordered_at, max_age: 30m, name: fresh_30m}
      - mean: {column: amount, min: 30, max: 40}
      - median: {column: amount, max: 30}
      - sum: {column: amount, min: 280, max: 280}
      - sum: {column: amount, min: 280, inclusive: false, name: sum_above_280}
      - distinct_count: {column: customer_id, min: 4, max: 4}
      - sql: {query: "select * from {table} where amount > 65", name: big_amounts}
      - relationships: {column: customer_id, to: cust.customers, field: id}
  cust:
    type: files
    path: data/customers.csv
    stream: customers
"#;

fn all_kinds() -> Project {
    let p = project(ALL_KINDS);
    p.write("data/orders.csv", orders_csv());
    p.write("data/customers.csv", "id,name\n1,Ann\n2,Bob\n3,Cy\n");
    p.ok(&["run", "--no-checks"]);
    p
}

#[test]
fn every_kind_reports_status_failing_rows_samples_and_observed_values() {
    let p = all_kinds();
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1, "failures exit 1: {rep:#}");
    let t = "src.orders.";
    let expect: &[(&str, &str, Option<u64>)] = &[
        ("not_null_id", "pass", Some(0)),
        ("not_null_email", "fail", Some(1)),
        ("unique_id", "pass", Some(0)),
        ("unique_email", "fail", Some(1)),
        ("unique_customer_id_email", "fail", Some(1)),
        ("accepted_values_status", "fail", Some(1)),
        ("range_amount", "pass", Some(0)),
        ("amount_positive", "fail", Some(1)),
        ("regex_sku", "fail", Some(2)),
        ("format_email", "fail", Some(1)),
        ("length_sku", "fail", Some(1)),
        ("not_forty", "fail", Some(1)),
        ("big_amounts", "fail", Some(1)),
        ("relationships_customer_id", "fail", Some(1)),
        ("row_count", "pass", None),
        ("at_least_20", "fail", None),
        ("freshness_ordered_at", "pass", None),
        ("fresh_30m", "fail", None),
        ("mean_amount", "pass", None),
        ("median_amount", "fail", None),
        ("sum_amount", "pass", None),
        ("sum_above_280", "fail", None),
        ("distinct_count_customer_id", "pass", None),
    ];
    let mut want: Vec<String> = expect.iter().map(|(n, _, _)| format!("{t}{n}")).collect();
    want.sort();
    assert_eq!(ids(&rep), want, "one result per check");
    for (name, status, failing) in expect {
        let id = format!("{t}{name}");
        assert_eq!(
            verdict(&rep, &id),
            (status.to_string(), *failing),
            "{id}: {:#}",
            result(&rep, &id)
        );
    }
    let s = &rep["summary"];
    assert_eq!(
        (s["total"].as_u64(), s["pass"].as_u64(), s["fail"].as_u64()),
        (Some(23), Some(8), Some(15)),
        "{s}"
    );

    // Row checks: total rows and samples of the failing rows.
    let r = result(&rep, "src.orders.not_null_email");
    assert_eq!(r["total_rows"], 8);
    assert_eq!(r["observed"], 1);
    assert_eq!(r["samples"][0]["id"], 3, "{r:#}");
    let at = r["defined_at"].as_str().unwrap();
    assert!(at.ends_with("sluice.yml:7"), "{at}");
    let r = result(&rep, "src.orders.accepted_values_status");
    assert_eq!(r["samples"][0]["status"], "returned", "{r:#}");
    assert_eq!(r["samples"][0]["id"], 4);
    let r = result(&rep, "src.orders.unique_email");
    assert_eq!(r["samples"][0]["email"], "g@x.com", "{r:#}");
    assert_eq!(r["samples"][0]["n_records"], 2);
    let r = result(&rep, "src.orders.unique_customer_id_email");
    assert_eq!(
        (&r["samples"][0]["customer_id"], &r["samples"][0]["email"]),
        (&Value::from(3), &Value::from("g@x.com")),
        "{r:#}"
    );
    let r = result(&rep, "src.orders.amount_positive");
    assert_eq!(r["samples"][0]["id"], 5, "{r:#}");
    let mut bad_skus: Vec<&str> = result(&rep, "src.orders.regex_sku")["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sku"].as_str().unwrap())
        .collect();
    bad_skus.sort();
    assert_eq!(bad_skus, ["AB-4", "ABCDEFGHIJK-7"]);
    assert_eq!(
        result(&rep, "src.orders.format_email")["samples"][0]["email"],
        "bad-email"
    );
    assert_eq!(
        result(&rep, "src.orders.length_sku")["samples"][0]["sku"],
        "ABCDEFGHIJK-7"
    );
    assert_eq!(result(&rep, "src.orders.not_forty")["samples"][0]["id"], 4);
    assert_eq!(
        result(&rep, "src.orders.big_amounts")["samples"][0]["id"],
        8
    );
    let r = result(&rep, "src.orders.relationships_customer_id");
    assert_eq!(r["samples"][0]["customer_id"], 9, "{r:#}");
    assert_eq!(r["samples"][0]["id"], 6);

    // Table-level checks: what was observed.
    assert_eq!(result(&rep, "src.orders.row_count")["observed"], 8);
    assert_eq!(result(&rep, "src.orders.at_least_20")["observed"], 8);
    assert_eq!(result(&rep, "src.orders.mean_amount")["observed"], 35.0);
    assert_eq!(result(&rep, "src.orders.median_amount")["observed"], 35.0);
    assert_eq!(result(&rep, "src.orders.sum_amount")["observed"], 280.0);
    assert_eq!(
        result(&rep, "src.orders.distinct_count_customer_id")["observed"],
        4.0
    );
    for id in ["src.orders.freshness_ordered_at", "src.orders.fresh_30m"] {
        let age = result(&rep, id)["observed"]["age_seconds"]
            .as_i64()
            .unwrap_or_else(|| panic!("{id}: {:#}", result(&rep, id)));
        assert!(
            (3600..86_400).contains(&age),
            "newest row is ~1 h old: {age}"
        );
    }
    assert!(
        result(&rep, "src.orders.fresh_30m")["message"]
            .as_str()
            .unwrap()
            .contains("1h"),
        "{:#}",
        result(&rep, "src.orders.fresh_30m")
    );

    // Only passing checks selected: exit 0.
    let (code, rep) = check(
        &p,
        &[
            "--select",
            "src.orders.not_null_id",
            "--select",
            "src.orders.mean_amount",
        ],
    );
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(rep["summary"]["pass"], 2);

    // The text output names the failures with where they are written.
    let out = p.run(&["check", "--select", "src.orders.not_null_email"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL src.orders.not_null_email"), "{text}");
    assert!(text.contains("sluice.yml:7"), "{text}");
}

/// Ten rows, `x` NULL in three of them.
fn three_nulls_csv() -> String {
    let mut s = String::from("id,x\n");
    for i in 1..=10 {
        if i <= 3 {
            s.push_str(&format!("{i},\n"));
        } else {
            s.push_str(&format!("{i},v{i}\n"));
        }
    }
    s
}

#[test]
fn severity_thresholds_and_mostly_judge_as_dbt_does() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/t.csv
    stream: t
    checks:
      - not_null: x
      - not_null: {column: x, name: sev_warn, severity: warn}
      - not_null: {column: x, name: warn_over_2, warn_if: ">2", error_if: ">5"}
      - not_null: {column: x, name: error_over_2, error_if: ">2"}
      - not_null: {column: x, name: error_over_3, error_if: ">3"}
      - not_null: {column: x, name: both_over_5, warn_if: ">5", error_if: ">5"}
      - not_null: {column: x, name: warn_sev_ignores_error_if, severity: warn, warn_if: ">5", error_if: "!=0"}
      - not_null: {column: x, name: mostly_half, mostly: 0.5}
      - not_null: {column: x, name: mostly_80, mostly: 0.8}
      - not_null: {column: x, name: mostly_70, mostly: 0.7}
      - not_null: {column: x, name: mostly_80_warn, mostly: 0.8, severity: warn}
"#,
    );
    p.write("data/t.csv", three_nulls_csv());
    p.ok(&["run", "--no-checks"]);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1, "{rep:#}");
    for (name, status) in [
        // Default: error if any row fails.
        ("not_null_x", "fail"),
        ("sev_warn", "warn"),
        // 3 failing: not > 5 (no error), > 2 (warn).
        ("warn_over_2", "warn"),
        ("error_over_2", "fail"),
        // error_if not met; warn_if defaults to != 0: a warning, as in dbt.
        ("error_over_3", "warn"),
        ("both_over_5", "pass"),
        // severity: warn never fails; warn_if decides.
        ("warn_sev_ignores_error_if", "pass"),
        // 70 % of the rows pass.
        ("mostly_half", "pass"),
        ("mostly_80", "fail"),
        ("mostly_70", "pass"),
        ("mostly_80_warn", "warn"),
    ] {
        let id = format!("src.t.{name}");
        assert_eq!(
            verdict(&rep, &id),
            (status.to_string(), Some(3)),
            "{id}: {:#}",
            result(&rep, &id)
        );
    }
    // Only warnings: exit 0, or 1 with --warn-error.
    let warns = [
        "--select",
        "src.t.sev_warn",
        "--select",
        "src.t.warn_over_2",
    ];
    let (code, rep) = check(&p, &warns);
    assert_eq!(code, 0, "{rep:#}");
    assert_eq!(rep["summary"]["warn"], 2);
    let mut strict = warns.to_vec();
    strict.push("--warn-error");
    let (code, _) = check(&p, &strict);
    assert_eq!(code, 1, "--warn-error fails on warnings");
    // Passing and warning only: still 0.
    let (code, _) = check(
        &p,
        &["-s", "src.t.both_over_5", "-s", "src.t.mostly_80_warn"],
    );
    assert_eq!(code, 0);
}

#[test]
fn store_failures_keeps_at_most_limit_rows_in_the_lake() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/t.csv
    stream: t
    checks:
      - range: {column: amount, min: 0, store_failures: true, limit: 2}
      - not_null: {column: id, store_failures: true}
"#,
    );
    let mut csv = String::from("id,amount\n");
    for i in 1..=10 {
        // Five negative amounts.
        csv.push_str(&format!("{i},{}\n", if i % 2 == 0 { -i } else { i }));
    }
    p.write("data/t.csv", csv);
    p.ok(&["run", "--no-checks"]);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1);
    let r = result(&rep, "src.t.range_amount");
    assert_eq!(r["failing_rows"], 5, "all failing rows are counted: {r:#}");
    let table = r["stored_failures"]
        .as_str()
        .unwrap_or_else(|| panic!("{r:#}"));
    assert!(table.starts_with("checks."), "{table}");
    assert_eq!(p.scalar(&format!("SELECT count(*) FROM {table}")), 2);
    assert_eq!(
        p.scalar(&format!("SELECT count(*) FROM {table} WHERE amount >= 0")),
        0,
        "only failing rows are stored"
    );
    // A passing check stores nothing.
    let r = result(&rep, "src.t.not_null_id");
    assert_eq!(r["status"], "pass");
    assert!(r["stored_failures"].is_null(), "{r:#}");
    // The next run replaces the stored rows (still capped).
    check(&p, &[]);
    assert_eq!(p.scalar(&format!("SELECT count(*) FROM {table}")), 2);
    // The text output says where the rows are.
    let out = p.run(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("SELECT * FROM {table}")), "{text}");
}

fn rows_csv(from: u64, to: u64) -> String {
    let mut s = String::from("id,amount\n");
    for i in from..to {
        s.push_str(&format!("{i},{}\n", i % 7));
    }
    s
}

/// The checks are in the top-level map so that only `sluice check` runs
/// them (a stream's table checks would also run after each load).
#[test]
fn history_is_newest_first_and_row_count_anomalies_fire_after_learning() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/*.csv
    stream: t
checks:
  src.t:
    - row_count: {min: 1}
    - anomaly: {metric: row_count, min_history: 2, window: 5}
"#,
    );
    p.write("data/a.csv", rows_csv(0, 100));
    p.ok(&["run", "--no-checks"]);
    let anomaly = "src.t.anomaly_row_count";
    let mut runs = Vec::new();
    // Three checks on 100 rows: learning, learning, then judged normal.
    for (i, learning) in [true, true, false].into_iter().enumerate() {
        let (code, rep) = check(&p, &[]);
        assert_eq!(code, 0, "run {i}: {rep:#}");
        let r = result(&rep, anomaly);
        assert_eq!(r["status"], "pass", "{r:#}");
        assert_eq!(r["observed"], 100.0);
        let msg = r["message"].as_str().unwrap();
        assert_eq!(msg.contains("learning"), learning, "run {i}: {msg}");
        runs.push(rep["run_id"].as_str().unwrap().to_string());
    }
    let hist = p.json(&["check", "history", "src.t.row_count"]);
    let h = hist.as_array().unwrap();
    assert_eq!(h.len(), 3, "{hist:#}");
    let got: Vec<&str> = h.iter().map(|e| e["run_id"].as_str().unwrap()).collect();
    assert_eq!(got, [&runs[2], &runs[1], &runs[0]], "newest first");
    assert!(h.iter().all(|e| e["check_id"] == "src.t.row_count"));
    assert!(h.iter().all(|e| e["status"] == "pass"));
    // --limit, and a table selects all its checks.
    let hist = p.json(&["check", "history", "src.t.row_count", "--limit", "2"]);
    let got: Vec<&str> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [&runs[2], &runs[1]]);
    let hist = p.json(&["check", "history", "src.t"]);
    assert_eq!(hist.as_array().unwrap().len(), 6, "{hist:#}");

    // A file ten times the size is appended: the row count jumps.
    p.write("data/b.csv", rows_csv(100, 1100));
    let s = p.run_json(&[], "src.t");
    assert_eq!(s["rows_written"], 1000);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1, "{rep:#}");
    let r = result(&rep, anomaly);
    assert_eq!(r["status"], "fail", "{r:#}");
    assert_eq!(r["observed"], 1100.0);
    assert!(r["message"].as_str().unwrap().contains("anomaly"), "{r:#}");
    assert_eq!(result(&rep, "src.t.row_count")["status"], "pass");
    // The history shows it.
    let hist = p.json(&["check", "history", anomaly, "--limit", "1"]);
    assert_eq!(hist[0]["status"], "fail", "{hist:#}");
}

#[test]
fn schema_detect_changes_fails_when_a_column_is_added() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/*.csv
    stream: t
checks:
  src.t:
    - schema: {columns: {id: int64, amount: }, detect_changes: true}
"#,
    );
    p.write("data/a.csv", rows_csv(0, 5));
    p.ok(&["run", "--no-checks"]);
    let id = "src.t.schema_id_amount";
    for _ in 0..2 {
        let (code, rep) = check(&p, &[]);
        assert_eq!(code, 0, "{rep:#}");
        let r = result(&rep, id);
        assert_eq!(r["status"], "pass", "{r:#}");
        assert!(r["observed"]["id"].is_string(), "{r:#}");
    }
    // A new file with one more column: the table evolves.
    p.write("data/b.csv", "id,amount,note\n10,1,hello\n");
    p.ok(&["run", "--no-checks"]);
    assert_eq!(p.scalar("SELECT count(note) FROM src.t"), 1);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1, "{rep:#}");
    let r = result(&rep, id);
    assert_eq!(r["status"], "fail", "{r:#}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("column `note` was added"), "{msg}");
    // The change is now the baseline.
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 0, "{rep:#}");
}

#[test]
fn schema_reports_missing_and_mistyped_columns() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/a.csv
    stream: t
    checks:
      - schema: {columns: {id: int64, amount: string, gone: }}
"#,
    );
    p.write("data/a.csv", rows_csv(0, 5));
    p.ok(&["run", "--no-checks"]);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1);
    let msg = result(&rep, "src.t.schema_id_amount_gone")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("column `gone` is missing"), "{msg}");
    assert!(msg.contains("column `amount` is int64"), "{msg}");
    assert!(!msg.contains("`id`"), "{msg}");
}

#[test]
fn report_files_are_written_and_rewritten() {
    let p = all_kinds();
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1);
    let dir = p.path().join(".sluice/reports/checks");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        html.contains("src.orders.not_null_email"),
        "html names failing checks"
    );
    assert!(html.contains("src.orders.relationships_customer_id"));
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["run_id"], rep["run_id"]);
    assert_eq!(json["summary"], rep["summary"]);
    assert_eq!(
        verdict(&json, "src.orders.not_null_email"),
        ("fail".to_string(), Some(1))
    );
    // Gone, then rewritten from the store by `check report`.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = p.ok(&["check", "report"]);
    assert!(out.contains("index.html"), "{out}");
    let again = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(again.contains("src.orders.not_null_email"));
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["run_id"], rep["run_id"], "the last run's results");
    assert_eq!(json["summary"], rep["summary"]);
    let r = result(&json, "src.orders.unique_email");
    assert_eq!(r["samples"][0]["email"], "g@x.com", "{r:#}");
    // Before any check run, `check report` says so.
    let fresh = project(ALL_KINDS);
    let err = fresh.fails(&["check", "report"], 1);
    assert!(err.contains("no check results yet"), "{err}");
}

/// A project whose `src.t` exists with columns id, amount, and `checks`
/// added to the stream afterwards.
fn loaded_then(checks: &str) -> Project {
    let base = "sources:\n  src:\n    type: files\n    path: data/a.csv\n    stream: t\n";
    let p = project(base);
    p.write("data/a.csv", rows_csv(0, 5));
    p.ok(&["run", "--no-checks"]);
    p.write(
        "sluice.yml",
        warned(&format!("{base}    checks:\n{checks}")),
    );
    p
}

/// `sluice check` refuses the project with exit 2, naming `sluice.yml:<line>`
/// and a hint; returns stderr.
fn config_error(p: &Project, line: usize, args: &[&str]) -> String {
    let mut a = vec!["check"];
    a.extend_from_slice(args);
    let err = p.fails(&a, 2);
    assert!(err.contains(&format!("sluice.yml:{line}")), "{err}");
    assert!(err.contains("hint:"), "{err}");
    err
}

#[test]
fn config_errors_are_located_and_stop_before_data() {
    // A column the table lacks.
    let p = loaded_then("      - not_null: id\n      - not_null: amont\n");
    let err = config_error(&p, 8, &[]);
    assert!(err.contains("no column `amont`"), "{err}");
    assert!(err.contains("did you mean `amount`?"), "{err}");
    // Nothing was checked, so nothing recorded.
    let h = p.json(&["check", "history"]);
    assert_eq!(h.as_array().unwrap().len(), 0, "{h:#}");

    // An invalid regex.
    let p = loaded_then("      - regex: {column: amount, pattern: '(['}\n");
    let err = config_error(&p, 7, &[]);
    assert!(err.contains("invalid regex"), "{err}");
    // A malformed warn_if.
    let p =
        loaded_then("      - not_null: id\n      - not_null: {column: amount, warn_if: '>>1'}\n");
    let err = config_error(&p, 8, &[]);
    assert!(err.contains("warn_if"), "{err}");
    // An expression, a `where:` or a `sql:` query naming a missing column
    // (planned, not run).
    let p = loaded_then("      - expression: \"amountt > 0\"\n");
    let err = config_error(&p, 7, &[]);
    assert!(err.contains("its expression does not run"), "{err}");
    assert!(err.contains("amountt"), "{err}");
    let p = loaded_then("      - not_null: {column: id, where: \"amont > 1\"}\n");
    let err = config_error(&p, 7, &[]);
    assert!(err.contains("its `where:` does not run"), "{err}");
    let p =
        loaded_then("      - not_null: id\n      - sql: select * from {table} where nope = 1\n");
    let err = config_error(&p, 8, &[]);
    assert!(err.contains("its query does not run"), "{err}");
    assert!(
        err.contains("the columns of `src.t` are: id, amount"),
        "{err}"
    );
    // An unknown kind.
    let p = loaded_then("      - not_nul: id\n");
    let err = config_error(&p, 7, &[]);
    assert!(err.contains("not_nul"), "{err}");
    assert!(err.contains("not_null"), "suggests the kind: {err}");
    // An unknown option.
    let p = loaded_then("      - range: {column: amount, mn: 0}\n");
    let err = config_error(&p, 7, &[]);
    assert!(err.contains("mn"), "{err}");
    // An option of another kind.
    let p = loaded_then("      - range: {column: amount, values: [1]}\n");
    let err = config_error(&p, 7, &[]);
    assert!(err.contains("does not take `values`"), "{err}");
    // A wrong type for the check.
    let p = loaded_then("      - length: {column: amount, max: 3}\n");
    let err = config_error(&p, 7, &[]);
    assert!(err.contains("not a text column"), "{err}");
}

#[test]
fn select_by_table_id_kind_and_glob() {
    let p = all_kinds();
    let sel = |args: &[&str]| -> Vec<String> {
        let mut a = Vec::new();
        for s in args {
            a.push("--select");
            a.push(s);
        }
        let (_, rep) = check(&p, &a);
        ids(&rep)
    };
    assert_eq!(sel(&["src.orders"]).len(), 23, "a table selects its checks");
    assert_eq!(
        sel(&["src.orders.unique_id"]),
        ["src.orders.unique_id"],
        "by id"
    );
    assert_eq!(sel(&["unique_id"]), ["src.orders.unique_id"], "by name");
    assert_eq!(
        sel(&["kind:not_null"]),
        ["src.orders.not_null_email", "src.orders.not_null_id"]
    );
    assert_eq!(
        sel(&["*email*"]),
        [
            "src.orders.format_email",
            "src.orders.not_null_email",
            "src.orders.unique_customer_id_email",
            "src.orders.unique_email",
        ]
    );
    assert_eq!(
        sel(&["kind:sum", "src.orders.row_*"]),
        [
            "src.orders.row_count",
            "src.orders.sum_above_280",
            "src.orders.sum_amount"
        ],
        "selectors add up"
    );
    // Nothing matches: an error with a hint.
    let err = p.fails(&["check", "--select", "nope.*"], 1);
    assert!(err.contains("no check matches `nope.*`"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn top_level_checks_map_checks_lake_tables() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/a.csv
    stream: t
    checks:
      - not_null: id
checks:
  src.t:
    - range: {column: amount, max: 5}
    - row_count: {min: 1, max: 1000}
  cust.customers:
    - not_null: id
"#,
    );
    p.write("data/a.csv", rows_csv(0, 20));
    p.ok(&["run", "--no-checks"]);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(
        ids(&rep),
        [
            "cust.customers.not_null_id",
            "src.t.not_null_id",
            "src.t.range_amount",
            "src.t.row_count"
        ]
    );
    assert_eq!(verdict(&rep, "src.t.not_null_id").0, "pass");
    // amount = id % 7: 6 is above 5, in ids 6 and 13.
    assert_eq!(
        verdict(&rep, "src.t.range_amount"),
        ("fail".to_string(), Some(2))
    );
    assert_eq!(result(&rep, "src.t.row_count")["observed"], 20);
    // A table not loaded yet: an error result naming it, not a crash.
    let r = result(&rep, "cust.customers.not_null_id");
    assert_eq!(r["status"], "error", "{r:#}");
    assert!(
        r["message"].as_str().unwrap().contains("does not exist"),
        "{r:#}"
    );
    let at = r["defined_at"].as_str().unwrap();
    assert!(at.ends_with("sluice.yml:13"), "{at}");
    // Selecting only the map's check on the loaded table.
    let (code, rep) = check(&p, &["-s", "src.t.row_count"]);
    assert_eq!(code, 0, "{rep:#}");
}

#[test]
fn one_broken_check_errors_alone_and_mixed_value_lists_compare_as_text() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/t.csv
    stream: t
    checks:
      - not_null: id
      - accepted_values: {column: status, values: [a, b, 1]}
      - expression: {query: "CAST(status AS INT) >= 0", name: casts}
      - mean: {column: amount, min: 0}
"#,
    );
    p.write("data/t.csv", "id,status,amount\n1,a,1\n2,1,2\n3,c,3\n");
    p.ok(&["run", "--no-checks"]);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1, "{rep:#}");
    // Texts and a number: `1` is accepted as the text "1"; `c` is not.
    assert_eq!(
        verdict(&rep, "src.t.accepted_values_status"),
        ("fail".to_string(), Some(1)),
        "{:#}",
        result(&rep, "src.t.accepted_values_status")
    );
    assert_eq!(
        result(&rep, "src.t.accepted_values_status")["samples"][0]["status"],
        "c"
    );
    // The expression plans but fails on the data (`a` is no number): it
    // alone errors, the other checks of the scan still run.
    let r = result(&rep, "src.t.casts");
    assert_eq!(r["status"], "error", "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("cast"), "{r:#}");
    assert_eq!(
        verdict(&rep, "src.t.not_null_id"),
        ("pass".to_string(), Some(0))
    );
    assert_eq!(result(&rep, "src.t.mean_amount")["status"], "pass");
    assert_eq!(result(&rep, "src.t.mean_amount")["observed"], 2.0);
    assert_eq!(rep["summary"]["error"], 1);
}

#[test]
fn history_shows_observed_values_in_any_script() {
    let p = project(
        "sources:\n  src:\n    type: files\n    path: data/t.csv\n    stream: t\n    checks:\n      - schema: {detect_changes: true}\n",
    );
    // The observed columns as JSON put a two-byte character across the
    // 24th byte, where the table cuts it.
    p.write("data/t.csv", "xy,ääääää\n1,a\n");
    p.ok(&["run", "--no-checks"]);
    p.ok(&["check"]);
    let out = p.ok(&["check", "history"]);
    assert!(out.contains("src.t.schema"), "{out}");
    assert!(out.contains("ääääää"), "{out}");
    let h = p.json(&["check", "history", "src.t.schema"]);
    assert_eq!(h[0]["observed"]["ääääää"], "string", "{h:#}");
}

#[test]
fn where_limits_the_rows_checked_and_sql_may_end_with_a_semicolon() {
    let p = project(
        r#"sources:
  src:
    type: files
    path: data/t.csv
    stream: t
    checks:
      - range: {column: amount, min: 0, where: "cat = 'x'", name: x_non_negative}
      - not_null: {column: amount, where: "cat = 'x'", name: x_has_amount}
      - row_count: {min: 3, where: "cat = 'x'", name: x_rows}
      - range: {column: amount, min: 0, name: all_non_negative}
      - sql: "select * from {table} where amount > 100;"
"#,
    );
    // cat x: amounts 1.5, NULL, 4; cat y: -3 (outside the where).
    p.write(
        "data/t.csv",
        "id,amount,cat\n1,1.5,x\n2,,x\n3,-3,y\n4,4,x\n",
    );
    p.ok(&["run", "--no-checks"]);
    let (code, rep) = check(&p, &[]);
    assert_eq!(code, 1, "{rep:#}");
    let r = result(&rep, "src.t.x_non_negative");
    assert_eq!(
        (
            r["status"].as_str(),
            r["failing_rows"].as_u64(),
            r["total_rows"].as_u64()
        ),
        (Some("pass"), Some(0), Some(3)),
        "only cat x is looked at: {r:#}"
    );
    let r = result(&rep, "src.t.x_has_amount");
    assert_eq!(r["failing_rows"], 1, "{r:#}");
    assert_eq!(r["samples"][0]["id"], 2);
    let r = result(&rep, "src.t.x_rows");
    assert_eq!(
        (r["status"].as_str(), &r["observed"]),
        (Some("pass"), &Value::from(3)),
        "{r:#}"
    );
    assert_eq!(
        verdict(&rep, "src.t.all_non_negative"),
        ("fail".to_string(), Some(1))
    );
    let sql = rep["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "sql")
        .unwrap();
    assert_eq!(
        (sql["status"].as_str(), sql["failing_rows"].as_u64()),
        (Some("pass"), Some(0)),
        "{sql:#}"
    );
}
