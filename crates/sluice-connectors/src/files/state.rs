//! The state a `files` stream keeps between runs.
//!
//! ```json
//! {"version": 1,
//!  "files": {"data/orders1.csv": {"size": 123, "mtime_ns": 1700000000000000000, "rows": 1000}},
//!  "cursor": {"column": "updated_at", "type": "…", "value": "…", "at_value": […], "at_value_complete": true}}
//! ```
//!
//! `files` holds every file loaded and still present, keyed by its path
//! relative to the project; `rows` is how many rows it gave. A file whose
//! size and modification time match its entry is unchanged.
//! `cursor` belongs to [`crate::cursor::CursorTracker`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::connector::ConnectorError;

use super::listing::FileEntry;

/// State format version written today.
const VERSION: u32 = 1;

/// A `files` stream's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct FilesState {
    #[serde(default)]
    pub(crate) version: u32,
    #[serde(default)]
    pub(crate) files: BTreeMap<String, FileMark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<Value>,
}

/// What was loaded from one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileMark {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) rows: u64,
}

impl FilesState {
    /// The state given back by the engine (`None`: start from scratch).
    pub(crate) fn parse(stream: &str, value: Option<&Value>) -> Result<Self, ConnectorError> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let state: Self = serde_json::from_value(value.clone()).map_err(|e| {
            ConnectorError::config(
                format!("The state of stream `{stream}` is not a `files` state: {e}"),
                Some("reload the stream from scratch with `--full-refresh`".to_string()),
            )
        })?;
        if state.version > VERSION {
            return Err(ConnectorError::config(
                format!(
                    "The state of stream `{stream}` has version {}, newer than this Sluice understands ({VERSION})",
                    state.version
                ),
                Some("upgrade Sluice, or reload the stream with `--full-refresh`".to_string()),
            ));
        }
        Ok(state)
    }

    /// Whether `file` is exactly as it was loaded.
    pub(crate) fn unchanged(&self, file: &FileEntry) -> bool {
        self.files
            .get(&file.rel)
            .is_some_and(|m| m.size == file.size && m.mtime_ns == file.mtime_ns)
    }

    /// Forget files that no longer exist.
    pub(crate) fn prune(&mut self, files: &[FileEntry]) {
        self.files
            .retain(|rel, _| files.iter().any(|f| &f.rel == rel));
    }

    /// Record a file as loaded.
    pub(crate) fn loaded(&mut self, file: &FileEntry, rows: u64) {
        let mark = FileMark {
            size: file.size,
            mtime_ns: file.mtime_ns,
            rows,
        };
        self.files.insert(file.rel.clone(), mark);
    }

    /// As JSON, for a checkpoint.
    pub(crate) fn to_json(&self) -> Value {
        let mut out = self.clone();
        out.version = VERSION;
        serde_json::to_value(out).unwrap_or(Value::Null)
    }
}
