//! The explicit registry of built-in connectors.
//!
//! Every connector Sluice ships is listed in [`registry`], and built by
//! [`build_source`] / [`build_destination`] — plain functions, no
//! registration magic. Adding a connector means adding a line to each.

use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;
use sluice_connectors::FileSource;
use sluice_connectors::file_dest::FileDestination;
use sluice_connectors::mysql::MySource;
use sluice_connectors::postgres::{PgDestination, PgSource};
use sluice_connectors::singer::process::Plugin;
use sluice_connectors::singer::target::SingerTarget;
use sluice_connectors::singer::{SingerTap, TapSettings};
use sluice_connectors::sqlite::SqliteSource;
use sluice_core::config::{DatabaseKind, DestinationConfig, PluginSpec, SourceConfig};
use sluice_core::connector::{Destination, Source};
use sluice_lake::{Lake, LakeDestination};

use crate::output::UserError;
use crate::project::Project;

/// Whether a connector reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads (a source).
    Source,
    /// Writes (a destination).
    Destination,
}

/// One built-in connector.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorEntry {
    /// Its `type:`.
    pub kind: &'static str,
    /// Source or destination.
    pub role: Role,
    /// Write modes (destinations).
    pub modes: &'static str,
    /// Delivery guarantee (destinations).
    pub delivery: &'static str,
    /// What it is.
    pub about: &'static str,
}

/// Every built-in connector.
pub fn registry() -> Vec<ConnectorEntry> {
    vec![
        ConnectorEntry {
            kind: "files",
            role: Role::Source,
            modes: "",
            delivery: "",
            about: "CSV, JSON Lines and Parquet files matched by glob; incremental by new/changed file or cursor column",
        },
        ConnectorEntry {
            kind: "postgres",
            role: Role::Source,
            modes: "",
            delivery: "",
            about: "PostgreSQL tables: binary COPY into Arrow, incremental by cursor, key ranges in parallel",
        },
        ConnectorEntry {
            kind: "mysql",
            role: Role::Source,
            modes: "",
            delivery: "",
            about: "MySQL and MariaDB tables (`type: mysql` or `mariadb`): streamed into Arrow, incremental by cursor, key ranges in parallel",
        },
        ConnectorEntry {
            kind: "sqlite",
            role: Role::Source,
            modes: "",
            delivery: "",
            about: "tables of a local SQLite file (read-only): typed by declared type, incremental by cursor, key ranges in parallel",
        },
        ConnectorEntry {
            kind: "singer",
            role: Role::Source,
            modes: "",
            delivery: "",
            about: "any Singer tap (pip-installed into its own venv, or on PATH): discovery, selection, incremental by the tap's STATE",
        },
        ConnectorEntry {
            kind: "lake",
            role: Role::Destination,
            modes: "append, overwrite, merge",
            delivery: "exactly-once (checkpoint in the Delta commit)",
            about: "Delta tables under .sluice/lake (the default) or another location",
        },
        ConnectorEntry {
            kind: "postgres",
            role: Role::Destination,
            modes: "append, overwrite, merge",
            delivery: "exactly-once (checkpoint in the same transaction)",
            about: "PostgreSQL tables: binary COPY, upsert on the key, overwrite by atomic swap",
        },
        ConnectorEntry {
            kind: "parquet",
            role: Role::Destination,
            modes: "append, overwrite",
            delivery: "at-least-once",
            about: "a folder of Parquet files per table",
        },
        ConnectorEntry {
            kind: "csv",
            role: Role::Destination,
            modes: "append, overwrite",
            delivery: "at-least-once",
            about: "a folder of CSV files (with header) per table",
        },
        ConnectorEntry {
            kind: "jsonl",
            role: Role::Destination,
            modes: "append, overwrite",
            delivery: "at-least-once",
            about: "a folder of JSON Lines files per table",
        },
        ConnectorEntry {
            kind: "singer",
            role: Role::Destination,
            modes: "append, overwrite, merge (as the target implements them)",
            delivery: "at-least-once (state advances when the target echoes the STATE after the rows)",
            about: "any Singer target (from PyPI or an executable): RECORD messages on its stdin, one process per stream",
        },
    ]
}

