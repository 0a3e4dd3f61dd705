//! `sluice state show|set|clear`.
//!
//! For lake tables the checkpoint committed with the data is the truth; a
//! manual `set` or `clear` is stored with a sequence number above it, so the
//! next run starts from the manual state, and its own commits take over again.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use sluice_core::connector::{CommittedState, StreamState};

use crate::cli::StateAction;
use crate::engine::MANUAL_RUN_ID;
use crate::output::{Reporter, UserError, table};
use crate::project::Project;
use crate::registry::build_destination;

/// Run a state action.
pub async fn state(
    dir: Option<&Path>,
    action: StateAction,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let store = project.store()?;
    match action {
        StateAction::Show { stream } => {
            let entries = store.list_states(stream.as_deref())?;
            if reporter.json() {
                println!("{}", serde_json::to_string_pretty(&entries)?);
                return Ok(ExitCode::SUCCESS);
            }
            if entries.is_empty() {
                println!(
                    "No state stored{}.",
                    stream.map(|s| format!(" for `{s}`")).unwrap_or_default()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["stream", "checkpoint", "run", "updated", "state"]);
            for e in entries {
                let mut value = e.state.value.to_string();
                if value.len() > 120 {
                    value = format!(
                        "{}… (--json for all)",
                        &value[..value
                            .char_indices()
                            .nth(117)
                            .map_or(value.len(), |(i, _)| i)]
                    );
                }
                t.add_row(vec![
                    e.stream_id,
                    e.state.seq.to_string(),
                    e.state.run_id.unwrap_or_default(),
                    e.updated_at,
                    if e.state.value.is_null() {
                        "(cleared)".into()
                    } else {
                        value
                    },
                ]);
            }
            println!("{t}");
        }
        StateAction::Set { stream, value } => {
            let spec = find_stream(&project, &stream)?;
            let value: serde_json::Value = serde_json::from_str(&value).map_err(|e| {
                UserError::error(
                    format!("The state is not valid JSON: {e}"),
                    Some("quote it for the shell, e.g. '{\"files\": {}}'".to_string()),
                )
            })?;
            let seq = next_seq(&project, &store, &spec).await?;
            store.put_state(
                &stream,
                &StreamState {
                    seq,
                    value,
                    run_id: Some(MANUAL_RUN_ID.into()),
                },
            )?;
            report(
                reporter,
                json!({"stream": stream, "action": "set", "checkpoint": seq}),
                &format!("State of `{stream}` set; the next run starts from it."),
            );
        }
        StateAction::Clear { stream, all } => {
            let specs = match (&stream, all) {
                (None, false) => {
                    return Err(UserError::error(
                        "Say which state to clear",
                        Some(
                            "`sluice state clear SOURCE[.STREAM]`, or `--all` for every stream"
                                .to_string(),
                        ),
                    ));
                }
                (None, true) => project
                    .config()
                    .all_streams()
                    .map_err(|m| UserError::error(m, None))?,
                (Some(s), _) => {
                    let specs: Vec<_> = project
                        .config()
                        .all_streams()
                        .map_err(|m| UserError::error(m, None))?
                        .into_iter()
                        .filter(|x| x.id() == *s || x.source == *s)
                        .collect();
                    if specs.is_empty() {
                        find_stream(&project, s)?;
                    }
                    specs
                }
            };
            for spec in &specs {
                let seq = next_seq(&project, &store, spec).await?;
                store.put_state(
                    &spec.id(),
                    &StreamState {
                        seq,
                        value: serde_json::Value::Null,
                        run_id: Some(MANUAL_RUN_ID.into()),
                    },
                )?;
            }
            let names: Vec<String> = specs.iter().map(|s| s.id()).collect();
            report(
                reporter,
                json!({"action": "clear", "streams": names}),
                &format!(
                    "Cleared the state of {}; the next run reads from the start.",
                    names.join(", ")
                ),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(reporter: &Reporter, value: serde_json::Value, text: &str) {
    if reporter.json() {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

fn find_stream(project: &Project, id: &str) -> Result<sluice_core::config::StreamSpec> {
    let all = project
        .config()
        .all_streams()
        .map_err(|m| UserError::error(m, None))?;
    all.iter().find(|s| s.id() == id).cloned().ok_or_else(|| {
        let ids: Vec<String> = all.iter().map(|s| s.id()).collect();
        let hint = sluice_core::config::suggest::did_you_mean(id, ids.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("streams are named `source.stream`: {}", ids.join(", ")));
        UserError::error(format!("No stream `{id}` in the project"), Some(hint))
    })
}

/// A sequence number above both the store's and the table's.
async fn next_seq(
    project: &Project,
    store: &sluice_store::Store,
    spec: &sluice_core::config::StreamSpec,
) -> Result<u64> {
    let stored = store.get_state(&spec.id())?.map_or(0, |s| s.seq);
    let dest = build_destination(project, spec.destination.as_deref())?;
    let committed = match dest.committed_state(&spec.table, &spec.id()).await? {
        CommittedState::Table(Some(s)) => s.seq,
        _ => 0,
    };
    Ok(stored.max(committed) + 1)
}
