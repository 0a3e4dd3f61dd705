//! Arrow types as PostgreSQL columns, and the SQL that creates and evolves
//! tables.
//!
//! Every incoming Arrow type is first mapped to the *stored* type
//! ([`stored_schema`]): the Arrow type that reads back from the column
//! (`PgKind::data_type`). The evolution rules (`sluice_core::evolution`)
//! then compare stored types with stored types, exactly as the lake does.
//!
//! | Arrow | PostgreSQL |
//! |---|---|
//! | Boolean | `boolean` |
//! | Int8, Int16, UInt8 | `smallint` |
//! | Int32, UInt16 | `integer` |
//! | Int64, UInt32 | `bigint` |
//! | UInt64 | `numeric(20,0)` |
//! | Float16, Float32 / Float64 | `real` / `double precision` |
//! | Decimal(p,s), p ≤ 38 | `numeric(p,s)` (negative scale: `numeric(p-s,0)`) |
//! | Utf8, LargeUtf8, Utf8View, Null | `text` |
//! | Binary, LargeBinary, FixedSizeBinary, BinaryView | `bytea` |
//! | Date32, Date64 | `date` |
//! | Time32, Time64 | `time` (µs) |
//! | Timestamp(unit, None) | `timestamp` (µs; ns loses sub-µs digits) |
//! | Timestamp(unit, Some(zone)) | `timestamptz` |
//! | Interval, Duration | `interval` (µs; ns loses sub-µs digits) |
//! | List / LargeList / FixedSizeList of a type above | that type's array (`bigint[]`, …) |
//! | Struct, Map, lists of nested values, anything else | `jsonb` |
//! | Dictionary | its value type |

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use sluice_core::connector::ConnectorError;

use crate::postgres::catalog::ident;
use crate::postgres::types::PgKind;

/// Field metadata marking `jsonb`, `uuid` and `oid` columns (Utf8 / Int64
/// for the rules) and columns of types Sluice cannot write (`other:<type>`).
pub const PG_TYPE_KEY: &str = "sluice.postgres.type";

/// The column kind an Arrow type is stored as.
pub fn kind_for(dt: &DataType) -> PgKind {
    use DataType::*;
    match dt {
        Boolean => PgKind::Bool,
        Int8 | Int16 | UInt8 => PgKind::Int2,
        Int32 | UInt16 => PgKind::Int4,
        Int64 | UInt32 => PgKind::Int8,
        UInt64 => PgKind::Numeric {
            precision: 20,
            scale: 0,
        },
        Float16 | Float32 => PgKind::Float4,
        Float64 => PgKind::Float8,
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
            decimal_kind(*p, *s)
        }
        Null | Utf8 | LargeUtf8 | Utf8View => PgKind::Text,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => PgKind::Bytea,
        Date32 | Date64 => PgKind::Date,
        Time32(_) | Time64(_) => PgKind::Time,
        Timestamp(_, None) => PgKind::Timestamp,
        Timestamp(_, Some(_)) => PgKind::Timestamptz,
        Interval(_) | Duration(_) => PgKind::Interval,
        Dictionary(_, v) => kind_for(v),
        List(f) | LargeList(f) | FixedSizeList(f, _) | ListView(f) | LargeListView(f) => {
            match kind_for(f.data_type()) {
                PgKind::Array(_) | PgKind::Jsonb => PgKind::Jsonb,
                inner => PgKind::Array(Box::new(inner)),
            }
        }
        _ => PgKind::Jsonb,
    }
}

fn decimal_kind(p: u8, s: i8) -> PgKind {
    let (p, s) = if s < 0 {
        (p.saturating_add(s.unsigned_abs()), 0)
    } else {
        (p, s)
    };
    if p > 38 {
        // Wider than Decimal128: kept exactly as text.
        return PgKind::Text;
    }
    PgKind::Numeric {
        precision: p.max(1),
        scale: s,
    }
}

