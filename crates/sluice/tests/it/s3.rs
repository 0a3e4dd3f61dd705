//! A lake on S3: the same load, merge, quarantine and SQL against an
//! S3-compatible server (moto's server mode, started per test on a free port).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Project;

struct S3Server {
    child: Child,
    port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server() -> PathBuf {
    let venv = std::env::var_os("SLUICE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sluice-test-venv")
        });
    let bin = venv.join("bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run ./scripts/test.sh once (it installs the test tools listed in scripts/test-requirements.txt)",
        bin.display()
    );
    bin
}

fn start() -> S3Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = S3Server { child, port };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the S3 server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Create the bucket (S3 API: PUT /bucket).
    let status = Command::new("curl")
        .args(["-sf", "-X", "PUT", &format!("http://127.0.0.1:{port}/lake")])
        .status()
        .unwrap();
    assert!(status.success(), "could not create the bucket");
    server
}

#[test]
fn lake_on_s3_loads_merges_and_queries() {
    let s3 = start();
    let p = Project::new(&format!(
        "lake:
  url: s3://lake/warehouse
  options:
    aws_endpoint_url: http://127.0.0.1:{}
    aws_region: us-east-1
    aws_access_key_id: test
    aws_secret_access_key: ${{S3_SECRET}}
    aws_allow_http: \"true\"
sources:
  s:
    type: files
    path: data/*.csv
    stream: t
    primary_key: [id]
    write_mode: merge
    on_error: quarantine
",
        s3.port
    ));
    p.write(".env", "S3_SECRET=test-secret-value\n");
    p.write("data/a.csv", "id,name,amount\n1,a,1.5\n2,b,2\n");
    p.ok(&["run"]);
    p.write("data/b.csv", "id,name,amount\n2,B,2\n3,c,x\n");
    let s = p.run_json(&[], "s.t");
    assert_eq!(
        (s["rows_written"].as_i64(), s["rows_quarantined"].as_i64()),
        (Some(1), Some(1)),
        "{s:#}"
    );
    assert_eq!(
        p.query("SELECT id, name FROM s.t ORDER BY id"),
        vec![vec!["1", "a"], vec!["2", "B"]]
    );
    assert_eq!(p.scalar("SELECT count(*) FROM s.t__quarantine"), 1);
    assert!(
        s["location"]
            .as_str()
            .unwrap()
            .starts_with("s3://lake/warehouse/s/t"),
        "{s:#}"
    );
    let tables = p.json(&["tables"]);
    assert_eq!(tables.as_array().unwrap().len(), 2);
    // Nothing is written locally, and the secret never shows.
    assert!(!p.path().join(".sluice/lake").exists());
    let debug = p.ok(&["debug"]);
    assert!(
        debug.contains("lake at s3://lake/warehouse/") && !debug.contains("test-secret-value"),
        "{debug}"
    );
    // The table exactly-once checkpoint works the same on S3.
    let st = p.json(&["state", "show"]);
    assert_eq!(st[0]["seq"], 2);
}

#[test]
fn unreachable_s3_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Project::new(&format!(
        "lake:\n  url: s3://lake/x\n  options: {{ aws_endpoint_url: \"http://127.0.0.1:{port}\", aws_region: us-east-1, aws_access_key_id: a, aws_secret_access_key: b, aws_allow_http: \"true\", aws_client_timeout: 2s }}\nsources:\n  s:\n    type: files\n    path: data/*.csv\n    stream: t\n"
    ));
    p.write("data/a.csv", "id\n1\n");
    let out = p.cmd(&["debug"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("destination lake") && text.contains("FAILED"),
        "{text}"
    );
}
