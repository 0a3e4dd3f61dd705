//! What `run_query` and `load_result(...)['table']` return: dbt's agate
//! `Table`, as projects use it.
//!
//! - `results.columns[0].values()`, `results.columns['name'].values()`,
//!   `results.column_names`, `results.column_types`;
//! - `results.rows`, `for row in results`, `results[0]`, `results|length`;
//!   a row is indexable by position and by column name (`row[0]`,
//!   `row['name']`), iterable, with `keys()`, `values()`, `items()`,
//!   `dict()`, `get()`;
//! - `results.print_table()` logs a small table.
//!
//! Values are Jinja values: integers, floats (decimals with a scale above
//! zero become floats, whole ones integers), strings, booleans and `none`;
//! dates and timestamps are strings as Python prints them
//! (`2024-01-31`, `2024-01-31 08:00:00`, with `.ffffff` when there are
//! fractions of seconds).

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, SchemaRef, TimeUnit, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};

use super::context::capture;

/// Rows and columns of a query's result.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    names: Arc<Vec<String>>,
    types: Vec<&'static str>,
    rows: Vec<Value>,
}

/// One row: values by position and by column name.
#[derive(Debug)]
struct Row {
    names: Arc<Vec<String>>,
    values: Vec<Value>,
}

/// `table.columns`: columns by position and by name.
#[derive(Debug)]
struct Columns(Arc<Table>);

/// One column.
#[derive(Debug)]
struct Column {
    name: String,
    data_type: &'static str,
    values: Vec<Value>,
}

fn unknown(what: &str, method: &str) -> Error {
    Error::new(
        ErrorKind::UnknownMethod,
        format!("{what} has no method `{method}`"),
    )
}

fn index(key: &Value, len: usize) -> Option<usize> {
    let i = i64::try_from(key.clone()).ok()?;
    let i = if i < 0 {
        i + i64::try_from(len).ok()?
    } else {
        i
    };
    usize::try_from(i).ok().filter(|i| *i < len)
}

/// agate's name of the type a column's values have.
fn agate_type(dt: &DataType) -> &'static str {
    match dt {
        DataType::Boolean => "Boolean",
        d if d.is_numeric() => "Number",
        DataType::Date32 | DataType::Date64 => "Date",
        DataType::Timestamp(..) => "DateTime",
        DataType::Duration(_) | DataType::Interval(_) => "TimeDelta",
        _ => "Text",
    }
}

/// A decimal's digits (`unscaled`) at `scale` as a Jinja number.
fn decimal(text: &str, scale: i8) -> Value {
    if scale <= 0
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::from(i);
    }
    text.parse::<f64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(text))
}

fn date(d: Option<chrono::NaiveDate>) -> Value {
    d.map_or(Value::from(()), |d| {
        Value::from(d.format("%Y-%m-%d").to_string())
    })
}

/// A timestamp as Python's `str(datetime)` prints it.
fn python_datetime(dt: chrono::NaiveDateTime, offset: Option<&str>) -> String {
    use chrono::Timelike;
    let mut s = if dt.nanosecond() == 0 {
        dt.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        dt.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    };
    if let Some(o) = offset {
        s.push_str(o);
    }
    s
}

