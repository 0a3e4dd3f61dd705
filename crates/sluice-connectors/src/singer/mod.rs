//! Singer: taps and targets speaking the Singer message protocol.
//!
//! - `schema.rs`: a SCHEMA message's JSON Schema → the stream's Arrow schema
//!   (null unions, `anyOf`/`oneOf`, date/time formats, `singer.decimal` and
//!   `x-singer.decimal`, nested objects and arrays), with a note for every
//!   column kept as JSON text and errors that name the stream and JSON path.
//! - `encode.rs`: the other way: an Arrow schema → a SCHEMA message's JSON
//!   Schema, record batches → RECORD lines (arrow-json encoders, no JSON tree
//!   per row), STATE and ACTIVATE_VERSION lines.
//! - `tap.rs` (with `decode.rs`, `batch.rs`): a Singer tap as a source.
//! - `target.rs`: a Singer target as a destination (`type: singer` under
//!   `destinations:`): one target process per stream, and only the STATE the
//!   target echoes counts as committed.
//! - `message.rs`: one line of Singer output → a message.
//! - `process.rs`: running a plugin (files, stderr to the log, exit errors).

pub mod schema;

pub use schema::{ColumnNote, SchemaError, StreamSchema, TextReason, stream_schema};
pub mod batch;
pub mod decode;
pub mod encode;
pub mod lines;
pub mod message;
pub mod process;
pub mod tap;
pub mod target;

pub use tap::{SingerTap, TapSettings};
