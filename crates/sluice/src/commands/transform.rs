//! `sluice transform seed|run|test|build|compile|ls|docs`: a dbt project, run.
//!
//! The dbt project is found by [`transform_home`]: a `sluice.yml` whose
//! `transform:` section names it (and then chooses the engine: the
//! project's lake, a `type: lake` or a `type: postgres` destination), else
//! the folder `--project-dir` names (default: the current one). Without a
//! `transform:` section the profile's output chooses the engine:
//! `type: sluice` runs on the lake (the profile output's `lake:`, else the
//! lake of a `sluice.yml` in the same folder, else
//! `<project>/.sluice/lake`); `type: postgres` runs the models inside
//! PostgreSQL (dbt-postgres's keys). Each dbt source is joined to the
//! Sluice stream that loads it ([`crate::lineage`]). Artifacts
//! (`manifest.json`, `run_results.json`, and from `docs generate`
//! `catalog.json` and `index.html`, see [`docs`]) go to dbt's `target/`
//! folder.

mod docs;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use indexmap::IndexMap;
use serde_json::{Value, json};
use sluice_core::config::{DestinationConfig, TransformConfig};
use sluice_lake::Lake;
use sluice_quality::{CheckResult, Phase, Status as QStatus};
use sluice_transform::engine::Engine;
use sluice_transform::engine::lake::LakeEngine;
use sluice_transform::engine::postgres::PgEngine;
use sluice_transform::engine::postgres::profile::PgProfile;
use sluice_transform::jinja::{Settings, Target};
use sluice_transform::manifest::{Manifest, NodeKind, compile_with};
use sluice_transform::packages::{self, DepOutcome};
use sluice_transform::profiles::Output;
use sluice_transform::runner::{self, Command, Event, RunOptions, Status};
use sluice_transform::select::{PreviousState, select};
use sluice_transform::{DbtProject, TransformError, artifacts, profiles};

use crate::cli::{TransformCommand, TransformOptions, TransformRunOptions};
use crate::lineage::{Place, source_loads};
use crate::output::{Reporter, UserError, table};
use crate::project::{PROJECT_FILE, Project, transform_home};

fn user(e: TransformError) -> anyhow::Error {
    let hint = e.hint().map(str::to_string);
    UserError::error(e.to_string(), hint)
}

/// A dbt project, compiled, with where it runs.
pub struct Loaded {
    pub(crate) project: DbtProject,
    output: Output,
    pub(crate) manifest: Manifest,
    /// The Sluice project owning the dbt project (its lake, its streams).
    sluice: Option<Project>,
    /// The engine a `transform:` section chose, when it did.
    engine: Option<EngineChoice>,
    /// Where the models run among the Sluice project's places, when known.
    pub(crate) place: Option<Place>,
}

/// Which of the Sluice project's places (its lake, a destination) the
/// output's engine is, so its streams can be joined to dbt sources.
fn place_of(sluice: &Project, output: &Output) -> Option<Place> {
    match output.target.kind.as_str() {
        "sluice" if !output.settings.contains_key("lake") => Some(Place::ProjectLake),
        "postgres" => {
            let ours = PgProfile::from_settings(&output.settings)
                .ok()?
                .url
                .parse::<tokio_postgres::Config>()
                .ok()?;
            let same = |url: &str| {
                url.parse::<tokio_postgres::Config>().is_ok_and(|c| {
                    c.get_hosts() == ours.get_hosts()
                        && c.get_ports().first().unwrap_or(&5432)
                            == ours.get_ports().first().unwrap_or(&5432)
                        && c.get_dbname() == ours.get_dbname()
                })
            };
            sluice
                .config()
                .destinations
                .0
                .iter()
                .find(|(_, d)| matches!(d, DestinationConfig::Postgres(pg) if same(&pg.url)))
                .map(|(name, _)| Place::Destination(name.clone()))
        }
        _ => None,
    }
}