/// The values of one column.
fn column_values(array: &dyn Array) -> Result<Vec<Value>, arrow::error::ArrowError> {
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! prim {
        ($t:ty, $conv:expr) => {{
            let a = array.as_primitive::<$t>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::from(())
                } else {
                    $conv(a.value(i))
                });
            }
        }};
    }
    match array.data_type() {
        DataType::Null => out.extend((0..n).map(|_| Value::from(()))),
        DataType::Boolean => {
            let a = array.as_boolean();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Value::from(())
                } else {
                    Value::from(a.value(i))
                });
            }
        }
        DataType::Int8 => prim!(Int8Type, |v: i8| Value::from(i64::from(v))),
        DataType::Int16 => prim!(Int16Type, |v: i16| Value::from(i64::from(v))),
        DataType::Int32 => prim!(Int32Type, |v: i32| Value::from(i64::from(v))),
        DataType::Int64 => prim!(Int64Type, Value::from),
        DataType::UInt8 => prim!(UInt8Type, |v: u8| Value::from(i64::from(v))),
        DataType::UInt16 => prim!(UInt16Type, |v: u16| Value::from(i64::from(v))),
        DataType::UInt32 => prim!(UInt32Type, |v: u32| Value::from(i64::from(v))),
        DataType::UInt64 => prim!(UInt64Type, Value::from),
        DataType::Float16 => {
            return column_values(arrow::compute::cast(array, &DataType::Float64)?.as_ref());
        }
        DataType::Float32 => prim!(Float32Type, |v: f32| Value::from(f64::from(v))),
        DataType::Float64 => prim!(Float64Type, Value::from),
        DataType::Date32 => prim!(Date32Type, |v: i32| date(Date32Type::to_naive_date_opt(v))),
        DataType::Date64 => prim!(Date64Type, |v: i64| date(Date64Type::to_naive_date_opt(v))),
        DataType::Decimal128(_, scale) | DataType::Decimal256(_, scale) => {
            let f = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            for i in 0..n {
                out.push(if array.is_null(i) {
                    Value::from(())
                } else {
                    decimal(&f.value(i).to_string(), *scale)
                });
            }
        }
        DataType::Timestamp(unit, tz) => {
            let offset = tz.as_ref().map(|_| "+00:00");
            let cast = arrow::compute::cast(array, &DataType::Int64)?;
            let a = cast.as_primitive::<Int64Type>();
            let raw: Vec<Option<i64>> = (0..n)
                .map(|i| (!a.is_null(i)).then(|| a.value(i)))
                .collect();
            for v in raw {
                let dt = v.and_then(|v| match unit {
                    TimeUnit::Second => chrono::DateTime::from_timestamp(v, 0),
                    TimeUnit::Millisecond => chrono::DateTime::from_timestamp_millis(v),
                    TimeUnit::Microsecond => chrono::DateTime::from_timestamp_micros(v),
                    TimeUnit::Nanosecond => Some(chrono::DateTime::from_timestamp_nanos(v)),
                });
                out.push(match dt {
                    Some(dt) => Value::from(python_datetime(dt.naive_utc(), offset)),
                    None => Value::from(()),
                });
            }
        }
        _ => {
            let f = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            for i in 0..n {
                out.push(if array.is_null(i) {
                    Value::from(())
                } else {
                    Value::from(f.value(i).to_string())
                });
            }
        }
    }
    Ok(out)
}

