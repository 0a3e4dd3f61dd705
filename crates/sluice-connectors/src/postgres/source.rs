//! The PostgreSQL `Source`: discovery, then binary COPY per stream.
//!
//! ```text
//!  read(stream) ─► [split? min/max → key ranges]
//!     per range, own connection:  COPY (SELECT cols FROM t WHERE cursor ≥ bookmark OR cursor IS NULL
//!                                       [AND key range]) TO STDOUT (FORMAT binary)
//!                                 ─► CopyDecoder ─► Decoded batches ─┐  (bounded channel)
//!     one consumer: bad values → quarantine / error, cursor filter ◄─┘
//!                   ─► Schema · Batch… · Quarantine… · Progress… · Checkpoint{cursor}
//! ```

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use sluice_core::config::{DatabaseSource, OnError, Replication, StreamOptions};
use sluice_core::connector::{
    Checkpoint, ConnectorError, Message, MessageStream, Progress, ReadRequest, Source, StreamInfo,
};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::catalog::{PgTable, discover, ident};
use super::connect::{PgConnector, error_text};
use super::copy_out::{CopyDecoder, Decoded};
use super::types::PgKind;
use crate::cursor::CursorTracker;
use crate::db::deliver::{BadValue, Closed, Deliver, Halt};
use crate::db::select::Selection;
use crate::db::settings::{DbSettings, StreamSettings};
use crate::db::split::ranges;

/// A `type: postgres` source.
pub struct PgSource {
    name: String,
    connector: PgConnector,
    selection: Selection,
    settings: DbSettings,
    max_connections: usize,
    /// Connections in use by this source's reads, across all its streams.
    permits: Arc<Semaphore>,
    tables: Mutex<Option<Arc<Vec<PgTable>>>>,
}

impl PgSource {
    /// The source `name`; `defaults` is the project's `defaults:` layer.
    pub fn new(
        name: &str,
        config: &DatabaseSource,
        defaults: &StreamOptions,
    ) -> Result<PgSource, ConnectorError> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| ConnectorError::config(format!("Source `{name}` has no `url`"), None))?;
        Ok(PgSource {
            name: name.to_string(),
            connector: PgConnector::from_url(url)?,
            selection: Selection::new(
                config.include.as_deref(),
                config.exclude.as_deref(),
                "public",
            ),
            settings: DbSettings::new(name, config, defaults),
            max_connections: config.max_connections.unwrap_or(2).max(1),
            permits: Arc::new(Semaphore::new(config.max_connections.unwrap_or(2).max(1))),
            tables: Mutex::new(None),
        })
    }

    /// The selected tables (discovered once per source).
    async fn tables(&self) -> Result<Arc<Vec<PgTable>>, ConnectorError> {
        let mut cached = self.tables.lock().await;
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let client = self.connector.connect().await?;
        let tables =
            Arc::new(discover(&client, &self.name, &self.selection, &self.settings).await?);
        *cached = Some(tables.clone());
        Ok(tables)
    }
}

