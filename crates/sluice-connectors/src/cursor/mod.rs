//! Incremental replication by value: which rows are new since the bookmark.
//!
//! A stream with `cursor: <column>` remembers the largest cursor value it
//! loaded (the *bookmark*). On the next run:
//!
//! | row's cursor value | the row |
//! |---|---|
//! | greater than the bookmark | is sent |
//! | equal to the bookmark | is sent unless it was already loaded (see below) |
//! | less than the bookmark | is skipped (counted in `Progress::rows_skipped`) |
//! | NULL | is a bad record (error or quarantine, per `on_error`) |
//!
//! **Rows at the bookmark.** Several rows can share the bookmark value, and
//! a run may have stopped between them, so the bookmark is inclusive. To
//! avoid loading the same row twice, the state keeps a fingerprint of every
//! row loaded *at* the bookmark value: FNV-1a 64 of the row's values
//! rendered as text (Arrow's display format, columns separated by `0x1F`).
//! At most [`DEFAULT_SEEN_CAP`] (10,000) fingerprints are kept; beyond the
//! cap the set is marked incomplete and the rows not remembered are loaded
//! again by the next run (at-least-once: a `merge` write mode with a
//! `primary_key` keeps the table free of duplicates). A fingerprint also
//! changes when the row's rendering changes (a column added or retyped), so
//! such a row at the bookmark loads again once.
//!
//! **During a run.** Checkpoints in the middle of a run keep filtering by
//! the bookmark the run started from and carry the running maximum as
//! `in_progress`; only [`CursorTracker::final_state`] promotes it. A resumed
//! run then skips exactly what an uninterrupted run would have skipped.
//!
//! State (opaque to the engine; values round-trip exactly through their
//! text form and Arrow type name):
//!
//! ```json
//! {"column": "updated_at",
//!  "type": "Timestamp(µs, \"UTC\")", "value": "2024-03-01T12:00:00Z",
//!  "at_value": ["9f0c2a4b11d3e8f7"], "at_value_complete": true,
//!  "in_progress": {"type": "…", "value": "…", "at_value": […], "at_value_complete": true}}
//! ```

mod mark;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, Scalar};
use arrow::compute::kernels::cmp;
use arrow::compute::{CastOptions, SortOptions, cast_with_options, sort_to_indices};
use arrow::datatypes::{DataType, Schema};
use serde_json::{Map, Value, json};
use sluice_core::config::suggest::did_you_mean;
use sluice_core::connector::ConnectorError;
use sluice_core::types::type_name;

pub use mark::fnv1a;
use mark::{Fingerprinter, Mark};

/// Fingerprints kept for rows at the bookmark value.
pub const DEFAULT_SEEN_CAP: usize = 10_000;

/// Tracks the bookmark of one stream; see the module docs.
#[derive(Debug, Clone)]
pub struct CursorTracker {
    column: String,
    cap: usize,
    /// What this run filters by: the bookmark the previous run committed.
    bookmark: Option<Mark>,
    /// The largest value sent so far (starts at the bookmark).
    pending: Option<Mark>,
}

/// What [`CursorTracker::filter`] decided for a batch.
#[derive(Debug, Clone)]
pub struct CursorFilter {
    /// Rows to send.
    pub keep: BooleanArray,
    /// Rows whose cursor is NULL (bad records).
    pub null_rows: Vec<usize>,
    /// Rows not sent because an earlier run loaded them.
    pub skipped: u64,
}

impl CursorTracker {
    /// A tracker on `column`, resuming from `state` (a value returned by
    /// [`Self::state`] or [`Self::final_state`]).
    pub fn new(column: &str, state: Option<&Value>) -> Result<Self, ConnectorError> {
        let mut tracker = Self {
            column: column.to_string(),
            cap: DEFAULT_SEEN_CAP,
            bookmark: None,
            pending: None,
        };
        let Some(state) = state.filter(|s| !s.is_null()) else {
            return Ok(tracker);
        };
        let bad = |why: &str| {
            ConnectorError::config(
                format!("The cursor state of column `{column}` is not understood: {why}"),
                Some("reload the stream from scratch with `--full-refresh`".to_string()),
            )
        };
        let obj = state.as_object().ok_or_else(|| bad("not a JSON object"))?;
        match obj.get("column").and_then(Value::as_str) {
            Some(c) if c == column => {}
            Some(c) => {
                return Err(ConnectorError::config(
                    format!(
                        "The stream's bookmark is on column `{c}`, but its `cursor:` is now `{column}`"
                    ),
                    Some(format!(
                        "restore `cursor: {c}`, or reload the stream with `--full-refresh` to start a bookmark on `{column}`"
                    )),
                ));
            }
            None => return Err(bad("no `column`")),
        }
        tracker.bookmark = Mark::from_json(obj).map_err(|e| bad(&e))?;
        tracker.pending = match obj.get("in_progress").and_then(Value::as_object) {
            Some(p) => Mark::from_json(p).map_err(|e| bad(&e))?,
            None => tracker.bookmark.clone(),
        };
        Ok(tracker)
    }