/// Join each dbt source to the Sluice stream that loads it (lineage), in
/// the manifest.
async fn link_sources(l: &mut Loaded) -> Result<()> {
    let (Some(sluice), Some(place)) = (&l.sluice, &l.place) else {
        return Ok(());
    };
    let lake = match (&l.engine, place) {
        (Some(EngineChoice::Lake(lake)), _) => Some(lake.clone()),
        (None, Place::ProjectLake) => Some(sluice.lake.clone()),
        _ => None,
    };
    let loads = source_loads(sluice, place, lake.as_ref(), &l.manifest.sources).await;
    for (k, load) in loads {
        if let Some(s) = l.manifest.sources.get_mut(&k) {
            s.loaded_by = Some(load.stream);
        }
    }
    Ok(())
}

/// What a `transform:` section in `sluice.yml` runs the models on.
enum EngineChoice {
    /// A lake: the project's or a `type: lake` destination's.
    Lake(Lake),
    /// A `type: postgres` destination's database.
    Postgres(PgProfile),
}

/// The output (target) and engine a `sluice.yml` `transform:` section
/// describes, in place of a `profiles.yml`.
fn from_section(
    sluice: &Project,
    t: &TransformConfig,
    target: Option<&str>,
) -> Result<(Output, EngineChoice)> {
    let file = sluice.dir.join(PROJECT_FILE);
    let name = target
        .map(str::to_string)
        .or_else(|| t.target.clone())
        .unwrap_or_else(|| "dev".into());
    let threads = t.threads.unwrap_or(4).clamp(1, 64);
    let engine = t.engine.as_deref().unwrap_or("lake");
    let destinations = &sluice.config().destinations.0;
    let lake_output = |lake: Lake| {
        let output = Output {
            target: Target {
                name: name.clone(),
                kind: "sluice".into(),
                schema: t.schema.clone().unwrap_or_else(|| "main".into()),
                database: None,
                threads,
            },
            settings: IndexMap::new(),
            file: Some(file.clone()),
        };
        (output, EngineChoice::Lake(lake))
    };
    match destinations.get(engine) {
        None if engine == "lake" => Ok(lake_output(sluice.lake.clone())),
        Some(DestinationConfig::Lake(d)) => Ok(lake_output(Lake::from_config(
            &sluice.dir,
            Some(&d.url),
            d.options.clone(),
        )?)),
        Some(DestinationConfig::Postgres(d)) => {
            let database = d
                .url
                .parse::<tokio_postgres::Config>()
                .ok()
                .and_then(|c| c.get_dbname().map(str::to_string));
            let output = Output {
                target: Target {
                    name,
                    kind: "postgres".into(),
                    schema: t
                        .schema
                        .clone()
                        .or_else(|| d.schema.clone())
                        .unwrap_or_else(|| "public".into()),
                    database,
                    threads,
                },
                settings: IndexMap::new(),
                file: Some(file),
            };
            let profile = PgProfile {
                url: d.url.clone(),
                role: None,
            };
            Ok((output, EngineChoice::Postgres(profile)))
        }
        Some(other) => Err(UserError::error(
            format!(
                "{}: `transform.engine: {engine}` is a `type: {}` destination, which cannot run models",
                display(&file),
                other.kind()
            ),
            Some("use `engine: lake`, a `type: lake` or a `type: postgres` destination".into()),
        )),
        None => {
            let usable: Vec<&str> = destinations
                .iter()
                .filter(|(_, d)| {
                    matches!(
                        d,
                        DestinationConfig::Lake(_) | DestinationConfig::Postgres(_)
                    )
                })
                .map(|(n, _)| n.as_str())
                .collect();
            Err(UserError::error(
                format!(
                    "{}: `transform.engine: {engine}` is neither `lake` nor a destination of the file",
                    display(&file)
                ),
                Some(if usable.is_empty() {
                    "use `engine: lake`, or add a `type: postgres` destination under `destinations:`".into()
                } else {
                    format!("use `lake` or one of: {}", usable.join(", "))
                }),
            ))
        }
    }
}

