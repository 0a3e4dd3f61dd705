//! `sluice singer tap SOURCE`: a source as a Singer tap, for Meltano or any
//! Singer runner.
//!
//! ```text
//!  SOURCE ── a source of the project (sluice.yml) ──┐
//!         └─ a built-in type + --config JSON ───────┤ registry builds the Source
//!                                                   ▼
//!  --about     ─► JSON: name, capabilities, settings
//!  --discover  ─► catalog: streams, JSON Schema (singer::encode), metadata
//!  (default)   ─► per selected stream, one after another: Source::read
//!                 Schema ─► SCHEMA   Batch ─► RECORD lines   Checkpoint ─► STATE (all bookmarks)
//!                 Quarantine ─► RECORDs of `<stream>__quarantine`   error ─► stderr, exit 1
//! ```
//!
//! Stdout carries nothing but Singer messages, through a 1 MiB buffer that
//! is flushed at every STATE; logs and errors go to stderr.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde_json::{Map, Value, json};
use sluice_connectors::singer::encode::{RecordEncoder, project, schema_line, state_line};
use sluice_core::config::{SourceConfig, StreamSpec, parse_project};
use sluice_core::connector::{Message, ReadRequest, Source};
use sluice_core::quarantine;
use sluice_lake::Lake;

use super::singer_catalog::{Selection as CatalogSelection, catalog, selection};
use crate::cli::{SingerTapArgs, SingerTapFormat};
use crate::output::{Reporter, UserError};
use crate::plan::{Selection, plan};
use crate::project::Project;

/// Source types `sluice singer tap TYPE --config FILE` builds without a project.
pub const BUILT_IN: [&str; 4] = ["files", "postgres", "mysql", "sqlite"];

/// Stdout buffer between flushes.
const STDOUT_BUFFER: usize = 1 << 20;

/// Run `sluice singer tap`.
pub async fn tap(
    dir: Option<&Path>,
    args: &SingerTapArgs,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let (project, source) = resolve(dir, args)?;
    if args.about {
        about(&project, &source, args.format);
        return Ok(ExitCode::SUCCESS);
    }
    let planned = plan(
        &project,
        &Selection {
            patterns: Vec::new(),
            source: Some(source.clone()),
        },
    )
    .await?;
    let built = planned
        .sources
        .get(&source)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("source `{source}` was not built"))?;
    if args.discover {
        let infos = built.discover().await?;
        let out = catalog(&planned.specs, &infos, built.kind());
        crate::outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let catalog_file = args.catalog.as_ref().or(args.properties.as_ref());
    let chosen = match catalog_file {
        Some(file) => Some(selection(&read_json(file, "catalog")?, &planned.specs)?),
        None => None,
    };
    let mut state = match &args.state {
        Some(file) => singer_state(read_json(file, "state")?),
        None => json!({"bookmarks": {}}),
    };
    let mut out = Output {
        stdout: std::io::BufWriter::with_capacity(STDOUT_BUFFER, std::io::stdout()),
    };
    let mut streams = 0;
    for spec in &planned.specs {
        let choice = match &chosen {
            Some(chosen) => match chosen.get(&spec.stream) {
                Some(c) => c.clone(),
                None => continue,
            },
            None => CatalogSelection::default(),
        };
        streams += 1;
        let result = sync_stream(&*built, spec, &choice, &mut state, &mut out, reporter).await;
        if let Err(e) = result {
            // What was written before the error stays valid up to its last STATE.
            let _ = out.stdout.flush();
            return Err(e);
        }
    }
    out.flush()?;
    if streams == 0 {
        reporter.warn("the catalog selects no stream; nothing was read");
    }
    Ok(ExitCode::SUCCESS)
}

