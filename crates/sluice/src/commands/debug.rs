//! `sluice debug` (check the project and every connector) and `sluice connectors`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::output::{Reporter, table};
use crate::project::Project;
use crate::registry::{Role, build_destination, build_source, registry};

/// Validate the project and run every connector's health check.
pub async fn debug(dir: Option<&Path>, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let mut checks = vec![(
        "project".to_string(),
        Ok(format!("{} is valid", project.loaded.file.display())),
    )];
    for name in project.config().sources.0.keys() {
        let result = match build_source(&project, name) {
            Ok(s) => s.check().await.map_err(anyhow::Error::new),
            Err(e) => Err(e),
        };
        checks.push((format!("source {name}"), result));
    }
    let mut dest_names: Vec<Option<String>> = vec![None];
    dest_names.extend(project.config().destinations.0.keys().cloned().map(Some));
    for name in dest_names {
        let label = format!(
            "destination {}",
            name.as_deref().unwrap_or("lake (default)")
        );
        let result = match build_destination(&project, name.as_deref()) {
            Ok(d) => d.check().await.map_err(anyhow::Error::new),
            Err(e) => Err(e),
        };
        checks.push((label, result));
    }
    let failed = checks.iter().filter(|(_, r)| r.is_err()).count();
    if reporter.json() {
        let out: Vec<_> = checks
            .iter()
            .map(|(what, r)| match r {
                Ok(m) => json!({"check": what, "ok": true, "message": project.redact(m)}),
                Err(e) => json!({"check": what, "ok": false, "message": project.redact(&e.to_string()), "hint": crate::output::hint_of(e)}),
            })
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut t = table(&["check", "result", "details"]);
        for (what, r) in &checks {
            match r {
                Ok(m) => t.add_row(vec![what.clone(), "ok".into(), project.redact(m)]),
                Err(e) => {
                    let hint = crate::output::hint_of(e)
                        .map(|h| format!("\nhint: {h}"))
                        .unwrap_or_default();
                    t.add_row(vec![
                        what.clone(),
                        "FAILED".into(),
                        project.redact(&format!("{e}{hint}")),
                    ])
                }
            };
        }
        crate::outln!("{t}");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// List the built-in connectors.
pub fn connectors(reporter: &Reporter) -> Result<ExitCode> {
    let entries = registry();
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["type", "role", "write modes", "delivery", "what"]);
    for e in entries {
        t.add_row(vec![
            e.kind.to_string(),
            match e.role {
                Role::Source => "source".into(),
                Role::Destination => "destination".into(),
            },
            e.modes.to_string(),
            e.delivery.to_string(),
            e.about.to_string(),
        ]);
    }
    crate::outln!("{t}");
    Ok(ExitCode::SUCCESS)
}
