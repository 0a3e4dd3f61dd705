//! What a database source needs to know about each stream at read time,
//! layered like everywhere else: `defaults:` < source keys < `streams.<name>`.

use arrow::datatypes::DataType;
use indexmap::IndexMap;
use sluice_core::config::{
    DatabaseSource, DatabaseStream, Replication, SplitConfig, StreamOptions,
};
use sluice_core::connector::ConnectorError;

/// The settings of one stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSettings {
    /// Bookmark column (incremental replication).
    pub cursor: Option<String>,
    /// `full` (the default without a cursor) or `incremental`.
    pub replication: Replication,
    /// Declared column types (`columns:`).
    pub columns: Vec<(String, DataType)>,
    /// Key-range split.
    pub split: Option<SplitConfig>,
}

/// The per-stream settings of a database source.
#[derive(Debug, Clone)]
pub struct DbSettings {
    source: String,
    base: StreamOptions,
    streams: IndexMap<String, DatabaseStream>,
}

impl DbSettings {
    /// From the source's config and the project's `defaults:` options.
    pub fn new(source: &str, config: &DatabaseSource, defaults: &StreamOptions) -> DbSettings {
        DbSettings {
            source: source.to_string(),
            base: defaults.overlay(&config.stream_options()),
            streams: config.streams.clone(),
        }
    }

    /// The settings of stream `name`.
    pub fn stream(&self, name: &str) -> Result<StreamSettings, ConnectorError> {
        let own = self.streams.get(name);
        let options = match own {
            Some(s) => self.base.overlay(&s.stream_options()),
            None => self.base.clone(),
        };
        let replication = options.replication.unwrap_or(if options.cursor.is_some() {
            Replication::Incremental
        } else {
            Replication::Full
        });
        let mut columns = Vec::new();
        for (col, ty) in own.map(|s| &s.columns).into_iter().flatten() {
            let dt = sluice_core::types::parse_type(ty).map_err(|e| {
                ConnectorError::config(
                    format!("Stream `{}.{name}`, column `{col}`: {e}", self.source),
                    None,
                )
            })?;
            columns.push((col.clone(), dt));
        }
        Ok(StreamSettings {
            cursor: options.cursor,
            replication,
            columns,
            split: own.and_then(|s| s.split.clone()),
        })
    }

    /// `streams:` entries must name discovered streams (a typo would
    /// otherwise silently configure nothing).
    pub fn check_known(&self, discovered: &[String]) -> Result<(), ConnectorError> {
        for name in self.streams.keys() {
            if !discovered.iter().any(|d| d == name) {
                let hint = match sluice_core::config::suggest::did_you_mean(
                    name,
                    discovered.iter().map(String::as_str),
                ) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!(
                        "the source's streams are: {}; check `include`/`exclude`",
                        if discovered.is_empty() {
                            "(none)".to_string()
                        } else {
                            discovered.join(", ")
                        }
                    ),
                };
                return Err(ConnectorError::config(
                    format!(
                        "Source `{}`: `streams.{name}` matches no selected table",
                        self.source
                    ),
                    Some(hint),
                ));
            }
        }
        Ok(())
    }
}