/// Load and compile the project. `invocation` is the run's id (Jinja's
/// `invocation_id`, the artifacts') and whether it is a full refresh
/// (`flags.FULL_REFRESH`).
pub(crate) async fn load(
    dir: Option<&Path>,
    o: &TransformOptions,
    invocation: (&str, bool),
) -> Result<Loaded> {
    let home = transform_home(dir)?;
    let dir = home.dbt_dir;
    let project = DbtProject::load(&dir).map_err(user)?;
    packages::check_installed(&project).map_err(user)?;
    // A `transform:` section stands in for profiles.yml unless
    // --profiles-dir asks for one.
    let section = home
        .sluice
        .as_ref()
        .and_then(|p| p.config().transform.as_ref().map(|t| (p, t)))
        .filter(|_| o.profiles_dir.is_none());
    let (output, engine, place) = match section {
        Some((sluice, t)) => {
            let (output, engine) = from_section(sluice, t, o.target.as_deref())?;
            let place = match t.engine.as_deref() {
                None | Some("lake") => Place::ProjectLake,
                Some(d) => Place::Destination(d.to_string()),
            };
            (output, Some(engine), Some(place))
        }
        None => (
            profiles::load(
                o.profiles_dir.as_deref(),
                &dir,
                &project.profile,
                o.target.as_deref(),
            )
            .map_err(user)?,
            None,
            None,
        ),
    };
    let vars: IndexMap<String, Value> = match &o.vars {
        None => IndexMap::new(),
        Some(text) => serde_saphyr::from_str(text).map_err(|e| {
            UserError::error(
                format!("--vars is not a YAML mapping: {e}"),
                Some("write it as `--vars '{name: value, other: 2}'`".into()),
            )
        })?,
    };
    let settings = Settings {
        invocation_id: invocation.0.to_string(),
        full_refresh: invocation.1,
        ..Settings::default()
    };
    let manifest = compile_with(&project, &output.target, &vars, settings).map_err(user)?;
    let place = place.or_else(|| home.sluice.as_ref().and_then(|p| place_of(p, &output)));
    let mut l = Loaded {
        project,
        output,
        manifest,
        sluice: home.sluice,
        engine,
        place,
    };
    link_sources(&mut l).await?;
    Ok(l)
}

/// The nodes the selection flags leave, in build order.
fn selected(l: &Loaded, o: &TransformOptions, tests_follow: bool) -> Result<Vec<String>> {
    let previous = match &o.state {
        // Relative to the current folder, as in dbt, else to the project.
        Some(d) if d.is_relative() && !d.exists() => {
            Some(PreviousState::load(&l.project.dir.join(d)).map_err(user)?)
        }
        Some(d) => Some(PreviousState::load(d).map_err(user)?),
        None => None,
    };
    let set = select(
        &l.manifest,
        &o.select,
        &o.exclude,
        previous.as_ref(),
        tests_follow,
    )
    .map_err(user)?;
    Ok(l.manifest
        .order
        .iter()
        .filter(|n| set.contains(*n))
        .cloned()
        .collect())
}

/// The lake a `type: sluice` output writes to: the output's `lake:`, else
/// the owning Sluice project's, else `<project>/.sluice/lake`.
fn lake_of(l: &Loaded) -> Result<Lake> {
    if let Some(url) = l.output.settings.get("lake").and_then(Value::as_str) {
        return Ok(Lake::from_config(&l.project.dir, Some(url), [])?);
    }
    if let Some(p) = &l.sluice {
        return Ok(p.lake.clone());
    }
    Ok(Lake::from_config(&l.project.dir, None, [])?)
}

pub(crate) async fn engine_for(l: &Loaded, run_id: &str) -> Result<Box<dyn Engine>> {
    let lake_engine = |lake: Lake| async move {
        LakeEngine::new(lake, run_id)
            .await
            .map_err(|e| UserError::error(format!("the lake: {e}"), None))
    };
    match &l.engine {
        Some(EngineChoice::Lake(lake)) => return Ok(Box::new(lake_engine(lake.clone()).await?)),
        Some(EngineChoice::Postgres(profile)) => {
            let engine = PgEngine::from_profile(profile).await.map_err(|e| {
                UserError::error(
                    format!("sluice.yml `transform.engine`: {}", e.message),
                    Some("check the destination's `url:` (secrets as ${VAR} from the environment or .env)".into()),
                )
            })?;
            return Ok(Box::new(engine));
        }
        None => {}
    }
    match l.output.target.kind.as_str() {
        "sluice" => Ok(Box::new(lake_engine(lake_of(l)?).await?)),
        "postgres" => {
            let engine = PgEngine::connect(&l.output).await.map_err(user)?;
            Ok(Box::new(engine))
        }
        other => Err(UserError::error(
            format!(
                "the `{other}` engine cannot run models (target `{}`)",
                l.output.target.name
            ),
            Some(
                "use an output with `type: sluice` (the lake) or `type: postgres` for seed, run, test and build".into(),
            ),
        )),
    }
}

