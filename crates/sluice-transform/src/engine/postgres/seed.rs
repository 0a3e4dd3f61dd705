//! Seeds into PostgreSQL: the seed's Arrow batches sent by binary COPY
//! (the PostgreSQL destination's encoder and type mapping: `Int64` →
//! `bigint`, `Float64` → `double precision`, `Date32` → `date`, `Utf8` →
//! `text`, …, see `sluice_connectors::postgres::destination::ddl`).
//!
//! A table that already has the seed's columns (names, order and types) is
//! truncated and refilled, so views on it stay; anything else is replaced
//! by a new table (the caller's swap).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::{Bytes, BytesMut};
use futures::SinkExt;
use sluice_connectors::postgres::destination::copy_in::{
    CHUNK_BYTES, Col, encode_rows, header, json_options, trailer,
};
use sluice_connectors::postgres::destination::ddl::{
    Qualified, column_list, create_table, kind_of_field, sql_type, stored_schema,
};
use sluice_connectors::postgres::destination::writer::conform;
use sluice_connectors::postgres::destination::{is_other, table_columns};
use tokio_postgres::Transaction;

use super::sql::{Name, RelKind, db_error, kind_at};
use crate::engine::{EngineError, EngineResult};
use crate::seed::Seed;

/// The columns the seed is stored as (a column of NULLs only: `text`).
fn storage(seed: &Seed) -> SchemaRef {
    let stored = stored_schema(&seed.schema);
    let fields: Vec<_> = stored
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Null {
                Arc::new(Field::new(f.name(), DataType::Utf8, true))
            } else {
                f.clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn qualified(name: &Name) -> Qualified {
    Qualified {
        schema: name.schema.clone(),
        name: name.name.clone(),
    }
}

/// When `name` is a table with the seed's columns: truncate it and copy
/// the seed in (`Some(rows)`); else `None` (nothing done).
pub(super) async fn refill(
    tx: &Transaction<'_>,
    name: &Name,
    seed: &Seed,
) -> EngineResult<Option<u64>> {
    if kind_at(tx, name).await? != Some(RelKind::Table) {
        return Ok(None);
    }
    let stored = storage(seed);
    let existing = table_columns(tx.client(), &qualified(name))
        .await
        .map_err(|e| EngineError::new(e.to_string()))?;
    let Some(existing) = existing else {
        return Ok(None);
    };
    let same = existing.fields().len() == stored.fields().len()
        && existing.fields().iter().zip(stored.fields()).all(|(e, s)| {
            e.name() == s.name()
                && is_other(e).is_none()
                && sql_type(&kind_of_field(e)) == sql_type(&kind_of_field(s))
        });
    if !same {
        return Ok(None);
    }
    tx.batch_execute(&format!("TRUNCATE TABLE {}", name.sql()))
        .await
        .map_err(|e| db_error(&format!("truncating `{name}`"), &e, None))?;
    copy(tx, name, &stored, &seed.batches).await.map(Some)
}

/// Create the table `name` for the seed and copy its rows in; the rows.
pub(super) async fn create(tx: &Transaction<'_>, name: &Name, seed: Seed) -> EngineResult<u64> {
    let stored = storage(&seed);
    tx.batch_execute(&create_table(&qualified(name), &stored, None, false))
        .await
        .map_err(|e| db_error(&format!("creating table `{name}`"), &e, None))?;
    copy(tx, name, &stored, &seed.batches).await
}

/// Binary COPY of `batches` (conformed to `stored`) into `name`.
async fn copy(
    tx: &Transaction<'_>,
    name: &Name,
    stored: &SchemaRef,
    batches: &[RecordBatch],
) -> EngineResult<u64> {
    let doing = format!("copying the seed into `{name}`");
    let statement = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        name.sql(),
        column_list(stored)
    );
    let sink = tx
        .copy_in::<_, Bytes>(&statement)
        .await
        .map_err(|e| db_error(&doing, &e, None))?;
    let mut sink = Box::pin(sink);
    let mut buf = BytesMut::with_capacity(CHUNK_BYTES + 64 * 1024);
    header(&mut buf);
    let options = json_options();
    for batch in batches {
        let batch = conform(batch, stored, &qualified(name))
            .map_err(|e| EngineError::new(format!("seed `{name}`: {e}")))?;
        let rows = batch.num_rows();
        let mut row = 0;
        while row < rows {
            // Encoders borrow the batch and are not Send: built per chunk.
            row = {
                let fields = batch.schema().fields().clone();
                let mut cols = Vec::with_capacity(fields.len());
                for (i, f) in fields.iter().enumerate() {
                    cols.push(
                        Col::new(&kind_of_field(f), batch.column(i), f, &options).map_err(|e| {
                            EngineError::new(format!("{doing}: column `{}`: {e}", f.name()))
                        })?,
                    );
                }
                encode_rows(&mut cols, row, rows, None, &mut buf).map_err(|(r, c, e)| {
                    EngineError::new(format!(
                        "{doing}: row {} of the batch, column `{}`: {e}",
                        r + 1,
                        fields[c].name()
                    ))
                })?
            };
            if buf.len() >= CHUNK_BYTES {
                sink.send(buf.split().freeze())
                    .await
                    .map_err(|e| db_error(&doing, &e, None))?;
            }
        }
    }
    trailer(&mut buf);
    sink.send(buf.split().freeze())
        .await
        .map_err(|e| db_error(&doing, &e, None))?;
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| db_error(&doing, &e, None))
}
