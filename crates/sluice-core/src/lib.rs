//! Sluice's shared vocabulary.
//!
//! Everything other crates agree on lives here, and nothing here does I/O:
//!
//! ```text
//!  sluice.yml ──► config (typed, located errors) ──► resolved streams
//!                                                     │
//!  Source::read ──► Message stream ──────────────────►│ engine (in the binary)
//!   (Schema, Batch, Quarantine, Checkpoint, Stats)     │
//!                                                     ▼
//!                                    Destination::open ──► StreamWriter
//!                                     (write / checkpoint / finish)
//! ```
//!
//! - [`config`]: the `sluice.yml` model, `${VAR}` interpolation, "did you mean".
//! - [`connector`]: the `Source` / `Destination` traits and the messages between them.
//! - [`evolution`]: the written schema-evolution rules every destination applies.
//! - [`quarantine`]: the shape of quarantined rows.
//! - [`types`]: column type names as users write them (`decimal(12,2)`, `timestamptz`).
//! - [`error`]: error classification (user / external / internal) and hints.

pub mod config;
pub mod connector;
pub mod error;
pub mod evolution;
pub mod names;
pub mod quarantine;
pub mod types;

pub use names::TableName;
