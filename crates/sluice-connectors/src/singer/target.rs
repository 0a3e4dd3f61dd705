//! A Singer target as a destination (`type: singer` under `destinations:`).
//!
//! One target process per stream, fed on stdin; only the STATE the target
//! echoes on stdout counts as committed:
//!
//! ```text
//!  open(stream)   ─► spawn `TARGET --config <file>` in the project folder, stdin piped
//!  write(batch)   ─► SCHEMA (first, and when the schema changes), RECORD lines ─► stdin
//!  quarantine     ─► SCHEMA + RECORD lines of stream `<table>__quarantine`
//!  checkpoint(n)  ─► STATE {"bookmarks": {<table>: state}, "sluice": {"seq": n, "stream": id}} ─► stdin
//!                                 stdout reader ◄─ the target echoes the STATE once the
//!                                                   records before it are written
//!                    echoed seq n ─► Committed{seq n, rows sent before STATE n}
//!  finish()       ─► close stdin, wait for the exit (non-zero: error with the stderr tail)
//!  abort()        ─► kill the process
//! ```
//!
//! The stream name the target sees is the table part of the table name
//! (`shop.orders` → `orders`), its key is the stream's `primary_key`.
//! Modes:
//! - `append`: RECORD messages.
//! - `merge`: the same messages; the target upserts on `key_properties` if it
//!   can (SDK SQL targets with `load_method: upsert`, most database
//!   targets); an append-only target (target-jsonl, target-csv) appends.
//! - `overwrite` (and `--full-refresh`): records carry a `version` (the
//!   stream's start in epoch seconds, as Singer SDK taps do: SDK SQL targets
//!   keep it in an `INTEGER` column), and an ACTIVATE_VERSION after the last
//!   record tells the target to drop the rows of older versions. There is
//!   no ACTIVATE_VERSION before the first record (singer-io's database taps
//!   send one for a new table): whether the target has the table cannot be
//!   known (`.sluice/` is not committed, so every fresh checkout looks
//!   new), and SDK SQL targets answer a leading one by deleting the rows
//!   already there, so a run that failed half-way would leave a partial
//!   table. Targets without ACTIVATE_VERSION support ignore it and append.
//!   STATE is sent only at the end, after the ACTIVATE_VERSION.
//!
//! Delivery is at-least-once: a target that wrote rows and died before
//! echoing the STATE after them gets them again on the next run. A target
//! that echoes no STATE at all never advances the bookmark (a warning says
//! so), and its rows are reported as unconfirmed.
//!
//! The schema last confirmed for a table is kept in
//! `.sluice/targets/<destination>/<schema>/<table>/_schema.json`, so that
//! later runs keep known column types and refuse unsafe changes, as for the
//! other destinations.

use std::path::PathBuf;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use serde_json::Value;
use sluice_core::TableName;
use sluice_core::config::WriteMode;
use sluice_core::connector::{ConnectorError, Destination, Result, StreamWriter, WriteRequest};
use tokio::io::AsyncReadExt;

use super::process::Plugin;
use crate::file_dest::read_schema;

#[path = "target_writer.rs"]
mod writer;

/// How long `check` waits for `--about` / `--help`.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// A Singer target: every stream opens one process of it.
#[derive(Debug, Clone)]
pub struct SingerTarget {
    name: String,
    plugin: Plugin,
    config: Value,
}

impl SingerTarget {
    /// The destination `name` running `plugin` (its `label` names the
    /// destination, e.g. `target jsonl`) with `config` as its `--config`.
    pub fn new(name: &str, plugin: Plugin, config: Option<Value>) -> Self {
        SingerTarget {
            name: name.to_string(),
            plugin,
            config: config.unwrap_or_else(|| Value::Object(Default::default())),
        }
    }

    /// Where the schema last confirmed for `table` is kept.
    fn schema_dir(&self, table: &TableName) -> PathBuf {
        self.plugin
            .dir
            .join(".sluice")
            .join("targets")
            .join(&self.name)
            .join(&table.schema)
            .join(&table.name)
    }

