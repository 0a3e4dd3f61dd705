//! `sluice backfill JOB --from --to [--dry-run]`: one run per partition of
//! a partitioned job, oldest first. A partition with a successful run of
//! the job is done and skipped, so the same command resumes a backfill that
//! stopped. A failed partition does not stop the others.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use sluice_store::RunStatus;

use crate::cli::BackfillArgs;
use crate::orchestrate::{self, RunRequest, job_partitions};
use crate::output::{Reporter, UserError, table};
use crate::project::Project;

/// Plan (and unless `--dry-run`, run) the backfill.
pub async fn backfill(
    dir: Option<&Path>,
    args: &BackfillArgs,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let config = project.config();
    let job = config.jobs.get(&args.job).ok_or_else(|| {
        UserError::usage(
            format!("no job `{}` in sluice.yml", args.job),
            Some(format!(
                "the jobs: {}",
                config.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        )
    })?;
    let Some(spec) = job_partitions(&project, &args.job, job)? else {
        return Err(UserError::usage(
            format!("job `{}` has no partitions to backfill", args.job),
            Some("declare `partitions: {every: daily, start: 2026-01-01}` on the job".to_string()),
        ));
    };
    let parts = spec
        .range(&args.from, &args.to)
        .map_err(|e| UserError::usage(format!("job `{}`: {e}", args.job), Some(e.hint())))?;
    // Done: a successful run of the job built the partition.
    let done: HashMap<String, String> = project
        .store()?
        .list_runs_filtered(usize::MAX >> 1, Some(&args.job), Some(RunStatus::Success))?
        .into_iter()
        .filter_map(|r| r.partition.map(|p| (p, r.run_id)))
        .collect();
    let pending: Vec<_> = parts
        .iter()
        .filter(|p| !done.contains_key(&p.key))
        .collect();
    if args.dry_run {
        if reporter.json() {
            let rows: Vec<_> = parts
                .iter()
                .map(|p| json!({"partition": p.key, "start": p.start, "end": p.end, "done_by": done.get(&p.key)}))
                .collect();
            crate::outln!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            let mut t = table(&["partition", "from", "to", "status"]);
            for p in &parts {
                t.add_row(vec![
                    p.key.clone(),
                    p.start.to_rfc3339(),
                    p.end.to_rfc3339(),
                    match done.get(&p.key) {
                        Some(run) => format!("done (run {run})"),
                        None => "to run".to_string(),
                    },
                ]);
            }
            crate::outln!("{t}");
            crate::outln!(
                "backfill `{}`: {} partitions, {} done, {} to run (dry run: nothing ran)",
                args.job,
                parts.len(),
                parts.len() - pending.len(),
                pending.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let trigger = format!("backfill:{}:{}..{}", args.job, args.from, args.to);
    let mut results: Vec<(String, String, bool)> = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        reporter.info(&format!(
            "[{}/{}] partition {} of `{}`",
            i + 1,
            pending.len(),
            p.key,
            args.job
        ));
        let run_id = uuid::Uuid::now_v7().to_string();
        let req = RunRequest {
            job: Some(args.job.clone()),
            command: format!("backfill {} {}", args.job, p.key),
            checks: true,
            trigger: trigger.clone(),
            run_id: Some(run_id.clone()),
            partition: Some(p.key.clone()),
            silent: true,
            ..Default::default()
        };
        let ok = match orchestrate::run(dir, reporter, req).await {
            Ok(code) => code == ExitCode::SUCCESS,
            Err(e) => {
                reporter.warn(&format!("partition {}: {e:#}", p.key));
                false
            }
        };
        results.push((p.key.clone(), run_id, ok));
    }
    let failed = results.iter().filter(|r| !r.2).count();
    if reporter.json() {
        let rows: Vec<_> = results
            .iter()
            .map(|(k, r, ok)| json!({"partition": k, "run_id": r, "status": if *ok { "success" } else { "failed" }}))
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "job": args.job,
                "partitions": parts.len(),
                "skipped_done": parts.len() - pending.len(),
                "runs": rows,
            }))?
        );
    } else {
        let mut t = table(&["partition", "run", "status"]);
        for (k, r, ok) in &results {
            t.add_row(vec![
                k.clone(),
                r.clone(),
                if *ok { "ok" } else { "FAILED" }.to_string(),
            ]);
        }
        crate::outln!("{t}");
        crate::outln!(
            "backfill `{}`: {} partitions: {} already done, {} ran, {failed} failed",
            args.job,
            parts.len(),
            parts.len() - pending.len(),
            results.len()
        );
    }
    if failed > 0 {
        reporter.line(&format!(
            "hint: fix the cause and run the same command again: the {} done partitions are skipped",
            parts.len() - failed
        ));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
