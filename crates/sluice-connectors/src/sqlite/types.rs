//! SQLite declared types → Arrow.
//!
//! SQLite stores each value with its own storage class (NULL, INTEGER,
//! REAL, TEXT, BLOB); a column only has a declared type and the *affinity*
//! derived from it. Sluice maps the declared type, first by the
//! conventional names below, then by SQLite's affinity rules
//! (<https://sqlite.org/datatype3.html> §3.1), and reads each value into
//! that type. A value that does not fit (e.g. `'abc'` in an INTEGER column)
//! is a bad record, never a silent NULL.
//!
//! | declared type | Arrow | values accepted |
//! |---|---|---|
//! | `BOOLEAN`, `BOOL` | Boolean | integers 0/1, texts `true`/`false`/`t`/`f`/`0`/`1` |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)`, p ≤ 38 | Decimal128(p,s) | integers; reals (rounded to s places); texts with at most s places |
//! | `DATE` | Date32 | `YYYY-MM-DD` text (a time part must be midnight); integer = unix seconds; real = julian day |
//! | `DATETIME`, `TIMESTAMP…` | Timestamp(µs, UTC) | ISO-8601 text, `T` or space, optional fraction, optional `Z`/`±HH:MM` (converted to UTC, none = UTC); integer = unix seconds; real = julian day |
//! | `TIME` | Time64(µs) | `HH:MM[:SS[.ffffff]]` text |
//! | `JSON`, `JSONB` | Utf8 | text |
//! | contains `INT` | Int64 | integers; texts of an integer |
//! | contains `CHAR`, `CLOB`, `TEXT` | Utf8 | texts, numbers in their text form, UTF-8 blobs |
//! | contains `BLOB` | Binary | blobs, texts (their UTF-8 bytes) |
//! | contains `REAL`, `FLOA`, `DOUB` | Float64 | reals, integers, texts of a number |
//! | none (`CREATE TABLE t(a)`) | Utf8 | as text (any storage class can be there) |
//! | anything else (NUMERIC affinity: `NUMERIC`, `DECIMAL` without precision, `MONEY`, …) | Utf8 | as text: exact; declare `decimal(p,s)` or `float64` in `columns:` |

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};

/// How a column's values are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlKind {
    /// Int64.
    Int,
    /// Float64.
    Real,
    /// Utf8.
    Text,
    /// Binary.
    Blob,
    /// Boolean.
    Bool,
    /// Decimal128(precision, scale).
    Decimal {
        /// Digits in all.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// Date32.
    Date,
    /// Timestamp(µs) with this time zone.
    Timestamp(Option<Arc<str>>),
    /// Time64(µs).
    Time,
}

impl SqlKind {
    /// The Arrow type of the column.
    pub fn data_type(&self) -> DataType {
        match self {
            SqlKind::Int => DataType::Int64,
            SqlKind::Real => DataType::Float64,
            SqlKind::Text => DataType::Utf8,
            SqlKind::Blob => DataType::Binary,
            SqlKind::Bool => DataType::Boolean,
            SqlKind::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            SqlKind::Date => DataType::Date32,
            SqlKind::Timestamp(tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            SqlKind::Time => DataType::Time64(TimeUnit::Microsecond),
        }
    }
}

/// The kind for a declared type, and why it is read as text when it is
/// text for lack of a better mapping.
pub fn kind_of(declared: &str) -> (SqlKind, Option<String>) {
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper
        .split(|c: char| c == '(' || c.is_ascii_whitespace())
        .next()
        .unwrap_or("");
    match base {
        "BOOLEAN" | "BOOL" => return (SqlKind::Bool, None),
        "DATE" => return (SqlKind::Date, None),
        "DATETIME" | "TIMESTAMP" | "TIMESTAMPTZ" => {
            return (SqlKind::Timestamp(Some("UTC".into())), None);
        }
        "TIME" => return (SqlKind::Time, None),
        "JSON" | "JSONB" => return (SqlKind::Text, None),
        "DECIMAL" | "NUMERIC" => {
            return match decimal_args(&upper) {
                Ok(kind) => (kind, None),
                Err(why) => (SqlKind::Text, Some(why)),
            };
        }
        _ => {}
    }
    // SQLite's affinity rules, in their order.
    if upper.contains("INT") {
        (SqlKind::Int, None)
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t)) {
        (SqlKind::Text, None)
    } else if upper.contains("BLOB") {
        (SqlKind::Blob, None)
    } else if upper.is_empty() {
        (
            SqlKind::Text,
            Some("no declared type, so any value can be stored: read as text".into()),
        )
    } else if ["REAL", "FLOA", "DOUB"].iter().any(|t| upper.contains(t)) {
        (SqlKind::Real, None)
    } else {
        (
            SqlKind::Text,
            Some(format!(
                "`{}` has NUMERIC affinity without a precision: read as text, exactly; declare `decimal(p,s)` or `float64` in `columns:` to read it as a number",
                declared.trim()
            )),
        )
    }
}

