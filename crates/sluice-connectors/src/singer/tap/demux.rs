//! The tap's stdout → per-stream message streams.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_core::config::OnError;
use sluice_core::connector::{
    Checkpoint, ConnectorError, Message, Progress, RecordLocation, Result,
};
use tokio::sync::mpsc;

use crate::singer::decode::RecordBuffer;
use crate::singer::lines::{Lines, read_in_thread};
use crate::singer::message::{SingerMessage, parse};
use crate::singer::process::{RunFiles, Running};
use crate::singer::schema::{StreamSchema, stream_schema};

use super::state::{checkpoint_state, now_ns};

/// Where one stream's messages go.
pub(super) struct Route {
    pub(super) name: String,
    pub(super) schema: Option<StreamSchema>,
    pub(super) buffer: Option<RecordBuffer>,
    pub(super) tx: Option<mpsc::Sender<Result<Message>>>,
    pub(super) on_error: OnError,
    pub(super) batch_size: usize,
    pub(super) pending_bytes: u64,
    pub(super) input_state: Option<Value>,
}

impl Route {
    /// Send to the stream; a stream whose reader is gone (it failed or was
    /// cancelled) gets nothing more.
    async fn send(&mut self, m: Result<Message>) {
        if let Some(tx) = &self.tx
            && tx.send(m).await.is_err()
        {
            self.tx = None;
        }
    }

    fn alive(&self) -> bool {
        self.tx.is_some()
    }

    /// Decode the buffered records and send them.
    async fn flush(&mut self) {
        let Some(buffer) = self.buffer.as_mut() else {
            return;
        };
        if buffer.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending_bytes);
        match buffer.take() {
            Ok(messages) => {
                for m in messages {
                    self.send(Ok(m)).await;
                }
                self.send(Ok(Message::Progress(Progress {
                    bytes,
                    ..Default::default()
                })))
                .await;
            }
            Err(e) => {
                self.send(Err(e)).await;
                self.tx = None;
            }
        }
    }

    /// The rows of one BATCH file: JSON Lines go through the record buffer
    /// (located errors name the file and its line), Parquet is cast to the
    /// stream's schema.
    async fn load_batch_file(
        &mut self,
        dir: &Path,
        url: &str,
        format: &str,
        compression: Option<&str>,
    ) -> Result<()> {
        let path = local_path(dir, url).ok_or_else(|| ConnectorError::Unsupported {
            connector: "singer",
            what: format!("BATCH files at `{url}` (only local `file://` manifests are read)"),
            hint: Some("configure the tap's `batch_config` to write to a local folder".into()),
        })?;
        let shown = path.display().to_string();
        match format {
            "jsonl" => {
                let mut reader = crate::singer::batch::open_jsonl(&path, compression)?;
                let Some(buffer) = self.buffer.as_mut() else {
                    return Ok(());
                };
                buffer.set_origin(&shown);
                let mut line = Vec::new();
                let mut line_no = 0u64;
                loop {
                    line.clear();
                    let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(
                        |e| ConnectorError::external(format!("cannot read `{shown}`"), e),
                    )?;
                    if n == 0 {
                        break;
                    }
                    line_no += 1;
                    let text = line.trim_ascii();
                    if text.is_empty() {
                        continue;
                    }
                    self.pending_bytes += n as u64;
                    let Some(buffer) = self.buffer.as_mut() else {
                        return Ok(());
                    };
                    buffer.push(text, line_no)?;
                    if buffer.is_full() {
                        self.flush().await;
                        if !self.alive() {
                            return Ok(());
                        }
                    }
                }
                self.flush().await;
            }
            "parquet" => {
                let schema = match self.buffer.as_ref() {
                    Some(b) => b.schema().clone(),
                    None => return Ok(()),
                };
                for batch in crate::singer::batch::read_parquet(&path, &schema, self.batch_size)? {
                    let batch = batch?;
                    self.send(Ok(Message::Batch(batch))).await;
                    if !self.alive() {
                        return Ok(());
                    }
                }
            }
            other => {
                return Err(ConnectorError::Unsupported {
                    connector: "singer",
                    what: format!("BATCH encoding format `{other}`"),
                    hint: Some("use `jsonl` or `parquet` in the tap's `batch_config`".into()),
                });
            }
        }
        Ok(())
    }

    /// Whether the tap has sent this stream's SCHEMA (and so maybe rows).
    fn started(&self) -> bool {
        self.schema.is_some()
    }
}

