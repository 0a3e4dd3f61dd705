//! The project file, `sluice.yml`.
//!
//! Config is typed structs; their doc comments are the reference (see
//! `docs/config.md`). Unknown keys are errors with a "did you mean"
//! suggestion, and every error names the file, line and column.
//!
//! Settings reach a stream in layers, each overriding the one before:
//!
//! ```text
//! built-in defaults < `defaults:` < source-level keys < `streams.<name>:` keys < CLI flags
//! ```
//!
//! The layering happens in one place: [`StreamOptions::overlay`], called by
//! [`ProjectConfig::streams`].

mod checks;
mod database;
pub mod env;
mod jobs;
mod load;
mod model;
mod singer;
mod sources;
pub mod suggest;

pub use checks::*;
pub use database::*;
pub use jobs::*;
pub use load::{ConfigError, LoadedProject, parse_project};
pub use model::*;
pub use singer::*;
pub use sources::*;
