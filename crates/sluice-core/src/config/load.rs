//! Parsing `sluice.yml` with located errors.
//!
//! Two passes over the same text:
//! 1. a lenient *probe* reads each source's and destination's `type` and
//!    where it stands;
//! 2. the typed parse, which picks each entry's struct from the probed type.
//!
//! Serde's internally tagged enums would buffer every entry and lose the line
//! and column of errors inside it; knowing the type up front lets every
//! error point at its own key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::env::{VarOrigin, interpolate, parse_dotenv};
use super::suggest::did_you_mean;
use super::{DatabaseKind, DestinationConfig, Destinations, ProjectConfig, SourceConfig, Sources};
use crate::error::{Classify, ErrorDomain};

/// A problem in the project file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// The offending lines, rendered with a caret.
    pub snippet: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Classify for ConfigError {
    fn domain(&self) -> ErrorDomain {
        ErrorDomain::User
    }
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// A parsed project file.
#[derive(Debug, Clone)]
pub struct LoadedProject {
    /// The typed configuration.
    pub config: ProjectConfig,
    /// The file it came from.
    pub file: PathBuf,
    /// Values substituted from the environment or `.env`: secrets to redact
    /// from anything printed or stored.
    pub secrets: Vec<String>,
    /// Line and column of each source's entry, for later errors.
    pub source_locations: HashMap<String, (usize, usize)>,
}

impl LoadedProject {
    /// A located error about source `source`.
    pub fn source_error(&self, source: &str, message: String) -> ConfigError {
        let (line, column) = self
            .source_locations
            .get(source)
            .map_or((None, None), |(l, c)| (Some(*l), Some(*c)));
        let (message, hint) = split_hint(message);
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            message,
            hint,
            snippet: None,
        }
    }

    /// Replace every secret value in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if s.len() >= 3 {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Messages from validation carry their hint after a `; ` as "…; add x";
/// split at the first "; " that starts an instruction.
fn split_hint(message: String) -> (String, Option<String>) {
    for marker in ["; add ", "; use ", "; remove ", "; name ", "; set "] {
        if let Some(i) = message.find(marker) {
            let hint = message[i + 2..].to_string();
            return (message[..i].to_string(), Some(hint));
        }
    }
    (message, None)
}

#[derive(Default)]
struct Kinds {
    sources: HashMap<String, String>,
    destinations: HashMap<String, String>,
}

thread_local! {
    /// The probed `type` of each entry, read by the typed parse of `sources:`
    /// and `destinations:` (set and cleared by [`parse_project`] only).
    static KINDS: RefCell<Kinds> = RefCell::new(Kinds::default());
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    sources: Option<IndexMap<String, Spanned<KindProbe>>>,
    #[serde(default)]
    destinations: Option<IndexMap<String, Spanned<KindProbe>>>,
}

#[derive(Deserialize)]
struct KindProbe {
    #[serde(rename = "type", default)]
    kind: Option<Spanned<String>>,
    #[serde(flatten)]
    _rest: HashMap<String, IgnoredAny>,
}

/// Parse the project file's text.
///
/// `file` is used in messages only. `dotenv` is the text of the project's
/// `.env` file, if any; `env` looks up the process environment (which wins
/// over `.env`).
pub fn parse_project(
    text: &str,
    file: &Path,
    dotenv: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<LoadedProject, ConfigError> {
    let err = |line, column, message: String, hint: Option<String>| ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        message,
        hint,
        snippet: None,
    };
    let dotenv_vars = dotenv.map(parse_dotenv).unwrap_or_default();
    let lookup = |name: &str| {
        env(name).map(|v| (v, VarOrigin::Environment)).or_else(|| {
            dotenv_vars
                .get(name)
                .map(|v| (v.clone(), VarOrigin::DotEnv))
        })
    };
    let interpolated = interpolate(text, lookup).map_err(|m| {
        if m.unterminated {
            err(Some(m.line), Some(m.column), "`${` is not closed by `}`".into(), Some("write `${NAME}`, or `$${` for a literal `${`".into()))
        } else {
            err(
                Some(m.line),
                Some(m.column),
                format!("environment variable `{}` is not set", m.name),
                Some(format!(
                    "export {0}=… or add `{0}=…` to the project's `.env` file, or give a default: `${{{0}:-value}}`",
                    m.name
                )),
            )
        }
    })?;
    let secrets: Vec<String> = interpolated
        .used
        .values()
        .filter(|(_, origin)| *origin != VarOrigin::Default)
        .map(|(v, _)| v.clone())
        .filter(|v| !v.is_empty())
        .collect();
    let text = interpolated.text.as_str();
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(LoadedProject {
            config: ProjectConfig::default(),
            file: file.to_path_buf(),
            secrets,
            source_locations: HashMap::new(),
        });
    }

    // Pass 1: the type of every entry.
    let probe: Probe = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, file))?;
    let mut kinds = Kinds::default();
    let mut source_locations = HashMap::new();
    for (name, entry) in probe.sources.iter().flatten() {
        let at = (
            entry.referenced.line() as usize,
            entry.referenced.column() as usize,
        );
        source_locations.insert(name.clone(), at);
        let kind = check_kind(
            "source",
            name,
            &entry.value.kind,
            at,
            SourceConfig::KINDS,
            file,
        )?;
        kinds.sources.insert(name.clone(), kind);
    }
    for (name, entry) in probe.destinations.iter().flatten() {
        let at = (
            entry.referenced.line() as usize,
            entry.referenced.column() as usize,
        );
        let kind = check_kind(
            "destination",
            name,
            &entry.value.kind,
            at,
            DestinationConfig::KINDS,
            file,
        )?;
        kinds.destinations.insert(name.clone(), kind);
    }

    // Pass 2: the typed parse.
    KINDS.with(|k| *k.borrow_mut() = kinds);
    let parsed: Result<ProjectConfig, _> = serde_saphyr::from_str(text);
    KINDS.with(|k| *k.borrow_mut() = Kinds::default());
    let config = parsed.map_err(|e| yaml_error(&e, file))?;

    let loaded = LoadedProject {
        config,
        file: file.to_path_buf(),
        secrets,
        source_locations,
    };
    for source in loaded.config.sources.0.keys() {
        loaded
            .config
            .validate_source(source)
            .map_err(|m| loaded.source_error(source, m))?;
    }
    for (name, destination) in &loaded.config.destinations.0 {
        if let DestinationConfig::Singer(target) = destination {
            target
                .validate(name)
                .map_err(|m| err(None, None, m, None))?;
        }
    }
    Ok(loaded)
}