/// What the project's templates said with `exceptions.warn(...)`.
fn report_template_warnings(manifest: &Manifest, reporter: &Reporter) {
    if reporter.json() {
        return;
    }
    for (node, message) in &manifest.warnings {
        reporter.warn(&format!("`{node}`: {message}"));
    }
}

/// Say which sources the chosen nodes read that are not there yet, and
/// the stream that loads each (lineage): a model reading one fails.
async fn warn_missing_sources(
    l: &Loaded,
    chosen: &[String],
    engine: &dyn Engine,
    reporter: &Reporter,
) {
    let mut read: Vec<&(String, String)> = chosen
        .iter()
        .filter_map(|n| l.manifest.nodes.get(n))
        .flat_map(|n| n.sources.iter())
        .collect();
    read.sort();
    read.dedup();
    for key in read {
        let Some(s) = l.manifest.sources.get(key) else {
            continue;
        };
        if !matches!(engine.existing(&s.relation).await, Ok(None)) {
            continue;
        }
        let hint = match &s.loaded_by {
            Some(stream) => format!("`sluice run {stream}` loads it"),
            None => "load it first (no stream of sluice.yml is known to load it)".into(),
        };
        reporter.warn(&format!(
            "source `{}.{}` reads {}, which does not exist yet\n  hint: {hint}",
            s.source_name, s.name, s.relation
        ));
    }
}

fn write_artifact<T: serde::Serialize + ?Sized>(
    project: &DbtProject,
    name: &str,
    value: &T,
) -> Result<()> {
    let path = project.dir.join(&project.target_path).join(name);
    artifacts::write_json(&path, value)
        .map_err(|e| UserError::error(format!("cannot write `{}`: {e}", path.display()), None))
}

