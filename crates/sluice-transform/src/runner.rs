//! Running a compiled project: `seed`, `run`, `test` and `build`, with
//! dbt's materialization decisions and skip rules.
//!
//! - Nodes run in build order. In `build`, a test runs right after the
//!   nodes it tests, before their children (dbt's test edges).
//! - A node whose parent failed (or was skipped) is skipped; in `build`, a
//!   failing test (severity error) skips the children of what it tests.
//! - Incremental models are rendered again with `is_incremental()` true when
//!   their table exists (and `--full-refresh` is not given).
//! - The compiled SQL of every node run is written under
//!   `target/compiled/<project>/`, so an error can point at its line.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::engine::{
    Engine, Existing, Incremental, OnSchemaChange, Outcome, SnapshotSpec, SnapshotStrategy,
};
use crate::manifest::{Manifest, Node, NodeKind};
use crate::seed::{SeedOptions, read_seed};
use crate::testing::TestSettings;

/// Which dbt command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Load seeds.
    Seed,
    /// Build models.
    Run,
    /// Run data tests.
    Test,
    /// Take the snapshots.
    Snapshot,
    /// Seeds, models, snapshots and tests, in graph order.
    Build,
}

impl Command {
    /// dbt's name of the command.
    pub fn name(self) -> &'static str {
        match self {
            Command::Seed => "seed",
            Command::Run => "run",
            Command::Test => "test",
            Command::Snapshot => "snapshot",
            Command::Build => "build",
        }
    }

    fn takes(self, kind: NodeKind) -> bool {
        matches!(
            (self, kind),
            (Command::Seed, NodeKind::Seed)
                | (Command::Run, NodeKind::Model)
                | (Command::Test, NodeKind::Test | NodeKind::UnitTest)
                | (Command::Snapshot, NodeKind::Snapshot)
                | (Command::Build, _)
        )
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rebuild incremental models and seeds from scratch.
    pub full_refresh: bool,
    /// The selected nodes (all when `None`).
    pub selected: Option<HashSet<String>>,
    /// Stop at the first failure (the rest are skipped).
    pub fail_fast: bool,
}

/// The outcome of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A model or seed was built.
    Success,
    /// A model, seed or test could not run.
    Error,
    /// Not run: something it depends on failed.
    Skipped,
    /// A test found nothing wrong.
    Pass,
    /// A test failed (severity error).
    Fail,
    /// A test failed with severity warn (or under `error_if`).
    Warn,
}

impl Status {
    /// dbt's word (`success`, `error`, `skipped`, `pass`, `fail`, `warn`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
            Status::Skipped => "skipped",
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
        }
    }

    /// Whether this counts as a failure of the command.
    pub fn failed(self) -> bool {
        matches!(self, Status::Error | Status::Fail)
    }
}

/// What happened to one node.
#[derive(Debug, Clone)]
pub struct NodeResult {
    /// Node name.
    pub name: String,
    /// dbt unique id.
    pub unique_id: String,
    /// Model, seed or test.
    pub kind: NodeKind,
    /// `view`, `table`, `incremental`, `seed`, `test`.
    pub materialized: String,
    /// Outcome.
    pub status: Status,
    /// For people: `CREATE VIEW`, `SELECT 60`, `INSERT 24`, `PASS`, the
    /// error, `Got 3 results, configured to fail if != 0`.
    pub message: String,
    /// Test failures.
    pub failures: Option<u64>,
    /// Rows written.
    pub rows: Option<u64>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: DateTime<Utc>,
    /// Seconds.
    pub execution_time: f64,
    /// The relation it built (`"schema"."name"`).
    pub relation: Option<String>,
    /// The SQL that ran.
    pub compiled_sql: Option<String>,
    /// Where that SQL was written, relative to the project.
    pub compiled_path: Option<PathBuf>,
    /// Dialect warnings about its SQL (with the compiled SQL's line).
    pub warnings: Vec<String>,
    /// What its Jinja logged (`log()`, `print()`, `print_table()`) when
    /// it was rendered right before running (a node with database calls).
    pub logs: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct RunResults {
    /// The command.
    pub command: Command,
    /// One per node considered, in the order they ran.
    pub results: Vec<NodeResult>,
    /// Seconds.
    pub elapsed: f64,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

impl RunResults {
    /// How many results have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// Whether anything failed.
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.status.failed())
    }

