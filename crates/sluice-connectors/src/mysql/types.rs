//! MySQL/MariaDB types → Arrow.
//!
//! | MySQL / MariaDB | Arrow | notes |
//! |---|---|---|
//! | `tinyint(1)`, `bool`, `boolean` | Boolean | a value other than 0 or 1 is a bad record |
//! | `tinyint`, `smallint`, `mediumint`, `int`, `bigint` | Int8, Int16, Int32, Int32, Int64 | |
//! | the same `UNSIGNED` | UInt8, UInt16, UInt32, UInt32, UInt64 | |
//! | `decimal(p,s)`, p ≤ 38 | Decimal128(p,s) | p > 38 (MySQL allows 65) → Utf8, exact text |
//! | `float`, `double` | Float32, Float64 | |
//! | `bit(n)`, n ≤ 63 | Int64 | the bits as a number (`b'101'` → 5) |
//! | `bit(64)` | Binary | 8 bytes, big-endian |
//! | `char`, `varchar`, `*text`, `enum`, `set` | Utf8 | |
//! | `json` | Utf8 | JSON text (MariaDB's `json` is `longtext` with a check) |
//! | `binary`, `varbinary`, `*blob` | Binary | |
//! | `date` | Date32 | the zero date `0000-00-00` (and zero month/day) → NULL |
//! | `time` | Time64(µs) | outside `00:00:00`–`23:59:59.999999` (TIME spans ±838 h) → bad record |
//! | `datetime(n)` | Timestamp(µs) | zero date → NULL |
//! | `timestamp(n)` | Timestamp(µs, UTC) | read in a `+00:00` session; zero → NULL |
//! | `year` | Int16 | |
//! | `inet4`, `inet6`, `uuid` (MariaDB) | Utf8 | their text form |
//! | `geometry`, `point`, `polygon`, … | Utf8 | read as `ST_AsText(col)` (WKT) |
//! | anything else | Utf8 | read as `CAST(col AS CHAR)` |

use arrow::datatypes::{DataType, TimeUnit};

/// How a column's values are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MyKind {
    /// `tinyint(1)`.
    Bool,
    /// Signed integers of 8, 16, 32, 64 bits.
    Int8,
    /// See [`MyKind::Int8`].
    Int16,
    /// See [`MyKind::Int8`].
    Int32,
    /// See [`MyKind::Int8`].
    Int64,
    /// Unsigned integers of 8, 16, 32, 64 bits.
    UInt8,
    /// See [`MyKind::UInt8`].
    UInt16,
    /// See [`MyKind::UInt8`].
    UInt32,
    /// See [`MyKind::UInt8`].
    UInt64,
    /// `float`.
    Float32,
    /// `double`.
    Float64,
    /// `decimal(p,s)`.
    Decimal {
        /// Arrow precision.
        precision: u8,
        /// Arrow scale.
        scale: i8,
    },
    /// `bit(n)`, n ≤ 63: the bits as an Int64.
    Bits,
    /// Text (UTF-8).
    Text,
    /// Bytes.
    Binary,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `datetime`.
    DateTime,
    /// `timestamp` (UTC session).
    Timestamp,
    /// `year`.
    Year,
}

impl MyKind {
    /// The Arrow type of the column.
    pub fn data_type(self) -> DataType {
        match self {
            MyKind::Bool => DataType::Boolean,
            MyKind::Int8 => DataType::Int8,
            MyKind::Int16 | MyKind::Year => DataType::Int16,
            MyKind::Int32 => DataType::Int32,
            MyKind::Int64 | MyKind::Bits => DataType::Int64,
            MyKind::UInt8 => DataType::UInt8,
            MyKind::UInt16 => DataType::UInt16,
            MyKind::UInt32 => DataType::UInt32,
            MyKind::UInt64 => DataType::UInt64,
            MyKind::Float32 => DataType::Float32,
            MyKind::Float64 => DataType::Float64,
            MyKind::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            MyKind::Text => DataType::Utf8,
            MyKind::Binary => DataType::Binary,
            MyKind::Date => DataType::Date32,
            MyKind::Time => DataType::Time64(TimeUnit::Microsecond),
            MyKind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            MyKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    /// Whether key ranges (`split:`) can be cut on a column of this kind.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            MyKind::Int8
                | MyKind::Int16
                | MyKind::Int32
                | MyKind::Int64
                | MyKind::UInt8
                | MyKind::UInt16
                | MyKind::UInt32
                | MyKind::UInt64
        )
    }
}

/// What `information_schema.COLUMNS` says about a column's type.
#[derive(Debug, Clone, Default)]
pub struct MyTypeInfo {
    /// `DATA_TYPE` (`int`, `varchar`, …), lower case.
    pub data_type: String,
    /// `COLUMN_TYPE` (`int(10) unsigned`, `tinyint(1)`, `enum('a','b')`).
    pub column_type: String,
    /// `NUMERIC_PRECISION` (decimal digits; bits for `bit`).
    pub precision: Option<u64>,
    /// `NUMERIC_SCALE`.
    pub scale: Option<u64>,
}

