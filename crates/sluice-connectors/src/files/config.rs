//! Stream settings resolved once, at construction.
//!
//! `FilesSource::file_streams` (sluice-core) layers source-level keys under
//! `streams.<name>:` keys; [`resolve`] adds the project's `defaults:` layer
//! and checks what core cannot: single-byte CSV characters, declared types,
//! the cursor's declared type.

use arrow::datatypes::DataType;
use sluice_core::config::{CsvOptions, FilesSource, FilesStreamSpec, Replication, StreamOptions};
use sluice_core::connector::ConnectorError;
use sluice_core::types::parse_type;

use crate::cursor::check_orderable;

/// One stream, every setting resolved.
#[derive(Debug, Clone)]
pub(crate) struct StreamConfig {
    /// Stream name.
    pub(crate) name: String,
    /// Format, paths, columns, sampling and dialect options from core.
    pub(crate) spec: FilesStreamSpec,
    /// The source/stream option layers (before project defaults).
    pub(crate) options: StreamOptions,
    /// `full` or `incremental`.
    pub(crate) replication: Replication,
    /// Cursor column, for incremental by value.
    pub(crate) cursor: Option<String>,
    /// Key columns.
    pub(crate) primary_key: Vec<String>,
    /// Declared column types, in declaration order.
    pub(crate) declared: Vec<(String, DataType)>,
    /// The CSV dialect as bytes.
    pub(crate) dialect: CsvDialect,
}

/// The CSV options, checked and turned into bytes.
#[derive(Debug, Clone)]
pub(crate) struct CsvDialect {
    pub(crate) header: bool,
    pub(crate) delimiter: u8,
    pub(crate) quote: u8,
    pub(crate) escape: Option<u8>,
    pub(crate) double_quote: bool,
    pub(crate) comment: Option<u8>,
    pub(crate) skip_lines: usize,
    pub(crate) nulls: NullSet,
}

/// The texts that mean NULL.
#[derive(Debug, Clone, Default)]
pub(crate) struct NullSet {
    empty: bool,
    others: Vec<Vec<u8>>,
}

impl NullSet {
    /// From `null_values`.
    pub(crate) fn new(values: &[String]) -> Self {
        Self {
            empty: values.iter().any(String::is_empty),
            others: values
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| v.as_bytes().to_vec())
                .collect(),
        }
    }

    /// Whether `field` means NULL.
    #[inline]
    pub(crate) fn is_null(&self, field: &[u8]) -> bool {
        if field.is_empty() {
            self.empty
        } else {
            !self.others.is_empty() && self.others.iter().any(|o| o == field)
        }
    }
}

/// Resolve every stream of `config`; `defaults` is the project's `defaults:` layer.
pub(crate) fn resolve(
    source: &str,
    config: &FilesSource,
    defaults: &StreamOptions,
) -> Result<Vec<StreamConfig>, ConnectorError> {
    let streams = config.file_streams(source).map_err(core_message)?;
    let mut out = Vec::with_capacity(streams.len());
    for (name, (spec, options)) in streams {
        out.push(resolve_stream(source, name, spec, options, defaults)?);
    }
    Ok(out)
}

/// Apply a new `defaults:` layer to an already resolved stream.
pub(crate) fn with_defaults(
    source: &str,
    stream: &StreamConfig,
    defaults: &StreamOptions,
) -> Result<StreamConfig, ConnectorError> {
    resolve_stream(
        source,
        stream.name.clone(),
        stream.spec.clone(),
        stream.options.clone(),
        defaults,
    )
}

fn resolve_stream(
    source: &str,
    name: String,
    spec: FilesStreamSpec,
    options: StreamOptions,
    defaults: &StreamOptions,
) -> Result<StreamConfig, ConnectorError> {
    let id = format!("{source}.{name}");
    let o = defaults.overlay(&options);
    let replication = o.replication.unwrap_or_default();
    if o.cursor.is_some() && replication == Replication::Full {
        return Err(ConnectorError::config(
            format!("Stream `{id}` has a `cursor` but `replication: full`"),
            Some("remove one of them".to_string()),
        ));
    }
    let mut declared = Vec::with_capacity(spec.columns.len());
    for (column, text) in &spec.columns {
        let dt = parse_type(text).map_err(|e| {
            ConnectorError::config(format!("Stream `{id}`, column `{column}`: {e}"), None)
        })?;
        declared.push((column.clone(), dt));
    }
    if let Some(cursor) = &o.cursor
        && let Some((_, dt)) = declared.iter().find(|(c, _)| c == cursor)
    {
        check_orderable(cursor, dt)?;
    }
    let dialect = dialect(&id, &spec.csv)?;
    Ok(StreamConfig {
        name,
        replication,
        cursor: o.cursor.clone(),
        primary_key: o.primary_key.clone().unwrap_or_default(),
        declared,
        dialect,
        spec,
        options,
    })
}

pub(crate) fn dialect(id: &str, o: &CsvOptions) -> Result<CsvDialect, ConnectorError> {
    let byte = |key: &str, c: char| -> Result<u8, ConnectorError> {
        if c.is_ascii() {
            Ok(c as u8)
        } else {
            Err(ConnectorError::config(
                format!(
                    "Stream `{id}`: `csv.{key}` is `{c}`, which is not a single ASCII character"
                ),
                Some(format!(
                    "use a one-byte character for `csv.{key}` (e.g. `,`, `;`, `\\t`, `|`)"
                )),
            ))
        }
    };
    let delimiter = byte("delimiter", o.delimiter)?;
    let quote = byte("quote", o.quote)?;
    if delimiter == quote || matches!(delimiter, b'\n' | b'\r') {
        return Err(ConnectorError::config(
            format!(
                "Stream `{id}`: `csv.delimiter` `{}` cannot be used as a delimiter",
                o.delimiter.escape_default()
            ),
            Some("the delimiter must differ from the quote and from line endings".to_string()),
        ));
    }
    Ok(CsvDialect {
        header: o.header,
        delimiter,
        quote,
        escape: o.escape.map(|c| byte("escape", c)).transpose()?,
        double_quote: o.double_quote,
        comment: o.comment.map(|c| byte("comment", c)).transpose()?,
        skip_lines: o.skip_lines,
        nulls: NullSet::new(&o.null_values),
    })
}

/// Core's validation messages read `stream `x`: …; add y`: capitalise the
/// message and move the instruction after `; ` into the hint.
pub(crate) fn core_message(message: String) -> ConnectorError {
    let (text, hint) = match message.split_once("; ") {
        Some((text, hint)) => (text.to_string(), Some(hint.to_string())),
        None => (message, None),
    };
    let mut chars = text.chars();
    let text = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    };
    ConnectorError::config(text, hint)
}
