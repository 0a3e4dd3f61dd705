//! Jinja database calls (`run_query`, `statement`) on PostgreSQL: a
//! statement's rows as Arrow, typed by what the server says the columns are.
//!
//! A single statement is prepared first, for its column types (booleans,
//! integers and floats keep their type; `numeric` is an integer column when
//! every value is whole, else a float one; dates, times and everything else
//! are text as PostgreSQL prints them). Several statements in one call run
//! as they are (simple protocol), their rows as text.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{Field, Schema};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::sql::{db_error, rows_of, simple, wrap};
use crate::engine::{EngineError, EngineResult, QueryResult, statement_code};

/// How a column's text becomes Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Numeric,
    Text,
}

fn kind_of(t: &Type) -> Kind {
    match *t {
        Type::BOOL => Kind::Bool,
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => Kind::Int,
        Type::FLOAT4 | Type::FLOAT8 => Kind::Float,
        Type::NUMERIC => Kind::Numeric,
        _ => Kind::Text,
    }
}

/// Run `sql` on `client`: its rows (if it returns any) and its row count.
pub(super) async fn run(client: &Client, sql: &str) -> EngineResult<QueryResult> {
    let w = wrap("", sql, "");
    // Prepared only for the column types; a statement that cannot be
    // prepared (several commands) runs as it is, its error (if any) from
    // running it.
    let kinds: Option<Vec<Kind>> = match client.prepare(&w.statement).await {
        Ok(stmt) => Some(stmt.columns().iter().map(|c| kind_of(c.type_())).collect()),
        Err(_) => None,
    };
    let messages = simple(client, &w.statement)
        .await
        .map_err(|e| db_error("running the query", &e, Some(&w)))?;
    let code = statement_code(sql);
    let count = rows_of(&messages);
    let counted = matches!(
        code.as_str(),
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY" | "FETCH" | "MOVE"
    );
    // The rows of the last statement that returned any.
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    for m in &messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                names = cols.iter().map(|c| c.name().to_string()).collect();
                rows.clear();
            }
            SimpleQueryMessage::Row(r) => {
                if names.is_empty() {
                    names = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
            _ => {}
        }
    }
    let kinds = match kinds {
        Some(k) if k.len() == names.len() => k,
        _ => vec![Kind::Text; names.len()],
    };
    let batch = to_batch(&names, &kinds, &rows)?;
    Ok(QueryResult {
        schema: batch.schema(),
        batches: if names.is_empty() {
            Vec::new()
        } else {
            vec![batch]
        },
        code,
        rows_affected: (counted || count > 0).then_some(count),
    })
}

fn bad(column: &str, value: &str, what: &str) -> EngineError {
    EngineError::new(format!(
        "column `{column}`: PostgreSQL sent `{value}`, which is not {what}"
    ))
}

/// Text rows as one batch, each column typed by its kind.
fn to_batch(
    names: &[String],
    kinds: &[Kind],
    rows: &[Vec<Option<String>>],
) -> EngineResult<RecordBatch> {
    let mut fields = Vec::with_capacity(names.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(names.len());
    for (i, (name, kind)) in names.iter().zip(kinds).enumerate() {
        let cells = rows.iter().map(|r| r.get(i).and_then(Option::as_deref));
        let kind = match kind {
            // Whole numbers stay integers (`sum` of integers is numeric).
            Kind::Numeric => {
                let whole = rows.iter().all(|r| {
                    r.get(i)
                        .and_then(Option::as_deref)
                        .is_none_or(|v| v.parse::<i64>().is_ok())
                });
                if whole { Kind::Int } else { Kind::Float }
            }
            k => *k,
        };
        let array: ArrayRef = match kind {
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                for c in cells {
                    match c {
                        None => b.append_null(),
                        Some("t") => b.append_value(true),
                        Some("f") => b.append_value(false),
                        Some(v) => return Err(bad(name, v, "a boolean")),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Int | Kind::Numeric => {
                let mut b = Int64Builder::new();
                for c in cells {
                    match c {
                        None => b.append_null(),
                        Some(v) => b.append_value(
                            v.parse::<i64>().map_err(|_| bad(name, v, "an integer"))?,
                        ),
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Float => {
                let mut b = Float64Builder::new();
                for c in cells {
                    match c {
                        None => b.append_null(),
                        Some(v) => {
                            b.append_value(v.parse::<f64>().map_err(|_| bad(name, v, "a number"))?)
                        }
                    }
                }
                Arc::new(b.finish())
            }
            Kind::Text => {
                let mut b = StringBuilder::new();
                for c in cells {
                    b.append_option(c);
                }
                Arc::new(b.finish())
            }
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    if arrays.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    RecordBatch::try_new(schema, arrays).map_err(|e| EngineError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Int64Type};

    use super::*;

    #[test]
    fn text_rows_become_typed_columns() {
        let rows = vec![
            vec![
                Some("t".to_string()),
                Some("10".into()),
                Some("2.50".into()),
                Some("2024-01-02".into()),
            ],
            vec![None, Some("7".into()), None, None],
        ];
        let names: Vec<String> = ["ok", "n", "amount", "day"].map(String::from).to_vec();
        let b = to_batch(
            &names,
            &[Kind::Bool, Kind::Numeric, Kind::Numeric, Kind::Text],
            &rows,
        )
        .unwrap();
        assert_eq!(b.column(0).data_type(), &DataType::Boolean);
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 10);
        assert_eq!(b.column(2).data_type(), &DataType::Float64);
        assert!(b.column(2).is_null(1));
        assert_eq!(b.column(3).as_string::<i32>().value(0), "2024-01-02");
        let err = to_batch(&names[..1], &[Kind::Bool], &[vec![Some("x".into())]]).unwrap_err();
        assert!(err.message.contains("`ok`"), "{}", err.message);
    }
}
