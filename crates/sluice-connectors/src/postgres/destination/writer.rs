//! The PostgreSQL `StreamWriter`: rows stream into the server through
//! binary COPY inside an open transaction; a commit adds the checkpoint to
//! that transaction and commits it, so data and checkpoint become visible
//! together or not at all.
//!
//! ```text
//!  first write after a commit:  BEGIN; DDL for the load table; COPY <load> FROM STDIN (FORMAT binary)
//!    append   load = the table itself (created / evolved inside the transaction)
//!    replace  load = <table>__sluice_new, created inside the transaction
//!    merge    load = a TEMP staging table (ON COMMIT DROP) with an arrival-order column
//!  merge, a batch sent with other columns than the staged rows: end COPY; upsert the
//!           staged rows (as at commit); TRUNCATE the staging table; COPY again
//!  commit:  end COPY; [merge: INSERT … SELECT DISTINCT ON (keys) … ON CONFLICT (keys) DO UPDATE]
//!           [replace: DROP TABLE <table>; ALTER TABLE <table>__sluice_new RENAME TO <table>]
//!           upsert <schema>._sluice_checkpoints; COMMIT
//!  abort / crash: the transaction rolls back; nothing of it is visible
//! ```
//!
//! Commit cadence as the lake: at a checkpoint once `SLUICE_COMMIT_BYTES`
//! (default 256 MiB) of COPY data are pending or `SLUICE_COMMIT_SECONDS`
//! (default 60) have passed, and at the end; replace commits once, at the end.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::SinkExt;
use sluice_core::config::{OnError, WriteMode};
use sluice_core::connector::{
    Checkpoint, Committed, ConnectorError, RecordLocation, StreamWriter, WriteRequest,
};
use sluice_core::evolution::{SchemaChange, evolve, same_type};
use sluice_core::quarantine::{self, QuarantineBuilder, QuarantinedRow};
use tokio_postgres::{Client, CopyInSink};

use super::copy_in::{Col, encode_rows, header, json_options, trailer};
use super::ddl::{
    Qualified, alter_statements, column_list, create_table, kind_of_field, sql_error, stored_schema,
};
use super::{CHECKPOINTS, is_other, table_columns};
use crate::postgres::catalog::ident;
use crate::postgres::types::PgKind;

/// Pending COPY bytes that trigger a commit at the next checkpoint.
const COMMIT_BYTES: usize = 256 * 1024 * 1024;
/// Time since the last commit that triggers a commit at the next checkpoint.
const COMMIT_INTERVAL: Duration = Duration::from_secs(60);
/// The arrival-order column of merge staging (the last arrival of a key wins).
const SEQ: &str = "__sluice_seq";
/// The staging table of merges (a temp table, dropped at commit).
const STAGE: &str = "_sluice_stage";

/// The same thresholds and variables as the lake writer.
fn commit_thresholds() -> (usize, Duration) {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Append,
    Replace { dedupe: bool },
    Merge,
}

/// The table rows are copied into in the open transaction.
struct Load {
    table_sql: String,
    schema: SchemaRef,
    staged: bool,
}

/// Writes one stream into one PostgreSQL table.
pub struct PgStreamWriter {
    client: Client,
    req: WriteRequest,
    target: Qualified,
    plan: Plan,
    table_exists: bool,
    /// The table's schema as committed, or as the open transaction has
    /// already changed it (None: no table, or being replaced).
    committed: Option<SchemaRef>,
    /// The table schema after the pending data.
    schema: Option<SchemaRef>,
    changes: Vec<SchemaChange>,
    in_tx: bool,
    load: Option<Load>,
    copy: Option<Pin<Box<CopyInSink<Bytes>>>>,
    buf: BytesMut,
    pending_rows: u64,
    pending_quarantined: u64,
    pending_bytes: usize,
    written_rows: u64,
    next_seq: i64,
    offered: Option<(u64, Checkpoint)>,
    last_commit: Instant,
    /// Merge: the columns the rows staged since the last upsert were sent
    /// with (None: nothing staged). Matched rows get only these columns, so
    /// rows sent with other columns are upserted separately.
    staged_columns: Option<BTreeSet<String>>,
}

