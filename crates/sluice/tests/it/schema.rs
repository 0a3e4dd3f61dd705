//! Schema evolution through the CLI: the written rules.

use crate::support::Project;

const P: &str = "sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n";

#[test]
fn new_column_is_added() {
    let p = Project::new(P);
    p.write("data/a.csv", "id,name\n1,a\n");
    p.ok(&["run"]);
    p.write("data/b.csv", "id,name,email\n2,b,b@x.org\n");
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["schema_changes"][0], "added column `email` (string)");
    assert_eq!(
        p.query("SELECT id, email FROM s.t ORDER BY id"),
        vec![vec!["1", ""], vec!["2", "b@x.org"]]
    );
}

#[test]
fn int_widens_to_float() {
    let p = Project::new(P);
    p.write("data/a.csv", "id,v\n1,10\n");
    p.ok(&["run"]);
    p.write("data/b.csv", "id,v\n2,2.5\n");
    let s = p.run_json(&[], "s.t");
    assert_eq!(
        s["schema_changes"][0],
        "widened column `v` from int64 to float64"
    );
    assert_eq!(
        p.query("SELECT v FROM s.t ORDER BY id"),
        vec![vec!["10.0"], vec!["2.5"]]
    );
}

#[test]
fn unsafe_change_is_refused_then_full_refresh_rebuilds() {
    let p = Project::new(P);
    p.write("data/a.csv", "id,day\n1,2024-01-01\n");
    p.ok(&["run"]);
    // Every value of `day` in the new file is a number: a different type,
    // not a widening. With the known type kept, each row is a bad record.
    std::fs::remove_file(p.path().join("data/a.csv")).unwrap();
    p.write("data/b.csv", "id,day\n2,17\n");
    let err = p.fails(&["run"], 1);
    assert!(
        err.contains("column `day`") && err.contains("expected date"),
        "{err}"
    );
    // A declared type that conflicts with the table is refused by the rules.
    let p2 = Project::new(&format!("{P}    columns: {{ day: int64 }}\n"));
    p2.write("data/a.csv", "id,day\n1,5\n");
    p2.ok(&["run"]);
    p2.write("sluice.yml", format!("{P}    columns: {{ day: date }}\n"));
    std::fs::remove_file(p2.path().join("data/a.csv")).unwrap();
    p2.write("data/b.csv", "id,day\n2,2024-01-01\n");
    let err = p2.fails(&["run"], 1);
    assert!(
        err.contains("Column `day` changed type from int64 to date"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("--full-refresh"),
        "{err}"
    );
    p2.ok(&["run", "--full-refresh"]);
    assert_eq!(p2.scalar("SELECT count(*) FROM s.t"), 1);
    assert_eq!(
        p2.query("SELECT arrow_typeof(day) FROM s.t"),
        vec![vec!["Date32"]]
    );
}

#[test]
fn on_schema_change_fail_freezes_the_table() {
    let p = Project::new(&format!("{P}    on_schema_change: fail\n"));
    p.write("data/a.csv", "id\n1\n");
    p.ok(&["run"]);
    p.write("data/b.csv", "id,extra\n2,x\n");
    let err = p.fails(&["run"], 1);
    assert!(err.contains("on_schema_change: fail"), "{err}");
}
