//! Kill a load with SIGKILL mid-way, run it again: nothing lost, nothing twice.

use std::time::{Duration, Instant};

use crate::support::{Project, orders_csv};

const FILES: u64 = 12;
const ROWS: u64 = 40_000;

fn big_project(mode: &str) -> Project {
    let p = Project::new(&format!(
        "sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n    primary_key: [id]\n    write_mode: {mode}\n"
    ));
    for f in 0..FILES {
        p.write(
            &format!("data/part_{f:02}.csv"),
            orders_csv(f * ROWS, (f + 1) * ROWS),
        );
    }
    p
}

fn commits(p: &Project) -> usize {
    std::fs::read_dir(p.path().join(".sluice/lake/s/t/_delta_log"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// Start a load that commits after every file, kill it after its second commit.
fn kill_mid_way(p: &Project) {
    let mut child = p
        .cmd(&["run"])
        .env("SLUICE_COMMIT_BYTES", "0")
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        // Version 0 creates the table; two data commits after that.
        if commits(p) >= 3 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the load ended before it could be killed: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no commit within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = commits(p);
    assert!(
        done < FILES as usize + 1,
        "killed too late to prove anything ({done} commits)"
    );
}

fn assert_complete(p: &Project) {
    let total = (FILES * ROWS) as i64;
    assert_eq!(p.scalar("SELECT count(*) FROM s.t"), total);
    assert_eq!(p.scalar("SELECT count(DISTINCT id) FROM s.t"), total);
    assert_eq!(p.scalar("SELECT min(id) FROM s.t"), 0);
    assert_eq!(p.scalar("SELECT max(id) FROM s.t"), total - 1);
}

#[test]
fn killed_merge_load_resumes_without_duplicates() {
    let p = big_project("merge");
    kill_mid_way(&p);
    let out = p.run(&["--json", "run"]);
    assert!(out.status.success());
    // The killed run is marked failed in the history, not left "running".
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 earlier run(s) had been killed; marked failed"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    assert_eq!(s["status"], "success");
    assert!(
        s["rows_read"].as_u64().unwrap() < FILES * ROWS,
        "the re-run resumed, it did not start over: {s:#}"
    );
    assert_complete(&p);
}

#[test]
fn killed_append_load_resumes_exactly_once() {
    let p = big_project("append");
    kill_mid_way(&p);
    p.ok(&["run"]);
    assert_complete(&p);
}

#[test]
fn state_store_behind_the_table_is_caught_up_from_the_table() {
    // A crash after the Delta commit but before the state store's write:
    // simulated by putting back the store from before the second load.
    let p = Project::new("sources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n");
    p.write("data/a.csv", orders_csv(0, 100));
    p.ok(&["run"]);
    let db = p.path().join(".sluice/sluice.db");
    let saved = std::fs::read(&db).unwrap();
    p.write("data/b.csv", orders_csv(100, 150));
    p.ok(&["run"]);
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(p.path().join(format!(".sluice/sluice.db{ext}")));
    }
    std::fs::write(&db, saved).unwrap();
    p.write("data/c.csv", orders_csv(150, 160));
    let out = p.run(&["run"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("state store was behind the table"), "{err}");
    assert_eq!(
        p.scalar("SELECT count(*) FROM s.t"),
        160,
        "b.csv must not be loaded twice"
    );
}