impl PgStreamWriter {
    pub(crate) async fn open(
        client: Client,
        req: WriteRequest,
        target: Qualified,
    ) -> Result<Self, ConnectorError> {
        let plan = match (req.mode, req.full_refresh) {
            (WriteMode::Overwrite, _) | (WriteMode::Append, true) => {
                Plan::Replace { dedupe: false }
            }
            (WriteMode::Merge, true) => Plan::Replace { dedupe: true },
            (WriteMode::Merge, false) => Plan::Merge,
            (WriteMode::Append, false) => Plan::Append,
        };
        let existing = table_columns(&client, &target).await?;
        let committed = existing.clone().filter(|_| !req.full_refresh);
        Ok(PgStreamWriter {
            client,
            table_exists: existing.is_some(),
            committed,
            req,
            target,
            plan,
            schema: None,
            changes: Vec::new(),
            in_tx: false,
            load: None,
            copy: None,
            buf: BytesMut::with_capacity(super::copy_in::CHUNK_BYTES + 64 * 1024),
            pending_rows: 0,
            pending_quarantined: 0,
            pending_bytes: 0,
            written_rows: 0,
            next_seq: 0,
            offered: None,
            last_commit: Instant::now(),
            staged_columns: None,
        })
    }

    fn err(&self, doing: &str) -> impl Fn(tokio_postgres::Error) -> ConnectorError + '_ {
        let doing = doing.to_string();
        move |e| sql_error(&self.target, &doing, e)
    }

    async fn exec(&self, sql: &str, doing: &str) -> Result<(), ConnectorError> {
        tracing::debug!("{}: {sql}", self.target);
        self.client
            .batch_execute(sql)
            .await
            .map_err(self.err(doing))
    }

    /// Apply the evolution rules; returns the schema the batch is conformed to.
    async fn accept_schema(&mut self, incoming: &Schema) -> Result<SchemaRef, ConnectorError> {
        let stored = stored_schema(incoming);
        let base = self.schema.clone().or_else(|| self.committed.clone());
        if let Some(base) = &base {
            for f in incoming.fields() {
                if let Ok(t) = base.field_with_name(f.name())
                    && let Some(pg_type) = is_other(t)
                {
                    return Err(ConnectorError::config(
                        format!(
                            "Table `{}`: column `{}` has type `{pg_type}`, which Sluice cannot write",
                            self.target,
                            f.name()
                        ),
                        Some("change the column's type in PostgreSQL (e.g. to text), or rebuild the table with `--full-refresh`".to_string()),
                    ));
                }
            }
        }
        let target = match base {
            None => stored,
            Some(base) if schemas_equal(&base, &stored) => base,
            Some(base) => {
                let evolution = evolve(&base, &stored, self.req.evolution).map_err(|refused| {
                    ConnectorError::SchemaRefused {
                        table: self.req.table.clone(),
                        refused,
                    }
                })?;
                for mut c in evolution.changes {
                    if let SchemaChange::Added { data_type, .. } = &mut c
                        && *data_type == DataType::Null
                    {
                        *data_type = DataType::Utf8;
                    }
                    if !self.changes.contains(&c) {
                        self.changes.push(c);
                    }
                }
                evolution.schema
            }
        };
        let target = null_to_text(target);
        if self.schema.as_ref() != Some(&target) {
            self.schema = Some(target.clone());
            self.evolve_load().await?;
        }
        Ok(target)
    }

    /// The load table follows a schema change within the transaction.
    async fn evolve_load(&mut self) -> Result<(), ConnectorError> {
        let (Some(load), Some(schema)) = (&self.load, self.schema.clone()) else {
            return Ok(());
        };
        let statements = alter_statements(&load.table_sql, &load.schema, &schema);
        if statements.is_empty() {
            return Ok(());
        }
        self.end_copy().await?;
        for s in &statements {
            self.exec(s, "changing the table's schema").await?;
        }
        if let Some(load) = self.load.as_mut() {
            load.schema = schema.clone();
        }
        if self.plan == Plan::Append {
            // The load table is the table itself: it has the new schema now,
            // and the commit must not change it again.
            self.committed = Some(schema);
        }
        Ok(())
    }

    async fn begin(&mut self) -> Result<(), ConnectorError> {
        if !self.in_tx {
            self.exec("BEGIN", "starting a transaction").await?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Create or evolve the target table to the pending schema (in the transaction).
    async fn prepare_target(&mut self, with_key: bool) -> Result<(), ConnectorError> {
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        if !self.table_exists {
            let pkey = format!("{}_pkey", self.target.name);
            let key = with_key.then_some((pkey.as_str(), self.req.primary_key.as_slice()));
            let sql = create_table(&self.target, &schema, key, false);
            self.exec(&sql, "creating the table").await?;
            self.table_exists = true;
        } else if let Some(committed) = self.committed.clone() {
            for s in alter_statements(&self.target.sql(), &committed, &schema) {
                self.exec(&s, "changing the table's schema").await?;
            }
        }
        self.committed = Some(schema);
        Ok(())
    }

    /// Start the transaction and the COPY into the load table.
    async fn ensure_copy(&mut self) -> Result<(), ConnectorError> {
        if self.copy.is_some() {
            return Ok(());
        }
        let schema = self
            .schema
            .clone()
            .ok_or_else(|| ConnectorError::Internal("rows before a schema".into()))?;
        self.begin().await?;
        if self.load.is_none() {
            let load = match self.plan {
                Plan::Append => {
                    self.prepare_target(false).await?;
                    Load {
                        table_sql: self.target.sql(),
                        schema: schema.clone(),
                        staged: false,
                    }
                }
                Plan::Replace { dedupe: false } => {
                    let new = self.new_table();
                    self.exec(
                        &format!("DROP TABLE IF EXISTS {}", new.sql()),
                        "dropping a leftover table",
                    )
                    .await?;
                    self.exec(
                        &create_table(&new, &schema, None, false),
                        "creating the new table",
                    )
                    .await?;
                    Load {
                        table_sql: new.sql(),
                        schema: schema.clone(),
                        staged: false,
                    }
                }
                Plan::Merge | Plan::Replace { dedupe: true } => {
                    let stage = self.target.sibling(STAGE);
                    self.exec(
                        &create_table(&stage, &schema, None, true),
                        "creating the staging table",
                    )
                    .await?;
                    self.exec(
                        &format!("ALTER TABLE {} ADD COLUMN {SEQ} bigint", ident(STAGE)),
                        "creating the staging table",
                    )
                    .await?;
                    Load {
                        table_sql: ident(STAGE),
                        schema: schema.clone(),
                        staged: true,
                    }
                }
            };
            self.load = Some(load);
        }
        let Some(load) = &self.load else {
            return Ok(());
        };
        let mut cols = column_list(&writable(&load.schema));
        if load.staged {
            cols.push_str(&format!(", {SEQ}"));
        }
        let sql = format!(
            "COPY {} ({cols}) FROM STDIN (FORMAT binary)",
            load.table_sql
        );
        let sink = self
            .client
            .copy_in::<_, Bytes>(&sql)
            .await
            .map_err(self.err("starting COPY"))?;
        let mut sink = Box::pin(sink);
        header(&mut self.buf);
        let head = self.buf.split().freeze();
        sink.send(head).await.map_err(self.err("COPY"))?;
        self.copy = Some(sink);
        Ok(())
    }

    async fn end_copy(&mut self) -> Result<(), ConnectorError> {
        if let Some(mut sink) = self.copy.take() {
            trailer(&mut self.buf);
            let tail = self.buf.split().freeze();
            sink.send(tail).await.map_err(self.err("COPY"))?;
            sink.as_mut().finish().await.map_err(self.err("COPY"))?;
        }
        Ok(())
    }

    fn new_table(&self) -> Qualified {
        self.target
            .sibling(&format!("{}__sluice_new", self.target.name))
    }

    /// Encode and send a conformed batch.
    async fn send(&mut self, batch: &RecordBatch, target: &Schema) -> Result<(), ConnectorError> {
        // The batch has the target's columns in order; kinds come from the table.
        let (indices, kinds): (Vec<usize>, Vec<PgKind>) = target
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| is_other(f).is_none())
            .map(|(i, f)| (i, kind_of_field(f)))
            .unzip();
        let seq = self.load.as_ref().is_some_and(|l| l.staged);
        let options = json_options();
        let rows = batch.num_rows();
        let mut row = 0;
        while row < rows {
            // Encoders borrow the batch and are not Send: build them per chunk.
            let next = {
                let fields = batch.schema().fields().clone();
                let mut cols = Vec::with_capacity(indices.len());
                for (k, &i) in indices.iter().enumerate() {
                    let col = Col::new(&kinds[k], batch.column(i), &fields[i], &options).map_err(
                        |e| ConnectorError::Internal(format!("column `{}`: {e}", fields[i].name())),
                    )?;
                    cols.push(col);
                }
                let first = seq.then_some(self.next_seq);
                encode_rows(&mut cols, row, rows, first, &mut self.buf).map_err(
                    |(r, c, message)| {
                        self.bad_value(&fields[indices[c]].name().clone(), r, None, message)
                    },
                )?
            };
            row = next;
            let chunk = self.buf.split().freeze();
            self.pending_bytes += chunk.len();
            let Some(sink) = self.copy.as_mut() else {
                return Err(ConnectorError::Internal("COPY not started".into()));
            };
            if let Err(e) = sink.send(chunk).await {
                return Err(sql_error(&self.target, "COPY", e));
            }
        }
        if seq {
            self.next_seq += rows as i64;
        }
        Ok(())
    }

    fn bad_value(
        &self,
        column: &str,
        row: usize,
        value: Option<String>,
        message: String,
    ) -> ConnectorError {
        ConnectorError::BadRecord {
            location: RecordLocation {
                file: Some(format!(
                    "{} (row {} of this load)",
                    self.req.table,
                    self.written_rows + self.pending_rows + row as u64 + 1
                )),
                line: None,
                column: Some(column.to_string()),
                record: None,
                value,
            },
            message: format!("PostgreSQL cannot store this value: {message}"),
            hint: Some("fix the value at the source, or declare the column as another type in the stream's `columns:`".into()),
        }
    }

    /// PostgreSQL text cannot hold the NUL character: find it before the server does.
    fn check_text(&self, batch: &RecordBatch) -> Result<(), ConnectorError> {
        for (i, f) in batch.schema().fields().iter().enumerate() {
            let Some(a) = batch.column(i).as_string_opt::<i32>() else {
                continue;
            };
            if memchr::memchr(0, a.value_data()).is_none() {
                continue;
            }
            if let Some(row) = (0..a.len()).find(|&r| a.is_valid(r) && a.value(r).contains('\0')) {
                return Err(self.bad_value(
                    f.name(),
                    row,
                    Some(a.value(row).replace('\0', "\\0")),
                    "text contains the NUL character (\\0)".into(),
                ));
            }
        }
        Ok(())
    }

    /// `on_error: quarantine`: rows whose text holds a NUL go to the
    /// quarantine table (column, value, reason, the row as JSON); the rest
    /// is returned.
    async fn set_aside_text(&mut self, batch: RecordBatch) -> Result<RecordBatch, ConnectorError> {
        let mut bad: Vec<(usize, String, String)> = Vec::new();
        for (i, f) in batch.schema().fields().iter().enumerate() {
            let Some(a) = batch.column(i).as_string_opt::<i32>() else {
                continue;
            };
            if memchr::memchr(0, a.value_data()).is_none() {
                continue;
            }
            for r in (0..a.len()).filter(|&r| a.is_valid(r) && a.value(r).contains('\0')) {
                if !bad.iter().any(|(row, ..)| *row == r) {
                    bad.push((r, f.name().clone(), a.value(r).replace('\0', "\\0")));
                }
            }
        }
        if bad.is_empty() {
            return Ok(batch);
        }
        let records = crate::db::rows_as_json(&batch)?;
        let mut q = QuarantineBuilder::default();
        let mut keep = vec![true; batch.num_rows()];
        for (row, column, value) in &bad {
            keep[*row] = false;
            q.push(&QuarantinedRow {
                file: Some(self.target.sql()),
                line: None,
                column: Some(column.clone()),
                value: Some(value.clone()),
                reason: "text contains the NUL character (\\0), which PostgreSQL cannot store"
                    .into(),
                record: records.get(*row).cloned(),
            });
        }
        let rows = q
            .finish()
            .map_err(|e| ConnectorError::Internal(format!("quarantine rows: {e}")))?;
        self.quarantine(rows).await?;
        arrow::compute::filter_record_batch(&batch, &arrow::array::BooleanArray::from(keep))
            .map_err(|e| ConnectorError::Internal(format!("filtering rows: {e}")))
    }

    fn should_commit(&self) -> bool {
        let (bytes, interval) = commit_thresholds();
        self.pending_bytes >= bytes || self.last_commit.elapsed() >= interval
    }

    /// Make everything pending durable under checkpoint `seq`, in one transaction.
    async fn commit(
        &mut self,
        seq: u64,
        checkpoint: Checkpoint,
    ) -> Result<Committed, ConnectorError> {
        self.end_copy().await?;
        self.begin().await?;
        let keys = self.req.primary_key.clone();
        match self.plan {
            Plan::Append => self.prepare_target(false).await?,
            Plan::Merge => {
                self.prepare_target(true).await?;
                self.upsert_staged().await?;
            }
            Plan::Replace { dedupe } => {
                if let Some(schema) = self.schema.clone() {
                    self.replace(&schema, dedupe, &keys).await?;
                }
            }
        }
        if self.table_exists {
            self.record_checkpoint(seq, &checkpoint).await?;
        }
        self.exec("COMMIT", "committing").await?;
        self.in_tx = false;
        self.load = None;
        self.staged_columns = None;
        let rows = self.pending_rows;
        let quarantined = self.pending_quarantined;
        self.written_rows += rows;
        self.pending_rows = 0;
        self.pending_quarantined = 0;
        self.pending_bytes = 0;
        self.last_commit = Instant::now();
        if let Some(s) = &self.schema {
            self.committed = Some(s.clone());
        }
        if let Plan::Replace { dedupe } = self.plan {
            self.plan = if dedupe { Plan::Merge } else { Plan::Append };
        }
        Ok(Committed {
            seq,
            checkpoint,
            rows,
            quarantined,
            version: None,
            changes: std::mem::take(&mut self.changes),
        })
    }

    /// Merge: upsert the rows staged so far into the table (within the
    /// transaction), before staging rows sent with other columns.
    async fn upsert_staged(&mut self) -> Result<(), ConnectorError> {
        let Some(sent) = self.staged_columns.take() else {
            return Ok(());
        };
        if self.load.is_none() {
            return Ok(());
        }
        self.end_copy().await?;
        self.prepare_target(true).await?;
        let keys = self.req.primary_key.clone();
        self.ensure_unique(&keys).await?;
        self.merge_staged(&keys, &sent).await
    }

    /// Apply the staged rows of a merge and empty the staging table.
    async fn flush_staged(&mut self) -> Result<(), ConnectorError> {
        if self.staged_columns.is_none() || self.load.is_none() {
            return Ok(());
        }
        self.upsert_staged().await?;
        self.exec(
            &format!("TRUNCATE {}", ident(STAGE)),
            "emptying the staging table",
        )
        .await
    }

    /// `INSERT … ON CONFLICT` from the staging table: the last arrival per key
    /// wins; matched rows get only the columns the source sent (`sent`).
    async fn merge_staged(
        &mut self,
        keys: &[String],
        sent: &BTreeSet<String>,
    ) -> Result<(), ConnectorError> {
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        let cols = column_list(&writable(&schema));
        let key_list: Vec<String> = keys.iter().map(|k| ident(k)).collect();
        let key_list = key_list.join(", ");
        let updates: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| sent.contains(f.name()) && !keys.contains(f.name()))
            .map(|f| format!("{c} = EXCLUDED.{c}", c = ident(f.name())))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let sql = format!(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM (SELECT DISTINCT ON ({key_list}) {cols} FROM {STAGE} ORDER BY {key_list}, {SEQ} DESC) s ON CONFLICT ({key_list}) {action}",
            t = self.target.sql()
        );
        self.exec(&sql, "merging the staged rows").await
    }

    /// Merge needs a unique index on the key: add one when the table (created
    /// by an append, or outside Sluice) has none.
    async fn ensure_unique(&mut self, keys: &[String]) -> Result<(), ConnectorError> {
        let mut wanted: Vec<String> = keys.to_vec();
        wanted.sort();
        let rows = self
            .client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique GROUP BY i.indexrelid",
                &[&self.target.sql()],
            )
            .await
            .map_err(self.err("reading the table's keys"))?;
        for r in rows {
            let cols: Vec<String> = r.try_get(0).map_err(self.err("reading the table's keys"))?;
            if cols == wanted {
                return Ok(());
            }
        }
        let key_list: Vec<String> = keys.iter().map(|k| ident(k)).collect();
        let sql = format!(
            "ALTER TABLE {} ADD UNIQUE ({})",
            self.target.sql(),
            key_list.join(", ")
        );
        self.client.batch_execute(&sql).await.map_err(|e| {
            ConnectorError::config(
                format!(
                    "Table `{}` has no unique key on ({}) for `write_mode: merge`, and one cannot be added: {}",
                    self.target,
                    keys.join(", "),
                    crate::postgres::connect::error_text(&e)
                ),
                Some("remove the duplicate keys, or rebuild the table with `--full-refresh`".to_string()),
            )
        })
    }

    /// Swap in the new table: readers see the old one or the new one.
    async fn replace(
        &mut self,
        schema: &SchemaRef,
        dedupe: bool,
        keys: &[String],
    ) -> Result<(), ConnectorError> {
        let new = self.new_table();
        let pkey_tmp = format!("{}_pkey", new.name);
        let pkey = format!("{}_pkey", self.target.name);
        if dedupe {
            let key = Some((pkey_tmp.as_str(), keys));
            self.exec(
                &format!("DROP TABLE IF EXISTS {}", new.sql()),
                "dropping a leftover table",
            )
            .await?;
            self.exec(
                &create_table(&new, schema, key, false),
                "creating the new table",
            )
            .await?;
            if self.load.is_some() {
                let cols = column_list(&writable(schema));
                let key_list: Vec<String> = keys.iter().map(|k| ident(k)).collect();
                let key_list = key_list.join(", ");
                self.exec(
                    &format!(
                        "INSERT INTO {} ({cols}) SELECT DISTINCT ON ({key_list}) {cols} FROM {STAGE} ORDER BY {key_list}, {SEQ} DESC",
                        new.sql()
                    ),
                    "de-duplicating the staged rows",
                )
                .await?;
            }
        } else if self.load.is_none() {
            // Announced but no rows: the new table is empty.
            self.exec(
                &create_table(&new, schema, None, false),
                "creating the new table",
            )
            .await?;
        }
        self.exec(
            &format!("DROP TABLE IF EXISTS {}", self.target.sql()),
            "dropping the old table",
        )
        .await?;
        self.exec(
            &format!(
                "ALTER TABLE {} RENAME TO {}",
                new.sql(),
                ident(&self.target.name)
            ),
            "swapping in the new table",
        )
        .await?;
        if dedupe {
            self.exec(
                &format!(
                    "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                    self.target.sql(),
                    ident(&pkey_tmp),
                    ident(&pkey)
                ),
                "naming the primary key",
            )
            .await?;
        }
        self.table_exists = true;
        Ok(())
    }

    async fn record_checkpoint(&self, seq: u64, cp: &Checkpoint) -> Result<(), ConnectorError> {
        let sql = format!(
            "INSERT INTO {}.{CHECKPOINTS} (table_name, stream, seq, run_id, state, position, rows, committed_at, table_oid) \
             VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, now(), to_regclass($8)::oid) \
             ON CONFLICT (table_name, stream) DO UPDATE SET seq = EXCLUDED.seq, run_id = EXCLUDED.run_id, \
             state = EXCLUDED.state, position = EXCLUDED.position, rows = EXCLUDED.rows, \
             committed_at = EXCLUDED.committed_at, table_oid = EXCLUDED.table_oid",
            ident(&self.target.schema)
        );
        let state = cp.state.to_string();
        self.client
            .execute(
                &sql,
                &[
                    &self.target.name,
                    &self.req.stream_id,
                    &(seq as i64),
                    &self.req.run_id,
                    &state,
                    &cp.position,
                    &(self.pending_rows as i64),
                    &self.target.sql(),
                ],
            )
            .await
            .map_err(self.err("recording the checkpoint"))?;
        Ok(())
    }

    async fn copy_quarantine(&mut self, rows: RecordBatch) -> Result<(), ConnectorError> {
        self.end_copy().await?;
        self.begin().await?;
        let q = self
            .target
            .sibling(&format!("{}__quarantine", self.target.name));
        let schema = stored_schema(&quarantine::stored_schema());
        let cols: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    ident(f.name()),
                    super::ddl::sql_type(&kind_of_field(f))
                )
            })
            .collect();
        self.exec(
            &format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                q.sql(),
                cols.join(", ")
            ),
            "creating the quarantine table",
        )
        .await?;
        let batch = conform(&rows, &schema, &q)?;
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            q.sql(),
            column_list(&schema)
        );
        let sink = self
            .client
            .copy_in::<_, Bytes>(&sql)
            .await
            .map_err(|e| sql_error(&q, "COPY", e))?;
        let mut sink = Box::pin(sink);
        header(&mut self.buf);
        {
            let options = json_options();
            let fields = batch.schema().fields().clone();
            let mut encoders = Vec::with_capacity(fields.len());
            for (i, f) in fields.iter().enumerate() {
                encoders.push(
                    Col::new(&kind_of_field(f), batch.column(i), f, &options)
                        .map_err(ConnectorError::Internal)?,
                );
            }
            let mut row = 0;
            while row < batch.num_rows() {
                row = encode_rows(&mut encoders, row, batch.num_rows(), None, &mut self.buf)
                    .map_err(|(_, _, e)| ConnectorError::Internal(e))?;
            }
        }
        trailer(&mut self.buf);
        let data = self.buf.split().freeze();
        sink.send(data)
            .await
            .map_err(|e| sql_error(&q, "COPY", e))?;
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| sql_error(&q, "COPY", e))?;
        Ok(())
    }
}

