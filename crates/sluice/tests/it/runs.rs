//! `sluice runs` (list, show, logs) and the history tables in `sluice sql`.

use crate::support::{Project, orders_csv};

const P: &str = "sources:
  s:
    type: files
    path: data/*.csv
    stream: t
    checks:
      - not_null: id
";

/// A project loaded once; the run's id.
fn loaded() -> (Project, String) {
    let p = Project::new(P);
    p.write("data/a.csv", orders_csv(0, 3));
    let summary = p.json(&["run"]);
    assert_eq!(summary["status"], "success", "{summary:#}");
    let id = summary["run_id"].as_str().unwrap().to_string();
    (p, id)
}

#[test]
fn runs_lists_a_load_with_its_status_streams_and_rows() {
    let (p, id) = loaded();
    let table = p.ok(&["runs"]);
    let short = &id[..13];
    let line = table
        .lines()
        .find(|l| l.contains(short))
        .unwrap_or_else(|| panic!("no run {short} in\n{table}"));
    for cell in ["run", "manual", "success", "1/1", " 3 "] {
        assert!(line.contains(cell), "{cell:?} not in {line:?}");
    }
    assert_eq!(p.ok(&["runs", "list", "--limit", "5"]), table);

    let json = p.json(&["runs"]);
    let runs = json.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{json:#}");
    let r = &runs[0];
    assert_eq!(r["run_id"], id.as_str());
    assert_eq!(r["command"], "run");
    assert_eq!(r["status"], "success");
    assert_eq!(r["trigger"], "manual");
    assert_eq!(r["job"], serde_json::Value::Null);
    assert_eq!(r["parent_run_id"], serde_json::Value::Null);
    assert_eq!(
        (r["steps_ok"].as_u64(), r["steps_total"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r["rows"], 3);
    assert!(r["duration_ms"].as_f64().unwrap() >= 0.0, "{r:#}");
    assert_eq!(r["summary"]["streams"][0]["rows_written"], 3, "{r:#}");

    // Filters.
    assert_eq!(
        p.json(&["runs", "--status", "success"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        p.json(&["runs", "list", "--status", "failed"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        p.json(&["runs", "--job", "daily"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        p.ok(&["runs", "--status", "failed"])
            .contains("no runs match")
    );
    let err = p.fails(&["runs", "--status", "done"], 2);
    assert!(err.contains("possible values"), "{err}");
}

#[test]
fn runs_show_takes_the_listed_prefix_and_shows_loads_and_checks() {
    let (p, id) = loaded();
    let out = p.ok(&["runs", "show", &id[..13]]);
    assert!(out.contains(&format!("run        {id}")), "{out}");
    assert!(out.contains("status     success"), "{out}");
    assert!(out.contains("trigger    manual"), "{out}");
    assert!(out.contains("stream loads"), "{out}");
    let load = out
        .lines()
        .find(|l| l.contains("s.t "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(load.contains("success") && load.contains(" 3 "), "{load}");
    assert!(out.contains("s.t.not_null_id"), "{out}");
    let step = out
        .lines()
        .skip_while(|l| *l != "steps")
        .find(|l| l.contains("s.t ") && l.contains("materialize"))
        .unwrap_or_else(|| panic!("the load is a step of the run: {out}"));
    assert!(step.contains("success"), "{step}");

    let json = p.json(&["runs", "show", &id]);
    assert_eq!(json["run"]["run_id"], id.as_str());
    assert_eq!(json["run"]["status"], "success");
    assert_eq!(json["steps"][0]["step_id"], "s.t");
    assert_eq!(json["steps"][0]["rows"], 3);
    let streams = json["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{json:#}");
    assert_eq!(streams[0]["stream_id"], "s.t");
    assert_eq!(streams[0]["status"], "success");
    assert_eq!(streams[0]["rows_written"], 3);
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "{json:#}");
    assert_eq!(checks[0]["check_id"], "s.t.not_null_id");
    assert_eq!(checks[0]["status"], "pass");
    assert_eq!(checks[0]["run_id"], id.as_str());

    // The step's events, in order, one line each.
    let logs = p.ok(&["runs", "logs", &id[..13]]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(lines[0].ends_with("INFO  s.t started"), "{logs}");
    assert!(lines[1].ends_with("INFO  s.t 3 rows"), "{logs}");
    let events = p.json(&["runs", "logs", &id]);
    assert_eq!(events[1]["kind"], "step_success");
    assert_eq!(events[1]["step_id"], "s.t");
    // Filtered by step; a step the run does not have is named.
    assert_eq!(
        p.ok(&["runs", "logs", &id, "--step", "s.t"])
            .lines()
            .count(),
        2
    );
    let err = p.fails(&["runs", "logs", &id, "--step", "nope"], 2);
    assert!(err.contains("has no step `nope`"), "{err}");
}

#[test]
fn unknown_and_ambiguous_run_ids_are_command_line_errors() {
    let (p, first) = loaded();
    let err = p.fails(&["runs", "show", "nope-nope"], 2);
    assert!(err.contains("No run `nope-nope`"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("sluice runs"),
        "{err}"
    );
    let err = p.fails(&["runs", "logs", "nope-nope"], 2);
    assert!(err.contains("No run `nope-nope`"), "{err}");

    p.write("data/b.csv", orders_csv(3, 5));
    let second = p.json(&["run"])["run_id"].as_str().unwrap().to_string();
    // UUID v7 ids of runs seconds apart share their leading timestamp digits.
    let common = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common >= 4, "{first} {second}");
    let err = p.fails(&["runs", "show", &first[..common]], 2);
    assert!(err.contains("matches 2 runs"), "{err}");
    assert!(err.contains(&first) && err.contains(&second), "{err}");
    assert!(err.contains("hint:"), "{err}");
    // What `runs` lists names one run each.
    let listed = p.json(&["runs"]);
    assert_eq!(listed[0]["run_id"], second.as_str(), "newest first");
    assert_eq!(listed[0]["rows"], 2, "the second run loaded b.csv only");
    let table = p.ok(&["runs"]);
    for id in [&first, &second] {
        let shown = table
            .split_whitespace()
            .find(|w| id.starts_with(*w) && w.len() >= 13)
            .unwrap_or_else(|| panic!("{id} not listed:\n{table}"));
        assert_eq!(
            p.json(&["runs", "show", shown])["run"]["run_id"],
            id.as_str()
        );
    }
}

#[test]
fn run_history_is_queryable_in_sql() {
    let (p, id) = loaded();
    let rows = p.query("SELECT run_id, status, trigger, command FROM sluice.history.runs");
    assert_eq!(
        rows,
        vec![vec![
            id.clone(),
            "success".into(),
            "manual".into(),
            "run".into()
        ]]
    );
    let rows = p.query(
        "SELECT stream_id, status, rows_written, duration_ms >= 0 FROM sluice.history.stream_runs",
    );
    assert_eq!(rows, vec![vec!["s.t", "success", "3", "true"]]);
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM sluice.history.check_results WHERE run_id = '{id}'"
        )),
        1
    );
    assert_eq!(
        p.query("SELECT step_id, status, rows FROM sluice.history.steps"),
        [["s.t", "success", "3"]]
    );
    assert_eq!(
        p.query("SELECT kind FROM sluice.history.events ORDER BY seq"),
        [["step_started"], ["step_success"]]
    );
    // Joined with the lake's tables in one query.
    assert_eq!(
        p.scalar("SELECT count(*) FROM s.t, sluice.history.runs r WHERE r.status = 'success'"),
        3
    );
}

#[test]
fn a_killed_run_is_marked_failed_with_its_steps_by_the_next_run() {
    let (p, _) = loaded();
    // What a process killed mid-run leaves: a run and a step still `running`.
    let db = rusqlite::Connection::open(p.path().join(".sluice/sluice.db")).unwrap();
    db.execute_batch(
        "INSERT INTO runs (run_id, command, status, started_at, job, trigger)
           VALUES ('killed-0001', 'run daily', 'running', '2026-01-01T00:00:00.000Z', 'daily', 'schedule:nightly');
         INSERT INTO run_steps (run_id, step_id, kind, assets, status, attempts, started_at)
           VALUES ('killed-0001', 's.t', 'materialize', '[\"s.t\"]', 'running', 1, '2026-01-01T00:00:00.100Z');",
    )
    .unwrap();
    drop(db);
    assert_eq!(
        p.json(&["runs", "--status", "running"])[0]["run_id"],
        "killed-0001"
    );

    let out = p.run(&["run"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 earlier run(s) had been killed"),
        "{stderr}"
    );

    let json = p.json(&["runs", "show", "killed"]);
    assert_eq!(json["run"]["status"], "failed");
    assert_eq!(json["run"]["job"], "daily");
    assert_eq!(json["run"]["trigger"], "schedule:nightly");
    assert!(
        json["run"]["error"]
            .as_str()
            .unwrap()
            .contains("process ended"),
        "{json:#}"
    );
    assert_eq!(json["steps"][0]["status"], "failed");
    assert!(
        json["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("before the step finished")
    );
    assert_eq!(json["run"]["steps_ok"], 0);
    assert_eq!(json["run"]["steps_total"], 1);
    let out = p.ok(&["runs", "show", "killed"]);
    assert!(
        out.contains("status     failed") && out.contains("\nsteps\n"),
        "{out}"
    );
    let logs = p.ok(&["runs", "logs", "killed-0001"]);
    let line = logs.lines().next().unwrap_or_default();
    assert!(
        line.contains(" ERROR - The process ended before the run finished"),
        "{logs}"
    );
    // `HH:MM:SS.mmm ` first.
    assert_eq!(line.as_bytes()[2], b':');
    assert_eq!(line.as_bytes()[8], b'.');
    assert!(
        p.ok(&["runs", "logs", "killed", "--step", "s.t"])
            .is_empty()
    );
    let err = p.fails(&["runs", "logs", "killed", "--step", "nope"], 2);
    assert!(
        err.contains("no step `nope`") && err.contains("s.t"),
        "{err}"
    );
    assert!(
        p.json(&["runs", "--status", "running"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        p.json(&["runs", "--job", "daily"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
