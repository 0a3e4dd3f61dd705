//! The Singer target's `StreamWriter`: one target process for one stream.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use serde_json::{Value, json};
use sluice_core::config::WriteMode;
use sluice_core::connector::{
    Checkpoint, Committed, ConnectorError, Result, StreamWriter, Unconfirmed, WriteRequest,
};
use sluice_core::evolution::{SchemaChange, conform_batch};
use sluice_core::quarantine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use crate::file_dest::{evolved_schema, read_schema, write_schema};
use crate::singer::encode::{RecordEncoder, activate_version_line, schema_line, state_line};
use crate::singer::process::{Plugin, RunFiles, Running};

/// Bytes buffered before they go down the pipe.
const PIPE_BUFFER: usize = 1 << 20;

/// How long to wait for the stdout reader after the target exited (a
/// grandchild may hold the pipe open).
const READER_GRACE: Duration = Duration::from_secs(10);

/// A STATE sent to the target and not yet echoed.
#[derive(Debug)]
struct Sent {
    seq: u64,
    /// Rows sent before it, in total.
    rows: u64,
    /// Quarantined rows sent before it, in total.
    quarantined: u64,
    position: String,
    /// Schema changes first sent since the previous STATE.
    changes: Vec<SchemaChange>,
    /// The data schema sent so far.
    schema: Option<SchemaRef>,
}

/// The newest STATE the target echoed that Sluice sent (by seq).
#[derive(Debug, Default)]
struct Echoes {
    latest: Mutex<Option<(u64, Value)>>,
    /// Every JSON object line on stdout, ours or not.
    lines: AtomicU64,
}

impl Echoes {
    fn take(&self) -> Option<(u64, Value)> {
        self.latest.lock().ok().and_then(|mut l| l.take())
    }
}

/// Writes one stream to its own target process.
pub(super) struct SingerWriter {
    req: WriteRequest,
    /// The stream name the target sees.
    stream: String,
    label: String,
    running: Option<Running>,
    stdin: Option<BufWriter<ChildStdin>>,
    reader: Option<JoinHandle<()>>,
    echoes: Arc<Echoes>,
    /// The config file, removed when the writer is dropped.
    _files: RunFiles,
    schema_dir: PathBuf,
    /// The schema confirmed by an earlier commit (this run's or a past one).
    committed_schema: Option<SchemaRef>,
    /// The data schema sent last.
    schema: Option<SchemaRef>,
    records: RecordEncoder,
    quarantine_records: Option<RecordEncoder>,
    changes: Vec<SchemaChange>,
    /// `Some(version)` when replacing (`overwrite`, `--full-refresh`): the
    /// records carry it, and one ACTIVATE_VERSION goes after the last of
    /// them, never before the first: a target drops the older versions only
    /// once the new rows are all there, so a run that fails half-way leaves
    /// the old table whole.
    version: Option<i64>,
    /// In replace mode the STATE waits for the end: the last offered one.
    offered: Option<(u64, Checkpoint)>,
    sent_rows: u64,
    sent_quarantined: u64,
    committed_rows: u64,
    committed_quarantined: u64,
    pending: VecDeque<Sent>,
    last_committed: Option<u64>,
    buf: Vec<u8>,
    unconfirmed: Unconfirmed,
}

