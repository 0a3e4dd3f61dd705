//! The shape of quarantined rows.
//!
//! With `on_error: quarantine`, a source turns each bad record into one row
//! that says where it was and why it was refused, and the load goes on. The
//! destination stores them in `<table>__quarantine`:
//!
//! | column | meaning |
//! |---|---|
//! | `run_id` | the run that met the row |
//! | `quarantined_at` | when (UTC) |
//! | `stream` | `<source>.<stream>` |
//! | `file` | file (or other origin) of the record |
//! | `line` | 1-based line of the record's start, when known |
//! | `column` | the column at fault, when one is |
//! | `value` | the offending raw value, when one is |
//! | `reason` | what was wrong, in words |
//! | `record` | the whole raw record as a JSON object of texts |

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, UInt64Builder,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

static SOURCE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, true),
        Field::new("line", DataType::UInt64, true),
        Field::new("column", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, true),
    ]))
});

static STORED_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("run_id", DataType::Utf8, true),
        Field::new(
            "quarantined_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("stream", DataType::Utf8, true),
    ];
    fields.extend(
        SOURCE_SCHEMA
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true)),
    );
    Arc::new(Schema::new(fields))
});

/// Schema of the quarantine batches a source emits.
pub fn source_schema() -> SchemaRef {
    SOURCE_SCHEMA.clone()
}

/// Schema of a `<table>__quarantine` table.
pub fn stored_schema() -> SchemaRef {
    STORED_SCHEMA.clone()
}

/// One refused record.
#[derive(Debug, Clone, Default)]
pub struct QuarantinedRow {
    /// File or other origin.
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<u64>,
    /// Column at fault.
    pub column: Option<String>,
    /// Offending value.
    pub value: Option<String>,
    /// What was wrong.
    pub reason: String,
    /// The raw record as a JSON object of texts.
    pub record: Option<String>,
}

/// Collects refused records into a batch of [`source_schema`].
#[derive(Debug, Default)]
pub struct QuarantineBuilder {
    file: StringBuilder,
    line: UInt64Builder,
    column: StringBuilder,
    value: StringBuilder,
    reason: StringBuilder,
    record: StringBuilder,
    len: usize,
}

impl QuarantineBuilder {
    /// Add one row.
    pub fn push(&mut self, row: &QuarantinedRow) {
        self.file.append_option(row.file.as_deref());
        self.line.append_option(row.line);
        self.column.append_option(row.column.as_deref());
        self.value.append_option(row.value.as_deref());
        self.reason.append_value(&row.reason);
        self.record.append_option(row.record.as_deref());
        self.len += 1;
    }

    /// Rows collected so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row was collected.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Take the collected rows as a batch (and start over).
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.len = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.file.finish()),
            Arc::new(self.line.finish()),
            Arc::new(self.column.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.record.finish()),
        ];
        RecordBatch::try_new(source_schema(), columns)
    }
}

/// Add the run columns to a source quarantine batch, giving [`stored_schema`].
pub fn with_run_columns(
    batch: &RecordBatch,
    run_id: &str,
    stream: &str,
    at_micros: i64,
) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run_id; n])),
        Arc::new(TimestampMicrosecondArray::from(vec![at_micros; n]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![stream; n])),
    ];
    columns.extend(batch.columns().iter().cloned());
    RecordBatch::try_new(stored_schema(), columns)
}

/// Render a raw record as a JSON object of texts: `{"id":"7","amount":"x"}`.
pub fn record_json<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.map_or(serde_json::Value::Null, |v| {
                    serde_json::Value::String(v.into())
                }),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_stamps_rows() {
        let mut b = QuarantineBuilder::default();
        b.push(&QuarantinedRow {
            file: Some("a.csv".into()),
            line: Some(3),
            column: Some("amount".into()),
            value: Some("x".into()),
            reason: "not a number".into(),
            record: Some(record_json([("id", Some("1")), ("amount", Some("x"))])),
        });
        assert_eq!(b.len(), 1);
        let batch = b.finish().unwrap();
        assert!(b.is_empty());
        let stored = with_run_columns(&batch, "r1", "shop.orders", 0).unwrap();
        assert_eq!(stored.schema(), stored_schema());
        assert_eq!(stored.num_rows(), 1);
        let rec = stored
            .column(8)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0);
        assert_eq!(rec, r#"{"id":"1","amount":"x"}"#);
    }
}