#[async_trait]
impl StreamWriter for PgStreamWriter {
    async fn write(&mut self, batch: RecordBatch) -> Result<(), ConnectorError> {
        let target = self.accept_schema(&batch.schema()).await?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let sent: BTreeSet<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if self.plan == Plan::Merge && self.staged_columns.as_ref().is_some_and(|s| *s != sent) {
            // The staged rows hold NULL for columns they were not sent with:
            // upsert them with their own columns first.
            self.flush_staged().await?;
        }
        let batch = conform(&batch, &target, &self.target)?;
        let batch = match self.req.on_error {
            OnError::Fail => {
                self.check_text(&batch)?;
                batch
            }
            OnError::Quarantine => self.set_aside_text(batch).await?,
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.ensure_copy().await?;
        self.send(&batch, &target).await?;
        self.staged_columns = Some(sent);
        self.pending_rows += batch.num_rows() as u64;
        Ok(())
    }

    async fn quarantine(&mut self, rows: RecordBatch) -> Result<(), ConnectorError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_micros();
        let stored =
            quarantine::with_run_columns(&rows, &self.req.run_id, &self.req.stream_id, now)
                .map_err(|e| ConnectorError::Internal(format!("quarantine rows: {e}")))?;
        let n = stored.num_rows() as u64;
        self.copy_quarantine(stored).await?;
        self.pending_quarantined += n;
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
        // Dropping the sink without finishing it aborts the COPY.
        self.copy = None;
        if self.in_tx {
            if let Err(e) = self.client.batch_execute("ROLLBACK").await {
                tracing::debug!("{}: rollback: {e}", self.target);
            }
            self.in_tx = false;
        }
        self.load = None;
        self.staged_columns = None;
        self.pending_rows = 0;
        self.pending_quarantined = 0;
    }
}

