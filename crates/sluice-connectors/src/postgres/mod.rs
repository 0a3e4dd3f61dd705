//! PostgreSQL: a source (binary `COPY … TO STDOUT` decoded into Arrow) and a
//! destination (binary `COPY` into staging, then insert/upsert in one
//! transaction).
//!
//! - `connect.rs`: URLs, TLS (`sslmode`), retries, errors that say what to check.
//! - `catalog.rs`: discovery (tables, columns, keys) and the select list.
//! - `types.rs`: PostgreSQL → Arrow type mapping (the table in its docs).
//! - `copy_out.rs`: the binary COPY decoder.
//! - `source.rs`: the `Source` (read plan, key ranges, cursor, bad rows).
//! - `destination/`: the `Destination` (DDL, binary COPY encoder, writer).

pub mod catalog;
pub mod connect;
pub mod copy_out;
pub mod destination;
pub mod source;
pub mod types;

pub use connect::PgConnector;
pub use destination::PgDestination;
pub use source::PgSource;

#[cfg(test)]
mod tests;
