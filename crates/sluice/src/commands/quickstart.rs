//! `sluice quickstart`: the whole loop on embedded defaults, in one command.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{QuickstartArgs, SqlFormat};
use crate::commands::{init, sql};
use crate::output::Reporter;
use crate::project::{PROJECT_FILE, Project};

const QUERY: &str = "SELECT status, count(*) AS orders, round(sum(amount), 2) AS revenue \
                     FROM shop.orders GROUP BY status ORDER BY revenue DESC";

/// Create (or reuse) a demo project, load it, query it.
pub async fn quickstart(args: &QuickstartArgs, reporter: &Reporter) -> Result<ExitCode> {
    let dir = &args.dir;
    if dir.join(PROJECT_FILE).exists() {
        reporter.info(&format!("Using the demo project in {}", dir.display()));
    } else {
        init::scaffold(dir, false)?;
        reporter.info(&format!("Created a demo project in {}", dir.display()));
    }
    let req = crate::orchestrate::RunRequest {
        command: "quickstart".to_string(),
        checks: true,
        trigger: "manual".to_string(),
        ..Default::default()
    };
    let code = crate::orchestrate::run(Some(dir), reporter, req).await?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    let project = Project::load(Some(dir))?;
    let batches = sql::query(&project, QUERY).await?;
    if !reporter.json() {
        crate::outln!("\n$ sluice sql \"{QUERY}\"");
        sql::write_batches(&mut std::io::stdout().lock(), &batches, SqlFormat::Table)?;
        crate::outln!(
            "\nNext: cd {} && sluice tables, sluice check, sluice sql \"SELECT * FROM shop.orders__quarantine\", sluice run (again: nothing new to load)",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
