//! The connector contract: `Source` and `Destination` over Arrow batches.
//!
//! The normative text is `docs/specs/connector.md`; this module is its code.
//!
//! ```text
//!   Source::read(ReadRequest) ─► Message stream
//!      Schema(S) · Batch · Batch · Quarantine · Checkpoint(state₁) · Batch · … · Checkpoint(stateₙ)
//!                                     │
//!        engine: numbers checkpoints (seq), counts rows, checks keys
//!                                     ▼
//!   Destination::open(WriteRequest) ─► StreamWriter
//!      write · write · quarantine · checkpoint(seq₁) → maybe Committed{seq₁}
//!      … · finish() → Committed{seqₙ}
//!                                     │
//!        engine: state store ← state of the *committed* seq only
//! ```
//!
//! Checkpoints travel *inside* the stream, after the data they cover, so a
//! destination knows exactly which state its commit makes durable. A
//! destination that can store the checkpoint in the same atomic commit as the
//! data (the Delta lake) reports it back through
//! [`Destination::committed_state`]; the engine then treats that as the
//! truth, which makes loads exactly-once.

use std::fmt;

use arrow::array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::TableName;
use crate::config::{OnError, WriteMode};
use crate::error::{Classify, ErrorDomain};
use crate::evolution::{EvolutionPolicy, SchemaChange, SchemaRefused};

/// Boxed error from a lower layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result of connector operations.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// The stream of messages a source produces for one stream.
pub type MessageStream = BoxStream<'static, Result<Message>>;

/// What a source sends.
#[derive(Debug, Clone)]
pub enum Message {
    /// The schema of the batches that follow. Sent before the first batch and
    /// again whenever it changes (e.g. the next file has an extra column).
    Schema(SchemaRef),
    /// Rows, in the last announced schema.
    Batch(RecordBatch),
    /// Refused records, in [`crate::quarantine::source_schema`] (only with
    /// `on_error: quarantine`).
    Quarantine(RecordBatch),
    /// Everything sent before this is covered by `state`.
    Checkpoint(Checkpoint),
    /// Progress counters (increments), for progress bars and the summary.
    Progress(Progress),
}

/// A resumable position of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Opaque, connector-defined JSON that the source gets back on the next run.
    pub state: serde_json::Value,
    /// The same position for people: `data/orders2.csv (1,000 rows)`.
    pub position: String,
}

/// Progress increments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes read from the source since the last report.
    pub bytes: u64,
    /// Files (or other units) finished since the last report.
    pub files: u64,
    /// Rows read but not sent because an earlier run already loaded them
    /// (incremental cursor at its bookmark).
    pub rows_skipped: u64,
    /// Total bytes the stream will read, when known (sent once, up front).
    pub total_bytes: Option<u64>,
}

/// What the engine asks of a source for one stream.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// Stream name (as in `discover`).
    pub stream: String,
    /// The state of the last committed checkpoint; `None` reads from scratch.
    pub state: Option<serde_json::Value>,
    /// What to do with a bad record.
    pub on_error: OnError,
    /// Rows per batch (a target, not a promise).
    pub batch_size: usize,
    /// The destination table's current schema, when it exists. Sources that
    /// infer types keep a known column's type (widening it only when the data
    /// does), so one stray bad value becomes a bad record instead of turning
    /// the column into a string.
    pub known_schema: Option<SchemaRef>,
}

/// A stream a source offers.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    /// Stream name.
    pub name: String,
    /// Arrow schema, when it can be known without reading everything.
    #[serde(skip)]
    pub schema: Option<SchemaRef>,
    /// Columns that identify a row, when known.
    pub primary_key: Vec<String>,
    /// The column the source itself bookmarks on, when it has one (a Singer
    /// stream's replication key); the default `cursor` of the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Human-readable facts (`files: 3`, `bytes: 8.4 MB`).
    pub details: Vec<(String, String)>,
    /// What the source itself says of each column (databases: the declared
    /// type and `NOT NULL`), in schema order; empty when it has nothing to add.
    pub columns: Vec<ColumnDetail>,
}

/// A column as the source declares it, next to the Arrow type it is read as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ColumnDetail {
    /// Column name.
    pub name: String,
    /// The source's own type (`numeric(12,2)`, `varchar(40)`).
    pub source_type: String,
    /// False when the source declares the column `NOT NULL`.
    pub nullable: bool,
    /// Why the column is read differently than its type suggests (as text, declared in `columns:`).
    pub note: Option<String>,
}

