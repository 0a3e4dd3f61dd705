//! `sluice singer target DEST`: Sluice's destinations as a Singer target.
//!
//! ```text
//!  stdin ─► message::parse ─► SCHEMA: open a writer for <schema>.<stream>
//!                              RECORD: RecordBuffer ─► Arrow batch ─► writer
//!                              STATE:  checkpoint(seq) on every writer;
//!                                      echoed on stdout once every stream that
//!                                      had data before it has committed it
//!  end of input: finish every writer, echo the last STATE
//! ```
//!
//! A STATE reaches stdout only when the data before it is durable, so a
//! Singer runner (Meltano) that saves what the target prints never saves a
//! bookmark ahead of the data.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::Value;
use sluice_connectors::singer::decode::RecordBuffer;
use sluice_connectors::singer::lines::{Lines, read_in_thread};
use sluice_connectors::singer::message::{SingerMessage, parse};
use sluice_connectors::singer::stream_schema;
use sluice_core::TableName;
use sluice_core::config::{OnError, WriteMode, parse_project};
use sluice_core::connector::{
    Checkpoint, CommittedState, ConnectorError, Destination, Message, RecordLocation, StreamWriter,
    WriteRequest,
};
use sluice_core::evolution::EvolutionPolicy;
use sluice_core::names::sanitize_identifier;
use sluice_core::quarantine::{QuarantineBuilder, QuarantinedRow};

use crate::output::UserError;
use crate::project::Project;
use crate::registry::build_destination;

/// Options of `sluice singer target`.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// A destination of the project, or `lake`.
    pub destination: String,
    /// A JSON file (or inline JSON) defining the destination
    /// (`{"type": "postgres", …}`), for use outside a project (Meltano).
    pub config: Option<PathBuf>,
    /// Schema the streams' tables land in.
    pub schema: String,
    /// Bad records go to quarantine instead of failing.
    pub quarantine: bool,
}

struct Target {
    writer: Box<dyn StreamWriter>,
    buffer: RecordBuffer,
    schema: arrow::datatypes::SchemaRef,
    /// STATE count when the stream's first record arrived (`None`: no data yet).
    first_data_at: Option<u64>,
    /// The last STATE number whose data the destination committed.
    committed: u64,
    /// The destination's checkpoint number for this stream before this run:
    /// checkpoints continue from it (the lake skips quarantine commits it
    /// has already recorded).
    base: u64,
}

/// Read Singer messages on stdin into `options.destination`.
pub async fn target(dir: Option<&Path>, options: &TargetOptions) -> Result<ExitCode> {
    let project = target_project(dir, options)?;
    let name = if options.config.is_some() {
        "target"
    } else {
        options.destination.as_str()
    };
    let destination = build_destination(&project, Some(name))?;
    let run_id = uuid::Uuid::now_v7().to_string();
    let mut t = TargetRun {
        destination,
        run_id,
        schema: sanitize_identifier(&options.schema),
        on_error: if options.quarantine {
            OnError::Quarantine
        } else {
            OnError::Fail
        },
        streams: HashMap::new(),
        states: 0,
        pending: Vec::new(),
        rows: 0,
        rows_since_checkpoint: 0,
        last_checkpoint: None,
    };
    let result = t.pump().await;
    match result {
        Ok(()) => {
            t.finish().await?;
            tracing::info!(
                "singer target: {} rows into {} stream(s), {} STATE message(s)",
                t.rows,
                t.streams.len(),
                t.states
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for s in t.streams.values_mut() {
                s.writer.abort().await;
            }
            Err(e)
        }
    }
}

/// The project (for a destination by name), or a project made of the
/// `--config` file's destination.
fn target_project(dir: Option<&Path>, options: &TargetOptions) -> Result<Project> {
    let Some(config) = &options.config else {
        return Project::load(dir);
    };
    let inline = config.to_string_lossy().trim_start().starts_with('{');
    let text = if inline {
        config.to_string_lossy().into_owned()
    } else {
        std::fs::read_to_string(config)
            .with_context(|| format!("Cannot read `{}`", config.display()))?
    };
    let mut json: Value = serde_json::from_str(&text).map_err(|e| {
        UserError::error(
            format!("`{}` is not JSON: {e}", config.display()),
            Some("it holds the destination as in sluice.yml, e.g. {\"type\": \"lake\", \"url\": \"lake\"}".into()),
        )
    })?;
    if let Some(o) = json.as_object_mut()
        && !o.contains_key("type")
    {
        o.insert("type".into(), Value::String(options.destination.clone()));
    }
    let yml = format!("destinations:\n  target: {json}\n");
    // Errors name the file, never inline JSON (it may hold a password).
    let shown = if inline {
        PathBuf::from("--config (inline JSON)")
    } else {
        config.clone()
    };
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir()?,
    };
    let loaded = parse_project(&yml, &shown, None, |k| std::env::var(k).ok())?;
    let lake = sluice_lake::Lake::from_config(&dir, None, std::iter::empty())?;
    Ok(Project { dir, loaded, lake })
}

