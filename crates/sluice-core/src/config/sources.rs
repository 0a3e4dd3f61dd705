//! Sources, destinations and the project as a whole.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::model::{Defaults, LakeConfig, StreamOptions, with_stream_options};
use super::{
    CheckList, DatabaseKind, DatabaseSource, JobConfig, OnError, OnFail, OnSchemaChange,
    OrchestrationConfig, PostgresDestination, Replication, SingerDestination, SingerSource,
    WriteMode,
};
use crate::TableName;
use crate::evolution::EvolutionPolicy;
use crate::names::{sanitize_identifier, validate_identifier};

/// The whole `sluice.yml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Project name (defaults to the folder's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Where the lake lives.
    #[serde(default)]
    pub lake: LakeConfig,
    /// Settings every stream inherits.
    #[serde(default)]
    pub defaults: Defaults,
    /// Systems to read, by name. A stream of source `s` lands as table `s.<stream>`.
    #[serde(default)]
    pub sources: Sources,
    /// Places other than the lake where streams may land, by name.
    #[serde(default)]
    pub destinations: Destinations,
    /// The dbt project `sluice transform` runs, and on which engine.
    #[serde(default)]
    pub transform: Option<TransformConfig>,
    /// Data-quality checks on tables, by table (`schema.table` in the lake,
    /// models included; `<destination>:schema.table` for a PostgreSQL
    /// destination's). Streams carry their own `checks:` too.
    #[serde(default)]
    pub checks: IndexMap<String, CheckList>,
    /// Named selections of assets, run by `sluice run JOB` and scheduled
    /// by `sluice serve`.
    #[serde(default)]
    pub jobs: IndexMap<String, JobConfig>,
    /// How runs execute: limits, pools, retries, timeouts.
    #[serde(default)]
    pub orchestration: OrchestrationConfig,
}

/// `transform:`: the dbt project of this Sluice project and the engine it
/// runs on, in place of a `profiles.yml`.
///
/// ```yaml
/// transform:
///   project_dir: transform   # the dbt project, relative to sluice.yml
///   engine: warehouse        # `lake` (default) or a `type: postgres` destination
///   schema: analytics        # dbt's target.schema
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// The folder holding `dbt_project.yml`, relative to `sluice.yml`
    /// (default: the same folder).
    #[serde(default)]
    pub project_dir: Option<String>,
    /// `lake` (the project's lake, the default) or the name of a
    /// `type: postgres` destination whose database runs the models.
    #[serde(default)]
    pub engine: Option<String>,
    /// dbt's `target.schema`: where models land unless they set a schema
    /// (default `main` on the lake; on PostgreSQL the destination's
    /// `schema:`, else `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// dbt's `target.name` (default `dev`).
    #[serde(default)]
    pub target: Option<String>,
    /// dbt's `target.threads` (default 4).
    #[serde(default)]
    pub threads: Option<u32>,
}

/// `sources:`: name → source, in file order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sources(pub IndexMap<String, SourceConfig>);

/// `destinations:`: name → destination, in file order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Destinations(pub IndexMap<String, DestinationConfig>);

/// One source. The `type` key picks the variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SourceConfig {
    /// `type: files`: CSV, JSON Lines or Parquet files on local disk.
    Files(FilesSource),
    /// `type: postgres | mysql | sqlite`: the tables of a database.
    Database(DatabaseKind, DatabaseSource),
    /// `type: singer`: a Singer tap.
    Singer(SingerSource),
}

impl SourceConfig {
    /// Every `type:` a source may have (`mariadb` is `mysql`).
    pub const KINDS: &'static [&'static str] =
        &["files", "postgres", "mysql", "mariadb", "sqlite", "singer"];

    /// The `type:` of this source.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Files(_) => "files",
            SourceConfig::Database(k, _) => k.name(),
            SourceConfig::Singer(_) => "singer",
        }
    }

    /// True when the streams are written in `sluice.yml` (files); false when
    /// they come from discovering the source (databases, Singer taps).
    pub fn has_static_streams(&self) -> bool {
        matches!(self, SourceConfig::Files(_))
    }
}

/// One destination. The `type` key picks the variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DestinationConfig {
    /// `type: lake`: Delta tables at another location than the project's lake.
    Lake(LakeDestination),
    /// `type: parquet` / `csv` / `jsonl`: one folder of files per table.
    Files(FileDestination),
    /// `type: postgres`: tables in a PostgreSQL database.
    Postgres(PostgresDestination),
    /// `type: singer`: a Singer target.
    Singer(SingerDestination),
}