    fn program_name(&self) -> String {
        self.plugin
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.plugin.program.display().to_string())
    }

    /// Run the plugin with `args` and no input; its stdout, or `None` when
    /// it did not finish within [`CHECK_TIMEOUT`].
    async fn ask(&self, args: &[&str]) -> Result<Option<Vec<u8>>> {
        let mut plugin = self.plugin.clone();
        plugin.label = format!("{} check", self.plugin.label);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let mut running = plugin.spawn(&args, false)?;
        let mut stdout = running.stdout.take();
        let run = async move {
            let mut out = Vec::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(1 << 20).read_to_end(&mut out).await;
            }
            drop(stdout);
            running.wait().await.map(|()| out)
        };
        match tokio::time::timeout(CHECK_TIMEOUT, run).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }
}

#[async_trait]
impl Destination for SingerTarget {
    fn kind(&self) -> &'static str {
        "singer"
    }

    fn describe(&self, table: &TableName) -> String {
        format!("{} stream `{}`", self.program_name(), table.name)
    }

    /// The executable exists and answers `--about` (Singer SDK targets) or
    /// `--help`; a target that answers neither within the time limit but
    /// exists passes, with a note.
    async fn check(&self) -> Result<String> {
        let program = &self.plugin.program;
        let meta = std::fs::metadata(program).map_err(|e| {
            ConnectorError::config(
                format!(
                    "Target executable `{}` is not usable: {e}",
                    program.display()
                ),
                Some(format!(
                    "install it with `sluice plugin add {}`, or fix `executable:`",
                    self.program_name()
                )),
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(ConnectorError::config(
                    format!("Target `{}` is not executable", program.display()),
                    Some(format!("run `chmod +x {}`", program.display())),
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let name = self.program_name();
        if let Ok(Some(out)) = self.ask(&["--about", "--format", "json"]).await
            && let Some(about) = about_line(&out)
        {
            return Ok(about);
        }
        match self.ask(&["--help"]).await {
            Ok(Some(_)) => Ok(format!("{name} (`{}`) answers `--help`", program.display())),
            Ok(None) => Ok(format!(
                "{name} (`{}`) exists; it did not answer `--help` within {} s",
                program.display(),
                CHECK_TIMEOUT.as_secs()
            )),
            Err(e) => Err(e),
        }
    }

    fn supports(&self, _mode: WriteMode) -> bool {
        true
    }

    async fn table_schema(&self, table: &TableName) -> Result<Option<SchemaRef>> {
        read_schema(&self.schema_dir(table))
    }

    async fn open(&self, request: WriteRequest) -> Result<Box<dyn StreamWriter>> {
        let schema_dir = self.schema_dir(&request.table);
        let mut plugin = self.plugin.clone();
        plugin.label = format!("{}/{}", self.plugin.label, request.table.name);
        let writer = writer::SingerWriter::open(plugin, &self.config, schema_dir, request).await?;
        Ok(Box::new(writer))
    }
}

/// One line from a Singer SDK `--about --format json`: name, version and
/// capabilities.
fn about_line(out: &[u8]) -> Option<String> {
    let about: Value = serde_json::from_slice(out).ok()?;
    let name = about.get("name")?.as_str()?;
    let mut line = name.to_string();
    if let Some(v) = about.get("version").and_then(Value::as_str) {
        line.push_str(&format!(" {v}"));
    }
    if let Some(v) = about.get("sdk_version").and_then(Value::as_str) {
        line.push_str(&format!(" (Singer SDK {v})"));
    }
    if let Some(caps) = about.get("capabilities").and_then(Value::as_array) {
        let caps: Vec<&str> = caps.iter().filter_map(Value::as_str).collect();
        if !caps.is_empty() {
            line.push_str(&format!("; capabilities: {}", caps.join(", ")));
        }
    }
    Some(line)
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
