//! Which files a stream reads: glob expansion and file fingerprints.
//!
//! Patterns are relative to the project folder (absolute ones are allowed).
//! Every match that is a regular file is listed once, sorted by its path
//! relative to the project (`/`-separated), with its size and modification
//! time: the fingerprint incremental replication compares with the state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sluice_core::connector::ConnectorError;

/// One matched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// Path relative to the project folder, `/`-separated (absolute when
    /// outside it): the key in the state and the name in messages.
    pub(crate) rel: String,
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Size in bytes when listed (reads stop there).
    pub(crate) size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub(crate) mtime_ns: i64,
}

/// Every file matching `patterns`, sorted by relative path.
pub(crate) fn list_files(
    project_dir: &Path,
    patterns: &[String],
) -> Result<Vec<FileEntry>, ConnectorError> {
    let mut found: BTreeMap<String, FileEntry> = BTreeMap::new();
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() {
            pattern.clone()
        } else {
            let base = glob::Pattern::escape(&project_dir.to_string_lossy());
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                pattern.trim_start_matches("./")
            )
        };
        let paths = glob::glob_with(&full, options).map_err(|e| {
            ConnectorError::config(
                format!("`{pattern}` is not a valid glob pattern: {}", e.msg),
                Some("use `*` for any name part, `**` for any folders, `?` for one character, `[abc]` for one of a set".to_string()),
            )
        })?;
        for entry in paths {
            let path = entry.map_err(|e| {
                let path = e.path().to_path_buf();
                let rel = relative(project_dir, &path);
                ConnectorError::config(
                    format!(
                        "Cannot list `{rel}` while expanding `{pattern}`: {}",
                        e.error()
                    ),
                    Some("check the folder's permissions".to_string()),
                )
            })?;
            let meta = match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) => {
                    return Err(ConnectorError::config(
                        format!("Cannot read `{}`: {e}", relative(project_dir, &path)),
                        Some("check the file's permissions".to_string()),
                    ));
                }
            };
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let rel = relative(project_dir, &path);
            found.insert(
                rel.clone(),
                FileEntry {
                    rel,
                    path,
                    size: meta.len(),
                    mtime_ns,
                },
            );
        }
    }
    Ok(found.into_values().collect())
}

/// `path` relative to `base`, `/`-separated; the absolute path when outside.
fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if rel.is_absolute() {
        rel.to_string_lossy().into_owned()
    } else {
        parts.join("/")
    }
}

/// `8.4 MB`: bytes for people (decimal units).
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1,000,000`: counts for people.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn lists_sorted_relative_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/sub")).unwrap();
        for f in ["data/b.csv", "data/a.csv", "data/sub/c.csv", "data/x.txt"] {
            std::fs::write(dir.path().join(f), "id\n1\n").unwrap();
        }
        let files = list_files(dir.path(), &["data/*.csv".into(), "data/a.csv".into()]).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(names, ["data/a.csv", "data/b.csv"]);
        assert_eq!(files[0].size, 5);
        assert!(files[0].mtime_ns > 0);
        let deep = list_files(dir.path(), &["data/**/*.csv".into()]).unwrap();
        assert_eq!(deep.len(), 3);
        assert!(list_files(dir.path(), &["data/[".into()]).is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(8_400_000), "8.4 MB");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
