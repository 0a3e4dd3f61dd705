//! The lake: Delta tables under `.sluice/lake/` (or any object-store URL),
//! written with exactly-once checkpoints and queried with DataFusion.
//!
//! ```text
//!  StreamWriter (writer.rs)                       Delta table <lake>/<schema>/<table>/
//!   write(batch) ─ normalize ─ evolve ─ conform ─► parquet files (not yet visible)
//!   checkpoint(seq) ─┐                            ┌─ _delta_log/000…N.json
//!   finish()  ───────┴─► commit.rs: one commit = ─┤   add/remove/metadata actions
//!                                                  ├─ txn {appId: sluice:<stream>, version: seq}
//!                                                  └─ commitInfo.sluice {run_id, seq, state, position}
//!  merge.rs: merge mode stages parquet under _sluice_staging/<run>/, dedups keys,
//!            then one Delta MERGE (or a plain write into an empty table).
//!  catalog.rs: list tables, rows, versions, last load.   sql.rs: DataFusion catalog over the lake.
//!  views.rs: views as `_sluice_view.json` files (SQL planned when a query names them).
//! ```
//!
//! The checkpoint (the source's state) lives in the same atomic Delta commit as
//! the data it covers, so [`LakeDestination::committed_state`](sluice_core::connector::Destination::committed_state)
//! can always tell the engine exactly which state the table reflects — even
//! when the process died between the commit and the state store's update.

mod catalog;
mod commit;
mod destination;
mod error;
mod location;
mod merge;
mod schema;
mod sql;
mod views;
mod writer;

pub use catalog::{TableFacts, TableInfo};
pub use commit::{CommitMeta, SLUICE_COMMIT_KEY};
pub use destination::LakeDestination;
pub use error::{LakeError, Result};
pub use location::Lake;
pub use schema::lake_schema;
pub use sql::QueryEngine;
pub use views::{RelationKind, VIEW_FILE, ViewDef};

#[cfg(test)]
mod tests;