/// Build the source named `name`.
pub fn build_source(project: &Project, name: &str) -> Result<Arc<dyn Source>> {
    let config = project
        .config()
        .sources
        .0
        .get(name)
        .ok_or_else(|| unknown_source(project, name))?;
    match config {
        SourceConfig::Files(files) => {
            let source = FileSource::new(name, files, &project.dir)
                .and_then(|s| s.with_defaults(&project.config().defaults.stream_options()))
                .map_err(|e| crate::plan::locate(project, name, e))?;
            Ok(Arc::new(source))
        }
        SourceConfig::Database(DatabaseKind::Postgres, db) => {
            let source = PgSource::new(name, db, &project.config().defaults.stream_options())
                .map_err(|e| crate::plan::locate(project, name, e))?;
            Ok(Arc::new(source))
        }
        SourceConfig::Database(DatabaseKind::Mysql, db) => {
            let source = MySource::new(name, db, &project.config().defaults.stream_options())
                .map_err(|e| crate::plan::locate(project, name, e))?;
            Ok(Arc::new(source))
        }
        SourceConfig::Database(DatabaseKind::Sqlite, db) => {
            let source = SqliteSource::new(
                name,
                db,
                &project.config().defaults.stream_options(),
                &project.dir,
            )
            .map_err(|e| crate::plan::locate(project, name, e))?;
            Ok(Arc::new(source))
        }
        SourceConfig::Singer(tap) => {
            let plugin = plugin_process(
                project,
                &format!("tap {name}"),
                &tap.plugin_spec(),
                tap.env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )?;
            let settings = TapSettings {
                config: tap.config.clone().unwrap_or_else(|| serde_json::json!({})),
                catalog_file: tap.catalog.as_ref().map(std::path::PathBuf::from),
                select: tap.select.clone(),
                streams: tap.streams.clone(),
                options: project
                    .config()
                    .defaults
                    .stream_options()
                    .overlay(&tap.stream_options()),
            };
            Ok(Arc::new(SingerTap::new(name, plugin, settings)))
        }
    }
}

/// A Singer plugin ready to run: its executable (installed on first use),
/// the project folder as working directory, its `env:` and the project's
/// secret redaction for its logs.
pub fn plugin_process(
    project: &Project,
    label: &str,
    spec: &PluginSpec,
    env: Vec<(String, String)>,
) -> Result<Plugin> {
    let program = crate::plugins::executable(project, spec)?;
    let secrets = project.loaded.clone();
    Ok(Plugin {
        label: label.to_string(),
        program,
        dir: project.dir.clone(),
        env,
        redact: Arc::new(move |t: &str| secrets.redact(t)),
    })
}

/// Build a destination: `None` or `lake` is the project's lake.
pub fn build_destination(project: &Project, name: Option<&str>) -> Result<Arc<dyn Destination>> {
    let Some(name) = name.filter(|n| *n != "lake") else {
        return Ok(Arc::new(LakeDestination::new(project.lake.clone())));
    };
    let config = project.config().destinations.0.get(name).ok_or_else(|| {
        let known: Vec<&str> = project
            .config()
            .destinations
            .0
            .keys()
            .map(String::as_str)
            .collect();
        let hint = sluice_core::config::suggest::did_you_mean(name, known.iter().copied())
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| {
                format!(
                    "define it under `destinations:` in sluice.yml (known: lake{})",
                    known.iter().map(|k| format!(", {k}")).collect::<String>()
                )
            });
        UserError::error(format!("No destination named `{name}`"), Some(hint))
    })?;
    Ok(match config {
        DestinationConfig::Lake(l) => {
            let lake = Lake::from_config(&project.dir, Some(&l.url), l.options.clone())?;
            Arc::new(LakeDestination::new(lake))
        }
        DestinationConfig::Files(f) => Arc::new(FileDestination::new(f, &project.dir)?),
        DestinationConfig::Postgres(p) => Arc::new(PgDestination::new(name, p)?),
        DestinationConfig::Singer(s) => {
            let plugin = plugin_process(
                project,
                &format!("target {name}"),
                &s.plugin_spec(),
                s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            )?;
            Arc::new(SingerTarget::new(name, plugin, s.config.clone()))
        }
    })
}

/// The error for a source that is not in the project.
pub fn unknown_source(project: &Project, name: &str) -> anyhow::Error {
    let known: Vec<&str> = project
        .config()
        .sources
        .0
        .keys()
        .map(String::as_str)
        .collect();
    let hint = match sluice_core::config::suggest::did_you_mean(name, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if known.is_empty() => "add one under `sources:` in sluice.yml".to_string(),
        None => format!("the project's sources: {}", known.join(", ")),
    };
    UserError::error(format!("No source named `{name}`"), Some(hint))
}