fn check_kind(
    what: &str,
    name: &str,
    kind: &Option<Spanned<String>>,
    at: (usize, usize),
    known: &[&str],
    file: &Path,
) -> Result<String, ConfigError> {
    let located = |line, column, message, hint| ConfigError {
        file: file.to_path_buf(),
        line: Some(line),
        column: Some(column),
        message,
        hint: Some(hint),
        snippet: None,
    };
    match kind {
        None => Err(located(
            at.0,
            at.1,
            format!("{what} `{name}` has no `type`"),
            format!("add `type: {}` (one of: {})", known[0], known.join(", ")),
        )),
        Some(k) if !known.contains(&k.value.as_str()) => {
            let hint = match did_you_mean(&k.value, known.iter().copied()) {
                Some(s) => format!("did you mean `type: {s}`? (one of: {})", known.join(", ")),
                None => format!("use one of: {}", known.join(", ")),
            };
            Err(located(
                k.referenced.line() as usize,
                k.referenced.column() as usize,
                format!("{what} `{name}` has unknown type `{}`", k.value),
                hint,
            ))
        }
        Some(k) => Ok(k.value.clone()),
    }
}

/// Turn a YAML/serde error into a located [`ConfigError`] with a hint.
fn yaml_error(e: &serde_saphyr::Error, file: &Path) -> ConfigError {
    let (line, column) = match e.location() {
        Some(l) if l.line() > 0 => (Some(l.line() as usize), Some(l.column() as usize)),
        _ => (None, None),
    };
    let name = file.display().to_string();
    let snippet = e.render_with_options(serde_saphyr::render_options! {
        source_name: Some(name.as_str()),
    });
    let mut message = e.without_snippet().to_string();
    // serde-saphyr prefixes "line N column M: "; we print the location ourselves.
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_string();
    }
    if message.starts_with("line ")
        && let Some(i) = message.find(": ")
    {
        message = message[i + 2..].to_string();
    }
    if let Some(i) = message.rfind(" at line ")
        && message[i..].contains(", column ")
    {
        message.truncate(i);
    }
    let hint = hint_for(&message);
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        snippet: (snippet.contains('|')).then_some(snippet),
        message,
        hint,
    }
}