#[async_trait]
impl Source for PgSource {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let client = self.connector.connect().await?;
        let version: String = client
            .query_one("SHOW server_version", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.connector.error(e))?;
        let tables = self.tables().await?;
        Ok(format!(
            "PostgreSQL {version} at {} ({} tables selected)",
            self.connector.describe(),
            tables.len()
        ))
    }

    async fn discover(&self) -> Result<Vec<StreamInfo>, ConnectorError> {
        Ok(self
            .tables()
            .await?
            .iter()
            .map(|t| t.info.stream_info())
            .collect())
    }

    async fn read(&self, request: ReadRequest) -> Result<MessageStream, ConnectorError> {
        let tables = self.tables().await?;
        let table = crate::db::table_of(&self.name, &tables, &request.stream, |t| &t.info)?;
        let settings = self.settings.stream(&request.stream)?;
        let schema = table.info.schema();
        let cursor = crate::db::read_cursor(
            &self.name,
            &table.info,
            &settings,
            request.state.as_ref(),
            |c| {
                table
                    .columns
                    .iter()
                    .find(|pc| pc.info.name == c.name)
                    .and_then(|pc| pc.cursor.as_ref().err().cloned())
            },
        )?;
        let job = ReadJob {
            connector: self.connector.clone(),
            table,
            settings,
            schema,
            cursor,
            on_error: request.on_error,
            batch_size: request.batch_size.max(1),
            max_connections: self.max_connections,
            permits: self.permits.clone(),
        };
        let (tx, rx) = mpsc::channel(3);
        tokio::spawn(async move {
            let err_tx = tx.clone();
            if let Err(e) = job.run(tx).await {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }
}

type Out = mpsc::Sender<Result<Message, ConnectorError>>;

/// A batch is cut at `batch_size` rows or after this much COPY data, so wide
/// rows never overflow Arrow's 32-bit string offsets (2 GiB per array) and
/// memory stays bounded.
const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

struct ReadJob {
    connector: PgConnector,
    table: PgTable,
    settings: StreamSettings,
    schema: SchemaRef,
    cursor: Option<CursorTracker>,
    on_error: OnError,
    batch_size: usize,
    max_connections: usize,
    permits: Arc<Semaphore>,
}

impl ReadJob {
    fn label(&self) -> String {
        self.table.info.table.display()
    }

    async fn run(mut self, out: Out) -> Result<(), ConnectorError> {
        let send = |m: Message| {
            let out = out.clone();
            async move { out.send(Ok(m)).await.map_err(|_| Closed) }
        };
        if send(Message::Schema(self.schema.clone())).await.is_err() {
            return Ok(());
        }
        let base = self.select_sql();
        let queries = self.range_queries(&base).await?;
        let (tx, mut rx) = mpsc::channel::<Result<RangeBatch, ConnectorError>>(2);
        let permits = self.permits.clone();
        let mut tasks = Vec::with_capacity(queries.len());
        let kinds: Vec<PgKind> = self.table.columns.iter().map(|c| c.kind.clone()).collect();
        for (query, _) in &queries {
            let (tx, permits, connector, schema, kinds, query) = (
                tx.clone(),
                permits.clone(),
                self.connector.clone(),
                self.schema.clone(),
                kinds.clone(),
                query.clone(),
            );
            let (batch_size, label) = (self.batch_size, self.label());
            tasks.push(tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                if let Err(e) =
                    copy_range(&connector, &query, schema, &kinds, batch_size, &label, &tx).await
                {
                    let _ = tx.send(Err(e)).await;
                }
            }));
        }
        drop(tx);
        let mut rows = 0u64;
        while let Some(received) = rx.recv().await {
            let RangeBatch { decoded, bytes } = received?;
            rows += match self.deliver(decoded, &send).await {
                Ok(n) => n,
                Err(Halt::Closed) => return Ok(()),
                Err(Halt::Failed(e)) => return Err(e),
            };
            let progress = Progress {
                bytes,
                ..Default::default()
            };
            if send(Message::Progress(progress)).await.is_err() {
                return Ok(());
            }
        }
        // Every sender is gone. A reader that panicked dropped its sender
        // too: that must fail the stream, never pass for the end of the data.
        for task in tasks {
            task.await.map_err(|e| {
                ConnectorError::Internal(format!(
                    "A reader of `{}` stopped unexpectedly: {e}",
                    self.label()
                ))
            })?;
        }
        let state = match &self.cursor {
            Some(c) if self.settings.replication == Replication::Incremental => {
                json!({ "cursor": c.final_state() })
            }
            _ => json!({}),
        };
        let position = format!("{}: {} rows", self.label(), rows);
        let _ = send(Message::Checkpoint(Checkpoint { state, position })).await;
        Ok(())
    }

    /// `SELECT cols FROM t [WHERE cursor ≥ bookmark OR cursor IS NULL]`.
    fn select_sql(&self) -> String {
        let cols: Vec<&str> = self
            .table
            .columns
            .iter()
            .map(|c| c.select.as_str())
            .collect();
        let t = &self.table.info.table;
        let mut sql = format!(
            "SELECT {} FROM {}.{}",
            cols.join(", "),
            ident(&t.schema),
            ident(&t.name)
        );
        if let Some(c) = &self.cursor
            && let Some(mark) = c.bookmark_text()
            && let Some(col) = self
                .table
                .columns
                .iter()
                .find(|col| col.info.name == c.column())
            && let Ok(cmp) = &col.cursor
        {
            // NULL cursors must arrive: they are bad records, never silently skipped.
            sql.push_str(&format!(
                " WHERE ({} OR {} IS NULL)",
                cmp.ge(&col.select, &pg_literal(&mark)),
                col.select
            ));
        }
        sql
    }

    /// One COPY per key range (one in all when the stream is not split).
    async fn range_queries(&self, base: &str) -> Result<Vec<(String, String)>, ConnectorError> {
        let copy = |sql: String| format!("COPY ({sql}) TO STDOUT (FORMAT binary)");
        let Some(split) = &self.settings.split else {
            return Ok(vec![(copy(base.to_string()), self.label())]);
        };
        let col = self
            .table
            .columns
            .iter()
            .find(|c| c.info.name == split.column)
            .ok_or_else(|| {
                ConnectorError::config(
                    format!(
                        "`split.column` `{}` is not a column of `{}`",
                        split.column,
                        self.label()
                    ),
                    None,
                )
            })?;
        if !matches!(col.kind, PgKind::Int2 | PgKind::Int4 | PgKind::Int8) {
            return Err(ConnectorError::config(
                format!(
                    "`split.column` `{}` of `{}` is {}; key ranges need an integer column",
                    split.column,
                    self.label(),
                    col.info.db_type
                ),
                Some("split on the integer primary key".to_string()),
            ));
        }
        let client = self.connector.connect().await?;
        let t = &self.table.info.table;
        let c = ident(&split.column);
        let row = client
            .query_one(
                &format!(
                    "SELECT min({c})::int8, max({c})::int8 FROM {}.{}",
                    ident(&t.schema),
                    ident(&t.name)
                ),
                &[],
            )
            .await
            .map_err(|e| {
                ConnectorError::external(format!("`{}`: {}", self.label(), error_text(&e)), e)
            })?;
        let bounds = (
            row.try_get::<_, Option<i64>>(0),
            row.try_get::<_, Option<i64>>(1),
        );
        let (Ok(Some(min)), Ok(Some(max))) = bounds else {
            return Ok(vec![(copy(base.to_string()), self.label())]);
        };
        let joiner = if base.contains(" WHERE ") {
            " AND"
        } else {
            " WHERE"
        };
        let mut out = Vec::new();
        let n = split.ranges.unwrap_or(self.max_connections).max(1);
        for (i, (lo, hi)) in ranges(min, max, n).into_iter().enumerate() {
            // The first range has no lower bound (rows inserted below the
            // minimum since it was read, and NULL keys, belong to it); the
            // last has no upper bound: every row is in exactly one range.
            let cond = match (i, hi) {
                (0, None) => String::new(),
                (0, Some(hi)) => format!("{joiner} ({c} < {hi} OR {c} IS NULL)"),
                (_, Some(hi)) => format!("{joiner} ({c} >= {lo} AND {c} < {hi})"),
                (_, None) => format!("{joiner} ({c} >= {lo})"),
            };
            out.push((
                copy(format!("{base}{cond}")),
                format!("{} ({} {lo}..)", self.label(), split.column),
            ));
        }
        Ok(out)
    }

    /// Quarantine or fail bad rows, apply the cursor, send the batch; rows sent.
    async fn deliver<F, Fut>(&mut self, decoded: Decoded, send: &F) -> Result<u64, Halt>
    where
        F: Fn(Message) -> Fut,
        Fut: std::future::Future<Output = Result<(), Closed>>,
    {
        let Decoded { batch, rejects } = decoded;
        let bad = rejects
            .into_iter()
            .map(|r| BadValue {
                row: r.row,
                record: Some(r.record),
                column: self
                    .table
                    .columns
                    .get(r.column)
                    .map(|c| c.info.name.clone()),
                reason: r.reason,
            })
            .collect();
        let label = self.label();
        Deliver {
            label: &label,
            cursor: self.cursor.as_mut(),
            on_error: self.on_error,
        }
        .deliver(batch, bad, send)
        .await
    }
}

