//! The SQLite `Source`: discovery, then one `SELECT` per stream (or per key
//! range), read on blocking threads.
//!
//! ```text
//!  read(stream) ─► [split? min/max → key ranges]
//!     per range, own read-only connection, on a blocking thread:
//!        SELECT _rowid_, cols FROM t [WHERE cursor ≥ ?1 OR cursor IS NULL] [AND key range]
//!        ─► Decoder (Arrow builders, batch_size rows) ─► Decoded ─┐  (bounded channel)
//!     one consumer: bad values → quarantine / error, cursor filter ◄┘
//!                   ─► Schema · Batch… · Quarantine… · Progress… · Checkpoint{cursor}
//! ```

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use sluice_core::config::{DatabaseSource, Replication, StreamOptions};
use sluice_core::connector::{
    Checkpoint, ConnectorError, Message, MessageStream, Progress, ReadRequest, Source, StreamInfo,
};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::catalog::{SqlTable, SqliteFile, discover, ident, resolve};
use super::decode::{Decoded, Decoder};
use super::deliver::{Closed, Deliver, Halt};
use super::types::{SqlKind, kind_of};
use crate::db::select::Selection;
use crate::db::settings::{DbSettings, StreamSettings};
use crate::db::split::ranges;

/// A `type: sqlite` source.
pub struct SqliteSource {
    name: String,
    file: SqliteFile,
    selection: Selection,
    settings: DbSettings,
    max_connections: usize,
    tables: Mutex<Option<Arc<Vec<SqlTable>>>>,
}

/// Run blocking SQLite work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConnectorError> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectorError::Internal(format!("A SQLite reader thread failed: {e}")))?
}

impl SqliteSource {
    /// The source `name`; `path` / `url` are relative to `project_dir`;
    /// `defaults` is the project's `defaults:` layer.
    pub fn new(
        name: &str,
        config: &DatabaseSource,
        defaults: &StreamOptions,
        project_dir: &Path,
    ) -> Result<SqliteSource, ConnectorError> {
        let path = resolve(config.path.as_deref(), config.url.as_deref(), project_dir)
            .map_err(|e| ConnectorError::config(format!("Source `{name}`: {e}"), None))?;
        Ok(SqliteSource {
            name: name.to_string(),
            file: SqliteFile {
                source: name.to_string(),
                path,
            },
            selection: Selection::new(
                config.include.as_deref(),
                config.exclude.as_deref(),
                super::catalog::SCHEMA,
            ),
            settings: DbSettings::new(name, config, defaults),
            max_connections: config.max_connections.unwrap_or(2).max(1),
            tables: Mutex::new(None),
        })
    }

    /// The selected tables (discovered once per source).
    async fn tables(&self) -> Result<Arc<Vec<SqlTable>>, ConnectorError> {
        let mut cached = self.tables.lock().await;
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let (file, selection, settings) = (
            self.file.clone(),
            self.selection.clone(),
            self.settings.clone(),
        );
        let tables = Arc::new(
            blocking(move || {
                let conn = file.open()?;
                discover(&file, &conn, &selection, &settings)
            })
            .await?,
        );
        *cached = Some(tables.clone());
        Ok(tables)
    }
}

