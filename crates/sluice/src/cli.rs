//! Command-line arguments and the top-level error handling.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::output::{self, Reporter};

/// Sluice: extract, load and query data — one binary, no server.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Project folder (default: the nearest folder upward with a `sluice.yml`).
    #[arg(long, global = true, value_name = "DIR", env = "SLUICE_PROJECT_DIR")]
    pub project_dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// No progress bars even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a demo project, load it and query it (no server needed).
    Quickstart(QuickstartArgs),
    /// Create a new project with sample data.
    Init(InitArgs),
    /// Run the project's asset graph (loads, then models, with their checks),
    /// or a job of `jobs:`, or the selected assets.
    Run(RunArgs),
    /// Print the asset graph: streams, seeds, models, snapshots, their edges and checks.
    Graph(GraphArgs),
    /// Run a partitioned job over a range of partitions, skipping those
    /// already built (re-run the same command to resume).
    Backfill(BackfillArgs),
    /// Run the scheduler: cron schedules and sensors of `jobs:`, and an HTTP
    /// API that triggers jobs and reads runs.
    Serve(ServeArgs),
    /// Load one source.
    Extract(ExtractArgs),
    /// Run SQL over the lake's tables (DataFusion).
    Sql(SqlArgs),
    /// List the lake's tables with rows, versions and last load.
    Tables,
    /// Show, set or clear the state (bookmarks) of streams.
    State(StateArgs),
    /// Show a source's streams and their schemas.
    Discover(DiscoverArgs),
    /// dbt projects: compile and list models (`--project-dir` is the dbt project).
    Transform(TransformArgs),
    /// Install, list and remove Singer plugins (taps and targets).
    Plugin(PluginArgs),
    /// Run the data-quality checks on the tables; `check history`, `check report`.
    Check(CheckArgs),
    /// Check the project file and every source and destination.
    Debug,
    /// List the built-in connectors.
    Connectors,
    /// Speak Singer: a source as a Singer tap, a destination as a Singer target
    /// (for Meltano or any Singer runner).
    Singer(SingerArgs),
    /// Run history: list runs, show one, print its logs.
    Runs(RunsArgs),
}

/// `sluice check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// History or report instead of a run.
    #[command(subcommand)]
    pub action: Option<CheckAction>,
    /// Only these checks: an id (`shop.orders.not_null_id`), a name, a table,
    /// `kind:<kind>`, or a pattern with `*`; repeatable.
    #[arg(long, short = 's', value_name = "CHECK|TABLE")]
    pub select: Vec<String>,
    /// Exit with 1 on warnings too (for CI gates).
    #[arg(long)]
    pub warn_error: bool,
    /// Leave out the dbt project's data tests (run with a `transform:`
    /// section unless checks are selected).
    #[arg(long)]
    pub no_dbt: bool,
}

/// `sluice check …`.
#[derive(Debug, Subcommand)]
pub enum CheckAction {
    /// Earlier results, newest first.
    History(CheckHistoryArgs),
    /// Write the HTML and JSON report of the last check run again, and say where.
    Report,
}

/// `sluice check history`.
#[derive(Debug, Args)]
pub struct CheckHistoryArgs {
    /// A check id or a table (default: every check).
    pub check: Option<String>,
    /// How many results.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `sluice runs`: without a subcommand, `runs list` (and its options).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// What to do (default: `list`).
    #[command(subcommand)]
    pub action: Option<RunsAction>,
    /// `list`'s options, for `sluice runs` alone.
    #[command(flatten)]
    pub list: RunsListArgs,
}

/// `sluice runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// The newest runs: id, job, trigger, status, start, duration, steps, rows.
    List(RunsListArgs),
    /// One run: what started it, its steps, stream loads and check results.
    Show {
        /// A run id, or a unique prefix of one (at least 4 characters).
        id: String,
    },
    /// A run's events in order: `HH:MM:SS.mmm LEVEL step message`.
    Logs {
        /// A run id, or a unique prefix of one (at least 4 characters).
        id: String,
        /// Only this step's events.
        #[arg(long)]
        step: Option<String>,
    },
}

/// `sluice runs list`.
#[derive(Debug, Clone, Args)]
pub struct RunsListArgs {
    /// How many runs (the newest first).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Only runs of this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Only runs with this status.
    #[arg(long, value_parser = ["running", "success", "failed", "cancelled"])]
    pub status: Option<String>,
}

