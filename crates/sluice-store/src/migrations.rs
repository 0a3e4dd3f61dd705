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
    // 3: orchestration: what started a run, its steps and its events.
    "
    ALTER TABLE runs ADD COLUMN job TEXT;
    ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'manual';
                                           -- manual | schedule:<name> | sensor:<name> | webhook
                                           -- | backfill:<id> | from_failure
    ALTER TABLE runs ADD COLUMN parent_run_id TEXT;  -- the run a `--from-failure` re-run repeats
    ALTER TABLE runs ADD COLUMN partition_key TEXT;
    CREATE TABLE run_steps (
        run_id      TEXT NOT NULL,
        step_id     TEXT NOT NULL,
        kind        TEXT NOT NULL,             -- materialize | check
        assets      TEXT NOT NULL,             -- JSON array of asset keys
        status      TEXT NOT NULL,             -- pending | running | success | failed | skipped | cancelled
        attempts    INTEGER NOT NULL DEFAULT 0,
        started_at  TEXT,
        finished_at TEXT,
        duration_ms REAL,
        rows        INTEGER NOT NULL DEFAULT 0,
        bytes       INTEGER NOT NULL DEFAULT 0,
        message     TEXT,
        error       TEXT,
        PRIMARY KEY (run_id, step_id)
    );
    -- No index of its own on run_id: the primary key's index starts with it.
    CREATE TABLE run_events (
        run_id   TEXT NOT NULL,
        seq      INTEGER NOT NULL,             -- 1, 2, … per run
        at       TEXT NOT NULL,
        step_id  TEXT,
        level    TEXT NOT NULL,                -- info | warn | error
        kind     TEXT NOT NULL,                -- step_started, step_retrying, step_failed, log, …
        message  TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    ",
    // 4: the scheduler's claims: each schedule tick and each sensor key is
    // taken by exactly one `sluice serve` (the primary key decides).
    "
    CREATE TABLE schedule_ticks (
        job         TEXT NOT NULL,
        tick        TEXT NOT NULL,             -- the tick's time, RFC 3339 UTC
        claimed_at  TEXT NOT NULL,
        claimed_by  TEXT NOT NULL,             -- host:pid of the `sluice serve`
        run_id      TEXT,
        PRIMARY KEY (job, tick)
    );
    CREATE TABLE sensor_keys (
        sensor      TEXT NOT NULL,             -- `<job>:files`, `<job>:updated`, `<job>:stale`
        key         TEXT NOT NULL,             -- what was seen (a file and its mtime, a materialization)
        claimed_at  TEXT NOT NULL,
        claimed_by  TEXT NOT NULL,
        run_id      TEXT,
        PRIMARY KEY (sensor, key)
    );
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
    // Another process may migrate the same file at the same moment (two
    // `sluice serve` starting): each migration runs in a write transaction
    // that reads the version again first, so it is applied exactly once.
    let sqlite = |e| StoreError::Sqlite {
        path: store.path.clone(),
        source: e,
    };
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = store
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let now: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sqlite)?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)
            .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
            .and_then(|_| tx.commit())
            .map_err(sqlite)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::{RunStatus, StepRecord};

    /// A database as Sluice with schema version 2 left it: one finished run
    /// with a stream and check results.
    fn version_2(path: &std::path::Path) {
        let conn = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (run_id, command, status, started_at, finished_at, summary)
               VALUES ('old', 'run', 'success', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:02.000Z', '{\"seconds\": 2}');
             INSERT INTO runs (run_id, command, status, started_at)
               VALUES ('killed', 'extract shop', 'running', '2026-01-01T00:01:00.000Z');
             INSERT INTO stream_runs (run_id, stream_id, target, status, rows_written, started_at)
               VALUES ('old', 'shop.orders', 'shop.orders', 'success', 7, '2026-01-01T00:00:00.000Z');",
        )
        .unwrap();
    }

    #[test]
    fn a_version_2_store_upgrades_and_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.db");
        version_2(&path);
        let store = Store::open(&path).unwrap();
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let old = store.find_run("old").unwrap().unwrap();
        assert_eq!(old.status, RunStatus::Success);
        assert_eq!(old.trigger, "manual");
        assert_eq!(
            (old.job, old.parent_run_id, old.partition),
            (None, None, None)
        );
        assert_eq!(old.summary, Some(serde_json::json!({"seconds": 2})));
        assert_eq!(store.stream_runs("old").unwrap()[0].1.rows_written, 7);
        // The new tables work on the upgraded file, and a run the old
        // version left running is marked failed.
        store
            .record_step(
                "killed",
                &StepRecord {
                    step_id: "shop.orders".into(),
                    kind: "materialize".into(),
                    status: "running".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            store
                .append_event("killed", None, "info", "log", "hi")
                .unwrap(),
            1
        );
        assert_eq!(store.mark_abandoned().unwrap(), 1);
        assert_eq!(store.run_steps("killed").unwrap()[0].status, "failed");
        drop(store);
        // Opening again applies nothing more.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.all_runs().unwrap().len(), 2);
    }
}
