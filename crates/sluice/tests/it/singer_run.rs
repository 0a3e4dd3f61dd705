//! How `sluice run` drives a Singer tap as a whole: one process for all of
//! its streams whatever their destinations, and a SIGTERM that stops it
//! cleanly.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::Project;

/// A tap that notes each run in `runs.log`, prints `messages.jsonl`, and,
/// when `hang` exists, writes its pid to `tap.pid` and sleeps.
const TAP: &str = r#"#!/bin/sh
dir=$(dirname "$0")
for a in "$@"; do
  case "$a" in
    --discover) cat "$dir/catalog.json"; exit 0 ;;
    --about) exit 2 ;;
  esac
done
echo run >> "$dir/runs.log"
cat "$dir/messages.jsonl"
if [ -f "$dir/hang" ]; then
  echo $$ > "$dir/tap.pid"
  exec sleep 60
fi
"#;

const CATALOG: &str = r#"{"streams": [
  {"tap_stream_id": "orders", "stream": "orders", "key_properties": ["id"],
   "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}, "metadata": []},
  {"tap_stream_id": "users", "stream": "users", "key_properties": ["id"],
   "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}, "metadata": []}
]}"#;

const MESSAGES: &str = r#"{"type": "SCHEMA", "stream": "orders", "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}, "key_properties": ["id"]}
{"type": "SCHEMA", "stream": "users", "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}, "key_properties": ["id"]}
{"type": "RECORD", "stream": "orders", "record": {"id": 1}}
{"type": "RECORD", "stream": "users", "record": {"id": 7}}
{"type": "STATE", "value": {"bookmarks": {}}}
"#;

/// A project whose source `fake` is the fake tap above (create `tap/hang`
/// to make it hang after its messages).
pub fn tap_project(extra: &str) -> Project {
    let p = Project::new(&format!(
        "sources:\n  fake:\n    type: singer\n    plugin: fake-tap\n    executable: ./tap/fake-tap\n    config: {{token: abc}}\n{extra}"
    ));
    p.write("tap/fake-tap", TAP);
    let script = p.path().join("tap/fake-tap");
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    p.write("tap/catalog.json", CATALOG);
    p.write("tap/messages.jsonl", MESSAGES);
    p
}

fn runs(p: &Project) -> usize {
    std::fs::read_to_string(p.path().join("tap/runs.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn one_tap_process_serves_streams_going_to_different_destinations() {
    let p = tap_project(
        "    write_mode: append\n    streams:\n      users: { destination: lines }\ndestinations:\n  lines: { type: jsonl, path: out }\n",
    );
    let v = p.json(&["run"]);
    let streams = v["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{v:#}");
    for s in streams {
        assert_eq!(s["status"], "success", "{v:#}");
        assert_eq!(s["rows_written"], 1, "{v:#}");
    }
    assert_eq!(runs(&p), 1, "the tap ran once for both destinations");
    assert_eq!(p.scalar("SELECT count(*) FROM fake.orders"), 1);
    let out: String = std::fs::read_dir(p.path().join("out/fake/users"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(out.contains("7"), "{out}");
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

#[test]
fn sigterm_cancels_the_run_stops_the_tap_and_removes_its_files() {
    let p = tap_project("    write_mode: append\n");
    p.write("tap/hang", "");
    let mut child = p
        .cmd(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = p.path().join("tap/tap.pid");
    let started = Instant::now();
    while !pid_file.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("sluice ended before the tap hung: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the tap did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The tap is running: its config file (with the secret) is there.
    std::thread::sleep(Duration::from_millis(300));
    let tap_pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(alive(&tap_pid));
    let tmp = p.path().join(".sluice/tmp");
    assert!(std::fs::read_dir(&tmp).unwrap().count() > 0);

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("sluice did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    // A graceful stop: its own exit code, not death by the signal.
    assert_eq!(status.code(), Some(1), "{status}\n{stderr}");
    assert!(stderr.contains("stopping (SIGTERM)"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in .sluice/tmp: {left:?}");
    let started = Instant::now();
    while alive(&tap_pid) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the tap (pid {tap_pid}) still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The run is on record as cancelled.
    let db = rusqlite::Connection::open(p.path().join(".sluice/sluice.db")).unwrap();
    let run_status: String = db
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(run_status, "cancelled");
}
