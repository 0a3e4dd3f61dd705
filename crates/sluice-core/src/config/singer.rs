//! Singer plugins as sources (`type: singer` under `sources:`) and
//! destinations (`type: singer` under `destinations:`).
//!
//! A plugin is a Singer tap or target: an executable that speaks the Singer
//! message protocol on stdout/stdin. It comes from PyPI (`pip:`, installed
//! into its own venv under `.sluice/plugins/<plugin>/`) or is any executable
//! on `PATH` (`executable:`).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::model::with_stream_options;

with_stream_options! {
    /// `type: singer` source: a Singer tap.
    ///
    /// ```yaml
    /// sources:
    ///   csvtap:
    ///     type: singer
    ///     plugin: tap-csv-folder
    ///     pip: tap-csv-folder==0.0.1a1
    ///     config: { csv_files_definition: files.json }
    ///     select: [orders, customers]          # default: every stream of the catalog
    ///     streams:
    ///       orders: { cursor: updated_at, columns: [id, updated_at, total] }
    /// ```
    pub struct SingerSource {
        /// Always `singer`.
        #[serde(rename = "type")]
        pub kind: String,
        /// The plugin's name: its executable and its folder under `.sluice/plugins/`.
        pub plugin: String,
        /// The pip requirement that installs it (`tap-foo==1.2.3`, a git URL,
        /// a local path). Default: the plugin's name, unless `executable` is set.
        #[serde(default)]
        pub pip: Option<String>,
        /// Run this executable (a path, or a name looked up on `PATH`)
        /// instead of the one pip installs.
        #[serde(default)]
        pub executable: Option<String>,
        /// The tap's own configuration, passed as `--config` (a JSON file
        /// written for the run; values may use `${VAR}`).
        #[serde(default)]
        pub config: Option<serde_json::Value>,
        /// A catalog file (relative to the project) to use instead of running
        /// `--discover`.
        #[serde(default)]
        pub catalog: Option<String>,
        /// Streams to read, by name (`*` and `?` wildcards). Default: every
        /// stream the tap offers.
        #[serde(default, deserialize_with = "crate::config::one_or_many_opt")]
        pub select: Option<Vec<String>>,
        /// Environment variables for the plugin's process.
        #[serde(default)]
        pub env: IndexMap<String, String>,
        /// Per-stream settings, by the tap's stream name.
        #[serde(default)]
        pub streams: IndexMap<String, SingerStream>,
    }
}

with_stream_options! {
    /// One stream of a Singer tap (`streams.<name>:`).
    ///
    /// `cursor` becomes the stream's `replication-key` and `replication`
    /// its `replication-method` (`INCREMENTAL` / `FULL_TABLE`) in the
    /// catalog handed to the tap.
    pub struct SingerStream {
        /// Columns to select (default: all). Key and replication-key columns
        /// are always selected, as Singer requires.
        #[serde(default, deserialize_with = "crate::config::one_or_many_opt")]
        pub columns: Option<Vec<String>>,
    }
}

/// `type: singer` destination: a Singer target.
///
/// ```yaml
/// destinations:
///   jsonl:
///     type: singer
///     plugin: target-jsonl
///     pip: target-jsonl
///     config: { destination_path: out }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SingerDestination {
    /// Always `singer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The plugin's name: its executable and its folder under `.sluice/plugins/`.
    pub plugin: String,
    /// The pip requirement that installs it. Default: the plugin's name,
    /// unless `executable` is set.
    #[serde(default)]
    pub pip: Option<String>,
    /// Run this executable (a path, or a name on `PATH`) instead.
    #[serde(default)]
    pub executable: Option<String>,
    /// The target's own configuration, passed as `--config`.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Environment variables for the plugin's process.
    #[serde(default)]
    pub env: IndexMap<String, String>,
}

/// How a plugin is obtained: what `plugin`, `pip` and `executable` say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginSpec {
    /// The plugin's name.
    pub name: String,
    /// Its pip requirement, when it is installed with pip.
    pub pip: Option<String>,
    /// An executable to run instead of the venv's.
    pub executable: Option<String>,
}

impl SingerSource {
    /// The plugin this source runs.
    pub fn plugin_spec(&self) -> PluginSpec {
        plugin_spec(&self.plugin, &self.pip, &self.executable)
    }

    /// Checks that need no I/O; errors name the source.
    pub fn validate(&self, source: &str) -> Result<(), String> {
        check_plugin(&format!("source `{source}`"), &self.plugin)?;
        if let Some(c) = &self.config
            && !c.is_object()
        {
            return Err(format!(
                "source `{source}`: `config` must be a mapping (the tap's own settings)"
            ));
        }
        Ok(())
    }
}

impl SingerDestination {
    /// The plugin this destination runs.
    pub fn plugin_spec(&self) -> PluginSpec {
        plugin_spec(&self.plugin, &self.pip, &self.executable)
    }

    /// Checks that need no I/O; errors name the destination.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        check_plugin(&format!("destination `{name}`"), &self.plugin)?;
        if let Some(c) = &self.config
            && !c.is_object()
        {
            return Err(format!(
                "destination `{name}`: `config` must be a mapping (the target's own settings)"
            ));
        }
        Ok(())
    }
}

fn plugin_spec(name: &str, pip: &Option<String>, executable: &Option<String>) -> PluginSpec {
    PluginSpec {
        name: name.to_string(),
        pip: pip
            .clone()
            .or_else(|| executable.is_none().then(|| name.to_string())),
        executable: executable.clone(),
    }
}

/// A plugin name is a folder name under `.sluice/plugins/`.
pub fn check_plugin(what: &str, plugin: &str) -> Result<(), String> {
    let ok = !plugin.is_empty()
        && plugin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !plugin.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: plugin name `{plugin}` must be letters, digits, `-`, `_` or `.` (it names the plugin's folder under .sluice/plugins/); put a path in `executable:` instead"
        ))
    }
}
