//! The extract-load engine: one stream from a source to a destination.
//!
//! ```text
//!  reconcile state ── store's bookmark vs the checkpoint committed in the table
//!        │              (the table wins: it was written atomically with the data)
//!        ▼
//!  Source::read ─► Schema │ Batch │ Quarantine │ Checkpoint │ Progress
//!        │            │       │          │            │
//!        │     keys exist?  NULL keys → quarantine / error
//!        ▼            ▼       ▼          ▼            ▼
//!  StreamWriter:   write(∅)  write     quarantine   checkpoint(seq) ─► Committed ─► store.put_state
//!  at the end: finish() ─► Committed ─► store.put_state;  on error or Ctrl-C: abort()
//! ```
//!
//! Invariants kept here: state advances only for checkpoints the destination
//! reports committed; rows read = rows written + rows quarantined (+ rows a
//! destination delivered unconfirmed, `StreamWriter::unconfirmed`) for every
//! successful stream (checked, and reported if not).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, is_null, not, or};
use futures::StreamExt;
use serde::Serialize;
use sluice_core::config::{OnError, OnFail, StreamSpec, WriteMode};
use sluice_core::connector::{
    Committed, CommittedState, ConnectorError, Destination, Message, MessageStream, ReadRequest,
    RecordLocation, Source, StreamState, WriteRequest,
};
use sluice_core::quarantine::{QuarantineBuilder, QuarantinedRow};
use sluice_quality::{Check, CheckResult, RowChecker, Status};
use sluice_store::{RunStatus, Store, StreamRunRecord};
use tokio::sync::watch;

use crate::output::Reporter;
use crate::progress::StreamProgress;

/// `run_id` of state entries written by `sluice state set|clear`.
pub const MANUAL_RUN_ID: &str = "manual";

