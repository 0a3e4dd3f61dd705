//! The connector contract as an executable check.
//!
//! [`check_source`] runs any [`Source`] through what the engine relies on
//! (see `sluice_core::connector`) and names the first rule it breaks:
//!
//! | rule | what must hold |
//! |---|---|
//! | `check` | `check()` succeeds with a one-line description |
//! | `discover` | `discover()` lists at least one stream, names unique |
//! | `read` | `read()` succeeds and its stream yields no error |
//! | `schema-first` | a `Schema` comes before the first `Batch` |
//! | `batch-schema` | every `Batch` has the last announced schema's fields |
//! | `quarantine-schema` | every `Quarantine` batch has `quarantine::source_schema()` |
//! | `ends-with-checkpoint` | the last message that is not `Progress` is a `Checkpoint` |
//! | `state-object` | every checkpoint's state is a JSON object |
//! | `total-bytes-once` | `Progress::total_bytes` is sent at most once |
//! | `incremental-reread` | reading again from the final state sends no row (incremental streams) |
//!
//! Every connector's tests call it on real data. Destinations have their own
//! check, [`destination::check_destination`].

pub mod destination;

use futures::StreamExt;
use serde_json::Value;
use sluice_core::config::OnError;
use sluice_core::connector::{ConnectorError, Message, ReadRequest, Source};
use sluice_core::quarantine;

/// What to run.
#[derive(Debug, Clone)]
pub struct ConformanceOptions {
    /// Rows per batch asked of the source.
    pub batch_size: usize,
    /// Bad-record handling asked of the source.
    pub on_error: OnError,
    /// Streams that must send no row when read again from their final state.
    pub incremental: Vec<String>,
}

impl Default for ConformanceOptions {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            on_error: OnError::Fail,
            incremental: Vec::new(),
        }
    }
}

/// A broken rule.
#[derive(Debug, thiserror::Error)]
#[error("Stream `{stream}` breaks the connector contract (`{rule}`): {detail}")]
pub struct ContractViolation {
    /// The stream (empty for source-level rules).
    pub stream: String,
    /// The rule's name, as in the module's table.
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

/// What one stream did.
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// Stream name.
    pub name: String,
    /// Rows in batches of the first read.
    pub rows: u64,
    /// Quarantined rows of the first read.
    pub quarantined: u64,
    /// Checkpoints of the first read.
    pub checkpoints: usize,
    /// The first read's final state.
    pub final_state: Value,
    /// Rows sent by the second read (from the final state).
    pub reread_rows: u64,
}

/// Run `source` through the contract.
pub async fn check_source(
    source: &dyn Source,
    options: &ConformanceOptions,
) -> Result<Vec<StreamReport>, ContractViolation> {
    let fail = |stream: &str, rule, detail: String| ContractViolation {
        stream: stream.to_string(),
        rule,
        detail,
    };
    let description = source
        .check()
        .await
        .map_err(|e| fail("", "check", e.to_string()))?;
    if description.trim().is_empty() || description.contains('\n') {
        return Err(fail(
            "",
            "check",
            format!("description is not one line: {description:?}"),
        ));
    }
    let streams = source
        .discover()
        .await
        .map_err(|e| fail("", "discover", e.to_string()))?;
    if streams.is_empty() {
        return Err(fail("", "discover", "no stream".into()));
    }
    let mut names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(fail(
            "",
            "discover",
            format!("stream names repeat: {names:?}"),
        ));
    }
    let mut reports = Vec::new();
    for info in &streams {
        let name = info.name.as_str();
        let first = read_checked(source, name, None, options).await?;
        let second = read_checked(source, name, Some(first.final_state.clone()), options).await?;
        if options.incremental.iter().any(|s| s == name) && second.rows > 0 {
            return Err(fail(
                name,
                "incremental-reread",
                format!(
                    "reading again from the final state sent {} rows",
                    second.rows
                ),
            ));
        }
        reports.push(StreamReport {
            reread_rows: second.rows,
            ..first
        });
    }
    Ok(reports)
}

/// Every message of one read, or the first error.
pub async fn read_all(
    source: &dyn Source,
    request: ReadRequest,
) -> Result<Vec<Message>, ConnectorError> {
    let mut stream = source.read(request).await?;
    let mut out = Vec::new();
    while let Some(message) = stream.next().await {
        out.push(message?);
    }
    Ok(out)
}

async fn read_checked(
    source: &dyn Source,
    name: &str,
    state: Option<Value>,
    options: &ConformanceOptions,
) -> Result<StreamReport, ContractViolation> {
    let fail = |rule, detail: String| ContractViolation {
        stream: name.to_string(),
        rule,
        detail,
    };
    let request = ReadRequest {
        stream: name.to_string(),
        state,
        on_error: options.on_error,
        batch_size: options.batch_size,
        known_schema: None,
    };
    let messages = read_all(source, request)
        .await
        .map_err(|e| fail("read", e.to_string()))?;
    let mut schema = None;
    let mut report = StreamReport {
        name: name.to_string(),
        rows: 0,
        quarantined: 0,
        checkpoints: 0,
        final_state: Value::Null,
        reread_rows: 0,
    };
    let mut totals = 0;
    for message in &messages {
        match message {
            Message::Schema(s) => schema = Some(s.clone()),
            Message::Batch(batch) => {
                let Some(announced) = &schema else {
                    return Err(fail(
                        "schema-first",
                        "a batch came before any schema".into(),
                    ));
                };
                if batch.schema().fields() != announced.fields() {
                    return Err(fail(
                        "batch-schema",
                        format!(
                            "batch fields {:?} differ from the announced {:?}",
                            batch.schema().fields(),
                            announced.fields()
                        ),
                    ));
                }
                report.rows += batch.num_rows() as u64;
            }
            Message::Quarantine(batch) => {
                if batch.schema() != quarantine::source_schema() {
                    return Err(fail("quarantine-schema", format!("{:?}", batch.schema())));
                }
                report.quarantined += batch.num_rows() as u64;
            }
            Message::Checkpoint(c) => {
                if !c.state.is_object() {
                    return Err(fail("state-object", format!("state is {}", c.state)));
                }
                report.checkpoints += 1;
                report.final_state = c.state.clone();
            }
            Message::Progress(p) => totals += usize::from(p.total_bytes.is_some()),
        }
    }
    if totals > 1 {
        return Err(fail(
            "total-bytes-once",
            format!("`total_bytes` sent {totals} times"),
        ));
    }
    let last = messages
        .iter()
        .rev()
        .find(|m| !matches!(m, Message::Progress(_)));
    if !matches!(last, Some(Message::Checkpoint(_))) {
        return Err(fail(
            "ends-with-checkpoint",
            format!("the stream ends with {last:?}"),
        ));
    }
    Ok(report)
}