impl DestinationConfig {
    /// Every `type:` a destination may have.
    pub const KINDS: &'static [&'static str] =
        &["lake", "parquet", "csv", "jsonl", "postgres", "singer"];

    /// The `type:` of this destination.
    pub fn kind(&self) -> &str {
        match self {
            DestinationConfig::Lake(_) => "lake",
            DestinationConfig::Files(f) => f.kind.as_str(),
            DestinationConfig::Postgres(_) => "postgres",
            DestinationConfig::Singer(_) => "singer",
        }
    }
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma-separated values (RFC 4180, with options).
    Csv,
    /// JSON Lines: one JSON object per line.
    #[serde(alias = "json", alias = "ndjson")]
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// Guess the format from a path's extension (`.csv`, `.tsv`, `.jsonl`,
    /// `.ndjson`, `.json`, `.parquet`; a trailing `.gz` is not supported).
    pub fn from_path(path: &str) -> Option<FileFormat> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        match ext {
            "csv" | "tsv" | "txt" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::Jsonl),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }

    /// The usual extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// CSV dialect (`csv:`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// The first record holds the column names (default true). Without a
    /// header, columns are named `column_1`, `column_2`, ….
    pub header: bool,
    /// Field separator (default `,`; use `"\t"` for TSV).
    pub delimiter: char,
    /// Quote character (default `"`).
    pub quote: char,
    /// Escape character inside quoted fields (default none: quotes are doubled).
    pub escape: Option<char>,
    /// `""` inside a quoted field is one `"` (default true).
    pub double_quote: bool,
    /// Lines starting with this character are skipped.
    pub comment: Option<char>,
    /// Texts that mean NULL (default: the empty field).
    pub null_values: Vec<String>,
    /// Lines to skip before the header (default 0).
    pub skip_lines: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: ',',
            quote: '"',
            escape: None,
            double_quote: true,
            comment: None,
            null_values: vec![String::new()],
            skip_lines: 0,
        }
    }
}

/// How nested JSON objects and arrays become columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NestedMode {
    /// Arrow structs and lists (queryable as `col.field`).
    #[default]
    Struct,
    /// A string column holding the JSON text.
    Json,
}

/// JSON Lines options (`json:`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonOptions {
    /// `struct` (default) or `json` (keep nested values as JSON text).
    pub nested: NestedMode,
}

with_stream_options! {
    /// `type: files`: CSV, JSON Lines or Parquet files matched by glob patterns.
    ///
    /// ```yaml
    /// sources:
    ///   shop:
    ///     type: files
    ///     format: csv                 # or jsonl, parquet; guessed from the extension
    ///     path: data/orders*.csv      # one pattern or a list, relative to the project
    ///     stream: orders              # default: from the file name
    ///     primary_key: [id]
    ///     write_mode: merge
    ///     on_error: quarantine
    /// ```
    pub struct FilesSource {
        /// Always `files`.
        #[serde(rename = "type")]
        pub kind: String,
        /// `csv`, `jsonl` or `parquet` (default: from the path's extension).
        #[serde(default)]
        pub format: Option<FileFormat>,
        /// Glob pattern(s) of the files, relative to the project folder.
        #[serde(default, deserialize_with = "crate::config::one_or_many_opt")]
        pub path: Option<Vec<String>>,
        /// Stream name when the source has one stream (default: from the file name).
        #[serde(default)]
        pub stream: Option<String>,
        /// Declared column types (`amount: decimal(12,2)`); others are inferred.
        #[serde(default)]
        pub columns: IndexMap<String, String>,
        /// Rows sampled to infer types (default 10,000).
        #[serde(default)]
        pub infer_rows: Option<usize>,
        /// CSV dialect.
        #[serde(default)]
        pub csv: Option<CsvOptions>,
        /// JSON Lines options.
        #[serde(default)]
        pub json: Option<JsonOptions>,
        /// Several streams, each with its own `path` and options.
        #[serde(default)]
        pub streams: IndexMap<String, FilesStream>,
    }
}