async fn run_command(
    dir: Option<&Path>,
    command: Command,
    o: &TransformRunOptions,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let run_id = uuid::Uuid::now_v7().to_string();
    let l = load(dir, &o.common, (&run_id, o.full_refresh)).await?;
    report_template_warnings(&l.manifest, reporter);
    let follow = matches!(command, Command::Test | Command::Build);
    let chosen = selected(&l, &o.common, follow)?;
    write_artifact(
        &l.project,
        "manifest.json",
        &artifacts::ManifestArtifact::new(&l.manifest, &run_id),
    )?;
    let engine = engine_for(&l, &run_id).await?;
    if command != Command::Seed {
        warn_missing_sources(&l, &chosen, engine.as_ref(), reporter).await;
    }
    let chosen = if o.ignore_checks {
        chosen
    } else {
        hold_back_failing_sources(&l, chosen, reporter)?
    };
    let opts = RunOptions {
        full_refresh: o.full_refresh,
        selected: Some(chosen.into_iter().collect()),
        fail_fast: o.fail_fast,
    };
    let json = reporter.json();
    if !json {
        reporter.info(&format!(
            "{} `{}` on {} ({})",
            command.name(),
            l.project.name,
            engine.kind(),
            engine.describe()
        ));
    }
    let mut on_event = |e: Event<'_>| {
        if json {
            return;
        }
        if let Event::Done(i, total, r) = e {
            for line in &r.logs {
                reporter.info(&format!("`{}`: {line}", r.name));
            }
            for w in &r.warnings {
                let path = r
                    .compiled_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| r.name.clone());
                reporter.warn(&format!("model `{}` ({path}) {w}", r.name));
            }
            let what = match r.kind {
                NodeKind::Test => "test".to_string(),
                NodeKind::UnitTest => "unit test".to_string(),
                NodeKind::Seed => "seed".to_string(),
                NodeKind::Snapshot => "snapshot".to_string(),
                NodeKind::Model => r.materialized.clone(),
            };
            let target = r.relation.clone().unwrap_or_else(|| r.name.clone());
            let first = match r.status {
                Status::Success | Status::Pass => r.message.as_str(),
                Status::Skipped => "SKIP",
                _ => label(r.status),
            };
            crate::outln!(
                "{i:>4} of {total} {:<5} {what:<11} {target}  [{first} in {:.2}s]",
                label(r.status),
                r.execution_time
            );
        }
    };
    let results = runner::execute(
        &l.manifest,
        &l.project.dir,
        &l.project.target_path,
        engine.as_ref(),
        command,
        &opts,
        &mut on_event,
    )
    .await;
    let args = json!({
        "which": command.name(),
        "select": o.common.select,
        "exclude": o.common.exclude,
        "full_refresh": o.full_refresh,
        "target": l.output.target.name,
        "project_dir": l.project.dir,
    });
    let rr = artifacts::run_results_json(&results, &run_id, engine.kind(), args);
    write_artifact(&l.project, "run_results.json", &rr)?;
    // dbt tests join the Sluice project's check history, in its format.
    if let Some(sluice) = &l.sluice {
        let checks = tests_as_checks(&l, &results);
        if !checks.is_empty() {
            let store = std::sync::Mutex::new(sluice.store()?);
            let loaded = sluice.loaded.clone();
            crate::quality::record(&store, &run_id, &checks, &move |t: &str| loaded.redact(t));
        }
    }
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&rr)?);
    } else {
        let bad: Vec<_> = results
            .results
            .iter()
            .filter(|r| matches!(r.status, Status::Error | Status::Fail | Status::Warn))
            .collect();
        if !bad.is_empty() {
            crate::outln!();
            for r in bad {
                let kind = if r.kind == NodeKind::Test {
                    "test"
                } else {
                    r.kind.resource_type()
                };
                let word = if r.status == Status::Warn {
                    "Warning in"
                } else {
                    "Failure in"
                };
                crate::outln!("{word} {kind} {}:", r.name);
                for line in r.message.lines() {
                    crate::outln!("  {line}");
                }
            }
        }
        crate::outln!();
        crate::outln!(
            "Finished {} {} nodes in {:.2}s.",
            command.name(),
            results.results.len(),
            results.elapsed
        );
        crate::outln!("{}", results.summary_line());
    }
    Ok(if results.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Sources whose table failed a check (its newest result, error severity)
/// hold back every node built from them: a failed check on a load blocks
/// what depends on it. The nodes left out are named, with the check.
fn hold_back_failing_sources(
    l: &Loaded,
    chosen: Vec<String>,
    reporter: &Reporter,
) -> Result<Vec<String>> {
    let Some(sluice) = &l.sluice else {
        return Ok(chosen);
    };
    let store = sluice.store()?;
    // A check no longer declared does not hold anything back.
    let declared: std::collections::HashSet<String> = crate::quality::project_checks(sluice)?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut blocked: std::collections::HashSet<String> = std::collections::HashSet::new();
    for ((source, table), node) in &l.manifest.sources {
        let name = format!("{}.{}", node.relation.schema, node.relation.identifier);
        let failing = store.failing_checks(&name)?;
        let Some((check, status, message)) =
            failing.iter().find(|(id, _, _)| declared.contains(id))
        else {
            continue;
        };
        let downstream = select(
            &l.manifest,
            &[format!("source:{source}.{table}+")],
            &[],
            None,
            true,
        )
        .map_err(user)?;
        let held: Vec<&String> = chosen.iter().filter(|n| downstream.contains(*n)).collect();
        if held.is_empty() {
            continue;
        }
        reporter.warn(&format!(
            "not building {} ({}): source `{source}.{table}` (`{name}`) has a {} check `{check}`: {message}",
            if held.len() == 1 { "1 node".to_string() } else { format!("{} nodes", held.len()) },
            held.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            if status == "error" { "broken" } else { "failing" },
        ));
        reporter.info("hint: fix the data and re-check (`sluice check`), or pass `--ignore-checks` to build anyway");
        blocked.extend(downstream);
    }
    Ok(chosen
        .into_iter()
        .filter(|n| !blocked.contains(n))
        .collect())
}

/// The data tests of a run as check results (phase `dbt`): the check id is
/// `<tested table>.<test name>`.
pub(crate) fn tests_as_checks(l: &Loaded, results: &runner::RunResults) -> Vec<CheckResult> {
    results
        .results
        .iter()
        .filter(|r| r.kind == NodeKind::Test)
        .map(|r| {
            let node = l.manifest.nodes.get(&r.name);
            let info = node.and_then(|n| n.test.as_ref());
            let table = info
                .and_then(|t| t.attached.as_deref())
                .and_then(|a| match a.split_once('.') {
                    Some((src, tbl)) => l
                        .manifest
                        .sources
                        .get(&(src.to_string(), tbl.to_string()))
                        .map(|s| &s.relation),
                    None => l.manifest.nodes.get(a).map(|n| &n.relation),
                })
                .map(|rel| {
                    if rel.schema.is_empty() {
                        rel.identifier.clone()
                    } else {
                        format!("{}.{}", rel.schema, rel.identifier)
                    }
                })
                .unwrap_or_else(|| l.project.name.clone());
            let status = match r.status {
                Status::Pass | Status::Success => QStatus::Pass,
                Status::Warn => QStatus::Warn,
                Status::Fail => QStatus::Fail,
                Status::Error | Status::Skipped => QStatus::Error,
            };
            CheckResult {
                id: format!("{table}.{}", r.name),
                name: r.name.clone(),
                table,
                kind: info
                    .and_then(|t| t.generic.clone())
                    .map(|g| format!("dbt:{g}"))
                    .unwrap_or_else(|| "dbt:singular".into()),
                columns: info
                    .and_then(|t| t.column_name.clone())
                    .into_iter()
                    .collect(),
                severity: if r.status == Status::Warn {
                    sluice_core::config::Severity::Warn
                } else {
                    sluice_core::config::Severity::Error
                },
                status,
                phase: Phase::Dbt,
                observed: r
                    .failures
                    .map_or(serde_json::Value::Null, serde_json::Value::from),
                expected: "no failing rows (dbt data test)".into(),
                failing_rows: r.failures,
                total_rows: None,
                message: if r.status == Status::Skipped {
                    "skipped: something it depends on failed".into()
                } else {
                    r.message.clone()
                },
                samples: Vec::new(),
                stored_failures: None,
                duration_ms: r.execution_time * 1e3,
                defined_at: node.map(|n| l.project.dir.join(&n.path).display().to_string()),
                description: None,
            }
        })
        .collect()
}

/// No profile, target, vars or selection flags: the `transform:` section's choices.
pub(crate) fn plain_options() -> TransformOptions {
    TransformOptions {
        profiles_dir: None,
        target: None,
        vars: None,
        select: Vec::new(),
        exclude: Vec::new(),
        state: None,
    }
}

/// `sluice check`'s part of the dbt project: its data tests, run on its
/// engine, as check results (`None` when the project has no `transform:`).
pub async fn dbt_checks(
    dir: Option<&Path>,
    run_id: &str,
    reporter: &Reporter,
) -> Result<Option<Vec<CheckResult>>> {
    let o = plain_options();
    let l = load(dir, &o, (run_id, false)).await?;
    if !l.manifest.nodes.values().any(|n| n.kind == NodeKind::Test) {
        return Ok(Some(Vec::new()));
    }
    let chosen = selected(&l, &o, true)?;
    let engine = engine_for(&l, run_id).await?;
    reporter.info(&format!(
        "dbt tests of `{}` on {} ({})",
        l.project.name,
        engine.kind(),
        engine.describe()
    ));
    let opts = RunOptions {
        full_refresh: false,
        selected: Some(chosen.into_iter().collect()),
        fail_fast: false,
    };
    let results = runner::execute(
        &l.manifest,
        &l.project.dir,
        &l.project.target_path,
        engine.as_ref(),
        Command::Test,
        &opts,
        &mut |_e: Event<'_>| {},
    )
    .await;
    Ok(Some(tests_as_checks(&l, &results)))
}

/// Write many small files (compiled SQL): each folder made once, the
/// files spread over the cores, an unchanged file left alone.
fn write_files(files: &[(std::path::PathBuf, &str)]) -> Result<usize> {
    let mut dirs: std::collections::BTreeSet<&Path> = std::collections::BTreeSet::new();
    for (p, _) in files {
        if let Some(parent) = p.parent() {
            dirs.insert(parent);
        }
    }
    for d in dirs {
        std::fs::create_dir_all(d)?;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .max(1);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> std::io::Result<()> {
                    for (path, sql) in part {
                        if std::fs::read(path).is_ok_and(|old| old == sql.as_bytes()) {
                            continue;
                        }
                        std::fs::write(path, sql)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(files.len())
}

fn label(s: Status) -> &'static str {
    match s {
        Status::Success => "OK",
        Status::Pass => "PASS",
        Status::Warn => "WARN",
        Status::Fail => "FAIL",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    }
}

/// Run `sluice transform …`.
pub async fn transform(
    dir: Option<&Path>,
    command: &TransformCommand,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let started = Instant::now();
    match command {
        TransformCommand::Seed(o) => return run_command(dir, Command::Seed, o, reporter).await,
        TransformCommand::Run(o) => return run_command(dir, Command::Run, o, reporter).await,
        TransformCommand::Test(o) => return run_command(dir, Command::Test, o, reporter).await,
        TransformCommand::Snapshot(o) => {
            return run_command(dir, Command::Snapshot, o, reporter).await;
        }
        TransformCommand::Build(o) => return run_command(dir, Command::Build, o, reporter).await,
        TransformCommand::Docs(c) => return docs::docs(dir, c, reporter).await,
        TransformCommand::Deps => return deps(dir, reporter),
        TransformCommand::Parse(o) => {
            let run_id = uuid::Uuid::now_v7().to_string();
            let l = load(dir, o, (&run_id, false)).await?;
            write_artifact(
                &l.project,
                "manifest.json",
                &artifacts::ManifestArtifact::new(&l.manifest, &run_id),
            )?;
            if reporter.json() {
                crate::outln!(
                    "{}",
                    json!({"project": l.project.name, "nodes": l.manifest.nodes.len(), "sources": l.manifest.sources.len(), "seconds": started.elapsed().as_secs_f64()})
                );
            } else {
                crate::outln!(
                    "parsed {} nodes of `{}` in {:.0} ms into {}",
                    l.manifest.nodes.len(),
                    l.project.name,
                    started.elapsed().as_secs_f64() * 1000.0,
                    display(
                        &l.project
                            .dir
                            .join(&l.project.target_path)
                            .join("manifest.json")
                    )
                );
            }
        }
        TransformCommand::Compile(o) => {
            let run_id = uuid::Uuid::now_v7().to_string();
            let mut l = load(dir, o, (&run_id, false)).await?;
            report_template_warnings(&l.manifest, reporter);
            let chosen: std::collections::HashSet<String> =
                selected(&l, o, true)?.into_iter().collect();
            // Nodes whose Jinja runs database calls are rendered with the
            // engine, as dbt's compile does (only then is it opened).
            if chosen.iter().any(|n| l.manifest.needs_database(n)) {
                let engine = engine_for(&l, &run_id).await?;
                let logs =
                    sluice_transform::live::resolve(&mut l.manifest, engine.as_ref(), &chosen)
                        .await
                        .map_err(user)?;
                if !reporter.json() {
                    for (node, line) in logs {
                        reporter.info(&format!("`{node}`: {line}"));
                    }
                }
            }
            write_artifact(
                &l.project,
                "manifest.json",
                &artifacts::ManifestArtifact::new(&l.manifest, &run_id),
            )?;
            let (project, manifest) = (&l.project, &l.manifest);
            let out_dir = project
                .dir
                .join(&project.target_path)
                .join("compiled")
                .join(&project.name);
            let files: Vec<(std::path::PathBuf, &str)> = manifest
                .nodes
                .values()
                .filter(|n| chosen.contains(&n.name))
                .filter_map(|n| {
                    n.sql.as_deref().map(|sql| {
                        let rel = runner::compiled_path(manifest, &project.target_path, n);
                        (project.dir.join(rel), sql)
                    })
                })
                .collect();
            let written = write_files(&files)?;
            if reporter.json() {
                let nodes: Vec<Value> = manifest
                    .order
                    .iter()
                    .filter(|n| chosen.contains(*n))
                    .filter_map(|n| manifest.nodes.get(n))
                    .map(|n| {
                        json!({
                            "name": n.name,
                            "resource_type": n.kind.resource_type(),
                            "path": n.path,
                            "materialized": n.materialized(),
                            "relation": n.relation.to_string(),
                            "depends_on": n.depends_on,
                            "sources": n.sources.iter().map(|(s, t)| format!("{s}.{t}")).collect::<Vec<_>>(),
                            "compiled_sql": n.sql,
                        })
                    })
                    .collect();
                crate::outln!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                crate::outln!(
                    "compiled {written} nodes of `{}` in {:.0} ms into {}",
                    project.name,
                    started.elapsed().as_secs_f64() * 1000.0,
                    display(&out_dir)
                );
            }
        }
        TransformCommand::Ls(o) => {
            let run_id = uuid::Uuid::now_v7().to_string();
            let l = load(dir, o, (&run_id, false)).await?;
            let chosen = selected(&l, o, !o.select.is_empty())?;
            let (project, manifest) = (&l.project, &l.manifest);
            // Sources the chosen nodes read (all of them when nothing is
            // selected), with the stream that loads each.
            let sources: Vec<_> = manifest
                .sources
                .iter()
                .filter(|(k, _)| {
                    (o.select.is_empty() && o.exclude.is_empty())
                        || chosen
                            .iter()
                            .filter_map(|n| manifest.nodes.get(n))
                            .any(|n| n.sources.contains(*k))
                })
                .map(|(_, s)| s)
                .collect();
            if reporter.json() {
                let nodes: Vec<Value> = chosen
                    .iter()
                    .filter_map(|n| manifest.nodes.get(n))
                    .map(|n| {
                        json!({
                            "name": n.name,
                            "unique_id": n.unique_id,
                            "resource_type": n.kind.resource_type(),
                            "fqn": n.fqn,
                            "materialized": n.materialized(),
                            "relation": n.relation.to_string(),
                            "depends_on": n.depends_on,
                            "tags": n.config.get("tags").cloned().unwrap_or(json!([])),
                        })
                    })
                    .chain(sources.iter().map(|s| {
                        json!({
                            "name": s.name,
                            "unique_id": s.unique_id,
                            "resource_type": "source",
                            "source_name": s.source_name,
                            "relation": s.relation.to_string(),
                            "loaded_by": s.loaded_by,
                        })
                    }))
                    .collect();
                crate::outln!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                if !sources.is_empty() {
                    let mut t = table(&["source", "relation", "loaded by"]);
                    for s in &sources {
                        t.add_row(vec![
                            format!("{}.{}", s.source_name, s.name),
                            s.relation.to_string(),
                            s.loaded_by
                                .as_ref()
                                .map(|x| format!("stream {x}"))
                                .unwrap_or_else(|| "-".into()),
                        ]);
                    }
                    crate::outln!("{t}");
                }
                let mut t = table(&["node", "type", "materialized", "relation", "depends on"]);
                for n in chosen.iter().filter_map(|n| manifest.nodes.get(n)) {
                    t.add_row(vec![
                        n.fqn.join("."),
                        n.kind.resource_type().to_string(),
                        n.materialized().to_string(),
                        n.relation.to_string(),
                        n.depends_on.join(", "),
                    ]);
                }
                crate::outln!("{t}");
                crate::outln!(
                    "{}: {} of {} nodes, {} of {} sources",
                    project.name,
                    chosen.len(),
                    manifest.nodes.len(),
                    sources.len(),
                    manifest.sources.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice transform deps`: install the local packages, check the others.
fn deps(dir: Option<&Path>, reporter: &Reporter) -> Result<ExitCode> {
    let dir = transform_home(dir)?.dbt_dir;
    let project = DbtProject::load(&dir).map_err(user)?;
    let done = packages::deps(&project).map_err(user)?;
    let rows: Vec<(String, &str, String)> = done
        .iter()
        .map(|d| match d {
            DepOutcome::Linked { name, at } => (name.clone(), "linked", at.display().to_string()),
            DepOutcome::Copied { name, at } => (name.clone(), "copied", at.display().to_string()),
            DepOutcome::UpToDate { name, spec } => (name.clone(), "up to date", spec.label()),
        })
        .collect();
    if reporter.json() {
        let list: Vec<Value> = rows
            .iter()
            .map(|(name, status, at)| json!({"package": name, "status": status, "at": at}))
            .collect();
        crate::outln!("{}", json!({"project": project.name, "packages": list}));
    } else if rows.is_empty() {
        crate::outln!("`{}` lists no packages", project.name);
    } else {
        for (name, status, at) in &rows {
            crate::outln!("{name}: {status} ({at})");
        }
        crate::outln!(
            "{} package(s) of `{}` installed in {}/",
            rows.len(),
            project.name,
            project.packages_install_path().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn display(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}
