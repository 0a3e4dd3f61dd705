//! Stream state: the bookmark of each stream, written only after the
//! destination committed the data it covers.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sluice_core::connector::StreamState;

use crate::{Result, Store, StoreError, now};

/// A stored state, with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateEntry {
    /// `<source>.<stream>`.
    pub stream_id: String,
    /// The state.
    #[serde(flatten)]
    pub state: StreamState,
    /// When it was written (RFC 3339).
    pub updated_at: String,
}

impl Store {
    /// The committed state of a stream.
    pub fn get_state(&self, stream_id: &str) -> Result<Option<StreamState>> {
        let row: Option<(i64, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT seq, value, run_id FROM state WHERE stream_id = ?1",
                params![stream_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(seq, value, run_id)| {
            Ok(StreamState {
                seq: seq as u64,
                value: serde_json::from_str(&value).map_err(|source| StoreError::Json {
                    path: self.path.clone(),
                    key: stream_id.to_string(),
                    source,
                })?,
                run_id,
            })
        })
        .transpose()
    }

    /// Record a committed state.
    pub fn put_state(&self, stream_id: &str, state: &StreamState) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO state (stream_id, seq, value, run_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (stream_id) DO UPDATE SET seq = excluded.seq, value = excluded.value,
                   run_id = excluded.run_id, updated_at = excluded.updated_at",
                params![stream_id, state.seq as i64, state.value.to_string(), state.run_id, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every stored state, optionally only those whose stream id starts with
    /// `prefix` (a source name followed by `.`, or a whole stream id).
    pub fn list_states(&self, prefix: Option<&str>) -> Result<Vec<StateEntry>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT stream_id, seq, value, run_id, updated_at FROM state ORDER BY stream_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (stream_id, seq, value, run_id, updated_at) = row.map_err(|e| self.err(e))?;
            if !matches_prefix(&stream_id, prefix) {
                continue;
            }
            let value = serde_json::from_str(&value).map_err(|source| StoreError::Json {
                path: self.path.clone(),
                key: stream_id.clone(),
                source,
            })?;
            out.push(StateEntry {
                stream_id,
                state: StreamState {
                    seq: seq as u64,
                    value,
                    run_id,
                },
                updated_at,
            });
        }
        Ok(out)
    }

    /// Forget the state of the matching streams (all when `prefix` is `None`).
    /// Returns how many were cleared.
    pub fn clear_state(&self, prefix: Option<&str>) -> Result<usize> {
        let ids: Vec<String> = self
            .list_states(prefix)?
            .into_iter()
            .map(|e| e.stream_id)
            .collect();
        for id in &ids {
            self.conn
                .execute("DELETE FROM state WHERE stream_id = ?1", params![id])
                .map_err(|e| self.err(e))?;
        }
        Ok(ids.len())
    }
}

/// `shop` matches `shop.orders`; `shop.orders` matches itself and the
/// per-destination states `shop.orders@<destination>`.
fn matches_prefix(stream_id: &str, prefix: Option<&str>) -> bool {
    match prefix {
        None => true,
        Some(p) => {
            stream_id == p
                || stream_id
                    .strip_prefix(p)
                    .is_some_and(|r| r.starts_with(['.', '@']))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn put_get_list_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".sluice/sluice.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get_state("shop.orders").unwrap(), None);
        let s = StreamState {
            seq: 3,
            value: json!({"files": {"a.csv": 1}}),
            run_id: Some("r1".into()),
        };
        store.put_state("shop.orders", &s).unwrap();
        store
            .put_state(
                "shop.customers",
                &StreamState {
                    seq: 1,
                    value: json!({}),
                    run_id: None,
                },
            )
            .unwrap();
        store
            .put_state(
                "shopify.x",
                &StreamState {
                    seq: 1,
                    value: json!({}),
                    run_id: None,
                },
            )
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get_state("shop.orders").unwrap(), Some(s));
        assert_eq!(store.list_states(Some("shop")).unwrap().len(), 2);
        assert_eq!(store.list_states(Some("shop.orders")).unwrap().len(), 1);
        assert_eq!(store.clear_state(Some("shop")).unwrap(), 2);
        assert_eq!(store.list_states(None).unwrap().len(), 1);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
