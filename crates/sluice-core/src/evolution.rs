//! The written schema-evolution rules (ARCHITECTURE.md invariant 3).
//!
//! Every destination compares the table it has with the batches it gets
//! through [`evolve`], and never casts silently:
//!
//! | incoming vs table | result |
//! |---|---|
//! | same type (Utf8 / LargeUtf8 / Utf8View count as one) | unchanged |
//! | new column | **added** (nullable; old rows read as NULL) |
//! | column missing from the batch | kept; the batch gets NULLs |
//! | narrower than the table (int32 into int64, int into float64) | batch cast up, table unchanged |
//! | wider: int8→…→int64, uint→wider int, int→float64, float32→float64, decimal(p,s)→decimal with more digits on both sides, NULL-only → any | table **widened** |
//! | any → string, when `widen_to_string: true` | table widened to string |
//! | anything else (string→int, float→int, tz→no tz, …) | **refused** with a hint (`--full-refresh`) |
//!
//! Struct columns merge field by field with the same rules; lists by element.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema, SchemaRef};

use crate::types::type_name;

/// Options of the rules that a stream may set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvolutionPolicy {
    /// Allow a column to become a string when its values stop fitting its type.
    pub widen_to_string: bool,
    /// Refuse every change, even additions (`on_schema_change: fail`).
    pub frozen: bool,
}

/// One change the rules accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// A column that the table did not have.
    Added {
        /// Column path (`a.b` inside structs).
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// A column whose type was widened.
    Widened {
        /// Column path.
        column: String,
        /// Type before.
        from: DataType,
        /// Type after.
        to: DataType,
    },
}

impl std::fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaChange::Added { column, data_type } => {
                write!(f, "added column `{column}` ({})", type_name(data_type))
            }
            SchemaChange::Widened { column, from, to } => write!(
                f,
                "widened column `{column}` from {} to {}",
                type_name(from),
                type_name(to)
            ),
        }
    }
}

/// A change the rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Column `{column}` changed type from {} to {}, which is not a safe widening", type_name(.from), type_name(.to))]
pub struct SchemaRefused {
    /// Column path.
    pub column: String,
    /// Type in the table.
    pub from: DataType,
    /// Type of the incoming data.
    pub to: DataType,
    /// True when the change is an addition refused by `on_schema_change: fail`.
    pub frozen: bool,
}

impl SchemaRefused {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        if self.frozen {
            "the stream has `on_schema_change: fail`; set it to `evolve` to accept new columns and safe widenings, or rebuild the table with `--full-refresh`".into()
        } else {
            format!(
                "rebuild the table with the new schema with `--full-refresh`, or declare the column's type in the stream's `columns:` (e.g. `{}: {}`)",
                self.column,
                type_name(&self.from)
            )
        }
    }
}

/// The outcome of comparing a table's schema with incoming data.
#[derive(Debug, Clone)]
pub struct Evolution {
    /// The table schema after the accepted changes.
    pub schema: SchemaRef,
    /// The accepted changes (empty: the table stays as it is).
    pub changes: Vec<SchemaChange>,
}

/// Apply the rules: `table` is the current table schema, `incoming` the
/// schema of the data about to be written.
pub fn evolve(
    table: &Schema,
    incoming: &Schema,
    policy: EvolutionPolicy,
) -> Result<Evolution, SchemaRefused> {
    let mut changes = Vec::new();
    let fields = merge_fields(table.fields(), incoming.fields(), "", policy, &mut changes)?;
    if policy.frozen
        && let Some(first) = changes.first()
    {
        let (column, from, to) = match first {
            SchemaChange::Added { column, data_type } => {
                (column.clone(), DataType::Null, data_type.clone())
            }
            SchemaChange::Widened { column, from, to } => {
                (column.clone(), from.clone(), to.clone())
            }
        };
        return Err(SchemaRefused {
            column,
            from,
            to,
            frozen: true,
        });
    }
    Ok(Evolution {
        schema: Arc::new(Schema::new_with_metadata(fields, table.metadata().clone())),
        changes,
    })
}

fn merge_fields(
    table: &Fields,
    incoming: &Fields,
    prefix: &str,
    policy: EvolutionPolicy,
    changes: &mut Vec<SchemaChange>,
) -> Result<Fields, SchemaRefused> {
    let mut out: Vec<FieldRef> = Vec::with_capacity(table.len());
    for tf in table.iter() {
        match incoming.iter().find(|f| f.name() == tf.name()) {
            None => out.push(Arc::new(tf.as_ref().clone().with_nullable(true))),
            Some(inf) => {
                let path = format!("{prefix}{}", tf.name());
                let dt = merge_type(tf.data_type(), inf.data_type(), &path, policy, changes)?;
                out.push(Arc::new(
                    Field::new(tf.name(), dt, true).with_metadata(tf.metadata().clone()),
                ));
            }
        }
    }
    for inf in incoming.iter() {
        if !table.iter().any(|f| f.name() == inf.name()) {
            changes.push(SchemaChange::Added {
                column: format!("{prefix}{}", inf.name()),
                data_type: inf.data_type().clone(),
            });
            out.push(Arc::new(inf.as_ref().clone().with_nullable(true)));
        }
    }
    Ok(out.into())
}

