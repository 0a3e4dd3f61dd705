//! The executor: runs a [`Plan`]'s steps through a [`StepRunner`], as many
//! at once as the limits allow (globally and per resource pool), with
//! retries (exponential backoff with jitter), timeouts and cancellation.
//!
//! - A step starts once every step it waits for succeeded; among the ready
//!   ones, plan order first. A step whose pools are full waits without
//!   holding back other ready steps.
//! - A failed step (after its retries) skips every step below it; the rest
//!   of the run goes on.
//! - A retry waits `initial × multiplier^(n-1)`, capped at `max`, and with
//!   jitter a uniform draw in `[delay/2, delay]`, without holding a slot.
//! - A timeout or a cancellation first asks the step to stop (its
//!   [`StepContext::cancel`] turns true) and gives it `grace` to return:
//!   runners commit nothing half-done once asked to stop. A step still
//!   running after that is dropped.
//! - Cancelling the run starts nothing new; steps not started end
//!   `cancelled`.
//!
//! All steps are polled from the caller's task, so runners may borrow.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::plan::{Plan, Step};

/// What a step gets besides itself.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// 1 for the first try, 2 for the first retry, …
    pub attempt: u32,
    /// Turns true when the step must stop (run cancelled, timeout): commit
    /// nothing more and return.
    pub cancel: watch::Receiver<bool>,
}

impl StepContext {
    /// Whether the step has been asked to stop.
    pub fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
}

/// What a successful step reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepOutput {
    /// Rows written (or checked).
    pub rows: u64,
    /// Bytes read.
    pub bytes: u64,
    /// One line for people (`3 of 3 checks passed`).
    pub message: Option<String>,
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepError {
    /// What went wrong (already redacted by the runner).
    pub message: String,
    /// Whether trying again may help (a lost connection, a timeout), as
    /// opposed to a mistake in the project or the data.
    pub retryable: bool,
    /// The step stopped because it was asked to.
    pub cancelled: bool,
}

impl StepError {
    /// An error worth retrying.
    pub fn transient(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: true,
            cancelled: false,
        }
    }

    /// An error no retry will fix.
    pub fn fatal(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: false,
            cancelled: false,
        }
    }

    /// The step stopped on request.
    pub fn cancelled(message: impl Into<String>) -> StepError {
        StepError {
            message: message.into(),
            retryable: false,
            cancelled: true,
        }
    }
}

/// Runs one step. Implemented by the binary (loads, models, checks) and by
/// stand-ins in tests.
#[async_trait]
pub trait StepRunner: Send + Sync {
    /// Run `step`; return once it committed or failed. When
    /// `ctx.cancel` turns true, stop without committing anything half-done.
    async fn run(&self, step: &Step, ctx: StepContext) -> Result<StepOutput, StepError>;
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first try (0: none).
    pub max_retries: u32,
    /// Wait before the first retry.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Growth per retry.
    pub multiplier: f64,
    /// Draw each wait from `[delay/2, delay]`, so retries of many steps
    /// do not hit a server at the same instant.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 0,
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `n` (1-based), before jitter.
    pub fn base_delay(&self, n: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(n.saturating_sub(1).min(64) as i32);
        let secs = (self.initial.as_secs_f64() * factor).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The wait before retry `n`, with jitter when asked.
    pub fn delay(&self, n: u32) -> Duration {
        let d = self.base_delay(n);
        if self.jitter {
            d.mul_f64(0.5 + fastrand::f64() * 0.5)
        } else {
            d
        }
    }
}

/// Retries and time limit of a step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct StepPolicy {
    /// Retries.
    pub retry: RetryPolicy,
    /// Longest a try may take.
    pub timeout: Option<Duration>,
}

/// How many steps may run at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// In all.
    pub global: usize,
    /// Per resource pool; a pool not listed is unlimited (up to `global`).
    pub resources: HashMap<String, usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            global: 4,
            resources: HashMap::new(),
        }
    }
}

