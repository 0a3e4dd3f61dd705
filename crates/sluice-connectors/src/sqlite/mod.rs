//! SQLite: a source over a local database file (rusqlite, opened read-only).
//!
//! - `catalog.rs`: opening the file, discovery (tables, columns, keys).
//! - `types.rs`: declared type → Arrow by SQLite's affinity rules (the table in its docs).
//! - `values.rs`: parsing dates, times, decimals and booleans from SQLite values.
//! - `decode.rs`: rows into Arrow builders; values that do not fit are bad records.
//! - `deliver.rs`: bad rows to quarantine or an error, the cursor filter, messages.
//! - `source.rs`: the `Source` (read plan, key ranges on blocking threads, cursor).
//!
//! rusqlite is blocking: every query runs in `tokio::task::spawn_blocking`
//! on its own read-only connection and hands batches of `batch_size` rows
//! to the async side through a bounded channel.

pub mod catalog;
pub mod decode;
pub mod deliver;
pub mod source;
pub mod types;
pub mod values;

#[cfg(test)]
mod tests;

pub use source::SqliteSource;
