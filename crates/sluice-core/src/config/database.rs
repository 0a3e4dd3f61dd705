//! Database sources (`type: postgres | mysql | sqlite`) and the PostgreSQL
//! destination.
//!
//! A database source's streams are its tables: which ones comes from
//! `include` / `exclude` patterns matched against the database's catalog at
//! run time (discovery), so unlike `files` sources they are not all written
//! in `sluice.yml`. `streams.<name>:` entries refine the discovered streams.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::model::with_stream_options;

/// Which database a [`DatabaseSource`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseKind {
    /// PostgreSQL (tokio-postgres, binary COPY).
    Postgres,
    /// MySQL or MariaDB (mysql_async).
    Mysql,
    /// A SQLite file (rusqlite).
    Sqlite,
}

impl DatabaseKind {
    /// The `type:` of the source.
    pub fn name(self) -> &'static str {
        match self {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "mysql",
            DatabaseKind::Sqlite => "sqlite",
        }
    }
}

with_stream_options! {
    /// `type: postgres | mysql | sqlite`: the tables of a database.
    ///
    /// ```yaml
    /// sources:
    ///   app:
    ///     type: postgres
    ///     url: ${APP_DB_URL}
    ///     include: [public.orders, public.customers]
    ///     streams:
    ///       orders: { replication: incremental, cursor: updated_at, primary_key: [id], write_mode: merge }
    /// ```
    pub struct DatabaseSource {
        /// `postgres`, `mysql` (or `mariadb`) or `sqlite`.
        #[serde(rename = "type")]
        pub kind: String,
        /// Connection URL (`postgres://user:pass@host:5432/db`,
        /// `mysql://user:pass@host:3306/db`); use `${VAR}` for secrets.
        #[serde(default)]
        pub url: Option<String>,
        /// SQLite: the database file, relative to the project.
        #[serde(default)]
        pub path: Option<String>,
        /// Tables to read, as `schema.table` patterns (`*`, `?` wildcards;
        /// a bare `table` means the default schema). Default: every table of
        /// every non-system schema (MySQL: of the URL's database).
        #[serde(default, deserialize_with = "crate::config::one_or_many_opt")]
        pub include: Option<Vec<String>>,
        /// Tables to leave out, same patterns.
        #[serde(default, deserialize_with = "crate::config::one_or_many_opt")]
        pub exclude: Option<Vec<String>>,
        /// Connections used at once by this source (tables and key ranges
        /// read in parallel; default 2).
        #[serde(default)]
        pub max_connections: Option<usize>,
        /// Per-stream settings; a stream is named after its table.
        #[serde(default)]
        pub streams: IndexMap<String, DatabaseStream>,
    }
}

with_stream_options! {
    /// One table of a database source (`streams.<name>:`).
    pub struct DatabaseStream {
        /// Column types to read instead of the mapped ones (`amount: string`
        /// reads a column as text); see docs/config.md for the type names.
        #[serde(default)]
        pub columns: IndexMap<String, String>,
        /// Read the table as key ranges in parallel.
        #[serde(default)]
        pub split: Option<SplitConfig>,
    }
}

/// `split:` — read a large table as `ranges` key ranges, in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// An integer column (usually the primary key) to cut ranges on.
    pub column: String,
    /// How many ranges (default: the source's `max_connections`).
    #[serde(default)]
    pub ranges: Option<usize>,
}

impl DatabaseSource {
    /// Check what can be checked without the database; errors name the source.
    pub fn validate(&self, source: &str, kind: DatabaseKind) -> Result<(), String> {
        match kind {
            DatabaseKind::Postgres | DatabaseKind::Mysql => {
                if self.url.is_none() {
                    let example = if kind == DatabaseKind::Postgres {
                        "postgres://user@localhost:5432/app"
                    } else {
                        "mysql://user@localhost:3306/app"
                    };
                    return Err(format!(
                        "source `{source}` has no `url`; add `url: ${{APP_DB_URL}}` and put the URL ({example}) in the environment or `.env`"
                    ));
                }
                if self.path.is_some() {
                    return Err(format!(
                        "source `{source}`: `path` is for `type: sqlite`; remove `path` and use `url`"
                    ));
                }
            }
            DatabaseKind::Sqlite => {
                if self.path.is_none() && self.url.is_none() {
                    return Err(format!(
                        "source `{source}` has no `path`; add `path: data/app.db` (the SQLite file, relative to the project)"
                    ));
                }
            }
        }
        if self.max_connections == Some(0) {
            return Err(format!(
                "source `{source}`: `max_connections` must be at least 1"
            ));
        }
        for (name, s) in &self.streams {
            if let Some(split) = &s.split
                && split.ranges == Some(0)
            {
                return Err(format!(
                    "stream `{source}.{name}`: `split.ranges` must be at least 1"
                ));
            }
            for (col, ty) in &s.columns {
                crate::types::parse_type(ty)
                    .map_err(|e| format!("stream `{source}.{name}`, column `{col}`: {e}"))?;
            }
        }
        Ok(())
    }
}

/// `type: postgres` destination: tables in a PostgreSQL database.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresDestination {
    /// Always `postgres`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Connection URL; use `${VAR}` for secrets.
    pub url: String,
    /// Schema the tables land in (default: the stream's schema, i.e. the
    /// source name or the schema part of `table:`).
    #[serde(default)]
    pub schema: Option<String>,
}
