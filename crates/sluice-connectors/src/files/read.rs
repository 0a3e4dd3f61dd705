//! One `read` of one stream, on a blocking thread.
//!
//! ```text
//!  list files ─► prune state ─► skip unchanged (incremental) ─► Progress{total_bytes}
//!  per file: decoder ─► Schema (when it changes)
//!            per batch: rejects + cursor filter ─► fail | Quarantine ─► Batch ─► Progress
//!            ─► Progress{files: 1} ─► Checkpoint (all files so far; cursor final after the last)
//!  nothing to read ─► one Checkpoint
//! ```

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use sluice_core::config::{OnError, Replication};
use sluice_core::connector::{Checkpoint, ConnectorError, Message, Progress, ReadRequest};
use sluice_core::quarantine::QuarantineBuilder;
use tokio::sync::mpsc;

use super::Inner;
use super::config::StreamConfig;
use super::decoder::{self, Decoded, FileDecoder, Reject};
use super::listing::{FileEntry, list_files, thousands};
use super::state::FilesState;
use crate::cursor::CursorTracker;

/// Why the decoding thread stops early.
enum Halt {
    /// The consumer dropped the stream.
    Closed,
    /// An error to report.
    Failed(ConnectorError),
}

impl From<ConnectorError> for Halt {
    fn from(e: ConnectorError) -> Self {
        Halt::Failed(e)
    }
}

/// One `read`, run on a blocking thread.
pub(crate) struct ReadJob {
    inner: Arc<Inner>,
    stream: StreamConfig,
    state: FilesState,
    cursor: Option<CursorTracker>,
    on_error: OnError,
    batch_size: usize,
    last_schema: Option<SchemaRef>,
    /// The destination table's schema (see `ReadRequest::known_schema`).
    known: Option<SchemaRef>,
    tx: Sender,
}

/// Where a job's messages go.
pub(crate) type Sender = mpsc::Sender<Result<Message, ConnectorError>>;

impl ReadJob {
    /// Check the request (stream name, state) before any thread starts.
    pub(crate) fn new(
        inner: Arc<Inner>,
        request: &ReadRequest,
        tx: Sender,
    ) -> Result<Self, ConnectorError> {
        let stream = inner.stream(&request.stream)?.clone();
        let state = FilesState::parse(&request.stream, request.state.as_ref())?;
        let cursor = match &stream.cursor {
            Some(column) => Some(CursorTracker::new(column, state.cursor.as_ref())?),
            None => None,
        };
        Ok(Self {
            inner,
            stream,
            state,
            cursor,
            on_error: request.on_error,
            batch_size: request.batch_size.max(1),
            last_schema: None,
            known: request.known_schema.clone(),
            tx,
        })
    }

    /// Run to the end; an error is the stream's last item.
    pub(crate) fn run_to_end(mut self) {
        if let Err(Halt::Failed(e)) = self.run() {
            let _ = self.tx.blocking_send(Err(e));
        }
    }

