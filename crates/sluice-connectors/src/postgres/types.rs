//! PostgreSQL types → Arrow, and how each is decoded from binary COPY.
//!
//! | PostgreSQL | Arrow | notes |
//! |---|---|---|
//! | `boolean` | Boolean | |
//! | `smallint`, `integer`, `bigint` | Int16, Int32, Int64 | `oid` → Int64 |
//! | `real`, `double precision` | Float32, Float64 | |
//! | `numeric(p,s)`, p ≤ 38 | Decimal128(p,s) | |
//! | `numeric` (no precision) | Utf8 | exact text; declare `decimal(p,s)` or `float64` in `columns:` for a number |
//! | `numeric(p,s)`, p > 38 | string | read as text |
//! | `text`, `varchar`, `char(n)`, `name`, `citext`, enums | Utf8 | |
//! | `bytea` | Binary | |
//! | `date` | Date32 | ±infinity is a bad record |
//! | `time` | Time64(µs) | |
//! | `timestamp` | Timestamp(µs) | ±infinity is a bad record |
//! | `timestamptz` | Timestamp(µs, UTC) | |
//! | `interval` | Interval(MonthDayNano) | |
//! | `uuid` | Utf8 (`8-4-4-4-12` hex) | |
//! | `json`, `jsonb` | Utf8 (JSON text) | |
//! | 1-D arrays of the above | List | more dimensions are bad records |
//! | domains | their base type | |
//! | anything else (`inet`, `money`, `xml`, ranges, geometric, `timetz`, …) | Utf8 | read as `col::text` |

use arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use std::sync::Arc;

/// How a column's binary values are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgKind {
    /// `boolean`.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `oid` (unsigned 32-bit).
    Oid,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric` into Decimal128(precision, scale).
    Numeric {
        /// Arrow precision.
        precision: u8,
        /// Arrow scale.
        scale: i8,
    },
    /// Text-like: the bytes are UTF-8.
    Text,
    /// `jsonb`: a version byte, then UTF-8.
    Jsonb,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`.
    Timestamptz,
    /// `interval`.
    Interval,
    /// `uuid`.
    Uuid,
    /// A one-dimensional array.
    Array(Box<PgKind>),
}

impl PgKind {
    /// The Arrow type of the column.
    pub fn data_type(&self) -> DataType {
        match self {
            PgKind::Bool => DataType::Boolean,
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 | PgKind::Oid => DataType::Int64,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 => DataType::Float64,
            PgKind::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            PgKind::Text | PgKind::Jsonb | PgKind::Uuid => DataType::Utf8,
            PgKind::Bytea => DataType::Binary,
            PgKind::Date => DataType::Date32,
            PgKind::Time => DataType::Time64(TimeUnit::Microsecond),
            PgKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgKind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            PgKind::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            PgKind::Array(inner) => {
                DataType::List(Arc::new(Field::new("item", inner.data_type(), true)))
            }
        }
    }
}

/// What the catalog says about a column's type.
#[derive(Debug, Clone, Default)]
pub struct PgTypeInfo {
    /// `typname` of the type after resolving domains (`int4`, `_text`, …).
    pub name: String,
    /// `typtype`: `b` base, `e` enum, `d` domain, `c` composite, `r` range, …
    pub typtype: String,
    /// For arrays: the element's `typname`, `typtype`.
    pub element: Option<(String, String)>,
    /// `atttypmod` (numeric precision/scale, varchar length), -1 when none.
    pub typmod: i32,
}

/// The decoder for a type, or why it is read as text.
pub fn kind_of(t: &PgTypeInfo) -> Result<PgKind, String> {
    if let Some((elem, elem_typtype)) = &t.element {
        let inner = scalar_kind(elem, elem_typtype, -1)?;
        return Ok(PgKind::Array(Box::new(inner)));
    }
    scalar_kind(&t.name, &t.typtype, t.typmod)
}

