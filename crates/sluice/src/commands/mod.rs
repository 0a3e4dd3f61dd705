//! One module per command.

pub mod check;
mod debug;
mod discover;
pub mod init;
mod plugin;
mod quickstart;
pub mod run;
mod runs;
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
use crate::output::Reporter;
use crate::plan::Selection;

/// Run the parsed command.
pub async fn dispatch(cli: Cli, reporter: &Reporter) -> Result<ExitCode> {
    let g = &cli.global;
    let dir = g.project_dir.as_deref();
    match cli.command {
        Command::Quickstart(args) => quickstart::quickstart(&args, reporter).await,
        Command::Init(args) => init::init(&args, reporter),
        Command::Run(args) => {
            let selection = Selection {
                patterns: args.select.clone(),
                source: None,
            };
            run::run(dir, reporter, selection, args.full_refresh, None, "run").await
        }
        Command::Extract(args) => {
            let mut patterns = Vec::new();
            if args.stream.is_empty() {
                patterns.push(args.source.clone());
            } else {
                patterns.extend(args.stream.iter().map(|s| format!("{}.{s}", args.source)));
            }
            let selection = Selection {
                patterns,
                source: Some(args.source.clone()),
            };
            let command = format!("extract {}", args.source);
            run::run(
                dir,
                reporter,
                selection,
                args.full_refresh,
                args.to.as_deref(),
                &command,
            )
            .await
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