impl SingerWriter {
    /// Start the target for `req`'s stream.
    pub(super) async fn open(
        plugin: Plugin,
        config: &Value,
        schema_dir: PathBuf,
        req: WriteRequest,
    ) -> Result<Self> {
        let replace = req.mode == WriteMode::Overwrite || req.full_refresh;
        let known = read_schema(&schema_dir)?;
        let committed_schema = if req.full_refresh { None } else { known };
        let mut files = RunFiles::default();
        let config_file = files.write(&plugin.dir, &plugin.label, "config", config)?;
        let mut running = plugin.spawn(
            &[std::ffi::OsStr::new("--config"), config_file.as_os_str()],
            true,
        )?;
        let stdin = running
            .stdin
            .take()
            .ok_or_else(|| ConnectorError::Internal("target stdin not piped".into()))?;
        let stdout = running
            .stdout
            .take()
            .ok_or_else(|| ConnectorError::Internal("target stdout not piped".into()))?;
        let echoes = Arc::new(Echoes::default());
        let reader = tokio::spawn(read_echoes(
            stdout,
            plugin.label.clone(),
            req.stream_id.clone(),
            echoes.clone(),
        ));
        let stream = req.table.name.clone();
        let version = replace.then(|| chrono::Utc::now().timestamp());
        let mut records = RecordEncoder::new(&stream);
        if let Some(v) = version {
            records = records.with_version(v);
        }
        Ok(SingerWriter {
            stream,
            label: plugin.label.clone(),
            running: Some(running),
            stdin: Some(BufWriter::with_capacity(PIPE_BUFFER, stdin)),
            reader: Some(reader),
            echoes,
            _files: files,
            schema_dir,
            committed_schema,
            schema: None,
            records,
            quarantine_records: None,
            changes: Vec::new(),
            version,
            offered: None,
            sent_rows: 0,
            sent_quarantined: 0,
            committed_rows: 0,
            committed_quarantined: 0,
            pending: VecDeque::new(),
            last_committed: None,
            buf: Vec::new(),
            unconfirmed: Unconfirmed::default(),
            req,
        })
    }

