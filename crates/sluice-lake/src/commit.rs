//! Commits that carry their checkpoint.
//!
//! Every commit Sluice makes for a stream holds, in the same atomic log entry:
//! - a Delta *app transaction* `txn {appId: "sluice:<source>.<stream>", version: seq}`
//!   — the protocol's own idempotency marker, cheap to read from a snapshot;
//! - `commitInfo.sluice = {run_id, stream, seq, state, position, rows}` — the
//!   source state itself and where it stands, for people and for recovery.

use deltalake::DeltaTable;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::DeltaOperation;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{LakeError, Result};

/// Key of Sluice's entry in `commitInfo`.
pub const SLUICE_COMMIT_KEY: &str = "sluice";

/// How far back the history is searched for a checkpoint's commit.
const HISTORY_LIMIT: usize = 1_000;

/// What Sluice records in each of its commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitMeta {
    /// The run that committed.
    pub run_id: String,
    /// `<source>.<stream>`.
    pub stream: String,
    /// Checkpoint sequence number.
    pub seq: u64,
    /// The source's state after this commit.
    pub state: serde_json::Value,
    /// The position, for people.
    pub position: String,
    /// Rows this commit added (or merged).
    pub rows: u64,
}

/// The app-transaction id of a stream.
pub fn app_id(stream_id: &str) -> String {
    format!("sluice:{stream_id}")
}

/// Commit `actions` to `table` (which must be loaded), with `meta` when the
/// commit covers a checkpoint. Returns the new version; `table` is refreshed.
pub(crate) async fn commit(
    table: &mut DeltaTable,
    actions: Vec<Action>,
    operation: DeltaOperation,
    meta: Option<&CommitMeta>,
) -> Result<u64> {
    let name = table.table_url().to_string();
    let props = commit_properties(meta)?;
    let snapshot = table.snapshot().map_err(|e| LakeError::delta(&name, e))?;
    let finalized = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(|e| LakeError::delta(&name, e))?;
    let version = finalized.version();
    table
        .update_state()
        .await
        .map_err(|e| LakeError::delta(&name, e))?;
    Ok(version as u64)
}

/// Commit properties that carry `meta` (txn + commitInfo), or the defaults.
pub(crate) fn commit_properties(meta: Option<&CommitMeta>) -> Result<CommitProperties> {
    let mut props = CommitProperties::default();
    if let Some(meta) = meta {
        let value = serde_json::to_value(meta).map_err(|e| LakeError::Unsupported {
            table: meta.stream.clone(),
            message: format!("checkpoint is not serializable: {e}"),
        })?;
        props = props
            .with_metadata([(SLUICE_COMMIT_KEY.to_string(), value)])
            .with_application_transaction(Transaction::new(app_id(&meta.stream), meta.seq as i64));
    }
    Ok(props)
}

/// The checkpoint committed for `stream_id` in `table`, if any.
pub(crate) async fn committed_meta(
    table: &DeltaTable,
    stream_id: &str,
) -> Result<Option<CommitMeta>> {
    let name = table.table_url().to_string();
    let snapshot = table.snapshot().map_err(|e| LakeError::delta(&name, e))?;
    let Some(version) = snapshot
        .transaction_version(table.log_store().as_ref(), app_id(stream_id))
        .await
        .map_err(|e| LakeError::delta(&name, e))?
    else {
        return Ok(None);
    };
    let mut history = table.history(Some(HISTORY_LIMIT));
    while let Some(info) = history
        .try_next()
        .await
        .map_err(|e| LakeError::delta(&name, e))?
    {
        let Some(value) = info.info.get(SLUICE_COMMIT_KEY) else {
            continue;
        };
        let Ok(meta) = serde_json::from_value::<CommitMeta>(value.clone()) else {
            continue;
        };
        if meta.stream == stream_id && meta.seq as i64 == version {
            return Ok(Some(meta));
        }
    }
    Err(LakeError::Unsupported {
        table: name,
        message: format!(
            "the table records checkpoint {version} of stream `{stream_id}`, but its commit is not among the last {HISTORY_LIMIT} commits (log cleaned up?)"
        ),
    })
}

/// The newest commit of `table` made by Sluice for any stream, with its timestamp (ms).
pub(crate) async fn last_sluice_commit(
    table: &DeltaTable,
) -> Result<Option<(CommitMeta, Option<i64>)>> {
    let name = table.table_url().to_string();
    let mut history = table.history(Some(20));
    while let Some(info) = history
        .try_next()
        .await
        .map_err(|e| LakeError::delta(&name, e))?
    {
        if let Some(meta) = info
            .info
            .get(SLUICE_COMMIT_KEY)
            .and_then(|v| serde_json::from_value::<CommitMeta>(v.clone()).ok())
        {
            return Ok(Some((meta, info.timestamp)));
        }
    }
    Ok(None)
}
