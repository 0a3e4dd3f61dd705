//! The `sluice` binary's library: commands, the extract-load engine, output.
//!
//! This crate wires the others together (the "dispatch" role in
//! ARCHITECTURE.md): it reads the project, builds sources and destinations
//! from the [`registry`], runs streams through the [`engine`], records state
//! and runs in the store, and prints results.
//!
//! ```text
//!  cli.rs ── parse args ─► commands/* ─► project.rs (sluice.yml, .env, lake, store)
//!                                         │
//!                   registry.rs builds ◄──┘      engine.rs: per stream
//!                   Source / Destination  ─────► read ─► check keys ─► write ─► commit ─► state
//!                                                  progress.rs (bars)  output.rs (summary, --json)
//! ```

#![allow(clippy::print_stdout)]

pub mod alerts;
pub mod assets;
pub mod check_report;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod history;
pub mod lineage;
pub mod orchestrate;
pub mod output;
pub mod plan;
pub mod plugins;
pub mod progress;
pub mod project;
pub mod quality;
pub mod registry;
