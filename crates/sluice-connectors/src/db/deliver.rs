//! From a decoded batch to messages, for the database sources that decode
//! on async tasks (PostgreSQL, MySQL): bad rows quarantined or failed (per
//! `on_error`), the cursor filter applied, the rest sent.
//!
//! A row is one bad record however many of its values are bad: the first
//! column at fault is the location, the others are named in the reason (so
//! rows read = rows written + rows quarantined holds row for row).

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use sluice_core::config::OnError;
use sluice_core::connector::{ConnectorError, Message, Progress, RecordLocation};
use sluice_core::quarantine::{QuarantineBuilder, QuarantinedRow};

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

/// A value that could not be read.
#[derive(Debug, Clone)]
pub struct BadValue {
    /// Row within the batch.
    pub row: usize,
    /// Record number within the read (1-based), when known.
    pub record: Option<u64>,
    /// The column at fault.
    pub column: Option<String>,
    /// What was wrong.
    pub reason: String,
}

/// The reading side of one stream.
pub struct Deliver<'a> {
    /// `schema.table` (with the range), for locations.
    pub label: &'a str,
    /// The stream's cursor, when incremental.
    pub cursor: Option<&'a mut CursorTracker>,
    /// What to do with a bad record.
    pub on_error: OnError,
}

impl Deliver<'_> {
    /// Quarantine or fail bad rows, apply the cursor, send the batch; rows sent.
    pub async fn deliver<F, Fut>(
        &mut self,
        batch: RecordBatch,
        rejects: Vec<BadValue>,
        send: &F,
    ) -> Result<u64, Halt>
    where
        F: Fn(Message) -> Fut,
        Fut: std::future::Future<Output = Result<(), Closed>>,
    {
        let mut bad = rejects;
        let mut valid = vec![true; batch.num_rows()];
        for b in &bad {
            valid[b.row] = false;
        }
        let valid_mask = BooleanArray::from(valid);
        let mut keep = valid_mask.clone();
        let mut skipped = 0;
        if let Some(cursor) = self.cursor.as_deref_mut() {
            let verdict = cursor
                .filter(&batch, Some(&valid_mask))
                .map_err(Halt::Failed)?;
            for row in verdict.null_rows {
                bad.push(BadValue {
                    row,
                    record: None,
                    column: Some(cursor.column().to_string()),
                    reason: format!("the cursor column `{}` is NULL", cursor.column()),
                });
            }
            skipped = verdict.skipped;
            keep = verdict.keep;
        }
        if !bad.is_empty() {
            let bad = one_per_row(bad);
            let records = super::rows_as_json(&batch).map_err(Halt::Failed)?;
            if self.on_error == OnError::Fail {
                return Err(Halt::Failed(self.error(&bad[0], &records)));
            }
            let mut q = QuarantineBuilder::default();
            for b in &bad {
                q.push(&QuarantinedRow {
                    file: Some(self.label.to_string()),
                    line: b.record,
                    column: b.column.clone(),
                    value: None,
                    reason: b.reason.clone(),
                    record: records.get(b.row).cloned(),
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
        if let Some(cursor) = self.cursor.as_deref_mut() {
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

    /// The located error for `on_error: fail`.
    fn error(&self, b: &BadValue, records: &[String]) -> ConnectorError {
        let column_name = b.column.clone().unwrap_or_default();
        ConnectorError::BadRecord {
            location: RecordLocation {
                file: Some(self.label.to_string()),
                record: b.record,
                column: b.column.clone(),
                ..Default::default()
            },
            hint: Some(if b.reason.starts_with("the cursor column") {
                format!(
                    "a row without a cursor value cannot be tracked incrementally; fill `{column_name}` (e.g. with a column default), or set `on_error: quarantine` to set such rows aside"
                )
            } else {
                "fix the value, declare the column's type in `streams.<name>.columns`, or set `on_error: quarantine`".into()
            }),
            message: format!(
                "{} (row: {})",
                b.reason,
                records.get(b.row).cloned().unwrap_or_default()
            ),
        }
    }
}

/// Bad values merged into one bad record per row, in row order: the first
/// value's column is the location, the others are named in the reason.
fn one_per_row(mut bad: Vec<BadValue>) -> Vec<BadValue> {
    bad.sort_by_key(|b| b.row);
    let mut out: Vec<BadValue> = Vec::with_capacity(bad.len());
    for b in bad {
        match out.last_mut() {
            Some(last) if last.row == b.row => {
                last.reason.push_str(&format!(
                    "; also `{}`: {}",
                    b.column.as_deref().unwrap_or_default(),
                    b.reason
                ));
                last.record = last.record.or(b.record);
            }
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_several_bad_values_is_one_bad_record() {
        let v = |row, column: &str, reason: &str| BadValue {
            row,
            record: Some(row as u64 + 1),
            column: Some(column.into()),
            reason: reason.into(),
        };
        let merged = one_per_row(vec![v(3, "b", "late"), v(1, "a", "x"), v(3, "a", "first")]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].row, 1);
        assert_eq!(merged[1].column.as_deref(), Some("b"));
        assert_eq!(merged[1].reason, "late; also `a`: first");
    }
}
