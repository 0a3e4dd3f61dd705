//! The destination half of the contract as an executable check.
//!
//! [`check_destination`] drives any [`Destination`] the way the engine does
//! and names the first rule it breaks:
//!
//! | rule | what must hold |
//! |---|---|
//! | `check` | `check()` succeeds |
//! | `no-table-yet` | a tracked destination reports `NoTable` before the first write |
//! | `unsupported-mode` | `open` with a mode `supports()` denies fails with `Unsupported` |
//! | `commit-covers-checkpoint` | `finish()` commits the last offered checkpoint, with the rows written |
//! | `visible-after-commit` | committed rows are readable (by the caller's reader) |
//! | `committed-state` | a tracked destination reports the committed checkpoint back |
//! | `abort-invisible` | rows written then aborted never become visible |
//! | `refuse-unsafe-schema` | a type change the rules refuse fails with `SchemaRefused` |
//! | `quarantine` | quarantined rows are accepted and counted in the commit |
//! | `known-schema` | `table_schema()` returns the table's columns after a commit |

use std::future::Future;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;
use sluice_core::TableName;
use sluice_core::config::WriteMode;
use sluice_core::connector::{
    Checkpoint, CommittedState, ConnectorError, Destination, WriteRequest,
};
use sluice_core::quarantine::{QuarantineBuilder, QuarantinedRow};

use super::ContractViolation;

/// What the caller knows about the destination.
pub struct DestinationCheck<'a, R> {
    /// Table used by the check (it must not exist yet).
    pub table: TableName,
    /// True when the destination records checkpoints with the data (exactly-once).
    pub tracks_state: bool,
    /// Counts the visible rows of a table.
    pub count_rows: &'a R,
}

fn violation(rule: &'static str, detail: impl Into<String>) -> ContractViolation {
    ContractViolation {
        stream: "conformance.t".into(),
        rule,
        detail: detail.into(),
    }
}

fn batch(ids: &[i64]) -> RecordBatch {
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap_or_else(|_| RecordBatch::new_empty(Arc::new(Schema::empty())))
}

fn request(table: &TableName, mode: WriteMode, run: &str) -> WriteRequest {
    WriteRequest {
        table: table.clone(),
        mode,
        primary_key: vec!["id".into()],
        full_refresh: false,
        run_id: run.into(),
        stream_id: "conformance.t".into(),
        evolution: Default::default(),
        on_error: sluice_core::config::OnError::Fail,
    }
}

fn cp(n: u64) -> Checkpoint {
    Checkpoint {
        state: json!({ "n": n }),
        position: format!("checkpoint {n}"),
    }
}

