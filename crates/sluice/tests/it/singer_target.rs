//! Singer targets as destinations and `sluice singer tap`, with real
//! plugins from PyPI (target-jsonl, meltanolabs-target-csv, installed in the
//! test venv by scripts/test.sh) and small `sh` targets for failures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{Project, singer_bin as plugin};

const ORDERS_1: &str = "id,name,amount,created_at
1,alice,10.50,2024-01-01T10:00:00Z
2,bob,3.25,2024-01-02T11:30:00Z
3,carol,,2024-01-03T12:00:00Z
";

const ORDERS_2: &str = "id,name,amount,created_at
4,dan,1.00,2024-01-04T10:00:00Z
5,eve,7.75,2024-01-05T11:00:00Z
";

/// A project whose `shop` source reads `data/orders*.csv` and whose `jsonl`
/// destination runs `target` with target-jsonl's settings.
fn project(target: &Path) -> Project {
    let p = Project::new(&yml(target));
    p.write("data/orders1.csv", ORDERS_1);
    p
}

fn yml(target: &Path) -> String {
    format!(
        "sources:
  shop:
    type: files
    path: data/orders*.csv
    stream: orders
    primary_key: id
destinations:
  jsonl:
    type: singer
    plugin: target-jsonl
    executable: {}
    config: {{ destination_path: out, do_timestamp_file: false }}
",
        target.display()
    )
}