/// A data source.
///
/// Implementations MUST follow `docs/specs/connector.md`: a `Schema` before
/// the first batch, a `Checkpoint` after the last one, state that resumes
/// exactly after the data it covers, located errors for bad records.
#[async_trait]
pub trait Source: Send + Sync {
    /// The connector type (`files`, `postgres`, …).
    fn kind(&self) -> &'static str;

    /// Health check: can the source be reached and read? Returns a one-line
    /// description of what was found.
    async fn check(&self) -> Result<String>;

    /// The streams this source offers.
    async fn discover(&self) -> Result<Vec<StreamInfo>>;

    /// Read one stream from `request.state` on.
    async fn read(&self, request: ReadRequest) -> Result<MessageStream>;

    /// True when the streams of one run come from one shared reader (a
    /// Singer tap: one process emits every stream, interleaved). The engine
    /// then asks for them all at once with [`Source::read_together`] and
    /// consumes them all concurrently, whatever `parallelism` says, since a
    /// stream left unread would stall the others.
    fn reads_together(&self) -> bool {
        false
    }

    /// Read several streams in one go; one result per request, in order.
    async fn read_together(&self, requests: Vec<ReadRequest>) -> Vec<Result<MessageStream>> {
        let mut out = Vec::with_capacity(requests.len());
        for request in requests {
            out.push(self.read(request).await);
        }
        out
    }
}

/// What the engine asks of a destination for one stream.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// Where the rows land.
    pub table: TableName,
    /// Append, overwrite or merge.
    pub mode: WriteMode,
    /// Key columns (required for merge).
    pub primary_key: Vec<String>,
    /// Replace the table whatever its current schema and contents.
    pub full_refresh: bool,
    /// The run writing; recorded with every commit.
    pub run_id: String,
    /// `<source>.<stream>`: names the checkpoint recorded with the data.
    pub stream_id: String,
    /// Schema-evolution options.
    pub evolution: EvolutionPolicy,
    /// What to do with a value the destination cannot store (`quarantine`:
    /// write its row to the quarantine table and go on; `fail`: a located
    /// error). Values the source could not read never get here.
    pub on_error: OnError,
}

/// A committed checkpoint as the destination recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    /// Checkpoint sequence number (increases by one per checkpoint, across runs).
    pub seq: u64,
    /// The source's state.
    pub value: serde_json::Value,
    /// The run that committed it.
    pub run_id: Option<String>,
}

/// What a destination knows about a stream's committed position.
#[derive(Debug, Clone, PartialEq)]
pub enum CommittedState {
    /// The destination does not record checkpoints; the state store is the truth.
    NotTracked,
    /// The table does not exist.
    NoTable,
    /// The table exists; the checkpoint committed with its data, if any.
    Table(Option<StreamState>),
}

/// What a commit made durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// Sequence number of the checkpoint the commit covers.
    pub seq: u64,
    /// That checkpoint.
    pub checkpoint: Checkpoint,
    /// Rows written by this commit.
    pub rows: u64,
    /// Quarantined rows written by this commit.
    pub quarantined: u64,
    /// Table version after the commit, for versioned destinations.
    pub version: Option<u64>,
    /// Schema changes the commit applied.
    pub changes: Vec<SchemaChange>,
}

/// A destination.
#[async_trait]
pub trait Destination: Send + Sync {
    /// The connector type (`lake`, `parquet`, …).
    fn kind(&self) -> &'static str;

    /// Where `table` lands, for people (a path or URL).
    fn describe(&self, table: &TableName) -> String;

    /// Health check: can the destination be written? One-line description.
    async fn check(&self) -> Result<String>;

    /// Whether `mode` is supported.
    fn supports(&self, mode: WriteMode) -> bool;

    /// The checkpoint committed together with the data of `table`, for
    /// destinations that commit both atomically.
    async fn committed_state(&self, table: &TableName, stream_id: &str) -> Result<CommittedState> {
        let _ = (table, stream_id);
        Ok(CommittedState::NotTracked)
    }

    /// The current schema of `table`, if it exists (see
    /// [`ReadRequest::known_schema`]).
    async fn table_schema(&self, table: &TableName) -> Result<Option<SchemaRef>> {
        let _ = table;
        Ok(None)
    }

    /// Start writing one stream.
    async fn open(&self, request: WriteRequest) -> Result<Box<dyn StreamWriter>>;
}

/// Writes one stream; created by [`Destination::open`].
#[async_trait]
pub trait StreamWriter: Send {
    /// Rows to write (durable only once committed).
    async fn write(&mut self, batch: RecordBatch) -> Result<()>;

    /// Refused rows, in [`crate::quarantine::source_schema`].
    async fn quarantine(&mut self, rows: RecordBatch) -> Result<()>;