/// The project and source name to run: a source of the project, or a
/// built-in type configured by `--config` (a one-source project built from
/// it, in the project folder when there is one, else the current folder).
fn resolve(dir: Option<&Path>, args: &SingerTapArgs) -> Result<(Project, String)> {
    let loaded = Project::load(dir);
    if matches!(&loaded, Ok(p) if p.config().sources.0.contains_key(&args.source)) {
        if !args.config.is_empty() {
            tracing::debug!(
                "source `{}` is configured in sluice.yml; --config is not used",
                args.source
            );
        }
        return Ok((loaded?, args.source.clone()));
    }
    if !BUILT_IN.contains(&args.source.as_str()) {
        let known = match &loaded {
            Ok(p) => p.config().sources.0.keys().cloned().collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        };
        let hint = format!(
            "name a source of the project{} or a built-in type ({}) with `--config FILE`",
            if known.is_empty() {
                String::new()
            } else {
                format!(" ({})", known.join(", "))
            },
            BUILT_IN.join(", ")
        );
        return Err(match loaded {
            Err(e) if dir.is_some() => e,
            _ => UserError::error(format!("No source named `{}`", args.source), Some(hint)),
        });
    }
    let Some(first) = args.config.first() else {
        return Err(UserError::error(
            format!("`sluice singer tap {}` needs `--config FILE`", args.source),
            Some(format!(
                "write the source's settings as JSON, the same keys as under `sources:` in sluice.yml, e.g. {}",
                example(&args.source)
            )),
        ));
    };
    let mut config = Map::new();
    for file in &args.config {
        match read_json(file, "config")? {
            Value::Object(o) => config.extend(o),
            _ => {
                return Err(UserError::error(
                    format!("`{}` is not a JSON object", file.display()),
                    Some(format!(
                        "write the settings as an object, e.g. {}",
                        example(&args.source)
                    )),
                ));
            }
        }
    }
    match config.get("type").and_then(Value::as_str) {
        None => {
            config.insert("type".into(), Value::from(args.source.clone()));
        }
        Some(t) if t == args.source || (args.source == "mysql" && t == "mariadb") => {}
        Some(t) => {
            return Err(UserError::error(
                format!(
                    "`{}` says `type: {t}`, but the tap is `{}`",
                    first.display(),
                    args.source
                ),
                Some(format!(
                    "run `sluice singer tap {t} --config …`, or fix `type`"
                )),
            ));
        }
    }
    let project_dir = match loaded {
        Ok(p) => p.dir,
        Err(_) => std::env::current_dir().context("Cannot read the current folder")?,
    };
    // JSON is YAML: the config becomes the one source of a project file.
    let text = format!(
        "sources:\n  {}: {}\n",
        args.source,
        serde_json::to_string(&Value::Object(config))?
    );
    let dotenv = std::fs::read_to_string(project_dir.join(".env")).ok();
    let loaded = parse_project(&text, first, dotenv.as_deref(), |k| std::env::var(k).ok())?;
    crate::output::set_secrets(loaded.secrets.clone());
    let lake = Lake::from_config(&project_dir, Some("memory://"), Vec::new())?;
    Ok((
        Project {
            dir: project_dir,
            loaded,
            lake,
        },
        args.source.clone(),
    ))
}

fn example(kind: &str) -> &'static str {
    match kind {
        "files" => r#"{"path": "data/orders*.csv", "primary_key": "id"}"#,
        "sqlite" => r#"{"path": "shop.db"}"#,
        _ => r#"{"url": "postgres://user:pass@host/db", "include": ["public.orders"]}"#,
    }
}

/// Read a JSON file given on the command line.
fn read_json(file: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        UserError::error(
            format!("Cannot read the {what} file `{}`: {e}", file.display()),
            None,
        )
    })?;
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(&text).map_err(|e| {
        UserError::error(
            format!(
                "The {what} file `{}` is not valid JSON: {e}",
                file.display()
            ),
            Some(format!("pass the {what} as one JSON object")),
        )
    })
}

/// `--state` as `{"bookmarks": {…}, …}`; a STATE message or an empty file
/// are accepted too.
fn singer_state(value: Value) -> Value {
    let mut value = match value {
        Value::Object(mut o) if o.get("type").and_then(Value::as_str) == Some("STATE") => {
            o.remove("value").unwrap_or_else(|| json!({}))
        }
        Value::Object(o) => Value::Object(o),
        _ => json!({}),
    };
    if !value.get("bookmarks").is_some_and(Value::is_object) {
        value["bookmarks"] = json!({});
    }
    value
}

/// Stdout, buffered.
struct Output {
    stdout: std::io::BufWriter<std::io::Stdout>,
}

impl Output {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.stdout.write_all(bytes).map_err(stdout_error)
    }

    fn flush(&mut self) -> Result<()> {
        self.stdout.flush().map_err(stdout_error)
    }
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    UserError::error(
        format!("Cannot write Singer messages to stdout: {e}"),
        (e.kind() == std::io::ErrorKind::BrokenPipe)
            .then(|| "the program reading them (the target) stopped; see its output".to_string()),
    )
}

