//! The lake's `StreamWriter`: batches become parquet files as they arrive
//! (memory stays bounded), and become visible only through a commit that
//! carries the checkpoint they are covered by.
//!
//! Commit cadence by plan:
//! - **append**: at a checkpoint once ≥ [`COMMIT_BYTES`] are pending or
//!   [`COMMIT_INTERVAL`] has passed, and at the end;
//! - **replace** (`overwrite`, or any mode with `--full-refresh`): one commit
//!   at the end that removes the old files and adds the new ones, so readers
//!   see the old table or the new one, never a mix;
//! - **merge**: rows are staged, then merged on the key at the same cadence
//!   as append (see `merge.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::{Action, Add, MetadataExt, StructType};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use sluice_core::TableName;
use sluice_core::config::WriteMode;
use sluice_core::connector::{Checkpoint, Committed, ConnectorError, StreamWriter, WriteRequest};
use sluice_core::evolution::{SchemaChange, conform_batch, evolve, same_type};
use sluice_core::quarantine;
use url::Url;

use crate::commit::{CommitMeta, commit};
use crate::error::{LakeError, Result};
use crate::location::Lake;
use crate::merge::Stager;
use crate::schema::lake_schema;

/// Pending parquet bytes that trigger a commit at the next checkpoint.
pub const COMMIT_BYTES: usize = 256 * 1024 * 1024;
/// Time since the last commit that triggers a commit at the next checkpoint.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(60);
/// The commit thresholds: [`COMMIT_BYTES`] and [`COMMIT_INTERVAL`], or
/// `SLUICE_COMMIT_BYTES` / `SLUICE_COMMIT_SECONDS` from the environment
/// (smaller values: more, smaller commits and less to redo after a crash).
pub fn commit_thresholds() -> (usize, Duration) {
    let bytes = std::env::var("SLUICE_COMMIT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(COMMIT_BYTES);
    let interval = std::env::var("SLUICE_COMMIT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(COMMIT_INTERVAL, Duration::from_secs_f64);
    (bytes, interval)
}

/// Data files roll over at this size.
const TARGET_FILE_SIZE: u64 = 256 * 1024 * 1024;
/// Rows per parquet row group.
const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Parquet settings for lake files.
pub(crate) fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// A streaming parquet sink into one folder of the lake.
pub(crate) struct FileSink {
    writer: RecordBatchWriter,
    schema: SchemaRef,
    name: String,
}

impl FileSink {
    pub(crate) fn new(
        url: &Url,
        schema: SchemaRef,
        options: &HashMap<String, String>,
        name: &str,
    ) -> Result<Self> {
        let writer =
            RecordBatchWriter::try_new(url.as_str(), schema.clone(), None, Some(options.clone()))
                .map_err(|e| LakeError::delta(&name, e))?
                .with_writer_properties(writer_properties())
                .with_target_file_size(TARGET_FILE_SIZE);
        Ok(FileSink {
            writer,
            schema,
            name: name.to_string(),
        })
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub(crate) async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.writer
            .write(batch)
            .await
            .map_err(|e| LakeError::delta(&self.name, e))
    }

    pub(crate) fn buffered_bytes(&self) -> usize {
        self.writer.buffer_len()
    }

    pub(crate) async fn flush(&mut self) -> Result<Vec<Add>> {
        self.writer
            .flush()
            .await
            .map_err(|e| LakeError::delta(&self.name, e))
    }

    pub(crate) fn abort(&mut self) {
        self.writer.reset();
    }
}

/// How this write lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Append,
    Replace { dedupe: bool },
    Merge,
}

/// Writes one stream into one lake table.
pub(crate) struct LakeStreamWriter {
    lake: Lake,
    req: WriteRequest,
    plan: Plan,
    table: Option<DeltaTable>,
    /// The table's schema as last committed (None: no table, or being replaced).
    committed_schema: Option<SchemaRef>,
    /// Schema of the pending data (the table schema after this write).
    schema: Option<SchemaRef>,
    changes: Vec<SchemaChange>,
    data: Option<FileSink>,
    stager: Option<Stager>,
    pending_adds: Vec<Add>,
    pending_rows: u64,
    quarantine: Option<FileSink>,
    pending_quarantine_adds: Vec<Add>,
    pending_quarantined: u64,
    offered: Option<(u64, Checkpoint)>,
    last_commit: Instant,
}

impl LakeStreamWriter {
    pub(crate) async fn open(lake: Lake, req: WriteRequest) -> Result<Self> {
        let plan = match (req.mode, req.full_refresh) {
            (WriteMode::Overwrite, _) | (WriteMode::Append, true) => {
                Plan::Replace { dedupe: false }
            }
            (WriteMode::Merge, true) => Plan::Replace { dedupe: true },
            (WriteMode::Merge, false) => Plan::Merge,
            (WriteMode::Append, false) => Plan::Append,
        };
        let table = lake.open(&req.table).await?;
        let committed_schema = match &table {
            Some(t) if !req.full_refresh => Some(table_schema(t, &req.table)?),
            _ => None,
        };
        Ok(LakeStreamWriter {
            lake,
            req,
            plan,
            table,
            committed_schema,
            schema: None,
            changes: Vec::new(),
            data: None,
            stager: None,
            pending_adds: Vec::new(),
            pending_rows: 0,
            quarantine: None,
            pending_quarantine_adds: Vec::new(),
            pending_quarantined: 0,
            offered: None,
            last_commit: Instant::now(),
        })
    }

    fn name(&self) -> String {
        self.req.table.to_string()
    }

    /// Apply the evolution rules to an incoming schema; returns the schema the
    /// batch must be conformed to.
    async fn accept_schema(&mut self, incoming: &SchemaRef) -> Result<SchemaRef, ConnectorError> {
        let incoming = lake_schema(incoming);
        let base = match (&self.schema, &self.committed_schema) {
            (Some(current), _) => Some(current.clone()),
            (None, Some(committed)) => Some(committed.clone()),
            (None, None) => None,
        };
        let target = match base {
            None => incoming,
            Some(base) => {
                if schemas_equal(&base, &incoming) {
                    base
                } else {
                    let evolution =
                        evolve(&base, &incoming, self.req.evolution).map_err(|refused| {
                            ConnectorError::SchemaRefused {
                                table: self.req.table.clone(),
                                refused,
                            }
                        })?;
                    for mut c in evolution.changes {
                        if let SchemaChange::Added { data_type, .. } = &mut c
                            && data_type == &arrow::datatypes::DataType::Null
                        {
                            *data_type = arrow::datatypes::DataType::Utf8;
                        }
                        if !self.changes.contains(&c) {
                            self.changes.push(c);
                        }
                    }
                    evolution.schema
                }
            }
        };
        let target = crate::schema::null_to_string(target);
        if self.schema.as_ref().is_some_and(|s| s == &target) {
            return Ok(target);
        }
        // The schema of the pending data changes: seal what was written in the
        // old schema (its files stay pending; readers fill new columns with NULL).
        self.seal_sinks().await?;
        self.schema = Some(target.clone());
        Ok(target)
    }

    async fn seal_sinks(&mut self) -> Result<()> {
        if let Some(mut sink) = self.data.take() {
            self.pending_adds.extend(sink.flush().await?);
        }
        if let Some(stager) = self.stager.as_mut() {
            stager.seal().await?;
        }
        Ok(())
    }

    fn data_sink(&mut self) -> Result<&mut FileSink> {
        let schema = self.schema.clone().ok_or_else(|| LakeError::Unsupported {
            table: self.name(),
            message: "data before schema (a bug in Sluice)".into(),
        })?;
        if self.data.is_none() {
            let url = self.lake.table_url(&self.req.table);
            self.data = Some(FileSink::new(
                &url,
                schema,
                self.lake.options(),
                &self.name(),
            )?);
        }
        self.data.as_mut().ok_or_else(|| LakeError::Unsupported {
            table: String::new(),
            message: "unreachable".into(),
        })
    }

    fn should_commit(&self) -> bool {
        let pending_bytes = self.data.as_ref().map_or(0, FileSink::buffered_bytes)
            + self.stager.as_ref().map_or(0, Stager::buffered_bytes);
        let (bytes, interval) = commit_thresholds();
        pending_bytes >= bytes || self.last_commit.elapsed() >= interval
    }

    /// Make everything pending durable under checkpoint `seq`.
    async fn commit(
        &mut self,
        seq: u64,
        checkpoint: Checkpoint,
    ) -> Result<Committed, ConnectorError> {
        let rows = self.pending_rows;
        let quarantined = self.pending_quarantined;
        let meta = CommitMeta {
            run_id: self.req.run_id.clone(),
            stream: self.req.stream_id.clone(),
            seq,
            state: checkpoint.state.clone(),
            position: checkpoint.position.clone(),
            rows,
        };
        self.commit_quarantine(&meta).await?;
        let version = match &self.schema {
            // Nothing was ever announced: no table to create, nothing to record in one.
            None if self.table.is_none() => None,
            // Nothing was announced, but the table exists: record the checkpoint
            // only (never empty a table because a source found nothing).
            None => {
                let name = self.name();
                let table = self
                    .table
                    .as_mut()
                    .ok_or_else(|| LakeError::NoSuchTable(self.req.table.clone()))?;
                let schema = table_schema(table, &self.req.table)?;
                Some(
                    commit_schema_and_adds(
                        table,
                        &name,
                        &schema,
                        Vec::new(),
                        Vec::new(),
                        SaveMode::Append,
                        Some(&meta),
                    )
                    .await?,
                )
            }
            Some(_) => Some(self.commit_data(&meta).await?),
        };
        self.pending_rows = 0;
        self.pending_quarantined = 0;
        self.last_commit = Instant::now();
        if let Some(t) = &self.table {
            self.committed_schema = Some(table_schema(t, &self.req.table)?);
        }
        if matches!(self.plan, Plan::Replace { .. }) {
            // Later commits of the same run append to the replaced table.
            self.plan = if self.plan == (Plan::Replace { dedupe: true }) {
                Plan::Merge
            } else {
                Plan::Append
            };
        }
        Ok(Committed {
            seq,
            checkpoint,
            rows,
            quarantined,
            version,
            changes: std::mem::take(&mut self.changes),
        })
    }

    async fn commit_data(&mut self, meta: &CommitMeta) -> Result<u64> {
        let name = self.name();
        let schema = self
            .schema
            .clone()
            .or_else(|| self.committed_schema.clone());
        let schema = schema.ok_or_else(|| LakeError::Unsupported {
            table: name.clone(),
            message: "no schema to commit (a bug in Sluice)".into(),
        })?;
        if self.table.is_none() {
            self.table = Some(create_table(&self.lake, &self.req.table, &schema).await?);
            self.committed_schema = Some(schema.clone());
        }
        let mut stager = self.stager.take();
        if let Some(mut sink) = self.data.take() {
            self.pending_adds.extend(sink.flush().await?);
        }
        let adds = std::mem::take(&mut self.pending_adds);
        let table = self
            .table
            .as_mut()
            .ok_or_else(|| LakeError::NoSuchTable(self.req.table.clone()))?;
        let result = match (self.plan, stager.as_mut()) {
            (Plan::Merge, Some(s)) => {
                let keys = &self.req.primary_key;
                s.merge_into(table, &self.lake, &schema, keys, meta).await
            }
            (Plan::Merge, None) => {
                commit_schema_and_adds(
                    table,
                    &name,
                    &schema,
                    adds,
                    Vec::new(),
                    SaveMode::Append,
                    Some(meta),
                )
                .await
            }
            (Plan::Replace { dedupe }, stager) => {
                let adds = match (dedupe, stager) {
                    (true, Some(s)) => {
                        s.dedupe_into_files(table, &self.lake, &schema, &self.req.primary_key)
                            .await?
                    }
                    _ => adds,
                };
                let removes = all_removes(table, &name)?;
                commit_schema_and_adds(
                    table,
                    &name,
                    &schema,
                    adds,
                    removes,
                    SaveMode::Overwrite,
                    Some(meta),
                )
                .await
            }
            (Plan::Append, _) => {
                commit_schema_and_adds(
                    table,
                    &name,
                    &schema,
                    adds,
                    Vec::new(),
                    SaveMode::Append,
                    Some(meta),
                )
                .await
            }
        };
        if let Some(s) = stager.as_mut() {
            s.cleanup().await;
        }
        result
    }

    async fn commit_quarantine(&mut self, meta: &CommitMeta) -> Result<()> {
        let Some(mut sink) = self.quarantine.take() else {
            return Ok(());
        };
        self.pending_quarantine_adds.extend(sink.flush().await?);
        let adds = std::mem::take(&mut self.pending_quarantine_adds);
        if adds.is_empty() {
            return Ok(());
        }
        let qname = self.req.table.quarantine();
        let mut table = match self.lake.open(&qname).await? {
            Some(t) => t,
            None => create_table(&self.lake, &qname, &quarantine::stored_schema()).await?,
        };
        // A run that died after this commit but before the data commit left
        // these rows already; don't add them twice.
        if let Some(done) = crate::commit::committed_meta(&table, &meta.stream).await?
            && done.seq >= meta.seq
        {
            return Ok(());
        }
        let qmeta = CommitMeta {
            rows: self.pending_quarantined,
            ..meta.clone()
        };
        let schema = quarantine::stored_schema();
        commit_schema_and_adds(
            &mut table,
            &qname.to_string(),
            &schema,
            adds,
            Vec::new(),
            SaveMode::Append,
            Some(&qmeta),
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl StreamWriter for LakeStreamWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        let target = self.accept_schema(&batch.schema()).await?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let sent: std::collections::BTreeSet<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batch = conform_batch(&batch, &target).map_err(|source| LakeError::Arrow {
            table: self.name(),
            source,
        })?;
        let rows = batch.num_rows() as u64;
        match self.plan {
            Plan::Merge | Plan::Replace { dedupe: true } => {
                if self.stager.is_none() {
                    self.stager = Some(Stager::new(&self.lake, &self.req.table, &self.req.run_id));
                }
                let stager = self
                    .stager
                    .as_mut()
                    .ok_or_else(|| ConnectorError::Internal("stager".into()))?;
                stager.write(batch, &target, sent).await?;
            }
            _ => self.data_sink()?.write(batch).await?,
        }
        self.pending_rows += rows;
        Ok(())
    }

    async fn quarantine(&mut self, rows: RecordBatch) -> Result<(), ConnectorError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_micros();
        let stored =
            quarantine::with_run_columns(&rows, &self.req.run_id, &self.req.stream_id, now)
                .map_err(|source| LakeError::Arrow {
                    table: self.req.table.quarantine().to_string(),
                    source,
                })?;
        if self.quarantine.is_none() {
            let qname = self.req.table.quarantine();
            self.quarantine = Some(FileSink::new(
                &self.lake.table_url(&qname),
                quarantine::stored_schema(),
                self.lake.options(),
                &qname.to_string(),
            )?);
        }
        self.pending_quarantined += stored.num_rows() as u64;
        if let Some(q) = self.quarantine.as_mut() {
            q.write(stored).await?;
        }
        Ok(())
    }

    async fn checkpoint(
        &mut self,
        seq: u64,
        checkpoint: &Checkpoint,
    ) -> Result<Option<Committed>, ConnectorError> {
        self.offered = Some((seq, checkpoint.clone()));
        if matches!(self.plan, Plan::Replace { .. }) || !self.should_commit() {
            return Ok(None);
        }
        let (seq, cp) = self
            .offered
            .take()
            .ok_or_else(|| ConnectorError::Internal("checkpoint".into()))?;
        self.commit(seq, cp).await.map(Some)
    }

    async fn finish(&mut self) -> Result<Option<Committed>, ConnectorError> {
        match self.offered.take() {
            Some((seq, cp)) => self.commit(seq, cp).await.map(Some),
            None if self.pending_rows > 0 || self.pending_quarantined > 0 => {
                Err(ConnectorError::Internal(format!(
                    "stream `{}` ended with {} rows after its last checkpoint (the source broke the connector contract)",
                    self.req.stream_id, self.pending_rows
                )))
            }
            None => Ok(None),
        }
    }

    async fn abort(&mut self) {
        if let Some(mut s) = self.data.take() {
            s.abort();
        }
        if let Some(mut q) = self.quarantine.take() {
            q.abort();
        }
        if let Some(mut s) = self.stager.take() {
            s.abort();
            s.cleanup().await;
        }
        self.pending_adds.clear();
        self.pending_quarantine_adds.clear();
    }
}

/// The Arrow schema of a loaded table.
pub(crate) fn table_schema(table: &DeltaTable, name: &TableName) -> Result<SchemaRef> {
    let snapshot = table.snapshot().map_err(|e| LakeError::delta(name, e))?;
    let kernel = snapshot.schema();
    let arrow: arrow::datatypes::Schema =
        kernel
            .as_ref()
            .try_into_arrow()
            .map_err(|e| LakeError::Arrow {
                table: name.to_string(),
                source: e,
            })?;
    Ok(Arc::new(arrow))
}

fn schemas_equal(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields().iter())
            .all(|(x, y)| x.name() == y.name() && same_type(x.data_type(), y.data_type()))
}

