//! dbt seeds: a `seeds/*.csv` file read into Arrow record batches, each
//! column typed as dbt types it.
//!
//! ```text
//!  file ──csv-core──▶ one byte buffer + each field's end + each row's line
//!                       │   (header checked, field counts checked, UTF-8 checked once)
//!                       ▼
//!        per column, one scan: agate's type test, or the `column_types` cast
//!                       ▼
//!        RecordBatches of `batch_rows` rows
//! ```
//!
//! # Inference, as dbt-core 1.8–1.11 does it
//!
//! dbt reads a seed with agate and `dbt_common.clients.agate_helper.build_type_tester`:
//! the testers, in order, are dbt's `Integer`, agate's `Number`, `Date` (`%Y-%m-%d`),
//! `DateTime` (`%Y-%m-%d %H:%M:%S`), dbt's `ISODateTime` (isodate), `Boolean`
//! (`true`/`false`) and `Text`, each with the null values `""` and `null`
//! (compared stripped and lower-cased, so ` NULL ` is null too). A column gets the
//! first type that accepts every value. What that means here:
//!
//! | agate type | accepts (after stripping whitespace) | Arrow |
//! |---|---|---|
//! | `Integer` | no string at all: it wins only when the file has no rows | `Int64` |
//! | `Number` | `-`, `%`, currency symbols, `,` and `_` around a Python `Decimal` (`1e5`, `+3`, `.5`, `NaN`, `inf`) | `Int64` when no value has decimals once normalised (`1.0`, `1,000`, `1e3`; dbt's `convert_number_type` gives `integer`), else `Float64` |
//! | `Date` | `strptime('%Y-%m-%d')` (`2024-1-5` too) | `Date32` |
//! | `DateTime` | `strptime('%Y-%m-%d %H:%M:%S')` | `Timestamp(µs)` |
//! | `ISODateTime` | isodate's `parse_datetime`: `<date>T<time>`, basic or extended, fractions, `Z`/`±hh[:mm]` | `Timestamp(µs)`; `Timestamp(µs, "UTC")`, values converted, when a value has an offset |
//! | `Boolean` | `true` / `false`, any case (commas removed) | `Boolean` |
//! | `Text` | anything | `Utf8` (value as written, not stripped) |
//!
//! A column whose values are all null is a `Number` for agate with no decimals:
//! `Int64`. Columns named in `column_types` are not inferred: agate reads them as
//! text (still with `""`/`null` as null) and the database casts them; here
//! they are cast with Arrow to [`sql_type_to_arrow`], and a value that does not
//! cast is an error naming its line and column.
//!
//! # Where this differs from dbt, on purpose
//!
//! - A row with more *or fewer* fields than the header is an error (agate
//!   pads short rows with nulls); blank lines are skipped (Python's csv yields an
//!   empty row, which agate turns into a row of nulls).
//! - A header with an empty or a repeated name is an error (agate renames them
//!   `a`, `b`, … and `name_2`).
//! - Integral `Number` columns beyond `Int64` become `Decimal128(38, 0)`, and
//!   `Float64` beyond 38 digits; a `Number` column holding `NaN` or infinity is
//!   `Float64` (dbt would make it `integer` and the insert would fail).
//! - Only ASCII digits are digits (Python also takes other Unicode digits).
//! - A timestamp column mixing values with and without an offset reads the
//!   ones without as UTC.

use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use csv_core::{ReadRecordResult, ReaderBuilder};
use indexmap::IndexMap;

use crate::error::{Result, TransformError};

/// How to read a seed: the dbt seed configs that change how the file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOptions {
    /// The field delimiter (dbt's `delimiter` config); `b','` by default.
    pub delimiter: u8,
    /// dbt's `column_types` config: column name (as in the header) → SQL type.
    /// These columns are not inferred: they are read as text and cast to
    /// [`sql_type_to_arrow`] of their type.
    pub column_types: IndexMap<String, String>,
    /// Rows per record batch; 65 536 by default (0 counts as 1).
    pub batch_rows: usize,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            column_types: IndexMap::new(),
            batch_rows: 65_536,
        }
    }
}

/// A seed file, loaded.
#[derive(Debug, Clone)]
pub struct Seed {
    /// One nullable field per CSV column, in header order, named as written.
    pub schema: SchemaRef,
    /// The rows, `batch_rows` to a batch (no batch when the file has no rows).
    pub batches: Vec<RecordBatch>,
    /// How many data rows the file has.
    pub rows: usize,
}

/// The SQL types `column_types` may name, for hints.
const KNOWN_TYPES: &str = "bigint, int8, integer, int, int4, smallint, int2, \
    double precision, float8, float, real, float4, numeric, numeric(p), numeric(p,s), \
    decimal(p,s), varchar, varchar(n), character varying, char(n), text, string, date, \
    timestamp, timestamp without time zone, datetime, timestamptz, \
    timestamp with time zone, boolean, bool";

/// Read the seed at `path` the way dbt does (see the [module docs](self)).
///
/// Errors name the file, the 1-based physical line and the column: an
/// unreadable or empty file, a bad header (empty or repeated names), a row
/// whose field count differs from the header's, text that is not UTF-8, a
/// `column_types` entry with an unknown type or an unknown column, or a value
/// that does not cast to its `column_types` type.
pub fn read_seed(path: &Path, opts: &SeedOptions) -> Result<Seed> {
    let mut casts: Vec<(&str, &str, DataType)> = Vec::with_capacity(opts.column_types.len());
    for (column, sql) in &opts.column_types {
        let Some(to) = sql_type_to_arrow(sql) else {
            return Err(seed_error(
                path,
                None,
                format!(
                    "`column_types` gives column `{column}` the type `{sql}`, which Sluice cannot load"
                ),
                Some(format!("use one of: {KNOWN_TYPES}")),
            ));
        };
        casts.push((column.as_str(), sql.as_str(), to));
    }

    let table = read_table(path, opts.delimiter)?;
    for (column, _, _) in &casts {
        if !table.names.iter().any(|n| n == column) {
            return Err(seed_error(
                path,
                None,
                format!("`column_types` names column `{column}`, which is not in the header"),
                Some(format!(
                    "the header has {}; names are case-sensitive",
                    table
                        .names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ));
        }
    }

    let mut scratch = String::new();
    let kinds: Vec<Kind> = table
        .names
        .iter()
        .enumerate()
        .map(
            |(col, name)| match casts.iter().find(|(c, _, _)| c == name) {
                Some((_, _, DataType::Utf8)) => Kind::Text,
                Some((_, sql, to)) => Kind::Cast {
                    to: to.clone(),
                    sql: (*sql).to_string(),
                },
                None => infer(&table, col, &mut scratch),
            },
        )
        .collect();

    let fields: Vec<Field> = table
        .names
        .iter()
        .zip(&kinds)
        .map(|(name, kind)| Field::new(name, kind.data_type(), true))
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));

    let rows = table.rows();
    let batch_rows = opts.batch_rows.max(1);
    let mut batches = Vec::with_capacity(rows.div_ceil(batch_rows));
    let mut start = 0;
    while start < rows {
        let end = rows.min(start.saturating_add(batch_rows));
        let columns = kinds
            .iter()
            .enumerate()
            .map(|(col, kind)| build(path, &table, col, kind, start..end, &mut scratch))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let batch = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| bug(path, &format!("a batch does not match its schema: {e}")))?;
        batches.push(batch);
        start = end;
    }
    Ok(Seed {
        schema,
        batches,
        rows,
    })
}

