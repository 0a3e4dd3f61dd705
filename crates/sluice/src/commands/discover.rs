//! `sluice discover SOURCE`: the streams a source offers.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use sluice_core::types::type_name;

use crate::output::{Reporter, table};
use crate::project::Project;
use crate::registry::build_source;

/// Print a source's streams with their columns.
pub async fn discover(dir: Option<&Path>, source: &str, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let src = build_source(&project, source)?;
    let streams = src.discover().await?;
    if reporter.json() {
        let out: Vec<_> = streams
            .iter()
            .map(|s| {
                json!({
                    "stream": s.name,
                    "primary_key": s.primary_key,
                    "columns": s.schema.as_ref().map(|sch| sch.fields().iter().map(|f| json!({
                        "name": f.name(), "type": type_name(f.data_type()), "nullable": f.is_nullable()
                    })).collect::<Vec<_>>()),
                    "details": s.details.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &streams {
        println!("{source}.{}", s.name);
        for (k, v) in &s.details {
            println!("  {k}: {v}");
        }
        if !s.primary_key.is_empty() {
            println!("  primary key: {}", s.primary_key.join(", "));
        }
        if let Some(schema) = &s.schema {
            let mut t = table(&["column", "type", "nullable"]);
            for f in schema.fields() {
                t.add_row(vec![
                    f.name().clone(),
                    type_name(f.data_type()),
                    f.is_nullable().to_string(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
