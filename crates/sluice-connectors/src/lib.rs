//! Sluice's built-in connectors.
//!
//! - [`files`]: `type: files` sources (CSV, JSON Lines, Parquet).
//! - [`file_dest`]: `type: parquet | csv | jsonl` destinations.
//! - [`db`]: what every database source shares (selection, settings, retries, key ranges).
//! - [`postgres`]: PostgreSQL source and destination.
//! - [`mysql`]: MySQL/MariaDB source.
//! - [`sqlite`]: SQLite source (a local database file).
//! - [`singer`]: Singer taps and targets: SCHEMA ↔ Arrow schema mapping, RECORD encoding, targets as destinations.
//! - [`cursor`]: incremental replication by a cursor column, shared by
//!   every source that filters rows by value.
//! - [`conformance`]: checks any [`Source`](sluice_core::connector::Source)
//!   against the connector contract; every connector's tests run it.

pub mod conformance;
pub mod cursor;
pub mod db;
pub mod file_dest;
pub mod files;
pub mod mysql;
pub mod postgres;
pub mod singer;
pub mod sqlite;

pub use files::FileSource;
