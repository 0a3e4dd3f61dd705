//! `sluice transform compile|ls`: a dbt project, compiled.
//!
//! The dbt project is the folder `--project-dir` names (default: the
//! current one). Running models (materializations) comes with the rest of
//! issue 5; today the project is loaded, rendered and ordered as it would be
//! for a run, which already reports every unknown ref, cycle, Jinja error
//! and missing var.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use indexmap::IndexMap;
use serde_json::{Value, json};
use sluice_transform::manifest::{Manifest, NodeKind, compile};
use sluice_transform::{DbtProject, TransformError, profiles};

use crate::cli::{TransformCommand, TransformOptions};
use crate::output::{Reporter, UserError, table};

fn user(e: TransformError) -> anyhow::Error {
    let hint = e.hint().map(str::to_string);
    UserError::error(e.to_string(), hint)
}

fn load(dir: Option<&Path>, o: &TransformOptions) -> Result<(DbtProject, Manifest)> {
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
    Ok((project, manifest))
}

/// Run `sluice transform …`.
pub fn transform(
    dir: Option<&Path>,
    command: &TransformCommand,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let started = Instant::now();
    match command {
        TransformCommand::Compile(o) => {
            let (project, manifest) = load(dir, o)?;
            let out_dir = project
                .dir
                .join(&project.target_path)
                .join("compiled")
                .join(&project.name);
            let mut written = 0usize;
            for node in manifest.nodes.values() {
                let Some(sql) = &node.sql else { continue };
                let path = out_dir.join(&node.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, sql)?;
                written += 1;
            }
            if reporter.json() {
                let nodes: Vec<Value> = manifest
                    .order
                    .iter()
                    .filter_map(|n| manifest.nodes.get(n))
                    .map(|n| {
                        json!({
                            "name": n.name,
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
                    "compiled {written} models of `{}` in {:.0} ms into {}",
                    project.name,
                    started.elapsed().as_secs_f64() * 1000.0,
                    display(&out_dir)
                );
            }
        }
        TransformCommand::Ls(o) => {
            let (project, manifest) = load(dir, o)?;
            if reporter.json() {
                let nodes: Vec<Value> = manifest
                    .order
                    .iter()
                    .filter_map(|n| manifest.nodes.get(n))
                    .map(|n| {
                        json!({
                            "name": n.name,
                            "resource_type": if n.kind == NodeKind::Seed { "seed" } else { "model" },
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
                for n in manifest.order.iter().filter_map(|n| manifest.nodes.get(n)) {
                    t.add_row(vec![
                        n.fqn.join("."),
                        if n.kind == NodeKind::Seed {
                            "seed"
                        } else {
                            "model"
                        }
                        .to_string(),
                        n.materialized().to_string(),
                        n.relation.to_string(),
                        n.depends_on.join(", "),
                    ]);
                }
                crate::outln!("{t}");
                crate::outln!("{}: {} nodes", project.name, manifest.nodes.len());
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
