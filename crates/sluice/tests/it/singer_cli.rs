//! `sluice singer target`: Singer messages on stdin into a built-in destination.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::support::{Project, singer_bin};

fn pipe(p: &Project, args: &[&str], input: &str, envs: &[(&str, &str)]) -> Output {
    let mut cmd = p.cmd(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

const SCHEMA: &str = r#"{"type": "SCHEMA", "stream": "orders", "schema": {"properties": {"id": {"type": "integer"}, "amount": {"type": ["number", "null"]}, "at": {"type": "string", "format": "date-time"}}}, "key_properties": ["id"]}"#;

fn record(id: u32, amount: &str) -> String {
    format!(
        r#"{{"type": "RECORD", "stream": "orders", "record": {{"id": {id}, "amount": {amount}, "at": "2024-03-0{}T10:00:00Z"}}}}"#,
        1 + id % 9
    )
}

fn state(n: u32) -> String {
    format!(r#"{{"type": "STATE", "value": {{"bookmarks": {{"orders": {{"n": {n}}}}}}}}}"#)
}

#[test]
fn target_loads_streams_merges_on_keys_and_echoes_the_committed_state() {
    let p = Project::new("name: t\n");
    let input = [
        SCHEMA.to_string(),
        record(1, "1.5"),
        record(2, "2.5"),
        state(1),
        r#"{"type": "SCHEMA", "stream": "users", "schema": {"properties": {"name": {"type": "string"}}}}"#.into(),
        r#"{"type": "RECORD", "stream": "users", "record": {"name": "ann"}}"#.into(),
        record(2, "20.5"),
        state(2),
    ]
    .join("\n");
    let out = pipe(&p, &["singer", "target", "lake"], &input, &[]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let echoed: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        echoed.last(),
        Some(&serde_json::json!({"bookmarks": {"orders": {"n": 2}}})),
        "{stdout}"
    );
    assert_eq!(
        p.query("SELECT id, amount FROM singer.orders ORDER BY id"),
        vec![vec!["1", "1.5"], vec!["2", "20.5"]],
        "merged on key_properties"
    );
    assert_eq!(p.query("SELECT name FROM singer.users"), vec![vec!["ann"]]);
}

#[test]
fn target_outside_a_project_takes_its_destination_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(dir.path())
        .args([
            "--no-progress",
            "singer",
            "target",
            "lake",
            "--schema",
            "raw",
            "--config",
            r#"{"url": "out-lake"}"#,
        ])
        .env_remove("SLUICE_PROJECT_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let input = [SCHEMA.to_string(), record(1, "1.5"), state(1)].join("\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // Read the lake it wrote through a project pointed at it.
    let p = Project::new(&format!(
        "lake:\n  url: {}\n",
        dir.path().join("out-lake").display()
    ));
    assert_eq!(p.scalar("SELECT count(*) FROM raw.orders"), 1);
}

#[test]
fn bad_input_to_the_target_is_located_and_only_committed_state_is_echoed() {
    let p = Project::new("name: t\n");
    let input = [
        SCHEMA.to_string(),
        record(1, "1.5"),
        state(1),
        record(2, "2.5"),
        r#"{"type": "RECORD", "stream": "orders", "record": {"id": "two"}}"#.into(),
        state(2),
    ]
    .join("\n");
    let out = pipe(
        &p,
        &["singer", "target", "lake"],
        &input,
        &[("SLUICE_COMMIT_BYTES", "0")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`<stdin>`, line 5"), "{stderr}");
    assert!(stderr.contains("column `id`"), "{stderr}");
    // The first STATE was committed (the lake commits at every checkpoint
    // here) and echoed; nothing after it is in the table.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"bookmarks":{"orders":{"n":1}}}"#
    );
    assert_eq!(p.query("SELECT id FROM singer.orders"), vec![vec!["1"]]);

    let out = pipe(
        &p,
        &["singer", "target", "lake"],
        &format!("{SCHEMA}\n{}\nnot json\n", record(3, "1")),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("not a JSON object"), "{stderr}");
}

#[test]
fn real_tap_into_sluice_as_a_singer_target() {
    let tap = singer_bin("tap-csv-folder");
    let p = Project::new("name: t\n");
    p.write("data/a.csv", "id,name\n1,ann\n2,bob\n");
    p.write(
        "tap.json",
        r#"{"filesystem": "local", "path": "data", "read_mode": "merge", "stream_name": "people"}"#,
    );
    let tap_out = std::process::Command::new(tap)
        .current_dir(p.path())
        .args(["--config", "tap.json"])
        .output()
        .unwrap();
    assert!(tap_out.status.success(), "{tap_out:?}");
    let out = pipe(
        &p,
        &["singer", "target", "lake"],
        &String::from_utf8(tap_out.stdout).unwrap(),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        p.query("SELECT id, name FROM singer.people ORDER BY id"),
        vec![vec!["1", "ann"], vec!["2", "bob"]]
    );
    let state: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(state["bookmarks"]["people"].is_object(), "{state}");
}

#[test]
fn quarantined_rows_of_a_second_target_run_are_kept() {
    let p = Project::new("name: t\n");
    for run in 0..2 {
        let input = [
            SCHEMA.to_string(),
            record(10 * run + 1, "1"),
            format!(r#"{{"type": "RECORD", "stream": "orders", "record": {{"id": "bad{run}"}}}}"#),
            state(run + 1),
        ]
        .join("\n");
        let out = pipe(
            &p,
            &["singer", "target", "lake", "--quarantine"],
            &input,
            &[],
        );
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(p.scalar("SELECT count(*) FROM singer.orders"), 2);
    assert_eq!(
        p.scalar("SELECT count(*) FROM singer.orders__quarantine"),
        2,
        "the second run's quarantined row is there too"
    );
}

#[test]
fn target_about_is_singer_about_json() {
    let p = Project::new("name: t\n");
    let about: serde_json::Value =
        serde_json::from_str(&p.ok(&["singer", "target", "--about"])).unwrap();
    assert_eq!(about["name"], "sluice-target");
    assert!(
        about["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"batch".into())
    );
    assert!(about["settings"]["properties"]["url"].is_object());
}
