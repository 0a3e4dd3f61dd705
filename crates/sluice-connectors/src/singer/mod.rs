//! Singer: taps and targets speaking the Singer message protocol.
//!
//! - `schema.rs`: a SCHEMA message's JSON Schema → the stream's Arrow schema
//!   (null unions, `anyOf`/`oneOf`, date/time formats, `singer.decimal` and
//!   `x-singer.decimal`, nested objects and arrays), with a note for every
//!   column kept as JSON text and errors that name the stream and JSON path.

pub mod schema;

pub use schema::{ColumnNote, SchemaError, StreamSchema, TextReason, stream_schema};
pub mod batch;
pub mod decode;
pub mod message;
pub mod process;
pub mod tap;

pub use tap::{SingerTap, TapSettings};
