use crate::support::{Project, orders_csv};

const APPEND: &str = "sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n";

#[test]
fn only_new_or_changed_files_are_read() {
    let p = Project::new(APPEND);
    p.write("data/a.csv", orders_csv(0, 10));
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["rows_written"], 10);
    // Nothing new: nothing read, nothing written.
    let s = p.run_json(&[], "s.t");
    assert_eq!(
        (s["rows_read"].as_i64(), s["files"].as_i64()),
        (Some(0), Some(0))
    );
    // A new file: only it is read.
    p.write("data/b.csv", orders_csv(10, 15));
    let s = p.run_json(&[], "s.t");
    assert_eq!(
        (s["rows_read"].as_i64(), s["files"].as_i64()),
        (Some(5), Some(1))
    );
    assert_eq!(p.scalar("SELECT count(*) FROM s.t"), 15);
    // --full-refresh rebuilds from everything.
    let s = p.run_json(&["--full-refresh"], "s.t");
    assert_eq!(s["rows_written"], 15);
    assert_eq!(p.scalar("SELECT count(*) FROM s.t"), 15);
    assert_eq!(p.scalar("SELECT count(DISTINCT id) FROM s.t"), 15);
}

#[test]
fn a_changed_file_is_reloaded_and_merged() {
    let p = Project::new(&format!(
        "{APPEND}    primary_key: [id]\n    write_mode: merge\n"
    ));
    p.write("data/a.csv", "id,name,amount\n1,a,1\n2,b,2\n");
    p.ok(&["run"]);
    p.write("data/a.csv", "id,name,amount\n1,a,1\n2,B,2\n3,c,3\n");
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["rows_read"], 3);
    assert_eq!(
        p.query("SELECT id, name FROM s.t ORDER BY id"),
        vec![vec!["1", "a"], vec!["2", "B"], vec!["3", "c"]]
    );
}

#[test]
fn cursor_keeps_only_rows_past_the_bookmark() {
    let p = Project::new(&format!(
        "{APPEND}    cursor: updated_at\n    replication: incremental\n"
    ));
    p.write(
        "data/a.csv",
        "id,updated_at\n1,2024-01-01T00:00:00Z\n2,2024-01-02T00:00:00Z\n",
    );
    p.ok(&["run"]);
    // The file is re-exported with one late change and one new row; rows at
    // the bookmark that were loaded already are not loaded again.
    p.write(
        "data/a.csv",
        "id,updated_at\n1,2024-01-01T00:00:00Z\n2,2024-01-02T00:00:00Z\n3,2024-01-02T00:00:00Z\n4,2024-01-03T00:00:00Z\n",
    );
    let s = p.run_json(&[], "s.t");
    assert_eq!(
        (s["rows_written"].as_i64(), s["rows_skipped"].as_i64()),
        (Some(2), Some(2)),
        "{s:#}"
    );
    assert_eq!(p.query("SELECT id FROM s.t ORDER BY id").len(), 4);
}

#[test]
fn overwrite_reads_everything_and_replaces() {
    let p = Project::new(&format!("{APPEND}    write_mode: overwrite\n"));
    p.write("data/a.csv", orders_csv(0, 10));
    p.ok(&["run"]);
    p.write("data/b.csv", orders_csv(10, 12));
    let s = p.run_json(&[], "s.t");
    assert_eq!(s["rows_read"], 12, "overwrite always reads every file");
    assert_eq!(p.scalar("SELECT count(*) FROM s.t"), 12);
}

#[test]
fn parallel_streams_land_in_their_tables() {
    let p = Project::new(
        "defaults:\n  parallelism: 3\nsources:\n  s:\n    type: files\n    streams:\n      a: { path: a/*.csv }\n      b: { path: b/*.jsonl }\n      c: { path: c/*.csv, table: other.cee }\n",
    );
    p.write("a/1.csv", orders_csv(0, 7));
    p.write("b/1.jsonl", "{\"id\": 1}\n{\"id\": 2}\n");
    p.write("c/1.csv", orders_csv(0, 3));
    let v = p.json(&["run"]);
    assert_eq!(v["status"], "success");
    assert_eq!(p.scalar("SELECT count(*) FROM s.a"), 7);
    assert_eq!(p.scalar("SELECT count(*) FROM s.b"), 2);
    assert_eq!(p.scalar("SELECT count(*) FROM other.cee"), 3);
    // --select runs only what it names.
    p.write("a/2.csv", orders_csv(7, 9));
    p.write("b/2.jsonl", "{\"id\": 3}\n");
    let v = p.json(&["run", "--select", "s.a"]);
    assert_eq!(v["streams"].as_array().unwrap().len(), 1);
    assert_eq!(p.scalar("SELECT count(*) FROM s.b"), 2);
}