/// A batch from a range, with the COPY bytes that produced it.
struct RangeBatch {
    decoded: Decoded,
    bytes: u64,
}

/// Run one COPY and send its batches.
async fn copy_range(
    connector: &PgConnector,
    query: &str,
    schema: SchemaRef,
    kinds: &[PgKind],
    batch_size: usize,
    label: &str,
    tx: &mpsc::Sender<Result<RangeBatch, ConnectorError>>,
) -> Result<(), ConnectorError> {
    let client = connector.connect().await?;
    let failed = |e: tokio_postgres::Error| {
        ConnectorError::external(format!("Reading `{label}` failed: {}", error_text(&e)), e)
    };
    let stream = client.copy_out(query).await.map_err(failed)?;
    futures::pin_mut!(stream);
    let mut decoder = CopyDecoder::new(schema, kinds);
    let mut reported = 0;
    while let Some(chunk) = stream.next().await {
        decoder.push(&chunk.map_err(failed)?).map_err(|e| {
            ConnectorError::Internal(format!("Decoding COPY data of `{label}`: {e}"))
        })?;
        if decoder.rows() >= batch_size || decoder.bytes - reported >= MAX_BATCH_BYTES {
            let decoded = decoder
                .finish_batch()
                .map_err(|e| ConnectorError::Internal(e.to_string()))?;
            let bytes = decoder.bytes - reported;
            reported = decoder.bytes;
            if tx.send(Ok(RangeBatch { decoded, bytes })).await.is_err() {
                return Ok(());
            }
        }
    }
    if decoder.rows() > 0 {
        let decoded = decoder
            .finish_batch()
            .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        let _ = tx
            .send(Ok(RangeBatch {
                decoded,
                bytes: decoder.bytes - reported,
            }))
            .await;
    }
    Ok(())
}

/// A PostgreSQL string literal that means the same whatever
/// `standard_conforming_strings` says: `E'…'` with `\\` and `''` escaped.
fn pg_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::pg_literal;

    #[test]
    fn literals_mean_the_same_under_any_string_setting() {
        assert_eq!(pg_literal("it's"), "E'it''s'");
        assert_eq!(pg_literal("a\\b"), "E'a\\\\b'");
    }
}