/// The columns COPY writes: all but those of types Sluice cannot write.
fn writable(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| is_other(f).is_none())
            .cloned()
            .collect::<Vec<_>>(),
    )
}

fn schemas_equal(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields().iter()).all(|(x, y)| {
            x.name() == y.name()
                && same_type(x.data_type(), y.data_type())
                && kind_of_field(x) == kind_of_field(y)
        })
}

/// Columns that were NULL everywhere are stored as text.
fn null_to_text(schema: SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Null)
    {
        return schema;
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Null {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
            } else {
                f.clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Reshape `batch` to the stored schema: reorder, add NULL columns, cast to
/// the stored types (failing, never truncating). Nested values headed for
/// `jsonb` / `text` stay as they are (they are encoded as JSON). Also
/// what the transform engine's seeds go through.
pub fn conform(
    batch: &RecordBatch,
    target: &SchemaRef,
    table: &Qualified,
) -> Result<RecordBatch, ConnectorError> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    let mut fields = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let kind = kind_of_field(field);
        let (column, field) = match schema.index_of(field.name()) {
            Ok(i) => {
                let col = batch.column(i);
                let nested = col.data_type().is_nested();
                if col.data_type() == field.data_type()
                    || (nested && matches!(kind, PgKind::Jsonb | PgKind::Text))
                {
                    (col.clone(), schema.fields()[i].clone())
                } else {
                    let cast = cast_with_options(col, field.data_type(), &options).map_err(|e| {
                        ConnectorError::config(
                            format!(
                                "Table `{table}`: column `{}` cannot be converted from {} to {}: {e}",
                                field.name(),
                                sluice_core::types::type_name(col.data_type()),
                                sluice_core::types::type_name(field.data_type())
                            ),
                            Some("declare the column's type in the stream's `columns:`, or rebuild the table with `--full-refresh`".to_string()),
                        )
                    })?;
                    (cast, field.clone())
                }
            }
            Err(_) => (
                new_null_array(field.data_type(), batch.num_rows()),
                field.clone(),
            ),
        };
        columns.push(column);
        fields.push(field);
    }
    RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| ConnectorError::Internal(format!("table `{table}`: {e}")))
}