/// `sluice singer`.
#[derive(Debug, Args)]
pub struct SingerArgs {
    /// Which side of the Singer protocol.
    #[command(subcommand)]
    pub command: SingerCommand,
}

/// `sluice singer …`.
#[derive(Debug, Subcommand)]
pub enum SingerCommand {
    /// A source as a Singer tap: SCHEMA, RECORD and STATE messages on stdout.
    Tap(SingerTapArgs),
    /// A destination as a Singer target: messages on stdin, committed STATE on stdout.
    Target(SingerTargetArgs),
}

/// `sluice singer target`: the Singer target command-line contract.
#[derive(Debug, Args)]
pub struct SingerTargetArgs {
    /// A destination of the project (`lake`: the project's lake), or with
    /// `--config` the type of the destination the config describes.
    #[arg(default_value = "lake")]
    pub destination: String,
    /// The destination as JSON, the same keys as under `destinations:` in
    /// sluice.yml (a file, or inline JSON); then no project is needed.
    #[arg(long, value_name = "FILE|JSON")]
    pub config: Option<PathBuf>,
    /// Schema the streams' tables land in.
    #[arg(long, default_value = "singer")]
    pub schema: String,
    /// Records that do not match their SCHEMA go to `<table>__quarantine`
    /// instead of failing the run.
    #[arg(long)]
    pub quarantine: bool,
    /// Print what this target is (name, capabilities, settings) as JSON.
    #[arg(long)]
    pub about: bool,
}

/// `sluice singer tap`: the Singer tap command-line contract.
#[derive(Debug, Args)]
pub struct SingerTapArgs {
    /// A source of the project, or a built-in type (`files`, `postgres`,
    /// `mysql`, `sqlite`) whose settings come from `--config`.
    pub source: String,
    /// The settings as JSON, the same keys as under `sources:` in sluice.yml
    /// (required for a built-in type; repeatable, later files win).
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Print the catalog (streams, schemas, metadata) instead of reading.
    #[arg(long)]
    pub discover: bool,
    /// Read the streams this catalog selects (default: all).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Legacy name of `--catalog`.
    #[arg(long, value_name = "FILE", hide = true, conflicts_with = "catalog")]
    pub properties: Option<PathBuf>,
    /// Resume from this state (`{"bookmarks": {...}}`, the last STATE a run printed).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Print what this tap is: name, capabilities and settings.
    #[arg(long)]
    pub about: bool,
    /// Format of `--about`.
    #[arg(long, value_enum, default_value_t = SingerTapFormat::Json, requires = "about")]
    pub format: SingerTapFormat,
}

/// Formats of `sluice singer tap --about`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SingerTapFormat {
    /// JSON, as the Singer SDK prints it.
    Json,
    /// Markdown, for a README.
    Markdown,
}

/// `sluice quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Folder for the demo project.
    #[arg(default_value = "sluice-quickstart")]
    pub dir: PathBuf,
}

/// `sluice init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create the project in (default: the current folder).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Write the files even if the folder already has a `sluice.yml`.
    #[arg(long)]
    pub force: bool,
}

/// `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A job of `jobs:` in sluice.yml (default: every asset).
    pub job: Option<String>,
    /// Assets to run (narrows the job's): `shop`, `shop.orders`, `+fct_orders`,
    /// `source:shop+`, `tag:daily`, `kind:model` (space: union, comma: intersection); repeatable.
    #[arg(long, short = 's', value_name = "SELECTOR")]
    pub select: Vec<String>,
    /// Assets to leave out (same syntax); repeatable.
    #[arg(long, value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// Ignore state and rebuild the tables from scratch (replaces their schema).
    #[arg(long)]
    pub full_refresh: bool,
    /// Re-run only the failed, skipped and cancelled steps of this run (id or prefix).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["job", "select", "exclude"])]
    pub from_failure: Option<String>,
    /// Leave out the check steps (checks during loads still run).
    #[arg(long)]
    pub no_checks: bool,
    /// Print the plan (steps, what each waits for) and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Build this partition of a partitioned job (`2026-11-24`, `2026-11-24T05`).
    #[arg(long, value_name = "KEY", requires = "job")]
    pub partition: Option<String>,
}