    /// Send `self.buf` down the pipe.
    async fn send(&mut self, flush: bool) -> Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(ConnectorError::Internal(format!(
                "{}: write after the input was closed",
                self.label
            )));
        };
        let mut result = stdin.write_all(&self.buf).await;
        if result.is_ok() && flush {
            result = stdin.flush().await;
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.stopped_reading(e).await),
        }
    }

    /// The target stopped reading its input: say why, from its exit.
    async fn stopped_reading(&mut self, e: std::io::Error) -> ConnectorError {
        self.stdin = None;
        let Some(running) = self.running.take() else {
            return ConnectorError::external(format!("Cannot write to {}", self.label), e);
        };
        match tokio::time::timeout(READER_GRACE, running.wait()).await {
            Ok(Err(exit)) => exit,
            Ok(Ok(())) => ConnectorError::External {
                message: format!(
                    "{} exited (code 0) before reading all of its input; the rows after its last echoed STATE were not confirmed",
                    self.label
                ),
                source: Some(Box::new(e)),
                retryable: false,
            },
            Err(_) => ConnectorError::External {
                message: format!("{} stopped reading its input", self.label),
                source: Some(Box::new(e)),
                retryable: false,
            },
        }
    }

    /// Evolve the schema sent so far with `incoming`; a changed schema goes
    /// to the target as a new SCHEMA message.
    async fn accept_schema(&mut self, incoming: &SchemaRef) -> Result<SchemaRef> {
        let base = self.schema.as_ref().or(self.committed_schema.as_ref());
        let target = evolved_schema(base, incoming, &self.req, &mut self.changes)?;
        if self.schema.as_ref() != Some(&target) {
            self.buf = schema_line(&self.stream, &target, &self.req.primary_key, &[]);
            self.send(false).await?;
            self.schema = Some(target.clone());
        }
        Ok(target)
    }

    /// Send STATE `seq` and remember what it covers.
    async fn send_state(&mut self, seq: u64, checkpoint: &Checkpoint) -> Result<()> {
        let value = json!({
            "bookmarks": { self.stream.as_str(): checkpoint.state },
            "sluice": { "seq": seq, "stream": self.req.stream_id },
        });
        self.buf = state_line(&value);
        self.send(true).await?;
        self.pending.push_back(Sent {
            seq,
            rows: self.sent_rows,
            quarantined: self.sent_quarantined,
            position: checkpoint.position.clone(),
            changes: std::mem::take(&mut self.changes),
            schema: self.schema.clone(),
        });
        Ok(())
    }

    /// The newest STATE the target echoed, as a commit of what was sent
    /// before it.
    fn take_echo(&mut self) -> Result<Option<Committed>> {
        let Some((seq, value)) = self.echoes.take() else {
            return Ok(None);
        };
        if self.last_committed.is_some_and(|last| seq <= last) {
            return Ok(None);
        }
        if !self.pending.iter().any(|s| s.seq == seq) {
            tracing::warn!(
                "{}: echoed STATE number {seq}, which Sluice did not send in this run; ignored",
                self.label
            );
            return Ok(None);
        }
        let Some(state) = value
            .get("bookmarks")
            .and_then(|b| b.get(&self.stream))
            .cloned()
        else {
            tracing::warn!(
                "{}: echoed STATE number {seq} without `bookmarks.{}`; ignored",
                self.label,
                self.stream
            );
            return Ok(None);
        };
        let mut changes = Vec::new();
        let mut covered = None;
        while let Some(sent) = self.pending.pop_front() {
            let done = sent.seq == seq;
            changes.extend(sent.changes.iter().cloned());
            if done {
                covered = Some(sent);
                break;
            }
        }
        let Some(sent) = covered else {
            return Err(ConnectorError::Internal(format!(
                "{}: STATE {seq} vanished from the pending list",
                self.label
            )));
        };
        if let Some(schema) = &sent.schema
            && self.committed_schema.as_ref() != Some(schema)
        {
            write_schema(&self.schema_dir, schema)?;
            self.committed_schema = Some(schema.clone());
        }
        let committed = Committed {
            seq,
            checkpoint: Checkpoint {
                state,
                position: sent.position,
            },
            rows: sent.rows - self.committed_rows,
            quarantined: sent.quarantined - self.committed_quarantined,
            version: None,
            changes,
        };
        self.committed_rows = sent.rows;
        self.committed_quarantined = sent.quarantined;
        self.last_committed = Some(seq);
        Ok(Some(committed))
    }

    /// Close the input, wait for the exit; the reader then has every echo.
    async fn close(&mut self) -> Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            let closed = match stdin.flush().await {
                Ok(()) => stdin.shutdown().await,
                Err(e) => Err(e),
            };
            if let Err(e) = closed {
                return Err(self.stopped_reading(e).await);
            }
        }
        if let Some(running) = self.running.take() {
            running.wait().await?;
        }
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(READER_GRACE, reader).await;
        }
        Ok(())
    }
}

