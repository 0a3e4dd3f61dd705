//! MySQL and MariaDB: a source (`type: mysql` or `type: mariadb`) that
//! streams rows of a `SELECT` into Arrow builders.
//!
//! - `connect.rs`: URLs, the session (UTC), retries, errors that say what to check.
//! - `catalog.rs`: discovery from `information_schema` (tables, columns, keys).
//! - `types.rs`: MySQL → Arrow type mapping (the table in its docs).
//! - `decode.rs`: rows (text or binary protocol) into Arrow batches.
//! - `source.rs`: the `Source` (read plan, key ranges, cursor, bad rows).

pub mod catalog;
pub mod connect;
pub mod decode;
pub mod source;
pub mod types;

#[cfg(test)]
mod tests;

pub use connect::MyConnector;
pub use source::{MySource, Protocol};
