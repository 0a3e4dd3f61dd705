//! The transform layer: dbt projects, loaded as dbt loads them.
//!
//! Today: [`project`] reads `dbt_project.yml` and finds the project's files
//! (models, seeds, macros, singular tests, snapshots, analyses, schema YAML);
//! [`config`] resolves a node's configuration from the hierarchical
//! `models:`/`seeds:`/… trees the way dbt does (`+` keys, folder nesting,
//! additive `tags`, merged `meta`); [`properties`] reads version-2 schema
//! YAML (models, columns, data tests, sources); [`jinja`] renders a model
//! with dbt's context (ref, source, config, var, env_var, is_incremental,
//! this, target, project macros); [`manifest`] compiles the project: final
//! configs (project trees < properties < `config()`), relations
//! (`generate_schema_name`, aliases), compiled SQL, dependencies and build
//! order (cycles refused); [`seed`] reads a seed CSV into Arrow batches with
//! the column types dbt would infer; [`testing`] turns data tests into
//! nodes; [`select`] is dbt's selection syntax; [`engine`] runs
//! materializations (the lake: [`engine::lake`]); [`runner`] runs `seed`,
//! `run`, `test` and `build` with dbt's skip rules; [`artifacts`] writes
//! `manifest.json` and `run_results.json`; [`unit`] runs YAML unit tests
//! in-process; [`catalog`] builds `catalog.json` from what the engine says
//! about each relation, and [`site`] the docs page `index.html`;
//! [`packages`] reads `packages.yml` and installs local packages (the
//! installed ones load with [`project::DbtProject::load_packages`] and
//! compile with the root project); [`live`] renders a node whose Jinja runs
//! database calls (`run_query`, `statement`) right before it runs, with the
//! engine reachable.

pub mod artifacts;
pub mod catalog;
pub mod config;
pub mod engine;
pub mod error;
pub mod jinja;
pub mod live;
pub mod manifest;
pub mod packages;
pub mod profiles;
pub mod project;
pub mod properties;
pub mod runner;
pub mod seed;
pub mod select;
pub mod site;
pub mod testing;
pub mod unit;

pub use error::{Result, TransformError};
pub use project::{DbtProject, FileKind, ProjectFile};
