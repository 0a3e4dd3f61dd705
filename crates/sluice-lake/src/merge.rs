//! Merge (upsert on key columns).
//!
//! ```text
//!  write(batch) ─► + __sluice_seq (arrival order) ─► parquet under <table>/_sluice_staging/<run>/
//!  commit:
//!    staged ─► duplicates on the key? ─yes─► keep the last arrival per key (row_number)
//!           ─► table empty? ─yes─► plain write of the rows (WRITE commit)
//!                          ─no──► Delta MERGE: matched → update the columns the row's
//!                                 batch had (others keep their value), else insert
//!    both carry the checkpoint (txn + commitInfo) in the same commit.
//! ```
//!
//! Rows with a NULL key never reach this point: the engine sends them to
//! quarantine (or fails) before writing, because NULL never matches a key.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt, lit, when};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use deltalake::DeltaTable;
use deltalake::kernel::Add;
use deltalake::protocol::SaveMode;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use sluice_core::TableName;
use sluice_core::evolution::conform_batch;
use url::Url;

use crate::commit::{CommitMeta, commit_properties};
use crate::error::{LakeError, Result};
use crate::location::Lake;
use crate::writer::{FileSink, commit_schema_and_adds, table_schema};

/// Arrival order of staged rows (the last arrival of a key wins).
const SEQ: &str = "__sluice_seq";
const RN: &str = "__sluice_rn";
/// Which column set the row's batch had (an index into `Stager::sets`):
/// a matched row updates only the columns its own batch sent.
const SET: &str = "__sluice_set";

/// Staged rows of a merge.
pub(crate) struct Stager {
    url: Url,
    prefix: String,
    table_url: Url,
    name: String,
    options: std::collections::HashMap<String, String>,
    sink: Option<FileSink>,
    files: Vec<Add>,
    next_seq: i64,
    /// The column sets of the staged batches, in order of first arrival.
    sets: Vec<std::collections::BTreeSet<String>>,
}

impl Stager {
    pub(crate) fn new(lake: &Lake, table: &TableName, run_id: &str) -> Self {
        let table_url = lake.table_url(table);
        let prefix = format!("_sluice_staging/{run_id}/");
        let url = table_url
            .join(&prefix)
            .unwrap_or_else(|_| table_url.clone());
        Stager {
            url,
            prefix,
            table_url,
            name: table.to_string(),
            options: lake.options().clone(),
            sink: None,
            files: Vec::new(),
            next_seq: 0,
            sets: Vec::new(),
        }
    }

    pub(crate) fn buffered_bytes(&self) -> usize {
        self.sink.as_ref().map_or(0, FileSink::buffered_bytes)
    }

    /// Stage a batch already conformed to `target`; `sent` are the columns
    /// the source's batch had before it was conformed.
    pub(crate) async fn write(
        &mut self,
        batch: RecordBatch,
        target: &SchemaRef,
        sent: std::collections::BTreeSet<String>,
    ) -> Result<()> {
        let set = match self.sets.iter().position(|s| *s == sent) {
            Some(i) => i,
            None => {
                self.sets.push(sent);
                self.sets.len() - 1
            }
        };
        let staged = staged_schema(target);
        if self.sink.as_ref().is_some_and(|s| s.schema() != &staged) {
            self.seal().await?;
        }
        if self.sink.is_none() {
            self.sink = Some(FileSink::new(
                &self.url,
                staged.clone(),
                &self.options,
                &self.name,
            )?);
        }
        let n = batch.num_rows() as i64;
        let seq = Arc::new(Int64Array::from_iter_values(
            self.next_seq..self.next_seq + n,
        ));
        self.next_seq += n;
        let mut columns = batch.columns().to_vec();
        columns.push(seq);
        columns.push(Arc::new(arrow::array::Int32Array::from_value(
            i32::try_from(set).unwrap_or(i32::MAX),
            n as usize,
        )));
        let batch = RecordBatch::try_new(staged, columns).map_err(|source| LakeError::Arrow {
            table: self.name.clone(),
            source,
        })?;
        if let Some(sink) = self.sink.as_mut() {
            sink.write(batch).await?;
        }
        Ok(())
    }

    /// Close the open staging file.
    pub(crate) async fn seal(&mut self) -> Result<()> {
        if let Some(mut sink) = self.sink.take() {
            self.files.extend(sink.flush().await?);
        }
        Ok(())
    }