/// How to execute.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Concurrency limits.
    pub limits: Limits,
    /// Policy of every step not in `policies`.
    pub policy: StepPolicy,
    /// Per step id.
    pub policies: HashMap<String, StepPolicy>,
    /// How long a step asked to stop may take to return (default 30 s).
    pub grace: Option<Duration>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It ran and succeeded.
    Success,
    /// It failed after its retries.
    Failed,
    /// A step it waits for failed.
    Skipped,
    /// The run was cancelled before or while it ran.
    Cancelled,
}

impl StepStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every step succeeded.
    Success,
    /// A step failed (and its dependents were skipped).
    Failed,
    /// Cancelled.
    Cancelled,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// Step id.
    pub id: String,
    /// How it ended.
    pub status: StepStatus,
    /// Tries made (0 when it never started).
    pub attempts: u32,
    /// First start.
    pub started_at: Option<DateTime<Utc>>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Time spent running (all tries, without waits between them).
    pub seconds: f64,
    /// Output of the successful try.
    pub output: StepOutput,
    /// The last error, or why it was skipped.
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// How it ended.
    pub outcome: RunOutcome,
    /// Every step of the plan, in plan order.
    pub steps: Vec<StepReport>,
    /// Wall time.
    pub seconds: f64,
}

impl RunReport {
    /// Steps that ended with `status`.
    pub fn count(&self, status: StepStatus) -> usize {
        self.steps.iter().filter(|s| s.status == status).count()
    }
}

/// Something happened in the run (for progress, logs, the run store).
#[derive(Debug)]
pub enum Event<'a> {
    /// A try of a step starts.
    Started {
        /// The step.
        step: &'a Step,
        /// Which try.
        attempt: u32,
    },
    /// A try failed and another comes after `delay`.
    Retrying {
        /// The step.
        step: &'a Step,
        /// The try that failed.
        attempt: u32,
        /// Its error.
        error: &'a StepError,
        /// Wait before the next.
        delay: Duration,
    },
    /// A step ended (also skipped and cancelled ones that never started).
    Finished {
        /// The step.
        step: &'a Step,
        /// Its report.
        report: &'a StepReport,
    },
}

/// Receives the run's events, in order, on the executor's task: keep it
/// quick.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: Event<'_>);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: Event<'_>) {}
}

type Tried = (usize, u32, Result<StepOutput, StepError>, Duration);
type StepFuture<'a> = Pin<Box<dyn Future<Output = Tried> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Ready(u32),
    Running,
    Delayed,
    Done,
}