struct TargetRun {
    destination: Arc<dyn Destination>,
    run_id: String,
    schema: String,
    on_error: OnError,
    streams: HashMap<String, Target>,
    states: u64,
    /// STATEs received and not yet echoed: number, value, and whether it
    /// was offered to the writers as a checkpoint.
    pending: Vec<(u64, Value, bool)>,
    rows: u64,
    rows_since_checkpoint: u64,
    last_checkpoint: Option<std::time::Instant>,
}

fn located(line: u64, stream: Option<&str>, message: String) -> ConnectorError {
    ConnectorError::BadRecord {
        location: RecordLocation {
            file: Some("<stdin>".into()),
            line: Some(line),
            ..Default::default()
        },
        message: match stream {
            Some(s) => format!("stream `{s}`: {message}"),
            None => message,
        },
        hint: Some("the input must be Singer messages, one JSON object per line".into()),
    }
}

impl TargetRun {
    async fn pump(&mut self) -> Result<()> {
        // Stdin is read on a blocking thread that lets the pipe fill.
        let mut chunks = read_in_thread(std::io::stdin());
        let mut lines = Lines::default();
        while let Some(chunk) = chunks.recv().await {
            lines.extend(&chunk.context("cannot read stdin")?);
            while let Some((line_no, line)) = lines.next_line() {
                self.handle(line, line_no).await?;
            }
        }
        if let Some((line_no, line)) = lines.last_line() {
            self.handle(&line, line_no).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, line: &[u8], line_no: u64) -> Result<()> {
        let message = parse(line).map_err(|e| located(line_no, e.stream.as_deref(), e.message))?;
        match message {
            SingerMessage::Schema {
                stream,
                schema,
                key_properties,
                ..
            } => {
                let mapped = stream_schema(&stream, &schema, &key_properties)
                    .map_err(|e| located(line_no, Some(&stream), e.to_string()))?;
                if let Some(t) = self.streams.get_mut(stream.as_ref()) {
                    if t.schema != mapped.schema {
                        Self::flush(t, &mut self.rows).await?;
                        t.buffer = RecordBuffer::new(&mapped, "<stdin>", 65_536, self.on_error);
                        t.schema = mapped.schema.clone();
                        t.writer
                            .write(arrow::array::RecordBatch::new_empty(mapped.schema.clone()))
                            .await?;
                    }
                    return Ok(());
                }
                let table = TableName::new(self.schema.clone(), sanitize_identifier(&stream));
                let mode =
                    if !key_properties.is_empty() && self.destination.supports(WriteMode::Merge) {
                        WriteMode::Merge
                    } else {
                        WriteMode::Append
                    };
                let stream_id = format!("singer.{stream}");
                let base = match self.destination.committed_state(&table, &stream_id).await? {
                    CommittedState::Table(Some(s)) => s.seq,
                    _ => 0,
                };
                let mut writer = self
                    .destination
                    .open(WriteRequest {
                        table: table.clone(),
                        mode,
                        primary_key: key_properties.clone(),
                        full_refresh: false,
                        run_id: self.run_id.clone(),
                        stream_id,
                        evolution: EvolutionPolicy::default(),
                        on_error: self.on_error,
                    })
                    .await?;
                writer
                    .write(arrow::array::RecordBatch::new_empty(mapped.schema.clone()))
                    .await?;
                tracing::info!(
                    "stream `{stream}` → {} ({mode})",
                    self.destination.describe(&table)
                );
                self.streams.insert(
                    stream.to_string(),
                    Target {
                        writer,
                        buffer: RecordBuffer::new(&mapped, "<stdin>", 65_536, self.on_error),
                        schema: mapped.schema.clone(),
                        first_data_at: None,
                        committed: 0,
                        base,
                    },
                );
            }
            SingerMessage::Record { stream, record, .. } => {
                let Some(t) = self.streams.get_mut(stream.as_ref()) else {
                    return Err(located(
                        line_no,
                        Some(&stream),
                        "a RECORD before the stream's SCHEMA".into(),
                    )
                    .into());
                };
                t.first_data_at.get_or_insert(self.states);
                self.rows_since_checkpoint += 1;
                if let Err(e) = t.buffer.push(record, line_no) {
                    if self.on_error != OnError::Quarantine {
                        return Err(e.into());
                    }
                    let mut q = QuarantineBuilder::default();
                    q.push(&QuarantinedRow {
                        file: Some("<stdin>".into()),
                        line: Some(line_no),
                        reason: e.to_string(),
                        record: Some(String::from_utf8_lossy(record).into_owned()),
                        ..Default::default()
                    });
                    t.writer.quarantine(q.finish()?).await?;
                }
                if t.buffer.is_full() {
                    Self::flush(t, &mut self.rows).await?;
                }
            }
            SingerMessage::State { value } => {
                self.states += 1;
                let seq = self.states;
                // Frequent STATEs are remembered, not each turned into a
                // checkpoint (see the tap source's CHECKPOINT_ROWS).
                let due = self
                    .last_checkpoint
                    .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1))
                    || self.rows_since_checkpoint >= 50_000;
                if !due {
                    // Only the newest of the STATEs between two checkpoints
                    // can ever be echoed (as the last one, at the end).
                    if self.pending.last().is_some_and(|(_, _, due)| !due) {
                        self.pending.pop();
                    }
                    self.pending.push((seq, value, false));
                    return Ok(());
                }
                self.rows_since_checkpoint = 0;
                self.last_checkpoint = Some(std::time::Instant::now());
                let checkpoint = Checkpoint {
                    state: value.clone(),
                    position: format!("STATE #{seq} (line {line_no})"),
                };
                for t in self.streams.values_mut() {
                    Self::flush(t, &mut self.rows).await?;
                    if let Some(c) = t.writer.checkpoint(t.base + seq, &checkpoint).await? {
                        t.committed = c.seq.saturating_sub(t.base);
                    }
                }
                self.pending.push((seq, value, true));
                self.echo_committed()?;
            }
            SingerMessage::Batch {
                stream,
                format,
                compression,
                manifest,
            } => {
                let Some(t) = self.streams.get_mut(stream.as_ref()) else {
                    return Err(located(
                        line_no,
                        Some(&stream),
                        "a BATCH before the stream's SCHEMA".into(),
                    )
                    .into());
                };
                t.first_data_at.get_or_insert(self.states);
                Self::flush(t, &mut self.rows).await?;
                for url in &manifest {
                    Self::batch_file(t, url, &format, compression.as_deref(), &mut self.rows)
                        .await
                        .map_err(|e| {
                            located(line_no, Some(&stream), format!("BATCH `{url}`: {e}"))
                        })?;
                }
            }
            SingerMessage::ActivateVersion { stream, version } => {
                tracing::debug!("stream `{stream}`: version {version} activated (no-op)");
            }
            SingerMessage::Other { kind } => {
                tracing::debug!("skipped a `{kind}` message (line {line_no})");
            }
        }
        Ok(())
    }

    async fn batch_file(
        t: &mut Target,
        url: &str,
        format: &str,
        compression: Option<&str>,
        rows: &mut u64,
    ) -> Result<()> {
        let cwd = std::env::current_dir()?;
        let path = sluice_connectors::singer::tap::local_path(&cwd, url)
            .ok_or_else(|| anyhow::anyhow!("only local `file://` BATCH files are read"))?;
        match format {
            "jsonl" => {
                let mut reader = sluice_connectors::singer::batch::open_jsonl(&path, compression)?;
                t.buffer.set_origin(&path.display().to_string());
                let mut line = Vec::new();
                let mut n = 0u64;
                loop {
                    line.clear();
                    if std::io::BufRead::read_until(&mut reader, b'\n', &mut line)? == 0 {
                        break;
                    }
                    n += 1;
                    let text = line.trim_ascii();
                    if !text.is_empty() {
                        t.buffer.push(text, n)?;
                        if t.buffer.is_full() {
                            Self::flush(t, rows).await?;
                        }
                    }
                }
                Self::flush(t, rows).await?;
                t.buffer.set_origin("<stdin>");
            }
            "parquet" => {
                for batch in
                    sluice_connectors::singer::batch::read_parquet(&path, &t.schema, 65_536)?
                {
                    let batch = batch?;
                    *rows += batch.num_rows() as u64;
                    t.writer.write(batch).await?;
                }
            }
            other => anyhow::bail!("BATCH format `{other}` is not supported (jsonl, parquet)"),
        }
        Ok(())
    }

    async fn flush(t: &mut Target, rows: &mut u64) -> Result<()> {
        for m in t.buffer.take()? {
            match m {
                Message::Batch(b) => {
                    *rows += b.num_rows() as u64;
                    t.writer.write(b).await?;
                }
                Message::Quarantine(q) => t.writer.quarantine(q).await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Echo the newest STATE whose data every stream has committed.
    fn echo_committed(&mut self) -> Result<()> {
        let ready = self.pending.iter().rposition(|(seq, _, _)| {
            self.streams.values().all(|t| match t.first_data_at {
                Some(first) if first < *seq => t.committed >= *seq,
                _ => true,
            })
        });
        if let Some(i) = ready {
            let (_, value, _) = &self.pending[i];
            emit_state(value)?;
            self.pending.drain(..=i);
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        // Rows after the last STATE are committed under it (or under a null
        // state when the input had none).
        let seq = self.states + 1;
        let last = self.pending.last().map(|(_, v, _)| v.clone());
        let checkpoint = Checkpoint {
            state: last.clone().unwrap_or(Value::Null),
            position: "end of input".into(),
        };
        for t in self.streams.values_mut() {
            Self::flush(t, &mut self.rows).await?;
            if let Some(c) = t.writer.checkpoint(t.base + seq, &checkpoint).await? {
                t.committed = c.seq.saturating_sub(t.base);
            }
            if let Some(c) = t.writer.finish().await? {
                t.committed = c.seq.saturating_sub(t.base);
            }
        }
        // The last STATE is echoed only if every stream committed its data
        // (a Singer target as destination may confirm less).
        if let Some(value) = last {
            self.pending.push((seq, value, true));
            let before = self.pending.len();
            self.echo_committed()?;
            if self.pending.len() == before {
                tracing::warn!(
                    "the destination did not confirm every stream's rows; the last STATE is not echoed"
                );
            }
        }
        self.pending.clear();
        Ok(())
    }
}

/// `sluice singer target --about`: the Singer `--about` JSON.
pub fn about() {
    let destination_keys = serde_json::json!({
        "type": {"type": "string", "enum": ["lake", "postgres", "parquet", "csv", "jsonl", "singer"],
                 "description": "the destination type (default: the DEST argument)"},
        "url": {"type": "string", "description": "lake: folder or s3:// URL; postgres: connection URL"},
        "options": {"type": "object", "description": "lake: object-store options"},
        "schema": {"type": "string", "description": "postgres: the schema tables land in"},
        "path": {"type": "string", "description": "parquet, csv, jsonl: the output folder"},
        "compression": {"type": "string", "description": "parquet: snappy, zstd or none"}
    });
    let about = serde_json::json!({
        "name": "sluice-target",
        "description": "Sluice's destinations as a Singer target: Delta lake, PostgreSQL, Parquet/CSV/JSON Lines folders; STATE echoed once committed",
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": ["about", "batch"],
        "settings": {"type": "object", "properties": destination_keys},
    });
    crate::outln!(
        "{}",
        serde_json::to_string_pretty(&about).unwrap_or_default()
    );
}

fn emit_state(value: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