/// The Arrow type of a SQL type as dbt's `column_types` names it
/// (case-insensitive; `None` when Sluice does not know it).
///
/// Integers: `bigint`/`int8` → `Int64`, `integer`/`int`/`int4` → `Int32`,
/// `smallint`/`int2` → `Int16`. Floats: `double precision`/`float8`/`float` →
/// `Float64`, `real`/`float4` → `Float32` (`float(p)`: `Float32` up to 24).
/// `numeric(p,s)`/`decimal(p,s)` → `Decimal128(p,s)` (`Decimal256` above 38
/// digits), `numeric(p)` → scale 0, and bare `numeric`/`decimal` →
/// `Decimal128(38, 10)` (PostgreSQL's is unbounded; 10 decimals keeps money and
/// rates exact). `varchar[(n)]`, `character varying[(n)]`, `char[(n)]`, `text`,
/// `string` → `Utf8` (the length is not enforced). `date` → `Date32`;
/// `timestamp`, `timestamp without time zone`, `datetime` → `Timestamp(µs)`;
/// `timestamptz`, `timestamp with time zone` → `Timestamp(µs, "UTC")`;
/// `boolean`/`bool` → `Boolean`.
pub fn sql_type_to_arrow(sql: &str) -> Option<DataType> {
    let lower = sql.trim().to_ascii_lowercase();
    let (base, args, suffix) = match lower.find('(') {
        Some(open) => {
            let close = open + lower[open..].find(')')?;
            (
                &lower[..open],
                Some(&lower[open + 1..close]),
                &lower[close + 1..],
            )
        }
        None => (lower.as_str(), None, ""),
    };
    let name = base
        .split_whitespace()
        .chain(suffix.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ");
    let args: Vec<u32> = match args {
        None => Vec::new(),
        Some(a) => a
            .split(',')
            .map(|p| p.trim().parse().ok())
            .collect::<Option<Vec<u32>>>()?,
    };
    let ts = |tz: Option<&str>| {
        Some(DataType::Timestamp(
            TimeUnit::Microsecond,
            tz.map(Arc::from),
        ))
    };
    match (name.as_str(), args.as_slice()) {
        ("bigint" | "int8" | "int64", []) => Some(DataType::Int64),
        ("integer" | "int" | "int4", []) => Some(DataType::Int32),
        ("smallint" | "int2", []) => Some(DataType::Int16),
        ("double precision" | "double" | "float8" | "float64" | "float", []) => {
            Some(DataType::Float64)
        }
        ("float", [p]) if (1..=24).contains(p) => Some(DataType::Float32),
        ("float", [p]) if (25..=53).contains(p) => Some(DataType::Float64),
        ("real" | "float4", []) => Some(DataType::Float32),
        ("numeric" | "decimal", []) => Some(DataType::Decimal128(38, 10)),
        ("numeric" | "decimal", [p]) => decimal(*p, 0),
        ("numeric" | "decimal", [p, s]) => decimal(*p, *s),
        (
            "varchar" | "character varying" | "char" | "character" | "bpchar" | "nvarchar"
            | "nchar" | "string",
            [] | [_],
        )
        | ("text", []) => Some(DataType::Utf8),
        ("date", []) => Some(DataType::Date32),
        ("timestamp" | "timestamp without time zone" | "datetime" | "timestamp_ntz", [] | [_]) => {
            ts(None)
        }
        (
            "timestamptz" | "timestamp with time zone" | "timestamp_tz" | "timestamp_ltz",
            [] | [_],
        ) => ts(Some("UTC")),
        ("boolean" | "bool", []) => Some(DataType::Boolean),
        _ => None,
    }
}

fn decimal(precision: u32, scale: u32) -> Option<DataType> {
    let (p, s) = (u8::try_from(precision).ok()?, i8::try_from(scale).ok()?);
    match precision {
        _ if scale > precision => None,
        1..=38 => Some(DataType::Decimal128(p, s)),
        39..=76 => Some(DataType::Decimal256(p, s)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Reading: csv-core into one buffer.

/// The file's rows: every field's bytes back to back in `text`, row-major.
struct Table {
    names: Vec<String>,
    text: String,
    /// End offset in `text` of each field, row after row.
    ends: Vec<u32>,
    /// The 1-based physical line each row starts on.
    lines: Vec<u64>,
}

impl Table {
    fn rows(&self) -> usize {
        self.lines.len()
    }

    fn field(&self, row: usize, col: usize) -> &str {
        let i = row * self.names.len() + col;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text
            .get(start..self.ends[i] as usize)
            .unwrap_or_default()
    }

    fn line(&self, row: usize) -> usize {
        usize::try_from(self.lines[row]).unwrap_or(usize::MAX)
    }
}

const CHUNK: usize = 256 * 1024;

fn read_table(path: &Path, delimiter: u8) -> Result<Table> {
    let io = |source| TransformError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    // The unquoted output is never longer than the input: one allocation.
    let initial = usize::try_from(size.min(u64::from(u32::MAX))).unwrap_or(0) + 64;
    let mut data = vec![0u8; initial];
    let mut chunk = vec![0u8; CHUNK];
    let mut chunk_len = fill(&mut file, &mut chunk).map_err(io)?;
    let mut pos = 0;
    let mut eof = chunk_len == 0;

    let mut rdr = ReaderBuilder::new().delimiter(delimiter).build();
    let mut record_ends = vec![0usize; 64];
    let (mut used, mut nend, mut record_start) = (0usize, 0usize, 0usize);
    let mut names: Option<Vec<String>> = None;
    let mut ends: Vec<u32> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    loop {
        // csv-core reads an empty input as the end of the file: refill first.
        if pos == chunk_len && !eof {
            chunk_len = fill(&mut file, &mut chunk).map_err(io)?;
            pos = 0;
            eof = chunk_len == 0;
        }
        let input = &chunk[pos..chunk_len];
        let (res, nin, nout, ne) =
            rdr.read_record(input, &mut data[used..], &mut record_ends[nend..]);
        let ended_by_lf = nin > 0 && input[nin - 1] == b'\n';
        pos += nin;
        used += nout;
        nend += ne;
        match res {
            // Refilled at the top; with no input left csv-core ends instead.
            ReadRecordResult::InputEmpty if eof => break,
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull => {
                let n = data.len();
                data.resize(n * 2, 0);
            }
            ReadRecordResult::OutputEndsFull => {
                let n = record_ends.len();
                record_ends.resize(n * 2, 0);
            }
            ReadRecordResult::Record => {
                let record = &data[record_start..used];
                let newlines = record.iter().filter(|&&b| b == b'\n').count() as u64;
                let line = rdr.line().saturating_sub(newlines + u64::from(ended_by_lf));
                let fields = &record_ends[..nend];
                match &names {
                    None => {
                        names = Some(header(path, line, record, fields)?);
                        used = 0;
                    }
                    Some(names) => {
                        if fields.len() != names.len() {
                            return Err(ragged(path, line, fields.len(), names.len(), delimiter));
                        }
                        for &end in fields {
                            let end = u32::try_from(record_start + end)
                                .map_err(|_| too_large(path, line))?;
                            ends.push(end);
                        }
                        lines.push(line);
                    }
                }
                nend = 0;
                record_start = used;
            }
            ReadRecordResult::End => break,
        }
    }
    let Some(names) = names else {
        return Err(seed_error(
            path,
            None,
            "the file is empty: a seed needs a header row".into(),
            Some("put the column names on the first line, e.g. `id,name`".into()),
        ));
    };
    data.truncate(used);
    let text = match String::from_utf8(data) {
        Ok(text) => text,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            return Err(not_utf8(path, &names, &ends, &lines, e.as_bytes(), at));
        }
    };
    Ok(Table {
        names,
        text,
        ends,
        lines,
    })
}

/// Read until `buf` is full or the file ends; the byte count.
fn fill(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn header(path: &Path, line: u64, record: &[u8], ends: &[usize]) -> Result<Vec<String>> {
    let line = usize::try_from(line).ok();
    let mut names: Vec<String> = Vec::with_capacity(ends.len());
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        let Ok(name) = std::str::from_utf8(&record[start..end]) else {
            return Err(seed_error(
                path,
                line,
                format!(
                    "the name of column {} in the header is not valid UTF-8",
                    i + 1
                ),
                Some("save the file as UTF-8 (dbt reads seeds as UTF-8)".into()),
            ));
        };
        if name.is_empty() {
            return Err(seed_error(
                path,
                line,
                format!("column {} has no name in the header", i + 1),
                Some("give every column a name on the first line".into()),
            ));
        }
        if let Some(first) = names.iter().position(|n| n == name) {
            return Err(seed_error(
                path,
                line,
                format!(
                    "column `{name}` appears twice in the header (columns {} and {})",
                    first + 1,
                    i + 1
                ),
                Some("rename one of them: every column of a seed needs its own name".into()),
            ));
        }
        names.push(name.to_string());
        start = end;
    }
    Ok(names)
}

// ---------------------------------------------------------------------------
// Inference: one scan per column.

/// What a column becomes.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// dbt `Integer` (no rows), or `Number` with no decimals.
    Int64,
    /// `Number` with no decimals, beyond `Int64`.
    Decimal,
    /// `Number` with decimals (or `NaN`, infinity, more than 38 digits).
    Float64,
    /// agate `Date` (`%Y-%m-%d`).
    Date,
    /// agate `DateTime` (`%Y-%m-%d %H:%M:%S`).
    DateTime,
    /// dbt `ISODateTime`; `utc` when a value has an offset.
    Iso { utc: bool },
    /// agate `Boolean` (`true`/`false`).
    Boolean,
    /// agate `Text`.
    Text,
    /// A `column_types` column: text cast to `to`.
    Cast { to: DataType, sql: String },
}

impl Kind {
    fn data_type(&self) -> DataType {
        match self {
            Self::Int64 => DataType::Int64,
            Self::Decimal => DataType::Decimal128(38, 0),
            Self::Float64 => DataType::Float64,
            Self::Date => DataType::Date32,
            Self::DateTime | Self::Iso { utc: false } => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            Self::Iso { utc: true } => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            Self::Boolean => DataType::Boolean,
            Self::Text => DataType::Utf8,
            Self::Cast { to, .. } => to.clone(),
        }
    }
}

const NUMBER: u8 = 1;
const DATE: u8 = 2;
const DATETIME: u8 = 4;
const ISO: u8 = 8;
const BOOLEAN: u8 = 16;

/// What a `Number` column's values need.
struct NumberStats {
    /// Most decimal places of a normalised value (agate's `MaxPrecision`).
    places: u64,
    non_finite: bool,
    all_i64: bool,
    all_i128: bool,
}

impl NumberStats {
    fn add(&mut self, n: &Number) {
        self.places = self.places.max(n.places);
        self.non_finite |= n.special.is_some();
        match n.int {
            None => (self.all_i64, self.all_i128) = (false, false),
            Some(i) if i64::try_from(i).is_err() => self.all_i64 = false,
            Some(_) => {}
        }
    }

    fn kind(&self) -> Kind {
        if self.places > 0 || self.non_finite {
            Kind::Float64
        } else if self.all_i64 {
            Kind::Int64
        } else if self.all_i128 {
            Kind::Decimal
        } else {
            Kind::Float64
        }
    }
}

/// agate's `TypeTester.run` for one column: the first type that accepts all.
fn infer(table: &Table, col: usize, scratch: &mut String) -> Kind {
    if table.rows() == 0 {
        // Every tester accepts no values: dbt's `Integer` comes first.
        return Kind::Int64;
    }
    let mut alive = NUMBER | DATE | DATETIME | ISO | BOOLEAN;
    let mut number = NumberStats {
        places: 0,
        non_finite: false,
        all_i64: true,
        all_i128: true,
    };
    let mut utc = false;
    for row in 0..table.rows() {
        if alive == 0 {
            break;
        }
        let value = table.field(row, col);
        if is_null(value) {
            continue;
        }
        if alive & NUMBER != 0 {
            match parse_number(value, scratch) {
                Some(n) => number.add(&n),
                None => alive &= !NUMBER,
            }
        }
        let stripped = py_strip(value);
        if alive & DATE != 0 && strptime_date(stripped).is_none() {
            alive &= !DATE;
        }
        if alive & DATETIME != 0 && strptime_datetime(stripped).is_none() {
            alive &= !DATETIME;
        }
        if alive & ISO != 0 {
            match iso_datetime(stripped) {
                Some((_, offset)) => utc |= offset.is_some(),
                None => alive &= !ISO,
            }
        }
        if alive & BOOLEAN != 0 && boolean(value, scratch).is_none() {
            alive &= !BOOLEAN;
        }
    }
    if alive & NUMBER != 0 {
        number.kind()
    } else if alive & DATE != 0 {
        Kind::Date
    } else if alive & DATETIME != 0 {
        Kind::DateTime
    } else if alive & ISO != 0 {
        Kind::Iso { utc }
    } else if alive & BOOLEAN != 0 {
        Kind::Boolean
    } else {
        Kind::Text
    }
}

// ---------------------------------------------------------------------------
// Building: one array per column and batch.

fn build(
    path: &Path,
    table: &Table,
    col: usize,
    kind: &Kind,
    rows: Range<usize>,
    scratch: &mut String,
) -> Result<ArrayRef> {
    let n = rows.len();
    let reparse = |row: usize| {
        bug(
            path,
            &format!(
                "line {}, column `{}`: `{}` no longer parses as the type inferred for it",
                table.line(row),
                table.names[col],
                table.field(row, col)
            ),
        )
    };
    Ok(match kind {
        Kind::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            for row in rows {
                let value = table.field(row, col);
                if is_null(value) {
                    b.append_null();
                    continue;
                }
                let int = parse_number(value, scratch).and_then(|n| n.int);
                let int = int.and_then(|i| i64::try_from(i).ok());
                b.append_value(int.ok_or_else(|| reparse(row))?);
            }
            Arc::new(b.finish())
        }
        Kind::Decimal => {
            let mut b = Decimal128Builder::with_capacity(n);
            for row in rows {
                let value = table.field(row, col);
                if is_null(value) {
                    b.append_null();
                    continue;
                }
                let int = parse_number(value, scratch).and_then(|n| n.int);
                b.append_value(int.ok_or_else(|| reparse(row))?);
            }
            let array = b.finish().with_precision_and_scale(38, 0);
            Arc::new(array.map_err(|e| bug(path, &e.to_string()))?)
        }
        Kind::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            for row in rows {
                let value = table.field(row, col);
                if is_null(value) {
                    b.append_null();
                    continue;
                }
                let float = parse_number(value, scratch).and_then(|n| n.to_f64(scratch));
                b.append_value(float.ok_or_else(|| reparse(row))?);
            }
            Arc::new(b.finish())
        }
        Kind::Date => {
            let mut b = Date32Builder::with_capacity(n);
            for row in rows {
                let value = table.field(row, col);
                if is_null(value) {
                    b.append_null();
                    continue;
                }
                let date = strptime_date(py_strip(value)).ok_or_else(|| reparse(row))?;
                b.append_value(date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE);
            }
            Arc::new(b.finish())
        }
        Kind::DateTime | Kind::Iso { .. } => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            for row in rows {
                let value = table.field(row, col);
                if is_null(value) {
                    b.append_null();
                    continue;
                }
                let stripped = py_strip(value);
                let micros = if *kind == Kind::DateTime {
                    strptime_datetime(stripped).map(|t| t.and_utc().timestamp_micros())
                } else {
                    iso_datetime(stripped).map(|(t, offset)| {
                        t.and_utc().timestamp_micros() - i64::from(offset.unwrap_or(0)) * 60_000_000
                    })
                };
                b.append_value(micros.ok_or_else(|| reparse(row))?);
            }
            let utc = matches!(kind, Kind::Iso { utc: true });
            Arc::new(b.finish().with_timezone_opt(utc.then_some("UTC")))
        }
        Kind::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for row in rows {
                match boolean(table.field(row, col), scratch) {
                    Some(v) => b.append_option(v),
                    None => return Err(reparse(row)),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Text => {
            let mut b = StringBuilder::with_capacity(n, 0);
            for row in rows {
                let value = table.field(row, col);
                if is_null(value) {
                    b.append_null();
                } else if value.contains('\r') {
                    // Python reads the file with universal newlines.
                    b.append_value(value.replace("\r\n", "\n").replace('\r', "\n"));
                } else {
                    b.append_value(value);
                }
            }
            Arc::new(b.finish())
        }
        Kind::Cast { to, sql } => {
            let text: StringArray = rows
                .clone()
                .map(|row| Some(py_strip(table.field(row, col))).filter(|v| !is_null(v)))
                .collect();
            let options = CastOptions {
                safe: true,
                ..CastOptions::default()
            };
            let cast = cast_with_options(&text, to, &options).map_err(|e| {
                seed_error(
                    path,
                    None,
                    format!(
                        "column `{}` cannot be cast to `{sql}`: {e}",
                        table.names[col]
                    ),
                    Some(format!("change `column_types` for `{}`", table.names[col])),
                )
            })?;
            if let Some(i) = (0..n).find(|&i| text.is_valid(i) && cast.is_null(i)) {
                let row = rows.start + i;
                let name = &table.names[col];
                return Err(seed_error(
                    path,
                    Some(table.line(row)),
                    format!(
                        "column `{name}`: `{}` is not a valid `{sql}`",
                        text.value(i)
                    ),
                    Some(format!(
                        "fix the value, or change the type of `{name}` in `column_types` (e.g. to `varchar`)"
                    )),
                ));
            }
            cast
        }
    })
}

/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

// ---------------------------------------------------------------------------
// Values, as agate (Python) sees them.

/// Python's `str.isspace`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// The null values of dbt's testers, `("null", "")`, compared as agate does
/// (`d.strip().lower() in null_values`).
fn is_null(s: &str) -> bool {
    let t = py_strip(s);
    t.is_empty() || t.eq_ignore_ascii_case("null")
}

/// agate's `Boolean(true_values=("true",), false_values=("false",))`:
/// commas removed, stripped, lower-cased. `Some(None)` is null.
fn boolean(s: &str, scratch: &mut String) -> Option<Option<bool>> {
    let t = if s.contains(',') {
        scratch.clear();
        scratch.extend(s.chars().filter(|&c| c != ','));
        py_strip(scratch)
    } else {
        py_strip(s)
    };
    if t.is_empty() || t.eq_ignore_ascii_case("null") {
        Some(None)
    } else if t.eq_ignore_ascii_case("true") {
        Some(Some(true))
    } else if t.eq_ignore_ascii_case("false") {
        Some(Some(false))
    } else {
        None
    }
}

/// agate's `DEFAULT_CURRENCY_SYMBOLS`, stripped in this order.
const CURRENCY_SYMBOLS: [char; 19] = [
    '؋', '$', 'ƒ', '៛', '¥', '₡', '₱', '£', '€', '¢', '﷼', '₪', '₩', '₭', '₮', '₦', '฿', '₤', '₫',
];

/// A value agate's `Number` accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Number {
    /// The sign agate strips before the currency symbols.
    negative_outside: bool,
    /// `NaN` or ±infinity.
    special: Option<f64>,
    /// Decimal places once normalised (`1.50` → 1, `1.0` → 0, `1e3` → 0).
    places: u64,
    /// The value, when integral and within 38 digits.
    int: Option<i128>,
}

