//! Each malformed fixture through the CLI: a located error, or quarantine.

use crate::support::Project;

fn project(file: &str, extra: &str, on_error: &str) -> Project {
    let p = Project::new(&format!(
        "sources:\n  src:\n    type: files\n    path: data/{file}\n    stream: t\n    on_error: {on_error}\n{extra}"
    ));
    p.copy_fixture(file, &format!("data/{file}"));
    p
}

/// `on_error: fail` names file, line and column; `quarantine` loads the rest.
fn located(file: &str, extra: &str, expect: &[&str], good: i64, bad: i64) {
    let p = project(file, extra, "fail");
    let err = p.fails(&["run"], 1);
    for e in expect {
        assert!(err.contains(e), "{file}: expected `{e}` in:\n{err}");
    }
    assert!(err.contains("hint:"), "{err}");
    let out = p.ok(&["tables"]);
    assert!(
        !out.contains("src.t "),
        "nothing committed on failure: {out}"
    );
    let p = project(file, extra, "quarantine");
    let s = p.run_json(&[], "src.t");
    assert_eq!(s["status"], "success", "{s:#}");
    assert_eq!(s["rows_written"].as_i64(), Some(good), "{file}: {s:#}");
    assert_eq!(s["rows_quarantined"].as_i64(), Some(bad), "{file}: {s:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM src.t__quarantine"), bad);
}

#[test]
fn broken_quoting() {
    located(
        "broken_quoting.csv",
        "",
        &["`data/broken_quoting.csv`, line 3"],
        1,
        1,
    );
}

#[test]
fn wrong_field_count() {
    located(
        "wrong_field_count.csv",
        "",
        &["line 3", "expected 3 fields, found 2"],
        2,
        2,
    );
}

#[test]
fn bad_numbers_and_dates() {
    located(
        "bad_numbers_and_dates.csv",
        "    infer_rows: 2\n",
        &[
            "line 4",
            "column `amount`",
            "(value `abc`)",
            "expected float64",
        ],
        3,
        2,
    );
}

#[test]
fn invalid_utf8() {
    located(
        "invalid_utf8.csv",
        "",
        &["line 3", "column `name`", "invalid UTF-8"],
        2,
        1,
    );
}

#[test]
fn bad_json_lines() {
    located("bad_lines.jsonl", "    infer_rows: 2\n", &["line 4"], 3, 2);
}

#[test]
fn corrupt_parquet_names_the_file() {
    let p = project("corrupt.parquet", "", "fail");
    let err = p.fails(&["run"], 1);
    assert!(err.contains("corrupt.parquet"), "{err}");
}

#[test]
fn empty_and_header_only_files() {
    let p = project("empty.csv", "", "fail");
    let s = p.run_json(&[], "src.t");
    assert_eq!(
        (s["status"].as_str(), s["rows_read"].as_i64()),
        (Some("success"), Some(0))
    );
    let p = project("header_only.csv", "", "fail");
    let s = p.run_json(&[], "src.t");
    assert_eq!(s["status"], "success");
    assert_eq!(p.scalar("SELECT count(*) FROM src.t"), 0);
    let cols = p.ok(&["sql", "SELECT * FROM src.t", "-f", "csv"]);
    assert_eq!(cols.trim(), "", "no rows, no batch: {cols}");
    let tables = p.json(&["tables"]);
    assert_eq!(tables[0]["columns"], 3);
}

#[test]
fn dialects_crlf_bom_tsv_no_header() {
    let p = project("crlf.csv", "", "fail");
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM src.t"), 3);
    let p = project("bom.csv", "", "fail");
    p.ok(&["run"]);
    assert_eq!(p.query("SELECT id FROM src.t LIMIT 1").len(), 1);
    let p = project("tabs.tsv", "", "fail");
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM src.t"), 2);
    let p = project("no_header.csv", "    csv: { header: false }\n", "fail");
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(column_1) FROM src.t"), 2);
}

#[test]
fn declared_types_are_exact() {
    let p = project(
        "declared_types.csv",
        "    columns: { amount: \"decimal(12,2)\", paid_at: timestamptz }\n",
        "fail",
    );
    p.ok(&["run"]);
    let out = p.json(&["discover", "src"]);
    let cols = out[0]["columns"].as_array().unwrap();
    let amount = cols.iter().find(|c| c["name"] == "amount").unwrap();
    assert_eq!(amount["type"], "decimal(12,2)");
    let paid = cols.iter().find(|c| c["name"] == "paid_at").unwrap();
    assert_eq!(paid["type"], "timestamptz");
    let tables = p.json(&["tables"]);
    assert!(tables[0]["rows"].as_i64().unwrap() > 0);
}