/// What every stream of a run shares.
#[derive(Clone)]
pub struct RunContext {
    /// This run.
    pub run_id: String,
    /// The store (state and history).
    pub store: Arc<Mutex<Store>>,
    /// Output.
    pub reporter: Reporter,
    /// Becomes `true` on Ctrl-C.
    pub cancel: watch::Receiver<bool>,
    /// Redacts secrets from texts that are printed or stored.
    pub redact: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

/// One stream to load.
#[derive(Clone)]
pub struct StreamJob {
    /// The resolved stream.
    pub spec: StreamSpec,
    /// Its source.
    pub source: Arc<dyn Source>,
    /// Its destination.
    pub destination: Arc<dyn Destination>,
    /// Ignore state and replace the table.
    pub full_refresh: bool,
    /// Key of the stream's state in the store: `<source>.<stream>` for its
    /// own destination, `<source>.<stream>@<destination>` when `--to` sends
    /// it elsewhere (each destination has its own bookmark).
    pub state_key: String,
    /// The stream's data-quality checks, compiled: row checks run on each
    /// batch, the others on the committed table.
    pub checks: Vec<Check>,
    /// Where the table's checks run after the load (a lake or a PostgreSQL
    /// database); `None` when they cannot.
    pub check_place: Option<crate::quality::CheckPlace>,
}

/// What one stream did.
#[derive(Debug, Clone, Serialize)]
pub struct StreamOutcome {
    /// `<source>.<stream>`.
    pub stream: String,
    /// Target table.
    pub table: String,
    /// Destination type.
    pub destination: String,
    /// Where the table lives.
    pub location: String,
    /// Write mode.
    pub write_mode: String,
    /// How it ended.
    pub status: RunStatus,
    /// Rows read from the source (written + quarantined).
    pub rows_read: u64,
    /// Rows committed.
    pub rows_written: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// Rows skipped as already loaded (cursor at its bookmark).
    pub rows_skipped: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Files (or units) read.
    pub files: u64,
    /// Commits made.
    pub commits: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Rows read per second.
    pub rows_per_second: f64,
    /// Schema changes applied.
    pub schema_changes: Vec<String>,
    /// The last committed position.
    pub position: Option<String>,
    /// The error, if the stream failed.
    pub error: Option<String>,
    /// The error's hint.
    pub hint: Option<String>,
    /// Whether running the stream again may succeed (an external system
    /// failed: network, database, disk), as opposed to bad config or data.
    pub retryable: bool,
    /// Results of the stream's checks (during the load and after it).
    pub checks: Vec<CheckResult>,
}

#[derive(Default)]
struct Counters {
    rows_read: u64,
    rows_written: u64,
    rows_quarantined: u64,
    rows_skipped: u64,
    bytes: u64,
    files: u64,
    commits: u64,
    changes: Vec<String>,
    position: Option<String>,
}

/// A stream being loaded: its clock, progress bar and counters.
struct StreamRun {
    started: Instant,
    started_at: String,
    progress: StreamProgress,
    counters: Counters,
    checks: Vec<CheckResult>,
}

impl StreamRun {
    fn start(ctx: &RunContext, job: &StreamJob) -> Self {
        Self {
            started: Instant::now(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            progress: StreamProgress::new(&ctx.reporter, &job.spec.id()),
            counters: Counters::default(),
            checks: Vec::new(),
        }
    }
}

/// Load one stream; never fails as a whole — the outcome carries the error.
pub async fn run_stream(ctx: &RunContext, job: StreamJob) -> StreamOutcome {
    let mut run = StreamRun::start(ctx, &job);
    let result = async {
        let (request, seq) = prepare(ctx, &job).await?;
        let messages = job.source.read(request).await?;
        transfer(ctx, &job, messages, seq, &mut run).await
    }
    .await;
    conclude(ctx, &job, run, result)
}

/// Load the streams of one source that reads them together (see
/// [`Source::reads_together`]): one `read_together` call, then every stream
/// consumed at once. Outcomes in the order of `jobs`.
pub async fn run_together(ctx: &RunContext, jobs: Vec<StreamJob>) -> Vec<StreamOutcome> {
    let Some(source) = jobs.first().map(|j| j.source.clone()) else {
        return Vec::new();
    };
    let mut runs: Vec<StreamRun> = jobs.iter().map(|j| StreamRun::start(ctx, j)).collect();
    let mut results: Vec<Option<Result<()>>> = jobs.iter().map(|_| None).collect();
    let mut requests = Vec::new();
    let mut seqs = Vec::new();
    let mut ready = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match prepare(ctx, job).await {
            Ok((request, seq)) => {
                requests.push(request);
                seqs.push(seq);
                ready.push(i);
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let mut streams: Vec<Option<(u64, Result<MessageStream, ConnectorError>)>> =
        jobs.iter().map(|_| None).collect();
    if !requests.is_empty() {
        let read = source.read_together(requests).await;
        for ((i, seq), messages) in ready.into_iter().zip(seqs).zip(read) {
            streams[i] = Some((seq, messages));
        }
    }
    let transfers = jobs
        .iter()
        .zip(runs.iter_mut())
        .zip(streams)
        .filter_map(|((job, run), stream)| stream.map(|s| (job, run, s)))
        .map(|(job, run, (seq, messages))| async move {
            match messages {
                Ok(messages) => transfer(ctx, job, messages, seq, run).await,
                Err(e) => Err(e.into()),
            }
        });
    let mut done = futures::future::join_all(transfers).await.into_iter();
    for r in results.iter_mut() {
        if r.is_none() {
            *r = done.next();
        }
    }
    jobs.into_iter()
        .zip(runs)
        .zip(results)
        .map(|((job, run), result)| {
            let result = result.unwrap_or_else(|| {
                Err(ConnectorError::Internal("a stream was never read".into()).into())
            });
            conclude(ctx, &job, run, result)
        })
        .collect()
}

/// The outcome of a stream, recorded in the run history.
fn conclude(
    ctx: &RunContext,
    job: &StreamJob,
    run: StreamRun,
    result: Result<()>,
) -> StreamOutcome {
    let StreamRun {
        started,
        started_at,
        progress,
        counters,
        checks,
    } = run;
    let id = job.spec.id();
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let retryable = result
        .as_ref()
        .err()
        .is_some_and(crate::output::retryable_of);
    let (status, error, hint) = match &result {
        Ok(()) => (RunStatus::Success, None, None),
        Err(e) => {
            let cancelled = e
                .downcast_ref::<ConnectorError>()
                .is_some_and(|c| matches!(c, ConnectorError::Cancelled));
            let status = if cancelled {
                RunStatus::Cancelled
            } else {
                RunStatus::Failed
            };
            let mut text = (ctx.redact)(&format!("{e}"));
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !text.contains(&c) {
                    text.push_str(&format!(": {}", (ctx.redact)(&c)));
                }
            }
            (status, Some(text), crate::output::hint_of(e))
        }
    };
    let outcome = StreamOutcome {
        stream: id.clone(),
        table: job.spec.table.to_string(),
        destination: job.destination.kind().to_string(),
        location: job.destination.describe(&job.spec.table),
        write_mode: if job.full_refresh {
            format!("{} (full refresh)", job.spec.write_mode)
        } else {
            job.spec.write_mode.to_string()
        },
        status,
        rows_read: counters.rows_read,
        rows_written: counters.rows_written,
        rows_quarantined: counters.rows_quarantined,
        rows_skipped: counters.rows_skipped,
        bytes_read: counters.bytes,
        files: counters.files,
        commits: counters.commits,
        seconds,
        rows_per_second: if seconds > 0.0 {
            counters.rows_read as f64 / seconds
        } else {
            0.0
        },
        schema_changes: counters.changes,
        position: counters.position,
        error,
        hint,
        retryable,
        checks,
    };
    crate::quality::record(&ctx.store, &ctx.run_id, &outcome.checks, &*ctx.redact);
    let record = StreamRunRecord {
        stream_id: job.state_key.clone(),
        target: if outcome.destination == "lake" {
            outcome.table.clone()
        } else {
            outcome.location.clone()
        },
        rows_read: outcome.rows_read,
        rows_written: outcome.rows_written,
        rows_quarantined: outcome.rows_quarantined,
        rows_skipped: outcome.rows_skipped,
        bytes_read: outcome.bytes_read,
        files: outcome.files,
        commits: outcome.commits,
        error: outcome.error.clone(),
    };
    if let Ok(store) = ctx.store.lock()
        && let Err(e) = store.record_stream(&ctx.run_id, status, &started_at, &record)
    {
        tracing::warn!("could not record the stream in the run history: {e}");
    }
    outcome
}

/// Decide where the stream starts: the store's bookmark, reconciled with
/// the checkpoint committed in the destination. Returns (state, last seq).
async fn reconcile(ctx: &RunContext, job: &StreamJob) -> Result<(Option<StreamState>, u64)> {
    let id = job.spec.id();
    let key = &job.state_key;
    let stored = ctx
        .store
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?
        .get_state(key)?;
    let committed = job
        .destination
        .committed_state(&job.spec.table, &id)
        .await?;
    let committed_seq = match &committed {
        CommittedState::Table(Some(s)) => s.seq,
        _ => 0,
    };
    let last_seq = stored.as_ref().map_or(0, |s| s.seq).max(committed_seq);
    if job.full_refresh || job.spec.write_mode == WriteMode::Overwrite {
        return Ok((None, last_seq));
    }
    // A manual `sluice state set|clear` newer than the table's checkpoint wins.
    if let Some(s) = &stored
        && s.run_id.as_deref() == Some(MANUAL_RUN_ID)
        && s.seq > committed_seq
    {
        let state = (!s.value.is_null()).then(|| s.clone());
        return Ok((state, last_seq));
    }
    let state = match committed {
        CommittedState::NotTracked => stored,
        CommittedState::NoTable => {
            if stored.is_some() {
                tracing::info!(
                    "{id}: table `{}` does not exist; reading from the start",
                    job.spec.table
                );
            }
            None
        }
        CommittedState::Table(None) => {
            if stored.is_some() {
                tracing::warn!(
                    "{id}: table `{}` has no checkpoint of this stream (replaced outside Sluice?); reading from the start",
                    job.spec.table
                );
            }
            None
        }
        CommittedState::Table(Some(table_state)) => {
            if stored.as_ref().map(|s| s.seq) != Some(table_state.seq) {
                tracing::info!(
                    "{id}: the state store was behind the table (checkpoint {} vs {}); continuing from the table's checkpoint",
                    table_state.seq,
                    stored.as_ref().map_or(0, |s| s.seq)
                );
                ctx.store
                    .lock()
                    .map_err(|_| anyhow::anyhow!("store lock poisoned"))?
                    .put_state(key, &table_state)?;
            }
            Some(table_state)
        }
    };
    Ok((state, last_seq))
}

/// Checks, state reconciliation and the read request of one stream.
async fn prepare(ctx: &RunContext, job: &StreamJob) -> Result<(ReadRequest, u64)> {
    let spec = &job.spec;
    if !job.destination.supports(spec.write_mode) {
        return Err(ConnectorError::Unsupported {
            connector: job.destination.kind(),
            what: format!("`write_mode: {}`", spec.write_mode),
            hint: Some(
                "load into the lake (the default destination), or change the stream's `write_mode`"
                    .into(),
            ),
        }
        .into());
    }
    let (state, seq) = reconcile(ctx, job).await?;
    let known_schema = if job.full_refresh {
        None
    } else {
        job.destination.table_schema(&spec.table).await?
    };
    let request = ReadRequest {
        stream: spec.stream.clone(),
        state: state.map(|s| s.value),
        on_error: spec.on_error,
        batch_size: spec.batch_size,
        known_schema,
    };
    Ok((request, seq))
}

/// Move one stream's messages into its destination.
async fn transfer(
    ctx: &RunContext,
    job: &StreamJob,
    mut messages: MessageStream,
    mut seq: u64,
    run: &mut StreamRun,
) -> Result<()> {
    let spec = &job.spec;
    let id = spec.id();
    let counters = &mut run.counters;
    let progress = &mut run.progress;
    let mut writer = job
        .destination
        .open(WriteRequest {
            table: spec.table.clone(),
            mode: spec.write_mode,
            primary_key: spec.primary_key.clone(),
            full_refresh: job.full_refresh,
            run_id: ctx.run_id.clone(),
            stream_id: id.clone(),
            evolution: spec.evolution,
            on_error: spec.on_error,
        })
        .await?;
    let mut cancel = ctx.cancel.clone();
    let mut checkpoints = 0u64;
    let mut row_checker: Option<RowChecker> = None;
    let wants_row_checks = job.checks.iter().any(Check::is_row_check);
    let result: Result<()> = async {
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                _ = cancel.wait_for(|c| *c) => return Err(ConnectorError::Cancelled.into()),
            };
            let Some(message) = next else { break };
            match message? {
                Message::Schema(schema) => {
                    check_keys(spec, &schema)?;
                    if wants_row_checks {
                        match row_checker.as_mut() {
                            Some(rc) => rc.rebind(&schema)?,
                            None => row_checker = Some(RowChecker::new(&job.checks, &schema)?),
                        }
                    }
                    writer.write(RecordBatch::new_empty(schema)).await?;
                }
                Message::Batch(batch) => {
                    let n = batch.num_rows() as u64;
                    counters.rows_read += n;
                    progress.advance(0, n);
                    let (good, bad) = split_null_keys(spec, batch)?;
                    if let Some(bad) = bad {
                        writer.quarantine(bad).await?;
                    }
                    let good = match row_checker.as_mut() {
                        Some(rc) => apply_row_checks(spec, rc, good, writer.as_mut()).await?,
                        None => good,
                    };
                    writer.write(good).await?;
                }
                Message::Quarantine(rows) => {
                    let n = rows.num_rows() as u64;
                    counters.rows_read += n;
                    progress.advance(0, n);
                    writer.quarantine(rows).await?;
                }
                Message::Checkpoint(cp) => {
                    seq += 1;
                    checkpoints += 1;
                    if let Some(c) = writer.checkpoint(seq, &cp).await? {
                        on_commit(ctx, &job.state_key, c, counters)?;
                    }
                }
                Message::Progress(p) => {
                    if let Some(total) = p.total_bytes {
                        progress.set_total(total);
                    }
                    counters.bytes += p.bytes;
                    counters.files += p.files;
                    counters.rows_skipped += p.rows_skipped;
                    progress.advance(p.bytes, 0);
                }
            }
        }
        if checkpoints == 0 {
            return Err(ConnectorError::Internal(format!(
                "the `{}` source ended stream `{id}` without a checkpoint",
                job.source.kind()
            ))
            .into());
        }
        progress.status("committing");
        if let Some(c) = writer.finish().await? {
            on_commit(ctx, &job.state_key, c, counters)?;
        }
        Ok(())
    }
    .await;
    // Let go of the source before aborting the writer (which may take a
    // while: a Singer target is killed and its stderr drained). A Singer
    // tap feeds every stream of the run from one process through bounded
    // channels; left undropped, this stream's full channel would hold the
    // tap's other streams back meanwhile.
    drop(messages);
    if let Some(rc) = &row_checker {
        run.checks = load_results(spec.on_fail, rc);
    }
    if let Err(e) = result {
        writer.abort().await;
        return Err(e);
    }
    // Rows a destination delivered without confirming them (a Singer target
    // that echoed no STATE for them) are accounted for, but carry no state.
    let unconfirmed = writer.unconfirmed();
    let accounted = counters.rows_written
        + counters.rows_quarantined
        + unconfirmed.rows
        + unconfirmed.quarantined;
    if accounted != counters.rows_read {
        return Err(ConnectorError::Internal(format!(
            "stream `{id}` read {} rows but committed {} and quarantined {}",
            counters.rows_read, counters.rows_written, counters.rows_quarantined
        ))
        .into());
    }
    table_checks(ctx, job, run).await
}

/// Row checks on one batch: the rows failing enforced checks stop the
/// stream, go to quarantine or are loaded, per `on_fail`. Returns the rows
/// to write.
async fn apply_row_checks(
    spec: &StreamSpec,
    rc: &mut RowChecker,
    batch: RecordBatch,
    writer: &mut dyn sluice_core::connector::StreamWriter,
) -> Result<RecordBatch> {
    let failures = rc
        .evaluate(&batch)
        .map_err(|e| ConnectorError::Internal(format!("Stream `{}`: {e}", spec.id())))?;
    if spec.on_fail == OnFail::Stop
        && let Some((id, why)) = rc.enforced_error()
    {
        return Err(crate::output::UserError::error(
            format!("Stream `{}`: check `{id}`: {why}", spec.id()),
            Some("nothing of this batch was written; fix the check's condition (docs/quality.md), or set `on_fail: warn` on the stream to load and report".to_string()),
        ));
    }
    let Some(f) = failures else {
        return Ok(batch);
    };
    match spec.on_fail {
        OnFail::Warn => Ok(batch),
        OnFail::Stop => {
            let bad = filter_record_batch(&batch, &f.mask)?;
            let first_row = rows_as_json(&bad.slice(0, 1))?
                .into_iter()
                .next()
                .unwrap_or_default();
            let first = f.rows.first();
            Err(ConnectorError::BadRecord {
                location: RecordLocation {
                    column: first.and_then(|r| r.column.clone()),
                    value: first.and_then(|r| r.value.clone()),
                    ..Default::default()
                },
                message: format!(
                    "Stream `{}`: {} rows of a batch fail checks; the first, {first_row}: {}",
                    spec.id(),
                    bad.num_rows(),
                    first.map(|r| r.reason.as_str()).unwrap_or_default()
                ),
                hint: Some("nothing of this batch was written; fix the data at the source, or set `on_fail: quarantine` on the stream to set failing rows aside (`on_fail: warn` loads them)".into()),
            }
            .into())
        }
        OnFail::Quarantine => {
            let bad = filter_record_batch(&batch, &f.mask)?;
            let mut q = QuarantineBuilder::default();
            for (record, row) in rows_as_json(&bad)?.into_iter().zip(f.rows) {
                q.push(&QuarantinedRow {
                    column: row.column,
                    value: row.value,
                    reason: row.reason,
                    record: Some(record),
                    ..Default::default()
                });
            }
            writer.quarantine(q.finish()?).await?;
            Ok(filter_record_batch(&batch, &not(&f.mask)?)?)
        }
    }
}

/// The row checks' results at the end of a load. Enforced failures that
/// were quarantined or loaded on purpose (`on_fail: quarantine | warn`)
/// are warnings: the stream did what it was told.
fn load_results(on_fail: OnFail, rc: &RowChecker) -> Vec<CheckResult> {
    let mut results = rc.results();
    if on_fail != OnFail::Stop {
        for r in results.iter_mut().filter(|r| r.status == Status::Fail) {
            r.status = Status::Warn;
            r.message.push_str(match on_fail {
                OnFail::Quarantine => "; quarantined",
                _ => "; loaded (on_fail: warn)",
            });
        }
    }
    results
}

/// After the commit: the stream's table checks on the committed table. A
/// failing one fails the stream unless `on_fail: warn` (the rows stay
/// committed; the failure keeps what depends on the table from trusting
/// it).
async fn table_checks(ctx: &RunContext, job: &StreamJob, run: &mut StreamRun) -> Result<()> {
    let checks: Vec<&Check> = job.checks.iter().filter(|c| !c.is_row_check()).collect();
    if checks.is_empty() {
        return Ok(());
    }
    let Some(place) = &job.check_place else {
        ctx.reporter.warn(&format!(
            "{}: {} table checks not run: after a load, only tables in a lake or in PostgreSQL are checked (its row checks ran)",
            job.spec.id(),
            checks.len()
        ));
        return Ok(());
    };
    run.progress.status("checking");
    let backend = place.backend(&ctx.run_id).await?;
    let store = ctx.store.clone();
    let history = move |id: &str, n: usize| crate::quality::history(&store, id, n);
    // The table as the place knows it: the checks' key without its destination.
    let key = &checks[0].table;
    let table = key.split_once(':').map_or(key.as_str(), |(_, t)| t);
    let mut results = sluice_quality::run_table(
        backend.as_ref(),
        table,
        &checks,
        &history,
        chrono::Utc::now(),
    )
    .await;
    if job.spec.on_fail == OnFail::Warn {
        for r in results.iter_mut().filter(|r| r.is_failure()) {
            r.status = Status::Warn;
        }
    }
    let failed: Vec<&CheckResult> = results.iter().filter(|r| r.is_failure()).collect();
    let error = failed.first().map(|r| {
        let more = if failed.len() > 1 {
            format!(" (and {} more)", failed.len() - 1)
        } else {
            String::new()
        };
        crate::output::UserError::error(
            format!(
                "check `{}` {} after the load: {}{more}",
                r.id,
                if r.status == Status::Error { "could not run" } else { "failed" },
                r.message
            ),
            Some("the rows are committed; fix the data and re-check with `sluice check`, or set `on_fail: warn` on the stream to only report".to_string()),
        )
    });
    run.checks.extend(results);
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn on_commit(ctx: &RunContext, key: &str, c: Committed, counters: &mut Counters) -> Result<()> {
    counters.commits += 1;
    counters.rows_written += c.rows;
    counters.rows_quarantined += c.quarantined;
    counters
        .changes
        .extend(c.changes.iter().map(ToString::to_string));
    for change in &c.changes {
        tracing::info!("{key}: {change}");
    }
    counters.position = Some(c.checkpoint.position.clone());
    let state = StreamState {
        seq: c.seq,
        value: c.checkpoint.state,
        run_id: Some(ctx.run_id.clone()),
    };
    ctx.store
        .lock()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?
        .put_state(key, &state)?;
    Ok(())
}

/// Key columns must exist before any row is written.
fn check_keys(
    spec: &StreamSpec,
    schema: &arrow::datatypes::SchemaRef,
) -> Result<(), ConnectorError> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for key in &spec.primary_key {
        if !names.contains(&key.as_str()) {
            let hint = match sluice_core::config::suggest::did_you_mean(key, names.iter().copied())
            {
                Some(s) => format!("did you mean `{s}`? Fix `primary_key` of the stream"),
                None => format!("the stream's columns are: {}", names.join(", ")),
            };
            return Err(ConnectorError::config(
                format!(
                    "Stream `{}`: primary key column `{key}` is not among its columns",
                    spec.id()
                ),
                Some(hint),
            ));
        }
    }
    Ok(())
}

/// Rows with a NULL in a key column cannot be merged (NULL matches nothing):
/// they are quarantined, or stop the stream, per `on_error`.
fn split_null_keys(
    spec: &StreamSpec,
    batch: RecordBatch,
) -> Result<(RecordBatch, Option<RecordBatch>)> {
    if spec.primary_key.is_empty() || batch.num_rows() == 0 {
        return Ok((batch, None));
    }
    let mut mask: Option<BooleanArray> = None;
    let mut null_keys = Vec::new();
    for key in &spec.primary_key {
        let col = batch
            .column_by_name(key)
            .ok_or_else(|| anyhow::anyhow!("key column `{key}` vanished"))?;
        if col.null_count() == 0 {
            continue;
        }
        null_keys.push(key.clone());
        let nulls = is_null(col)?;
        mask = Some(match mask {
            None => nulls,
            Some(m) => or(&m, &nulls)?,
        });
    }
    let Some(bad_mask) = mask else {
        return Ok((batch, None));
    };
    let bad = filter_record_batch(&batch, &bad_mask)?;
    let reason = format!("primary key `{}` is NULL", null_keys.join("`, `"));
    if spec.on_error == OnError::Fail {
        let first = rows_as_json(&bad)?.into_iter().next().unwrap_or_default();
        return Err(ConnectorError::BadRecord {
            location: RecordLocation {
                column: null_keys.first().cloned(),
                ..Default::default()
            },
            message: format!("Stream `{}`: {} rows have a {reason} (first: {first})", spec.id(), bad.num_rows()),
            hint: Some("every row needs its key (it identifies the row for merges and checks); fix the data, or set `on_error: quarantine` to set them aside".into()),
        }
        .into());
    }
    let mut q = QuarantineBuilder::default();
    for record in rows_as_json(&bad)? {
        q.push(&QuarantinedRow {
            column: null_keys.first().cloned(),
            reason: reason.clone(),
            record: Some(record),
            ..Default::default()
        });
    }
    let good = filter_record_batch(&batch, &not(&bad_mask)?)?;
    Ok((good, Some(q.finish()?)))
}

fn rows_as_json(batch: &RecordBatch) -> Result<Vec<String>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::writer::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    Ok(String::from_utf8_lossy(&buf)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Whether any outcome failed.
pub fn any_failed(outcomes: &[StreamOutcome]) -> bool {
    outcomes.iter().any(|o| o.status != RunStatus::Success)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use async_trait::async_trait;
    use sluice_core::TableName;
    use sluice_core::config::Replication;
    use sluice_core::connector::{Checkpoint, StreamInfo};

    use super::*;

    /// Set when the message stream is dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A schema, a batch, then nothing for ever (a tap that went quiet).
    struct StallingSource {
        dropped: Arc<AtomicBool>,
    }

    #[async_trait]
    impl Source for StallingSource {
        fn kind(&self) -> &'static str {
            "stalling"
        }
        async fn check(&self) -> sluice_core::connector::Result<String> {
            Ok(String::new())
        }
        async fn discover(&self) -> sluice_core::connector::Result<Vec<StreamInfo>> {
            Ok(Vec::new())
        }
        async fn read(&self, _: ReadRequest) -> sluice_core::connector::Result<MessageStream> {
            let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])
                    .map_err(|e| ConnectorError::Internal(e.to_string()))?;
            let flag = DropFlag(self.dropped.clone());
            let head =
                futures::stream::iter([Ok(Message::Schema(schema)), Ok(Message::Batch(batch))]);
            let tail = futures::stream::pending().map(move |m: Result<Message, ConnectorError>| {
                let _keep = &flag;
                m
            });
            Ok(head.chain(tail).boxed())
        }
    }

    /// Fails the first write; notes whether the source was let go of when
    /// it is aborted.
    struct FailingDestination {
        dropped: Arc<AtomicBool>,
        dropped_at_abort: Arc<Mutex<Option<bool>>>,
    }

    struct FailingWriter {
        dropped: Arc<AtomicBool>,
        dropped_at_abort: Arc<Mutex<Option<bool>>>,
    }

    #[async_trait]
    impl Destination for FailingDestination {
        fn kind(&self) -> &'static str {
            "failing"
        }
        fn describe(&self, table: &TableName) -> String {
            table.to_string()
        }
        async fn check(&self) -> sluice_core::connector::Result<String> {
            Ok(String::new())
        }
        fn supports(&self, _: WriteMode) -> bool {
            true
        }
        async fn open(
            &self,
            _: WriteRequest,
        ) -> sluice_core::connector::Result<Box<dyn sluice_core::connector::StreamWriter>> {
            Ok(Box::new(FailingWriter {
                dropped: self.dropped.clone(),
                dropped_at_abort: self.dropped_at_abort.clone(),
            }))
        }
    }

    #[async_trait]
    impl sluice_core::connector::StreamWriter for FailingWriter {
        async fn write(&mut self, batch: RecordBatch) -> sluice_core::connector::Result<()> {
            if batch.num_rows() == 0 {
                return Ok(());
            }
            Err(ConnectorError::External {
                message: "target died".into(),
                source: None,
                retryable: false,
            })
        }
        async fn quarantine(&mut self, _: RecordBatch) -> sluice_core::connector::Result<()> {
            Ok(())
        }
        async fn checkpoint(
            &mut self,
            _: u64,
            _: &Checkpoint,
        ) -> sluice_core::connector::Result<Option<Committed>> {
            Ok(None)
        }
        async fn finish(&mut self) -> sluice_core::connector::Result<Option<Committed>> {
            Ok(None)
        }
        async fn abort(&mut self) {
            if let Ok(mut seen) = self.dropped_at_abort.lock() {
                *seen = Some(self.dropped.load(Ordering::SeqCst));
            }
        }
    }

    #[tokio::test]
    async fn a_failed_stream_lets_go_of_its_source_before_aborting_the_writer() {
        let dropped = Arc::new(AtomicBool::new(false));
        let dropped_at_abort = Arc::new(Mutex::new(None));
        let global = crate::cli::Global {
            project_dir: None,
            json: false,
            verbose: 0,
            quiet: true,
            no_progress: true,
        };
        let (_cancel, cancel) = watch::channel(false);
        let ctx = RunContext {
            run_id: "r1".into(),
            store: Arc::new(Mutex::new(Store::in_memory().unwrap())),
            reporter: Reporter::new(&global),
            cancel,
            redact: Arc::new(|s: &str| s.to_string()),
        };
        let job = StreamJob {
            spec: StreamSpec {
                source: "tap".into(),
                stream: "orders".into(),
                table: TableName::new("tap", "orders"),
                write_mode: WriteMode::Append,
                on_error: OnError::Fail,
                replication: Replication::default(),
                cursor: None,
                primary_key: Vec::new(),
                destination: None,
                evolution: Default::default(),
                checks: Vec::new(),
                on_fail: Default::default(),
                batch_size: 1000,
            },
            source: Arc::new(StallingSource {
                dropped: dropped.clone(),
            }),
            destination: Arc::new(FailingDestination {
                dropped: dropped.clone(),
                dropped_at_abort: dropped_at_abort.clone(),
            }),
            full_refresh: false,
            state_key: "tap.orders".into(),
            checks: Vec::new(),
            check_place: None,
        };
        let outcome = run_stream(&ctx, job).await;
        assert_eq!(outcome.status, RunStatus::Failed);
        assert_eq!(outcome.error.as_deref(), Some("target died"));
        assert_eq!(*dropped_at_abort.lock().unwrap(), Some(true));
    }
}