/// Reads the tap's stdout and routes its messages.
pub(super) struct Demux {
    pub(super) label: String,
    pub(super) origin: std::sync::Arc<str>,
    pub(super) dir: PathBuf,
    pub(super) routes: HashMap<String, Route>,
    /// Catalog `stream` names → `tap_stream_id`, for taps that use them in messages.
    pub(super) aliases: HashMap<String, String>,
    pub(super) unknown_warned: HashMap<String, ()>,
    pub(super) last_state: Option<Value>,
    pub(super) states: u64,
    /// Rows routed since the last checkpoint, and when it was sent.
    pub(super) rows_since_checkpoint: u64,
    pub(super) last_checkpoint: Option<std::time::Instant>,
}

/// A STATE becomes a checkpoint when this many rows came since the last
/// one, or [`CHECKPOINT_EVERY`] passed; the STATEs in between are only
/// remembered. Some taps send a STATE after every record: without this,
/// every record would be a batch and a checkpoint of its own.
const CHECKPOINT_ROWS: u64 = 50_000;
/// See [`CHECKPOINT_ROWS`].
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A protocol error: every stream fails with it.
pub(super) struct Fatal(ConnectorError);

impl Demux {
    pub(super) async fn run(mut self, mut running: Running, files: RunFiles) {
        let result = self.pump(&mut running).await;
        match result {
            Err(Fatal(e)) => {
                running.kill().await;
                drop(files);
                self.fail_all(&e).await;
            }
            Ok(()) => {
                let exit = running.wait().await;
                drop(files);
                match exit {
                    Err(e) => self.fail_all(&e).await,
                    Ok(()) => self.finish().await,
                }
            }
        }
    }

    async fn pump(&mut self, running: &mut Running) -> Result<(), Fatal> {
        let Some(stdout) = running.stdout.take() else {
            return Err(Fatal(ConnectorError::Internal("no stdout".into())));
        };
        let file = std::fs::File::from(stdout.into_owned_fd().map_err(|e| {
            Fatal(ConnectorError::external(
                format!("cannot read the output of {}", self.label),
                e,
            ))
        })?);
        let mut chunks = read_in_thread(file);
        let mut lines = Lines::default();
        loop {
            if !self.routes.values().any(Route::alive) {
                // Every reader is gone (failed or cancelled): stop the tap.
                return Err(Fatal(ConnectorError::Cancelled));
            }
            let Some(chunk) = chunks.recv().await else {
                break;
            };
            let chunk = chunk.map_err(|e| {
                Fatal(ConnectorError::external(
                    format!("cannot read the output of {}", self.label),
                    e,
                ))
            })?;
            lines.extend(&chunk);
            while let Some((line_no, line)) = lines.next_line() {
                self.handle(line, line_no).await?;
            }
        }
        if let Some((line_no, line)) = lines.last_line() {
            self.handle(&line, line_no).await?;
        }
        Ok(())
    }

    fn located(&self, line: u64, stream: Option<&str>, message: String) -> ConnectorError {
        located(&self.origin, line, stream, message)
    }
}

/// A RECORD or BATCH of a stream whose SCHEMA has not come yet.
fn before_schema(origin: &str, line: u64, stream: &str, what: &str) -> ConnectorError {
    ConnectorError::BadRecord {
        location: RecordLocation {
            file: Some(origin.to_string()),
            line: Some(line),
            ..Default::default()
        },
        message: format!("stream `{stream}`: a {what} before the stream's SCHEMA"),
        hint: Some("a Singer tap must send a stream's SCHEMA message before its records; this is a bug in the tap".into()),
    }
}

fn located(origin: &str, line: u64, stream: Option<&str>, message: String) -> ConnectorError {
    ConnectorError::BadRecord {
            location: RecordLocation {
                file: Some(origin.to_string()),
                line: Some(line),
                ..Default::default()
            },
            message: match stream {
                Some(s) => format!("stream `{s}`: {message}"),
                None => message,
            },
            hint: Some("the tap wrote something that is not a valid Singer message; its output must be one JSON message per line (logs belong on stderr)".into()),
        }
}

