//! A throwaway project and helpers to run `sluice` in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A project folder in a temp dir.
pub struct Project {
    pub dir: tempfile::TempDir,
}

/// The malformed-input fixtures shared with the connector tests.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sluice-connectors/tests/fixtures/files")
        .join(name)
}

impl Project {
    /// A project with this `sluice.yml`.
    pub fn new(yml: &str) -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
        };
        p.write("sluice.yml", yml);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file (creating folders).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Copy a fixture into the project.
    pub fn copy_fixture(&self, name: &str, rel: &str) {
        self.write(rel, std::fs::read(fixture(name)).unwrap());
    }

    /// The command, pointed at this project.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.arg("--project-dir")
            .arg(self.path())
            .arg("--no-progress")
            .args(args)
            .env_remove("SLUICE_LOG")
            .env_remove("SLUICE_PROJECT_DIR")
            .env("NO_COLOR", "1");
        c
    }

    /// Run; return the output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run; assert success; return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`sluice {}` failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run; assert failure with `code`; return stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "`sluice {}`\nstdout:\n{}\nstderr:\n{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// Run with `--json`; parse stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run(&a);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// `sluice run --json` and the outcome of stream `id`.
    pub fn run_json(&self, args: &[&str], id: &str) -> serde_json::Value {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        let summary = self.json(&a);
        summary["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no stream {id} in {summary:#}"))
    }

    /// Query; rows as CSV cells (header dropped).
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let out = self.ok(&["sql", sql, "--format", "csv"]);
        out.lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    }

    /// A single number from a query.
    pub fn scalar(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        rows[0][0]
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {rows:?}"))
    }
}

/// `id,name,amount` rows `from..to`.
pub fn orders_csv(from: u64, to: u64) -> String {
    let mut s = String::from("id,name,amount\n");
    for i in from..to {
        s.push_str(&format!("{i},name {i},{}.5\n", i % 100));
    }
    s
}

/// The folder `scripts/test.sh` installs the Python test tools into:
/// `$SLUICE_TEST_VENV`, default `~/.cache/sluice-test-venv`.
pub fn test_venv() -> PathBuf {
    match std::env::var_os("SLUICE_TEST_VENV") {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
            .join(".cache/sluice-test-venv"),
    }
}

/// A real Singer tap or target from PyPI, by its executable's name
/// (`tap-csv-folder`, `target-jsonl`, `target-csv`; the list is
/// `scripts/test-plugins.txt`). `scripts/test.sh` installs each into its own
/// venv, `$SLUICE_TEST_VENV/plugins/<name>/`, and links it as
/// `$SLUICE_TEST_VENV/bin/<name>`, which this returns.
pub fn singer_bin(name: &str) -> PathBuf {
    let exe = test_venv().join("bin").join(name);
    assert!(
        exe.is_file(),
        "Singer plugin `{name}` is not installed at {}: run `scripts/test.sh` (or `FAST=1 scripts/test.sh`) \
         once to install the test plugins listed in scripts/test-plugins.txt",
        exe.display()
    );
    exe
}

/// Copy a folder tree (a fixture project into a temp dir).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