with_stream_options! {
    /// One stream of a `files` source (`streams.<name>:`); unset keys come from the source.
    pub struct FilesStream {
        /// Format of this stream's files.
        #[serde(default)]
        pub format: Option<FileFormat>,
        /// Glob pattern(s).
        #[serde(default, deserialize_with = "crate::config::one_or_many_opt")]
        pub path: Option<Vec<String>>,
        /// Declared column types.
        #[serde(default)]
        pub columns: IndexMap<String, String>,
        /// Rows sampled to infer types.
        #[serde(default)]
        pub infer_rows: Option<usize>,
        /// CSV dialect.
        #[serde(default)]
        pub csv: Option<CsvOptions>,
        /// JSON Lines options.
        #[serde(default)]
        pub json: Option<JsonOptions>,
    }
}

/// A `files` stream with every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesStreamSpec {
    /// Format.
    pub format: FileFormat,
    /// Glob patterns, relative to the project folder.
    pub paths: Vec<String>,
    /// Declared column types.
    pub columns: IndexMap<String, String>,
    /// Rows sampled for inference.
    pub infer_rows: usize,
    /// CSV dialect.
    pub csv: CsvOptions,
    /// JSON options.
    pub json: JsonOptions,
}

impl FilesSource {
    /// The streams of this source with their file settings (`streams:` entries
    /// inherit the source-level keys). Errors name the stream.
    pub fn file_streams(
        &self,
        source: &str,
    ) -> Result<IndexMap<String, (FilesStreamSpec, StreamOptions)>, String> {
        let mut out = IndexMap::new();
        let base = self.stream_options();
        if self.streams.is_empty() {
            let paths = self.path.clone().ok_or_else(|| {
                format!("source `{source}` has no `path`; add `path: data/*.csv` (a glob, relative to the project), or list `streams:` with their own paths")
            })?;
            let name = match &self.stream {
                Some(s) => s.clone(),
                None => stream_name_from_path(&paths[0]).unwrap_or_else(|| source.to_string()),
            };
            let spec = self.spec(
                source,
                &name,
                paths,
                self.format,
                &self.columns,
                self.infer_rows,
                &self.csv,
                &self.json,
            )?;
            out.insert(name, (spec, base));
            return Ok(out);
        }
        if self.stream.is_some() {
            return Err(format!(
                "source `{source}` sets both `stream` and `streams`; name each stream under `streams:` instead"
            ));
        }
        for (name, s) in &self.streams {
            let paths = s.path.clone().or_else(|| self.path.clone()).ok_or_else(|| {
                format!("stream `{source}.{name}` has no `path`; add `path:` to the stream or the source")
            })?;
            let mut columns = self.columns.clone();
            columns.extend(s.columns.clone());
            let csv = s.csv.clone().or_else(|| self.csv.clone());
            let json = s.json.clone().or_else(|| self.json.clone());
            let spec = self.spec(
                source,
                name,
                paths,
                s.format.or(self.format),
                &columns,
                s.infer_rows.or(self.infer_rows),
                &csv,
                &json,
            )?;
            out.insert(name.clone(), (spec, base.overlay(&s.stream_options())));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn spec(
        &self,
        source: &str,
        stream: &str,
        paths: Vec<String>,
        format: Option<FileFormat>,
        columns: &IndexMap<String, String>,
        infer_rows: Option<usize>,
        csv: &Option<CsvOptions>,
        json: &Option<JsonOptions>,
    ) -> Result<FilesStreamSpec, String> {
        if paths.is_empty() {
            return Err(format!(
                "stream `{source}.{stream}`: `path` is an empty list"
            ));
        }
        let format = match format {
            Some(f) => f,
            None => FileFormat::from_path(&paths[0]).ok_or_else(|| {
                format!("stream `{source}.{stream}`: cannot tell the format of `{}` from its extension; add `format: csv` (or jsonl, parquet)", paths[0])
            })?,
        };
        for (col, ty) in columns {
            crate::types::parse_type(ty)
                .map_err(|e| format!("stream `{source}.{stream}`, column `{col}`: {e}"))?;
        }
        let mut csv = csv.clone().unwrap_or_default();
        if csv.delimiter == ',' && paths[0].to_ascii_lowercase().ends_with(".tsv") {
            csv.delimiter = '\t';
        }
        Ok(FilesStreamSpec {
            format,
            paths,
            columns: columns.clone(),
            infer_rows: infer_rows.unwrap_or(10_000).max(1),
            csv,
            json: json.clone().unwrap_or_default(),
        })
    }
}

/// `data/orders*.csv` → `orders`: the file name without extension and glob
/// characters, as an identifier.
pub fn stream_name_from_path(path: &str) -> Option<String> {
    let file = path.rsplit(['/', '\\']).next()?;
    let stem = file.split('.').next()?;
    let cleaned: String = stem.chars().filter(|c| !"*?[]{}".contains(*c)).collect();
    let cleaned = cleaned.trim_matches(|c: char| c == '_' || c == '-' || c == '.');
    if cleaned.is_empty() {
        None
    } else {
        Some(sanitize_identifier(cleaned))
    }
}

/// `type: lake` destination.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LakeDestination {
    /// Always `lake`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Folder (relative to the project), `file://` or `memory://` URL of the lake.
    pub url: String,
    /// Object-store options.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

/// `type: parquet | csv | jsonl` destination: a folder per table under `path`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileDestination {
    /// `parquet`, `csv` or `jsonl`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Folder (relative to the project) under which `<schema>/<table>/` folders are written.
    pub path: String,
    /// Parquet compression: `snappy` (default), `zstd`, `none`.
    #[serde(default)]
    pub compression: Option<String>,
}

impl FileDestination {
    /// The file format.
    pub fn format(&self) -> FileFormat {
        match self.kind.as_str() {
            "csv" => FileFormat::Csv,
            "jsonl" => FileFormat::Jsonl,
            _ => FileFormat::Parquet,
        }
    }
}

/// What discovery found about a stream, for [`ProjectConfig::resolve_stream`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Discovered<'a> {
    /// The table's primary key (a Singer stream's `key_properties`).
    pub primary_key: &'a [String],
    /// The column the source itself bookmarks on (a Singer stream's
    /// replication key), used when the stream sets no `cursor`.
    pub cursor: Option<&'a str>,
}