/// One stream: its messages, then a STATE after each checkpoint.
async fn sync_stream(
    source: &dyn Source,
    spec: &StreamSpec,
    choice: &CatalogSelection,
    state: &mut Value,
    out: &mut Output,
    reporter: &Reporter,
) -> Result<()> {
    let bookmark = if choice.full_table {
        None
    } else {
        state["bookmarks"]
            .get(&spec.stream)
            .filter(|v| !v.is_null())
            .cloned()
    };
    let mut messages = source
        .read(ReadRequest {
            stream: spec.stream.clone(),
            state: bookmark,
            on_error: spec.on_error,
            batch_size: spec.batch_size,
            known_schema: None,
        })
        .await?;
    let always: Vec<&str> = spec
        .primary_key
        .iter()
        .chain(spec.cursor.iter())
        .map(String::as_str)
        .collect();
    let keep = |c: &str| always.contains(&c) || !choice.columns_off.contains(c);
    let records = RecordEncoder::new(&spec.stream);
    let quarantine_stream = format!("{}__quarantine", spec.stream);
    let mut quarantine_records: Option<RecordEncoder> = None;
    let mut buf = Vec::new();
    let mut set_aside = 0u64;
    while let Some(message) = messages.next().await {
        match message? {
            Message::Schema(schema) => {
                let empty = arrow::array::RecordBatch::new_empty(schema);
                let schema = project(&empty, &keep)?.schema();
                let keys: Vec<String> = spec
                    .primary_key
                    .iter()
                    .filter(|k| schema.field_with_name(k).is_ok())
                    .cloned()
                    .collect();
                let bookmarks: Vec<String> = spec.cursor.iter().cloned().collect();
                out.write(&schema_line(&spec.stream, &schema, &keys, &bookmarks))?;
            }
            Message::Batch(batch) => {
                buf.clear();
                records.encode(&project(&batch, &keep)?, &mut buf)?;
                out.write(&buf)?;
            }
            Message::Quarantine(rows) => {
                buf.clear();
                let encoder = quarantine_records.get_or_insert_with(|| {
                    buf = schema_line(&quarantine_stream, &quarantine::source_schema(), &[], &[]);
                    RecordEncoder::new(&quarantine_stream)
                });
                encoder.encode(&rows, &mut buf)?;
                set_aside += rows.num_rows() as u64;
                out.write(&buf)?;
            }
            Message::Checkpoint(cp) => {
                state["bookmarks"][spec.stream.as_str()] = cp.state;
                out.write(&state_line(state))?;
                out.flush()?;
            }
            Message::Progress(_) => {}
        }
    }
    if set_aside > 0 {
        reporter.warn(&format!(
            "{set_aside} bad records of `{}` were set aside (on_error: quarantine) and sent as stream `{quarantine_stream}`",
            spec.stream
        ));
    }
    Ok(())
}

/// `--about`: what this tap is and the settings of its source type.
fn about(project: &Project, source: &str, format: SingerTapFormat) {
    let kind = project
        .config()
        .sources
        .0
        .get(source)
        .map(SourceConfig::kind)
        .unwrap_or("files");
    let name = format!("sluice-{kind}");
    let description =
        format!("Sluice's `{kind}` source as a Singer tap (streams as configured for `{source}`)");
    let capabilities = ["catalog", "discover", "state"];
    let settings = settings(kind);
    match format {
        SingerTapFormat::Json => {
            let about = json!({
                "name": name,
                "description": description,
                "version": env!("CARGO_PKG_VERSION"),
                "capabilities": capabilities,
                "settings": settings,
            });
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&about).unwrap_or_default()
            );
        }
        SingerTapFormat::Markdown => {
            crate::outln!("# {name}\n\n{description}\n");
            crate::outln!("Version: {}\n", env!("CARGO_PKG_VERSION"));
            crate::outln!("## Capabilities\n");
            for c in capabilities {
                crate::outln!("* `{c}`");
            }
            crate::outln!("\n## Settings\n");
            crate::outln!("| setting | type |\n|---|---|");
            if let Some(props) = settings["properties"].as_object() {
                for (key, schema) in props {
                    let t = schema.get("type").map(Value::to_string).unwrap_or_default();
                    crate::outln!("| `{key}` | {t} |");
                }
            }
        }
    }
}

/// The settings of a source type as JSON Schema: its `sluice.yml` keys (the
/// config struct's fields, so never out of date), typed where the default
/// value says.
fn settings(kind: &str) -> Value {
    let defaults = match kind {
        "files" => serde_json::to_value(sluice_core::config::FilesSource::default()),
        "singer" => serde_json::to_value(sluice_core::config::SingerSource::default()),
        _ => serde_json::to_value(sluice_core::config::DatabaseSource::default()),
    }
    .unwrap_or_default();
    let mut properties = Map::new();
    if let Value::Object(fields) = defaults {
        for (key, default) in fields {
            let schema = match (key.as_str(), &default) {
                ("type", _) => json!({"type": "string", "enum": [kind]}),
                (_, Value::Bool(_)) => json!({"type": "boolean"}),
                (_, Value::Number(_)) => json!({"type": "number"}),
                (_, Value::Object(_)) => json!({"type": "object"}),
                (_, Value::Array(_)) => json!({"type": "array"}),
                _ => json!({}),
            };
            properties.insert(key, schema);
        }
    }
    json!({"type": "object", "properties": properties, "required": ["type"]})
}
