//! Data-quality checks for Sluice.
//!
//! One check language (`checks:` in `sluice.yml`, next to streams and
//! tables) and one result format for every check Sluice runs:
//!
//! - [`spec`]: checks as written → validated [`Check`]s, with located
//!   config errors (unknown options, bad regexes, malformed thresholds), and
//!   [`Check::bind`] against a table's schema before any row is read;
//! - [`sql`]: checks → SQL for DataFusion or PostgreSQL, every
//!   aggregate-shaped check of a table fused into one scan;
//! - [`rows`]: row checks evaluated on each Arrow batch during a load, as
//!   DataFusion physical expressions;
//! - [`run`]: running a table's checks through a [`Backend`];
//! - [`result`]: [`CheckResult`], thresholds and `mostly` turned into a
//!   [`Status`];
//! - [`anomaly`]: robust z-scores over a metric's history.
//!
//! It reads no file and knows no store: the binary hands it a backend (the
//! lake or a PostgreSQL database) and the history of earlier results.

pub mod anomaly;
pub mod result;
pub mod rows;
pub mod run;
pub mod spec;
pub mod sql;
pub mod threshold;

pub use result::{CheckResult, Phase, Status, Summary};
pub use rows::{BatchFailures, FailedRow, RowChecker};
pub use run::{Backend, History, run_table, validate};
pub use spec::{Check, Kind, compile};
pub use sql::Dialect;

#[cfg(test)]
mod test_support {
    use std::path::Path;

    use sluice_core::config::{CheckList, ConfigError};

    use crate::spec::{Check, compile};

    #[derive(serde::Deserialize)]
    struct Holder {
        checks: CheckList,
    }

    /// The checks of a `checks:` YAML list, on table `shop.orders`.
    pub fn compile_text(text: &str) -> Result<Vec<Check>, ConfigError> {
        let h: Holder = serde_saphyr::from_str(text).expect("yaml");
        compile("shop.orders", &h.checks, Path::new("sluice.yml"))
    }
}
