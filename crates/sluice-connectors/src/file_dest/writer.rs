//! The file destination's `StreamWriter`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use sluice_core::config::{FileFormat, WriteMode};
use sluice_core::connector::{Checkpoint, Committed, ConnectorError, StreamWriter, WriteRequest};
use sluice_core::evolution::{SchemaChange, conform_batch, evolve, nullable_schema, same_type};
use sluice_core::quarantine;

const SCHEMA_FILE: &str = "_schema.json";
const COMMIT_ROWS: u64 = 5_000_000;
const COMMIT_INTERVAL: Duration = Duration::from_secs(60);

enum Encoder {
    Parquet(ArrowWriter<BufWriter<File>>),
    Csv(arrow::csv::Writer<BufWriter<File>>),
    Jsonl(arrow::json::LineDelimitedWriter<BufWriter<File>>),
}

/// One part file being written.
struct Part {
    tmp: PathBuf,
    path: PathBuf,
    encoder: Encoder,
}

impl Part {
    fn create(
        dir: &Path,
        name: String,
        format: FileFormat,
        compression: parquet::basic::Compression,
        schema: SchemaRef,
    ) -> Result<Part, ConnectorError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            ConnectorError::external(format!("Cannot create `{}`", dir.display()), e)
        })?;
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}.tmp"));
        let file = File::create(&tmp).map_err(|e| {
            ConnectorError::external(format!("Cannot create `{}`", tmp.display()), e)
        })?;
        let out = BufWriter::with_capacity(1 << 20, file);
        let encoder = match format {
            FileFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(compression)
                    .build();
                Encoder::Parquet(
                    ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(|e| {
                        ConnectorError::external(format!("Cannot write `{}`", tmp.display()), e)
                    })?,
                )
            }
            FileFormat::Csv => Encoder::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            ),
            FileFormat::Jsonl => Encoder::Jsonl(arrow::json::LineDelimitedWriter::new(out)),
        };
        Ok(Part { tmp, path, encoder })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ConnectorError> {
        let r = match &mut self.encoder {
            Encoder::Parquet(w) => w.write(batch).map_err(|e| e.to_string()),
            Encoder::Csv(w) => w.write(batch).map_err(|e| e.to_string()),
            Encoder::Jsonl(w) => w.write(batch).map_err(|e| e.to_string()),
        };
        r.map_err(|e| ConnectorError::External {
            message: format!("Cannot write `{}`: {e}", self.tmp.display()),
            source: None,
            retryable: false,
        })
    }

    /// Finish the file and make it visible.
    fn publish(self) -> Result<PathBuf, ConnectorError> {
        let err = |e: String| ConnectorError::External {
            message: format!("Cannot finish `{}`: {e}", self.tmp.display()),
            source: None,
            retryable: false,
        };
        match self.encoder {
            Encoder::Parquet(w) => {
                w.close().map_err(|e| err(e.to_string()))?;
            }
            Encoder::Csv(w) => {
                let mut inner = w.into_inner();
                std::io::Write::flush(&mut inner).map_err(|e| err(e.to_string()))?;
            }
            Encoder::Jsonl(mut w) => {
                w.finish().map_err(|e| err(e.to_string()))?;
                let mut inner = w.into_inner();
                std::io::Write::flush(&mut inner).map_err(|e| err(e.to_string()))?;
            }
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|e| err(e.to_string()))?;
        Ok(self.path)
    }

    fn discard(self) {
        drop(self.encoder);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes one stream as part files of one folder.
pub struct FileStreamWriter {
    dir: PathBuf,
    format: FileFormat,
    compression: parquet::basic::Compression,
    req: WriteRequest,
    committed_schema: Option<SchemaRef>,
    schema: Option<SchemaRef>,
    changes: Vec<SchemaChange>,
    part: Option<Part>,
    sealed: Vec<Part>,
    quarantine: Option<Part>,
    part_no: usize,
    pending_rows: u64,
    pending_quarantined: u64,
    written_this_run: Vec<PathBuf>,
    offered: Option<(u64, Checkpoint)>,
    last_commit: Instant,
}

impl FileStreamWriter {
    /// Open a writer for the table folder `dir`.
    pub fn open(
        dir: PathBuf,
        format: FileFormat,
        compression: parquet::basic::Compression,
        req: WriteRequest,
    ) -> Result<Self, ConnectorError> {
        let committed_schema = if req.full_refresh {
            None
        } else {
            read_schema(&dir)?
        };
        Ok(FileStreamWriter {
            dir,
            format,
            compression,
            req,
            committed_schema,
            schema: None,
            changes: Vec::new(),
            part: None,
            sealed: Vec::new(),
            quarantine: None,
            part_no: 0,
            pending_rows: 0,
            pending_quarantined: 0,
            written_this_run: Vec::new(),
            offered: None,
            last_commit: Instant::now(),
        })
    }

    fn part_name(&mut self, suffix: &str) -> String {
        self.part_no += 1;
        format!(
            "part-{}-{:05}{suffix}.{}",
            self.req.run_id,
            self.part_no,
            self.format.extension()
        )
    }

    fn accept_schema(&mut self, incoming: &SchemaRef) -> Result<SchemaRef, ConnectorError> {
        let base = self.schema.as_ref().or(self.committed_schema.as_ref());
        let target = evolved_schema(base, incoming, &self.req, &mut self.changes)?;
        if self.schema.as_ref() != Some(&target) {
            if let Some(part) = self.part.take() {
                self.sealed.push(part);
            }
            self.schema = Some(target.clone());
        }
        Ok(target)
    }

    fn commit(&mut self, seq: u64, checkpoint: Checkpoint) -> Result<Committed, ConnectorError> {
        if let Some(part) = self.part.take() {
            self.sealed.push(part);
        }
        let mut published = Vec::new();
        for part in self.sealed.drain(..) {
            published.push(part.publish()?);
        }
        if let Some(q) = self.quarantine.take() {
            q.publish()?;
        }
        if let Some(schema) = &self.schema {
            write_schema(&self.dir, schema)?;
            self.committed_schema = Some(schema.clone());
        }
        self.written_this_run.extend(published);
        let committed = Committed {
            seq,
            checkpoint,
            rows: self.pending_rows,
            quarantined: self.pending_quarantined,
            version: None,
            changes: std::mem::take(&mut self.changes),
        };
        self.pending_rows = 0;
        self.pending_quarantined = 0;
        self.last_commit = Instant::now();
        Ok(committed)
    }

    /// Overwrite: delete the parts that this run did not write.
    fn remove_old_parts(&self) -> Result<(), ConnectorError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("part-") && !self.written_this_run.contains(&path) {
                std::fs::remove_file(&path).map_err(|e| {
                    ConnectorError::external(format!("Cannot delete `{}`", path.display()), e)
                })?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl StreamWriter for FileStreamWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        let target = self.accept_schema(&batch.schema())?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform_batch(&batch, &target).map_err(|e| ConnectorError::External {
            message: format!("Table `{}`: {e}", self.req.table),
            source: None,
            retryable: false,
        })?;
        if self.part.is_none() {
            let name = self.part_name("");
            self.part = Some(Part::create(
                &self.dir,
                name,
                self.format,
                self.compression,
                target,
            )?);
        }
        if let Some(part) = self.part.as_mut() {
            part.write(&batch)?;
        }
        self.pending_rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn quarantine(&mut self, rows: RecordBatch) -> Result<(), ConnectorError> {
        let now = chrono::Utc::now().timestamp_micros();
        let stored =
            quarantine::with_run_columns(&rows, &self.req.run_id, &self.req.stream_id, now)
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        if self.quarantine.is_none() {
            let qdir = self
                .dir
                .with_file_name(format!("{}__quarantine", self.req.table.name));
            let name = self.part_name("");
            self.quarantine = Some(Part::create(
                &qdir,
                name,
                self.format,
                self.compression,
                quarantine::stored_schema(),
            )?);
        }
        if let Some(q) = self.quarantine.as_mut() {
            q.write(&stored)?;
        }
        self.pending_quarantined += stored.num_rows() as u64;
        Ok(())
    }

    async fn checkpoint(
        &mut self,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<Option<Committed>, ConnectorError> {
        self.offered = Some((seq, checkpoint.clone()));
        let replace = self.req.mode == WriteMode::Overwrite || self.req.full_refresh;
        if replace
            || (self.pending_rows < COMMIT_ROWS && self.last_commit.elapsed() < COMMIT_INTERVAL)
        {
            return Ok(None);
        }
        let (seq, cp) = self
            .offered
            .take()
            .ok_or_else(|| ConnectorError::Internal("checkpoint".into()))?;
        self.commit(seq, cp).map(Some)
    }

    async fn finish(&mut self) -> Result<Option<Committed>, ConnectorError> {
        let Some((seq, cp)) = self.offered.take() else {
            if self.pending_rows > 0 || self.pending_quarantined > 0 {
                return Err(ConnectorError::Internal(format!(
                    "stream `{}` ended with {} rows after its last checkpoint (the source broke the connector contract)",
                    self.req.stream_id, self.pending_rows
                )));
            }
            return Ok(None);
        };
        let replace = self.req.mode == WriteMode::Overwrite || self.req.full_refresh;
        let announced = self.schema.is_some();
        let committed = self.commit(seq, cp)?;
        if replace && announced {
            self.remove_old_parts()?;
        }
        Ok(Some(committed))
    }

    async fn abort(&mut self) {
        if let Some(p) = self.part.take() {
            p.discard();
        }
        for p in self.sealed.drain(..) {
            p.discard();
        }
        if let Some(q) = self.quarantine.take() {
            q.discard();
        }
    }
}

/// Same column names in the same order, with types `same_type` accepts.
/// The schema a file-like writer writes next: `incoming` (made nullable)
/// when nothing was written yet, the current one when the columns are the
/// same, else the current one evolved by the stream's rules (new changes
/// recorded in `changes`).
pub(crate) fn evolved_schema(
    current: Option<&SchemaRef>,
    incoming: &SchemaRef,
    req: &WriteRequest,
    changes: &mut Vec<SchemaChange>,
) -> Result<SchemaRef, ConnectorError> {
    let incoming = nullable_schema(incoming);
    let Some(base) = current else {
        return Ok(incoming);
    };
    if same_columns(base, &incoming) {
        return Ok(base.clone());
    }
    let ev = evolve(base, &incoming, req.evolution).map_err(|refused| {
        ConnectorError::SchemaRefused {
            table: req.table.clone(),
            refused,
        }
    })?;
    for c in ev.changes {
        if !changes.contains(&c) {
            changes.push(c);
        }
    }
    Ok(ev.schema)
}

pub(crate) fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields().iter())
            .all(|(x, y)| x.name() == y.name() && same_type(x.data_type(), y.data_type()))
}

pub(crate) fn read_schema(dir: &Path) -> Result<Option<SchemaRef>, ConnectorError> {
    let path = dir.join(SCHEMA_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Schema>(&text)
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| {
                ConnectorError::config(
                    format!("`{}` is not a valid schema file: {e}", path.display()),
                    Some("delete it and re-run with `--full-refresh`".to_string()),
                )
            }),
        Err(_) => Ok(None),
    }
}

pub(crate) fn write_schema(dir: &Path, schema: &SchemaRef) -> Result<(), ConnectorError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ConnectorError::external(format!("Cannot create `{}`", dir.display()), e))?;
    let text = serde_json::to_string_pretty(schema.as_ref())
        .map_err(|e| ConnectorError::Internal(e.to_string()))?;
    let tmp = dir.join(format!("{SCHEMA_FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.join(SCHEMA_FILE)))
        .map_err(|e| {
            ConnectorError::external(
                format!("Cannot write `{}`", dir.join(SCHEMA_FILE).display()),
                e,
            )
        })
}