/// Run `plan` to the end (or until `cancel` turns true and the running
/// steps stopped).
pub async fn execute(
    plan: &Plan,
    runner: &dyn StepRunner,
    opts: &ExecOptions,
    observer: &dyn Observer,
    cancel: watch::Receiver<bool>,
) -> RunReport {
    let started = Instant::now();
    let n = plan.steps.len();
    let index: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting_on: Vec<usize> = vec![0; n];
    for (i, s) in plan.steps.iter().enumerate() {
        for d in &s.deps {
            if let Some(&p) = index.get(d.as_str()) {
                children[p].push(i);
                waiting_on[i] += 1;
            }
        }
    }
    let mut reports: Vec<StepReport> = plan
        .steps
        .iter()
        .map(|s| StepReport {
            id: s.id.clone(),
            status: StepStatus::Skipped,
            attempts: 0,
            started_at: None,
            finished_at: None,
            seconds: 0.0,
            output: StepOutput::default(),
            error: None,
        })
        .collect();
    let mut state: Vec<State> = (0..n)
        .map(|i| {
            if waiting_on[i] == 0 {
                State::Ready(1)
            } else {
                State::Waiting
            }
        })
        .collect();
    let mut ready: BTreeSet<usize> = (0..n).filter(|i| waiting_on[*i] == 0).collect();
    let mut delayed: Vec<(Instant, usize, u32)> = Vec::new();
    let mut in_pool: HashMap<&str, usize> = HashMap::new();
    let mut running = 0usize;
    let global = opts.limits.global.max(1);
    let grace = opts.grace.unwrap_or(Duration::from_secs(30));
    let mut futures: FuturesUnordered<StepFuture<'_>> = FuturesUnordered::new();
    let mut cancel_rx = cancel.clone();
    let mut cancelled = *cancel.borrow();
    let policy_of = |i: usize| -> StepPolicy {
        opts.policies
            .get(&plan.steps[i].id)
            .copied()
            .unwrap_or(opts.policy)
    };

    loop {
        // A step may see the cancellation (and end) before this loop does.
        cancelled = cancelled || *cancel_rx.borrow();
        if !cancelled {
            // Start what fits, plan order first.
            let mut started_now = Vec::new();
            for &i in &ready {
                if running >= global {
                    break;
                }
                let step = &plan.steps[i];
                let fits = step.resources.iter().all(|r| {
                    opts.limits.resources.get(r).is_none_or(|&max| {
                        in_pool.get(r.as_str()).copied().unwrap_or(0) < max.max(1)
                    })
                });
                if !fits {
                    continue;
                }
                let State::Ready(attempt) = state[i] else {
                    continue;
                };
                for r in &step.resources {
                    *in_pool.entry(r.as_str()).or_default() += 1;
                }
                running += 1;
                state[i] = State::Running;
                reports[i].attempts = attempt;
                if reports[i].started_at.is_none() {
                    reports[i].started_at = Some(Utc::now());
                }
                observer.event(Event::Started { step, attempt });
                let ctx_cancel = cancel.clone();
                futures.push(Box::pin(try_step(
                    runner,
                    step,
                    i,
                    attempt,
                    policy_of(i).timeout,
                    grace,
                    ctx_cancel,
                )));
                started_now.push(i);
            }
            for i in started_now {
                ready.remove(&i);
            }
        }
        if futures.is_empty() && (delayed.is_empty() || cancelled) {
            break;
        }
        let next_retry = delayed.iter().map(|d| d.0).min();
        tokio::select! {
            Some((i, attempt, result, took)) = futures.next() => {
                running -= 1;
                let step = &plan.steps[i];
                for r in &step.resources {
                    if let Some(c) = in_pool.get_mut(r.as_str()) {
                        *c = c.saturating_sub(1);
                    }
                }
                reports[i].seconds += took.as_secs_f64();
                match result {
                    Ok(output) => {
                        state[i] = State::Done;
                        reports[i].status = StepStatus::Success;
                        reports[i].output = output;
                        reports[i].error = None;
                        reports[i].finished_at = Some(Utc::now());
                        observer.event(Event::Finished { step, report: &reports[i] });
                        for &c in &children[i] {
                            waiting_on[c] -= 1;
                            if waiting_on[c] == 0 && state[c] == State::Waiting {
                                state[c] = State::Ready(1);
                                ready.insert(c);
                            }
                        }
                    }
                    Err(e) if e.cancelled || cancelled => {
                        state[i] = State::Done;
                        reports[i].status = StepStatus::Cancelled;
                        reports[i].error = Some(e.message);
                        reports[i].finished_at = Some(Utc::now());
                        observer.event(Event::Finished { step, report: &reports[i] });
                    }
                    Err(e) if e.retryable && attempt <= policy_of(i).retry.max_retries => {
                        let delay = policy_of(i).retry.delay(attempt);
                        observer.event(Event::Retrying { step, attempt, error: &e, delay });
                        reports[i].error = Some(e.message);
                        state[i] = State::Delayed;
                        delayed.push((Instant::now() + delay, i, attempt + 1));
                    }
                    Err(e) => {
                        state[i] = State::Done;
                        reports[i].status = StepStatus::Failed;
                        reports[i].error = Some(e.message);
                        reports[i].finished_at = Some(Utc::now());
                        observer.event(Event::Finished { step, report: &reports[i] });
                        skip_below(plan, i, &children, &mut state, &mut reports, &mut ready, observer);
                    }
                }
            }
            () = sleep_until(next_retry), if next_retry.is_some() && !cancelled => {
                let now = Instant::now();
                delayed.retain(|&(at, i, attempt)| {
                    if at <= now {
                        state[i] = State::Ready(attempt);
                        ready.insert(i);
                        false
                    } else {
                        true
                    }
                });
            }
            () = turned_true(&mut cancel_rx), if !cancelled => {
                cancelled = true;
            }
        }
    }
    cancelled = cancelled || *cancel_rx.borrow();
    // Whatever did not run: cancelled, or blocked by a cycle of units.
    for i in 0..n {
        if state[i] != State::Done {
            reports[i].status = if cancelled {
                StepStatus::Cancelled
            } else {
                StepStatus::Skipped
            };
            reports[i].error = Some(if cancelled {
                "the run was cancelled before the step ran".to_string()
            } else {
                "its dependencies never completed".to_string()
            });
            reports[i].finished_at = Some(Utc::now());
            observer.event(Event::Finished {
                step: &plan.steps[i],
                report: &reports[i],
            });
        }
    }
    let outcome = if cancelled {
        RunOutcome::Cancelled
    } else if reports.iter().all(|r| r.status == StepStatus::Success) {
        RunOutcome::Success
    } else {
        RunOutcome::Failed
    };
    RunReport {
        outcome,
        steps: reports,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Mark every step below `failed` skipped.
fn skip_below(
    plan: &Plan,
    failed: usize,
    children: &[Vec<usize>],
    state: &mut [State],
    reports: &mut [StepReport],
    ready: &mut BTreeSet<usize>,
    observer: &dyn Observer,
) {
    let mut stack: Vec<usize> = children[failed].clone();
    while let Some(c) = stack.pop() {
        if state[c] == State::Done {
            continue;
        }
        state[c] = State::Done;
        ready.remove(&c);
        reports[c].status = StepStatus::Skipped;
        reports[c].error = Some(format!("`{}` failed", plan.steps[failed].id));
        reports[c].finished_at = Some(Utc::now());
        observer.event(Event::Finished {
            step: &plan.steps[c],
            report: &reports[c],
        });
        stack.extend(children[c].iter().copied());
    }
}

/// One try of a step, under its timeout and the run's cancellation.
async fn try_step(
    runner: &dyn StepRunner,
    step: &Step,
    i: usize,
    attempt: u32,
    timeout: Option<Duration>,
    grace: Duration,
    mut run_cancel: watch::Receiver<bool>,
) -> Tried {
    let t0 = Instant::now();
    let (stop, stop_rx) = watch::channel(false);
    let ctx = StepContext {
        attempt,
        cancel: stop_rx,
    };
    let fut = runner.run(step, ctx);
    tokio::pin!(fut);
    let deadline = timeout.map(|t| t0 + t);
    let result = tokio::select! {
        r = &mut fut => r,
        () = turned_true(&mut run_cancel) => {
            let _ = stop.send(true);
            match tokio::time::timeout(grace, &mut fut).await {
                Ok(r) => r.map_err(|e| StepError { cancelled: true, ..e }),
                Err(_) => Err(StepError::cancelled(format!(
                    "cancelled; the step did not stop within {}s and was abandoned",
                    grace.as_secs()
                ))),
            }
        }
        () = sleep_until(deadline), if deadline.is_some() => {
            let _ = stop.send(true);
            let limit = timeout.unwrap_or_default();
            match tokio::time::timeout(grace, &mut fut).await {
                // It finished as it was told to stop: keep what it did.
                Ok(Ok(out)) => Ok(out),
                _ => Err(StepError::transient(format!(
                    "timed out after {}",
                    human(limit)
                ))),
            }
        }
    };
    (i, attempt, result, t0.elapsed())
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else if s < 120.0 {
        format!("{s:.0}s")
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the flag is true; never if its sender is gone while false.
async fn turned_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;
    use crate::graph::tests::graph;
    use crate::graph::{Asset, AssetGraph, AssetKind};
    use crate::plan::PlanOptions;

    /// What a stand-in step does.
    #[derive(Debug, Clone, Copy)]
    enum Act {
        /// Sleep, then succeed with these rows.
        Ok(u64, u64),
        /// Fail transiently this many times, then succeed.
        Flaky(u32),
        /// Fail, not worth retrying.
        Fatal,
        /// Run until told to stop; then return cancelled.
        Hang,
    }

    #[derive(Default)]
    struct Log {
        running: HashSet<String>,
        max_running: usize,
        max_in_db: usize,
        started: Vec<(String, u32)>,
        finished: Vec<String>,
        saw_cancel: Vec<String>,
    }

    struct StandIn {
        acts: HashMap<String, Act>,
        db: HashSet<String>,
        log: Mutex<Log>,
    }

    impl StandIn {
        fn new(acts: &[(&str, Act)]) -> StandIn {
            StandIn {
                acts: acts.iter().map(|(k, a)| (k.to_string(), *a)).collect(),
                db: HashSet::new(),
                log: Mutex::new(Log::default()),
            }
        }
    }

    #[async_trait]
    impl StepRunner for StandIn {
        async fn run(&self, step: &Step, mut ctx: StepContext) -> Result<StepOutput, StepError> {
            {
                let mut log = self.log.lock().unwrap();
                // Every step it waits for has finished.
                for d in &step.deps {
                    assert!(log.finished.contains(d), "{} started before {d}", step.id);
                }
                log.running.insert(step.id.clone());
                log.max_running = log.max_running.max(log.running.len());
                let in_db = log.running.iter().filter(|r| self.db.contains(*r)).count();
                log.max_in_db = log.max_in_db.max(in_db);
                log.started.push((step.id.clone(), ctx.attempt));
            }
            let act = self.acts.get(&step.id).copied().unwrap_or(Act::Ok(10, 0));
            let result = match act {
                Act::Ok(ms, rows) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(StepOutput {
                        rows,
                        ..Default::default()
                    })
                }
                Act::Flaky(n) if ctx.attempt <= n => Err(StepError::transient("connection reset")),
                Act::Flaky(_) => Ok(StepOutput::default()),
                Act::Fatal => Err(StepError::fatal("column `x` does not exist")),
                Act::Hang => {
                    turned_true(&mut ctx.cancel).await;
                    self.log.lock().unwrap().saw_cancel.push(step.id.clone());
                    Err(StepError::cancelled("stopped"))
                }
            };
            let mut log = self.log.lock().unwrap();
            log.running.remove(&step.id);
            if result.is_ok() {
                log.finished.push(step.id.clone());
            }
            result
        }
    }

    fn plan_of(g: &AssetGraph) -> Plan {
        let all: HashSet<String> = g.assets().map(|a| a.key.clone()).collect();
        Plan::new(g, &all, PlanOptions::default())
    }

    fn status(r: &RunReport, id: &str) -> StepStatus {
        r.steps.iter().find(|s| s.id == id).unwrap().status
    }

    async fn run(plan: &Plan, runner: &StandIn, opts: &ExecOptions) -> RunReport {
        let (_tx, rx) = watch::channel(false);
        execute(plan, runner, opts, &Quiet, rx).await
    }

    #[tokio::test(start_paused = true)]
    async fn runs_in_dependency_order_in_parallel() {
        let g = graph(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["a"]),
            ("d", &["b", "c"]),
            ("e", &[]),
        ]);
        let plan = plan_of(&g);
        let runner = StandIn::new(&[("a", Act::Ok(100, 5)), ("b", Act::Ok(300, 0))]);
        let r = run(&plan, &runner, &ExecOptions::default()).await;
        assert_eq!(r.outcome, RunOutcome::Success);
        assert_eq!(r.count(StepStatus::Success), 5);
        assert_eq!(r.steps[0].output.rows, 5);
        let log = runner.log.lock().unwrap();
        assert_eq!(log.finished.last().map(String::as_str), Some("d"));
        // a and e start together; b and c together.
        assert!(log.max_running >= 2);
    }

    #[tokio::test(start_paused = true)]
    async fn respects_global_and_pool_limits() {
        let mut assets: Vec<Asset> = (0..12)
            .map(|i| {
                let mut a = Asset::new(format!("s{i}"), AssetKind::Stream);
                if i % 2 == 0 {
                    a.resources = vec!["db".into()];
                }
                a
            })
            .collect();
        assets[11].deps = vec!["s0".into()];
        let g = AssetGraph::new(assets).unwrap();
        let plan = plan_of(&g);
        let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
        let acts: Vec<(&str, Act)> = names
            .iter()
            .map(|n| (n.as_str(), Act::Ok(1000, 0)))
            .collect();
        let mut runner = StandIn::new(&acts);
        runner.db = (0..12)
            .filter(|i| i % 2 == 0)
            .map(|i| format!("s{i}"))
            .collect();
        let opts = ExecOptions {
            limits: Limits {
                global: 3,
                resources: HashMap::from([("db".to_string(), 1)]),
            },
            ..Default::default()
        };
        let t0 = Instant::now();
        let r = run(&plan, &runner, &opts).await;
        assert_eq!(r.outcome, RunOutcome::Success);
        let log = runner.log.lock().unwrap();
        assert_eq!(log.max_running, 3);
        assert_eq!(log.max_in_db, 1);
        // Six steps in `db` one at a time: at least 6 s of (virtual) time.
        assert!(t0.elapsed() >= Duration::from_secs(6), "{:?}", t0.elapsed());
        assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_with_backoff_then_gives_up() {
        let g = graph(&[("flaky", &[]), ("hopeless", &[]), ("broken", &[])]);
        let plan = plan_of(&g);
        let runner = StandIn::new(&[
            ("flaky", Act::Flaky(2)),
            ("hopeless", Act::Flaky(10)),
            ("broken", Act::Fatal),
        ]);
        let opts = ExecOptions {
            policy: StepPolicy {
                retry: RetryPolicy {
                    max_retries: 3,
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(60),
                    multiplier: 2.0,
                    jitter: false,
                },
                timeout: None,
            },
            ..Default::default()
        };
        let t0 = Instant::now();
        let r = run(&plan, &runner, &opts).await;
        let get = |id: &str| r.steps.iter().find(|s| s.id == id).unwrap();
        assert_eq!(get("flaky").status, StepStatus::Success);
        assert_eq!(get("flaky").attempts, 3);
        assert_eq!(get("hopeless").status, StepStatus::Failed);
        assert_eq!(get("hopeless").attempts, 4);
        assert_eq!(get("hopeless").error.as_deref(), Some("connection reset"));
        assert_eq!(get("broken").attempts, 1, "a fatal error is not retried");
        // hopeless waited 1 + 2 + 4 s between its tries.
        assert!(t0.elapsed() >= Duration::from_secs(7), "{:?}", t0.elapsed());
        assert_eq!(r.outcome, RunOutcome::Failed);
    }

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let p = RetryPolicy {
            max_retries: 10,
            initial: Duration::from_secs(2),
            max: Duration::from_secs(30),
            multiplier: 3.0,
            jitter: true,
        };
        assert_eq!(p.base_delay(1), Duration::from_secs(2));
        assert_eq!(p.base_delay(2), Duration::from_secs(6));
        assert_eq!(p.base_delay(3), Duration::from_secs(18));
        assert_eq!(p.base_delay(4), Duration::from_secs(30));
        for n in 1..6 {
            let d = p.delay(n);
            assert!(d >= p.base_delay(n) / 2 && d <= p.base_delay(n), "{d:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_skips_what_depends_on_it_and_the_rest_goes_on() {
        let g = graph(&[
            ("a", &[]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("d", &["a"]),
            ("x", &[]),
        ]);
        let plan = plan_of(&g);
        let runner = StandIn::new(&[("b", Act::Fatal)]);
        let r = run(&plan, &runner, &ExecOptions::default()).await;
        assert_eq!(r.outcome, RunOutcome::Failed);
        assert_eq!(status(&r, "b"), StepStatus::Failed);
        assert_eq!(status(&r, "c"), StepStatus::Skipped);
        assert_eq!(r.steps[2].error.as_deref(), Some("`b` failed"));
        assert_eq!(status(&r, "d"), StepStatus::Success);
        assert_eq!(status(&r, "x"), StepStatus::Success);
        assert!(
            !runner
                .log
                .lock()
                .unwrap()
                .started
                .iter()
                .any(|(s, _)| s == "c")
        );

        // --from-failure: only the failed and skipped steps, now fixed.
        let again: HashSet<String> = r
            .steps
            .iter()
            .filter(|s| s.status != StepStatus::Success)
            .map(|s| s.id.clone())
            .collect();
        let fixed = StandIn::new(&[]);
        let r2 = run(&plan.restrict(&again), &fixed, &ExecOptions::default()).await;
        assert_eq!(r2.outcome, RunOutcome::Success);
        let ran: Vec<String> = fixed
            .log
            .lock()
            .unwrap()
            .started
            .iter()
            .map(|s| s.0.clone())
            .collect();
        assert_eq!(ran, ["b", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_asks_the_step_to_stop_and_fails_it() {
        let g = graph(&[("slow", &[]), ("after", &["slow"])]);
        let plan = plan_of(&g);
        let runner = StandIn::new(&[("slow", Act::Hang)]);
        let opts = ExecOptions {
            policies: HashMap::from([(
                "slow".to_string(),
                StepPolicy {
                    retry: RetryPolicy::default(),
                    timeout: Some(Duration::from_secs(5)),
                },
            )]),
            ..Default::default()
        };
        let r = run(&plan, &runner, &opts).await;
        assert_eq!(status(&r, "slow"), StepStatus::Failed);
        assert_eq!(r.steps[0].error.as_deref(), Some("timed out after 5s"));
        assert_eq!(status(&r, "after"), StepStatus::Skipped);
        assert_eq!(runner.log.lock().unwrap().saw_cancel, ["slow"]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_stops_running_steps_and_starts_nothing_new() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &[])]);
        let plan = plan_of(&g);
        let runner = StandIn::new(&[("a", Act::Hang), ("b", Act::Ok(100, 1))]);
        let opts = ExecOptions {
            limits: Limits {
                global: 2,
                resources: HashMap::new(),
            },
            ..Default::default()
        };
        let (tx, rx) = watch::channel(false);
        let cancel_later = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = tx.send(true);
        };
        let (r, ()) = tokio::join!(execute(&plan, &runner, &opts, &Quiet, rx), cancel_later);
        assert_eq!(r.outcome, RunOutcome::Cancelled, "{r:#?}");
        assert_eq!(status(&r, "a"), StepStatus::Cancelled);
        assert_eq!(status(&r, "b"), StepStatus::Success);
        assert_eq!(status(&r, "c"), StepStatus::Cancelled);
        // d took b's slot once b finished.
        assert_eq!(status(&r, "d"), StepStatus::Success);
        assert_eq!(runner.log.lock().unwrap().saw_cancel, ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn events_come_in_order_for_every_step() {
        struct Collect(Mutex<Vec<String>>);
        impl Observer for Collect {
            fn event(&self, e: Event<'_>) {
                let line = match e {
                    Event::Started { step, attempt } => format!("start {} {attempt}", step.id),
                    Event::Retrying { step, .. } => format!("retry {}", step.id),
                    Event::Finished { step, report } => {
                        format!("end {} {}", step.id, report.status.as_str())
                    }
                };
                self.0.lock().unwrap().push(line);
            }
        }
        let g = graph(&[("a", &[]), ("b", &["a"])]);
        let plan = plan_of(&g);
        let runner = StandIn::new(&[("a", Act::Flaky(1))]);
        let opts = ExecOptions {
            policy: StepPolicy {
                retry: RetryPolicy {
                    max_retries: 1,
                    jitter: false,
                    ..RetryPolicy::default()
                },
                timeout: None,
            },
            ..Default::default()
        };
        let seen = Collect(Mutex::new(Vec::new()));
        let (_tx, rx) = watch::channel(false);
        execute(&plan, &runner, &opts, &seen, rx).await;
        assert_eq!(
            seen.0.into_inner().unwrap(),
            [
                "start a 1",
                "retry a",
                "start a 2",
                "end a success",
                "start b 1",
                "end b success"
            ]
        );
    }
}