fn scalar_kind(name: &str, typtype: &str, typmod: i32) -> Result<PgKind, String> {
    if typtype == "e" {
        return Ok(PgKind::Text);
    }
    Ok(match name {
        "bool" => PgKind::Bool,
        "int2" => PgKind::Int2,
        "int4" => PgKind::Int4,
        "int8" => PgKind::Int8,
        "oid" => PgKind::Oid,
        "float4" => PgKind::Float4,
        "float8" => PgKind::Float8,
        "numeric" => numeric_kind(typmod)?,
        "text" | "varchar" | "bpchar" | "name" | "char" | "citext" | "json" | "xml_text" => {
            PgKind::Text
        }
        "jsonb" => PgKind::Jsonb,
        "bytea" => PgKind::Bytea,
        "date" => PgKind::Date,
        "time" => PgKind::Time,
        "timestamp" => PgKind::Timestamp,
        "timestamptz" => PgKind::Timestamptz,
        "interval" => PgKind::Interval,
        "uuid" => PgKind::Uuid,
        other => return Err(format!("no Arrow type for `{other}`")),
    })
}

/// `numeric(p,s)`: typmod = ((p << 16) | s) + 4.
fn numeric_kind(typmod: i32) -> Result<PgKind, String> {
    if typmod < 4 {
        return Err("`numeric` without a precision can hold any number of digits: read as text, exactly; declare `decimal(p,s)` or `float64` for it in `columns:` to read it as a number".into());
    }
    let t = typmod - 4;
    let (p, s) = (((t >> 16) & 0xffff) as u8, (t & 0xffff) as i16);
    if p > 38 || !(0..=38).contains(&s) {
        return Err(format!(
            "numeric({p},{s}) is wider than Arrow's decimal (38 digits)"
        ));
    }
    Ok(PgKind::Numeric {
        precision: p.max(1),
        scale: s as i8,
    })
}

/// The PostgreSQL type to cast a column to so that it reads as `dt`
/// (for `columns:` declarations), and the decoder for it.
pub fn cast_for(dt: &DataType) -> Option<(&'static str, PgKind)> {
    Some(match dt {
        DataType::Utf8 => ("text", PgKind::Text),
        DataType::Boolean => ("boolean", PgKind::Bool),
        DataType::Int16 | DataType::Int8 => ("smallint", PgKind::Int2),
        DataType::Int32 => ("integer", PgKind::Int4),
        DataType::Int64 => ("bigint", PgKind::Int8),
        DataType::Float32 => ("real", PgKind::Float4),
        DataType::Float64 => ("double precision", PgKind::Float8),
        DataType::Date32 => ("date", PgKind::Date),
        DataType::Timestamp(_, None) => ("timestamp", PgKind::Timestamp),
        DataType::Timestamp(_, Some(_)) => ("timestamptz", PgKind::Timestamptz),
        DataType::Time64(_) => ("time", PgKind::Time),
        DataType::Binary => ("bytea", PgKind::Bytea),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, typmod: i32) -> PgTypeInfo {
        PgTypeInfo {
            name: name.into(),
            typtype: "b".into(),
            element: None,
            typmod,
        }
    }

    #[test]
    fn numeric_typmods() {
        // numeric(12,2)
        assert_eq!(
            kind_of(&t("numeric", ((12 << 16) | 2) + 4)).unwrap(),
            PgKind::Numeric {
                precision: 12,
                scale: 2
            }
        );
        assert!(
            kind_of(&t("numeric", -1))
                .unwrap_err()
                .contains("read as text")
        );
        assert!(kind_of(&t("numeric", ((50 << 16) | 2) + 4)).is_err());
        assert!(kind_of(&t("inet", -1)).unwrap_err().contains("inet"));
        let arr = PgTypeInfo {
            name: "_int4".into(),
            typtype: "b".into(),
            element: Some(("int4".into(), "b".into())),
            typmod: -1,
        };
        assert_eq!(
            kind_of(&arr).unwrap().data_type().to_string(),
            "List(Int32)"
        );
    }
}
