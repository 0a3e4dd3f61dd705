//! The store: stream state (bookmarks) and run history, in embedded SQLite.
//!
//! One file, `.sluice/sluice.db` in the project. Opened in WAL mode with a
//! busy timeout, so a reader (`sluice state show`) does not block a load.
//!
//! ```text
//!  engine ── get_state / put_state(key, state)  put only after the destination committed
//!         ── mark_abandoned / start_run / record_stream / finish_run
//!  CLI    ── list_states / get_state / put_state (manual)        (`sluice state …`)
//!  orchestrator ── begin_run / record_step / append_event / finish_run
//!  CLI    ── list_runs_filtered / find_run / run_steps / run_events / stream_runs  (`sluice runs …`)
//!         ── all_runs / all_steps / all_events / all_stream_runs     (`sluice.history.*` in `sluice sql`)
//!  serve  ── claim_tick / set_tick_run / last_tick / claim_sensor_key / last_materialization
//!  checks ── record_check / check_history / last_check_run / previous_observed  (`sluice check`)
//! ```
//!
//! Schema changes are numbered migrations in [`migrations`], applied in order
//! and recorded in SQLite's `user_version`.
//!
//! Secrets never reach the store: callers pass error texts through the
//! project's redaction before recording them.

mod checks;
mod migrations;
mod runs;
mod schedule;
mod state;
mod steps;
mod streams;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

pub use checks::CheckRecord;
pub use runs::{MIN_RUN_PREFIX, RunRecord, RunStart, RunStatus};
pub use state::StateEntry;
pub use steps::{EventRecord, StepRecord};
pub use streams::{StoredStreamRun, StreamRunRecord};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("State store `{path}`: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// Stored JSON could not be read back.
    #[error("State store `{path}`: stored value for `{key}` is not valid JSON: {source}")]
    Json {
        /// The database file.
        path: PathBuf,
        /// Which entry.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The database was written by a newer Sluice.
    #[error(
        "State store `{path}` has schema version {found}, newer than this Sluice understands ({known})"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Version found.
        found: i64,
        /// Newest version known.
        known: i64,
    },
    /// A run id prefix matches more than one run.
    #[error("Run id prefix `{prefix}` matches {matches} runs: {}", some_ids(.candidates, .matches))]
    AmbiguousRun {
        /// What was given.
        prefix: String,
        /// How many runs it matches.
        matches: usize,
        /// Some of them (the newest first).
        candidates: Vec<String>,
    },
}

impl sluice_core::error::Classify for StoreError {
    fn domain(&self) -> sluice_core::error::ErrorDomain {
        match self {
            StoreError::TooNew { .. } | StoreError::AmbiguousRun { .. } => {
                sluice_core::error::ErrorDomain::User
            }
            _ => sluice_core::error::ErrorDomain::External,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            StoreError::TooNew { .. } => Some("upgrade Sluice, or point `--project-dir` at another project".into()),
            StoreError::Sqlite { .. } => Some("check that `.sluice/` is writable and not on a network file system that lacks locking".into()),
            StoreError::Json { .. } => Some("reset the entry with `sluice state clear`".into()),
            StoreError::AmbiguousRun { .. } => Some(
                "give more characters of the run id (`sluice runs` lists the runs)".into(),
            ),
        }
    }
}

/// `` `a`, `b`, … `` for an error message.
fn some_ids(ids: &[String], of: &usize) -> String {
    let mut text = ids
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if *of > ids.len() {
        text.push_str(", …");
    }
    text
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store of one project.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent() {
            // A missing parent shows up as SQLite's "unable to open" below, with the path.
            let _ = std::fs::create_dir_all(parent);
        }
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        migrations::migrate(&mut store)?;
        Ok(store)
    }

    /// An in-memory store (tests, dry runs).
    pub fn in_memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let mut store = Store { conn, path };
        migrations::migrate(&mut store)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// Current time as RFC 3339 (UTC, milliseconds).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