impl Number {
    /// The value as `f64`; `cleaned` is what [`parse_number`] left in its scratch.
    fn to_f64(self, cleaned: &str) -> Option<f64> {
        if let Some(f) = self.special {
            return Some(f);
        }
        let f: f64 = cleaned.trim_matches(' ').parse().ok()?;
        Some(if self.negative_outside { -f } else { f })
    }
}

/// agate's `Number.cast` (locale `en_US`): strip, strip `%`, one leading `-`,
/// strip currency symbols, drop `,`, then Python's `Decimal` (which drops `_`
/// and surrounding whitespace). Leaves the cleaned text in `scratch`.
fn parse_number(s: &str, scratch: &mut String) -> Option<Number> {
    let t = py_strip(s).trim_matches('%');
    let (negative_outside, mut t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    for symbol in CURRENCY_SYMBOLS {
        t = t.trim_matches(symbol);
    }
    scratch.clear();
    for c in t.chars() {
        match c {
            ',' | '_' => {}
            c if is_py_space(c) => scratch.push(' '),
            c if c.is_ascii() => scratch.push(c),
            _ => return None,
        }
    }
    let body = scratch.trim_matches(' ').as_bytes();
    let (negative_inside, rest) = match body.first() {
        Some(b'+') => (false, &body[1..]),
        Some(b'-') => (true, &body[1..]),
        _ => (false, body),
    };
    let negative = negative_outside != negative_inside;
    let sign = if negative { -1.0 } else { 1.0 };
    let special = |f: f64| Number {
        negative_outside,
        special: Some(f),
        places: 0,
        int: None,
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(special(sign * f64::INFINITY));
    }
    for nan in [&b"nan"[..], b"snan"] {
        if rest.len() >= nan.len()
            && rest[..nan.len()].eq_ignore_ascii_case(nan)
            && rest[nan.len()..].iter().all(u8::is_ascii_digit)
        {
            return Some(special(f64::NAN));
        }
    }

    let run = |from: usize| {
        from + rest[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int_end = run(0);
    let (frac_start, frac_end) = if rest.get(int_end) == Some(&b'.') {
        (int_end + 1, run(int_end + 1))
    } else {
        (int_end, int_end)
    };
    if int_end == 0 && frac_end == frac_start {
        return None;
    }
    let mut i = frac_end;
    let mut exponent: i64 = 0;
    if matches!(rest.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match rest.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let digits_end = run(i);
        if digits_end == i {
            return None;
        }
        for &d in &rest[i..digits_end] {
            exponent = exponent
                .saturating_mul(10)
                .saturating_add(i64::from(d - b'0'));
        }
        exponent = exponent.min(1 << 40);
        if exp_negative {
            exponent = -exponent;
        }
        i = digits_end;
    }
    if i != rest.len() {
        return None;
    }

    // Normalise: the significant digits and the exponent of the last one.
    let digits = || rest[..int_end].iter().chain(&rest[frac_start..frac_end]);
    let count = int_end + (frac_end - frac_start);
    let leading = digits().take_while(|&&d| d == b'0').count();
    if leading == count {
        return Some(Number {
            negative_outside,
            special: None,
            places: 0,
            int: Some(0),
        });
    }
    let trailing = digits().rev().take_while(|&&d| d == b'0').count();
    let significant = count - leading - trailing;
    let exponent = exponent - (frac_end - frac_start) as i64 + trailing as i64;
    let places = if exponent < 0 {
        exponent.unsigned_abs()
    } else {
        0
    };
    let int = if exponent >= 0 && significant as i64 + exponent <= 38 {
        let mut v: i128 = 0;
        for &d in digits().skip(leading).take(significant) {
            v = v * 10 + i128::from(d - b'0');
        }
        let v = v * 10i128.pow(exponent as u32);
        Some(if negative { -v } else { v })
    } else {
        None
    };
    Some(Number {
        negative_outside,
        special: None,
        places,
        int,
    })
}

/// `n` ASCII digits at `b[i..]`, as a number.
fn digits(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let slice = b.get(i..i + n)?;
    slice.iter().try_fold(0u32, |v, &d| {
        d.is_ascii_digit().then(|| v * 10 + u32::from(d - b'0'))
    })
}

/// A date as Python's `datetime.date` allows it (years 1 to 9999).
fn py_date(year: u32, month: u32, day: u32) -> Option<NaiveDate> {
    if !(1..=9999).contains(&year) {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// `date` moved by `days`, within Python's range.
fn add_days(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    let n = i64::from(date.num_days_from_ce()).checked_add(days)?;
    let d = NaiveDate::from_num_days_from_ce_opt(i32::try_from(n).ok()?)?;
    (1..=9999).contains(&d.year()).then_some(d)
}

/// One alternative of a CPython `_strptime` directive: the bytes each
/// position allows.
type Alternative = &'static [&'static [u8]];
const DIGIT: &[u8] = b"0123456789";
const NONZERO: &[u8] = b"123456789";
/// `%m`: `1[0-2]|0[1-9]|[1-9]`.
const MONTH: &[Alternative] = &[&[b"1", b"012"], &[b"0", NONZERO], &[NONZERO]];
/// `%d`: `3[01]|[12]\d|0[1-9]|[1-9]| [1-9]`.
const DAY: &[Alternative] = &[
    &[b"3", b"01"],
    &[b"12", DIGIT],
    &[b"0", NONZERO],
    &[NONZERO],
    &[b" ", NONZERO],
];
/// `%H`: `2[0-3]|[0-1]\d|\d`.
const HOUR: &[Alternative] = &[&[b"2", b"0123"], &[b"01", DIGIT], &[DIGIT]];
/// `%M`: `[0-5]\d|\d`.
const MINUTE: &[Alternative] = &[&[b"012345", DIGIT], &[DIGIT]];
/// `%S`: `6[0-1]|[0-5]\d|\d`.
const SECOND: &[Alternative] = &[&[b"6", b"01"], &[b"012345", DIGIT], &[DIGIT]];

/// The alternatives of a directive that match at the start of `b`, in the
/// regex's order: (value, length).
fn directive<'a>(
    b: &'a [u8],
    alternatives: &'static [Alternative],
) -> impl Iterator<Item = (u32, usize)> + 'a {
    alternatives.iter().filter_map(move |alt| {
        let bytes = b.get(..alt.len())?;
        let mut value = 0;
        for (class, &c) in alt.iter().zip(bytes) {
            if !class.contains(&c) {
                return None;
            }
            if c.is_ascii_digit() {
                value = value * 10 + u32::from(c - b'0');
            }
        }
        Some((value, alt.len()))
    })
}

/// `%Y-%m-`: year, month and where the day starts.
fn strptime_year_month(b: &[u8]) -> Option<(u32, u32, usize)> {
    let year = digits(b, 0, 4)?;
    if b.get(4) != Some(&b'-') {
        return None;
    }
    let rest = &b[5..];
    let (month, n) = directive(rest, MONTH).find(|&(_, n)| rest.get(n) == Some(&b'-'))?;
    Some((year, month, 5 + n + 1))
}

/// `datetime.strptime(s, '%Y-%m-%d')`: the regex's first match must take the
/// whole string.
fn strptime_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let (year, month, i) = strptime_year_month(b)?;
    let (day, n) = directive(&b[i..], DAY).next()?;
    if i + n != b.len() {
        return None;
    }
    py_date(year, month, day)
}

/// `datetime.strptime(s, '%Y-%m-%d %H:%M:%S')` (the space matches `\s+`).
fn strptime_datetime(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let (year, month, i) = strptime_year_month(b)?;
    for (day, n) in directive(&b[i..], DAY) {
        let j = i + n;
        let rest = s.get(j..)?;
        let space = rest.len() - rest.trim_start_matches(is_py_space).len();
        if space == 0 {
            continue;
        }
        let k = j + space;
        for (hour, n) in directive(&b[k..], HOUR) {
            let l = k + n;
            if b.get(l) != Some(&b':') {
                continue;
            }
            for (minute, n) in directive(&b[l + 1..], MINUTE) {
                let m = l + 1 + n;
                if b.get(m) != Some(&b':') {
                    continue;
                }
                if let Some((second, n)) = directive(&b[m + 1..], SECOND).next() {
                    // The regex matched; the rest of the string must be empty.
                    if m + 1 + n != b.len() {
                        return None;
                    }
                    let time = NaiveTime::from_hms_opt(hour, minute, second)?;
                    return Some(py_date(year, month, day)?.and_time(time));
                }
            }
        }
    }
    None
}

/// dbt's `ISODateTime`: `isodate.parse_datetime` — exactly one `T`, then
/// isodate's date and time patterns, each matched at the start of its part
/// (isodate ignores what follows a match). The offset in minutes, when given.
fn iso_datetime(s: &str) -> Option<(NaiveDateTime, Option<i32>)> {
    let mut parts = s.split('T');
    let (date, time) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let date = iso_date(date.as_bytes())?;
    let (time, offset) = iso_time(time.as_bytes())?;
    Some((date.and_time(time), offset))
}

/// isodate's `parse_date` (4-digit years, no sign): the first pattern that
/// matches decides, even if its date is invalid.
fn iso_date(b: &[u8]) -> Option<NaiveDate> {
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    // `int(month) or 1`: month 00 is January.
    let ymd = |y: u32, m: u32, d: u32| py_date(y, if m == 0 { 1 } else { m }, d);
    let week = |y: u32, w: u32, d: u32| {
        let jan1 = py_date(y, 1, 1)?;
        let first = i64::from(jan1.iso_week().week() == 1);
        let weekday = i64::from(jan1.weekday().number_from_monday());
        add_days(jan1, 7 * (i64::from(w) - first) - weekday + i64::from(d))
    };
    let ordinal = |y: u32, d: u32| add_days(py_date(y, 1, 1)?, i64::from(d) - 1);
    let Some(y) = digits(b, 0, 4) else {
        // YY: a century.
        let c = digits(b, 0, 2)?;
        return py_date(c * 100 + 1, 1, 1);
    };
    // Extended patterns put `-` after the year and between the parts; basic
    // ones put nothing. They never both match, so each pair is tried at once,
    // in isodate's order: complete, week with day, ordinal, week, month, year.
    let sep = usize::from(at(4, b'-'));
    let p = 4 + sep;
    let inner = |i: usize| sep == 0 || at(i, b'-');
    if let (Some(m), true, Some(d)) = (digits(b, p, 2), inner(p + 2), digits(b, p + 2 + sep, 2)) {
        return ymd(y, m, d);
    }
    let w = if at(p, b'W') {
        digits(b, p + 1, 2)
    } else {
        None
    };
    if let (Some(w), true, Some(d)) = (w, inner(p + 3), digits(b, p + 3 + sep, 1)) {
        return week(y, w, d);
    }
    if let Some(d) = digits(b, p, 3) {
        return ordinal(y, d);
    }
    if let Some(w) = w {
        return week(y, w, 1);
    }
    if let Some(m) = digits(b, p, 2) {
        return ymd(y, m, 1);
    }
    ymd(y, 1, 1)
}

/// Which component a time's decimal fraction belongs to.
#[derive(Clone, Copy)]
enum Unit {
    Hour,
    Minute,
    Second,
}

/// isodate's `parse_time`: `hh:mm:ss`, `hhmmss`, `hh:mm`, `hhmm`, `hh`, the last
/// with an optional `.`/`,` fraction, then an optional `Z`/`±hh[[:]mm]`.
fn iso_time(b: &[u8]) -> Option<(NaiveTime, Option<i32>)> {
    let two = |i| digits(b, i, 2);
    let colon = |i: usize| b.get(i) == Some(&b':');
    let (hour, minute, second, at, unit) = if let (Some(h), true, Some(m), true, Some(s)) =
        (two(0), colon(2), two(3), colon(5), two(6))
    {
        (h, m, s, 8, Unit::Second)
    } else if let (Some(h), Some(m), Some(s)) = (two(0), two(2), two(4)) {
        (h, m, s, 6, Unit::Second)
    } else if let (Some(h), true, Some(m)) = (two(0), colon(2), two(3)) {
        (h, m, 0, 5, Unit::Minute)
    } else if let (Some(h), Some(m)) = (two(0), two(2)) {
        (h, m, 0, 4, Unit::Minute)
    } else {
        (two(0)?, 0, 0, 2, Unit::Hour)
    };

    // The fraction, as an exact ratio (20 digits are plenty for microseconds).
    let mut at = at;
    let (mut fraction, mut scale) = (0u128, 1u128);
    if matches!(b.get(at), Some(b'.' | b',')) && b.get(at + 1).is_some_and(u8::is_ascii_digit) {
        at += 1;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            if scale < 10u128.pow(20) {
                fraction = fraction * 10 + u128::from(d - b'0');
                scale *= 10;
            }
            at += 1;
        }
    }
    let offset = match b.get(at) {
        Some(b'Z') => Some(0),
        Some(&sign @ (b'+' | b'-')) => digits(b, at + 1, 2).map(|h| {
            let m = if colon(at + 3) {
                digits(b, at + 4, 2)
            } else {
                None
            };
            let m = m.or_else(|| digits(b, at + 3, 2)).unwrap_or(0);
            let minutes = i32::try_from(h * 60 + m).unwrap_or(0);
            if sign == b'-' { -minutes } else { minutes }
        }),
        _ => None,
    };

    const MICROS: u128 = 1_000_000;
    let (minute, second, micro) = match unit {
        Unit::Second => {
            // `Decimal(ss.fff).quantize(Decimal('.000001'))`: may carry.
            let total = u128::from(second) * MICROS + round_half_even(fraction * MICROS, scale);
            (minute, total / MICROS, total % MICROS)
        }
        Unit::Minute => {
            let seconds = fraction * 60 / scale;
            (
                minute,
                seconds,
                round_half_even(fraction * 60 * MICROS, scale) - seconds * MICROS,
            )
        }
        Unit::Hour => {
            let minutes = fraction * 60 / scale;
            let seconds = fraction * 3600 / scale;
            let micro = round_half_even(fraction * 3600 * MICROS, scale) - seconds * MICROS;
            (u32::try_from(minutes).ok()?, seconds - minutes * 60, micro)
        }
    };
    if micro >= MICROS {
        return None;
    }
    let time = NaiveTime::from_hms_micro_opt(
        hour,
        minute,
        u32::try_from(second).ok()?,
        u32::try_from(micro).ok()?,
    )?;
    Some((time, offset))
}