    /// Read every file to do, sending messages; stops early when the
    /// consumer is gone or on an error.
    fn run(&mut self) -> Result<(), Halt> {
        let files = list_files(&self.inner.project_dir, &self.stream.spec.paths)?;
        self.state.prune(&files);
        let todo: Vec<&FileEntry> = match self.stream.replication {
            Replication::Full => files.iter().collect(),
            Replication::Incremental => files.iter().filter(|f| !self.state.unchanged(f)).collect(),
        };
        let total: u64 = todo.iter().map(|f| f.size).sum();
        self.send(Message::Progress(Progress {
            total_bytes: Some(total),
            ..Default::default()
        }))?;
        if todo.is_empty() {
            let position = if files.is_empty() {
                format!("no file matches `{}`", self.stream.spec.paths.join("`, `"))
            } else {
                format!(
                    "no new or changed files ({} unchanged)",
                    thousands(files.len() as u64)
                )
            };
            tracing::info!(stream = %self.stream.name, "{position}");
            return self.checkpoint(position, true);
        }
        for (i, file) in todo.iter().enumerate() {
            let rows = self.read_file(file)?;
            self.state.loaded(file, rows);
            self.send(Message::Progress(Progress {
                files: 1,
                ..Default::default()
            }))?;
            let position = format!("{} ({} rows)", file.rel, thousands(rows));
            self.checkpoint(position, i + 1 == todo.len())?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, position: String, last: bool) -> Result<(), Halt> {
        self.state.cursor = self
            .cursor
            .as_ref()
            .map(|c| if last { c.final_state() } else { c.state() });
        let state = self.state.to_json();
        self.send(Message::Checkpoint(Checkpoint { state, position }))
    }

    /// Decode one file; returns the rows sent.
    fn read_file(&mut self, file: &FileEntry) -> Result<u64, Halt> {
        let mut reported = 0;
        let mut rows = 0;
        if let Some(mut decoder) = decoder::open(
            file,
            &self.stream,
            self.batch_size,
            self.last_schema.as_deref().or(self.known.as_deref()),
        )? {
            let schema = decoder.schema();
            if let Some(cursor) = &self.cursor {
                cursor.check_schema(&schema, &format!("`{}`", file.rel))?;
            }
            if self.last_schema.as_ref() != Some(&schema) {
                self.last_schema = Some(schema.clone());
                self.send(Message::Schema(schema))?;
            }
            while let Some(decoded) = decoder.next_batch()? {
                if self.tx.is_closed() {
                    return Err(Halt::Closed);
                }
                reported += decoded.bytes;
                rows += self.send_batch(decoded, decoder.as_ref(), &file.rel)?;
            }
        }
        if file.size > reported {
            self.send(Message::Progress(Progress {
                bytes: file.size - reported,
                ..Default::default()
            }))?;
        }
        Ok(rows)
    }

    /// Filter, quarantine and send one decoded batch; returns the rows sent.
    fn send_batch(
        &mut self,
        decoded: Decoded,
        decoder: &dyn FileDecoder,
        file: &str,
    ) -> Result<u64, Halt> {
        let Decoded {
            batch,
            mut rejects,
            bytes,
        } = decoded;
        let valid = rejects.iter().any(|r| r.row.is_some()).then(|| {
            let mut mask = vec![true; batch.num_rows()];
            for row in rejects.iter().filter_map(|r| r.row) {
                mask[row] = false;
            }
            BooleanArray::from(mask)
        });
        let mut keep = valid.clone();
        let mut skipped = 0;
        if let Some(cursor) = &mut self.cursor {
            let verdict = cursor.filter(&batch, valid.as_ref())?;
            for row in verdict.null_rows {
                let origin = decoder.origin(row);
                rejects.push(Reject {
                    row: Some(row),
                    line: origin.line,
                    record: origin.record,
                    column: Some(cursor.column().to_string()),
                    value: None,
                    reason: format!("the cursor column `{}` is NULL", cursor.column()),
                    raw: origin.raw,
                });
            }
            skipped = verdict.skipped;
            keep = Some(verdict.keep);
        }
        if !rejects.is_empty() {
            rejects.sort_by_key(Reject::position);
            if self.on_error == OnError::Fail {
                return Err(Halt::Failed(rejects.swap_remove(0).into_error(file)));
            }
            let mut quarantined = QuarantineBuilder::default();
            for reject in &rejects {
                quarantined.push(&reject.quarantined(file));
            }
            let batch = quarantined
                .finish()
                .map_err(|e| ConnectorError::Internal(format!("Quarantine batch: {e}")))?;
            self.send(Message::Quarantine(batch))?;
        }
        let out = match keep {
            Some(mask) if mask.true_count() < batch.num_rows() => filter(&batch, &mask)?,
            _ => batch,
        };
        if let Some(cursor) = &mut self.cursor {
            cursor.observe(&out)?;
        }
        let rows = out.num_rows() as u64;
        if rows > 0 {
            self.send(Message::Batch(out))?;
        }
        if bytes > 0 || skipped > 0 {
            self.send(Message::Progress(Progress {
                bytes,
                rows_skipped: skipped,
                ..Default::default()
            }))?;
        }
        Ok(rows)
    }

    fn send(&self, message: Message) -> Result<(), Halt> {
        self.tx.blocking_send(Ok(message)).map_err(|_| Halt::Closed)
    }
}

fn filter(batch: &RecordBatch, mask: &BooleanArray) -> Result<RecordBatch, ConnectorError> {
    filter_record_batch(batch, mask)
        .map_err(|e| ConnectorError::Internal(format!("Filtering a batch: {e}")))
}