#[async_trait]
impl StreamWriter for SingerWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let target = self.accept_schema(&batch.schema()).await?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform_batch(&batch, &target).map_err(|e| ConnectorError::External {
            message: format!("Table `{}`: {e}", self.req.table),
            source: None,
            retryable: false,
        })?;
        self.buf.clear();
        self.records
            .encode(&batch, &mut self.buf)
            .map_err(|e| encode_error(&self.req, e))?;
        self.send(false).await?;
        self.sent_rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn quarantine(&mut self, rows: RecordBatch) -> Result<()> {
        let now = chrono::Utc::now().timestamp_micros();
        let stored =
            quarantine::with_run_columns(&rows, &self.req.run_id, &self.req.stream_id, now)
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        self.buf.clear();
        if self.quarantine_records.is_none() {
            let stream = self.req.table.quarantine().name;
            self.buf = schema_line(&stream, &quarantine::stored_schema(), &[], &[]);
            self.quarantine_records = Some(RecordEncoder::new(&stream));
        }
        if let Some(encoder) = &self.quarantine_records {
            encoder
                .encode(&stored, &mut self.buf)
                .map_err(|e| encode_error(&self.req, e))?;
        }
        self.send(false).await?;
        self.sent_quarantined += stored.num_rows() as u64;
        Ok(())
    }

    async fn checkpoint(&mut self, seq: u64, checkpoint: &Checkpoint) -> Result<Option<Committed>> {
        if self.version.is_some() {
            self.offered = Some((seq, checkpoint.clone()));
            return Ok(None);
        }
        self.send_state(seq, checkpoint).await?;
        self.take_echo()
    }

    async fn finish(&mut self) -> Result<Option<Committed>> {
        if let Some((seq, checkpoint)) = self.offered.take() {
            self.buf.clear();
            if let Some(v) = self.version
                && self.schema.is_some()
            {
                self.buf = activate_version_line(&self.stream, v);
                self.send(false).await?;
            }
            self.send_state(seq, &checkpoint).await?;
        }
        self.close().await?;
        let committed = self.take_echo()?;
        self.unconfirmed = Unconfirmed {
            rows: self.sent_rows - self.committed_rows,
            quarantined: self.sent_quarantined - self.committed_quarantined,
        };
        let left = self.unconfirmed.rows + self.unconfirmed.quarantined;
        if left > 0 {
            let lines = self.echoes.lines.load(Ordering::Relaxed);
            if self.last_committed.is_none() && lines > 0 {
                tracing::warn!(
                    "{} printed {lines} STATE lines but none that Sluice sent, so the bookmark of `{}` did not advance and the next run sends its {left} rows again (hint: a target must print the STATE values it receives unchanged; one that rewrites them cannot confirm Sluice's checkpoints)",
                    self.label,
                    self.req.stream_id
                );
            } else if self.last_committed.is_none() {
                tracing::warn!(
                    "{} echoed no STATE: its {left} rows were delivered but not confirmed, so the bookmark of `{}` did not advance and the next run sends them again (hint: Singer targets must print each STATE value on stdout once the records before it are written; check the target's options, or use another target)",
                    self.label,
                    self.req.stream_id
                );
            } else {
                tracing::warn!(
                    "{}: {left} rows sent after the last STATE it echoed were not confirmed; the next run sends them again",
                    self.label
                );
            }
        }
        Ok(committed)
    }

    async fn abort(&mut self) {
        self.stdin = None;
        if let Some(running) = self.running.take() {
            running.kill().await;
        }
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }

    fn unconfirmed(&self) -> Unconfirmed {
        self.unconfirmed
    }
}

/// Reads the target's stdout: each line a STATE value (or, from some
/// targets, a whole STATE message); keeps the newest one Sluice sent.
async fn read_echoes(stdout: ChildStdout, label: String, stream_id: String, echoes: Arc<Echoes>) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut other_lines = 0u64;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(text) else {
            other_lines += 1;
            if other_lines <= 5 {
                tracing::debug!(
                    "{label}: stdout line that is not a STATE: {}",
                    sluice_core::connector::truncate(&String::from_utf8_lossy(text), 200)
                );
            }
            continue;
        };
        echoes.lines.fetch_add(1, Ordering::Relaxed);
        let value = if object.get("type").and_then(Value::as_str) == Some("STATE") {
            object.remove("value").unwrap_or(Value::Null)
        } else {
            Value::Object(object)
        };
        let ours = value
            .get("sluice")
            .filter(|s| s.get("stream").and_then(Value::as_str) == Some(stream_id.as_str()));
        let Some(seq) = ours.and_then(|s| s.get("seq")).and_then(Value::as_u64) else {
            tracing::debug!("{label}: a STATE Sluice did not send; ignored");
            continue;
        };
        tracing::debug!("{label}: echoed STATE {seq}");
        if let Ok(mut latest) = echoes.latest.lock()
            && latest.as_ref().is_none_or(|(s, _)| seq > *s)
        {
            *latest = Some((seq, value));
        }
    }
}

fn encode_error(req: &WriteRequest, e: arrow::error::ArrowError) -> ConnectorError {
    ConnectorError::Internal(format!(
        "cannot encode rows of `{}` as Singer records: {e}",
        req.table
    ))
}
