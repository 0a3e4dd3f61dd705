//! One module per command.

mod backfill;
pub mod check;
mod debug;
mod discover;
mod graph;
pub mod init;
mod plugin;
mod quickstart;
pub mod run;
mod runs;
pub mod serve;
pub mod singer;
mod singer_catalog;
pub mod singer_target;
pub mod sql;
mod state;
mod tables;
pub mod transform;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, SingerCommand};
use crate::orchestrate::{self, RunRequest};
use crate::output::Reporter;

/// Run the parsed command.
pub async fn dispatch(cli: Cli, reporter: &Reporter) -> Result<ExitCode> {
    let g = &cli.global;
    let dir = g.project_dir.as_deref();
    match cli.command {
        Command::Quickstart(args) => quickstart::quickstart(&args, reporter).await,
        Command::Init(args) => init::init(&args, reporter),
        Command::Run(args) => {
            let command = match &args.job {
                Some(j) => format!("run {j}"),
                None => "run".to_string(),
            };
            let req = RunRequest {
                job: args.job,
                select: args.select,
                exclude: args.exclude,
                full_refresh: args.full_refresh,
                to: None,
                command,
                from_failure: args.from_failure,
                checks: !args.no_checks,
                streams_only: false,
                dry_run: args.dry_run,
                trigger: "manual".to_string(),
                run_id: None,
                wait_lock: false,
                partition: args.partition,
                silent: false,
            };
            orchestrate::run(dir, reporter, req).await
        }
        Command::Graph(args) => graph::graph(dir, &args, reporter).await,
        Command::Serve(args) => serve::serve(dir, &args, reporter).await,
        Command::Backfill(args) => backfill::backfill(dir, &args, reporter).await,
        Command::Extract(args) => {
            let select = if args.stream.is_empty() {
                vec![format!("source:{}", args.source)]
            } else {
                args.stream
                    .iter()
                    .map(|s| format!("key:{}.{s}", args.source))
                    .collect()
            };
            let req = RunRequest {
                job: None,
                select,
                exclude: Vec::new(),
                full_refresh: args.full_refresh,
                to: args.to.clone(),
                command: format!("extract {}", args.source),
                from_failure: None,
                checks: true,
                streams_only: true,
                dry_run: false,
                trigger: "manual".to_string(),
                run_id: None,
                wait_lock: false,
                partition: None,
                silent: false,
            };
            orchestrate::run(dir, reporter, req).await
        }
        Command::Sql(args) => sql::sql(dir, &args, reporter).await,
        Command::Tables => tables::tables(dir, reporter).await,
        Command::State(args) => state::state(dir, args.action, reporter).await,
        Command::Discover(args) => discover::discover(dir, &args.source, reporter).await,
        Command::Transform(args) => transform::transform(dir, &args.command, reporter).await,
        Command::Plugin(args) => plugin::plugin(dir, args.action, reporter),
        Command::Check(args) => check::check(dir, &args, reporter).await,
        Command::Debug => debug::debug(dir, reporter).await,
        Command::Connectors => debug::connectors(reporter),
        Command::Runs(args) => runs::runs(dir, args, reporter),
        Command::Singer(args) => match args.command {
            SingerCommand::Tap(tap) => singer::tap(dir, &tap, reporter).await,
            SingerCommand::Target(t) if t.about => {
                singer_target::about();
                Ok(ExitCode::SUCCESS)
            }
            SingerCommand::Target(t) => {
                let options = singer_target::TargetOptions {
                    destination: t.destination,
                    config: t.config,
                    schema: t.schema,
                    quarantine: t.quarantine,
                };
                singer_target::target(dir, &options).await
            }
        },
    }
}