impl Table {
    /// The rows of `batches` (columns as `schema` says).
    pub fn from_batches(
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Table, arrow::error::ArrowError> {
        let names: Arc<Vec<String>> =
            Arc::new(schema.fields().iter().map(|f| f.name().clone()).collect());
        let types = schema
            .fields()
            .iter()
            .map(|f| agate_type(f.data_type()))
            .collect();
        let mut rows = Vec::new();
        for b in batches {
            let columns: Vec<Vec<Value>> = b
                .columns()
                .iter()
                .map(|c| column_values(c.as_ref()))
                .collect::<Result<_, _>>()?;
            for r in 0..b.num_rows() {
                rows.push(Value::from_object(Row {
                    names: names.clone(),
                    values: columns
                        .iter()
                        .map(|c| c.get(r).cloned().unwrap_or_default())
                        .collect(),
                }));
            }
        }
        Ok(Table { names, types, rows })
    }

    /// Each row as a list of values (`load_result(...)['data']`).
    pub fn data(&self) -> Value {
        Value::from(
            self.rows
                .iter()
                .map(|r| match r.downcast_object_ref::<Row>() {
                    Some(row) => Value::from(row.values.clone()),
                    None => Value::from(()),
                })
                .collect::<Vec<_>>(),
        )
    }

    fn column(&self, i: usize) -> Column {
        Column {
            name: self.names.get(i).cloned().unwrap_or_default(),
            data_type: self.types.get(i).copied().unwrap_or("Text"),
            values: self
                .rows
                .iter()
                .map(|r| {
                    r.downcast_object_ref::<Row>()
                        .and_then(|row| row.values.get(i).cloned())
                        .unwrap_or_default()
                })
                .collect(),
        }
    }

    /// A text table of the first `max_rows` rows and `max_columns` columns,
    /// as agate's `print_table` draws it.
    pub fn text(&self, max_rows: usize, max_columns: usize) -> String {
        let shown = self.names.len().min(max_columns);
        let mut cells: Vec<Vec<String>> = vec![self.names[..shown].to_vec()];
        for r in self.rows.iter().take(max_rows) {
            if let Some(row) = r.downcast_object_ref::<Row>() {
                cells.push(
                    row.values[..shown.min(row.values.len())]
                        .iter()
                        .map(|v| {
                            if v.is_none() {
                                String::new()
                            } else {
                                v.to_string()
                            }
                        })
                        .collect(),
                );
            }
        }
        let widths: Vec<usize> = (0..shown)
            .map(|c| {
                cells
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let line = |r: &[String]| {
            let mut s = String::from("|");
            for (c, w) in widths.iter().enumerate() {
                let v = r.get(c).map_or("", String::as_str);
                s.push_str(&format!(" {v:<w$} |"));
            }
            if self.names.len() > shown {
                s.push_str(" ... |");
            }
            s
        };
        let mut out = vec![line(&cells[0])];
        out.push(line(
            &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
        ));
        for r in &cells[1..] {
            out.push(line(r));
        }
        if self.rows.len() > max_rows {
            out.push(line(&vec!["...".to_string(); shown]));
        }
        out.join("\n")
    }
}

impl Object for Table {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(name) = key.as_str() {
            return match name {
                "columns" => Some(Value::from_object(Columns(self.clone()))),
                "column_names" => Some(Value::from(self.names.as_ref().clone())),
                "column_types" => Some(Value::from(self.types.clone())),
                "rows" => Some(Value::from(self.rows.clone())),
                _ => None,
            };
        }
        index(key, self.rows.len()).and_then(|i| self.rows.get(i).cloned())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.rows.len())
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "print_table" => {
                let (max_rows, max_columns, kwargs): (Option<usize>, Option<usize>, Kwargs) =
                    minijinja::value::from_args(args)?;
                let max_rows = match max_rows {
                    Some(n) => n,
                    None => kwargs.get::<Option<usize>>("max_rows")?.unwrap_or(20),
                };
                let max_columns = match max_columns {
                    Some(n) => n,
                    None => kwargs.get::<Option<usize>>("max_columns")?.unwrap_or(6),
                };
                let _ = kwargs.get::<Option<Value>>("max_column_width")?;
                let _ = kwargs.get::<Option<Value>>("output")?;
                kwargs.assert_all_used()?;
                let text = self.text(max_rows, max_columns);
                if let Ok(cap) = capture(state)
                    && let Ok(mut used) = cap.used.lock()
                {
                    used.logs.push(text);
                }
                Ok(Value::from(()))
            }
            m => Err(unknown("a query result (agate Table)", m)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<agate.Table: {} rows, columns {}>",
            self.rows.len(),
            self.names.join(", ")
        )
    }
}

impl Object for Row {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(name) = key.as_str() {
            let i = self.names.iter().position(|n| n == name)?;
            return self.values.get(i).cloned();
        }
        index(key, self.values.len()).and_then(|i| self.values.get(i).cloned())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.values.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "keys" => Ok(Value::from(self.names.as_ref().clone())),
            "values" => Ok(Value::from(self.values.clone())),
            "items" => Ok(Value::from(
                self.names
                    .iter()
                    .zip(&self.values)
                    .map(|(k, v)| Value::from(vec![Value::from(k.clone()), v.clone()]))
                    .collect::<Vec<_>>(),
            )),
            "dict" => Ok(Value::from_object(
                self.names
                    .iter()
                    .zip(&self.values)
                    .map(|(k, v)| (Value::from(k.clone()), v.clone()))
                    .collect::<indexmap::IndexMap<Value, Value>>(),
            )),
            "get" => {
                let (key, default): (Value, Option<Value>) = minijinja::value::from_args(args)?;
                Ok(self.get_value(&key).or(default).unwrap_or(Value::from(())))
            }
            m => Err(unknown("a row", m)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<agate.Row: (")?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if v.is_none() {
                f.write_str("None")?;
            } else if let Some(s) = v.as_str() {
                write!(f, "'{s}'")?;
            } else {
                write!(f, "{v}")?;
            }
        }
        write!(f, ")>")
    }
}