impl Demux {
    async fn handle(&mut self, line: &[u8], line_no: u64) -> Result<(), Fatal> {
        let origin = self.origin.clone();

        let message = parse(line)
            .map_err(|e| Fatal(self.located(line_no, e.stream.as_deref(), e.message)))?;
        match message {
            SingerMessage::Record { stream, record, .. } => {
                let Some(route) = self.routes.get_mut(
                    self.aliases
                        .get(stream.as_ref())
                        .map_or(stream.as_ref(), String::as_str),
                ) else {
                    self.not_selected(&stream, "RECORD");
                    return Ok(());
                };
                if !route.alive() {
                    return Ok(());
                }
                if route.buffer.is_none() {
                    let e = before_schema(&origin, line_no, &stream, "RECORD");
                    route.send(Err(e)).await;
                    route.tx = None;
                    return Ok(());
                }
                route.pending_bytes += line.len() as u64 + 1;
                self.rows_since_checkpoint += 1;
                let full = match route.buffer.as_mut() {
                    Some(b) => match b.push(record, line_no) {
                        Ok(()) => b.is_full(),
                        Err(e) => {
                            if route.on_error == OnError::Fail {
                                route.send(Err(e)).await;
                                route.tx = None;
                                return Ok(());
                            }
                            route
                                .send(Ok(Message::Quarantine(quarantine_of(&e, record)?)))
                                .await;
                            false
                        }
                    },
                    None => false,
                };
                if full {
                    route.flush().await;
                }
            }
            SingerMessage::Schema {
                stream,
                schema,
                key_properties,
                ..
            } => {
                let Some(route) = self.routes.get_mut(
                    self.aliases
                        .get(stream.as_ref())
                        .map_or(stream.as_ref(), String::as_str),
                ) else {
                    return Ok(());
                };
                let mapped = match stream_schema(&stream, &schema, &key_properties) {
                    Ok(m) => m,
                    Err(e) => {
                        let hint = e.hint();
                        route
                            .send(Err(ConnectorError::BadRecord {
                                location: RecordLocation {
                                    file: Some(origin.to_string()),
                                    line: Some(line_no),
                                    ..Default::default()
                                },
                                message: format!("the SCHEMA message cannot be mapped: {e}"),
                                hint,
                            }))
                            .await;
                        route.tx = None;
                        return Ok(());
                    }
                };
                let changed = route
                    .schema
                    .as_ref()
                    .is_none_or(|old| old.schema != mapped.schema);
                if changed {
                    route.flush().await;
                    route.buffer = Some(RecordBuffer::new(
                        &mapped,
                        &self.origin,
                        route.batch_size,
                        route.on_error,
                    ));
                    route.send(Ok(Message::Schema(mapped.schema.clone()))).await;
                    route.schema = Some(mapped);
                }
            }
            SingerMessage::State { value } => {
                self.states += 1;
                let due = self
                    .last_checkpoint
                    .is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY)
                    || self.rows_since_checkpoint >= CHECKPOINT_ROWS;
                if !due {
                    self.last_state = Some(value);
                    return Ok(());
                }
                self.rows_since_checkpoint = 0;
                self.last_checkpoint = Some(std::time::Instant::now());
                let at = now_ns();
                let state = checkpoint_state(&value, at);
                let position = format!("STATE #{} (line {line_no})", self.states);
                for route in self.routes.values_mut() {
                    // A stream the tap has not started has nothing to cover.
                    if !route.alive() || !route.started() {
                        continue;
                    }
                    route.flush().await;
                    route
                        .send(Ok(Message::Checkpoint(Checkpoint {
                            state: state.clone(),
                            position: position.clone(),
                        })))
                        .await;
                }
                self.last_state = Some(value);
            }
            SingerMessage::ActivateVersion { stream, version } => {
                if let Some(route) = self.routes.get(
                    self.aliases
                        .get(stream.as_ref())
                        .map_or(stream.as_ref(), String::as_str),
                ) {
                    tracing::debug!(
                        "{}: stream `{}` activated version {version}",
                        self.label,
                        route.name
                    );
                }
            }
            SingerMessage::Batch {
                stream,
                format,
                compression,
                manifest,
            } => {
                let Some(route) = self.routes.get_mut(
                    self.aliases
                        .get(stream.as_ref())
                        .map_or(stream.as_ref(), String::as_str),
                ) else {
                    self.not_selected(&stream, "BATCH");
                    return Ok(());
                };
                if !route.alive() {
                    return Ok(());
                }
                if route.buffer.is_none() {
                    let e = before_schema(&origin, line_no, &stream, "BATCH");
                    route.send(Err(e)).await;
                    route.tx = None;
                    return Ok(());
                }
                route.flush().await;
                let dir = self.dir.clone();
                for url in &manifest {
                    let result = route
                        .load_batch_file(&dir, url, &format, compression.as_deref())
                        .await;
                    if let Err(e) = result {
                        let e = match e {
                            ConnectorError::BadRecord { .. } => e,
                            other => located(
                                &origin,
                                line_no,
                                Some(&stream),
                                format!("BATCH file `{url}`: {other}"),
                            ),
                        };
                        route.send(Err(e)).await;
                        route.tx = None;
                        return Ok(());
                    }
                }
                if let Some(b) = route.buffer.as_mut() {
                    b.set_origin(&self.origin);
                }
            }
            SingerMessage::Other { kind } => {
                tracing::debug!(
                    "{}: skipped a `{kind}` message (line {line_no})",
                    self.label
                );
            }
        }
        Ok(())
    }

    fn not_selected(&mut self, stream: &str, what: &str) {
        if self.unknown_warned.insert(stream.to_string(), ()).is_none() {
            tracing::warn!(
                "{}: skipping {what} messages of stream `{stream}`, which this run does not read (not selected, or not in the catalog: see `sluice discover`)",
                self.label
            );
        }
    }

    async fn fail_all(&mut self, e: &ConnectorError) {
        let text = e.to_string();
        let hint = sluice_core::error::Classify::hint(e);
        for route in self.routes.values_mut() {
            if route.alive() {
                let err = match e {
                    ConnectorError::Cancelled => ConnectorError::Cancelled,
                    ConnectorError::BadRecord {
                        location,
                        message,
                        hint,
                    } => ConnectorError::BadRecord {
                        location: location.clone(),
                        message: message.clone(),
                        hint: hint.clone(),
                    },
                    _ => ConnectorError::External {
                        message: match &hint {
                            Some(h) => format!("{text}\n  hint: {h}"),
                            None => text.clone(),
                        },
                        source: None,
                        retryable: false,
                    },
                };
                route.send(Err(err)).await;
                route.tx = None;
            }
        }
    }

    /// The tap ended well: the rest of the rows, then a final checkpoint
    /// for every stream.
    async fn finish(&mut self) {
        let at = now_ns();
        for route in self.routes.values_mut() {
            if !route.alive() {
                continue;
            }
            // A stream the tap never started gets its checkpoint without a
            // schema: nothing is written, and a full-table stream's table is
            // not replaced by an empty one.
            route.flush().await;
            let (state, position) = match &self.last_state {
                Some(v) => (
                    checkpoint_state(v, at),
                    format!("STATE #{} (the tap's last)", self.states),
                ),
                None => (
                    route.input_state.clone().unwrap_or(Value::Null),
                    "end of the tap's output (it sent no STATE)".to_string(),
                ),
            };
            route
                .send(Ok(Message::Checkpoint(Checkpoint { state, position })))
                .await;
        }
    }
}

fn quarantine_of(e: &ConnectorError, record: &[u8]) -> Result<arrow::array::RecordBatch, Fatal> {
    let (file, line, column, reason) = match e {
        ConnectorError::BadRecord {
            location, message, ..
        } => (
            location.file.clone(),
            location.line,
            location.column.clone(),
            message.clone(),
        ),
        other => (None, None, None, other.to_string()),
    };
    let mut q = sluice_core::quarantine::QuarantineBuilder::default();
    q.push(&sluice_core::quarantine::QuarantinedRow {
        file,
        line,
        column,
        value: None,
        reason,
        record: Some(String::from_utf8_lossy(record).into_owned()),
    });
    q.finish()
        .map_err(|e| Fatal(ConnectorError::Internal(e.to_string())))
}

/// The path of a `file://` URL (or a plain path), relative to `dir`.
pub fn local_path(dir: &Path, url: &str) -> Option<PathBuf> {
    let path = match url.strip_prefix("file://") {
        Some(rest) => rest,
        None if url.contains("://") => return None,
        None => url,
    };
    Some(dir.join(path))
}
