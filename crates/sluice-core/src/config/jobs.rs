//! Jobs and how runs execute: `jobs:` and `orchestration:` of `sluice.yml`.
//!
//! ```yaml
//! orchestration:
//!   max_parallel: 4            # steps at once (default: defaults.parallelism, else 4)
//!   pools: {source:shop: 1}    # at most 1 step at once reading source `shop`
//!   retries: 2                 # per step, for errors worth retrying
//!   retry_delay: 10s           # first wait; doubles each retry, with jitter
//!   timeout: 1h                # per try of a step
//! jobs:
//!   nightly:
//!     select: [source:shop+]   # dbt-style selectors over the asset graph
//!     exclude: tag:slow
//!     schedule: "0 6 * * *"    # run by `sluice serve`
//!     timezone: Europe/Paris
//! ```
//!
//! Durations and schedules keep their line: they are checked (and located)
//! by the orchestrator when the project loads a job.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// One named selection of assets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Selectors (`source:shop+`, `tag:daily`, `+fct_orders`); all assets when empty.
    #[serde(default, deserialize_with = "crate::config::one_or_many")]
    pub select: Vec<String>,
    /// Selectors of assets to leave out.
    #[serde(default, deserialize_with = "crate::config::one_or_many")]
    pub exclude: Vec<String>,
    /// Run the checks attached to the assets (default true).
    #[serde(default)]
    pub checks: Option<bool>,
    /// Cron schedule (`0 6 * * *`, `@hourly`) for `sluice serve`.
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone of the schedule (default UTC).
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// Overrides `orchestration.max_parallel` for this job.
    #[serde(default)]
    pub max_parallel: Option<usize>,
    /// Overrides `orchestration.retries`.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Overrides `orchestration.retry_delay`.
    #[serde(default)]
    pub retry_delay: Option<Spanned<String>>,
    /// Overrides `orchestration.timeout`.
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// Sensors: what else starts the job under `sluice serve`.
    #[serde(default)]
    pub when: Option<SensorConfig>,
    /// Time partitions: each run builds one partition (its window reaches
    /// models as `var('partition_start')` / `var('partition_end')`);
    /// `sluice backfill` runs a range of them.
    #[serde(default)]
    pub partitions: Option<PartitionsConfig>,
}

/// How a job's runs are cut in time.
///
/// ```yaml
/// partitions: {every: daily, start: 2026-01-01, timezone: Europe/Paris}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionsConfig {
    /// `hourly`, `daily`, `weekly` (Monday to Monday) or `monthly`.
    pub every: Spanned<String>,
    /// The first partition (a date, a time or a partition key).
    pub start: Spanned<String>,
    /// IANA time zone whose wall clock places the boundaries (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Sensors of a job, checked by `sluice serve` every `every` (default 30s).
///
/// ```yaml
/// when:
///   files: incoming/*.csv        # a new or changed file
///   updated: [shop.orders]       # an asset made by another run
///   stale: {asset: shop.orders, after: 6h}   # not made for 6 hours
///   every: 10s
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    /// A glob, relative to the project: a file that is new or changed
    /// (size or modification time) since it was last seen starts a run.
    #[serde(default)]
    pub files: Option<String>,
    /// Asset keys: a successful materialization of one of them by another
    /// run starts a run.
    #[serde(default, deserialize_with = "crate::config::one_or_many")]
    pub updated: Vec<String>,
    /// An asset not made for longer than `after` starts a run (once per
    /// breach) and sends a `stale` alert.
    #[serde(default)]
    pub stale: Option<StaleConfig>,
    /// How often to look (default 30s).
    #[serde(default)]
    pub every: Option<Spanned<String>>,
}

/// A freshness sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaleConfig {
    /// The asset key.
    pub asset: String,
    /// Longest age before the asset is stale (`6h`, `1d`).
    pub after: Spanned<String>,
}

/// Where to post alerts.
///
/// ```yaml
/// orchestration:
///   alerts:
///     - url: ${ALERT_WEBHOOK_URL}
///       on: [run_failed, check_failed, stale]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The URL a JSON document is POSTed to (http or https). Kept out of
    /// logs and run history: it often carries a token.
    pub url: String,
    /// Which events: `run_failed`, `check_failed`, `stale` (default all).
    #[serde(default, deserialize_with = "crate::config::one_or_many")]
    pub on: Vec<String>,
}

/// How runs execute.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestrationConfig {
    /// Steps running at once (default: `defaults.parallelism`, else 4).
    #[serde(default)]
    pub max_parallel: Option<usize>,
    /// Most steps at once per pool. Every step of a stream is in pool
    /// `source:<source>`, every dbt node in `transform`, and a step writing
    /// to a destination in `destination:<name>`.
    #[serde(default)]
    pub pools: IndexMap<String, usize>,
    /// Retries per step for errors worth retrying (lost connections,
    /// timeouts; never bad config or failed checks). Default 0.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wait before the first retry (default 5s); doubles each retry.
    #[serde(default)]
    pub retry_delay: Option<Spanned<String>>,
    /// Longest wait between retries (default 5m).
    #[serde(default)]
    pub retry_max_delay: Option<Spanned<String>>,
    /// Longest a try of a step may take (default: none).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// Webhooks told about failed runs, failed checks and stale assets.
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
}
