//! `sluice tables`: what the lake holds.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::output::{Reporter, human_bytes, table, thousands};
use crate::project::Project;

/// List the lake's tables.
pub async fn tables(dir: Option<&Path>, reporter: &Reporter) -> Result<ExitCode> {
    let lake = Project::lake_of(dir)?;
    let mut infos = Vec::new();
    for name in lake.list().await? {
        infos.push(lake.info(&name).await?);
    }
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&infos)?);
        return Ok(ExitCode::SUCCESS);
    }
    if infos.is_empty() {
        crate::outln!(
            "The lake at {} has no tables yet; `sluice run` loads the project's sources.",
            lake.root()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "table",
        "rows",
        "columns",
        "files",
        "size",
        "version",
        "last load",
        "run",
    ]);
    for i in &infos {
        t.add_row(vec![
            i.name.clone(),
            thousands(i.rows),
            i.columns.to_string(),
            i.files.to_string(),
            human_bytes(i.bytes),
            i.version.to_string(),
            i.last_load
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "-".into()),
            i.last_run_id.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    crate::outln!("{t}");
    Ok(ExitCode::SUCCESS)
}
