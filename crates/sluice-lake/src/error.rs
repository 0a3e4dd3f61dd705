//! Errors of the lake.

use sluice_core::TableName;
use sluice_core::connector::ConnectorError;
use sluice_core::error::{Classify, ErrorDomain};

/// Errors of the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The lake location is not usable.
    #[error("Lake location `{location}`: {message}")]
    Location {
        /// The URL or path.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// delta-rs failed on a table.
    #[error("Delta table `{table}`: {source}")]
    Delta {
        /// The table.
        table: String,
        /// The cause.
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// A query failed.
    #[error("{0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// Arrow failed.
    #[error("Table `{table}`: {source}")]
    Arrow {
        /// The table.
        table: String,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Object store I/O failed.
    #[error("Lake storage: {0}")]
    Store(#[from] object_store::Error),
    /// Parquet I/O failed.
    #[error("Table `{table}`: {source}")]
    Parquet {
        /// The table.
        table: String,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The table holds a type Delta cannot store.
    #[error("Table `{table}`: {message}")]
    Unsupported {
        /// The table.
        table: String,
        /// What.
        message: String,
    },
    /// The table does not exist.
    #[error("Table `{0}` does not exist in the lake")]
    NoSuchTable(TableName),
}

/// Result of lake operations.
pub type Result<T, E = LakeError> = std::result::Result<T, E>;

impl LakeError {
    pub(crate) fn delta(table: &impl ToString, source: deltalake::DeltaTableError) -> Self {
        LakeError::Delta {
            table: table.to_string(),
            source,
        }
    }
}

impl Classify for LakeError {
    fn domain(&self) -> ErrorDomain {
        match self {
            LakeError::Location { .. }
            | LakeError::NoSuchTable(_)
            | LakeError::Query(_)
            | LakeError::Unsupported { .. } => ErrorDomain::User,
            _ => ErrorDomain::External,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            LakeError::NoSuchTable(_) => {
                Some("`sluice tables` lists the tables; `sluice run` loads them".into())
            }
            LakeError::Location { .. } => {
                Some("set `lake: { url: … }` in sluice.yml to a folder (or a `file://` URL)".into())
            }
            _ => None,
        }
    }
}

impl From<LakeError> for ConnectorError {
    fn from(e: LakeError) -> Self {
        let retryable = e.retryable();
        match e.domain() {
            ErrorDomain::User => ConnectorError::Config {
                hint: e.hint(),
                message: e.to_string(),
            },
            _ => ConnectorError::External {
                message: e.to_string(),
                source: Some(Box::new(e)),
                retryable,
            },
        }
    }
}
