//! The tap's catalog: discovery (cached), parsing, and the catalog handed
//! to a run with the selection from sluice.yml as metadata.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use sluice_core::config::{Replication, StreamOptions};
use sluice_core::connector::{ConnectorError, Result};
use sluice_core::names::sanitize_identifier;
use tokio::io::AsyncReadExt;
use tokio::sync::OnceCell;

use crate::singer::process::{Plugin, RunFiles};
use crate::singer::schema::{StreamSchema, stream_schema};

use super::*;

/// The tap's catalog.
#[derive(Debug)]
pub(super) struct Catalog {
    pub(super) raw: Value,
    pub(super) streams: Vec<CatalogStream>,
    /// What `--about --format=json` said (`None`: the tap has no `--about`).
    pub(super) about: Option<Value>,
}

impl Catalog {
    /// Built on the Meltano Singer SDK (its taps run every stream with the
    /// discovered settings when given no catalog).
    pub(super) fn is_sdk(&self) -> bool {
        self.about
            .as_ref()
            .is_some_and(|a| a.get("sdk_version").is_some())
    }

    /// The flag that passes the catalog: `--properties` for taps that say
    /// they only know that one, `--catalog` otherwise.
    pub(super) fn catalog_flag(&self) -> &'static str {
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
pub(super) struct CatalogStream {
    /// Position in `raw["streams"]`.
    pub(super) index: usize,
    pub(super) tap_stream_id: String,
    /// The entry's `stream` (what classic taps put in their messages, e.g.
    /// `orders` for `tap_stream_id` `public-orders`).
    pub(super) stream: Option<String>,
    /// The Sluice stream name (an identifier).
    pub(super) name: String,
    pub(super) schema: StreamSchema,
    pub(super) replication_key: Option<String>,
    pub(super) forced_method: Option<String>,
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

    pub(super) fn cache_dir(&self) -> PathBuf {
        cache_dir(&self.plugin.dir, &self.name)
    }

    pub(super) async fn catalog(&self) -> Result<Arc<Catalog>> {
        self.catalog
            .get_or_try_init(|| async { self.load_catalog().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// The catalog: the configured file, the cached discovery when the
    /// plugin and its config are unchanged, or a fresh `--discover`.
    pub(super) async fn load_catalog(&self) -> Result<Catalog> {
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
    pub(super) async fn about(&self) -> Option<Value> {
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
    pub(super) fn cache_key(&self) -> String {
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

    pub(super) async fn discover_now(&self) -> Result<Value> {
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

    pub(super) fn parse_catalog(&self, raw: Value, about: Option<Value>) -> Result<Catalog> {
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
            let stream = entry
                .get("stream")
                .and_then(Value::as_str)
                .filter(|s| *s != tap_stream_id)
                .map(str::to_string);
            streams.push(CatalogStream {
                index,
                stream,
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

    pub(super) fn selected(&self, s: &CatalogStream) -> bool {
        match &self.select {
            None => true,
            Some(patterns) => patterns.iter().any(|p| {
                crate::db::select::glob_match(p, &s.tap_stream_id)
                    || crate::db::select::glob_match(p, &s.name)
            }),
        }
    }

    /// The options of a stream: `defaults:` < source < `streams.<name>`.
    pub(super) fn stream_options(&self, s: &CatalogStream) -> StreamOptions {
        match self.streams.get(&s.name) {
            Some(o) => self.options.overlay(&o.stream_options()),
            None => self.options.clone(),
        }
    }

    /// The stream's cursor (replication key) when it is read incrementally.
    pub(super) fn cursor(&self, s: &CatalogStream) -> Option<String> {
        let o = self.stream_options(s);
        if o.replication == Some(Replication::Full) {
            return None;
        }
        o.cursor.clone().or_else(|| s.replication_key.clone())
    }

    pub(super) fn columns(&self, s: &CatalogStream) -> Option<Vec<String>> {
        self.streams.get(&s.name).and_then(|o| o.columns.clone())
    }

    /// The catalog handed to the tap: the requested streams selected, with
    /// their replication method and key, and their columns.
    pub(super) fn run_catalog(
        &self,
        catalog: &Catalog,
        requested: &[&CatalogStream],
    ) -> Result<Value> {
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

/// The JSON Schema `type` of a property, for `discover`.
/// Where a tap source's discovered catalog and `--about` are kept.
pub fn cache_dir(project_dir: &std::path::Path, source: &str) -> PathBuf {
    project_dir.join(".sluice").join("singer").join(source)
}

/// Make the next use of `source` run the tap's discovery again (new streams,
/// changed schemas): `sluice discover` does this.
pub fn forget_cached_catalog(project_dir: &std::path::Path, source: &str) {
    let dir = cache_dir(project_dir, source);
    for key in ["catalog.key", "about.key"] {
        let _ = std::fs::remove_file(dir.join(key));
    }
}

pub(super) fn json_type_of(raw: &Value, index: usize, column: &str) -> String {
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