/// How a column is read: its decoder, and how it is selected when not as
/// itself (`ST_AsText(col)`); `Err` says why it is read as text and how.
pub enum Mapping {
    /// Read the column as it is.
    Native(MyKind),
    /// Read `expr` (with `{}` for the quoted column) as text, for this reason.
    AsText(&'static str, String),
}

/// The mapping of a column type.
pub fn kind_of(t: &MyTypeInfo) -> Mapping {
    let column_type = t.column_type.to_ascii_lowercase();
    let unsigned = column_type.contains("unsigned");
    let pick =
        |signed, unsigned_kind| Mapping::Native(if unsigned { unsigned_kind } else { signed });
    match t.data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.starts_with("tinyint(1)") => Mapping::Native(MyKind::Bool),
        "bool" | "boolean" => Mapping::Native(MyKind::Bool),
        "tinyint" => pick(MyKind::Int8, MyKind::UInt8),
        "smallint" => pick(MyKind::Int16, MyKind::UInt16),
        "mediumint" | "int" | "integer" => pick(MyKind::Int32, MyKind::UInt32),
        "bigint" => pick(MyKind::Int64, MyKind::UInt64),
        "float" => Mapping::Native(MyKind::Float32),
        "double" | "real" | "double precision" => Mapping::Native(MyKind::Float64),
        "decimal" | "numeric" | "dec" | "fixed" => {
            let (p, s) = (t.precision.unwrap_or(10), t.scale.unwrap_or(0));
            if p > 38 || s > 38 {
                Mapping::AsText(
                    "{}",
                    format!(
                        "decimal({p},{s}) is wider than Arrow's decimal (38 digits): read as exact text; declare `decimal(p,s)` with p ≤ 38 or `float64` in `columns:` for a number"
                    ),
                )
            } else {
                Mapping::Native(MyKind::Decimal {
                    precision: (p as u8).max(1),
                    scale: s as i8,
                })
            }
        }
        "bit" if t.precision.unwrap_or(1) >= 64 => Mapping::Native(MyKind::Binary),
        "bit" => Mapping::Native(MyKind::Bits),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" | "inet4" | "inet6" | "uuid" => Mapping::Native(MyKind::Text),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            Mapping::Native(MyKind::Binary)
        }
        "date" => Mapping::Native(MyKind::Date),
        "time" => Mapping::Native(MyKind::Time),
        "datetime" => Mapping::Native(MyKind::DateTime),
        "timestamp" => Mapping::Native(MyKind::Timestamp),
        "year" => Mapping::Native(MyKind::Year),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => Mapping::AsText(
            "ST_AsText({})",
            "geometry: read as WKT text (`ST_AsText`)".to_string(),
        ),
        other => Mapping::AsText(
            "CAST({} AS CHAR)",
            format!("no Arrow type for `{other}`: read as `CAST(… AS CHAR)`"),
        ),
    }
}

/// The SQL cast that makes a column read as `dt` (for `columns:`
/// declarations), with `{}` for the quoted column, and the decoder for it.
pub fn cast_for(dt: &DataType) -> Option<(String, MyKind)> {
    Some(match dt {
        DataType::Utf8 => ("CAST({} AS CHAR)".into(), MyKind::Text),
        DataType::Boolean => ("({} <> 0)".into(), MyKind::Bool),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            ("CAST({} AS SIGNED)".into(), MyKind::Int64)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            ("CAST({} AS UNSIGNED)".into(), MyKind::UInt64)
        }
        DataType::Float32 | DataType::Float64 => ("({} + 0e0)".into(), MyKind::Float64),
        DataType::Decimal128(p, s) if *s >= 0 => (
            format!("CAST({{}} AS DECIMAL({p},{s}))"),
            MyKind::Decimal {
                precision: *p,
                scale: *s,
            },
        ),
        DataType::Date32 => ("CAST({} AS DATE)".into(), MyKind::Date),
        DataType::Timestamp(_, None) => ("CAST({} AS DATETIME(6))".into(), MyKind::DateTime),
        DataType::Timestamp(_, Some(_)) => ("CAST({} AS DATETIME(6))".into(), MyKind::Timestamp),
        DataType::Time64(_) => ("CAST({} AS TIME(6))".into(), MyKind::Time),
        DataType::Binary => ("CAST({} AS BINARY)".into(), MyKind::Binary),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(data_type: &str, column_type: &str, p: Option<u64>, s: Option<u64>) -> MyKind {
        match kind_of(&MyTypeInfo {
            data_type: data_type.into(),
            column_type: column_type.into(),
            precision: p,
            scale: s,
        }) {
            Mapping::Native(k) => k,
            Mapping::AsText(..) => MyKind::Text,
        }
    }

    #[test]
    fn column_types() {
        assert_eq!(t("tinyint", "tinyint(1)", None, None), MyKind::Bool);
        assert_eq!(t("tinyint", "tinyint(4)", None, None), MyKind::Int8);
        assert_eq!(t("int", "int(10) unsigned", None, None), MyKind::UInt32);
        assert_eq!(
            t("bigint", "bigint(20) unsigned", None, None),
            MyKind::UInt64
        );
        assert_eq!(
            t("decimal", "decimal(12,2)", Some(12), Some(2)).data_type(),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(t("bit", "bit(64)", Some(64), None), MyKind::Binary);
        assert_eq!(t("bit", "bit(3)", Some(3), None), MyKind::Bits);
        assert!(matches!(
            kind_of(&MyTypeInfo {
                data_type: "decimal".into(),
                column_type: "decimal(65,2)".into(),
                precision: Some(65),
                scale: Some(2)
            }),
            Mapping::AsText(..)
        ));
    }
}
