//! The orchestrator: one asset graph over loads, models and checks, a
//! planner, and an executor that runs steps in parallel under limits, with
//! retries, timeouts and cancellation; schedules (cron with time zones) and
//! time partitions.
//!
//! It never imports connectors, transform, quality or lake: it calls a
//! [`StepRunner`](executor::StepRunner), so every behaviour is tested with
//! stand-in runners.

/// Cron schedules evaluated in a time zone.
pub mod cron;
pub mod executor;
pub mod graph;
/// Time partitions (hourly, daily, weekly, monthly) and their keys.
pub mod partition;
pub mod plan;
pub mod select;

pub use executor::{
    Event, ExecOptions, Limits, Observer, RetryPolicy, RunOutcome, RunReport, StepContext,
    StepError, StepOutput, StepPolicy, StepReport, StepRunner, StepStatus, execute,
};
pub use graph::{Asset, AssetGraph, AssetKind, GraphError};
pub use plan::{Plan, PlanOptions, Step, StepKind};
pub use select::{SelectError, select};