/// Run the destination contract.
pub async fn check_destination<R, F>(
    dest: &dyn Destination,
    c: DestinationCheck<'_, R>,
) -> Result<(), ContractViolation>
where
    R: Fn(TableName) -> F,
    F: Future<Output = u64>,
{
    let t = &c.table;
    dest.check()
        .await
        .map_err(|e| violation("check", e.to_string()))?;
    let before = dest
        .committed_state(t, "conformance.t")
        .await
        .map_err(|e| violation("no-table-yet", e.to_string()))?;
    let expected_before = if c.tracks_state {
        CommittedState::NoTable
    } else {
        CommittedState::NotTracked
    };
    if before != expected_before {
        return Err(violation(
            "no-table-yet",
            format!("got {before:?}, expected {expected_before:?}"),
        ));
    }
    for mode in [WriteMode::Append, WriteMode::Overwrite, WriteMode::Merge] {
        if !dest.supports(mode) {
            match dest.open(request(t, mode, "r0")).await {
                Err(ConnectorError::Unsupported { .. }) => {}
                Err(e) => {
                    return Err(violation(
                        "unsupported-mode",
                        format!("`{mode}`: wrong error: {e}"),
                    ));
                }
                Ok(_) => {
                    return Err(violation(
                        "unsupported-mode",
                        format!("`{mode}` is not supported but `open` accepted it"),
                    ));
                }
            }
        }
    }

    // Two checkpoints; finish commits the second.
    let mut w = dest
        .open(request(t, WriteMode::Append, "r1"))
        .await
        .map_err(|e| violation("commit-covers-checkpoint", e.to_string()))?;
    let err = |e: ConnectorError| violation("commit-covers-checkpoint", e.to_string());
    w.write(batch(&[1, 2])).await.map_err(err)?;
    let mut committed = Vec::new();
    committed.extend(w.checkpoint(1, &cp(1)).await.map_err(err)?);
    w.write(batch(&[3])).await.map_err(err)?;
    let mut q = QuarantineBuilder::default();
    q.push(&QuarantinedRow {
        reason: "conformance".into(),
        ..Default::default()
    });
    w.quarantine(
        q.finish()
            .map_err(|e| violation("quarantine", e.to_string()))?,
    )
    .await
    .map_err(|e| violation("quarantine", e.to_string()))?;
    committed.extend(w.checkpoint(2, &cp(2)).await.map_err(err)?);
    committed.extend(w.finish().await.map_err(err)?);
    let last = committed
        .last()
        .ok_or_else(|| violation("commit-covers-checkpoint", "nothing was committed"))?;
    if last.seq != 2 || last.checkpoint != cp(2) {
        return Err(violation(
            "commit-covers-checkpoint",
            format!(
                "last commit covers seq {} ({:?})",
                last.seq, last.checkpoint
            ),
        ));
    }
    let rows: u64 = committed.iter().map(|c| c.rows).sum();
    let quarantined: u64 = committed.iter().map(|c| c.quarantined).sum();
    if rows != 3 {
        return Err(violation(
            "commit-covers-checkpoint",
            format!("commits report {rows} rows, 3 were written"),
        ));
    }
    if quarantined != 1 {
        return Err(violation(
            "quarantine",
            format!("commits report {quarantined} quarantined rows, 1 was sent"),
        ));
    }
    let visible = (c.count_rows)(t.clone()).await;
    if visible != 3 {
        return Err(violation(
            "visible-after-commit",
            format!("{visible} rows visible, 3 committed"),
        ));
    }
    if c.tracks_state {
        match dest.committed_state(t, "conformance.t").await {
            Ok(CommittedState::Table(Some(s))) if s.seq == 2 && s.value == cp(2).state => {}
            other => return Err(violation("committed-state", format!("got {other:?}"))),
        }
    }
    match dest.table_schema(t).await {
        Ok(Some(s)) if s.field_with_name("id").is_ok() && s.field_with_name("name").is_ok() => {}
        other => return Err(violation("known-schema", format!("got {other:?}"))),
    }

    // Abort: nothing becomes visible.
    let mut w = dest
        .open(request(t, WriteMode::Append, "r2"))
        .await
        .map_err(|e| violation("abort-invisible", e.to_string()))?;
    w.write(batch(&[4, 5]))
        .await
        .map_err(|e| violation("abort-invisible", e.to_string()))?;
    w.abort().await;
    drop(w);
    let visible = (c.count_rows)(t.clone()).await;
    if visible != 3 {
        return Err(violation(
            "abort-invisible",
            format!("{visible} rows visible after an abort, 3 expected"),
        ));
    }

    // A type change the rules refuse.
    let mut w = dest
        .open(request(t, WriteMode::Append, "r3"))
        .await
        .map_err(|e| violation("refuse-unsafe-schema", e.to_string()))?;
    let strings = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec!["x"]))],
    )
    .map_err(|e| violation("refuse-unsafe-schema", e.to_string()))?;
    match w.write(strings).await {
        Err(ConnectorError::SchemaRefused { .. }) => {}
        Err(e) => {
            return Err(violation(
                "refuse-unsafe-schema",
                format!("wrong error: {e}"),
            ));
        }
        Ok(()) => {
            return Err(violation(
                "refuse-unsafe-schema",
                "int64 → string was accepted",
            ));
        }
    }
    w.abort().await;
    Ok(())
}
