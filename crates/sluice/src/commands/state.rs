//! `sluice state show|set|clear`.
//!
//! For lake tables the checkpoint committed with the data is the truth; a
//! manual `set` or `clear` is stored with a sequence number above it, so the
//! next run starts from the manual state, and its own commits take over again.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use sluice_core::TableName;
use sluice_core::config::StreamSpec;
use sluice_core::connector::{CommittedState, StreamState};
use sluice_store::Store;

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
                crate::outln!("{}", serde_json::to_string_pretty(&entries)?);
                return Ok(ExitCode::SUCCESS);
            }
            if entries.is_empty() {
                crate::outln!(
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
            crate::outln!("{t}");
        }
        StateAction::Set { stream, value } => {
            let target = find_target(&project, &stream)?;
            let value: serde_json::Value = serde_json::from_str(&value).map_err(|e| {
                UserError::error(
                    format!("The state is not valid JSON: {e}"),
                    Some("quote it for the shell, e.g. '{\"files\": {}}'".to_string()),
                )
            })?;
            let _lock = project.lock()?;
            let seq = next_seq(&project, &store, &target).await?;
            let state = StreamState {
                seq,
                value,
                run_id: Some(MANUAL_RUN_ID.into()),
            };
            store.put_state(&target.key, &state)?;
            report(
                reporter,
                json!({"stream": target.key, "action": "set", "checkpoint": seq}),
                &format!(
                    "State of `{}` set; the next run starts from it.",
                    target.key
                ),
            );
        }
        StateAction::Clear { stream, all } => {
            let targets = match (&stream, all) {
                (None, false) => {
                    return Err(UserError::error(
                        "Say which state to clear",
                        Some(
                            "`sluice state clear SOURCE[.STREAM][@DESTINATION]`, or `--all` for every stream"
                                .to_string(),
                        ),
                    ));
                }
                (None, true) => targets_under(&project, &store, None)?,
                (Some(s), _) if s.contains('@') => vec![find_target(&project, s)?],
                (Some(s), _) => {
                    let targets = targets_under(&project, &store, Some(s))?;
                    if targets.is_empty() {
                        find_target(&project, s)?;
                    }
                    targets
                }
            };
            let _lock = project.lock()?;
            for target in &targets {
                let seq = next_seq(&project, &store, target).await?;
                let state = StreamState {
                    seq,
                    value: serde_json::Value::Null,
                    run_id: Some(MANUAL_RUN_ID.into()),
                };
                store.put_state(&target.key, &state)?;
            }
            let names: Vec<String> = targets.iter().map(|t| t.key.clone()).collect();
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
        crate::outln!("{value}");
    } else {
        crate::outln!("{text}");
    }
}

/// A stream's state as stored: for its own destination (`source.stream`) or
/// for another one it was sent to with `--to` (`source.stream@destination`).
struct Target {
    id: String,
    table: TableName,
    destination: Option<String>,
    key: String,
}

fn find_target(project: &Project, text: &str) -> Result<Target> {
    let (id, destination) = match text.split_once('@') {
        Some((id, d)) => (id, Some(d.to_string())),
        None => (text, None),
    };
    let config = project.config();
    let not_found = || {
        let ids = known_ids(project);
        let hint = sluice_core::config::suggest::did_you_mean(id, ids.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("streams are named `source.stream`: {}", ids.join(", ")));
        UserError::error(format!("No stream `{id}` in the project"), Some(hint))
    };
    let (source, stream) = id.split_once('.').ok_or_else(not_found)?;
    let static_streams = match config.sources.0.get(source) {
        Some(s) => s.has_static_streams(),
        None => return Err(not_found()),
    };
    if static_streams
        && !config
            .streams(source)
            .unwrap_or_default()
            .iter()
            .any(|s| s.stream == stream)
    {
        return Err(not_found());
    }
    let (table, own) = config
        .stream_target(source, stream)
        .map_err(|m| UserError::error(m, None))?;
    Ok(Target {
        id: id.to_string(),
        table,
        destination: destination.or(own),
        key: text.to_string(),
    })
}

/// Stream ids the project knows without connecting anywhere: static
/// streams, and database streams that have a stored state.
fn known_ids(project: &Project) -> Vec<String> {
    let mut ids: Vec<String> = project
        .config()
        .all_streams()
        .unwrap_or_default()
        .iter()
        .map(StreamSpec::id)
        .collect();
    if let Ok(store) = project.store() {
        for e in store.list_states(None).unwrap_or_default() {
            let id = e
                .stream_id
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Every state under `prefix` (a source or a stream; all when `None`): the
/// own state of each static stream, plus every state the store holds.
fn targets_under(project: &Project, store: &Store, prefix: Option<&str>) -> Result<Vec<Target>> {
    let mut keys: Vec<String> = project
        .config()
        .all_streams()
        .map_err(|m| UserError::error(m, None))?
        .iter()
        .map(StreamSpec::id)
        .filter(|id| prefix.is_none_or(|p| p == id || id.starts_with(&format!("{p}."))))
        .collect();
    for e in store.list_states(prefix)? {
        if !keys.contains(&e.stream_id) {
            keys.push(e.stream_id);
        }
    }
    keys.iter().map(|k| find_target(project, k)).collect()
}

/// A sequence number above both the store's and the destination table's.
async fn next_seq(project: &Project, store: &Store, target: &Target) -> Result<u64> {
    let stored = store.get_state(&target.key)?.map_or(0, |s| s.seq);
    let dest = build_destination(project, target.destination.as_deref())?;
    let committed = match dest.committed_state(&target.table, &target.id).await? {
        CommittedState::Table(Some(s)) => s.seq,
        _ => 0,
    };
    Ok(stored.max(committed) + 1)
}