    /// Keep at most `cap` fingerprints of rows at the bookmark.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.cap = cap;
        self
    }

    /// The cursor column.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The bookmark this run filters by, as text in the same form the state
    /// stores (`2024-03-01T12:00:00Z`, `12.50`): what a database source puts
    /// in its `WHERE cursor >= …` to read only what may be new.
    pub fn bookmark_text(&self) -> Option<String> {
        let mark = self.bookmark.as_ref()?;
        let formatter = arrow::util::display::ArrayFormatter::try_new(
            mark.value.as_ref(),
            &arrow::util::display::FormatOptions::default(),
        )
        .ok()?;
        Some(formatter.value(0).to_string())
    }

    /// Check that `schema` (of `origin`, e.g. `` `data/a.csv` ``) has the
    /// cursor column, and that its type has an order.
    pub fn check_schema(&self, schema: &Schema, origin: &str) -> Result<(), ConnectorError> {
        let column = &self.column;
        match schema.field_with_name(column) {
            Ok(field) => check_orderable(column, field.data_type()),
            Err(_) => {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let suggestion = did_you_mean(column, names.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                Err(ConnectorError::config(
                    format!("The cursor column `{column}` is not in {origin}{suggestion}"),
                    Some(format!(
                        "set `cursor:` to one of its columns: `{}`",
                        names.join("`, `")
                    )),
                ))
            }
        }
    }

    /// Decide which rows of `batch` to send. Rows where `valid` is false are
    /// neither sent nor counted (they were refused for another reason).
    pub fn filter(
        &mut self,
        batch: &RecordBatch,
        valid: Option<&BooleanArray>,
    ) -> Result<CursorFilter, ConnectorError> {
        let col = self.cursor_column(batch)?;
        self.align(col.data_type())?;
        let n = batch.num_rows();
        let (gt, eq) = match &self.bookmark {
            Some(b) => {
                let scalar = Scalar::new(b.value.clone());
                (
                    Some(cmp::gt(&col, &scalar).map_err(arrow_err)?),
                    Some(cmp::eq(&col, &scalar).map_err(arrow_err)?),
                )
            }
            None => (None, None),
        };
        let mut fingerprints: Option<Fingerprinter> = None;
        let mut keep = Vec::with_capacity(n);
        let mut null_rows = Vec::new();
        let mut skipped = 0;
        for i in 0..n {
            if valid.is_some_and(|v| !v.is_valid(i) || !v.value(i)) {
                keep.push(false);
                continue;
            }
            if col.is_null(i) {
                null_rows.push(i);
                keep.push(false);
                continue;
            }
            let pass = match (&self.bookmark, &gt, &eq) {
                (Some(b), Some(gt), Some(eq)) => {
                    gt.value(i)
                        || (eq.value(i) && {
                            let f = fingerprints.get_or_insert_with(|| Fingerprinter::new(batch));
                            !b.seen.contains(&f.row(i))
                        })
                }
                _ => true,
            };
            skipped += u64::from(!pass);
            keep.push(pass);
        }
        Ok(CursorFilter {
            keep: BooleanArray::from(keep),
            null_rows,
            skipped,
        })
    }

    /// Record the rows that were sent (after [`Self::filter`]).
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<(), ConnectorError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let col = self.cursor_column(batch)?;
        self.align(col.data_type())?;
        let options = SortOptions {
            descending: true,
            nulls_first: false,
        };
        let top = sort_to_indices(&col, Some(options), Some(1)).map_err(arrow_err)?;
        let Some(idx) = top.values().first().map(|&i| i as usize) else {
            return Ok(());
        };
        if col.is_null(idx) {
            return Ok(());
        }
        let max = col.slice(idx, 1);
        let relation = match &self.pending {
            None => std::cmp::Ordering::Greater,
            Some(p) => compare(&max, &p.value)?,
        };
        let mark = match relation {
            std::cmp::Ordering::Less => return Ok(()),
            std::cmp::Ordering::Greater => self.pending.insert(Mark {
                value: max.clone(),
                seen: HashSet::new(),
                complete: true,
            }),
            std::cmp::Ordering::Equal => match &mut self.pending {
                Some(p) => p,
                None => return Ok(()),
            },
        };
        let at_max = cmp::eq(&col, &Scalar::new(max)).map_err(arrow_err)?;
        let fingerprints = Fingerprinter::new(batch);
        for i in (0..batch.num_rows()).filter(|&i| at_max.is_valid(i) && at_max.value(i)) {
            let fp = fingerprints.row(i);
            if mark.seen.len() >= self.cap && !mark.seen.contains(&fp) {
                if mark.complete {
                    tracing::warn!(
                        column = %self.column,
                        "More than {} rows share the cursor value; rows beyond that may load again on the next run",
                        self.cap
                    );
                }
                mark.complete = false;
                continue;
            }
            mark.seen.insert(fp);
        }
        Ok(())
    }

    /// The state to store with a checkpoint in the middle of a run.
    pub fn state(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("column".into(), json!(self.column));
        if let Some(b) = &self.bookmark {
            b.write_json(&mut obj);
        }
        if let Some(p) = &self.pending
            && self.bookmark.as_ref() != Some(p)
        {
            let mut inner = Map::new();
            p.write_json(&mut inner);
            obj.insert("in_progress".into(), Value::Object(inner));
        }
        Value::Object(obj)
    }

    /// The state at the end of a run: the running maximum becomes the bookmark.
    pub fn final_state(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("column".into(), json!(self.column));
        if let Some(p) = self.pending.as_ref().or(self.bookmark.as_ref()) {
            p.write_json(&mut obj);
        }
        Value::Object(obj)
    }

    fn cursor_column(&self, batch: &RecordBatch) -> Result<ArrayRef, ConnectorError> {
        self.check_schema(batch.schema_ref(), "the data")?;
        batch.column_by_name(&self.column).cloned().ok_or_else(|| {
            ConnectorError::Internal(format!("Cursor column `{}` vanished", self.column))
        })
    }

    /// Bring the marks to the column's type (a column may be inferred as
    /// int64 in one file and float64 in the next).
    fn align(&mut self, dt: &DataType) -> Result<(), ConnectorError> {
        for mark in [&mut self.bookmark, &mut self.pending]
            .into_iter()
            .flatten()
        {
            if mark.value.data_type() != dt {
                let options = CastOptions {
                    safe: false,
                    ..Default::default()
                };
                mark.value = cast_with_options(&mark.value, dt, &options).map_err(|e| {
                    ConnectorError::config(
                        format!(
                            "The cursor bookmark on `{}` is a {} and cannot be compared with the column's type {}: {e}",
                            self.column,
                            type_name(mark.value.data_type()),
                            type_name(dt)
                        ),
                        Some(format!("declare the column's type in `columns:` (`{}: {}`), or reload with `--full-refresh`", self.column, type_name(mark.value.data_type()))),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// Whether `dt` can be a cursor: it must have an order.
pub fn check_orderable(column: &str, dt: &DataType) -> Result<(), ConnectorError> {
    use DataType::*;
    match dt {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32
        | Float64 | Decimal128(..) | Decimal256(..) | Date32 | Date64 | Timestamp(..)
        | Time32(_) | Time64(_) | Utf8 | LargeUtf8 | Utf8View => Ok(()),
        other => Err(ConnectorError::config(
            format!("The cursor column `{column}` has type {}, which has no order", type_name(other)),
            Some("choose a column of type int, float, decimal, date, timestamp or string as `cursor:`, or declare the column's type in `columns:`".to_string()),
        )),
    }
}

fn compare(a: &ArrayRef, b: &ArrayRef) -> Result<std::cmp::Ordering, ConnectorError> {
    let gt = cmp::gt(a, b).map_err(arrow_err)?;
    let eq = cmp::eq(a, b).map_err(arrow_err)?;
    Ok(if gt.value(0) {
        std::cmp::Ordering::Greater
    } else if eq.value(0) {
        std::cmp::Ordering::Equal
    } else {
        std::cmp::Ordering::Less
    })
}

fn arrow_err(e: arrow::error::ArrowError) -> ConnectorError {
    ConnectorError::Internal(format!("Cursor comparison failed: {e}"))
}
