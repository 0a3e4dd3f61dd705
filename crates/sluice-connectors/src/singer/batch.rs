//! Files of Singer BATCH messages: JSON Lines (plain or gzip) and Parquet.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_core::connector::{ConnectorError, Result};

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| ConnectorError::External {
        message: format!("cannot open BATCH file `{}`: {e}", path.display()),
        source: Some(Box::new(e)),
        retryable: false,
    })
}

/// A reader of a JSON Lines BATCH file's lines.
pub fn open_jsonl(path: &Path, compression: Option<&str>) -> Result<Box<dyn BufRead + Send>> {
    let file = open(path)?;
    let gzip = match compression {
        Some("gzip") => true,
        None | Some("none") => path.extension().is_some_and(|e| e == "gz"),
        Some(other) => {
            return Err(ConnectorError::Unsupported {
                connector: "singer",
                what: format!("BATCH compression `{other}`"),
                hint: Some("use `gzip` or `none` in the tap's `batch_config`".into()),
            });
        }
    };
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(BufReader::new(file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 20, file))
    })
}

/// The batches of a Parquet BATCH file, each cast to `schema` (columns by
/// name; a column the file lacks is all NULL). A value that does not cast
/// fails the file, never becomes NULL.
pub fn read_parquet(
    path: &Path,
    schema: &SchemaRef,
    batch_size: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
    let shown = path.display().to_string();
    let bad = move |e: &dyn std::fmt::Display| ConnectorError::External {
        message: format!("BATCH file `{shown}`: {e}"),
        source: None,
        retryable: false,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(open(path)?)
        .map_err(|e| bad(&e))?
        .with_batch_size(batch_size.max(1))
        .build()
        .map_err(|e| bad(&e))?;
    let schema = schema.clone();
    Ok(reader.map(move |b| {
        let b = b.map_err(|e| bad(&e))?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| match b.column_by_name(f.name()) {
                Some(c) => arrow::compute::cast_with_options(
                    c,
                    f.data_type(),
                    &arrow::compute::CastOptions {
                        safe: false,
                        ..Default::default()
                    },
                )
                .map_err(|e| {
                    bad(&format!(
                        "column `{}` cannot be read as {}: {e}",
                        f.name(),
                        f.data_type()
                    ))
                }),
                None => Ok(new_null_array(f.data_type(), b.num_rows())),
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(schema.clone(), columns).map_err(|e| bad(&e))
    }))
}