/// The stored field for a column of `kind`.
pub fn stored_field(name: &str, kind: &PgKind) -> FieldRef {
    let field = Field::new(name, kind.data_type(), true);
    let marker = match kind {
        PgKind::Jsonb => "jsonb",
        PgKind::Uuid => "uuid",
        PgKind::Oid => "oid",
        _ => return Arc::new(field),
    };
    Arc::new(field.with_metadata(HashMap::from([(
        PG_TYPE_KEY.to_string(),
        marker.to_string(),
    )])))
}

/// The schema `schema` is stored as (all columns nullable).
pub fn stored_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type() == &DataType::Null {
                Arc::new(Field::new(f.name(), DataType::Null, true))
            } else {
                stored_field(f.name(), &kind_for(f.data_type()))
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The column kind of a stored field.
pub fn kind_of_field(f: &Field) -> PgKind {
    match f.metadata().get(PG_TYPE_KEY).map(String::as_str) {
        Some("jsonb") => PgKind::Jsonb,
        Some("uuid") => PgKind::Uuid,
        Some("oid") => PgKind::Oid,
        _ => kind_for(f.data_type()),
    }
}

/// The SQL type of a column kind.
pub fn sql_type(kind: &PgKind) -> String {
    match kind {
        PgKind::Bool => "boolean".into(),
        PgKind::Int2 => "smallint".into(),
        PgKind::Int4 => "integer".into(),
        PgKind::Int8 => "bigint".into(),
        PgKind::Oid => "oid".into(),
        PgKind::Float4 => "real".into(),
        PgKind::Float8 => "double precision".into(),
        PgKind::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
        PgKind::Text => "text".into(),
        PgKind::Uuid => "uuid".into(),
        PgKind::Jsonb => "jsonb".into(),
        PgKind::Bytea => "bytea".into(),
        PgKind::Date => "date".into(),
        PgKind::Time => "time".into(),
        PgKind::Timestamp => "timestamp".into(),
        PgKind::Timestamptz => "timestamptz".into(),
        PgKind::Interval => "interval".into(),
        PgKind::Array(inner) => format!("{}[]", sql_type(inner)),
    }
}

/// The type OID of a column kind (binary COPY array headers name it).
pub fn type_oid(kind: &PgKind) -> u32 {
    match kind {
        PgKind::Bool => 16,
        PgKind::Int2 => 21,
        PgKind::Int4 => 23,
        PgKind::Int8 => 20,
        PgKind::Oid => 26,
        PgKind::Float4 => 700,
        PgKind::Float8 => 701,
        PgKind::Numeric { .. } => 1700,
        PgKind::Text => 25,
        PgKind::Uuid => 2950,
        PgKind::Jsonb => 3802,
        PgKind::Bytea => 17,
        PgKind::Date => 1082,
        PgKind::Time => 1083,
        PgKind::Timestamp => 1114,
        PgKind::Timestamptz => 1184,
        PgKind::Interval => 1186,
        PgKind::Array(_) => 0,
    }
}

/// A `schema.table` name, quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qualified {
    /// PostgreSQL schema.
    pub schema: String,
    /// Table.
    pub name: String,
}

