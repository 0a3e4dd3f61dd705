//! `sluice.lock`: the exact packages each pip-installed plugin runs with.
//!
//! Committed with the project, so that an install on another machine gets
//! the same versions: per plugin, the pip requirement it was resolved from,
//! the version of the distribution that requirement named, and the full
//! `pip freeze` of its venv. Installing from the lock is
//! `pip install -r <frozen>`; a requirement in `sluice.yml` (or given to
//! `sluice plugin add --pip`) that differs from the locked one is resolved
//! again and re-locked.
//!
//! ```json
//! {
//!   "version": 1,
//!   "plugins": {
//!     "target-jsonl": {
//!       "pip": "target-jsonl",
//!       "distribution": "target-jsonl",
//!       "version": "0.1.4",
//!       "python": "3.11.7",
//!       "requirements": ["adjust-precision-for-schema==0.3.3", "…", "target-jsonl==0.1.4"]
//!     }
//!   }
//! }
//! ```
//!
//! Each venv also keeps the same record of what it holds,
//! `.sluice/plugins/<name>/installed.json`, so a changed lock (after a
//! `git pull`) is noticed and the venv rebuilt from it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::output::UserError;

/// Name of the lock file, in the project folder.
pub const LOCK_FILE: &str = "sluice.lock";

/// The lock file's format version this Sluice writes and reads.
const FORMAT: u32 = 1;

/// The contents of `sluice.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Format version (1).
    pub version: u32,
    /// Locked plugins by name, sorted so that diffs stay small.
    #[serde(default)]
    pub plugins: BTreeMap<String, LockedPlugin>,
}

impl Default for Lock {
    fn default() -> Lock {
        Lock {
            version: FORMAT,
            plugins: BTreeMap::new(),
        }
    }
}

/// What one plugin's venv holds (in `sluice.lock`, and in the venv's own
/// `installed.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPlugin {
    /// The pip requirement it was resolved from (`target-jsonl`,
    /// `tap-foo==1.2`, a git URL…).
    pub pip: String,
    /// The distribution that requirement installs (its name on PyPI).
    pub distribution: String,
    /// The installed version of that distribution.
    pub version: String,
    /// The Python the venv was made with (for information: a frozen set may
    /// not install on a very different Python).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// `pip freeze` of the venv: every package, pinned.
    pub requirements: Vec<String>,
}

/// The lock file of the project in `project_dir`.
pub fn lock_path(project_dir: &Path) -> PathBuf {
    project_dir.join(LOCK_FILE)
}

impl Lock {
    /// Read `sluice.lock` (an empty lock when there is none).
    pub fn read(project_dir: &Path) -> Result<Lock> {
        let path = lock_path(project_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lock::default()),
            Err(e) => return Err(e).with_context(|| format!("Cannot read `{}`", path.display())),
        };
        let lock: Lock = serde_json::from_str(&text).map_err(|e| {
            UserError::error(
                format!("`{}` is not a valid lock file: {e}", path.display()),
                Some(
                    "restore it from version control, or delete it and run `sluice plugin add NAME` for each plugin to lock them again"
                        .to_string(),
                ),
            )
        })?;
        if lock.version > FORMAT {
            return Err(UserError::error(
                format!(
                    "`{}` has format version {}; this Sluice reads version {FORMAT}",
                    path.display(),
                    lock.version
                ),
                Some("upgrade Sluice".to_string()),
            ));
        }
        Ok(lock)
    }

    /// Write `sluice.lock` atomically (a temp file renamed over it).
    pub fn write(&self, project_dir: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        write_atomic(&lock_path(project_dir), text.as_bytes())
    }
}

/// Write `contents` to `path` through a temp file in the same folder and a
/// rename, so a reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("Cannot write `{}`", path.display()))
    })
}

/// The normalized name of a distribution (PEP 503: lower case, runs of `-`,
/// `_` and `.` become one `-`), for comparing names across spellings.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            dash = true;
        } else {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The distribution a pip requirement names, when it starts with one
/// (`tap-foo[s3]>=1.2 ; python_version>"3"` → `tap-foo`, `tap-foo @ git+…`
/// → `tap-foo`); `None` for a bare URL or path.
pub fn requirement_name(requirement: &str) -> Option<String> {
    let r = requirement.trim();
    let end = r
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(r.len());
    let (name, rest) = r.split_at(end);
    let rest = rest.trim_start();
    let looks_like_path = name.is_empty()
        || rest.starts_with(['/', ':', '+'])
        || name.starts_with('.')
        || name.ends_with(".whl")
        || name.ends_with(".tar.gz")
        || name.ends_with(".zip");
    (!looks_like_path).then(|| name.to_string())
}

/// The version `pip freeze` pinned `distribution` at (`name==1.2.3`, or the
/// whole line after `@` for a direct reference).
pub fn frozen_version(requirements: &[String], distribution: &str) -> Option<String> {
    let want = normalize(distribution);
    requirements.iter().find_map(|line| {
        let (name, version) = line.split_once("==").or_else(|| line.split_once(" @ "))?;
        (normalize(name) == want).then(|| version.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize("Tap_CSV.folder"), "tap-csv-folder");
        assert_eq!(
            requirement_name("tap-foo[s3]>=1.2 ; python_version>'3'").as_deref(),
            Some("tap-foo")
        );
        assert_eq!(
            requirement_name("tap-foo @ git+https://example.com/x.git").as_deref(),
            Some("tap-foo")
        );
        assert_eq!(
            requirement_name("target-jsonl").as_deref(),
            Some("target-jsonl")
        );
        assert_eq!(requirement_name("./plugins/tap-x"), None);
        assert_eq!(requirement_name("git+https://example.com/x.git"), None);
        assert_eq!(requirement_name("/abs/tap.whl"), None);
    }

    #[test]
    fn versions_from_freeze() {
        let freeze = vec![
            "singer-python==5.8.0".to_string(),
            "target-jsonl==0.1.4".to_string(),
            "tap-x @ file:///tmp/tap-x".to_string(),
        ];
        assert_eq!(
            frozen_version(&freeze, "Target_JSONL").as_deref(),
            Some("0.1.4")
        );
        assert_eq!(
            frozen_version(&freeze, "tap-x").as_deref(),
            Some("file:///tmp/tap-x")
        );
        assert_eq!(frozen_version(&freeze, "nope"), None);
    }

    #[test]
    fn round_trip_is_atomic_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Lock::read(dir.path()).unwrap(), Lock::default());
        let mut lock = Lock::default();
        for name in ["b", "a"] {
            lock.plugins.insert(
                name.to_string(),
                LockedPlugin {
                    pip: name.to_string(),
                    distribution: name.to_string(),
                    version: "1.0".into(),
                    python: None,
                    requirements: vec![format!("{name}==1.0")],
                },
            );
        }
        lock.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(lock_path(dir.path())).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap());
        assert_eq!(Lock::read(dir.path()).unwrap(), lock);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(lock_path(dir.path()), r#"{"version": 9, "plugins": {}}"#).unwrap();
        let e = Lock::read(dir.path()).unwrap_err();
        assert!(e.to_string().contains("format version 9"), "{e}");
    }
}
