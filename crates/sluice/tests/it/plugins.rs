//! `sluice plugin add | list | remove` with real pip and real packages from
//! PyPI (pip's cache makes repeated runs fast), and `executable:` plugins
//! from the test venv.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{Project, singer_bin, test_venv};

const JSONL_YML: &str = "\
destinations:
  jsonl:
    type: singer
    plugin: target-jsonl
    pip: target-jsonl==0.1.4
    config: { destination_path: out }
";

fn lock(p: &Project) -> Value {
    let text = std::fs::read_to_string(p.path().join("sluice.lock")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn list_row(p: &Project, name: &str) -> Value {
    let rows = p.json(&["plugin", "list"]);
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no plugin {name} in {rows:#}"))
}

fn runs(exe: &Path) {
    let out = Command::new(exe).arg("--help").output().unwrap();
    assert!(
        out.status.success(),
        "`{} --help` failed: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plugin_add_locks_lists_and_removes() {
    let p = Project::new(JSONL_YML);
    let out = p.run(&["plugin", "add", "target-jsonl"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The pip requirement comes from sluice.yml; one progress line on stderr.
    assert!(
        stderr.contains("installing plugin target-jsonl (target-jsonl==0.1.4)…"),
        "{stderr}"
    );
    assert!(
        stdout.contains("Installed plugin target-jsonl 0.1.4"),
        "{stdout}"
    );

    let exe = p
        .path()
        .join(".sluice/plugins/target-jsonl/venv/bin/target-jsonl");
    runs(&exe);
    let log = p
        .path()
        .join(".sluice/logs/plugin-install-target-jsonl.log");
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("target-jsonl")
    );

    let entry = &lock(&p)["plugins"]["target-jsonl"];
    assert_eq!(entry["pip"], "target-jsonl==0.1.4");
    assert_eq!(entry["distribution"], "target-jsonl");
    assert_eq!(entry["version"], "0.1.4");
    let reqs: Vec<&str> = entry["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(reqs.contains(&"target-jsonl==0.1.4"), "{reqs:?}");
    assert!(reqs.contains(&"singer-python==5.8.0"), "{reqs:?}");
    assert!(!reqs.iter().any(|r| r.starts_with("pip==")), "{reqs:?}");

    let row = list_row(&p, "target-jsonl");
    assert_eq!(row["kind"], "pip");
    assert_eq!(row["version"], "0.1.4");
    assert_eq!(row["installed"], true);
    assert_eq!(row["locked"], true);
    assert_eq!(row["outdated"], false);
    assert_eq!(row["used_by"], serde_json::json!(["destination jsonl"]));
    assert_eq!(
        row["executable"],
        exe.canonicalize().unwrap().to_str().unwrap()
    );
    let table = p.ok(&["plugin", "list"]);
    assert!(table.contains("destination jsonl"), "{table}");

    // Adding again does nothing.
    let again = p.json(&["plugin", "add", "target-jsonl"]);
    assert_eq!(again["action"], "present");

    p.ok(&["plugin", "remove", "target-jsonl"]);
    assert!(!p.path().join(".sluice/plugins/target-jsonl").exists());
    assert_eq!(lock(&p)["plugins"], serde_json::json!({}));
    let row = list_row(&p, "target-jsonl");
    assert_eq!(row["installed"], false);
    assert_eq!(row["locked"], false);
    let err = p.fails(&["plugin", "remove", "target-jsonl"], 1);
    assert!(
        err.contains("neither installed nor in sluice.lock"),
        "{err}"
    );
}

#[test]
fn lock_is_reproduced_elsewhere_and_follows_sluice_yml() {
    let p = Project::new(JSONL_YML);
    p.ok(&["plugin", "add", "target-jsonl"]);

    // Another machine: the committed sluice.lock, no .sluice/. Change a pin
    // that resolving `target-jsonl==0.1.4` would never produce, to see that
    // the frozen set is what gets installed.
    std::fs::remove_dir_all(p.path().join(".sluice")).unwrap();
    let mut locked = lock(&p);
    let reqs = locked["plugins"]["target-jsonl"]["requirements"]
        .as_array_mut()
        .unwrap();
    reqs.retain(|r| !r.as_str().unwrap().starts_with("setuptools=="));
    reqs.push("setuptools==69.5.1".into());
    p.write(
        "sluice.lock",
        serde_json::to_string_pretty(&locked).unwrap(),
    );

    let added = p.json(&["plugin", "add", "target-jsonl"]);
    assert_eq!(added["action"], "installed_from_lock", "{added:#}");
    let frozen = Command::new(p.path().join(".sluice/plugins/target-jsonl/venv/bin/pip"))
        .args(["freeze", "--all"])
        .output()
        .unwrap();
    let frozen = String::from_utf8_lossy(&frozen.stdout);
    assert!(frozen.contains("setuptools==69.5.1"), "{frozen}");
    runs(
        &p.path()
            .join(".sluice/plugins/target-jsonl/venv/bin/target-jsonl"),
    );
    assert_eq!(list_row(&p, "target-jsonl")["outdated"], false);

    // sluice.yml asks for another version: the venv is outdated, and the
    // next install resolves the new requirement and re-locks.
    p.write("sluice.yml", JSONL_YML.replace("0.1.4", "0.1.3"));
    let row = list_row(&p, "target-jsonl");
    assert_eq!(row["outdated"], true, "{row:#}");
    let added = p.json(&["plugin", "add", "target-jsonl"]);
    assert_eq!(added["action"], "installed", "{added:#}");
    let entry = &lock(&p)["plugins"]["target-jsonl"];
    assert_eq!(entry["pip"], "target-jsonl==0.1.3");
    assert_eq!(entry["version"], "0.1.3");
}

#[test]
fn bad_requirement_fails_with_pip_error_and_no_venv() {
    let p = Project::new("sources: {}\n");
    let err = p.fails(
        &[
            "plugin",
            "add",
            "tap-nothing",
            "--pip",
            "no-such-package-xyz-123",
        ],
        1,
    );
    assert!(
        err.contains("No matching distribution found for no-such-package-xyz-123"),
        "{err}"
    );
    assert!(err.contains("hint: check the pip requirement"), "{err}");
    assert!(
        err.contains(".sluice/logs/plugin-install-tap-nothing.log"),
        "{err}"
    );
    assert!(!p.path().join(".sluice/plugins/tap-nothing").exists());
    assert!(!p.path().join("sluice.lock").exists());
    assert!(
        p.path()
            .join(".sluice/logs/plugin-install-tap-nothing.log")
            .is_file()
    );
    let bad_name = p.fails(&["plugin", "add", "../evil"], 1);
    assert!(bad_name.contains("must be letters, digits"), "{bad_name}");
}

#[test]
fn executable_plugins_on_path_are_listed() {
    // Real plugins from the test venv: one by name on PATH, one by path.
    let jsonl = singer_bin("target-jsonl");
    let bin = test_venv().join("bin");
    let yml = format!(
        "\
sources:
  csvtap:
    type: singer
    plugin: tap-csv-folder
    executable: tap-csv-folder
destinations:
  jsonl:
    type: singer
    plugin: target-jsonl
    executable: {}
  gone:
    type: singer
    plugin: target-gone
    executable: target-gone-xyz
",
        jsonl.display()
    );
    let p = Project::new(&yml);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let list = |args: &[&str]| {
        let mut a = vec!["--json", "plugin"];
        a.extend_from_slice(args);
        p.cmd(&a).env("PATH", &path).output().unwrap()
    };
    let out = list(&["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {rows:#}"))
    };
    let tap = row("tap-csv-folder");
    assert_eq!(tap["kind"], "executable");
    assert_eq!(tap["installed"], true);
    assert_eq!(
        tap["executable"],
        bin.join("tap-csv-folder").to_str().unwrap()
    );
    assert_eq!(tap["used_by"], serde_json::json!(["source csvtap"]));
    runs(Path::new(tap["executable"].as_str().unwrap()));
    let target = row("target-jsonl");
    assert_eq!(target["installed"], true);
    assert_eq!(target["executable"], jsonl.to_str().unwrap());
    let gone = row("target-gone");
    assert_eq!(gone["installed"], false);
    assert_eq!(gone["executable"], "target-gone-xyz");

    // Nothing to install for an `executable:` plugin.
    let out = list(&["add", "tap-csv-folder"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing to install"), "{err}");
    assert!(err.contains("hint: give `--pip SPEC`"), "{err}");
}

#[test]
fn run_installs_a_missing_tap_once_and_locks_it() {
    let p = Project::new(
        "\
sources:
  csvtap:
    type: singer
    plugin: tap-csv-folder
    pip: tap-csv-folder==0.0.1a1
    config: {filesystem: local, path: data, read_mode: merge, stream_name: orders}
",
    );
    p.write("data/a.csv", "id,name\n1,ann\n2,bob\n");
    let out = p.run(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let installing: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("installing plugin"))
        .collect();
    assert_eq!(
        installing,
        ["installing plugin tap-csv-folder (tap-csv-folder==0.0.1a1)…"],
        "{stderr}"
    );
    let entry = &lock(&p)["plugins"]["tap-csv-folder"];
    assert_eq!(entry["version"], "0.0.1a1");
    assert_eq!(p.scalar("SELECT count(*) FROM csvtap.orders"), 2);

    // The next run finds the venv matching the lock: no install.
    let out = p.run(&["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("installing plugin"), "{stderr}");
}