/// The checks a stream declares (see [`ProjectConfig::stream_checks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredChecks {
    /// `<source>.<stream>`.
    pub stream: String,
    /// Its table.
    pub table: TableName,
    /// Its destination; `None` is the lake.
    pub destination: Option<String>,
    /// The checks.
    pub checks: CheckList,
}

/// A stream with every option resolved: what the engine runs.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    /// Source name.
    pub source: String,
    /// Stream name.
    pub stream: String,
    /// Target table.
    pub table: TableName,
    /// Write mode.
    pub write_mode: WriteMode,
    /// Bad-record handling.
    pub on_error: OnError,
    /// Replication.
    pub replication: Replication,
    /// Cursor column, for incremental by value.
    pub cursor: Option<String>,
    /// Key columns.
    pub primary_key: Vec<String>,
    /// Destination name; `None` is the project's lake.
    pub destination: Option<String>,
    /// Schema-evolution rules.
    pub evolution: EvolutionPolicy,
    /// Rows per batch.
    pub batch_size: usize,
    /// Data-quality checks on the stream's table.
    pub checks: CheckList,
    /// What failing row checks do during the load.
    pub on_fail: OnFail,
}

impl StreamSpec {
    /// `<source>.<stream>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.source, self.stream)
    }
}

impl ProjectConfig {
    fn source(&self, source: &str) -> Result<&SourceConfig, String> {
        self.sources
            .0
            .get(source)
            .ok_or_else(|| format!("no source named `{source}`"))
    }

    /// The option layers of every stream of a `files` source, by stream name.
    pub fn stream_options(&self, source: &str) -> Result<IndexMap<String, StreamOptions>, String> {
        match self.source(source)? {
            SourceConfig::Files(f) => Ok(f
                .file_streams(source)?
                .into_iter()
                .map(|(k, (_, o))| (k, o))
                .collect()),
            SourceConfig::Database(..) => Err(format!(
                "the streams of source `{source}` come from its database (discovery)"
            )),
            SourceConfig::Singer(_) => Err(format!(
                "the streams of source `{source}` come from the tap's catalog (discovery)"
            )),
        }
    }

    /// Every stream of a source whose streams are written in `sluice.yml`
    /// (`files`), resolved and checked. Database sources: see
    /// [`ProjectConfig::resolve_stream`].
    pub fn streams(&self, source: &str) -> Result<Vec<StreamSpec>, String> {
        validate_identifier(source).map_err(|e| format!("source name: {e}"))?;
        let names: Vec<String> = self.stream_options(source)?.into_keys().collect();
        names
            .iter()
            .map(|name| self.resolve_stream(source, name, Discovered::default()))
            .collect()
    }

