//! From a decoded batch to messages: bad rows quarantined or failed (per
//! `on_error`), the cursor filter applied, the rest sent.

use arrow::array::BooleanArray;
use arrow::compute::filter_record_batch;
use sluice_core::config::OnError;
use sluice_core::connector::{ConnectorError, Message, Progress, RecordLocation};
use sluice_core::quarantine::{QuarantineBuilder, QuarantinedRow};

use super::decode::Decoded;
use crate::cursor::CursorTracker;

/// The consumer stopped reading: end quietly.
pub struct Closed;

/// Why delivery stopped.
pub enum Halt {
    /// The consumer is gone.
    Closed,
    /// A bad record with `on_error: fail`, or an internal error.
    Failed(ConnectorError),
}

/// A bad row: (row in batch, rowid, column, value, reason).
type Bad = (usize, Option<u64>, Option<String>, Option<String>, String);

/// What the consumer side of a read keeps.
pub struct Deliver {
    /// `main.<table>`, for locations.
    pub label: String,
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The stream's cursor, when incremental.
    pub cursor: Option<CursorTracker>,
    /// What to do with a bad record.
    pub on_error: OnError,
}

impl Deliver {
    /// Quarantine or fail bad rows, apply the cursor, send the batch; rows sent.
    pub async fn deliver<F, Fut>(&mut self, decoded: Decoded, send: &F) -> Result<u64, Halt>
    where
        F: Fn(Message) -> Fut,
        Fut: std::future::Future<Output = Result<(), Closed>>,
    {
        let Decoded {
            batch,
            rejects,
            records: ids,
        } = decoded;
        // One bad record per row: the first column at fault, the others in the reason.
        let mut bad: Vec<Bad> = Vec::with_capacity(rejects.len());
        for r in rejects {
            let column = self.columns.get(r.column).cloned();
            match bad.last_mut() {
                Some(last) if last.0 == r.row => last.4.push_str(&format!(
                    "; also `{}`: {} (value `{}`)",
                    column.unwrap_or_default(),
                    r.reason,
                    sluice_core::connector::truncate(&r.value, 80)
                )),
                _ => bad.push((r.row, Some(r.record), column, Some(r.value), r.reason)),
            }
        }
        let mut valid = vec![true; batch.num_rows()];
        for (row, ..) in &bad {
            valid[*row] = false;
        }
        let valid_mask = BooleanArray::from(valid);
        let mut keep = valid_mask.clone();
        let mut skipped = 0;
        if let Some(cursor) = &mut self.cursor {
            let verdict = cursor
                .filter(&batch, Some(&valid_mask))
                .map_err(Halt::Failed)?;
            for row in verdict.null_rows {
                bad.push((
                    row,
                    ids.get(row).copied(),
                    Some(cursor.column().to_string()),
                    None,
                    format!("the cursor column `{}` is NULL", cursor.column()),
                ));
            }
            skipped = verdict.skipped;
            keep = verdict.keep;
        }
        if !bad.is_empty() {
            bad.sort_by_key(|b| b.0);
            let records = crate::db::rows_as_json(&batch).map_err(Halt::Failed)?;
            if self.on_error == OnError::Fail {
                return Err(Halt::Failed(self.failure(bad.swap_remove(0), &records)));
            }
            let mut q = QuarantineBuilder::default();
            for (row, record, column, value, reason) in &bad {
                q.push(&QuarantinedRow {
                    file: Some(self.label.clone()),
                    line: *record,
                    column: column.clone(),
                    value: value.clone(),
                    reason: match record {
                        Some(id) => format!("{reason} (rowid {id})"),
                        None => reason.clone(),
                    },
                    record: records.get(*row).cloned(),
                });
            }
            let qb = q
                .finish()
                .map_err(|e| Halt::Failed(ConnectorError::Internal(e.to_string())))?;
            send(Message::Quarantine(qb))
                .await
                .map_err(|_| Halt::Closed)?;
        }
        let out = if keep.true_count() < batch.num_rows() {
            filter_record_batch(&batch, &keep)
                .map_err(|e| Halt::Failed(ConnectorError::Internal(e.to_string())))?
        } else {
            batch
        };
        if let Some(cursor) = &mut self.cursor {
            cursor.observe(&out).map_err(Halt::Failed)?;
        }
        let n = out.num_rows() as u64;
        if n > 0 {
            send(Message::Batch(out)).await.map_err(|_| Halt::Closed)?;
        }
        if skipped > 0 {
            send(Message::Progress(Progress {
                rows_skipped: skipped,
                ..Default::default()
            }))
            .await
            .map_err(|_| Halt::Closed)?;
        }
        Ok(n)
    }

    /// The error for the first bad row with `on_error: fail`.
    fn failure(&self, bad: Bad, records: &[String]) -> ConnectorError {
        let (row, record, column, value, reason) = bad;
        let column_name = column.clone().unwrap_or_default();
        let hint = if reason.starts_with("the cursor column") {
            format!(
                "a row without a cursor value cannot be tracked incrementally; fill `{column_name}` (e.g. with a column default), or set `on_error: quarantine` to set such rows aside"
            )
        } else {
            "fix the value, declare the column's type in `streams.<name>.columns`, or set `on_error: quarantine`".into()
        };
        ConnectorError::BadRecord {
            location: RecordLocation {
                file: Some(self.label.clone()),
                record,
                column,
                value,
                ..Default::default()
            },
            hint: Some(hint),
            message: format!(
                "{reason} (the record number is the rowid; row: {})",
                records.get(row).cloned().unwrap_or_default()
            ),
        }
    }
}
