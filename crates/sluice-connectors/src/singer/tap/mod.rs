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
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::Value;
use sluice_core::config::{SingerStream, StreamOptions};
use sluice_core::connector::{
    ColumnDetail, ConnectorError, MessageStream, ReadRequest, Result, Source, StreamInfo,
};
use tokio::sync::{OnceCell, mpsc};

use super::process::{Plugin, RunFiles};

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

mod catalog;
mod demux;
mod state;

pub use catalog::forget_cached_catalog;
use catalog::{Catalog, json_type_of};
pub use demux::local_path;
use demux::{Demux, Route};
pub use state::compose_state;

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
        // `streams.<name>` keys must name streams of the tap (by their Sluice
        // name), or their settings would silently not apply.
        if let Some(unknown) = self
            .streams
            .keys()
            .find(|k| !catalog.streams.iter().any(|s| &s.name == *k))
        {
            let names: Vec<&str> = catalog.streams.iter().map(|s| s.name.as_str()).collect();
            let hint =
                match sluice_core::config::suggest::did_you_mean(unknown, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the tap's streams: {}", names.join(", ")),
                };
            return Err(ConnectorError::config(
                format!(
                    "source `{}`: `streams.{unknown}` names no stream of the tap (streams are named after their tap_stream_id as an identifier, e.g. `public-orders` → `public_orders`)",
                    self.name
                ),
                Some(hint),
            ));
        }
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
                    schema: None,
                    buffer: None,
                    tx: Some(tx),
                    on_error: r.on_error,
                    batch_size: r.batch_size,
                    pending_bytes: 0,
                    input_state: r.state.clone(),
                },
            );
        }
        // Messages name a stream by its `tap_stream_id` or, for classic taps,
        // by the catalog entry's `stream`: both lead to the same route.
        let mut aliases = HashMap::new();
        for s in &chosen {
            if let Some(name) = &s.stream
                && !catalog.streams.iter().any(|o| &o.tap_stream_id == name)
            {
                aliases.insert(name.clone(), s.tap_stream_id.clone());
            }
        }
        let demux = Demux {
            label: label.clone(),
            origin: Arc::from(format!("output of {label}")),
            dir: dir.clone(),
            routes,
            aliases,
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
