//! `sluice serve`: schedules claimed once across processes, sensors, the
//! HTTP API, alerts, and recovery after a kill -9.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::Project;

fn files_project(extra: &str) -> Project {
    let p = Project::new(&format!(
        "sources:
  drops:
    type: files
    path: incoming/*.csv
    stream: orders
    write_mode: append
{extra}"
    ));
    p.write("incoming/a.csv", "id,amount\n1,10\n2,20\n");
    p
}

/// Runs of the project, newest first.
fn runs(p: &Project) -> Vec<Value> {
    p.json(&["runs", "list", "--limit", "100"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// RFC 3339 UTC of `secs` since the epoch.
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[test]
fn two_schedulers_never_run_a_tick_twice() {
    let p = files_project(
        "jobs:
  nightly:
    select: kind:stream
    schedule: '*/10 * * * *'
    timezone: Europe/Paris
",
    );
    // Three ticks are due since `since` (four if a boundary passes now).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let since = rfc3339(now - now % 600 - 1800);
    let start = |_: usize| -> Child {
        p.cmd(&["serve", "--once", "--since", &since])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(0), start(1));
    let mut claimed = String::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        claimed.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    let ticks = claimed.matches(": queued").count();
    assert!((3..=4).contains(&ticks), "{claimed}");
    let all = runs(&p);
    assert_eq!(
        all.len(),
        ticks,
        "one run per tick, whichever process claimed it: {all:#?}"
    );
    for r in &all {
        assert_eq!(r["trigger"], "schedule:nightly");
        assert_eq!(r["job"], "nightly");
        assert_eq!(r["status"], "success", "{r:#}");
    }
    // Caught up: looking again runs nothing.
    let out = p.ok(&["serve", "--once", "--since", &since]);
    assert!(out.is_empty());
    assert_eq!(runs(&p).len(), ticks);
    // A bad schedule is a located error.
    let bad = files_project("jobs:\n  j:\n    schedule: '0 25 * * *'\n");
    let err = bad.fails(&["serve", "--once"], 2);
    assert!(
        err.contains("sluice.yml:9:") && err.contains("hour value `25`"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn a_new_file_starts_its_job_once_and_a_stale_asset_alerts() {
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hook.local_addr().unwrap().port();
    let p = files_project(&format!(
        "jobs:
  on_drop:
    select: source:drops
    when:
      files: incoming/*.csv
  refresh:
    select: kind:stream
    when:
      stale: {{asset: drops.orders, after: 1h}}
orchestration:
  alerts:
    - url: http://127.0.0.1:{port}/hook
      on: stale
"
    ));
    let received = std::thread::spawn(move || accept_one(&hook));
    p.ok(&["serve", "--once"]);
    let alert: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    assert_eq!(alert["event"], "stale");
    assert_eq!(alert["asset"], "drops.orders");
    assert_eq!(alert["last_made"], Value::Null);
    let triggers: Vec<String> = runs(&p)
        .iter()
        .map(|r| r["trigger"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(triggers.len(), 2, "{triggers:?}");
    assert!(triggers.contains(&"sensor:on_drop".to_string()));
    assert!(triggers.contains(&"sensor:refresh".to_string()));
    // Nothing new: no run. A new file: one run, which loads it.
    p.ok(&["serve", "--once"]);
    assert_eq!(runs(&p).len(), 2);
    p.write("incoming/b.csv", "id,amount\n3,30\n");
    p.ok(&["serve", "--once"]);
    let all = runs(&p);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["trigger"], "sensor:on_drop");
    assert_eq!(p.scalar("SELECT count(*) FROM drops.orders"), 3);
}

/// Accept one HTTP request; answer 200; return its body.
fn accept_one(listener: &TcpListener) -> String {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .unwrap();
    String::from_utf8(body).unwrap()
}

#[test]
fn a_failed_run_posts_an_alert() {
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hook.local_addr().unwrap().port();
    let p = Project::new(&format!(
        "sources:
  raw:
    type: files
    path: data/orders.csv
    stream: orders
orchestration:
  alerts:
    - url: http://127.0.0.1:{port}/hook?token=s3cret
      on: [run_failed]
"
    ));
    p.write("data/orders.csv", "id,amount\n1\n");
    let received = std::thread::spawn(move || accept_one(&hook));
    let out = p.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let alert: Value = serde_json::from_str(&received.join().unwrap()).unwrap();
    assert_eq!(alert["event"], "run_failed");
    assert_eq!(alert["status"], "failed");
    assert_eq!(alert["failed_steps"][0]["step"], "raw.orders");
    assert!(alert["run_id"].as_str().is_some());
    // The URL (and its token) is never printed.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// Start `sluice serve` on a free port; return the child and the port.
fn serve(p: &Project, env: &[(&str, &str)]) -> (Child, u16) {
    let mut cmd = p.cmd(&["serve", "--port", "0"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    while let Some(Ok(line)) = lines.next() {
        if let Some(rest) = line.split("API on http://127.0.0.1:").nth(1) {
            let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
            // Keep draining stderr so the server never blocks on it.
            std::thread::spawn(move || for _ in lines {});
            return (child, port);
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("`sluice serve` ended before serving: {seen}");
}

/// One HTTP request; (status, JSON body).
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Poll the API until the run exists and `done` says so.
fn wait_run(port: u16, id: &str, token: Option<&str>, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (status, v) = http(port, "GET", &format!("/api/runs/{id}"), token);
        if status == 200 && done(&v) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "run {id}: {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_api_triggers_jobs_behind_a_token() {
    let p = files_project("jobs:\n  loads:\n    select: kind:stream\n");
    let (mut child, port) = serve(&p, &[("SLUICE_API_TOKEN", "t0ken")]);
    let token = Some("t0ken");
    assert_eq!(http(port, "GET", "/health", None).0, 200);
    assert_eq!(http(port, "POST", "/api/jobs/loads/runs", None).0, 401);
    assert_eq!(
        http(port, "POST", "/api/jobs/loads/runs", Some("wrong")).0,
        401
    );
    let (status, v) = http(port, "POST", "/api/jobs/nope/runs", token);
    assert_eq!(status, 404, "{v:#}");
    let (status, v) = http(port, "POST", "/api/jobs/loads/runs", token);
    assert_eq!(status, 202, "{v:#}");
    let id = v["run_id"].as_str().unwrap().to_string();
    let done = wait_run(port, &id, token, |v| v["run"]["status"] == "success");
    assert_eq!(done["run"]["trigger"], "webhook");
    assert_eq!(done["steps"][0]["step_id"], "drops.orders");
    let (_, jobs) = http(port, "GET", "/api/jobs", token);
    assert_eq!(jobs["loads"]["select"][0], "kind:stream");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(p.scalar("SELECT count(*) FROM drops.orders"), 2);
}

#[test]
fn a_serve_killed_mid_run_leaves_the_run_failed_not_running() {
    let p = crate::singer_run::tap_project("jobs:\n  taps:\n    select: kind:stream\n");
    p.write("tap/hang", "");
    let (mut child, port) = serve(&p, &[]);
    let (_, v) = http(port, "POST", "/api/jobs/taps/runs", None);
    let id = v["run_id"].as_str().unwrap().to_string();
    wait_run(port, &id, None, |v| {
        v["run"]["status"] == "running" && v["steps"][0]["status"] == "running"
    });
    // kill -9: nothing gets to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    if let Ok(pid) = std::fs::read_to_string(p.path().join("tap/tap.pid")) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let shown = p.json(&["runs", "show", &id]);
    assert_eq!(
        shown["run"]["status"], "running",
        "nothing recovered it yet"
    );
    // The next start marks it failed, with its steps.
    std::fs::remove_file(p.path().join("tap/hang")).unwrap();
    let out = p.cmd(&["serve", "--once"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left running by a killed process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = p.json(&["runs", "show", &id]);
    assert_eq!(shown["run"]["status"], "failed");
    assert!(
        shown["run"]["error"]
            .as_str()
            .unwrap()
            .contains("process ended")
    );
    assert_eq!(shown["steps"][0]["status"], "failed");
}