/// `DECIMAL(p,s)` / `NUMERIC(p)`.
fn decimal_args(upper: &str) -> Result<SqlKind, String> {
    let no_precision = || {
        format!(
            "`{upper}` without a precision can hold any number: read as text, exactly; declare `decimal(p,s)` or `float64` in `columns:` to read it as a number"
        )
    };
    let Some(open) = upper.find('(') else {
        return Err(no_precision());
    };
    let inner = upper[open + 1..].trim_end().trim_end_matches(')');
    let mut parts = inner.split(',').map(str::trim);
    let p: u8 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(no_precision)?;
    let s: i8 = match parts.next() {
        Some(s) => s.parse().map_err(|_| no_precision())?,
        None => 0,
    };
    if p == 0 || p > 38 || s < 0 || s as u8 > p {
        return Err(format!(
            "`{upper}` does not fit Arrow's decimal (at most 38 digits): read as text"
        ));
    }
    Ok(SqlKind::Decimal {
        precision: p,
        scale: s,
    })
}

/// The kind that reads a column as `dt` (a `columns:` declaration), or
/// `None` when SQLite values cannot be read as that type. Integers of any
/// width read as Int64 and floats as Float64.
pub fn kind_for(dt: &DataType) -> Option<SqlKind> {
    Some(match dt {
        DataType::Utf8 => SqlKind::Text,
        DataType::Boolean => SqlKind::Bool,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => SqlKind::Int,
        DataType::Float32 | DataType::Float64 => SqlKind::Real,
        DataType::Decimal128(p, s) if *s >= 0 => SqlKind::Decimal {
            precision: *p,
            scale: *s,
        },
        DataType::Date32 => SqlKind::Date,
        DataType::Timestamp(_, tz) => SqlKind::Timestamp(tz.clone()),
        DataType::Time64(_) => SqlKind::Time,
        DataType::Binary => SqlKind::Blob,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(declared: &str) -> String {
        sluice_core::types::type_name(&kind_of(declared).0.data_type())
    }

    #[test]
    fn conventional_names_then_affinity() {
        let cases = [
            ("INTEGER", "int64"),
            ("BIGINT", "int64"),
            ("unsigned big int", "int64"),
            ("TINYINT(1)", "int64"),
            ("REAL", "float64"),
            ("DOUBLE PRECISION", "float64"),
            ("FLOAT", "float64"),
            ("TEXT", "string"),
            ("VARCHAR(40)", "string"),
            ("NCHAR(5)", "string"),
            ("CLOB", "string"),
            ("BLOB", "binary"),
            ("BOOLEAN", "bool"),
            ("bool", "bool"),
            ("DECIMAL(12,2)", "decimal(12,2)"),
            ("NUMERIC(10)", "decimal(10,0)"),
            ("DATE", "date"),
            ("DATETIME", "timestamptz"),
            ("TIMESTAMP", "timestamptz"),
            ("TIME", "time"),
            ("JSON", "string"),
            ("", "string"),
            ("NUMERIC", "string"),
            ("MONEY", "string"),
        ];
        for (declared, want) in cases {
            assert_eq!(dt(declared), want, "{declared}");
        }
        assert!(kind_of("").1.unwrap().contains("no declared type"));
        assert!(kind_of("NUMERIC").1.unwrap().contains("decimal(p,s)"));
        assert!(kind_of("DECIMAL(50,2)").1.unwrap().contains("38"));
        assert!(kind_of("INTEGER").1.is_none());
    }

    #[test]
    fn declared_column_types() {
        assert_eq!(kind_for(&DataType::Int32), Some(SqlKind::Int));
        assert_eq!(
            kind_for(&DataType::Decimal128(9, 3)),
            Some(SqlKind::Decimal {
                precision: 9,
                scale: 3
            })
        );
        assert_eq!(kind_for(&DataType::UInt64), None);
    }
}