fn merge_type(
    table: &DataType,
    incoming: &DataType,
    path: &str,
    policy: EvolutionPolicy,
    changes: &mut Vec<SchemaChange>,
) -> Result<DataType, SchemaRefused> {
    use DataType::*;
    if same_type(table, incoming) || matches!(incoming, Null) {
        return Ok(table.clone());
    }
    let refuse = || SchemaRefused {
        column: path.to_string(),
        from: table.clone(),
        to: incoming.clone(),
        frozen: false,
    };
    match (table, incoming) {
        (Struct(tf), Struct(inf)) => {
            let merged = merge_fields(tf, inf, &format!("{path}."), policy, changes)?;
            Ok(Struct(merged))
        }
        (List(tf), List(inf)) | (LargeList(tf), LargeList(inf)) => {
            let et = merge_type(
                tf.data_type(),
                inf.data_type(),
                &format!("{path}[]"),
                policy,
                changes,
            )?;
            let f = Arc::new(Field::new(tf.name(), et, true));
            Ok(if matches!(table, List(_)) {
                List(f)
            } else {
                LargeList(f)
            })
        }
        _ if fits_into(incoming, table) => Ok(table.clone()),
        _ if fits_into(table, incoming) => {
            changes.push(SchemaChange::Widened {
                column: path.to_string(),
                from: table.clone(),
                to: incoming.clone(),
            });
            Ok(incoming.clone())
        }
        (_, Utf8 | LargeUtf8 | Utf8View) if policy.widen_to_string && is_scalar(table) => {
            changes.push(SchemaChange::Widened {
                column: path.to_string(),
                from: table.clone(),
                to: Utf8,
            });
            Ok(Utf8)
        }
        _ if policy.widen_to_string && is_string(table) && is_scalar(incoming) => Ok(table.clone()),
        _ => Err(refuse()),
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_scalar(t: &DataType) -> bool {
    t.is_primitive() || matches!(t, DataType::Boolean | DataType::Decimal128(..)) || is_string(t)
}

/// Types that are the same for the rules: string encodings are one type;
/// time zones `UTC`, `+00:00` and `Z` are one zone.
pub fn same_type(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        _ if is_string(a) && is_string(b) => true,
        (Timestamp(ua, za), Timestamp(ub, zb)) => {
            ua == ub && za.as_deref().map(norm_tz) == zb.as_deref().map(norm_tz)
        }
        (Struct(fa), Struct(fb)) => {
            fa.len() == fb.len()
                && fa
                    .iter()
                    .zip(fb.iter())
                    .all(|(x, y)| x.name() == y.name() && same_type(x.data_type(), y.data_type()))
        }
        (List(x), List(y)) | (LargeList(x), LargeList(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        _ => a == b,
    }
}

fn norm_tz(tz: &str) -> &str {
    match tz {
        "+00:00" | "Z" | "UTC" | "Etc/UTC" | "+0000" => "UTC",
        other => other,
    }
}

/// True when every value of `narrow` is representable in `wide` (the safe
/// widenings of the table above).
pub fn fits_into(narrow: &DataType, wide: &DataType) -> bool {
    use DataType::*;
    let int_rank = |t: &DataType| match t {
        Int8 => Some((8, true)),
        Int16 => Some((16, true)),
        Int32 => Some((32, true)),
        Int64 => Some((64, true)),
        UInt8 => Some((8, false)),
        UInt16 => Some((16, false)),
        UInt32 => Some((32, false)),
        UInt64 => Some((64, false)),
        _ => None,
    };
    match (narrow, wide) {
        (Null, _) => true,
        _ if same_type(narrow, wide) => true,
        (a, b) if int_rank(a).is_some() && int_rank(b).is_some() => {
            let (na, sa) = int_rank(a).unwrap_or((0, false));
            let (nb, sb) = int_rank(b).unwrap_or((0, false));
            (sa == sb && na <= nb) || (!sa && sb && na < nb)
        }
        (a, Float64) if int_rank(a).is_some() => true,
        (Float32, Float64) => true,
        (Int8 | Int16 | UInt8 | UInt16, Float32) => true,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16)
        }
        (Date32, Date64) => true,
        _ => false,
    }
}

/// Reshape `batch` to `target`: reorder columns by name, add NULL columns for
/// the ones it lacks, cast the ones the rules widened. Fails (never truncates)
/// when a value does not fit, naming the column.
pub fn conform_batch(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().as_ref() == target.as_ref() {
        return Ok(batch.clone());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match schema.index_of(field.name()) {
            Ok(i) => {
                let col = batch.column(i);
                if col.data_type() == field.data_type() {
                    col.clone()
                } else {
                    cast_with_options(col, field.data_type(), &options).map_err(|e| {
                        ArrowError::CastError(format!(
                            "column `{}`: cannot convert {} to {}: {e}",
                            field.name(),
                            type_name(col.data_type()),
                            type_name(field.data_type())
                        ))
                    })?
                }
            }
            Err(_) => new_null_array(field.data_type(), batch.num_rows()),
        };
        columns.push(column);
    }
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// The schema with every field nullable (lake tables never reject NULLs at
/// write time; `not_null` is a check, not a storage constraint).
pub fn nullable_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Whether a column (array) holds any NULL.
pub fn has_nulls(array: &dyn Array) -> bool {
    array.null_count() > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow_schema::TimeUnit;

    fn schema(cols: &[(&str, DataType)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn adds_new_columns_and_keeps_missing_ones() {
        let t = schema(&[("id", DataType::Int64), ("a", DataType::Utf8)]);
        let i = schema(&[("id", DataType::Int64), ("b", DataType::Float64)]);
        let e = evolve(&t, &i, EvolutionPolicy::default()).unwrap();
        let names: Vec<_> = e
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "a", "b"]);
        assert_eq!(
            e.changes,
            vec![SchemaChange::Added {
                column: "b".into(),
                data_type: DataType::Float64
            }]
        );
    }

    #[test]
    fn widens_safely_and_casts_narrow_input() {
        let t = schema(&[("n", DataType::Int32)]);
        let e = evolve(
            &t,
            &schema(&[("n", DataType::Int64)]),
            EvolutionPolicy::default(),
        )
        .unwrap();
        assert_eq!(e.schema.field(0).data_type(), &DataType::Int64);
        let e = evolve(
            &t,
            &schema(&[("n", DataType::Float64)]),
            EvolutionPolicy::default(),
        )
        .unwrap();
        assert_eq!(e.schema.field(0).data_type(), &DataType::Float64);
        let t = schema(&[("n", DataType::Float64)]);
        let e = evolve(
            &t,
            &schema(&[("n", DataType::Int64)]),
            EvolutionPolicy::default(),
        )
        .unwrap();
        assert!(e.changes.is_empty());
        let t = schema(&[("d", DataType::Decimal128(10, 2))]);
        let e = evolve(
            &t,
            &schema(&[("d", DataType::Decimal128(12, 3))]),
            EvolutionPolicy::default(),
        )
        .unwrap();
        assert_eq!(e.schema.field(0).data_type(), &DataType::Decimal128(12, 3));
        assert!(
            evolve(
                &t,
                &schema(&[("d", DataType::Decimal128(10, 3))]),
                EvolutionPolicy::default()
            )
            .is_err()
        );
    }

    #[test]
    fn refuses_unsafe_changes_with_hint() {
        let t = schema(&[("amount", DataType::Float64)]);
        let err = evolve(
            &t,
            &schema(&[("amount", DataType::Utf8)]),
            EvolutionPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(err.column, "amount");
        assert!(err.to_string().contains("float64 to string"));
        assert!(err.hint().contains("--full-refresh"));
        let tz = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert!(
            evolve(
                &schema(&[("t", tz)]),
                &schema(&[("t", naive)]),
                EvolutionPolicy::default()
            )
            .is_err()
        );
    }

    #[test]
    fn string_widening_only_when_allowed() {
        let t = schema(&[("code", DataType::Int64)]);
        let i = schema(&[("code", DataType::Utf8)]);
        assert!(evolve(&t, &i, EvolutionPolicy::default()).is_err());
        let p = EvolutionPolicy {
            widen_to_string: true,
            ..Default::default()
        };
        assert_eq!(
            evolve(&t, &i, p).unwrap().schema.field(0).data_type(),
            &DataType::Utf8
        );
    }

    #[test]
    fn frozen_refuses_additions() {
        let t = schema(&[("id", DataType::Int64)]);
        let i = schema(&[("id", DataType::Int64), ("x", DataType::Utf8)]);
        let p = EvolutionPolicy {
            frozen: true,
            ..Default::default()
        };
        assert!(evolve(&t, &i, p).unwrap_err().frozen);
    }

    #[test]
    fn nested_struct_fields_merge() {
        let inner_t = DataType::Struct(vec![Field::new("a", DataType::Int32, true)].into());
        let inner_i = DataType::Struct(
            vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ]
            .into(),
        );
        let e = evolve(
            &schema(&[("s", inner_t)]),
            &schema(&[("s", inner_i.clone())]),
            EvolutionPolicy::default(),
        )
        .unwrap();
        assert_eq!(e.schema.field(0).data_type(), &inner_i);
        assert_eq!(e.changes.len(), 2);
    }

    #[test]
    fn conform_reorders_casts_and_fills() {
        let target = Arc::new(schema(&[("id", DataType::Int64), ("name", DataType::Utf8)]));
        let batch = RecordBatch::try_new(
            Arc::new(schema(&[("id", DataType::Int32)])),
            vec![Arc::new(Int32Array::from(vec![1, 2]))],
        )
        .unwrap();
        let out = conform_batch(&batch, &target).unwrap();
        assert_eq!(out.schema(), target);
        assert_eq!(out.column(1).null_count(), 2);
        let bad = RecordBatch::try_new(
            Arc::new(schema(&[("id", DataType::Utf8)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        assert!(
            conform_batch(&bad, &target)
                .unwrap_err()
                .to_string()
                .contains("column `id`")
        );
    }
}