#[async_trait]
impl Source for SqliteSource {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let file = self.file.clone();
        let version = blocking(move || {
            let conn = file.open()?;
            conn.query_row("SELECT sqlite_version()", [], |r| r.get::<_, String>(0))
                .map_err(|e| file.error(e))
        })
        .await?;
        let tables = self.tables().await?;
        Ok(format!(
            "SQLite {version} file `{}` ({} tables selected)",
            self.file.path.display(),
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
        let cursor = crate::db::read_cursor(
            &self.name,
            &table.info,
            &settings,
            request.state.as_ref(),
            |_| None,
        )?;
        let job = ReadJob {
            file: self.file.clone(),
            schema: table.info.schema(),
            deliver: Deliver {
                label: table.info.table.display(),
                columns: table.info.columns.iter().map(|c| c.name.clone()).collect(),
                cursor,
                on_error: request.on_error,
            },
            table,
            settings,
            batch_size: request.batch_size.max(1),
            max_connections: self.max_connections,
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

struct ReadJob {
    file: SqliteFile,
    table: SqlTable,
    settings: StreamSettings,
    schema: SchemaRef,
    deliver: Deliver,
    batch_size: usize,
    max_connections: usize,
}

/// One `SELECT` to run: SQL and its text parameters.
#[derive(Debug, Clone)]
struct Query {
    sql: String,
    params: Vec<String>,
}

/// A batch from a range, with the bytes of the values that produced it.
struct RangeBatch {
    decoded: Decoded,
    bytes: u64,
}

impl ReadJob {
    async fn run(mut self, out: Out) -> Result<(), ConnectorError> {
        let send = |m: Message| {
            let out = out.clone();
            async move { out.send(Ok(m)).await.map_err(|_| Closed) }
        };
        if send(Message::Schema(self.schema.clone())).await.is_err() {
            return Ok(());
        }
        let queries = self.queries().await?;
        let (tx, mut rx) = mpsc::channel::<Result<RangeBatch, ConnectorError>>(2);
        let permits = Arc::new(Semaphore::new(self.max_connections));
        for query in queries {
            let (tx, permits, file, schema, kinds) = (
                tx.clone(),
                permits.clone(),
                self.file.clone(),
                self.schema.clone(),
                self.table.kinds.clone(),
            );
            let (batch_size, has_rowid) = (self.batch_size, self.table.has_rowid);
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let err_tx = tx.clone();
                let read = tokio::task::spawn_blocking(move || {
                    read_range(&file, &query, schema, &kinds, has_rowid, batch_size, &tx)
                })
                .await;
                let failed = match read {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(e) => {
                        ConnectorError::Internal(format!("A SQLite reader thread failed: {e}"))
                    }
                };
                let _ = err_tx.send(Err(failed)).await;
            });
        }
        drop(tx);
        let mut rows = 0u64;
        while let Some(received) = rx.recv().await {
            let RangeBatch { decoded, bytes } = received?;
            rows += match self.deliver.deliver(decoded, &send).await {
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
        let state = match &self.deliver.cursor {
            Some(c) if self.settings.replication == Replication::Incremental => {
                json!({ "cursor": c.final_state() })
            }
            _ => json!({}),
        };
        let position = format!("{}: {} rows", self.deliver.label, rows);
        let _ = send(Message::Checkpoint(Checkpoint { state, position })).await;
        Ok(())
    }

    /// `WHERE` conditions for the cursor: only rows that may be new, and
    /// NULLs (they are bad records, never silently skipped). Pushed down
    /// only where SQLite's comparison agrees with Arrow's; the cursor
    /// tracker filters exactly afterwards either way.
    fn cursor_condition(&self) -> Option<Query> {
        let c = self.deliver.cursor.as_ref()?;
        let mark = c.bookmark_text()?;
        let i = self
            .table
            .info
            .columns
            .iter()
            .position(|col| col.name == c.column())?;
        let info = &self.table.info.columns[i];
        let kind = &self.table.kinds[i];
        let natural = kind_of(&info.db_type).0;
        let col = ident(c.column());
        let upper = info.db_type.to_ascii_uppercase();
        let text_affinity =
            !upper.contains("INT") && ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t));
        match kind {
            // Numbers compare numerically (the column's affinity converts the
            // text parameter); texts and blobs sort after every number, so
            // values that are not numbers still arrive and become bad records.
            SqlKind::Int | SqlKind::Real if *kind == natural => Some(Query {
                sql: format!("({col} >= ?1 OR {col} IS NULL)"),
                params: vec![mark],
            }),
            SqlKind::Text if text_affinity => Some(Query {
                sql: format!("({col} >= ?1 COLLATE BINARY OR {col} IS NULL)"),
                params: vec![mark],
            }),
            // Date-times are stored in several forms (`T` or space, offsets,
            // numbers): read ISO texts from the day before the bookmark's
            // (covers any offset), and every value that is not such a text.
            SqlKind::Date | SqlKind::Timestamp(_) if *kind == natural => {
                let day = super::values::parse_timestamp(mark.get(..10)?.as_bytes())?;
                let before = chrono::DateTime::from_timestamp_micros(day - 86_400_000_000)?;
                Some(Query {
                    sql: format!(
                        "({col} IS NULL OR typeof({col}) <> 'text' OR {col} >= ?1 COLLATE BINARY \
                         OR {col} NOT GLOB '[0-9][0-9][0-9][0-9]-*')"
                    ),
                    params: vec![before.format("%Y-%m-%d").to_string()],
                })
            }
            _ => None,
        }
    }

    /// One query per key range (one in all when the stream is not split).
    async fn queries(&self) -> Result<Vec<Query>, ConnectorError> {
        let t = &self.table.info;
        let mut select: Vec<String> = Vec::with_capacity(t.columns.len() + 1);
        if self.table.has_rowid {
            select.push("_rowid_".into());
        }
        select.extend(t.columns.iter().map(|c| ident(&c.name)));
        let mut base = Query {
            sql: format!("SELECT {} FROM {}", select.join(", "), ident(&t.table.name)),
            params: Vec::new(),
        };
        let cursor = self.cursor_condition();
        if let Some(c) = &cursor {
            base.sql.push_str(&format!(" WHERE {}", c.sql));
            base.params.clone_from(&c.params);
        }
        let Some(split) = &self.settings.split else {
            return Ok(vec![base]);
        };
        let label = &self.deliver.label;
        let i = t
            .columns
            .iter()
            .position(|c| c.name == split.column)
            .ok_or_else(|| {
                ConnectorError::config(
                    format!(
                        "`split.column` `{}` is not a column of `{label}`",
                        split.column
                    ),
                    None,
                )
            })?;
        if self.table.kinds[i] != SqlKind::Int {
            return Err(ConnectorError::config(
                format!(
                    "`split.column` `{}` of `{label}` is {}; key ranges need an integer column",
                    split.column, t.columns[i].db_type
                ),
                Some("split on the integer primary key".to_string()),
            ));
        }
        let c = ident(&split.column);
        let sql = format!(
            "SELECT min({c}), max({c}) FROM {} WHERE typeof({c}) = 'integer'",
            ident(&t.table.name)
        );
        let file = self.file.clone();
        let (min, max) = blocking(move || {
            let conn = file.open()?;
            conn.query_row(&sql, [], |r| {
                Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .map_err(|e| file.error(e))
        })
        .await?;
        let (Some(min), Some(max)) = (min, max) else {
            return Ok(vec![base]);
        };
        let n = split.ranges.unwrap_or(self.max_connections).max(1);
        let cuts = ranges(min, max, n);
        if cuts.len() == 1 {
            return Ok(vec![base]);
        }
        let joiner = if cursor.is_some() { " AND" } else { " WHERE" };
        // SQLite orders every value (NULL < numbers < texts < blobs), so
        // these conditions put each row in exactly one range: the first
        // takes NULLs and everything below its end, the last everything
        // from its start on (a text in an integer column included).
        Ok(cuts
            .iter()
            .enumerate()
            .map(|(i, (lo, hi))| {
                let cond = match (i, hi) {
                    (0, Some(hi)) => format!("({c} IS NULL OR NOT ({c} >= {hi}))"),
                    (_, Some(hi)) => format!("({c} >= {lo} AND {c} < {hi})"),
                    (_, None) => format!("({c} >= {lo})"),
                };
                Query {
                    sql: format!("{}{joiner} {cond}", base.sql),
                    params: base.params.clone(),
                }
            })
            .collect())
    }
}

/// Run one query on its own read-only connection and send its batches.
fn read_range(
    file: &SqliteFile,
    query: &Query,
    schema: SchemaRef,
    kinds: &[SqlKind],
    has_rowid: bool,
    batch_size: usize,
    tx: &mpsc::Sender<Result<RangeBatch, ConnectorError>>,
) -> Result<(), ConnectorError> {
    let conn = file.open()?;
    let mut stmt = conn.prepare(&query.sql).map_err(|e| file.error(e))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(query.params.iter()))
        .map_err(|e| file.error(e))?;
    let mut decoder = Decoder::new(schema, kinds, batch_size.min(65_536));
    let offset = usize::from(has_rowid);
    let (mut position, mut reported) = (0u64, 0u64);
    let internal = |e: arrow::error::ArrowError| ConnectorError::Internal(e.to_string());
    while let Some(row) = rows.next().map_err(|e| file.error(e))? {
        position += 1;
        let record = if has_rowid {
            row.get::<_, i64>(0).map_err(|e| file.error(e))? as u64
        } else {
            position
        };
        decoder
            .push_row(record, |i| row.get_ref(i + offset))
            .map_err(|e| file.error(e))?;
        if decoder.rows() >= batch_size {
            let decoded = decoder.finish_batch().map_err(internal)?;
            let bytes = decoder.bytes - reported;
            reported = decoder.bytes;
            if tx.blocking_send(Ok(RangeBatch { decoded, bytes })).is_err() {
                return Ok(());
            }
        }
    }
    if decoder.rows() > 0 {
        let decoded = decoder.finish_batch().map_err(internal)?;
        let _ = tx.blocking_send(Ok(RangeBatch {
            decoded,
            bytes: decoder.bytes - reported,
        }));
    }
    Ok(())
}