/// "did you mean" for unknown fields and variants: serde lists the expected
/// names after "expected one of".
fn hint_for(message: &str) -> Option<String> {
    let (what, rest) = if let Some(r) = message.strip_prefix("unknown field `") {
        ("key", r)
    } else if let Some(r) = message.strip_prefix("unknown variant `") {
        ("value", r)
    } else {
        return None;
    };
    let (bad, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest
        .split_once("expected one of ")
        .map(|(_, list)| list)
        .or_else(|| rest.split_once("expected ").map(|(_, l)| l))
        .map(|list| {
            list.split(", ")
                .map(|s| s.trim().trim_matches('`'))
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match did_you_mean(bad, expected.iter().copied()) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None if !expected.is_empty() => {
            Some(format!("valid {what}s here: {}", expected.join(", ")))
        }
        None => None,
    }
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sources;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of source names to sources")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Sources, E> {
                Ok(Sources::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sources, A::Error> {
                let mut out = IndexMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let kind = KINDS.with(|k| k.borrow().sources.get(&name).cloned());
                    let config = match kind.as_deref() {
                        Some("files") => SourceConfig::Files(map.next_value()?),
                        Some("postgres") => {
                            SourceConfig::Database(DatabaseKind::Postgres, map.next_value()?)
                        }
                        Some("mysql" | "mariadb") => {
                            SourceConfig::Database(DatabaseKind::Mysql, map.next_value()?)
                        }
                        Some("sqlite") => {
                            SourceConfig::Database(DatabaseKind::Sqlite, map.next_value()?)
                        }
                        Some("singer") => SourceConfig::Singer(map.next_value()?),
                        other => {
                            return Err(de::Error::custom(format!(
                                "source `{name}` has unknown type `{}`",
                                other.unwrap_or("<none>")
                            )));
                        }
                    };
                    out.insert(name, config);
                }
                Ok(Sources(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Destinations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Destinations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of destination names to destinations")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Destinations, E> {
                Ok(Destinations::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Destinations, A::Error> {
                let mut out = IndexMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let kind = KINDS.with(|k| k.borrow().destinations.get(&name).cloned());
                    let config = match kind.as_deref() {
                        Some("lake") => DestinationConfig::Lake(map.next_value()?),
                        Some("parquet" | "csv" | "jsonl") => {
                            DestinationConfig::Files(map.next_value()?)
                        }
                        Some("postgres") => DestinationConfig::Postgres(map.next_value()?),
                        Some("singer") => DestinationConfig::Singer(map.next_value()?),
                        other => {
                            return Err(de::Error::custom(format!(
                                "destination `{name}` has unknown type `{}`",
                                other.unwrap_or("<none>")
                            )));
                        }
                    };
                    out.insert(name, config);
                }
                Ok(Destinations(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Discovered;

    fn pk(key: &[String]) -> Discovered<'_> {
        Discovered {
            primary_key: key,
            cursor: None,
        }
    }
    use crate::config::{FileFormat, OnError, WriteMode};

    fn parse(text: &str) -> Result<LoadedProject, ConfigError> {
        parse_project(text, Path::new("sluice.yml"), None, |n| {
            (n == "DATA_DIR").then(|| "data".to_string())
        })
    }

    const MINIMAL: &str = "sources:
  shop:
    type: files
    format: csv
    path: data/orders*.csv
    stream: orders
    primary_key: [id]
    write_mode: merge
    on_error: quarantine
";

    #[test]
    fn the_minimal_file_works_as_written() {
        let p = parse(MINIMAL).unwrap();
        let streams = p.config.streams("shop").unwrap();
        assert_eq!(streams.len(), 1);
        let s = &streams[0];
        assert_eq!(s.table.to_string(), "shop.orders");
        assert_eq!(s.write_mode, WriteMode::Merge);
        assert_eq!(s.on_error, OnError::Quarantine);
        assert_eq!(s.primary_key, vec!["id"]);
        let SourceConfig::Files(f) = &p.config.sources.0["shop"] else {
            panic!("not files")
        };
        let fs = f.file_streams("shop").unwrap();
        assert_eq!(fs["orders"].0.format, FileFormat::Csv);
        assert_eq!(fs["orders"].0.paths, vec!["data/orders*.csv"]);
    }

    #[test]
    fn unknown_key_is_located_with_suggestion() {
        let e = parse(&MINIMAL.replace("write_mode", "wirte_mode")).unwrap_err();
        assert_eq!((e.line, e.column), (Some(8), Some(5)), "{e:?}");
        assert!(
            e.message.contains("unknown field `wirte_mode`"),
            "{}",
            e.message
        );
        assert_eq!(e.hint.as_deref(), Some("did you mean `write_mode`?"));
        assert!(e.to_string().starts_with("sluice.yml:8:5: "));
    }

    #[test]
    fn unknown_enum_value_suggests() {
        let e = parse(&MINIMAL.replace("merge", "merg")).unwrap_err();
        assert_eq!(e.line, Some(8));
        assert_eq!(e.hint.as_deref(), Some("did you mean `merge`?"));
    }

    #[test]
    fn unknown_type_suggests() {
        let e = parse(&MINIMAL.replace("type: files", "type: file")).unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(11)), "{e:?}");
        assert!(e.hint.unwrap().contains("did you mean `type: files`"));
        let e = parse("sources:\n  shop:\n    path: a.csv\n").unwrap_err();
        assert!(e.message.contains("has no `type`"));
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn wrong_value_type_is_located() {
        let e = parse(&MINIMAL.replace("primary_key: [id]", "primary_key: {a: 1}")).unwrap_err();
        assert_eq!(e.line, Some(7), "{e:?}");
        let e = parse("defaults:\n  batch_size: lots\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e:?}");
    }

    #[test]
    fn transform_section_parses_and_rejects_unknown_keys() {
        let p = parse(&format!(
            "{MINIMAL}transform:\n  project_dir: dbt\n  engine: wh\n  schema: analytics\n"
        ))
        .unwrap();
        let t = p.config.transform.unwrap();
        assert_eq!(t.project_dir.as_deref(), Some("dbt"));
        assert_eq!(t.engine.as_deref(), Some("wh"));
        assert_eq!(t.schema.as_deref(), Some("analytics"));
        assert_eq!(t.target, None);
        let e = parse(&format!("{MINIMAL}transform:\n  projectdir: dbt\n")).unwrap_err();
        assert!(e.message.contains("unknown field `projectdir`"), "{e:?}");
        assert_eq!(e.hint.as_deref(), Some("did you mean `project_dir`?"));
    }

    #[test]
    fn unknown_top_level_key_suggests() {
        let e = parse("source:\n  shop: {}\n").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `sources`?"));
    }

    #[test]
    fn env_interpolation_and_missing_var() {
        let p = parse(&MINIMAL.replace("data/orders", "${DATA_DIR}/orders")).unwrap();
        let SourceConfig::Files(f) = &p.config.sources.0["shop"] else {
            panic!("not files")
        };
        assert_eq!(f.path.as_ref().unwrap()[0], "data/orders*.csv");
        assert_eq!(p.secrets, vec!["data"]);
        let e = parse(&MINIMAL.replace("data/orders", "${NOPE}/orders")).unwrap_err();
        assert_eq!((e.line, e.column), (Some(5), Some(11)));
        assert!(e.hint.unwrap().contains(".env"));
    }

    #[test]
    fn dotenv_is_read_and_env_wins() {
        let text = "sources:\n  s:\n    type: files\n    path: ${P}/x.csv\n";
        let p = parse_project(
            text,
            Path::new("sluice.yml"),
            Some("P=fromdotenv\n"),
            |_| None,
        )
        .unwrap();
        let SourceConfig::Files(f) = &p.config.sources.0["s"] else {
            panic!("not files")
        };
        assert_eq!(f.path.as_ref().unwrap()[0], "fromdotenv/x.csv");
        let p = parse_project(
            text,
            Path::new("sluice.yml"),
            Some("P=fromdotenv\n"),
            |_| Some("env".into()),
        )
        .unwrap();
        let SourceConfig::Files(f) = &p.config.sources.0["s"] else {
            panic!("not files")
        };
        assert_eq!(f.path.as_ref().unwrap()[0], "env/x.csv");
    }

    #[test]
    fn semantic_errors_point_at_the_source() {
        let e = parse(&MINIMAL.replace("    primary_key: [id]\n", "")).unwrap_err();
        assert!(e.message.contains("no `primary_key`"), "{}", e.message);
        assert_eq!(e.line, Some(3));
        assert!(e.hint.unwrap().starts_with("add `primary_key"));
    }

    #[test]
    fn streams_inherit_source_keys_and_defaults() {
        let text = "defaults:\n  on_error: quarantine\nsources:\n  s:\n    type: files\n    format: jsonl\n    write_mode: append\n    streams:\n      a: { path: a/*.json }\n      b: { path: b.jsonl, write_mode: overwrite, table: raw.bees }\n";
        let p = parse(text).unwrap();
        let streams = p.config.streams("s").unwrap();
        assert_eq!(streams[0].write_mode, WriteMode::Append);
        assert_eq!(streams[0].on_error, OnError::Quarantine);
        assert_eq!(streams[1].write_mode, WriteMode::Overwrite);
        assert_eq!(streams[1].table.to_string(), "raw.bees");
    }

    #[test]
    fn stream_name_derives_from_the_path() {
        let p = parse("sources:\n  s:\n    type: files\n    path: data/orders_*.csv\n").unwrap();
        assert_eq!(p.config.streams("s").unwrap()[0].stream, "orders");
    }

    #[test]
    fn destinations_parse_by_type() {
        let text = "destinations:\n  out:\n    type: parquet\n    path: out\n  other:\n    type: lake\n    url: s3://b/lake\nsources: {}\n";
        let p = parse(text).unwrap();
        assert_eq!(p.config.destinations.0["out"].kind(), "parquet");
        assert_eq!(p.config.destinations.0["other"].kind(), "lake");
        let e = parse("destinations:\n  out:\n    type: parquet\n    pth: out\n").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `path`?"));
    }

    #[test]
    fn empty_file_is_an_empty_project() {
        assert!(
            parse("# nothing yet\n")
                .unwrap()
                .config
                .sources
                .0
                .is_empty()
        );
    }

    const DATABASE: &str = "sources:
  app:
    type: postgres
    url: ${APP_DB_URL}
    include: [public.orders, public.customers]
    streams:
      orders: { replication: incremental, cursor: updated_at, primary_key: [id], write_mode: merge }
";

    #[test]
    fn the_minimal_database_source_parses_and_resolves() {
        let p = parse_project(DATABASE, Path::new("sluice.yml"), None, |_| {
            Some("postgres://x@h/db".into())
        })
        .unwrap();
        let c = &p.config;
        let SourceConfig::Database(kind, db) = &c.sources.0["app"] else {
            panic!("not a database")
        };
        assert_eq!(*kind, DatabaseKind::Postgres);
        assert_eq!(
            db.include.as_deref(),
            Some(&["public.orders".to_string(), "public.customers".to_string()][..])
        );
        assert!(!c.sources.0["app"].has_static_streams());
        let orders = c
            .resolve_stream("app", "orders", Discovered::default())
            .unwrap();
        assert_eq!(
            (orders.write_mode, orders.replication),
            (WriteMode::Merge, crate::config::Replication::Incremental)
        );
        assert_eq!(orders.table.to_string(), "app.orders");
        // A table without a cursor: a fresh copy each run.
        let customers = c
            .resolve_stream("app", "customers", pk(&["id".into()]))
            .unwrap();
        assert_eq!(
            (customers.write_mode, customers.replication),
            (WriteMode::Overwrite, crate::config::Replication::Full)
        );
        assert_eq!(customers.primary_key, vec!["id"]);
        assert!(
            c.all_streams().unwrap().is_empty(),
            "database streams need discovery"
        );
    }

    #[test]
    fn database_defaults_and_refusals() {
        let text = "sources:\n  db:\n    type: mariadb\n    url: mysql://root@localhost/app\n    cursor: updated_at\n";
        let p = parse(text).unwrap();
        let s = p
            .config
            .resolve_stream("db", "events", Discovered::default())
            .unwrap();
        assert_eq!(
            s.write_mode,
            WriteMode::Append,
            "a cursor without a key appends"
        );
        let s = p
            .config
            .resolve_stream("db", "events", pk(&["id".into()]))
            .unwrap();
        assert_eq!(s.write_mode, WriteMode::Merge);
        let text = "sources:\n  db:\n    type: sqlite\n    path: app.db\n    write_mode: merge\n";
        let p = parse(text).unwrap();
        let e = p
            .config
            .resolve_stream("db", "logs", Discovered::default())
            .unwrap_err();
        assert!(
            e.contains("has no primary key") && e.contains("streams.logs"),
            "{e}"
        );
        let e = parse("sources:\n  db:\n    type: postgres\n").unwrap_err();
        assert!(e.message.contains("has no `url`"), "{e:?}");
        let e = parse("sources:\n  db:\n    type: sqlite\n    path: a.db\n    streams:\n      t: { columns: { x: strng } }\n").unwrap_err();
        assert!(e.message.contains("unknown column type"), "{e:?}");
        let e = parse("sources:\n  db:\n    type: sqlite\n    path: a.db\n    streams:\n      t: { split: { colum: id } }\n").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `column`?"));
        let p = parse(
            "destinations:\n  wh: { type: postgres, url: \"postgres://x@h/db\", schema: raw }\n",
        )
        .unwrap();
        assert_eq!(p.config.destinations.0["wh"].kind(), "postgres");
    }

    #[test]
    fn redacts_secrets() {
        let p = parse_project(
            "name: x\nlake:\n  options: { key: \"${K}\" }\n",
            Path::new("sluice.yml"),
            None,
            |_| Some("s3cr3t".into()),
        )
        .unwrap();
        assert_eq!(p.redact("token s3cr3t here"), "token *** here");
    }
}
