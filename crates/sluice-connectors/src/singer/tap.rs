//! A Singer tap as a source.
//!
//! ```text
//!  discover: tap --config c --discover ─► catalog (cached in .sluice/singer/<source>/)
//!  read:     catalog + selection from sluice.yml ─► tap --config c --catalog k [--state s]
//!            stdout ─► lines ─► message::parse ─► per stream: RecordBuffer ─► Batch
//!                                   STATE ─► Checkpoint to every stream (after their pending rows)
//! ```
//!
//! One tap process serves every stream of a run ([`Source::reads_together`]).
//! Singer state is one document for all streams, but Sluice commits each
//! stream on its own, so each stream's checkpoint carries the whole STATE
//! and the time it was received. The next run gives the tap a state built
//! from each stream's *own* committed checkpoint: `bookmarks.<stream>` from
//! that stream's state, everything else from the oldest one. A stream's
//! bookmark therefore never runs ahead of its committed data.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::{Value, json};
use sluice_core::config::{OnError, Replication, SingerStream, StreamOptions};
use sluice_core::connector::{
    Checkpoint, ColumnDetail, ConnectorError, Message, MessageStream, Progress, ReadRequest,
    RecordLocation, Result, Source, StreamInfo,
};
use sluice_core::names::sanitize_identifier;
use tokio::io::AsyncReadExt;
use tokio::sync::{OnceCell, mpsc};

use super::decode::RecordBuffer;
use super::message::{SingerMessage, parse};
use super::process::{Plugin, RunFiles, Running};
use super::schema::{StreamSchema, stream_schema};

/// Messages buffered per stream between the tap and the stream's writer.
const CHANNEL: usize = 4;

/// A Singer tap, configured.
#[derive(Debug)]
pub struct SingerTap {
    name: String,
    plugin: Plugin,
    config: Value,
    catalog_file: Option<PathBuf>,
    select: Option<Vec<String>>,
    streams: IndexMap<String, SingerStream>,
    options: StreamOptions,
    catalog: OnceCell<Arc<Catalog>>,
}

/// Settings of a [`SingerTap`] (from `type: singer` in sluice.yml).
#[derive(Debug, Clone)]
pub struct TapSettings {
    /// The tap's `--config`.
    pub config: Value,
    /// A catalog file to use instead of `--discover`.
    pub catalog_file: Option<PathBuf>,
    /// Stream patterns to read (default all).
    pub select: Option<Vec<String>>,
    /// Per-stream settings.
    pub streams: IndexMap<String, SingerStream>,
    /// `defaults:` overlaid with the source-level options.
    pub options: StreamOptions,
}

/// The tap's catalog.
#[derive(Debug)]
struct Catalog {
    raw: Value,
    streams: Vec<CatalogStream>,
    /// What `--about --format=json` said (`None`: the tap has no `--about`).
    about: Option<Value>,
}

impl Catalog {
    /// Built on the Meltano Singer SDK (its taps run every stream with the
    /// discovered settings when given no catalog).
    fn is_sdk(&self) -> bool {
        self.about
            .as_ref()
            .is_some_and(|a| a.get("sdk_version").is_some())
    }

    /// The flag that passes the catalog: `--properties` for taps that say
    /// they only know that one, `--catalog` otherwise.
    fn catalog_flag(&self) -> &'static str {
        let caps: Vec<&str> = self
            .about
            .as_ref()
            .and_then(|a| a.get("capabilities"))
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if caps.contains(&"properties") && !caps.contains(&"catalog") {
            "--properties"
        } else {
            "--catalog"
        }
    }
}

#[derive(Debug, Clone)]
struct CatalogStream {
    /// Position in `raw["streams"]`.
    index: usize,
    tap_stream_id: String,
    /// The Sluice stream name (an identifier).
    name: String,
    schema: StreamSchema,
    replication_key: Option<String>,
    forced_method: Option<String>,
}