/// Create an empty table with `schema`.
pub(crate) async fn create_table(
    lake: &Lake,
    name: &TableName,
    schema: &SchemaRef,
) -> Result<DeltaTable> {
    let kernel: StructType =
        schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| LakeError::Unsupported {
                table: name.to_string(),
                message: format!("the schema cannot be stored in Delta: {e}"),
            })?;
    lake.handle(name)?
        .create()
        .with_columns(kernel.fields().cloned())
        .with_table_name(name.name.clone())
        .await
        .map_err(|e| LakeError::delta(name, e))
}

/// Remove actions for every file of the table (for replacing it).
pub(crate) fn all_removes(table: &DeltaTable, name: &str) -> Result<Vec<Action>> {
    let snapshot = table.snapshot().map_err(|e| LakeError::delta(&name, e))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|f| Action::Remove(f.remove_action(true)))
        .collect())
}

/// One commit: the new schema if it changed, removes, adds, the checkpoint.
pub(crate) async fn commit_schema_and_adds(
    table: &mut DeltaTable,
    name: &str,
    schema: &SchemaRef,
    adds: Vec<Add>,
    removes: Vec<Action>,
    mode: SaveMode,
    meta: Option<&CommitMeta>,
) -> Result<u64> {
    let mut actions = Vec::with_capacity(adds.len() + removes.len() + 1);
    let current = table_schema(table, &TableName::new("", name))?;
    if !schemas_equal(&current, schema) || current.fields().len() != schema.fields().len() {
        let kernel: StructType =
            schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| LakeError::Unsupported {
                    table: name.to_string(),
                    message: format!("the schema cannot be stored in Delta: {e}"),
                })?;
        let current_meta = table
            .snapshot()
            .map_err(|e| LakeError::delta(&name, e))?
            .metadata()
            .clone();
        let metadata = MetadataExt::with_schema(current_meta, &kernel).map_err(|e| {
            LakeError::Unsupported {
                table: name.to_string(),
                message: format!("cannot update the table schema: {e}"),
            }
        })?;
        actions.push(Action::Metadata(metadata));
    }
    actions.extend(removes);
    actions.extend(adds.into_iter().map(Action::Add));
    commit(
        table,
        actions,
        DeltaOperation::Write {
            mode,
            partition_by: None,
            predicate: None,
        },
        meta,
    )
    .await
}