    /// dbt's last line: `Done. PASS=… WARN=… ERROR=… SKIP=… TOTAL=…`.
    pub fn summary_line(&self) -> String {
        let pass = self.count(Status::Success) + self.count(Status::Pass);
        let error = self.count(Status::Error) + self.count(Status::Fail);
        format!(
            "Done. PASS={pass} WARN={} ERROR={error} SKIP={} TOTAL={}",
            self.count(Status::Warn),
            self.count(Status::Skipped),
            self.results.len()
        )
    }
}

/// Progress, for the command line.
#[derive(Debug)]
pub enum Event<'a> {
    /// A node starts: its 1-based index and the total.
    Start(usize, usize, &'a Node),
    /// A node ended.
    Done(usize, usize, &'a NodeResult),
}

/// The nodes `command` runs, in order (ephemeral models left out: they are
/// CTEs of their children).
pub fn plan(manifest: &Manifest, command: Command, opts: &RunOptions) -> Vec<String> {
    let wanted = |n: &Node| {
        command.takes(n.kind)
            && n.materialized() != "ephemeral"
            && opts.selected.as_ref().is_none_or(|s| s.contains(&n.name))
    };
    let base: Vec<&String> = manifest
        .order
        .iter()
        .filter(|n| manifest.nodes.get(*n).is_some_and(wanted))
        .collect();
    if command != Command::Build {
        return base.into_iter().cloned().collect();
    }
    // Build: each test goes right after the last of the nodes it tests, so
    // it runs before their children.
    let position: HashMap<&str, usize> = base
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut keyed: Vec<(usize, usize, &String)> = base
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let node = &manifest.nodes[*name];
            if matches!(node.kind, NodeKind::Test | NodeKind::UnitTest) {
                let after = node
                    .depends_on
                    .iter()
                    .filter_map(|d| position.get(d.as_str()))
                    .max()
                    .copied();
                match after {
                    Some(p) => (p, 1, *name),
                    None => (i, 0, *name),
                }
            } else {
                (i, 0, *name)
            }
        })
        .collect();
    keyed.sort_by_key(|(p, t, _)| (*p, *t));
    keyed.into_iter().map(|(_, _, n)| n.clone()).collect()
}

/// Where dbt writes a node's compiled SQL, relative to the project:
/// `target/compiled/<package>/<path in the package>` (a generic test:
/// `<properties file>/<test name>.sql`).
pub fn compiled_path(_manifest: &Manifest, target_path: &str, node: &Node) -> PathBuf {
    let base = Path::new(target_path)
        .join("compiled")
        .join(&node.package_name);
    match (&node.test, node.kind) {
        (Some(t), NodeKind::Test) if t.generic.is_some() => base
            .join(node.original_file_path())
            .join(format!("{}.sql", node.name)),
        _ => base.join(node.original_file_path()),
    }
}

