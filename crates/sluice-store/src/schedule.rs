//! The scheduler's claims. Several `sluice serve` processes may evaluate
//! the same schedule tick or see the same new file: each inserts a claim,
//! and the primary key lets exactly one of them win; only the winner runs
//! the job. SQLite serializes writers across processes on one machine.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, now};

impl Store {
    /// Claim `tick` of `job` for `by`; `true` when this caller won it.
    pub fn claim_tick(&self, job: &str, tick: &str, by: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO schedule_ticks (job, tick, claimed_at, claimed_by)
                 VALUES (?1, ?2, ?3, ?4)",
                params![job, tick, now(), by],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Note the run a claimed tick started.
    pub fn set_tick_run(&self, job: &str, tick: &str, run_id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE schedule_ticks SET run_id = ?3 WHERE job = ?1 AND tick = ?2",
                params![job, tick, run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The newest claimed tick of `job` (RFC 3339), if any.
    pub fn last_tick(&self, job: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT max(tick) FROM schedule_ticks WHERE job = ?1",
                params![job],
                |r| r.get::<_, Option<String>>(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Every claimed tick of `job`, oldest first: (tick, claimed by, run id).
    pub fn ticks(&self, job: &str) -> Result<Vec<(String, String, Option<String>)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT tick, claimed_by, run_id FROM schedule_ticks WHERE job = ?1 ORDER BY tick",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Claim what sensor `sensor` saw (`key`) for `by`; `true` when this
    /// caller won it (nobody saw it before).
    pub fn claim_sensor_key(&self, sensor: &str, key: &str, by: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO sensor_keys (sensor, key, claimed_at, claimed_by)
                 VALUES (?1, ?2, ?3, ?4)",
                params![sensor, key, now(), by],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Note the run that claimed sensor keys started.
    pub fn set_sensor_run(&self, sensor: &str, keys: &[String], run_id: &str) -> Result<()> {
        for key in keys {
            self.conn
                .execute(
                    "UPDATE sensor_keys SET run_id = ?3 WHERE sensor = ?1 AND key = ?2",
                    params![sensor, key, run_id],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// When asset `key` was last made by a successful step (RFC 3339); with
    /// `except_job`, by a run of another job that changed something (a load
    /// that read no new rows made nothing).
    pub fn last_materialization(
        &self,
        key: &str,
        except_job: Option<&str>,
    ) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT max(s.finished_at) FROM run_steps s
                   JOIN runs r ON r.run_id = s.run_id, json_each(s.assets) a
                 WHERE s.kind = 'materialize' AND s.status = 'success' AND a.value = ?1
                   AND (?2 IS NULL OR ((r.job IS NULL OR r.job != ?2)
                                       AND coalesce(s.message, '') != '0 rows'))",
                params![key, except_job],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use crate::{RunStart, StepRecord, Store};

    #[test]
    fn a_tick_and_a_sensor_key_are_won_once() {
        let store = Store::in_memory().unwrap();
        let tick = "2026-11-25T06:00:00Z";
        assert!(store.claim_tick("nightly", tick, "a:1").unwrap());
        assert!(!store.claim_tick("nightly", tick, "b:2").unwrap());
        assert!(store.claim_tick("other", tick, "b:2").unwrap());
        store.set_tick_run("nightly", tick, "r1").unwrap();
        assert_eq!(store.last_tick("nightly").unwrap().as_deref(), Some(tick));
        assert_eq!(
            store.ticks("nightly").unwrap(),
            [(tick.to_string(), "a:1".to_string(), Some("r1".to_string()))]
        );
        assert_eq!(store.last_tick("nobody").unwrap(), None);

        assert!(store.claim_sensor_key("j:files", "a.csv@1", "a:1").unwrap());
        assert!(!store.claim_sensor_key("j:files", "a.csv@1", "b:2").unwrap());
        assert!(store.claim_sensor_key("j:files", "a.csv@2", "b:2").unwrap());
    }

    #[test]
    fn the_last_materialization_of_an_asset_is_its_newest_successful_step() {
        let store = Store::in_memory().unwrap();
        store
            .begin_run(&RunStart {
                run_id: "r1",
                command: "run",
                job: None,
                trigger: "manual",
                parent_run_id: None,
                partition: None,
            })
            .unwrap();
        let step = |id: &str, status: &str, at: &str| StepRecord {
            step_id: id.to_string(),
            kind: "materialize".into(),
            assets: vec!["shop.orders".into(), "shop.items".into()],
            status: status.into(),
            finished_at: Some(at.into()),
            ..Default::default()
        };
        store
            .record_step("r1", &step("tap", "success", "2026-11-25T01:00:00Z"))
            .unwrap();
        store
            .record_step("r1", &step("tap2", "failed", "2026-11-25T02:00:00Z"))
            .unwrap();
        assert_eq!(
            store
                .last_materialization("shop.items", None)
                .unwrap()
                .as_deref(),
            Some("2026-11-25T01:00:00Z")
        );
        assert_eq!(store.last_materialization("nope", None).unwrap(), None);
        // Run r1 has no job: another job's sensor sees it; its own job's
        // runs do not count for it.
        assert!(
            store
                .last_materialization("shop.items", Some("daily"))
                .unwrap()
                .is_some()
        );
        store
            .begin_run(&RunStart {
                run_id: "r2",
                command: "run daily",
                job: Some("daily"),
                trigger: "manual",
                parent_run_id: None,
                partition: None,
            })
            .unwrap();
        store
            .record_step("r2", &step("tap3", "success", "2026-11-25T03:00:00Z"))
            .unwrap();
        assert_eq!(
            store
                .last_materialization("shop.items", Some("daily"))
                .unwrap()
                .as_deref(),
            Some("2026-11-25T01:00:00Z")
        );
    }
}
