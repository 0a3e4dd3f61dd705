//! Which streams a command runs: static ones from `sluice.yml` (`files`
//! sources), discovered ones from the database (database sources), filtered
//! by `--select` / `extract`'s arguments.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use sluice_core::config::{Discovered, StreamSpec};
use sluice_core::connector::{ConnectorError, Source};

use crate::output::UserError;
use crate::project::Project;
use crate::registry::{build_source, unknown_source};

/// Which streams to run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `source` or `source.stream` patterns; empty selects all.
    pub patterns: Vec<String>,
    /// Only this source (`sluice extract SOURCE`).
    pub source: Option<String>,
}

impl Selection {
    fn wants_source(&self, source: &str) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && (self.patterns.is_empty()
                || self
                    .patterns
                    .iter()
                    .any(|p| p == source || p.split_once('.').is_some_and(|(s, _)| s == source)))
    }

    fn wants(&self, spec: &StreamSpec) -> bool {
        self.patterns.is_empty()
            || self
                .patterns
                .iter()
                .any(|p| *p == spec.source || *p == spec.id())
    }
}

/// The streams to run and the sources that read them.
pub struct Planned {
    /// Streams, in project order.
    pub specs: Vec<StreamSpec>,
    /// Built sources by name.
    pub sources: HashMap<String, Arc<dyn Source>>,
}

/// Resolve the selection: builds the selected sources and discovers the
/// streams of database sources (this connects to them).
pub async fn plan(project: &Project, selection: &Selection) -> Result<Planned> {
    let config = project.config();
    if let Some(source) = &selection.source
        && !config.sources.0.contains_key(source)
    {
        return Err(unknown_source(project, source));
    }
    let mut specs = Vec::new();
    let mut sources = HashMap::new();
    let mut known = Vec::new();
    for (name, source_config) in &config.sources.0 {
        if !selection.wants_source(name) {
            continue;
        }
        let source = build_source(project, name)?;
        if source_config.has_static_streams() {
            let all = config
                .streams(name)
                .map_err(|m| project.loaded.source_error(name, m))?;
            known.extend(all.iter().map(StreamSpec::id));
            specs.extend(all);
        } else {
            let streams = source
                .discover()
                .await
                .map_err(|e| locate(project, name, e))?;
            for info in streams {
                let spec = config
                    .resolve_stream(
                        name,
                        &info.name,
                        Discovered {
                            primary_key: &info.primary_key,
                            cursor: info.cursor.as_deref(),
                        },
                    )
                    .map_err(|m| project.loaded.source_error(name, m))?;
                known.push(spec.id());
                specs.push(spec);
            }
        }
        sources.insert(name.clone(), source);
    }
    let selected: Vec<StreamSpec> = specs.into_iter().filter(|s| selection.wants(s)).collect();
    if selected.is_empty() {
        return Err(if config.sources.0.is_empty() {
            UserError::error(
                "The project has no sources",
                Some(
                    "add one under `sources:` in sluice.yml (see `sluice init` for an example)"
                        .to_string(),
                ),
            )
        } else if known.is_empty() {
            UserError::error(
                "The selected sources have no streams",
                Some(
                    "check `include`/`exclude` of database sources and `path` of files sources"
                        .to_string(),
                ),
            )
        } else {
            UserError::error(
                format!("Nothing matches {}", selection.patterns.join(", ")),
                Some(format!("the streams: {}", known.join(", "))),
            )
        });
    }
    Ok(Planned {
        specs: selected,
        sources,
    })
}

/// A source's configuration mistake, pointed at its entry in `sluice.yml`.
pub fn locate(project: &Project, source: &str, e: ConnectorError) -> anyhow::Error {
    match e {
        ConnectorError::Config { message, hint } => {
            let mut located = project.loaded.source_error(source, message);
            located.hint = hint.or(located.hint);
            anyhow::Error::new(located)
        }
        other => anyhow::Error::new(other),
    }
}