    /// A checkpoint covering everything written so far. The writer MAY commit
    /// now (and says what it committed) or defer to a later checkpoint.
    async fn checkpoint(&mut self, seq: u64, checkpoint: &Checkpoint) -> Result<Option<Committed>>;

    /// Commit everything pending, under the last checkpoint offered.
    async fn finish(&mut self) -> Result<Option<Committed>>;

    /// Drop everything not committed. Nothing half-written becomes visible.
    async fn abort(&mut self);

    /// Rows handed on whose commit the destination never confirmed, asked
    /// after a successful [`StreamWriter::finish`]. A Singer target confirms
    /// a commit by echoing the STATE sent after the rows; rows it delivered
    /// without echoing one are neither lost nor known to be written. The
    /// engine counts them so that rows read = written + quarantined +
    /// unconfirmed still holds, and stores no state for them (the next run
    /// sends them again). Every other destination confirms every row.
    fn unconfirmed(&self) -> Unconfirmed {
        Unconfirmed::default()
    }
}

/// Rows a writer delivered without a confirmed commit (see
/// [`StreamWriter::unconfirmed`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unconfirmed {
    /// Data rows.
    pub rows: u64,
    /// Quarantined rows.
    pub quarantined: u64,
}

/// Where a bad record is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordLocation {
    /// File (or table, topic, …).
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<u64>,
    /// Column name.
    pub column: Option<String>,
    /// 1-based record number within the file, when lines and records differ.
    pub record: Option<u64>,
    /// The offending raw value.
    pub value: Option<String>,
}

impl fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(file) = &self.file {
            parts.push(format!("`{file}`"));
        }
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(record) = self.record {
            parts.push(format!("record {record}"));
        }
        if let Some(column) = &self.column {
            parts.push(format!("column `{column}`"));
        }
        if parts.is_empty() {
            parts.push("<unknown location>".into());
        }
        write!(f, "{}", parts.join(", "))?;
        if let Some(value) = &self.value {
            write!(f, " (value `{}`)", truncate(value, 80))?;
        }
        Ok(())
    }
}

/// Shorten `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Errors of sources and destinations.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A record the source cannot turn into a row.
    #[error("{location}: {message}")]
    BadRecord {
        /// Where.
        location: RecordLocation,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The connector's configuration is wrong or does not match the data.
    #[error("{message}")]
    Config {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// Incoming data would change the table's schema in a way the rules refuse.
    #[error("Table `{table}`: {refused}")]
    SchemaRefused {
        /// The table.
        table: TableName,
        /// The refused change.
        refused: SchemaRefused,
    },
    /// The connector cannot do this.
    #[error("The `{connector}` connector does not support {what}")]
    Unsupported {
        /// Connector type.
        connector: &'static str,
        /// What was asked.
        what: String,
        /// What to do instead.
        hint: Option<String>,
    },
    /// An external system failed (I/O, network, a server).
    #[error("{message}")]
    External {
        /// What failed, with names.
        message: String,
        /// The cause.
        #[source]
        source: Option<BoxError>,
        /// Whether retrying may help.
        retryable: bool,
    },
    /// The run was cancelled.
    #[error("Cancelled")]
    Cancelled,
    /// A bug in Sluice.
    #[error("Internal error (this is a bug in Sluice; please report it): {0}")]
    Internal(String),
}

impl ConnectorError {
    /// A configuration error with a hint.
    pub fn config(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Self::Config {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// An external failure with its cause.
    pub fn external(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::External {
            message: message.into(),
            source: Some(source.into()),
            retryable: true,
        }
    }

    /// A bad record.
    pub fn bad_record(location: RecordLocation, message: impl Into<String>) -> Self {
        Self::BadRecord {
            location,
            message: message.into(),
            hint: Some("fix the record, declare the column's type in `columns:`, or set `on_error: quarantine` to set bad records aside and load the rest".into()),
        }
    }
}

impl Classify for ConnectorError {
    fn domain(&self) -> ErrorDomain {
        match self {
            Self::BadRecord { .. }
            | Self::Config { .. }
            | Self::SchemaRefused { .. }
            | Self::Unsupported { .. }
            | Self::Cancelled => ErrorDomain::User,
            Self::External { .. } => ErrorDomain::External,
            Self::Internal(_) => ErrorDomain::Internal,
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            Self::External {
                retryable: true,
                ..
            }
        )
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::BadRecord { hint, .. }
            | Self::Config { hint, .. }
            | Self::Unsupported { hint, .. } => hint.clone(),
            Self::SchemaRefused { refused, .. } => Some(refused.hint()),
            _ => None,
        }
    }
}
