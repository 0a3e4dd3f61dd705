//! Shared pieces of the config model: enums and stream options.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// How rows land in the destination table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Add the rows.
    #[default]
    Append,
    /// Replace the table's contents with this run's rows (one atomic commit).
    Overwrite,
    /// Upsert on `primary_key`: update rows whose key exists, insert the rest.
    Merge,
}

impl fmt::Display for WriteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteMode::Append => "append",
            WriteMode::Overwrite => "overwrite",
            WriteMode::Merge => "merge",
        })
    }
}

/// What to do with a record that cannot be read or typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Stop the stream with an error naming file, line, column and value.
    #[default]
    Fail,
    /// Write the record with its reason to `<table>__quarantine` and go on.
    Quarantine,
}

/// Whether a stream reads everything every time or only what is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    /// Read everything every run.
    Full,
    /// Read only what is new since the last committed state: new or changed
    /// files, or rows past the `cursor` bookmark.
    #[default]
    Incremental,
}

/// What a schema change in the incoming data does to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnSchemaChange {
    /// Apply the written rules: add columns, widen safely, refuse the rest.
    #[default]
    Evolve,
    /// Refuse any change.
    Fail,
}

/// Options every stream has, at any layer. `None` means "inherit".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamOptions {
    /// Columns that identify a row; required by `write_mode: merge`.
    pub primary_key: Option<Vec<String>>,
    /// How rows land: `append` (default), `overwrite` or `merge`.
    pub write_mode: Option<WriteMode>,
    /// Bad records: `fail` (default) or `quarantine`.
    pub on_error: Option<OnError>,
    /// `incremental` (default) or `full`.
    pub replication: Option<Replication>,
    /// Bookmark column for incremental replication by value.
    pub cursor: Option<String>,
    /// Name of a destination in `destinations:`; the lake by default.
    pub destination: Option<String>,
    /// Target table as `schema.table` (default `<source>.<stream>`).
    pub table: Option<String>,
    /// `evolve` (default) or `fail`.
    pub on_schema_change: Option<OnSchemaChange>,
    /// Let a column widen to string when its values stop fitting its type.
    pub widen_to_string: Option<bool>,
    /// Data-quality checks on the stream's table (each layer adds its own).
    pub checks: crate::config::CheckList,
    /// What failing row checks do during a load: `stop` (default),
    /// `quarantine` or `warn`.
    pub on_fail: Option<crate::config::OnFail>,
}

impl StreamOptions {
    /// `over` wins where it says something.
    pub fn overlay(&self, over: &StreamOptions) -> StreamOptions {
        StreamOptions {
            primary_key: over
                .primary_key
                .clone()
                .or_else(|| self.primary_key.clone()),
            write_mode: over.write_mode.or(self.write_mode),
            on_error: over.on_error.or(self.on_error),
            replication: over.replication.or(self.replication),
            cursor: over.cursor.clone().or_else(|| self.cursor.clone()),
            destination: over
                .destination
                .clone()
                .or_else(|| self.destination.clone()),
            table: over.table.clone().or_else(|| self.table.clone()),
            on_schema_change: over.on_schema_change.or(self.on_schema_change),
            widen_to_string: over.widen_to_string.or(self.widen_to_string),
            checks: self
                .checks
                .iter()
                .chain(over.checks.iter())
                .cloned()
                .collect(),
            on_fail: over.on_fail.or(self.on_fail),
        }
    }
}

/// Declares a config struct that carries the [`StreamOptions`] keys next to
/// its own, so that unknown keys are still refused (serde's `flatten` would
/// lose both `deny_unknown_fields` and error locations).
macro_rules! with_stream_options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Columns that identify a row; required by `write_mode: merge`.
            #[serde(default, deserialize_with = "crate::config::one_or_many_opt")]
            pub primary_key: Option<Vec<String>>,
            /// How rows land: `append` (default), `overwrite` or `merge`.
            #[serde(default)]
            pub write_mode: Option<$crate::config::WriteMode>,
            /// Bad records: `fail` (default) or `quarantine`.
            #[serde(default)]
            pub on_error: Option<$crate::config::OnError>,
            /// `incremental` (default) or `full`.
            #[serde(default)]
            pub replication: Option<$crate::config::Replication>,
            /// Bookmark column for incremental replication by value.
            #[serde(default)]
            pub cursor: Option<String>,
            /// Name of a destination in `destinations:`; the lake by default.
            #[serde(default)]
            pub destination: Option<String>,
            /// Target table as `schema.table` (default `<source>.<stream>`).
            #[serde(default)]
            pub table: Option<String>,
            /// `evolve` (default) or `fail`.
            #[serde(default)]
            pub on_schema_change: Option<$crate::config::OnSchemaChange>,
            /// Let a column widen to string when its values stop fitting its type.
            #[serde(default)]
            pub widen_to_string: Option<bool>,
            /// Data-quality checks on the stream's table (docs/quality.md).
            #[serde(default)]
            pub checks: $crate::config::CheckList,
            /// What failing row checks do during a load: `stop` (default),
            /// `quarantine` or `warn`.
            #[serde(default)]
            pub on_fail: Option<$crate::config::OnFail>,
        }

        impl $name {
            /// The stream options set at this level.
            pub fn stream_options(&self) -> $crate::config::StreamOptions {
                $crate::config::StreamOptions {
                    primary_key: self.primary_key.clone(),
                    write_mode: self.write_mode,
                    on_error: self.on_error,
                    replication: self.replication,
                    cursor: self.cursor.clone(),
                    destination: self.destination.clone(),
                    table: self.table.clone(),
                    on_schema_change: self.on_schema_change,
                    widen_to_string: self.widen_to_string,
                    checks: self.checks.clone(),
                    on_fail: self.on_fail,
                }
            }
        }
    };
}
pub(crate) use with_stream_options;

/// Settings every stream inherits (`defaults:`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Default write mode.
    #[serde(default)]
    pub write_mode: Option<WriteMode>,
    /// Default handling of bad records.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Default replication.
    #[serde(default)]
    pub replication: Option<Replication>,
    /// Default destination (a name in `destinations:`).
    #[serde(default)]
    pub destination: Option<String>,
    /// Default schema-change behaviour.
    #[serde(default)]
    pub on_schema_change: Option<OnSchemaChange>,
    /// Default for `widen_to_string`.
    #[serde(default)]
    pub widen_to_string: Option<bool>,
    /// Default for `on_fail` (what failing row checks do during a load).
    #[serde(default)]
    pub on_fail: Option<crate::config::OnFail>,
    /// Rows per Arrow batch (default 65,536).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Streams loaded at the same time (default 2).
    #[serde(default)]
    pub parallelism: Option<usize>,
}

impl Defaults {
    /// The stream options these defaults set.
    pub fn stream_options(&self) -> StreamOptions {
        StreamOptions {
            write_mode: self.write_mode,
            on_error: self.on_error,
            replication: self.replication,
            destination: self.destination.clone(),
            on_schema_change: self.on_schema_change,
            widen_to_string: self.widen_to_string,
            on_fail: self.on_fail,
            ..Default::default()
        }
    }
}

/// Where the lake lives (`lake:`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// A folder (relative to the project), a `file:///abs/path` or a
    /// `memory://` URL. Default `.sluice/lake`. (Object stores such as
    /// `s3://` are refused with a clear error until they are built in.)
    #[serde(default)]
    pub url: Option<String>,
    /// Object-store options, passed to the store; values may use `${VAR}`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Accepts `x` or `[x, y]` for a list of strings, keeping error locations.
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// [`one_or_many`] for optional fields.
pub fn one_or_many_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}