    /// Every stream of every `files` source, in file order (database sources
    /// need discovery and are left out).
    pub fn all_streams(&self) -> Result<Vec<StreamSpec>, String> {
        let mut all = Vec::new();
        for (name, source) in &self.sources.0 {
            if source.has_static_streams() {
                all.extend(self.streams(name)?);
            }
        }
        Ok(all)
    }

    /// Check a source's settings that need no I/O.
    pub fn validate_source(&self, source: &str) -> Result<(), String> {
        validate_identifier(source).map_err(|e| format!("source name: {e}"))?;
        match self.source(source)? {
            SourceConfig::Files(_) => self.streams(source).map(|_| ()),
            SourceConfig::Database(kind, db) => {
                db.validate(source, *kind)?;
                let base = self.defaults.stream_options().overlay(&db.stream_options());
                for (name, s) in &db.streams {
                    let o = base.overlay(&s.stream_options());
                    self.check_options(&format!("{source}.{name}"), &o)?;
                }
                self.check_options(source, &base)
            }
            SourceConfig::Singer(tap) => {
                tap.validate(source)?;
                let base = self
                    .defaults
                    .stream_options()
                    .overlay(&tap.stream_options());
                for (name, s) in &tap.streams {
                    let o = base.overlay(&s.stream_options());
                    self.check_options(&format!("{source}.{name}"), &o)?;
                }
                self.check_options(source, &base)
            }
        }
    }

    /// Resolve one stream: `defaults:` < source keys < `streams.<name>` keys,
    /// with what discovery found (the table's primary key, a Singer
    /// stream's key properties and replication key).
    ///
    /// Discovered streams (databases, Singer taps) get defaults that fit
    /// tables: no `cursor` means `replication: full` and `write_mode:
    /// overwrite` (a fresh copy each run); with a `cursor`, `incremental` and
    /// `merge` when a primary key is known (`append` otherwise).
    pub fn resolve_stream(
        &self,
        source: &str,
        stream: &str,
        discovered: Discovered<'_>,
    ) -> Result<StreamSpec, String> {
        let discovered_pk = discovered.primary_key;
        validate_identifier(stream)
            .map_err(|e| format!("stream name in source `{source}`: {e}"))?;
        let defaults = self.defaults.stream_options();
        let (options, database) = match self.source(source)? {
            SourceConfig::Files(_) => {
                let per = self.stream_options(source)?;
                let o = per
                    .get(stream)
                    .ok_or_else(|| format!("source `{source}` has no stream `{stream}`"))?;
                (defaults.overlay(o), false)
            }
            SourceConfig::Database(_, db) => {
                let mut o = defaults.overlay(&db.stream_options());
                if let Some(s) = db.streams.get(stream) {
                    o = o.overlay(&s.stream_options());
                }
                (o, true)
            }
            SourceConfig::Singer(tap) => {
                let mut o = defaults.overlay(&tap.stream_options());
                if let Some(s) = tap.streams.get(stream) {
                    o = o.overlay(&s.stream_options());
                }
                if o.cursor.is_none() && o.replication != Some(Replication::Full) {
                    o.cursor = discovered.cursor.map(str::to_string);
                }
                (o, true)
            }
        };
        let id = format!("{source}.{stream}");
        self.check_options(&id, &options)?;
        let table = match &options.table {
            Some(t) => {
                TableName::parse(t, source).map_err(|e| format!("stream `{id}`, `table`: {e}"))?
            }
            None => TableName::new(source, stream),
        };
        let primary_key = options
            .primary_key
            .clone()
            .unwrap_or_else(|| discovered_pk.to_vec());
        let replication = match (options.replication, database) {
            (Some(r), _) => r,
            (None, true) if options.cursor.is_none() => Replication::Full,
            (None, _) => Replication::Incremental,
        };
        let write_mode = match (options.write_mode, database, replication) {
            (Some(m), _, _) => m,
            (None, true, Replication::Full) => WriteMode::Overwrite,
            (None, true, Replication::Incremental) if !primary_key.is_empty() => WriteMode::Merge,
            (None, _, _) => WriteMode::Append,
        };
        if write_mode == WriteMode::Merge && primary_key.is_empty() {
            return Err(if database {
                format!(
                    "stream `{id}` has `write_mode: merge` but its table has no primary key; add `primary_key: [id]` to `streams.{stream}` (the columns that identify a row) or use `write_mode: append`"
                )
            } else {
                format!(
                    "stream `{id}` has `write_mode: merge` but no `primary_key`; add `primary_key: [id]` (the columns that identify a row) or use `write_mode: append`"
                )
            });
        }
        if options.cursor.is_some() && replication == Replication::Full {
            return Err(format!(
                "stream `{id}` has a `cursor` but `replication: full`; remove one of them"
            ));
        }
        Ok(StreamSpec {
            source: source.to_string(),
            stream: stream.to_string(),
            table,
            write_mode,
            on_error: options.on_error.unwrap_or_default(),
            replication,
            cursor: options.cursor.clone(),
            primary_key,
            destination: options.destination.clone().filter(|d| d != "lake"),
            evolution: EvolutionPolicy {
                widen_to_string: options.widen_to_string.unwrap_or(false),
                frozen: options.on_schema_change == Some(OnSchemaChange::Fail),
            },
            batch_size: self.defaults.batch_size.unwrap_or(65_536).max(1),
            checks: options.checks.clone(),
            on_fail: options.on_fail.unwrap_or_default(),
        })
    }