/// Run `command` over the plan. Never fails as a whole: each node's error
/// is in its result.
pub async fn execute(
    manifest: &Manifest,
    project_dir: &Path,
    target_path: &str,
    engine: &dyn Engine,
    command: Command,
    opts: &RunOptions,
    on_event: &mut (dyn FnMut(Event<'_>) + Send),
) -> RunResults {
    let started = Instant::now();
    let started_at = Utc::now();
    let plan = plan(manifest, command, opts);
    let total = plan.len();
    let mut results = Vec::with_capacity(total);
    // Nodes that failed or were skipped: their children are skipped.
    let mut broken: HashSet<String> = HashSet::new();
    // Nodes a failing test checks: their children are skipped (build).
    let mut untrusted: HashSet<String> = HashSet::new();
    // Models whose unit test failed: skipped (build).
    let mut unit_failed: HashSet<String> = HashSet::new();
    let mut stop = false;
    // Ephemeral models pass breakage through.
    let through = |name: &str, broken: &HashSet<String>| -> bool {
        let mut stack = vec![name.to_string()];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if broken.contains(&n) {
                return true;
            }
            if let Some(node) = manifest.nodes.get(&n)
                && node.materialized() == "ephemeral"
                && seen.insert(n.clone())
            {
                stack.extend(node.depends_on.iter().cloned());
            }
        }
        false
    };
    for (i, name) in plan.iter().enumerate() {
        let Some(node) = manifest.nodes.get(name) else {
            continue;
        };
        on_event(Event::Start(i + 1, total, node));
        let t0 = Instant::now();
        let node_started = Utc::now();
        let tested = |k: NodeKind| matches!(k, NodeKind::Test | NodeKind::UnitTest);
        let blocked_by = node
            .depends_on
            .iter()
            .find(|d| through(d, &broken) || (!tested(node.kind) && untrusted.contains(*d)))
            .or_else(|| unit_failed.contains(name).then_some(name));
        // A node whose Jinja runs database calls is rendered now, its
        // parents built.
        let live = if blocked_by.is_none()
            && !stop
            && matches!(
                node.kind,
                NodeKind::Model | NodeKind::Test | NodeKind::Snapshot
            )
            && manifest.needs_database(name)
        {
            Some(
                match crate::live::render(manifest, engine, name, false).await {
                    Ok(r) => {
                        let mut n = node.clone();
                        n.sql = Some(r.sql);
                        Ok((n, r.logs))
                    }
                    Err(e) => Err(format!(
                        "{} `{}`: {e}",
                        node.kind.resource_type(),
                        node.name
                    )),
                },
            )
        } else {
            None
        };
        let (node, logs) = match &live {
            Some(Ok((n, logs))) => (n, logs.clone()),
            _ => (node, Vec::new()),
        };
        let warnings = match (&node.sql, node.kind, blocked_by.is_none() && !stop) {
            (Some(sql), NodeKind::Model, true) if node.materialized() != "ephemeral" => {
                engine.lint(sql).await
            }
            _ => Vec::new(),
        };
        let (status, message, outcome, failures, sql) = if stop {
            (
                Status::Skipped,
                "skipped: an earlier node failed (--fail-fast)".to_string(),
                Outcome::default(),
                None,
                None,
            )
        } else if let Some(parent) = blocked_by {
            (
                Status::Skipped,
                format!("skipped: `{parent}` failed upstream"),
                Outcome::default(),
                None,
                None,
            )
        } else if let Some(Err(message)) = &live {
            (
                Status::Error,
                message.clone(),
                Outcome::default(),
                None,
                None,
            )
        } else {
            run_node(manifest, project_dir, engine, node, opts).await
        };
        let compiled_path = sql
            .as_ref()
            .map(|_| compiled_path(manifest, target_path, node));
        if let (Some(sql), Some(p)) = (&sql, &compiled_path) {
            let full = project_dir.join(p);
            if let Some(parent) = full.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(&full, sql);
        }
        let message = match (status, &compiled_path, &sql) {
            (Status::Error, Some(p), Some(sql)) => {
                let at = locate(&message, sql)
                    .map(|l| format!(", line {l}"))
                    .unwrap_or_default();
                format!("{message}\n  compiled SQL: {}{at}", p.display())
            }
            _ => message,
        };
        match status {
            Status::Error | Status::Skipped => {
                broken.insert(name.clone());
            }
            Status::Fail if node.kind == NodeKind::UnitTest => {
                if let Some(model) = node.test.as_ref().and_then(|t| t.attached.clone()) {
                    unit_failed.insert(model);
                }
            }
            Status::Fail => {
                untrusted.extend(node.depends_on.iter().cloned());
            }
            _ => {}
        }
        if opts.fail_fast && status.failed() {
            stop = true;
        }
        let result = NodeResult {
            name: name.clone(),
            unique_id: node.unique_id.clone(),
            kind: node.kind,
            materialized: node.materialized().to_string(),
            status,
            message,
            failures,
            rows: outcome.rows,
            started_at: node_started,
            completed_at: Utc::now(),
            execution_time: t0.elapsed().as_secs_f64(),
            relation: (!matches!(node.kind, NodeKind::Test | NodeKind::UnitTest))
                .then(|| node.relation.to_string()),
            compiled_sql: sql,
            compiled_path,
            warnings,
            logs,
        };
        on_event(Event::Done(i + 1, total, &result));
        results.push(result);
    }
    RunResults {
        command,
        results,
        elapsed: started.elapsed().as_secs_f64(),
        started_at,
    }
}

type NodeRun = (Status, String, Outcome, Option<u64>, Option<String>);

async fn run_node(
    manifest: &Manifest,
    project_dir: &Path,
    engine: &dyn Engine,
    node: &Node,
    opts: &RunOptions,
) -> NodeRun {
    let error = |m: String, sql: Option<String>| (Status::Error, m, Outcome::default(), None, sql);
    match node.kind {
        NodeKind::Seed => {
            let options = match seed_options(node) {
                Ok(o) => o,
                Err(m) => return error(m, None),
            };
            let seed = match read_seed(&project_dir.join(&node.path), &options) {
                Ok(s) => s,
                Err(e) => return error(e.to_string(), None),
            };
            let rows = seed.rows;
            match engine.load_seed(&node.relation, seed).await {
                Ok(o) => (
                    Status::Success,
                    format!("INSERT {rows}"),
                    Outcome {
                        rows: Some(rows as u64),
                        ..o
                    },
                    None,
                    None,
                ),
                Err(e) => error(format!("seed `{}`: {e}", node.name), None),
            }
        }
        NodeKind::Test => {
            let Some(inner) = node.sql.clone() else {
                return error("the test has no SQL".into(), None);
            };
            let settings = TestSettings::of(&node.config);
            let sql = settings.wrap(&inner);
            if settings.store_failures
                && let Err(e) = engine.create_table(&node.relation, &inner).await
            {
                return error(
                    format!("test `{}`: storing its failures: {e}", node.name),
                    Some(sql),
                );
            }
            match engine.run_test(&sql).await {
                Ok(t) => {
                    let (status, message) = if t.should_error && !settings.severity_warn {
                        (
                            Status::Fail,
                            format!(
                                "Got {} result{}, configured to fail if {}",
                                t.failures,
                                plural(t.failures),
                                settings.error_if
                            ),
                        )
                    } else if t.should_warn {
                        (
                            Status::Warn,
                            format!(
                                "Got {} result{}, configured to warn if {}",
                                t.failures,
                                plural(t.failures),
                                settings.warn_if
                            ),
                        )
                    } else {
                        (Status::Pass, "PASS".to_string())
                    };
                    let message = if settings.store_failures && t.failures > 0 {
                        format!("{message}; failing rows in {}", node.relation)
                    } else {
                        message
                    };
                    (
                        status,
                        message,
                        Outcome::default(),
                        Some(t.failures),
                        Some(sql),
                    )
                }
                Err(e) => error(format!("test `{}`: {e}", node.name), Some(sql)),
            }
        }
        NodeKind::Model => run_model(manifest, engine, node, opts).await,
        NodeKind::Snapshot => run_snapshot(engine, node).await,
        NodeKind::UnitTest => {
            let Some(spec) = &node.unit else {
                return error("no unit test definition".into(), None);
            };
            match crate::unit::run(manifest, project_dir, spec).await {
                Ok(u) => (
                    if u.passed { Status::Pass } else { Status::Fail },
                    u.message,
                    Outcome::default(),
                    Some(u.failures),
                    None,
                ),
                Err(e) => error(e, None),
            }
        }
    }
}

fn names(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(
            s.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
        ),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

async fn run_snapshot(engine: &dyn Engine, node: &Node) -> NodeRun {
    let error = |m: String, sql: Option<String>| (Status::Error, m, Outcome::default(), None, sql);
    let what = |m: &str| format!("snapshot `{}` ({}): {m}", node.name, node.path.display());
    let Some(sql) = node.sql.clone() else {
        return error(what("no SQL"), None);
    };
    let text = |k: &str| {
        node.config
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let strategy = match text("strategy").as_deref() {
        Some("timestamp") => match text("updated_at") {
            Some(u) => SnapshotStrategy::Timestamp(u),
            None => return error(what("strategy `timestamp` needs `updated_at`"), Some(sql)),
        },
        Some("check") => match node.config.get("check_cols") {
            Some(Value::String(s)) if s == "all" => SnapshotStrategy::Check(None),
            other => match names(other) {
                Some(c) if !c.is_empty() => SnapshotStrategy::Check(Some(c)),
                _ => {
                    return error(
                        what("strategy `check` needs `check_cols` (a list, or `all`)"),
                        Some(sql),
                    );
                }
            },
        },
        Some(other) => {
            return error(
                what(&format!(
                    "strategy `{other}` is not one of timestamp, check"
                )),
                Some(sql),
            );
        }
        None => return error(what("needs a `strategy` (timestamp or check)"), Some(sql)),
    };
    let spec = SnapshotSpec {
        unique_key: names(node.config.get("unique_key")).unwrap_or_default(),
        strategy,
        invalidate_hard_deletes: node
            .config
            .get("invalidate_hard_deletes")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || text("hard_deletes").as_deref() == Some("invalidate"),
        valid_to_current: text("dbt_valid_to_current"),
    };
    match engine.snapshot(&node.relation, &sql, &spec).await {
        Ok(o) => (
            Status::Success,
            format!("SNAPSHOT {}", o.rows.unwrap_or_default()),
            o,
            None,
            Some(sql),
        ),
        Err(e) => error(what(&e.message), Some(sql)),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn seed_options(node: &Node) -> Result<SeedOptions, String> {
    let mut o = SeedOptions::default();
    if let Some(d) = node.config.get("delimiter").and_then(Value::as_str) {
        let mut bytes = d.bytes();
        match (bytes.next(), bytes.next()) {
            (Some(b), None) => o.delimiter = b,
            _ => {
                return Err(format!(
                    "seed `{}`: `delimiter` must be one character, not `{d}`",
                    node.name
                ));
            }
        }
    }
    if let Some(Value::Object(types)) = node.config.get("column_types") {
        for (k, v) in types {
            if let Some(t) = v.as_str() {
                o.column_types.insert(k.clone(), t.to_string());
            }
        }
    }
    Ok(o)
}

fn unique_key(node: &Node) -> Vec<String> {
    match node.config.get("unique_key") {
        Some(Value::String(s)) => s
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

async fn run_model(
    manifest: &Manifest,
    engine: &dyn Engine,
    node: &Node,
    opts: &RunOptions,
) -> NodeRun {
    let what = |verb: &str| format!("model `{}` ({}): {verb}", node.name, node.path.display());
    let error = |m: String, sql: Option<String>| (Status::Error, m, Outcome::default(), None, sql);
    let Some(sql) = node.sql.clone() else {
        return error(what("no SQL"), None);
    };
    let materialized = node.materialized().to_string();
    let result = match materialized.as_str() {
        "view" => engine
            .create_view(&node.relation, &sql)
            .await
            .map(|o| (o, "CREATE VIEW".to_string(), sql.clone())),
        "table" => engine
            .create_table(&node.relation, &sql)
            .await
            .map(|o| (o, "SELECT".to_string(), sql.clone())),
        "incremental" => {
            let full_refresh = match node.config.get("full_refresh").and_then(Value::as_bool) {
                Some(v) => v,
                None => opts.full_refresh,
            };
            let existing = match engine.existing(&node.relation).await {
                Ok(e) => e,
                Err(e) => return error(what(&e.to_string()), Some(sql)),
            };
            if full_refresh || existing != Some(Existing::Table) {
                engine
                    .create_table(&node.relation, &sql)
                    .await
                    .map(|o| (o, "SELECT".to_string(), sql.clone()))
            } else {
                let sql = if manifest.needs_database(&node.name) {
                    crate::live::render(manifest, engine, &node.name, true)
                        .await
                        .map(|r| r.sql)
                } else {
                    manifest.incremental_sql(&node.name)
                };
                let sql = match sql {
                    Ok(s) => s,
                    Err(e) => return error(what(&e.to_string()), None),
                };
                let keys = unique_key(node);
                let strategy = node
                    .config
                    .get("incremental_strategy")
                    .and_then(Value::as_str)
                    .unwrap_or(if keys.is_empty() {
                        "append"
                    } else {
                        "delete+insert"
                    });
                let strategy = match (strategy, keys.is_empty()) {
                    ("append", _) => Incremental::Append,
                    ("merge", false) => Incremental::Merge(keys),
                    ("delete+insert", false) => Incremental::DeleteInsert(keys),
                    ("merge" | "delete+insert", true) => {
                        return error(
                            what(&format!(
                                "incremental_strategy `{strategy}` needs a `unique_key`"
                            )),
                            Some(sql),
                        );
                    }
                    (other, _) => {
                        return error(
                            what(&format!(
                                "incremental_strategy `{other}` is not supported on the {} engine (supported: append, merge, delete+insert)",
                                engine.kind()
                            )),
                            Some(sql),
                        );
                    }
                };
                let osc = node
                    .config
                    .get("on_schema_change")
                    .and_then(Value::as_str)
                    .unwrap_or("ignore");
                let Some(osc) = OnSchemaChange::parse(osc) else {
                    return error(
                        what(&format!(
                            "on_schema_change `{osc}` is not one of ignore, fail, append_new_columns, sync_all_columns"
                        )),
                        Some(sql),
                    );
                };
                let verb = match &strategy {
                    Incremental::Append => "INSERT",
                    Incremental::Merge(_) => "MERGE",
                    Incremental::DeleteInsert(_) => "DELETE+INSERT",
                };
                engine
                    .incremental(&node.relation, &sql, &strategy, osc)
                    .await
                    .map(|o| (o, verb.to_string(), sql.clone()))
            }
        }
        other => {
            return error(
                what(&format!(
                    "materialization `{other}` is not supported on the {} engine (supported: view, table, incremental, ephemeral)",
                    engine.kind()
                )),
                Some(sql),
            );
        }
    };
    match result {
        Ok((outcome, message, sql)) => {
            let message = match outcome.rows {
                Some(r) => format!("{message} {r}"),
                None => message,
            };
            let message = if outcome.changes.is_empty() {
                message
            } else {
                format!("{message}; schema: {}", outcome.changes.join(", "))
            };
            (Status::Success, message, outcome, None, Some(sql))
        }
        Err(e) => error(what(&e.message), Some(sql)),
    }
}

/// The line of `sql` an engine error points at: `Line: N` in a parser
/// error, else the first line naming the column or table it did not find.
pub fn locate(message: &str, sql: &str) -> Option<usize> {
    if let Some(i) = message.find("Line: ") {
        let digits: String = message[i + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(l) = digits.parse() {
            return Some(l);
        }
    }
    let name = ["No field named ", "table '", "column '", "field named "]
        .iter()
        .find_map(|p| {
            message.find(p).map(|i| {
                message[i + p.len()..]
                    .trim_start_matches(['"', '\''])
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                    .collect::<String>()
            })
        })?;
    let name = name.trim_end_matches('.');
    let name = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() {
        return None;
    }
    sql.lines()
        .position(|l| l.to_ascii_lowercase().contains(&name))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_located_in_the_compiled_sql() {
        let sql = "select id,\n  amount_usd\nfrom \"main\".\"orders\"";
        assert_eq!(
            locate(
                "Schema error: No field named amount_usd. Valid fields are orders.id.",
                sql
            ),
            Some(2)
        );
        assert_eq!(
            locate(
                "SQL error: ParserError(\"Expected: end of statement, found: x at Line: 3, Column: 5\")",
                sql
            ),
            Some(3)
        );
        assert_eq!(locate("something else", sql), None);
    }
}