/// A `sh` script in the project, executable.
fn script(p: &Project, name: &str, body: &str) -> PathBuf {
    p.write(name, body);
    let path = p.path().join(name);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// The stored state of `id`, or `None`.
fn state(p: &Project, id: &str) -> Option<Value> {
    let all = p.json(&["state", "show"]);
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream_id"] == id)
        .cloned()
}

fn files_in(state: &Value) -> Vec<String> {
    let mut v: Vec<String> = state["value"]["files"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    v.sort();
    v
}

#[test]
fn extract_to_target_jsonl_then_resume_from_the_echoed_state() {
    let p = project(&plugin("target-jsonl"));
    let v = p.json(&["extract", "shop", "--to", "jsonl"]);
    let s = &v["streams"][0];
    assert_eq!(s["status"], "success", "{v:#}");
    assert_eq!(s["rows_read"], 3);
    assert_eq!(s["rows_written"], 3);
    assert_eq!(s["destination"], "singer");
    let rows = jsonl(&p.path().join("out/orders.jsonl"));
    assert_eq!(
        rows,
        [
            json!({"id": 1, "name": "alice", "amount": 10.5, "created_at": "2024-01-01T10:00:00Z"}),
            json!({"id": 2, "name": "bob", "amount": 3.25, "created_at": "2024-01-02T11:30:00Z"}),
            json!({"id": 3, "name": "carol", "amount": null, "created_at": "2024-01-03T12:00:00Z"}),
        ]
    );
    let first = state(&p, "shop.orders@jsonl").expect("state after the first run");
    assert_eq!(files_in(&first), ["data/orders1.csv"]);

    // A new file: only its rows go to the target.
    p.write("data/orders2.csv", ORDERS_2);
    let v = p.json(&["extract", "shop", "--to", "jsonl"]);
    assert_eq!(v["streams"][0]["rows_read"], 2, "{v:#}");
    assert_eq!(v["streams"][0]["rows_written"], 2);
    let rows = jsonl(&p.path().join("out/orders.jsonl"));
    assert_eq!(ids(&rows), [1, 2, 3, 4, 5]);
    let second = state(&p, "shop.orders@jsonl").unwrap();
    assert!(second["seq"].as_u64() > first["seq"].as_u64());
    assert_eq!(files_in(&second), ["data/orders1.csv", "data/orders2.csv"]);

    // Nothing new: nothing sent.
    let v = p.json(&["extract", "shop", "--to", "jsonl"]);
    assert_eq!(v["streams"][0]["rows_read"], 0, "{v:#}");
    assert_eq!(jsonl(&p.path().join("out/orders.jsonl")).len(), 5);
    // The target's stderr went to its log, named after destination and stream.
    assert!(
        p.path()
            .join(".sluice/logs/target-jsonl-orders.log")
            .exists()
    );
}

#[test]
fn the_persisted_state_is_the_one_the_target_echoed() {
    // target-jsonl behind a filter that marks every STATE it echoes.
    let p = Project::new("");
    let wrapper = script(
        &p,
        "target-marking",
        &format!(
            "#!/bin/sh\n{} \"$@\" | sed -u 's/\"orders\": {{/\"orders\": {{\"echoed_by\": \"the target\", /'\n",
            plugin("target-jsonl").display()
        ),
    );
    p.write("sluice.yml", yml(&wrapper));
    p.write("data/orders1.csv", ORDERS_1);
    let v = p.json(&["extract", "shop", "--to", "jsonl"]);
    assert_eq!(v["streams"][0]["rows_written"], 3, "{v:#}");
    let stored = state(&p, "shop.orders@jsonl").unwrap();
    assert_eq!(stored["value"]["echoed_by"], "the target", "{stored:#}");
    assert_eq!(files_in(&stored), ["data/orders1.csv"]);
    let shown = p.ok(&["state", "show", "shop.orders@jsonl"]);
    assert!(shown.contains("the target"), "{shown}");
}

#[test]
fn extract_to_meltanolabs_target_csv() {
    let p = Project::new(&format!(
        "sources:
  shop:
    type: files
    path: data/orders*.csv
    stream: orders
    primary_key: id
destinations:
  csv_target:
    type: singer
    plugin: target-csv
    executable: {}
    config: {{ output_path: out }}
",
        plugin("target-csv").display()
    ));
    p.write("data/orders1.csv", ORDERS_1);
    let v = p.json(&["extract", "shop", "--to", "csv_target"]);
    assert_eq!(v["streams"][0]["status"], "success", "{v:#}");
    assert_eq!(v["streams"][0]["rows_written"], 3);
    let csv = std::fs::read_to_string(p.path().join("out/orders.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,name,amount,created_at"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("1,alice,10.5,2024-01-01"), "{csv}");
    let stored = state(&p, "shop.orders@csv_target").expect("target-csv echoes its state");
    assert_eq!(files_in(&stored), ["data/orders1.csv"]);
    // `sluice debug` asks the target about itself (Singer SDK `--about`).
    let debug = p.json(&["debug"]);
    let check = debug
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "destination csv_target")
        .unwrap();
    assert_eq!(check["ok"], true, "{check:#}");
    assert!(
        check["message"].as_str().unwrap().starts_with("target-csv"),
        "{check:#}"
    );
}

#[test]
fn a_target_that_dies_half_way_fails_the_run_and_the_state_stays() {
    let p = project(&plugin("target-jsonl"));
    p.ok(&["extract", "shop", "--to", "jsonl"]);
    let before = state(&p, "shop.orders@jsonl").unwrap();

    // The same destination now runs a target that dies at its 3rd line.
    let broken = script(
        &p,
        "target-broken",
        "#!/bin/sh
n=0
while IFS= read -r line; do
  n=$((n+1))
  if [ \"$n\" -ge 3 ]; then
    echo \"target-broken: writing line $n\" >&2
    echo \"ERROR: disk quota exceeded\" >&2
    exit 5
  fi
done
",
    );
    p.write("sluice.yml", yml(&broken));
    p.write("data/orders2.csv", ORDERS_2);
    let stderr = p.fails(&["extract", "shop", "--to", "jsonl"], 1);
    assert!(
        stderr.contains("target jsonl/orders failed with exit code 5"),
        "{stderr}"
    );
    assert!(stderr.contains("ERROR: disk quota exceeded"), "{stderr}");
    assert!(stderr.contains("writing line 3"), "{stderr}");
    let after = state(&p, "shop.orders@jsonl").unwrap();
    assert_eq!(after, before, "the state must not advance");

    // Back to the real target: the rows of the failed run arrive now.
    p.write("sluice.yml", yml(&plugin("target-jsonl")));
    let v = p.json(&["extract", "shop", "--to", "jsonl"]);
    assert_eq!(v["streams"][0]["rows_written"], 2, "{v:#}");
    assert_eq!(
        ids(&jsonl(&p.path().join("out/orders.jsonl"))),
        [1, 2, 3, 4, 5]
    );
}

#[test]
fn a_target_that_echoes_no_state_never_advances_the_bookmark() {
    let p = Project::new("");
    let silent = script(&p, "target-silent", "#!/bin/sh\ncat > received.jsonl\n");
    p.write("sluice.yml", yml(&silent));
    p.write("data/orders1.csv", ORDERS_1);
    let out = p
        .cmd(&["--json", "extract", "shop", "--to", "jsonl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["streams"][0]["rows_read"], 3, "{v:#}");
    assert_eq!(v["streams"][0]["rows_written"], 0, "nothing was confirmed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("echoed no STATE"), "{stderr}");
    assert!(stderr.contains("did not advance"), "{stderr}");
    assert_eq!(state(&p, "shop.orders@jsonl"), None);
    let received = jsonl(&p.path().join("received.jsonl"));
    let records = received.iter().filter(|m| m["type"] == "RECORD").count();
    assert_eq!(records, 3);
    // So the next run sends the same rows again.
    let v = p.json(&["extract", "shop", "--to", "jsonl"]);
    assert_eq!(v["streams"][0]["rows_read"], 3, "{v:#}");
}

/// `sluice singer tap ARGS | target-jsonl`: the target's output folder and
/// its last state line.
fn tap_into_target_jsonl(p: &Project, args: &[&str]) -> Option<Value> {
    p.write(
        "target.json",
        r#"{"destination_path": "tapped", "do_timestamp_file": false}"#,
    );
    let mut all = vec!["singer", "tap"];
    all.extend_from_slice(args);
    let mut tap = p.cmd(&all).stdout(Stdio::piped()).spawn().unwrap();
    let target = Command::new(plugin("target-jsonl"))
        .args(["--config", "target.json"])
        .current_dir(p.path())
        .stdin(tap.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(tap.wait().unwrap().success());
    assert!(
        target.status.success(),
        "{}",
        String::from_utf8_lossy(&target.stderr)
    );
    let text = String::from_utf8(target.stdout).unwrap();
    text.lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
}

#[test]
fn sluice_tap_into_a_real_target_resumes_from_its_state() {
    let p = project(&plugin("target-jsonl"));
    let last = tap_into_target_jsonl(&p, &["shop"]).expect("a final state");
    assert_eq!(
        ids(&jsonl(&p.path().join("tapped/orders.jsonl"))),
        [1, 2, 3]
    );
    let files: Vec<&String> = last["bookmarks"]["orders"]["files"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(files, ["data/orders1.csv"]);

    // With that state, only the new file's rows are read.
    // Paths on the command line are relative to the current folder, as usual.
    let state_file = p.path().join("state.json");
    let state_arg = state_file.to_str().unwrap();
    p.write("state.json", last.to_string());
    p.write("data/orders2.csv", ORDERS_2);
    let last = tap_into_target_jsonl(&p, &["shop", "--state", state_arg]).unwrap();
    assert_eq!(
        ids(&jsonl(&p.path().join("tapped/orders.jsonl"))),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        last["bookmarks"]["orders"]["files"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    // And with the final state, nothing at all but the STATE.
    p.write("state.json", last.to_string());
    let out = p.ok(&["singer", "tap", "shop", "--state", state_arg]);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].to_string())
        .collect();
    assert!(kinds.iter().all(|k| k == "\"STATE\""), "{out}");
}

#[test]
fn sluice_tap_discover_about_and_catalog_selection() {
    let p = Project::new(
        "sources:
  shop:
    type: files
    path: data/orders*.csv
    stream: orders
    primary_key: id
    cursor: created_at
",
    );
    p.write("data/orders1.csv", ORDERS_1);
    let about: Value = serde_json::from_str(&p.ok(&["singer", "tap", "shop", "--about"])).unwrap();
    assert_eq!(about["name"], "sluice-files");
    assert_eq!(
        about["capabilities"],
        json!(["catalog", "discover", "state"])
    );
    assert!(
        about["settings"]["properties"]["path"].is_object(),
        "{about:#}"
    );

    let catalog: Value =
        serde_json::from_str(&p.ok(&["singer", "tap", "shop", "--discover"])).unwrap();
    let stream = &catalog["streams"][0];
    assert_eq!(stream["tap_stream_id"], "orders");
    assert_eq!(stream["stream"], "orders");
    assert_eq!(stream["key_properties"], json!(["id"]));
    assert_eq!(
        stream["schema"]["properties"]["id"],
        json!({"type": ["integer", "null"]})
    );
    assert_eq!(
        stream["schema"]["properties"]["created_at"],
        json!({"type": ["string", "null"], "format": "date-time"})
    );
    let md = &stream["metadata"][0];
    assert_eq!(md["breadcrumb"], json!([]));
    assert_eq!(md["metadata"]["table-key-properties"], json!(["id"]));
    assert_eq!(
        md["metadata"]["valid-replication-keys"],
        json!(["created_at"])
    );
    assert_eq!(md["metadata"]["forced-replication-method"], "INCREMENTAL");
    assert_eq!(md["metadata"]["selected-by-default"], true);
    let props: Vec<&Value> = stream["metadata"].as_array().unwrap()[1..]
        .iter()
        .map(|m| &m["breadcrumb"])
        .collect();
    assert_eq!(
        props,
        [
            &json!(["properties", "id"]),
            &json!(["properties", "name"]),
            &json!(["properties", "amount"]),
            &json!(["properties", "created_at"]),
        ]
    );

    // A catalog that deselects `name`: the records leave it out; the key
    // and the cursor stay even when deselected.
    let mut chosen = catalog.clone();
    for m in chosen["streams"][0]["metadata"].as_array_mut().unwrap() {
        if m["breadcrumb"] == json!(["properties", "name"])
            || m["breadcrumb"] == json!(["properties", "id"])
        {
            m["metadata"]["selected"] = json!(false);
        }
    }
    p.write("catalog.json", chosen.to_string());
    let catalog_file = p.path().join("catalog.json");
    let out = p.ok(&[
        "singer",
        "tap",
        "shop",
        "--catalog",
        catalog_file.to_str().unwrap(),
    ]);
    let messages: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(messages[0]["type"], "SCHEMA");
    assert_eq!(messages[0]["bookmark_properties"], json!(["created_at"]));
    let record = &messages[1]["record"];
    assert_eq!(
        *record,
        json!({"id": 1, "amount": 10.5, "created_at": "2024-01-01T10:00:00Z"})
    );
    assert_eq!(messages.last().unwrap()["type"], "STATE");
}

#[test]
fn sluice_tap_of_a_built_in_type_outside_a_project() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/a.csv"), ORDERS_1).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"path": "data/*.csv", "stream": "orders", "primary_key": "id"}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("SLUICE_PROJECT_DIR")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&["singer", "tap", "files", "--config", "config.json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SCHEMA", "RECORD", "RECORD", "RECORD", "STATE"]);
    assert_eq!(messages[0]["key_properties"], json!(["id"]));
    // Nothing was written next to the data (no lake, no store).
    assert!(!dir.path().join(".sluice").exists());

    // A bad settings file is an error with a hint, and a non-zero exit.
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"path": "data/*.csv", "colums": {}}"#,
    )
    .unwrap();
    let out = run(&["singer", "tap", "files", "--config", "bad.json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("colums"), "{stderr}");
    assert!(stderr.contains("columns"), "{stderr}");
    let out = run(&["singer", "tap", "files"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn sluice_tap_reports_a_bad_record_on_stderr_and_exits_non_zero() {
    let p = Project::new(
        "sources:
  shop:
    type: files
    path: data/*.csv
    stream: orders
    columns: { id: int64 }
",
    );
    p.write("data/a.csv", "id,name\n1,a\nnot-a-number,b\n");
    let out = p.run(&["singer", "tap", "shop"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    // Nothing past the last STATE (there is none) claims to be covered.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("\"STATE\""), "{stdout}");
}

#[test]
fn a_real_tap_into_a_real_target_through_sluice() {
    // The issue's example: tap-csv-folder → Sluice → target-jsonl.
    let p = Project::new(&format!(
        "sources:
  csvtap:
    type: singer
    plugin: tap-csv-folder
    executable: {}
    config: {{ filesystem: local, path: data, read_mode: merge, stream_name: orders }}
destinations:
  jsonl:
    type: singer
    plugin: target-jsonl
    executable: {}
    config: {{ destination_path: out, do_timestamp_file: false }}
",
        plugin("tap-csv-folder").display(),
        plugin("target-jsonl").display()
    ));
    p.write("data/orders.csv", "id,name\n1,a\n2,b\n");
    let v = p.json(&["extract", "csvtap", "--to", "jsonl"]);
    assert_eq!(v["streams"][0]["status"], "success", "{v:#}");
    assert_eq!(v["streams"][0]["rows_written"], 2);
    let rows = jsonl(&p.path().join("out/orders.jsonl"));
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        rows[0]["id"], "1",
        "tap-csv-folder reads every column as text"
    );
    // The tap's own bookmark, as target-jsonl echoed it.
    let stored = state(&p, "csvtap.orders@jsonl").expect("a state");
    assert!(
        stored["value"].to_string().contains("bookmarks"),
        "{stored:#}"
    );
}