    /// The staged rows, de-duplicated on `keys`, in `schema` plus [`SET`].
    async fn deduped(
        &mut self,
        table: &DeltaTable,
        schema: &SchemaRef,
        keys: &[String],
    ) -> Result<Option<DataFrame>> {
        self.seal().await?;
        if self.files.is_empty() {
            return Ok(None);
        }
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| LakeError::delta(&self.name, e))?;
        let urls: Vec<String> = self
            .files
            .iter()
            .filter_map(|a| self.url.join(&a.path).ok().map(|u| u.to_string()))
            .collect();
        let staged = staged_schema(schema);
        let df = ctx
            .read_parquet(urls, ParquetReadOptions::default().schema(&staged))
            .await?;
        let key_exprs: Vec<Expr> = keys
            .iter()
            .map(|k| Expr::Column(Column::new_unqualified(k)))
            .collect();
        let duplicated = df
            .clone()
            .aggregate(key_exprs.clone(), vec![count(lit(1)).alias("n")])?
            .filter(Expr::Column(Column::new_unqualified("n")).gt(lit(1i64)))?
            .limit(0, Some(1))?
            .count()
            .await?
            > 0;
        let df = if duplicated {
            let rn = row_number()
                .partition_by(key_exprs)
                .order_by(vec![
                    Expr::Column(Column::new_unqualified(SEQ)).sort(false, true),
                ])
                .build()?
                .alias(RN);
            df.window(vec![rn])?
                .filter(Expr::Column(Column::new_unqualified(RN)).eq(lit(1u64)))?
                .drop_columns(&[SEQ, RN])?
        } else {
            df.drop_columns(&[SEQ])?
        };
        Ok(Some(df))
    }

    /// Merge the staged rows into `table` under checkpoint `meta`.
    pub(crate) async fn merge_into(
        &mut self,
        table: &mut DeltaTable,
        lake: &Lake,
        schema: &SchemaRef,
        keys: &[String],
        meta: &CommitMeta,
    ) -> Result<u64> {
        let Some(df) = self.deduped(table, schema, keys).await? else {
            return commit_schema_and_adds(
                table,
                &self.name,
                schema,
                Vec::new(),
                Vec::new(),
                SaveMode::Append,
                Some(meta),
            )
            .await;
        };
        let empty = table
            .snapshot()
            .map_err(|e| LakeError::delta(&self.name, e))?
            .log_data()
            .num_files()
            == 0;
        if empty {
            let df = df.drop_columns(&[SET])?;
            let adds = write_frame(df, &self.table_url, schema, lake, &self.name).await?;
            return commit_schema_and_adds(
                table,
                &self.name,
                schema,
                adds,
                Vec::new(),
                SaveMode::Append,
                Some(meta),
            )
            .await;
        }
        // Evolve the table first (a metadata-only commit; harmless on its own).
        let current = table_schema(table, &TableName::new("", &self.name))?;
        if current.as_ref() != schema.as_ref() {
            commit_schema_and_adds(
                table,
                &self.name,
                schema,
                Vec::new(),
                Vec::new(),
                SaveMode::Append,
                None,
            )
            .await?;
        }
        let source = |c: &str| Expr::Column(Column::new(Some("source"), c));
        let target = |c: &str| Expr::Column(Column::new(Some("target"), c));
        let predicate = keys
            .iter()
            .map(|k| target(k).eq(source(k)))
            .reduce(Expr::and)
            .ok_or_else(|| LakeError::Unsupported {
                table: self.name.clone(),
                message: "merge needs a primary key".into(),
            })?;
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        // Matched rows: update only what the row's own batch sent; a column
        // it did not send keeps its value (inserts get NULL there).
        let updates: Vec<(String, Expr)> = columns
            .iter()
            .filter_map(|c| {
                let with: Vec<Expr> = (0..self.sets.len())
                    .filter(|i| self.sets[*i].contains(c))
                    .map(|i| lit(i32::try_from(i).unwrap_or(i32::MAX)))
                    .collect();
                if with.is_empty() {
                    None
                } else if with.len() == self.sets.len() {
                    Some((c.clone(), source(c)))
                } else {
                    let sent = source(SET).in_list(with, false);
                    when(sent, source(c))
                        .otherwise(target(c))
                        .ok()
                        .map(|e| (c.clone(), e))
                }
            })
            .collect();
        let (merged, _metrics) = table
            .clone()
            .merge(df, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(commit_properties(Some(meta))?)
            .when_matched_update(|u| {
                updates.iter().fold(u, |u, (c, e)| {
                    u.update(Column::new_unqualified(c), e.clone())
                })
            })
            .and_then(|b| {
                b.when_not_matched_insert(|i| {
                    columns
                        .iter()
                        .fold(i, |i, c| i.set(Column::new_unqualified(c), source(c)))
                })
            })
            .map_err(|e| LakeError::delta(&self.name, e))?
            .await
            .map_err(|e| LakeError::delta(&self.name, e))?;
        *table = merged;
        Ok(table.version().unwrap_or_default())
    }

    /// De-duplicate the staged rows into new data files of the table (for a
    /// full refresh of a merge stream).
    pub(crate) async fn dedupe_into_files(
        &mut self,
        table: &DeltaTable,
        lake: &Lake,
        schema: &SchemaRef,
        keys: &[String],
    ) -> Result<Vec<Add>> {
        match self.deduped(table, schema, keys).await? {
            Some(df) => {
                let df = df.drop_columns(&[SET])?;
                write_frame(df, &self.table_url, schema, lake, &self.name).await
            }
            None => Ok(Vec::new()),
        }
    }

    /// Drop what is staged but not flushed.
    pub(crate) fn abort(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            sink.abort();
        }
    }

    /// Delete the staging files.
    pub(crate) async fn cleanup(&mut self) {
        let Ok(handle) = deltalake::DeltaTableBuilder::from_url(self.table_url.clone())
            .map(|b| b.with_storage_options(self.options.clone()))
            .and_then(|b| b.build())
        else {
            return;
        };
        let store = handle.object_store();
        for add in self.files.drain(..) {
            let path = object_store::path::Path::from(format!("{}{}", self.prefix, add.path));
            if let Err(e) = store.delete(&path).await {
                tracing::debug!("could not delete staging file `{path}`: {e}");
            }
        }
        if let Ok(dir) = self.url.to_file_path() {
            let _ = std::fs::remove_dir(&dir);
            if let Some(parent) = dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

fn staged_schema(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(SEQ, DataType::Int64, false));
    fields.push(Field::new(SET, DataType::Int32, false));
    Arc::new(Schema::new(fields))
}

/// Run `df` into new data files of the table at `url`.
async fn write_frame(
    df: DataFrame,
    url: &Url,
    schema: &SchemaRef,
    lake: &Lake,
    name: &str,
) -> Result<Vec<Add>> {
    let mut sink = FileSink::new(url, schema.clone(), lake.options(), name)?;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = conform_batch(&batch?, schema).map_err(|source| LakeError::Arrow {
            table: name.to_string(),
            source,
        })?;
        sink.write(batch).await?;
    }
    sink.flush().await
}
