//! CLI integration tests: the real `sluice` binary on fixture projects.
//!
//! One test binary for all of them (each links the whole stack).

#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failures")]

mod support;

mod config_errors;
mod crash;
mod destinations;
mod incremental;
mod malformed;
mod mysql;
mod orchestrate;
mod pg_source;
mod plugins;
mod postgres_dest;
mod quality;
mod quality_load;
mod quickstart;
mod runs;
mod s3;
mod schema;
mod serve;
mod singer_cli;
mod singer_run;
mod singer_tap;
mod singer_target;
mod sql_state;
mod sqlite;
mod transform;
mod transform_pg;
