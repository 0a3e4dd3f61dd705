//! PostgreSQL: a source (binary `COPY … TO STDOUT` decoded into Arrow) and a
//! destination (binary `COPY` into staging, then insert/upsert in one
//! transaction).
//!
//! - `connect.rs`: URLs, TLS (`sslmode`), retries, errors that say what to check.

pub mod connect;

pub use connect::PgConnector;