impl SingerTap {
    /// A tap source named `name` running `plugin`.
    pub fn new(name: &str, plugin: Plugin, settings: TapSettings) -> Self {
        Self {
            name: name.to_string(),
            plugin,
            config: settings.config,
            catalog_file: settings.catalog_file,
            select: settings.select,
            streams: settings.streams,
            options: settings.options,
            catalog: OnceCell::new(),
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.plugin
            .dir
            .join(".sluice")
            .join("singer")
            .join(&self.name)
    }

    async fn catalog(&self) -> Result<Arc<Catalog>> {
        self.catalog
            .get_or_try_init(|| async { self.load_catalog().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// The catalog: the configured file, the cached discovery when the
    /// plugin and its config are unchanged, or a fresh `--discover`.
    async fn load_catalog(&self) -> Result<Catalog> {
        let raw = if let Some(file) = &self.catalog_file {
            let path = self.plugin.dir.join(file);
            let text = std::fs::read(&path).map_err(|e| {
                ConnectorError::config(
                    format!(
                        "source `{}`: cannot read catalog `{}`: {e}",
                        self.name,
                        path.display()
                    ),
                    Some("fix `catalog:` (a path relative to the project), or remove it to run the tap's discovery".to_string()),
                )
            })?;
            serde_json::from_slice(&text).map_err(|e| {
                ConnectorError::config(
                    format!(
                        "source `{}`: catalog `{}` is not valid JSON: {e}",
                        self.name,
                        path.display()
                    ),
                    None,
                )
            })?
        } else {
            let key = self.cache_key();
            let dir = self.cache_dir();
            let cached = dir.join("catalog.json");
            let cached_key = std::fs::read_to_string(dir.join("catalog.key")).ok();
            match (cached_key, std::fs::read(&cached)) {
                (Some(k), Ok(text)) if k == key => serde_json::from_slice(&text).map_err(|e| {
                    ConnectorError::Internal(format!(
                        "cached catalog `{}` is not JSON: {e}",
                        cached.display()
                    ))
                })?,
                _ => {
                    let raw = self.discover_now().await?;
                    let store = || -> std::io::Result<()> {
                        std::fs::create_dir_all(&dir)?;
                        std::fs::write(&cached, serde_json::to_vec_pretty(&raw)?)?;
                        std::fs::write(dir.join("catalog.key"), &key)
                    };
                    if let Err(e) = store() {
                        tracing::warn!(
                            "source `{}`: could not cache the catalog in `{}`: {e}",
                            self.name,
                            dir.display()
                        );
                    }
                    raw
                }
            }
        };
        let about = self.about().await;
        self.parse_catalog(raw, about)
    }

    /// `--about --format=json`, cached next to the catalog; `None` when the
    /// tap does not answer it.
    async fn about(&self) -> Option<Value> {
        let cached = self.cache_dir().join("about.json");
        let key = self.cache_key();
        if let (Ok(k), Ok(text)) = (
            std::fs::read_to_string(self.cache_dir().join("about.key")),
            std::fs::read(&cached),
        ) && k == key
        {
            return serde_json::from_slice(&text).ok();
        }
        let args: [&OsStr; 2] = [OsStr::new("--about"), OsStr::new("--format=json")];
        let mut running = self.plugin.spawn(&args, false).ok()?;
        let mut out = Vec::new();
        if let Some(mut stdout) = running.stdout.take() {
            stdout.read_to_end(&mut out).await.ok()?;
        }
        let ok = running.wait().await.is_ok();
        let about: Option<Value> = if ok {
            serde_json::from_slice(&out).ok()
        } else {
            None
        };
        let text = serde_json::to_vec(&about).unwrap_or_default();
        let _ = std::fs::create_dir_all(self.cache_dir())
            .and_then(|()| std::fs::write(&cached, text))
            .and_then(|()| std::fs::write(self.cache_dir().join("about.key"), &key));
        about
    }

    /// Changes when the plugin or its config change.
    fn cache_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.plugin.program.hash(&mut h);
        self.config.to_string().hash(&mut h);
        let modified = std::fs::metadata(&self.plugin.program)
            .and_then(|m| m.modified())
            .ok();
        modified.hash(&mut h);
        format!("{:016x}", h.finish())
    }

    async fn discover_now(&self) -> Result<Value> {
        let mut files = RunFiles::default();
        let config = files.write(&self.plugin.dir, &self.plugin.label, "config", &self.config)?;
        let args: [&OsStr; 3] = [
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--discover"),
        ];
        let mut running = self.plugin.spawn(&args, false)?;
        let mut out = Vec::new();
        if let Some(mut stdout) = running.stdout.take() {
            stdout.read_to_end(&mut out).await.map_err(|e| {
                ConnectorError::external(
                    format!("cannot read the output of {}", self.plugin.label),
                    e,
                )
            })?;
        }
        running.wait().await.map_err(|e| match e {
            ConnectorError::External {
                message,
                source,
                retryable,
            } => ConnectorError::External {
                message: format!("discovery ({}): {message}", "--discover"),
                source,
                retryable,
            },
            other => other,
        })?;
        serde_json::from_slice(&out).map_err(|e| {
            let head = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
            ConnectorError::config(
                format!(
                    "{}: `--discover` did not print a JSON catalog: {e} (it printed `{}`)",
                    self.plugin.label,
                    sluice_core::connector::truncate(&head, 120)
                ),
                Some("check that the plugin is a Singer tap that supports discovery, or give a catalog file with `catalog:`".into()),
            )
        })
    }

    fn parse_catalog(&self, raw: Value, about: Option<Value>) -> Result<Catalog> {
        let list = raw
            .get("streams")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ConnectorError::config(
                    format!("source `{}`: the catalog has no `streams` list", self.name),
                    None,
                )
            })?;
        let mut streams = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (index, entry) in list.iter().enumerate() {
            let tap_stream_id = entry
                .get("tap_stream_id")
                .or_else(|| entry.get("stream"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ConnectorError::config(
                        format!(
                            "source `{}`: catalog stream #{} has no `tap_stream_id`",
                            self.name,
                            index + 1
                        ),
                        None,
                    )
                })?
                .to_string();
            let name = sanitize_identifier(&tap_stream_id);
            if let Some(other) = seen.insert(name.clone(), tap_stream_id.clone()) {
                return Err(ConnectorError::config(
                    format!(
                        "source `{}`: streams `{other}` and `{tap_stream_id}` both become `{name}`",
                        self.name
                    ),
                    Some("select one of them with `select:`".to_string()),
                ));
            }
            let top = top_metadata(entry);
            let key: Vec<String> = top
                .and_then(|m| m.get("table-key-properties"))
                .or_else(|| entry.get("key_properties"))
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            let replication_key = top
                .and_then(|m| m.get("replication-key"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    top.and_then(|m| m.get("valid-replication-keys"))
                        .and_then(Value::as_array)
                        .and_then(|a| a.first())
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .or_else(|| {
                    entry
                        .get("replication_key")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            let forced_method = top
                .and_then(|m| m.get("forced-replication-method"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let schema_json = entry.get("schema").cloned().unwrap_or(Value::Null);
            let schema = stream_schema(&tap_stream_id, &schema_json, &key)?;
            streams.push(CatalogStream {
                index,
                tap_stream_id,
                name,
                schema,
                replication_key: if forced_method.as_deref() == Some("FULL_TABLE") {
                    None
                } else {
                    replication_key
                },
                forced_method,
            });
        }
        Ok(Catalog {
            raw,
            streams,
            about,
        })
    }

    fn selected(&self, s: &CatalogStream) -> bool {
        match &self.select {
            None => true,
            Some(patterns) => patterns.iter().any(|p| {
                crate::db::select::glob_match(p, &s.tap_stream_id)
                    || crate::db::select::glob_match(p, &s.name)
            }),
        }
    }

    /// The options of a stream: `defaults:` < source < `streams.<name>`.
    fn stream_options(&self, s: &CatalogStream) -> StreamOptions {
        match self
            .streams
            .get(&s.name)
            .or_else(|| self.streams.get(&s.tap_stream_id))
        {
            Some(o) => self.options.overlay(&o.stream_options()),
            None => self.options.clone(),
        }
    }

    /// The stream's cursor (replication key) when it is read incrementally.
    fn cursor(&self, s: &CatalogStream) -> Option<String> {
        let o = self.stream_options(s);
        if o.replication == Some(Replication::Full) {
            return None;
        }
        o.cursor.clone().or_else(|| s.replication_key.clone())
    }

    fn columns(&self, s: &CatalogStream) -> Option<Vec<String>> {
        self.streams
            .get(&s.name)
            .or_else(|| self.streams.get(&s.tap_stream_id))
            .and_then(|o| o.columns.clone())
    }

    /// The catalog handed to the tap: the requested streams selected, with
    /// their replication method and key, and their columns.
    fn run_catalog(&self, catalog: &Catalog, requested: &[&CatalogStream]) -> Result<Value> {
        let mut raw = catalog.raw.clone();
        let Some(list) = raw.get_mut("streams").and_then(Value::as_array_mut) else {
            return Err(ConnectorError::Internal("catalog lost its streams".into()));
        };
        for s in &catalog.streams {
            let Some(entry) = list.get_mut(s.index).and_then(Value::as_object_mut) else {
                continue;
            };
            let wanted = requested.iter().any(|r| r.index == s.index);
            let cursor = if wanted { self.cursor(s) } else { None };
            let method = if cursor.is_some() {
                "INCREMENTAL"
            } else {
                "FULL_TABLE"
            };
            if wanted {
                entry.insert("selected".into(), json!(true));
                entry.insert("replication_method".into(), json!(method));
                if let Some(c) = &cursor {
                    entry.insert("replication_key".into(), json!(c));
                }
            } else {
                entry.insert("selected".into(), json!(false));
            }
            let columns = self.columns(s);
            if let Some(cols) = &columns
                && wanted
            {
                let props = s.schema.schema.fields();
                if let Some(missing) = cols.iter().find(|c| !props.iter().any(|f| f.name() == *c)) {
                    return Err(ConnectorError::config(
                        format!(
                            "stream `{}.{}`: `columns` names `{missing}`, which the tap's schema does not have",
                            self.name, s.name
                        ),
                        Some(format!(
                            "its columns: {}",
                            props
                                .iter()
                                .map(|f| f.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    ));
                }
            }
            let metadata = entry.entry("metadata").or_insert_with(|| json!([]));
            if !metadata.is_array() {
                *metadata = json!([]);
            }
            let Some(metadata) = metadata.as_array_mut() else {
                continue;
            };
            let Some(top) = find_or_add(metadata, &[]) else {
                continue;
            };
            top.insert("selected".into(), json!(wanted));
            if wanted {
                top.insert("replication-method".into(), json!(method));
                match &cursor {
                    Some(c) => top.insert("replication-key".into(), json!(c)),
                    None => top.remove("replication-key"),
                };
            }
            for field in s.schema.schema.fields() {
                let name = field.name();
                let Some(entry) = find_or_add(metadata, &["properties", name]) else {
                    continue;
                };
                let automatic = entry.get("inclusion").and_then(Value::as_str) == Some("automatic")
                    || s.schema.key_properties.iter().any(|k| k == name)
                    || cursor.as_deref() == Some(name.as_str());
                let unsupported =
                    entry.get("inclusion").and_then(Value::as_str) == Some("unsupported");
                let on = wanted
                    && !unsupported
                    && (automatic
                        || columns
                            .as_ref()
                            .is_none_or(|cols| cols.iter().any(|c| c == name)));
                entry.insert("selected".into(), json!(on));
            }
        }
        Ok(raw)
    }
}

fn top_metadata(entry: &Value) -> Option<&serde_json::Map<String, Value>> {
    entry
        .get("metadata")?
        .as_array()?
        .iter()
        .find(|m| {
            m.get("breadcrumb")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        })?
        .get("metadata")?
        .as_object()
}

fn find_or_add<'a>(
    metadata: &'a mut Vec<Value>,
    breadcrumb: &[&str],
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let target = json!(breadcrumb);
    let pos = metadata
        .iter()
        .position(|m| m.get("breadcrumb") == Some(&target));
    let i = match pos {
        Some(i) => i,
        None => {
            metadata.push(json!({"breadcrumb": target, "metadata": {}}));
            metadata.len() - 1
        }
    };
    let m = metadata.get_mut(i)?.as_object_mut()?;
    let slot = m.entry("metadata").or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut()
}

/// What a stream's checkpoint holds.
fn checkpoint_state(value: &Value, at: u128) -> Value {
    json!({"singer_state": value, "received_at_ns": at.to_string()})
}

fn received_at(state: &Value) -> u128 {
    state
        .get("received_at_ns")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The state to start the tap from: each requested stream's bookmark from
/// its own committed checkpoint (none when it starts over); everything
/// else from the oldest checkpoint.
pub fn compose_state(streams: &[(String, Option<Value>)]) -> Option<Value> {
    let committed: Vec<(&String, &Value)> = streams
        .iter()
        .filter_map(|(id, s)| {
            s.as_ref()
                .filter(|s| s.get("singer_state").is_some())
                .map(|s| (id, s))
        })
        .collect();
    let oldest = committed
        .iter()
        .min_by_key(|(_, s)| received_at(s))?
        .1
        .get("singer_state")?;
    let standard = committed.iter().all(|(_, s)| {
        s.get("singer_state")
            .and_then(|v| v.get("bookmarks"))
            .is_some_and(Value::is_object)
    });
    if !standard {
        return Some(oldest.clone());
    }
    let mut out = oldest.clone();
    if let Some(o) = out.as_object_mut() {
        o.remove("currently_syncing");
    }
    let Some(bookmarks) = out.get_mut("bookmarks").and_then(Value::as_object_mut) else {
        return Some(oldest.clone());
    };
    for (id, state) in streams {
        let own = state
            .as_ref()
            .and_then(|s| s.get("singer_state"))
            .and_then(|v| v.get("bookmarks"))
            .and_then(|b| b.get(id.as_str()));
        match own {
            Some(b) => {
                bookmarks.insert(id.clone(), b.clone());
            }
            None => {
                bookmarks.remove(id.as_str());
            }
        }
    }
    Some(out)
}

#[async_trait]
impl Source for SingerTap {
    fn kind(&self) -> &'static str {
        "singer"
    }

    async fn check(&self) -> Result<String> {
        let catalog = self.catalog().await?;
        let selected = catalog.streams.iter().filter(|s| self.selected(s)).count();
        Ok(format!(
            "{} (`{}`): {} streams in the catalog, {selected} selected",
            self.plugin.label,
            self.plugin.program.display(),
            catalog.streams.len()
        ))
    }

    async fn discover(&self) -> Result<Vec<StreamInfo>> {
        let catalog = self.catalog().await?;
        let mut out = Vec::new();
        for s in catalog.streams.iter().filter(|s| self.selected(s)) {
            let mut details = vec![("tap stream".to_string(), s.tap_stream_id.clone())];
            let cursor = self.cursor(s);
            details.push((
                "replication".to_string(),
                match &cursor {
                    Some(c) => format!("INCREMENTAL on `{c}`"),
                    None => "FULL_TABLE".to_string(),
                },
            ));
            if let Some(f) = &s.forced_method {
                details.push(("forced by the tap".to_string(), f.clone()));
            }
            let columns = s
                .schema
                .schema
                .fields()
                .iter()
                .map(|f| ColumnDetail {
                    name: f.name().clone(),
                    source_type: json_type_of(&catalog.raw, s.index, f.name()),
                    nullable: true,
                    note: s.schema.note(f.name()),
                })
                .collect();
            out.push(StreamInfo {
                name: s.name.clone(),
                schema: Some(s.schema.schema.clone()),
                primary_key: s.schema.key_properties.clone(),
                cursor,
                details,
                columns,
            });
        }
        Ok(out)
    }

    async fn read(&self, request: ReadRequest) -> Result<MessageStream> {
        self.read_together(vec![request])
            .await
            .pop()
            .unwrap_or_else(|| Err(ConnectorError::Internal("no stream was read".into())))
    }

    fn reads_together(&self) -> bool {
        true
    }

    async fn read_together(&self, requests: Vec<ReadRequest>) -> Vec<Result<MessageStream>> {
        match self.start(requests.clone()).await {
            Ok(streams) => streams.into_iter().map(Ok).collect(),
            Err(e) => {
                let text = e.to_string();
                let hint = sluice_core::error::Classify::hint(&e);
                let mut out = vec![Err(e)];
                for _ in 1..requests.len() {
                    out.push(Err(ConnectorError::External {
                        message: format!(
                            "{text}{}",
                            hint.as_ref()
                                .map(|h| format!(" (hint: {h})"))
                                .unwrap_or_default()
                        ),
                        source: None,
                        retryable: false,
                    }));
                }
                out
            }
        }
    }
}

impl SingerTap {
    async fn start(&self, requests: Vec<ReadRequest>) -> Result<Vec<MessageStream>> {
        let catalog = self.catalog().await?;
        let mut chosen = Vec::with_capacity(requests.len());
        for r in &requests {
            let s = catalog
                .streams
                .iter()
                .find(|s| s.name == r.stream)
                .ok_or_else(|| {
                    ConnectorError::config(
                        format!(
                            "source `{}` has no stream `{}` in its catalog",
                            self.name, r.stream
                        ),
                        Some("see the streams with `sluice discover`".to_string()),
                    )
                })?;
            chosen.push(s);
        }
        let run_catalog = self.run_catalog(&catalog, &chosen)?;
        let state = compose_state(
            &chosen
                .iter()
                .zip(&requests)
                .map(|(s, r)| (s.tap_stream_id.clone(), r.state.clone()))
                .collect::<Vec<_>>(),
        );
        let mut files = RunFiles::default();
        let dir = &self.plugin.dir;
        let label = &self.plugin.label;
        let config = files.write(dir, label, "config", &self.config)?;
        let catalog_path = files.write(dir, label, "catalog", &run_catalog)?;
        let mut args: Vec<&OsStr> = vec![OsStr::new("--config"), config.as_os_str()];
        // An SDK tap given no catalog runs every stream as discovered: when
        // that is exactly what this run asks, leave the catalog out (some
        // SDK taps mishandle an input catalog). Otherwise pass it.
        let defaults_only = catalog.is_sdk()
            && chosen.len() == catalog.streams.len()
            && chosen
                .iter()
                .all(|s| self.columns(s).is_none() && self.cursor(s) == s.replication_key);
        if !defaults_only {
            args.push(OsStr::new(catalog.catalog_flag()));
            args.push(catalog_path.as_os_str());
        }
        let state_path;
        if let Some(state) = &state {
            state_path = files.write(dir, label, "state", state)?;
            args.push(OsStr::new("--state"));
            args.push(state_path.as_os_str());
        }
        tracing::debug!(
            "{label}: starting with {} stream(s){}",
            chosen.len(),
            if state.is_some() { " and state" } else { "" }
        );
        let running = self.plugin.spawn(&args, false)?;
        let mut outputs = Vec::with_capacity(chosen.len());
        let mut routes = HashMap::new();
        for (s, r) in chosen.iter().zip(&requests) {
            let (tx, rx) = mpsc::channel(CHANNEL);
            outputs
                .push(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as MessageStream);
            routes.insert(
                s.tap_stream_id.clone(),
                Route {
                    name: s.name.clone(),
                    catalog_schema: s.schema.clone(),
                    schema: None,
                    buffer: None,
                    tx: Some(tx),
                    on_error: r.on_error,
                    batch_size: r.batch_size,
                    pending_bytes: 0,
                    sent_schema: false,
                    input_state: r.state.clone(),
                },
            );
        }
        let demux = Demux {
            label: label.clone(),
            origin: format!("output of {label}"),
            dir: dir.clone(),
            routes,
            unknown_warned: HashMap::new(),
            last_state: None,
            states: 0,
            rows_since_checkpoint: 0,
            last_checkpoint: None,
        };
        tokio::spawn(demux.run(running, files));
        Ok(outputs)
    }
}

/// The JSON Schema `type` of a property, for `discover`.
fn json_type_of(raw: &Value, index: usize, column: &str) -> String {
    let p = &raw["streams"][index]["schema"]["properties"][column];
    let ty = match &p["type"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        _ if p.get("anyOf").is_some() => "anyOf".to_string(),
        _ => "any".to_string(),
    };
    match p["format"].as_str() {
        Some(f) => format!("{ty} ({f})"),
        None => ty,
    }
}

/// Where one stream's messages go.
struct Route {
    name: String,
    catalog_schema: StreamSchema,
    schema: Option<StreamSchema>,
    buffer: Option<RecordBuffer>,
    tx: Option<mpsc::Sender<Result<Message>>>,
    on_error: OnError,
    batch_size: usize,
    pending_bytes: u64,
    sent_schema: bool,
    input_state: Option<Value>,
}

impl Route {
    /// Send to the stream; a stream whose reader is gone (it failed or was
    /// cancelled) gets nothing more.
    async fn send(&mut self, m: Result<Message>) {
        if let Some(tx) = &self.tx
            && tx.send(m).await.is_err()
        {
            self.tx = None;
        }
    }

    fn alive(&self) -> bool {
        self.tx.is_some()
    }

    /// Decode the buffered records and send them.
    async fn flush(&mut self) {
        let Some(buffer) = self.buffer.as_mut() else {
            return;
        };
        if buffer.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending_bytes);
        match buffer.take() {
            Ok(messages) => {
                for m in messages {
                    self.send(Ok(m)).await;
                }
                self.send(Ok(Message::Progress(Progress {
                    bytes,
                    ..Default::default()
                })))
                .await;
            }
            Err(e) => {
                self.send(Err(e)).await;
                self.tx = None;
            }
        }
    }

    /// The rows of one BATCH file: JSON Lines go through the record buffer
    /// (located errors name the file and its line), Parquet is cast to the
    /// stream's schema.
    async fn load_batch_file(
        &mut self,
        dir: &Path,
        url: &str,
        format: &str,
        compression: Option<&str>,
    ) -> Result<()> {
        let path = local_path(dir, url).ok_or_else(|| ConnectorError::Unsupported {
            connector: "singer",
            what: format!("BATCH files at `{url}` (only local `file://` manifests are read)"),
            hint: Some("configure the tap's `batch_config` to write to a local folder".into()),
        })?;
        let shown = path.display().to_string();
        match format {
            "jsonl" => {
                let mut reader = super::batch::open_jsonl(&path, compression)?;
                let Some(buffer) = self.buffer.as_mut() else {
                    return Ok(());
                };
                buffer.set_origin(&shown);
                let mut line = Vec::new();
                let mut line_no = 0u64;
                loop {
                    line.clear();
                    let n = std::io::BufRead::read_until(&mut reader, b'\n', &mut line).map_err(
                        |e| ConnectorError::external(format!("cannot read `{shown}`"), e),
                    )?;
                    if n == 0 {
                        break;
                    }
                    line_no += 1;
                    let text = line.trim_ascii();
                    if text.is_empty() {
                        continue;
                    }
                    self.pending_bytes += n as u64;
                    let Some(buffer) = self.buffer.as_mut() else {
                        return Ok(());
                    };
                    buffer.push(text, line_no)?;
                    if buffer.is_full() {
                        self.flush().await;
                        if !self.alive() {
                            return Ok(());
                        }
                    }
                }
                self.flush().await;
            }
            "parquet" => {
                let schema = match self.buffer.as_ref() {
                    Some(b) => b.schema().clone(),
                    None => return Ok(()),
                };
                for batch in super::batch::read_parquet(&path, &schema, self.batch_size)? {
                    let batch = batch?;
                    self.send(Ok(Message::Batch(batch))).await;
                    if !self.alive() {
                        return Ok(());
                    }
                }
            }
            other => {
                return Err(ConnectorError::Unsupported {
                    connector: "singer",
                    what: format!("BATCH encoding format `{other}`"),
                    hint: Some("use `jsonl` or `parquet` in the tap's `batch_config`".into()),
                });
            }
        }
        Ok(())
    }

    async fn ensure_schema(&mut self) {
        if !self.sent_schema {
            let schema = self
                .schema
                .as_ref()
                .unwrap_or(&self.catalog_schema)
                .schema
                .clone();
            self.send(Ok(Message::Schema(schema))).await;
            self.sent_schema = true;
        }
    }
}

/// Reads the tap's stdout and routes its messages.
struct Demux {
    label: String,
    origin: String,
    dir: PathBuf,
    routes: HashMap<String, Route>,
    unknown_warned: HashMap<String, ()>,
    last_state: Option<Value>,
    states: u64,
    /// Rows routed since the last checkpoint, and when it was sent.
    rows_since_checkpoint: u64,
    last_checkpoint: Option<std::time::Instant>,
}

/// A STATE becomes a checkpoint when this many rows came since the last
/// one, or [`CHECKPOINT_EVERY`] passed; the STATEs in between are only
/// remembered. Some taps send a STATE after every record: without this,
/// every record would be a batch and a checkpoint of its own.
const CHECKPOINT_ROWS: u64 = 50_000;
/// See [`CHECKPOINT_ROWS`].
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A protocol error: every stream fails with it.
struct Fatal(ConnectorError);

impl Demux {
    async fn run(mut self, mut running: Running, files: RunFiles) {
        let result = self.pump(&mut running).await;
        match result {
            Err(Fatal(e)) => {
                running.kill().await;
                drop(files);
                self.fail_all(&e).await;
            }
            Ok(()) => {
                let exit = running.wait().await;
                drop(files);
                match exit {
                    Err(e) => self.fail_all(&e).await,
                    Ok(()) => self.finish().await,
                }
            }
        }
    }

    async fn pump(&mut self, running: &mut Running) -> Result<(), Fatal> {
        let Some(mut stdout) = running.stdout.take() else {
            return Err(Fatal(ConnectorError::Internal("no stdout".into())));
        };
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut chunk = vec![0u8; 1 << 20];
        let mut line_no = 0u64;
        loop {
            if !self.routes.values().any(Route::alive) {
                // Every reader is gone (failed or cancelled): stop the tap.
                return Err(Fatal(ConnectorError::Cancelled));
            }
            let n = stdout.read(&mut chunk).await.map_err(|e| {
                Fatal(ConnectorError::external(
                    format!("cannot read the output of {}", self.label),
                    e,
                ))
            })?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
                let end = start + nl;
                line_no += 1;
                let line = &buf[start..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !line.iter().all(u8::is_ascii_whitespace) {
                    self.handle(line, line_no).await?;
                }
                start = end + 1;
            }
            buf.drain(..start);
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            line_no += 1;
            let line = std::mem::take(&mut buf);
            self.handle(&line, line_no).await?;
        }
        Ok(())
    }

    fn located(&self, line: u64, stream: Option<&str>, message: String) -> ConnectorError {
        located(&self.origin, line, stream, message)
    }
}

fn located(origin: &str, line: u64, stream: Option<&str>, message: String) -> ConnectorError {
    ConnectorError::BadRecord {
            location: RecordLocation {
                file: Some(origin.to_string()),
                line: Some(line),
                ..Default::default()
            },
            message: match stream {
                Some(s) => format!("stream `{s}`: {message}"),
                None => message,
            },
            hint: Some("the tap wrote something that is not a valid Singer message; its output must be one JSON message per line (logs belong on stderr)".into()),
        }
}

impl Demux {
    async fn handle(&mut self, line: &[u8], line_no: u64) -> Result<(), Fatal> {
        let origin = self.origin.clone();
        let message = parse(line)
            .map_err(|e| Fatal(self.located(line_no, e.stream.as_deref(), e.message)))?;
        match message {
            SingerMessage::Record { stream, record, .. } => {
                let Some(route) = self.routes.get_mut(stream.as_ref()) else {
                    self.not_selected(&stream, "RECORD");
                    return Ok(());
                };
                if !route.alive() {
                    return Ok(());
                }
                if route.buffer.is_none() {
                    let e = ConnectorError::BadRecord {
                        location: RecordLocation {
                            file: Some(self.origin.clone()),
                            line: Some(line_no),
                            ..Default::default()
                        },
                        message: format!("stream `{stream}`: a RECORD before the stream's SCHEMA"),
                        hint: Some("a Singer tap must send a stream's SCHEMA message before its records; this is a bug in the tap".into()),
                    };
                    route.send(Err(e)).await;
                    route.tx = None;
                    return Ok(());
                }
                route.pending_bytes += line.len() as u64 + 1;
                self.rows_since_checkpoint += 1;
                let full = match route.buffer.as_mut() {
                    Some(b) => match b.push(record, line_no) {
                        Ok(()) => b.is_full(),
                        Err(e) => {
                            if route.on_error == OnError::Fail {
                                route.send(Err(e)).await;
                                route.tx = None;
                                return Ok(());
                            }
                            route
                                .send(Ok(Message::Quarantine(quarantine_of(&e, record)?)))
                                .await;
                            false
                        }
                    },
                    None => false,
                };
                if full {
                    route.flush().await;
                }
            }
            SingerMessage::Schema {
                stream,
                schema,
                key_properties,
                ..
            } => {
                let Some(route) = self.routes.get_mut(stream.as_ref()) else {
                    return Ok(());
                };
                let mapped = stream_schema(&stream, &schema, &key_properties)
                    .map_err(|e| Fatal(located(&origin, line_no, Some(&stream), e.to_string())))?;
                let changed = route
                    .schema
                    .as_ref()
                    .is_none_or(|old| old.schema != mapped.schema);
                if changed {
                    route.flush().await;
                    route.buffer = Some(RecordBuffer::new(
                        &mapped,
                        &self.origin,
                        route.batch_size,
                        route.on_error,
                    ));
                    route.send(Ok(Message::Schema(mapped.schema.clone()))).await;
                    route.sent_schema = true;
                    route.schema = Some(mapped);
                }
            }
            SingerMessage::State { value } => {
                self.states += 1;
                let due = self
                    .last_checkpoint
                    .is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY)
                    || self.rows_since_checkpoint >= CHECKPOINT_ROWS;
                if !due {
                    self.last_state = Some(value);
                    return Ok(());
                }
                self.rows_since_checkpoint = 0;
                self.last_checkpoint = Some(std::time::Instant::now());
                let at = now_ns();
                let state = checkpoint_state(&value, at);
                let position = format!("STATE #{} (line {line_no})", self.states);
                for route in self.routes.values_mut() {
                    if !route.alive() {
                        continue;
                    }
                    route.flush().await;
                    route.ensure_schema().await;
                    route
                        .send(Ok(Message::Checkpoint(Checkpoint {
                            state: state.clone(),
                            position: position.clone(),
                        })))
                        .await;
                }
                self.last_state = Some(value);
            }
            SingerMessage::ActivateVersion { stream, version } => {
                if let Some(route) = self.routes.get(stream.as_ref()) {
                    tracing::debug!(
                        "{}: stream `{}` activated version {version}",
                        self.label,
                        route.name
                    );
                }
            }
            SingerMessage::Batch {
                stream,
                format,
                compression,
                manifest,
            } => {
                let Some(route) = self.routes.get_mut(stream.as_ref()) else {
                    self.not_selected(&stream, "BATCH");
                    return Ok(());
                };
                if !route.alive() {
                    return Ok(());
                }
                if route.buffer.is_none() {
                    let e = located(
                        &origin,
                        line_no,
                        Some(&stream),
                        "a BATCH before the stream's SCHEMA".into(),
                    );
                    route.send(Err(e)).await;
                    route.tx = None;
                    return Ok(());
                }
                route.flush().await;
                let dir = self.dir.clone();
                for url in &manifest {
                    let result = route
                        .load_batch_file(&dir, url, &format, compression.as_deref())
                        .await;
                    if let Err(e) = result {
                        let e = match e {
                            ConnectorError::BadRecord { .. } => e,
                            other => located(
                                &origin,
                                line_no,
                                Some(&stream),
                                format!("BATCH file `{url}`: {other}"),
                            ),
                        };
                        route.send(Err(e)).await;
                        route.tx = None;
                        return Ok(());
                    }
                }
                if let Some(b) = route.buffer.as_mut() {
                    b.set_origin(&self.origin);
                }
            }
            SingerMessage::Other { kind } => {
                tracing::debug!(
                    "{}: skipped a `{kind}` message (line {line_no})",
                    self.label
                );
            }
        }
        Ok(())
    }

    fn not_selected(&mut self, stream: &str, what: &str) {
        if self.unknown_warned.insert(stream.to_string(), ()).is_none() {
            tracing::debug!(
                "{}: skipping {what} messages of stream `{stream}`, which this run does not read",
                self.label
            );
        }
    }

    async fn fail_all(&mut self, e: &ConnectorError) {
        let text = e.to_string();
        let hint = sluice_core::error::Classify::hint(e);
        for route in self.routes.values_mut() {
            if route.alive() {
                let err = match e {
                    ConnectorError::Cancelled => ConnectorError::Cancelled,
                    ConnectorError::BadRecord {
                        location,
                        message,
                        hint,
                    } => ConnectorError::BadRecord {
                        location: location.clone(),
                        message: message.clone(),
                        hint: hint.clone(),
                    },
                    _ => ConnectorError::External {
                        message: match &hint {
                            Some(h) => format!("{text}\n  hint: {h}"),
                            None => text.clone(),
                        },
                        source: None,
                        retryable: false,
                    },
                };
                route.send(Err(err)).await;
                route.tx = None;
            }
        }
    }

    /// The tap ended well: the rest of the rows, then a final checkpoint
    /// for every stream.
    async fn finish(&mut self) {
        let at = now_ns();
        for route in self.routes.values_mut() {
            if !route.alive() {
                continue;
            }
            route.flush().await;
            route.ensure_schema().await;
            let (state, position) = match &self.last_state {
                Some(v) => (
                    checkpoint_state(v, at),
                    format!("STATE #{} (the tap's last)", self.states),
                ),
                None => (
                    route.input_state.clone().unwrap_or(Value::Null),
                    "end of the tap's output (it sent no STATE)".to_string(),
                ),
            };
            route
                .send(Ok(Message::Checkpoint(Checkpoint { state, position })))
                .await;
        }
    }
}

fn quarantine_of(e: &ConnectorError, record: &[u8]) -> Result<arrow::array::RecordBatch, Fatal> {
    let (file, line, column, reason) = match e {
        ConnectorError::BadRecord {
            location, message, ..
        } => (
            location.file.clone(),
            location.line,
            location.column.clone(),
            message.clone(),
        ),
        other => (None, None, None, other.to_string()),
    };
    let mut q = sluice_core::quarantine::QuarantineBuilder::default();
    q.push(&sluice_core::quarantine::QuarantinedRow {
        file,
        line,
        column,
        value: None,
        reason,
        record: Some(String::from_utf8_lossy(record).into_owned()),
    });
    q.finish()
        .map_err(|e| Fatal(ConnectorError::Internal(e.to_string())))
}

/// The path of a `file://` URL (or a plain path), relative to `dir`.
pub fn local_path(dir: &Path, url: &str) -> Option<PathBuf> {
    let path = match url.strip_prefix("file://") {
        Some(rest) => rest,
        None if url.contains("://") => return None,
        None => url,
    };
    Some(dir.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_composed_from_each_streams_own_checkpoint() {
        let old = checkpoint_state(
            &json!({"bookmarks": {"a": {"v": 1}, "b": {"v": 1}, "c": {"v": 1}}, "currently_syncing": "b"}),
            10,
        );
        let new = checkpoint_state(
            &json!({"bookmarks": {"a": {"v": 2}, "b": {"v": 2}, "c": {"v": 2}}}),
            20,
        );
        // a committed the new state, b only the old one, c starts over.
        let s = compose_state(&[
            ("a".into(), Some(new.clone())),
            ("b".into(), Some(old.clone())),
            ("c".into(), None),
        ])
        .unwrap();
        assert_eq!(s, json!({"bookmarks": {"a": {"v": 2}, "b": {"v": 1}}}));
        // Non-standard states: the oldest wins.
        let x = checkpoint_state(&json!({"cursor": 5}), 10);
        let y = checkpoint_state(&json!({"cursor": 9}), 20);
        assert_eq!(
            compose_state(&[("a".into(), Some(y)), ("b".into(), Some(x))]),
            Some(json!({"cursor": 5}))
        );
        assert_eq!(compose_state(&[("a".into(), None)]), None);
    }
}
