//! TEMPORARY (replaced by the agate-compatible reader from branch `seed`).
#![allow(missing_docs)]
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use indexmap::IndexMap;

use crate::error::{Result, TransformError};

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub delimiter: u8,
    pub column_types: IndexMap<String, String>,
    pub batch_rows: usize,
}
impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            delimiter: b',',
            column_types: IndexMap::new(),
            batch_rows: 65_536,
        }
    }
}
#[derive(Debug, Clone)]
pub struct Seed {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
}
pub fn read_seed(path: &Path, opts: &SeedOptions) -> Result<Seed> {
    let err = |m: String| TransformError::Project {
        message: format!("{}: {m}", path.display()),
        hint: None,
    };
    let f = std::fs::File::open(path).map_err(|source| TransformError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let fmt = arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(opts.delimiter);
    let (schema, _) = fmt.infer_schema(&f, None).map_err(|e| err(e.to_string()))?;
    let schema = Arc::new(schema);
    let f = std::fs::File::open(path).map_err(|source| TransformError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let r = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_format(fmt)
        .build(f)
        .map_err(|e| err(e.to_string()))?;
    let batches: Vec<RecordBatch> = r
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    Ok(Seed {
        schema,
        batches,
        rows,
    })
}
