//! `sluice graph`: the project's asset graph, as text, DOT or JSON.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use sluice_orchestrator::{Plan, PlanOptions, select};

use crate::assets::ProjectAssets;
use crate::cli::{GraphArgs, GraphFormat};
use crate::output::{Reporter, UserError};
use crate::project::Project;

/// Print the graph (the selected part of it).
pub async fn graph(dir: Option<&Path>, args: &GraphArgs, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let run_id = uuid::Uuid::now_v7().to_string();
    let assets = ProjectAssets::load(&project, &run_id, false, true, None, None).await?;
    let g = &assets.graph;
    let to_user = |e: sluice_orchestrator::SelectError| {
        UserError::usage(e.to_string(), Some(e.hint().to_string()))
    };
    let mut chosen = match &args.job {
        Some(name) => {
            let job = project.config().jobs.get(name).ok_or_else(|| {
                UserError::usage(
                    format!("no job `{name}` in sluice.yml"),
                    Some(
                        "declare it under `jobs:`, or leave it out to see every asset".to_string(),
                    ),
                )
            })?;
            select(g, &job.select, &job.exclude).map_err(to_user)?
        }
        None => select(g, &[], &[]).map_err(to_user)?,
    };
    if !args.select.is_empty() || !args.exclude.is_empty() {
        let narrowed = select(g, &args.select, &args.exclude).map_err(to_user)?;
        chosen.retain(|k| narrowed.contains(k));
    }
    let format = if reporter.json() {
        GraphFormat::Json
    } else {
        args.format
    };
    match format {
        GraphFormat::Text => {
            crate::outln!("{}", g.to_text(&chosen).trim_end());
            let n = chosen.len();
            crate::outln!(
                "\n{n} asset{} (`sluice graph --format dot | dot -Tsvg > graph.svg` draws it)",
                if n == 1 { "" } else { "s" }
            );
        }
        GraphFormat::Dot => crate::outln!("{}", g.to_dot(&chosen)),
        GraphFormat::Json => {
            let plan = Plan::new(g, &chosen, PlanOptions::default());
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "assets": g.selected(&chosen),
                    "steps": plan.steps,
                }))?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
