//! Lineage across loads and models: which Sluice stream loads the table a
//! dbt `source()` reads, so `source('raw', 'orders')` joins the stream
//! `raw.orders` that lands it.
//!
//! Two ways to know, in order:
//! 1. `sluice.yml`: a `files` source's streams name their tables, and the
//!    destination they land in (the project's lake, or a destination);
//! 2. the lake's history: the last commit Sluice made to the table records
//!    its stream (covers database and Singer sources, whose streams are
//!    discovered at run time).

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;
use sluice_core::TableName;
use sluice_core::config::DestinationConfig;
use sluice_lake::Lake;
use sluice_transform::manifest::SourceNode;

use crate::project::Project;

/// How a stream was found to load a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownFrom {
    /// A stream of `sluice.yml` lands in the table.
    Config,
    /// The table's last Sluice commit was made by the stream.
    History,
}

/// The stream that loads one dbt source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLoad {
    /// `<source>.<stream>`.
    pub stream: String,
    /// How it is known.
    pub known_from: KnownFrom,
}

/// Where the models run, as far as loads are concerned: the place a
/// stream's `destination:` must name for its tables to be the engine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The project's lake (streams without `destination:`).
    ProjectLake,
    /// The destination of this name.
    Destination(String),
}

/// `schema.table` in lower case, the way both sides are compared.
fn key(schema: &str, table: &str) -> (String, String) {
    (schema.to_lowercase(), table.to_lowercase())
}

/// Every source of `sources` that a stream of `project` loads into `place`,
/// by `(source_name, table_name)`. `lake` (the engine's lake, when it is
/// one) is read for tables the configuration does not name.
pub async fn source_loads(
    project: &Project,
    place: &Place,
    lake: Option<&Lake>,
    sources: &IndexMap<(String, String), SourceNode>,
) -> BTreeMap<(String, String), SourceLoad> {
    let mut out = BTreeMap::new();
    if sources.is_empty() {
        return out;
    }
    let config = project.config();
    // 1. Streams the configuration spells out.
    let mut by_table: HashMap<(String, String), String> = HashMap::new();
    for (name, source) in &config.sources.0 {
        if !source.has_static_streams() {
            continue;
        }
        let Ok(streams) = config.streams(name) else {
            continue;
        };
        for spec in streams {
            let lands = match (&spec.destination, place) {
                (None, Place::ProjectLake) => Some(spec.table.clone()),
                (Some(d), Place::Destination(p)) if d == p => match config.destinations.0.get(d) {
                    Some(DestinationConfig::Postgres(pg)) => Some(TableName {
                        schema: pg.schema.clone().unwrap_or(spec.table.schema.clone()),
                        name: spec.table.name.clone(),
                    }),
                    Some(DestinationConfig::Lake(_)) => Some(spec.table.clone()),
                    _ => None,
                },
                _ => None,
            };
            if let Some(t) = lands {
                by_table
                    .entry(key(&t.schema, &t.name))
                    .or_insert_with(|| spec.id());
            }
        }
    }
    for (k, s) in sources {
        if let Some(stream) = by_table.get(&key(&s.relation.schema, &s.relation.identifier)) {
            out.insert(
                k.clone(),
                SourceLoad {
                    stream: stream.clone(),
                    known_from: KnownFrom::Config,
                },
            );
        }
    }
    // 2. The lake's record of who wrote each remaining table.
    if let Some(lake) = lake {
        for (k, s) in sources {
            if out.contains_key(k) {
                continue;
            }
            let table = TableName::new(&s.relation.schema, &s.relation.identifier);
            // A table that is not there (yet) has no loader to name.
            let Ok(info) = lake.info(&table).await else {
                continue;
            };
            if let Some(stream) = info.last_stream.filter(|s| !s.starts_with("transform:")) {
                out.insert(
                    k.clone(),
                    SourceLoad {
                        stream,
                        known_from: KnownFrom::History,
                    },
                );
            }
        }
    }
    out
}