impl Columns {
    fn position(&self, key: &Value) -> Option<usize> {
        match key.as_str() {
            Some(name) => self.0.names.iter().position(|n| n == name),
            None => index(key, self.0.names.len()),
        }
    }
}

impl Object for Columns {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.position(key)
            .map(|i| Value::from_object(self.0.column(i)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.names.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "keys" => Ok(Value::from(self.0.names.as_ref().clone())),
            "values" => Ok(Value::from(
                (0..self.0.names.len())
                    .map(|i| Value::from_object(self.0.column(i)))
                    .collect::<Vec<_>>(),
            )),
            "items" => Ok(Value::from(
                (0..self.0.names.len())
                    .map(|i| {
                        Value::from(vec![
                            Value::from(self.0.names[i].clone()),
                            Value::from_object(self.0.column(i)),
                        ])
                    })
                    .collect::<Vec<_>>(),
            )),
            "get" => {
                let (key, default): (Value, Option<Value>) = minijinja::value::from_args(args)?;
                Ok(self.get_value(&key).or(default).unwrap_or(Value::from(())))
            }
            m => Err(unknown("table.columns", m)),
        }
    }
}

impl Object for Column {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str() {
            Some("name") => Some(Value::from(self.name.clone())),
            Some("data_type") => Some(Value::from(self.data_type)),
            Some(_) => None,
            None => index(key, self.values.len()).and_then(|i| self.values.get(i).cloned()),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.values.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _: &mut State<'_, '_>,
        method: &str,
        _: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "values" => Ok(Value::from(self.values.clone())),
            "values_without_nulls" => Ok(Value::from(
                self.values
                    .iter()
                    .filter(|v| !v.is_none())
                    .cloned()
                    .collect::<Vec<_>>(),
            )),
            "values_distinct" => {
                let mut out: Vec<Value> = Vec::new();
                for v in &self.values {
                    if !out.contains(v) {
                        out.push(v.clone());
                    }
                }
                Ok(Value::from(out))
            }
            m => Err(unknown("a column", m)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::{
        ArrayRef, Date32Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::engine::QueryResult;

    /// Two payments: a text, an integer, a decimal(10,2), a date and a
    /// timestamp column, with a NULL.
    pub(crate) fn payments() -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("method", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["card", "cash"])),
            Arc::new(Int64Array::from(vec![7, 3])),
            Arc::new(
                Decimal128Array::from(vec![Some(1250), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from(vec![19753, 19782])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                1_706_688_000_000_000,
                1_709_251_199_500_000,
            ])),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        QueryResult {
            schema,
            batches: vec![batch],
            code: "SELECT".into(),
            rows_affected: Some(2),
        }
    }

    #[test]
    fn arrow_values_become_jinja_values() {
        let q = payments();
        // Split over two batches: rows keep their order.
        let (a, b) = (q.batches[0].slice(0, 1), q.batches[0].slice(1, 1));
        let t = Table::from_batches(&q.schema, &[a, b]).unwrap();
        assert_eq!(
            t.types,
            vec!["Text", "Number", "Number", "Date", "DateTime"]
        );
        let data = t.data();
        assert_eq!(
            data.to_string(),
            "[['card', 7, 12.5, '2024-01-31', '2024-01-31 08:00:00'], ['cash', 3, None, '2024-02-29', '2024-02-29 23:59:59.500000']]"
        );
        // Whole decimals are integers; a time zone shows as Python does.
        let whole = Decimal128Array::from(vec![Some(1200)])
            .with_precision_and_scale(10, 0)
            .unwrap();
        assert_eq!(column_values(&whole).unwrap(), vec![Value::from(1200)]);
        let utc = TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC");
        assert_eq!(
            column_values(&utc).unwrap(),
            vec![Value::from("1970-01-01 00:00:00+00:00")]
        );
        // No rows: the columns are still there.
        let empty = Table::from_batches(&q.schema, &[]).unwrap();
        assert_eq!(empty.names.len(), 5);
        assert_eq!(
            empty.text(20, 2),
            "| method | n   | ... |\n| ------ | --- | ... |"
        );
    }
}
