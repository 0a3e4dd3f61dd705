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
}
