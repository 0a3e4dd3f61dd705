//! Numbered schema migrations, applied in order; `PRAGMA user_version`
//! records the last one applied.

use crate::{Result, Store, StoreError};

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: stream state and run history.
    "
    CREATE TABLE state (
        stream_id   TEXT PRIMARY KEY,          -- `<source>.<stream>`
        seq         INTEGER NOT NULL,          -- checkpoint sequence number
        value       TEXT NOT NULL,             -- the source's state, JSON
        run_id      TEXT,                      -- run that committed it
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        command     TEXT NOT NULL,
        status      TEXT NOT NULL,             -- running | success | failed | cancelled
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        error       TEXT,
        summary     TEXT                       -- JSON
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE stream_runs (
        run_id           TEXT NOT NULL REFERENCES runs (run_id),
        stream_id        TEXT NOT NULL,
        target           TEXT NOT NULL,        -- table name or destination path
        status           TEXT NOT NULL,
        rows_read        INTEGER NOT NULL DEFAULT 0,
        rows_written     INTEGER NOT NULL DEFAULT 0,
        rows_quarantined INTEGER NOT NULL DEFAULT 0,
        rows_skipped     INTEGER NOT NULL DEFAULT 0,
        bytes_read       INTEGER NOT NULL DEFAULT 0,
        files            INTEGER NOT NULL DEFAULT 0,
        commits          INTEGER NOT NULL DEFAULT 0,
        started_at       TEXT NOT NULL,
        finished_at      TEXT,
        error            TEXT,
        PRIMARY KEY (run_id, stream_id)
    );
    CREATE INDEX stream_runs_target ON stream_runs (target, finished_at);
    ",
    // 2: data-quality check results.
    "
    CREATE TABLE check_results (
        run_id        TEXT NOT NULL,             -- the run (load or `sluice check`)
        check_id      TEXT NOT NULL,             -- `<table>.<name>`
        table_name    TEXT NOT NULL,
        kind          TEXT NOT NULL,
        phase         TEXT NOT NULL,             -- load | table | dbt
        status        TEXT NOT NULL,             -- pass | warn | fail | error
        severity      TEXT NOT NULL,
        observed      TEXT,                      -- JSON
        failing_rows  INTEGER,
        total_rows    INTEGER,
        message       TEXT NOT NULL,
        samples       TEXT,                      -- JSON array (redacted by the caller)
        duration_ms   REAL NOT NULL,
        checked_at    TEXT NOT NULL,
        result        TEXT NOT NULL              -- the whole result, JSON
    );
    CREATE INDEX check_results_check ON check_results (check_id, checked_at);
    CREATE INDEX check_results_run ON check_results (run_id);
    ",
];

pub(crate) fn migrate(store: &mut Store) -> Result<()> {
    let version: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| store.err(e))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            path: store.path.clone(),
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = store.conn.transaction().map_err(|e| StoreError::Sqlite {
            path: store.path.clone(),
            source: e,
        })?;
        tx.execute_batch(sql)
            .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
            .and_then(|_| tx.commit())
            .map_err(|e| StoreError::Sqlite {
                path: store.path.clone(),
                source: e,
            })?;
    }
    Ok(())
}
