//! The lake as a `Destination`.

use async_trait::async_trait;
use sluice_core::TableName;
use sluice_core::config::WriteMode;
use sluice_core::connector::{
    CommittedState, ConnectorError, Destination, StreamState, StreamWriter, WriteRequest,
};

use crate::commit::committed_meta;
use crate::location::Lake;
use crate::writer::LakeStreamWriter;

/// Writes streams into Delta tables of a lake, exactly once.
#[derive(Debug, Clone)]
pub struct LakeDestination {
    lake: Lake,
}

impl LakeDestination {
    /// A destination writing into `lake`.
    pub fn new(lake: Lake) -> Self {
        LakeDestination { lake }
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }
}

#[async_trait]
impl Destination for LakeDestination {
    fn kind(&self) -> &'static str {
        "lake"
    }

    fn describe(&self, table: &TableName) -> String {
        self.lake.describe(table)
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let tables = self.lake.list().await?;
        if let Some(root) = self.lake.local_root() {
            let probe = root.join(".sluice-write-check");
            std::fs::write(&probe, b"ok").map_err(|e| {
                ConnectorError::external(
                    format!("The lake folder `{}` is not writable", root.display()),
                    e,
                )
            })?;
            let _ = std::fs::remove_file(&probe);
        }
        Ok(format!(
            "lake at {} ({} tables)",
            self.lake.root(),
            tables.len()
        ))
    }

    fn supports(&self, _mode: WriteMode) -> bool {
        true
    }

    async fn committed_state(
        &self,
        table: &TableName,
        stream_id: &str,
    ) -> Result<CommittedState, ConnectorError> {
        let Some(t) = self.lake.open(table).await? else {
            return Ok(CommittedState::NoTable);
        };
        let meta = committed_meta(&t, stream_id).await?;
        Ok(CommittedState::Table(meta.map(|m| StreamState {
            seq: m.seq,
            value: m.state,
            run_id: Some(m.run_id),
        })))
    }

    async fn table_schema(
        &self,
        table: &TableName,
    ) -> Result<Option<arrow::datatypes::SchemaRef>, ConnectorError> {
        match self.lake.open(table).await? {
            Some(t) => Ok(Some(crate::writer::table_schema(&t, table)?)),
            None => Ok(None),
        }
    }

    async fn open(&self, request: WriteRequest) -> Result<Box<dyn StreamWriter>, ConnectorError> {
        Ok(Box::new(
            LakeStreamWriter::open(self.lake.clone(), request).await?,
        ))
    }
}
