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

/// Writes a wheel of `tap-secret` 0.1 (one console script, no dependencies)
/// to `path`, so pip installs it without any index.
const MAKE_WHEEL: &str = r#"
import base64, hashlib, sys, zipfile
files = {
    "tap_secret/__init__.py": "def main():\n    print('tap-secret')\n",
    "tap_secret-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tap-secret\nVersion: 0.1\n",
    "tap_secret-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: sluice-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    "tap_secret-0.1.dist-info/entry_points.txt": "[console_scripts]\ntap-secret = tap_secret:main\n",
}
record = []
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        data = text.encode()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tap_secret-0.1.dist-info/RECORD,,")
    z.writestr("tap_secret-0.1.dist-info/RECORD", "\n".join(record) + "\n")
"#;

#[test]
fn a_secret_in_pip_stays_out_of_the_lock_the_log_and_the_output() {
    const SECRET: &str = "s3cr3t-t0ken-4711";
    let p = Project::new(
        "\
sources:
  secret:
    type: singer
    plugin: tap-secret
    pip: ./wheels-${WHEEL_TOKEN}/tap_secret-0.1-py3-none-any.whl
",
    );
    p.write(".env", format!("WHEEL_TOKEN={SECRET}\n"));
    let wheels = p.path().join(format!("wheels-{SECRET}"));
    std::fs::create_dir_all(&wheels).unwrap();
    let made = Command::new("python3")
        .arg("-c")
        .arg(MAKE_WHEEL)
        .arg(wheels.join("tap_secret-0.1-py3-none-any.whl"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let secret_free = |what: &str, text: &str| {
        assert!(!text.contains(SECRET), "the secret is in {what}:\n{text}");
    };
    let read = |rel: &str| std::fs::read_to_string(p.path().join(rel)).unwrap();

    let out = p.run(&["plugin", "add", "tap-secret"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    secret_free("the output", &format!("{stdout}\n{stderr}"));
    assert!(
        stderr.contains(
            "installing plugin tap-secret (./wheels-***/tap_secret-0.1-py3-none-any.whl)…"
        ),
        "{stderr}"
    );
    runs_as(
        &p.path()
            .join(".sluice/plugins/tap-secret/venv/bin/tap-secret"),
    );
    let lock_text = read("sluice.lock");
    secret_free("sluice.lock", &lock_text);
    secret_free(
        "installed.json",
        &read(".sluice/plugins/tap-secret/installed.json"),
    );
    let log = read(".sluice/logs/plugin-install-tap-secret.log");
    secret_free("the install log", &log);
    assert!(log.contains("wheels-***"), "{log}");
    let entry = &lock(&p)["plugins"]["tap-secret"];
    assert_eq!(entry["pip"], "./wheels-***/tap_secret-0.1-py3-none-any.whl");
    assert_eq!(entry["distribution"], "tap-secret");
    // pip freezes the wheel by its URL, the secret included: redacted.
    let frozen: Vec<&str> = entry["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        frozen
            .iter()
            .any(|r| r.starts_with("tap-secret @ file://") && r.contains("wheels-***")),
        "{frozen:?}"
    );

    // The redacted requirement matches the lock: nothing to do.
    let out = p.ok(&["plugin", "add", "tap-secret"]);
    assert!(
        out.contains("is installed and matches sluice.lock"),
        "{out}"
    );
    let list = p.ok(&["plugin", "list"]);
    secret_free("plugin list", &list);
    assert!(!list.contains("outdated"), "{list}");

    // Another machine: no venv. The redacted frozen line cannot be
    // installed as it is; pip gets the `pip:` requirement in its place.
    std::fs::remove_dir_all(p.path().join(".sluice/plugins")).unwrap();
    let out = p.run(&["plugin", "add", "tap-secret"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("from sluice.lock"), "{stdout}");
    secret_free("the output", &format!("{stdout}\n{stderr}"));
    runs_as(
        &p.path()
            .join(".sluice/plugins/tap-secret/venv/bin/tap-secret"),
    );
    assert_eq!(read("sluice.lock"), lock_text, "the lock did not change");
    let log = read(".sluice/logs/plugin-install-tap-secret.log");
    secret_free("the install log", &log);
    assert!(
        log.contains("pip install -r .sluice/plugins/tap-secret/requirements.txt ./wheels-***/"),
        "{log}"
    );
    secret_free(
        "requirements.txt",
        &read(".sluice/plugins/tap-secret/requirements.txt"),
    );
}

fn runs_as(exe: &Path) {
    let out = Command::new(exe).output().unwrap();
    assert!(out.status.success(), "{}", exe.display());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "tap-secret");
}
