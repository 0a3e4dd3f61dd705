//! `sluice transform seed|run|test|build|compile|ls`: a dbt project, run.
//!
//! The dbt project is the folder `--project-dir` names (default: the
//! current one). Its profile's output chooses the engine: `type: sluice`
//! runs on the lake (the profile output's `lake:`, else the lake of a
//! `sluice.yml` in the same folder, else `<project>/.sluice/lake`);
//! `type: postgres` runs the models inside PostgreSQL (dbt-postgres's keys).
//! Artifacts (`manifest.json`, `run_results.json`) go to dbt's
//! `target/` folder.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use indexmap::IndexMap;
use serde_json::{Value, json};
use sluice_lake::Lake;
use sluice_transform::engine::Engine;
use sluice_transform::engine::lake::LakeEngine;
use sluice_transform::engine::postgres::PgEngine;
use sluice_transform::manifest::{Manifest, NodeKind, compile};
use sluice_transform::profiles::Output;
use sluice_transform::runner::{self, Command, Event, RunOptions, Status};
use sluice_transform::select::{PreviousState, select};
use sluice_transform::{DbtProject, TransformError, artifacts, profiles};

use crate::cli::{TransformCommand, TransformOptions, TransformRunOptions};
use crate::output::{Reporter, UserError, table};

fn user(e: TransformError) -> anyhow::Error {
    let hint = e.hint().map(str::to_string);
    UserError::error(e.to_string(), hint)
}

struct Loaded {
    project: DbtProject,
    output: Output,
    manifest: Manifest,
}

fn load(dir: Option<&Path>, o: &TransformOptions) -> Result<Loaded> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir()?,
    };
    let project = DbtProject::load(&dir).map_err(user)?;
    let output = profiles::load(
        o.profiles_dir.as_deref(),
        &dir,
        &project.profile,
        o.target.as_deref(),
    )
    .map_err(user)?;
    let vars: IndexMap<String, Value> = match &o.vars {
        None => IndexMap::new(),
        Some(text) => serde_saphyr::from_str(text).map_err(|e| {
            UserError::error(
                format!("--vars is not a YAML mapping: {e}"),
                Some("write it as `--vars '{name: value, other: 2}'`".into()),
            )
        })?,
    };
    let manifest = compile(&project, &output.target, &vars).map_err(user)?;
    Ok(Loaded {
        project,
        output,
        manifest,
    })
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

/// The lake a `type: sluice` output writes to.
fn lake_of(project_dir: &Path, output: &Output) -> Result<Lake> {
    if let Some(url) = output.settings.get("lake").and_then(Value::as_str) {
        return Ok(Lake::from_config(project_dir, Some(url), [])?);
    }
    if project_dir.join("sluice.yml").exists() {
        return Ok(crate::project::Project::load(Some(project_dir))?.lake);
    }
    Ok(Lake::from_config(project_dir, None, [])?)
}

async fn engine_for(l: &Loaded, run_id: &str) -> Result<Box<dyn Engine>> {
    match l.output.target.kind.as_str() {
        "sluice" => {
            let lake = lake_of(&l.project.dir, &l.output)?;
            let engine = LakeEngine::new(lake, run_id)
                .await
                .map_err(|e| UserError::error(format!("the lake: {e}"), None))?;
            Ok(Box::new(engine))
        }
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

fn write_artifact(project: &DbtProject, name: &str, value: &Value) -> Result<()> {
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
    let l = load(dir, &o.common)?;
    report_template_warnings(&l.manifest, reporter);
    let run_id = uuid::Uuid::now_v7().to_string();
    let follow = matches!(command, Command::Test | Command::Build);
    let chosen = selected(&l, &o.common, follow)?;
    write_artifact(
        &l.project,
        "manifest.json",
        &artifacts::manifest_json(&l.manifest, &run_id),
    )?;
    let engine = engine_for(&l, &run_id).await?;
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
        TransformCommand::Parse(o) => {
            let l = load(dir, o)?;
            write_artifact(
                &l.project,
                "manifest.json",
                &artifacts::manifest_json(&l.manifest, &uuid::Uuid::now_v7().to_string()),
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
            let mut l = load(dir, o)?;
            report_template_warnings(&l.manifest, reporter);
            let chosen: std::collections::HashSet<String> =
                selected(&l, o, true)?.into_iter().collect();
            // Nodes whose Jinja runs database calls are rendered with the
            // engine, as dbt's compile does (only then is it opened).
            if chosen.iter().any(|n| l.manifest.needs_database(n)) {
                let run_id = uuid::Uuid::now_v7().to_string();
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
                &artifacts::manifest_json(&l.manifest, &uuid::Uuid::now_v7().to_string()),
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
            let l = load(dir, o)?;
            let chosen = selected(&l, o, !o.select.is_empty())?;
            let (project, manifest) = (&l.project, &l.manifest);
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
                    .collect();
                crate::outln!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
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
                    "{}: {} of {} nodes",
                    project.name,
                    chosen.len(),
                    manifest.nodes.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn display(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string())
}