    /// Where a stream lands — its table and destination name — without the
    /// checks that need discovery (for `sluice state`, which must work
    /// without reaching the database).
    pub fn stream_target(
        &self,
        source: &str,
        stream: &str,
    ) -> Result<(TableName, Option<String>), String> {
        let options = self.layered_options(source, stream)?;
        let table = match &options.table {
            Some(t) => TableName::parse(t, source)
                .map_err(|e| format!("stream `{source}.{stream}`, `table`: {e}"))?,
            None => TableName::new(source, stream),
        };
        Ok((table, options.destination.filter(|d| d != "lake")))
    }

    /// A stream's options with every layer applied, without discovery.
    fn layered_options(&self, source: &str, stream: &str) -> Result<StreamOptions, String> {
        let defaults = self.defaults.stream_options();
        Ok(match self.source(source)? {
            SourceConfig::Files(_) => {
                let per = self.stream_options(source)?;
                defaults.overlay(
                    per.get(stream)
                        .ok_or_else(|| format!("source `{source}` has no stream `{stream}`"))?,
                )
            }
            SourceConfig::Database(_, db) => {
                let o = defaults.overlay(&db.stream_options());
                match db.streams.get(stream) {
                    Some(s) => o.overlay(&s.stream_options()),
                    None => o,
                }
            }
            SourceConfig::Singer(tap) => {
                let o = defaults.overlay(&tap.stream_options());
                match tap.streams.get(stream) {
                    Some(s) => o.overlay(&s.stream_options()),
                    None => o,
                }
            }
        })
    }

    /// The streams written in `sluice.yml` that carry checks — a `files`
    /// source's streams, the `streams:` entries of database and Singer
    /// sources — each as (`source.stream`, table, destination, checks).
    pub fn stream_checks(&self) -> Result<Vec<DeclaredChecks>, String> {
        let mut out = Vec::new();
        for (source, config) in &self.sources.0 {
            let names: Vec<String> = match config {
                SourceConfig::Files(_) => self.stream_options(source)?.keys().cloned().collect(),
                SourceConfig::Database(_, db) => db.streams.keys().cloned().collect(),
                SourceConfig::Singer(tap) => tap.streams.keys().cloned().collect(),
            };
            for stream in names {
                let options = self.layered_options(source, &stream)?;
                if options.checks.is_empty() {
                    continue;
                }
                let (table, destination) = self.stream_target(source, &stream)?;
                out.push(DeclaredChecks {
                    stream: format!("{source}.{stream}"),
                    table,
                    destination,
                    checks: options.checks,
                });
            }
        }
        Ok(out)
    }

    /// Checks of one layered set of options that need nothing discovered.
    fn check_options(&self, id: &str, o: &StreamOptions) -> Result<(), String> {
        if let Some(dest) = &o.destination
            && !self.destinations.0.contains_key(dest)
            && dest != "lake"
        {
            let known: Vec<&str> = self.destinations.0.keys().map(String::as_str).collect();
            let hint = super::suggest::did_you_mean(dest, known.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "stream `{id}` names destination `{dest}`, which is not in `destinations:`{hint}"
            ));
        }
        if o.cursor.is_some() && o.replication == Some(Replication::Full) {
            return Err(format!(
                "stream `{id}` has a `cursor` but `replication: full`; remove one of them"
            ));
        }
        Ok(())
    }
}