/// `sluice backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// A job with `partitions:`.
    pub job: String,
    /// First partition (a key, a date or a time).
    #[arg(long, value_name = "KEY")]
    pub from: String,
    /// Last partition, included.
    #[arg(long, value_name = "KEY")]
    pub to: String,
    /// Show the partitions and which are done; run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `sluice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API (another than 127.0.0.1 needs SLUICE_API_TOKEN).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the HTTP API (0: any free port).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Look once (schedule ticks since --since, sensors now), run what is
    /// due, and stop; no API.
    #[arg(long)]
    pub once: bool,
    /// Catch up: run the schedule ticks since this time (RFC 3339) that no
    /// `sluice serve` ran yet (default: from now on).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

/// `sluice graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Only a job's assets.
    pub job: Option<String>,
    /// Assets to show (same selectors as `sluice run`); repeatable.
    #[arg(long, short = 's', value_name = "SELECTOR")]
    pub select: Vec<String>,
    /// Assets to leave out; repeatable.
    #[arg(long, value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// Output format (`--json` also gives JSON).
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

/// Formats of `sluice graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Indented text.
    Text,
    /// Graphviz DOT (`sluice graph --format dot | dot -Tsvg > graph.svg`).
    Dot,
    /// JSON: assets and the plan's steps.
    Json,
}

/// `sluice extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The source to load.
    pub source: String,
    /// Only this stream; repeatable.
    #[arg(long)]
    pub stream: Vec<String>,
    /// Ignore state and rebuild the tables from scratch (replaces their schema).
    #[arg(long)]
    pub full_refresh: bool,
    /// Send the streams to this destination (a name in `destinations:`) instead of their own.
    #[arg(long, value_name = "DESTINATION")]
    pub to: Option<String>,
}

/// Output formats of `sluice sql`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SqlFormat {
    /// A table for people.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
}

/// `sluice sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT status, count(*) FROM shop.orders GROUP BY 1".
    pub query: String,
    /// Output format (`--json` means `--format json`).
    #[arg(long, short, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
}

/// `sluice state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: StateAction,
}

/// What to do with state.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Show the state of every stream, or of a source or stream.
    Show {
        /// `source` or `source.stream`.
        stream: Option<String>,
    },
    /// Replace a stream's state with a JSON value (the next run starts from it).
    Set {
        /// `source.stream`.
        stream: String,
        /// The state, as JSON (see `sluice state show --json` for the shape).
        value: String,
    },
    /// Forget the state so the next run reads from the start.
    Clear {
        /// `source` or `source.stream`; all streams when omitted (needs `--all`).
        stream: Option<String>,
        /// Clear every stream of the project.
        #[arg(long)]
        all: bool,
    },
}

/// `sluice plugin`.
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: PluginAction,
}

/// What to do with plugins.
#[derive(Debug, Subcommand)]
pub enum PluginAction {
    /// Install a plugin into its own venv under `.sluice/plugins/` and pin it in `sluice.lock`.
    Add {
        /// The plugin: the executable its package installs (`tap-csv`, `target-jsonl`).
        name: String,
        /// The pip requirement (default: the `pip:` of the sources/destinations
        /// that run it, else its entry in `sluice.lock`, else its name).
        #[arg(long, value_name = "SPEC")]
        pip: Option<String>,
        /// Resolve the requirement again (new versions) and re-lock, even if installed.
        #[arg(long)]
        force: bool,
    },
    /// List the project's plugins: configured, locked or installed.
    List,
    /// Remove a plugin's venv and its entry in `sluice.lock`.
    Remove {
        /// The plugin.
        name: String,
    },
}

/// `sluice transform`.
#[derive(Debug, Args)]
pub struct TransformArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TransformCommand,
}