/// `num / den` rounded half to even (Python's default `Decimal` rounding).
fn round_half_even(num: u128, den: u128) -> u128 {
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal if q % 2 == 1 => q + 1,
        _ => q,
    }
}

// ---------------------------------------------------------------------------
// Errors.

fn seed_error(
    path: &Path,
    line: Option<usize>,
    message: String,
    hint: Option<String>,
) -> TransformError {
    TransformError::Seed {
        path: path.to_path_buf(),
        line,
        message,
        hint,
    }
}

fn bug(path: &Path, what: &str) -> TransformError {
    seed_error(
        path,
        None,
        format!("internal error reading the seed: {what}"),
        Some("this is a bug in Sluice; please report it with the file".into()),
    )
}

fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "a tab".into(),
        d if d.is_ascii_graphic() || d == b' ' => format!("`{}`", char::from(d)),
        d => format!("byte 0x{d:02x}"),
    }
}

fn ragged(path: &Path, line: u64, found: usize, expected: usize, delimiter: u8) -> TransformError {
    let d = delimiter_name(delimiter);
    seed_error(
        path,
        usize::try_from(line).ok(),
        format!(
            "this row has {found} field{} but the header has {expected} columns",
            if found == 1 { "" } else { "s" }
        ),
        Some(format!(
            "give every row one value per column (empty for null); quote a value that contains {d} or a line break"
        )),
    )
}