impl Qualified {
    /// `"schema"."name"`.
    pub fn sql(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    /// The same schema, another table.
    pub fn sibling(&self, name: &str) -> Qualified {
        Qualified {
            schema: self.schema.clone(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for Qualified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Column list `"a", "b"`.
pub fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| ident(f.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE TABLE` for `schema`; `key` becomes the primary key when given.
pub fn create_table(
    table: &Qualified,
    schema: &Schema,
    key: Option<(&str, &[String])>,
    temp: bool,
) -> String {
    let mut cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", ident(f.name()), sql_type(&kind_of_field(f))))
        .collect();
    if let Some((constraint, keys)) = key.filter(|(_, k)| !k.is_empty()) {
        let keys: Vec<String> = keys.iter().map(|k| ident(k)).collect();
        cols.push(format!(
            "CONSTRAINT {} PRIMARY KEY ({})",
            ident(constraint),
            keys.join(", ")
        ));
    }
    if temp {
        format!(
            "CREATE TEMP TABLE {} ({}) ON COMMIT DROP",
            ident(&table.name),
            cols.join(", ")
        )
    } else {
        format!("CREATE TABLE {} ({})", table.sql(), cols.join(", "))
    }
}

/// The statements that turn a table of schema `old` into `new` (added
/// columns, widened types). `new` was produced by the evolution rules, so
/// every difference is an addition or a safe widening.
pub fn alter_statements(table_sql: &str, old: &Schema, new: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for f in new.fields() {
        let new_kind = kind_of_field(f);
        match old.field_with_name(f.name()) {
            Err(_) => out.push(format!(
                "ALTER TABLE {table_sql} ADD COLUMN {} {}",
                ident(f.name()),
                sql_type(&new_kind)
            )),
            Ok(o) => {
                let old_kind = kind_of_field(o);
                if old_kind != new_kind && sql_type(&old_kind) != sql_type(&new_kind) {
                    let t = sql_type(&new_kind);
                    out.push(format!(
                        "ALTER TABLE {table_sql} ALTER COLUMN {c} TYPE {t} USING {c}::{t}",
                        c = ident(f.name())
                    ));
                }
            }
        }
    }
    out
}

/// An error naming the table, with PostgreSQL's own text.
pub fn sql_error(table: &Qualified, doing: &str, e: tokio_postgres::Error) -> ConnectorError {
    let mut text = crate::postgres::connect::error_text(&e);
    if let Some(db) = e.as_db_error() {
        if let Some(w) = db.where_() {
            text.push_str(&format!(" [{w}]"));
        }
        if let Some(h) = db.hint() {
            text.push_str(&format!(" (server hint: {h})"));
        }
    }
    let retryable = e.as_db_error().is_none();
    ConnectorError::External {
        message: format!("Table `{table}`: {doing} failed: {text}"),
        source: Some(Box::new(e)),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{IntervalUnit, TimeUnit};

    #[test]
    fn maps_arrow_types() {
        let cases: Vec<(DataType, &str)> = vec![
            (DataType::Int8, "smallint"),
            (DataType::UInt16, "integer"),
            (DataType::UInt32, "bigint"),
            (DataType::UInt64, "numeric(20,0)"),
            (DataType::Float16, "real"),
            (DataType::Decimal128(12, 2), "numeric(12,2)"),
            (DataType::Decimal128(5, -2), "numeric(7,0)"),
            (DataType::LargeUtf8, "text"),
            (DataType::Date64, "date"),
            (DataType::Time32(TimeUnit::Millisecond), "time"),
            (DataType::Timestamp(TimeUnit::Nanosecond, None), "timestamp"),
            (
                DataType::Timestamp(TimeUnit::Second, Some("+02:00".into())),
                "timestamptz",
            ),
            (DataType::Duration(TimeUnit::Second), "interval"),
            (DataType::Interval(IntervalUnit::YearMonth), "interval"),
            (
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                "integer[]",
            ),
            (
                DataType::List(Arc::new(Field::new(
                    "item",
                    DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
                    true,
                ))),
                "jsonb",
            ),
            (
                DataType::Struct(vec![Field::new("a", DataType::Int32, true)].into()),
                "jsonb",
            ),
        ];
        for (dt, sql) in cases {
            assert_eq!(sql_type(&kind_for(&dt)), sql, "{dt}");
        }
    }

    #[test]
    fn alters_added_and_widened_columns() {
        let old = Schema::new(vec![Field::new("a", DataType::Int32, true)]);
        let new = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let s = alter_statements("t", &old, &new);
        assert_eq!(
            s,
            [
                "ALTER TABLE t ALTER COLUMN \"a\" TYPE bigint USING \"a\"::bigint",
                "ALTER TABLE t ADD COLUMN \"b\" text"
            ]
        );
    }
}
