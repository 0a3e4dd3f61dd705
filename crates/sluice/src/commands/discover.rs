//! `sluice discover SOURCE`: the streams a source offers.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use sluice_core::connector::StreamInfo;
use sluice_core::types::type_name;

use crate::output::{Reporter, table};
use crate::project::Project;
use crate::registry::build_source;

/// Print a source's streams with their columns.
pub async fn discover(dir: Option<&Path>, source: &str, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    // A Singer tap's catalog is cached between runs; `discover` asks the
    // tap again, so new streams and columns show up.
    if let Some(sluice_core::config::SourceConfig::Singer(tap)) =
        project.config().sources.0.get(source)
        && tap.catalog.is_none()
    {
        sluice_connectors::singer::tap::forget_cached_catalog(&project.dir, source);
    }
    let src = build_source(&project, source)?;
    let streams = src.discover().await?;
    if reporter.json() {
        let out: Vec<_> = streams.iter().map(stream_json).collect();
        crate::outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &streams {
        crate::outln!("{source}.{}", s.name);
        for (k, v) in &s.details {
            crate::outln!("  {k}: {v}");
        }
        if !s.primary_key.is_empty() {
            crate::outln!("  primary key: {}", s.primary_key.join(", "));
        }
        let Some(schema) = &s.schema else { continue };
        if s.columns.is_empty() {
            let mut t = table(&["column", "type", "nullable"]);
            for f in schema.fields() {
                t.add_row(vec![
                    f.name().clone(),
                    type_name(f.data_type()),
                    f.is_nullable().to_string(),
                ]);
            }
            crate::outln!("{t}");
            continue;
        }
        let mut t = table(&["column", "source type", "read as", "nullable", "note"]);
        for f in schema.fields() {
            let detail = s.columns.iter().find(|c| c.name == *f.name());
            t.add_row(vec![
                f.name().clone(),
                detail.map(|d| d.source_type.clone()).unwrap_or_default(),
                type_name(f.data_type()),
                detail.map_or(f.is_nullable(), |d| d.nullable).to_string(),
                detail.and_then(|d| d.note.clone()).unwrap_or_default(),
            ]);
        }
        crate::outln!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One stream for `--json`: columns with their Arrow type and, for
/// databases, the declared type.
fn stream_json(s: &StreamInfo) -> serde_json::Value {
    let columns = s.schema.as_ref().map(|sch| {
        sch.fields()
            .iter()
            .map(|f| {
                let detail = s.columns.iter().find(|c| c.name == *f.name());
                let mut col = json!({
                    "name": f.name(),
                    "type": type_name(f.data_type()),
                    "nullable": detail.map_or(f.is_nullable(), |d| d.nullable),
                });
                if let Some(d) = detail {
                    col["source_type"] = json!(d.source_type);
                    if let Some(note) = &d.note {
                        col["note"] = json!(note);
                    }
                }
                col
            })
            .collect::<Vec<_>>()
    });
    json!({
        "stream": s.name,
        "primary_key": s.primary_key,
        "columns": columns,
        "details": s.details.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}