/// `sluice transform …`.
#[derive(Debug, Subcommand)]
pub enum TransformCommand {
    /// Load the seeds (`seeds/*.csv`) as tables.
    Seed(TransformRunOptions),
    /// Build the models (views, tables, incremental tables).
    Run(TransformRunOptions),
    /// Run the data tests.
    Test(TransformRunOptions),
    /// Take the snapshots (type-2 history of `{% snapshot %}` queries).
    Snapshot(TransformRunOptions),
    /// Seeds, models and tests in graph order; a failing test skips what is downstream.
    Build(TransformRunOptions),
    /// Load and compile the project; write `target/manifest.json` (dbt parse).
    Parse(TransformOptions),
    /// Render every model's Jinja into `target/compiled/` (nothing runs).
    Compile(TransformOptions),
    /// List the project's models, seeds and tests with their materialization and relation.
    Ls(TransformOptions),
    /// Install the packages of `packages.yml` / `dependencies.yml` into `dbt_packages/`
    /// (`local:` ones; hub and git ones must already be there, from `dbt deps` or vendored).
    Deps,
    /// The project's docs: `generate` writes `target/catalog.json` and `target/index.html`, `serve` shows them.
    #[command(subcommand)]
    Docs(TransformDocsCommand),
}

/// `sluice transform docs …`.
#[derive(Debug, Subcommand)]
pub enum TransformDocsCommand {
    /// Compile, ask the engine about every relation (columns, types, size), write
    /// `target/manifest.json`, `target/catalog.json` and `target/index.html`.
    Generate(TransformDocsOptions),
    /// Serve `target/` (index.html, manifest.json, catalog.json) over HTTP until Ctrl-C.
    Serve(TransformServeOptions),
}

/// `sluice transform docs generate`.
#[derive(Debug, Clone, Args)]
pub struct TransformDocsOptions {
    /// Profile, target, vars and selection (the catalog covers the selected nodes).
    #[command(flatten)]
    pub common: TransformOptions,
    /// Leave `target/compiled/` alone (the manifest still has the compiled SQL).
    #[arg(long)]
    pub no_compile: bool,
}

/// `sluice transform docs serve`.
#[derive(Debug, Clone, Args)]
pub struct TransformServeOptions {
    /// Port to listen on (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on (`0.0.0.0` for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// dbt's flags for commands that run nodes.
#[derive(Debug, Clone, Args)]
pub struct TransformRunOptions {
    /// Profile, target, vars and selection.
    #[command(flatten)]
    pub common: TransformOptions,
    /// Rebuild incremental models from scratch.
    #[arg(long)]
    pub full_refresh: bool,
    /// Stop at the first failure; the rest are skipped.
    #[arg(long, short = 'x')]
    pub fail_fast: bool,
    /// Build models even from sources whose table failed a data-quality
    /// check (they are held back otherwise).
    #[arg(long)]
    pub ignore_checks: bool,
}

/// dbt's flags, as `sluice transform` takes them.
#[derive(Debug, Clone, Args)]
pub struct TransformOptions {
    /// Folder of `profiles.yml` (default: `DBT_PROFILES_DIR`, the project, `~/.dbt`).
    #[arg(long, value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Output of the profile to use (default: the profile's `target:`).
    #[arg(long, short = 't')]
    pub target: Option<String>,
    /// Variables as YAML, overriding `vars:` (`--vars '{start: 2024-01-01}'`).
    #[arg(long, value_name = "YAML")]
    pub vars: Option<String>,
    /// Nodes to include: `name`, `+name`, `name+`, `@name`, `tag:x`, `path:models/x`,
    /// `config.materialized:table`, `source:raw+`, `state:modified` (space: union, comma: intersection).
    #[arg(long, short = 's', num_args = 1.., value_name = "SELECTOR")]
    pub select: Vec<String>,
    /// Nodes to leave out (same syntax as --select).
    #[arg(long, num_args = 1.., value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// Folder of a previous run's `manifest.json`, for `state:modified` / `state:new`.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
}

/// `sluice discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The source.
    pub source: String,
}

/// Parse arguments, run the command, print errors, return the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Two TLS crypto providers are linked (ring and aws-lc-rs, through
    // object_store and deltalake); pick one for the process, or the first
    // TLS client built could panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reporter = Reporter::new(&cli.global);
    crate::plugins::set_reporter(&reporter);
    output::init_logging(&cli.global, &reporter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            reporter.error(&anyhow::anyhow!("Cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(commands::dispatch(cli, &reporter));
    // Do not wait for blocking threads still parked on a read (stdin of
    // `sluice singer target` after an error): the work is done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            reporter.error(&e);
            output::exit_code_for(&e)
        }
    }
}