fn too_large(path: &Path, line: u64) -> TransformError {
    seed_error(
        path,
        usize::try_from(line).ok(),
        "the seed holds more than 4 GiB of values".into(),
        Some("seeds are for small, static tables; load data this large with a source".into()),
    )
}

fn not_utf8(
    path: &Path,
    names: &[String],
    ends: &[u32],
    lines: &[u64],
    bytes: &[u8],
    at: usize,
) -> TransformError {
    let field = ends.partition_point(|&end| end as usize <= at);
    let ncols = names.len().max(1);
    let (row, col) = (field / ncols, field % ncols);
    let row_start = if row == 0 {
        0
    } else {
        ends[row * ncols - 1] as usize
    };
    let before = bytes.get(row_start..at).unwrap_or_default();
    let line = lines
        .get(row)
        .map(|l| l + before.iter().filter(|&&b| b == b'\n').count() as u64);
    let column = names.get(col).map(String::as_str).unwrap_or("?");
    seed_error(
        path,
        line.and_then(|l| usize::try_from(l).ok()),
        format!("column `{column}` is not valid UTF-8"),
        Some("save the file as UTF-8 (dbt reads seeds as UTF-8)".into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{
        Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    };

    fn write(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    fn load(body: &str) -> Seed {
        load_with(body.as_bytes(), &SeedOptions::default())
    }

    fn load_with(body: &[u8], opts: &SeedOptions) -> Seed {
        let dir = tempfile::tempdir().unwrap();
        read_seed(&write(&dir, "seed.csv", body), opts).unwrap()
    }

    fn fail(body: &[u8], opts: &SeedOptions) -> TransformError {
        let dir = tempfile::tempdir().unwrap();
        read_seed(&write(&dir, "seed.csv", body), opts).unwrap_err()
    }

    fn types(seed: &Seed) -> Vec<DataType> {
        seed.schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    fn ints(seed: &Seed, col: usize) -> Vec<Option<i64>> {
        seed.batches
            .iter()
            .flat_map(|b| {
                b.column(col)
                    .as_primitive::<Int64Type>()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn floats(seed: &Seed, col: usize) -> Vec<Option<f64>> {
        seed.batches[0]
            .column(col)
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
    }

    fn strings(seed: &Seed, col: usize) -> Vec<Option<String>> {
        seed.batches[0]
            .column(col)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn micros(seed: &Seed, col: usize) -> Vec<Option<i64>> {
        seed.batches[0]
            .column(col)
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect()
    }

    fn ts(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    fn days(s: &str) -> i32 {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .unwrap()
            .num_days_from_ce()
            - UNIX_EPOCH_DAYS_FROM_CE
    }

    fn opts_types(pairs: &[(&str, &str)]) -> SeedOptions {
        SeedOptions {
            column_types: pairs
                .iter()
                .map(|(c, t)| (c.to_string(), t.to_string()))
                .collect(),
            ..SeedOptions::default()
        }
    }

    fn seed_parts(e: &TransformError) -> (Option<usize>, String, String) {
        match e {
            TransformError::Seed {
                line,
                message,
                hint,
                ..
            } => (*line, message.clone(), hint.clone().unwrap_or_default()),
            other => panic!("not a seed error: {other:?}"),
        }
    }

    #[test]
    fn infers_each_type_with_nulls() {
        let seed = load(
            "i,f,d,dt,iso,b,t\n\
             1,1.5,2024-01-05,2024-01-05 10:30:00,2024-01-05T10:30:00,true,hello\n\
             ,null,,NULL,,, world \n\
             -3,2,2024-1-6,2024-01-06 7:05:09,2024-01-06T07:05:09.25,FALSE,null\n",
        );
        assert_eq!(
            types(&seed),
            vec![
                DataType::Int64,
                DataType::Float64,
                DataType::Date32,
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Boolean,
                DataType::Utf8,
            ]
        );
        assert_eq!(seed.rows, 3);
        assert_eq!(ints(&seed, 0), vec![Some(1), None, Some(-3)]);
        assert_eq!(floats(&seed, 1), vec![Some(1.5), None, Some(2.0)]);
        let dates: Vec<_> = seed.batches[0]
            .column(2)
            .as_primitive::<Date32Type>()
            .iter()
            .collect();
        assert_eq!(
            dates,
            vec![Some(days("2024-01-05")), None, Some(days("2024-01-06"))]
        );
        assert_eq!(
            micros(&seed, 3),
            vec![
                Some(ts("2024-01-05 10:30:00")),
                None,
                Some(ts("2024-01-06 07:05:09"))
            ]
        );
        assert_eq!(
            micros(&seed, 4),
            vec![
                Some(ts("2024-01-05 10:30:00")),
                None,
                Some(ts("2024-01-06 07:05:09.25"))
            ]
        );
        let bools: Vec<_> = seed.batches[0].column(5).as_boolean().iter().collect();
        assert_eq!(bools, vec![Some(true), None, Some(false)]);
        // Text keeps the value as written; `null` and `` are null.
        assert_eq!(
            strings(&seed, 6),
            vec![Some("hello".into()), Some(" world ".into()), None]
        );
    }

    #[test]
    fn all_null_and_header_only_columns_are_int64() {
        let seed = load("a,b\n,x\nnull,y\n  ,z\n");
        assert_eq!(types(&seed), vec![DataType::Int64, DataType::Utf8]);
        assert_eq!(ints(&seed, 0), vec![None, None, None]);

        let seed = load_with(b"a,b,c\n", &opts_types(&[("c", "date")]));
        assert_eq!(seed.rows, 0);
        assert!(seed.batches.is_empty());
        assert_eq!(
            types(&seed),
            vec![DataType::Int64, DataType::Int64, DataType::Date32]
        );
    }

    #[test]
    fn numbers_as_agate_reads_them() {
        let seed = load(
            "groups,money,exp,whole,pct,float,nan\n\
             \"1,000\",$12,1e3,1.0,50%,1.50,NaN\n\
             \"-2,500,000\",-€3,2E+2,-4.000,-7%,-.25,1\n",
        );
        assert_eq!(
            types(&seed),
            vec![
                DataType::Int64,
                DataType::Int64,
                DataType::Int64,
                DataType::Int64,
                DataType::Int64,
                DataType::Float64,
                DataType::Float64,
            ]
        );
        assert_eq!(ints(&seed, 0), vec![Some(1000), Some(-2_500_000)]);
        assert_eq!(ints(&seed, 1), vec![Some(12), Some(-3)]);
        assert_eq!(ints(&seed, 2), vec![Some(1000), Some(200)]);
        assert_eq!(ints(&seed, 3), vec![Some(1), Some(-4)]);
        assert_eq!(ints(&seed, 4), vec![Some(50), Some(-7)]);
        assert_eq!(floats(&seed, 5), vec![Some(1.5), Some(-0.25)]);
        let nan = floats(&seed, 6);
        assert!(nan[0].is_some_and(f64::is_nan));
        assert_eq!(nan[1], Some(1.0));
    }

    #[test]
    fn numbers_beyond_i64_become_decimal() {
        let seed = load("id\n12345678901234567890\n-1\n");
        assert_eq!(types(&seed), vec![DataType::Decimal128(38, 0)]);
        let v: Vec<_> = seed.batches[0]
            .column(0)
            .as_primitive::<Decimal128Type>()
            .iter()
            .collect();
        assert_eq!(v, vec![Some(12_345_678_901_234_567_890), Some(-1)]);
    }

    #[test]
    fn number_grammar_matches_agate() {
        let mut s = String::new();
        let int = |v: &str, s: &mut String| parse_number(v, s).and_then(|n| n.int);
        assert_eq!(int("+5", &mut s), Some(5));
        assert_eq!(int("--5", &mut s), Some(5));
        assert_eq!(int(" 1_000 ", &mut s), Some(1000));
        assert_eq!(int("0.000", &mut s), Some(0));
        assert_eq!(parse_number("1.25e1", &mut s).map(|n| n.places), Some(1));
        for bad in [
            "",
            "-",
            "$",
            "1.2.3",
            "12a",
            "2024-01-05",
            "1e",
            "e5",
            ".",
            "1 2",
            "x",
        ] {
            assert_eq!(parse_number(bad, &mut s), None, "{bad}");
        }
    }

    #[test]
    fn dates_and_datetimes_in_both_formats() {
        let seed = load(
            "d,dt,iso,iso_basic,mixed\n\
             2024-02-29,2024-01-05  23:59:59,2024-01-05T10:00:00Z,20240105T1030,2024-01-05\n\
             0999-12-31,2024-1-5 0:0:0,2024-01-05T12:00:00+02:00,2024-W01-1T10,2024-01-05 10:00:00\n",
        );
        assert_eq!(
            types(&seed),
            vec![
                DataType::Date32,
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Utf8,
            ]
        );
        let dates: Vec<_> = seed.batches[0]
            .column(0)
            .as_primitive::<Date32Type>()
            .iter()
            .collect();
        assert_eq!(
            dates,
            vec![Some(days("2024-02-29")), Some(days("0999-12-31"))]
        );
        assert_eq!(
            micros(&seed, 1),
            vec![
                Some(ts("2024-01-05 23:59:59")),
                Some(ts("2024-01-05 00:00:00"))
            ]
        );
        // Offsets are converted to UTC.
        assert_eq!(
            micros(&seed, 2),
            vec![
                Some(ts("2024-01-05 10:00:00")),
                Some(ts("2024-01-05 10:00:00"))
            ]
        );
        // ISO week 1 of 2024 starts on Monday 2024-01-01.
        assert_eq!(
            micros(&seed, 3),
            vec![
                Some(ts("2024-01-05 10:30:00")),
                Some(ts("2024-01-01 10:00:00"))
            ]
        );
    }

    #[test]
    fn invalid_dates_are_text() {
        let seed = load("a,b,c\n2023-02-29,2024-01-05 24:00:00,2024-01-05T10:00:00.123 x\n");
        assert_eq!(types(&seed)[..2], [DataType::Utf8, DataType::Utf8]);
        // isodate ignores what follows a match.
        assert_eq!(micros(&seed, 2), vec![Some(ts("2024-01-05 10:00:00.123"))]);
    }

    #[test]
    fn iso_fractions_round_as_python_does() {
        let t = |s: &str| iso_time(s.as_bytes()).map(|(t, o)| (t.to_string(), o));
        assert_eq!(
            t("10:00:00.1234565"),
            Some(("10:00:00.123456".into(), None))
        );
        assert_eq!(t("10:00:00.9999995"), Some(("10:00:01".into(), None)));
        assert_eq!(t("10:30.5-0130"), Some(("10:30:30".into(), Some(-90))));
        assert_eq!(t("10.25Z"), Some(("10:15:00".into(), Some(0))));
        assert_eq!(t("24:00:00"), None);
        assert_eq!(t("1"), None);
    }

    #[test]
    fn iso_dates_follow_isodate_patterns() {
        let d = |s: &str| iso_date(s.as_bytes()).map(|d| d.to_string());
        let cases = [
            ("2024-01-05", Some("2024-01-05")),
            ("20240105", Some("2024-01-05")),
            ("2024-123", Some("2024-05-02")),
            ("2024123", Some("2024-05-02")),
            ("2021-W01-1", Some("2021-01-04")),
            ("2021W013", Some("2021-01-06")),
            ("2024-W10", Some("2024-03-04")),
            ("2024-07", Some("2024-07-01")),
            ("202407", Some("2024-07-01")),
            ("2024", Some("2024-01-01")),
            ("20", Some("2001-01-01")),
            // isodate quirks: month 00 is January; a prefix match is enough.
            ("2024-00-05", Some("2024-01-05")),
            ("2024-1-5", Some("2024-01-01")),
            ("2024-13-01", None),
            ("0000-01-01", None),
            ("x2024", None),
        ];
        for (text, expected) in cases {
            assert_eq!(d(text), expected.map(str::to_string), "{text}");
        }
    }

    #[test]
    fn booleans_are_true_and_false_only() {
        let seed = load("a,b,c\ntrue,yes,1\nFalse,no,0\nTRUE,,1\n");
        assert_eq!(
            types(&seed),
            vec![DataType::Boolean, DataType::Utf8, DataType::Int64]
        );
        let bools: Vec<_> = seed.batches[0].column(0).as_boolean().iter().collect();
        assert_eq!(bools, vec![Some(true), Some(false), Some(true)]);
    }

    #[test]
    fn column_types_keep_text_and_cast() {
        let opts = opts_types(&[
            ("zip", "varchar(10)"),
            ("amount", "numeric(10,2)"),
            ("n", "INT"),
        ]);
        let seed = load_with(
            b"zip,amount,n\n01234,1.5,7\n00501, 2.25 ,null\n,,-3\n",
            &opts,
        );
        assert_eq!(
            types(&seed),
            vec![DataType::Utf8, DataType::Decimal128(10, 2), DataType::Int32]
        );
        assert_eq!(
            strings(&seed, 0),
            vec![Some("01234".into()), Some("00501".into()), None]
        );
        let amounts: Vec<_> = seed.batches[0]
            .column(1)
            .as_primitive::<Decimal128Type>()
            .iter()
            .collect();
        assert_eq!(amounts, vec![Some(150), Some(225), None]);
        let n: Vec<_> = seed.batches[0]
            .column(2)
            .as_primitive::<Int32Type>()
            .iter()
            .collect();
        assert_eq!(n, vec![Some(7), None, Some(-3)]);
    }

    #[test]
    fn bad_value_under_column_types_names_line_and_column() {
        let opts = opts_types(&[("n", "bigint")]);
        let e = fail(b"id,n\n1,2\n\"2\nx\",3\n3,4x\n", &opts);
        let (line, message, hint) = seed_parts(&e);
        assert_eq!(line, Some(5));
        assert_eq!(message, "column `n`: `4x` is not a valid `bigint`");
        assert!(hint.contains("column_types"), "{hint}");
        assert!(
            e.to_string()
                .ends_with("seed.csv:5: column `n`: `4x` is not a valid `bigint`")
        );
    }

    #[test]
    fn unknown_sql_type_and_unknown_column() {
        let e = fail(b"a\n1\n", &opts_types(&[("a", "geography")]));
        let (line, message, hint) = seed_parts(&e);
        assert_eq!(line, None);
        assert_eq!(
            message,
            "`column_types` gives column `a` the type `geography`, which Sluice cannot load"
        );
        assert!(
            hint.contains("bigint") && hint.contains("varchar(n)"),
            "{hint}"
        );
        assert!(e.to_string().contains("seed.csv: "));

        let (_, message, hint) = seed_parts(&fail(b"a\n1\n", &opts_types(&[("A", "text")])));
        assert_eq!(
            message,
            "`column_types` names column `A`, which is not in the header"
        );
        assert_eq!(hint, "the header has `a`; names are case-sensitive");
    }

    #[test]
    fn quoted_fields_keep_delimiters_quotes_and_newlines() {
        let seed = load("id,note\n1,\"a, b\"\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n");
        assert_eq!(
            strings(&seed, 1),
            vec![
                Some("a, b".into()),
                Some("say \"hi\"".into()),
                Some("two\nlines".into())
            ]
        );
        assert_eq!(ints(&seed, 0), vec![Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn crlf_bom_trailing_and_blank_lines() {
        let seed = load_with(
            b"\xef\xbb\xbfid,note\r\n1,\"a\r\nb\"\r\n\r\n2,c\r\n\r\n",
            &SeedOptions::default(),
        );
        assert_eq!(seed.schema.field(0).name(), "id");
        assert_eq!(seed.rows, 2);
        assert_eq!(ints(&seed, 0), vec![Some(1), Some(2)]);
        // Python reads with universal newlines: CRLF inside a value is LF.
        assert_eq!(
            strings(&seed, 1),
            vec![Some("a\nb".into()), Some("c".into())]
        );
    }

    #[test]
    fn other_delimiters() {
        let opts = SeedOptions {
            delimiter: b';',
            ..SeedOptions::default()
        };
        let seed = load_with(b"a;b\n1,5;x,y\n", &opts);
        assert_eq!(types(&seed), vec![DataType::Int64, DataType::Utf8]);
        assert_eq!(ints(&seed, 0), vec![Some(15)]);
        assert_eq!(strings(&seed, 1), vec![Some("x,y".into())]);
    }

    #[test]
    fn ragged_rows_are_errors_with_their_line() {
        let e = fail(b"a,b\n1,2\n\"x\ny\",3\n4\n", &SeedOptions::default());
        let (line, message, hint) = seed_parts(&e);
        assert_eq!(line, Some(5));
        assert_eq!(message, "this row has 1 field but the header has 2 columns");
        assert!(hint.contains("quote a value that contains `,`"), "{hint}");

        let (line, message, _) = seed_parts(&fail(b"a,b\r\n1,2,3\r\n", &SeedOptions::default()));
        assert_eq!(line, Some(2));
        assert_eq!(
            message,
            "this row has 3 fields but the header has 2 columns"
        );
    }

    #[test]
    fn empty_file_and_bad_headers() {
        for body in [&b""[..], b"\xef\xbb\xbf", b"\n\n"] {
            let (line, message, hint) = seed_parts(&fail(body, &SeedOptions::default()));
            assert_eq!(line, None);
            assert_eq!(message, "the file is empty: a seed needs a header row");
            assert!(hint.contains("first line"), "{hint}");
        }
        let (line, message, _) = seed_parts(&fail(b"id,name,id\n1,2,3\n", &SeedOptions::default()));
        assert_eq!(line, Some(1));
        assert_eq!(
            message,
            "column `id` appears twice in the header (columns 1 and 3)"
        );
        let (_, message, _) = seed_parts(&fail(b"id,,x\n", &SeedOptions::default()));
        assert_eq!(message, "column 2 has no name in the header");
        // Names are kept as written.
        let seed = load(" Id ,b\n1,2\n");
        assert_eq!(seed.schema.field(0).name(), " Id ");
    }

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let (line, message, hint) = seed_parts(&fail(
            b"a,b\n1,ok\n2,\"x\ny\xff\"\n",
            &SeedOptions::default(),
        ));
        assert_eq!(line, Some(4));
        assert_eq!(message, "column `b` is not valid UTF-8");
        assert!(hint.contains("UTF-8"), "{hint}");
    }

    #[test]
    fn files_larger_than_a_read_chunk() {
        // Rows of 8 bytes after an 8-byte header: a record ends exactly where
        // each read chunk does.
        let mut body = b"abcdefg\n".to_vec();
        let rows = 3 * CHUNK / 8;
        for i in 0..rows {
            body.extend_from_slice(format!("{i:07}\n").as_bytes());
        }
        let seed = load_with(&body, &SeedOptions::default());
        assert_eq!(seed.rows, rows);
        let all = ints(&seed, 0);
        assert_eq!(all.len(), rows);
        assert_eq!(all[rows - 1], Some(rows as i64 - 1));
        assert!(all.iter().enumerate().all(|(i, v)| *v == Some(i as i64)));

        // Quoted line breaks across chunk boundaries keep their line numbers.
        let mut body = b"id,note\n".to_vec();
        let rows = CHUNK / 10;
        for i in 0..rows {
            body.extend_from_slice(format!("{i},\"x\ny\"\n").as_bytes());
        }
        body.extend_from_slice(b"oops\n");
        let (line, message, _) = seed_parts(&fail(&body, &SeedOptions::default()));
        assert_eq!(line, Some(2 + 2 * rows));
        assert_eq!(message, "this row has 1 field but the header has 2 columns");
    }

    #[test]
    fn batches_of_batch_rows() {
        let opts = SeedOptions {
            batch_rows: 2,
            ..SeedOptions::default()
        };
        let seed = load_with(b"n,s\n1,a\n2,b\n3,c\n4,d\n5,e\n", &opts);
        assert_eq!(seed.rows, 5);
        let sizes: Vec<_> = seed.batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(
            ints(&seed, 0),
            vec![Some(1), Some(2), Some(3), Some(4), Some(5)]
        );
        let last: Vec<_> = seed.batches[2]
            .column(1)
            .as_string::<i32>()
            .iter()
            .collect();
        assert_eq!(last, vec![Some("e")]);
    }

    #[test]
    fn sql_types() {
        let ts = |tz: Option<&str>| DataType::Timestamp(TimeUnit::Microsecond, tz.map(Arc::from));
        let cases = [
            ("bigint", Some(DataType::Int64)),
            ("INT8", Some(DataType::Int64)),
            ("integer", Some(DataType::Int32)),
            ("int4", Some(DataType::Int32)),
            ("smallint", Some(DataType::Int16)),
            ("double  precision", Some(DataType::Float64)),
            ("float", Some(DataType::Float64)),
            ("real", Some(DataType::Float32)),
            ("float(10)", Some(DataType::Float32)),
            ("numeric", Some(DataType::Decimal128(38, 10))),
            ("numeric(12)", Some(DataType::Decimal128(12, 0))),
            ("decimal(12, 3)", Some(DataType::Decimal128(12, 3))),
            ("numeric(50,2)", Some(DataType::Decimal256(50, 2))),
            ("numeric(2,3)", None),
            ("varchar", Some(DataType::Utf8)),
            ("character varying(255)", Some(DataType::Utf8)),
            ("char(5)", Some(DataType::Utf8)),
            ("text", Some(DataType::Utf8)),
            ("date", Some(DataType::Date32)),
            ("timestamp", Some(ts(None))),
            ("timestamp(3) without time zone", Some(ts(None))),
            ("datetime", Some(ts(None))),
            ("timestamptz", Some(ts(Some("UTC")))),
            ("TIMESTAMP WITH TIME ZONE", Some(ts(Some("UTC")))),
            ("bool", Some(DataType::Boolean)),
            ("boolean", Some(DataType::Boolean)),
            ("geography", None),
            ("int(", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(sql_type_to_arrow(sql), expected, "{sql}");
        }
    }
}
