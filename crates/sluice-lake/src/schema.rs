//! Arrow types as Delta can store them.
//!
//! Delta has no unsigned integers, no time-of-day type, timestamps only in
//! microseconds and no NULL type. [`lake_schema`] maps an incoming schema to
//! what the lake stores; [`sluice_core::evolution::conform_batch`] then casts
//! the data (failing, never truncating, when a value does not fit):
//!
//! | incoming | stored |
//! |---|---|
//! | uint8, uint16, uint32 | int16, int32, int64 |
//! | uint64 | decimal(20,0) |
//! | float16 | float32 |
//! | timestamp s / ms / ns | timestamp µs (ns loses sub-µs digits) |
//! | date64 | date |
//! | time32 / time64 | string `HH:MM:SS[.ffffff]` |
//! | interval, duration | string (`1 mons 2 days 3.000000000 secs`) |
//! | large/view strings and binaries | string / binary |
//! | dictionary | its value type |
//! | null (a column that was empty everywhere) | the table's type if it has the column, else string ([`null_to_string`]) |

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

/// The schema the lake stores for `schema` (all columns nullable).
pub fn lake_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<FieldRef> = schema.fields().iter().map(|f| lake_field(f)).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn lake_field(f: &Field) -> FieldRef {
    Arc::new(
        Field::new(f.name(), lake_type(f.data_type()), true).with_metadata(f.metadata().clone()),
    )
}

fn lake_type(t: &DataType) -> DataType {
    use DataType::*;
    match t {
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Timestamp(_, tz) => Timestamp(
            TimeUnit::Microsecond,
            tz.as_ref().map(|z| norm_tz(z).into()),
        ),
        Date64 => Date32,
        Time32(_) | Time64(_) | Interval(_) | Duration(_) | LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Dictionary(_, v) => lake_type(v),
        Struct(fields) => Struct(fields.iter().map(|f| lake_field(f)).collect()),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            List(lake_field(f))
        }
        Map(f, sorted) => Map(lake_field(f), *sorted),
        Decimal32(p, s) | Decimal64(p, s) => Decimal128(*p, *s),
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        other => other.clone(),
    }
}

/// Columns still of the NULL type (empty everywhere, new to the table) are
/// stored as strings: Delta has no NULL type.
pub fn null_to_string(schema: SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Null)
    {
        return schema;
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8)),
            _ => f.clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn norm_tz(tz: &str) -> &str {
    match tz {
        "+00:00" | "Z" | "Etc/UTC" | "+0000" => "UTC",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_types_delta_lacks() {
        let s = Schema::new(vec![
            Field::new("u", DataType::UInt32, false),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                true,
            ),
            Field::new("n", DataType::Null, true),
            Field::new("k", DataType::Time64(TimeUnit::Microsecond), true),
        ]);
        let l = lake_schema(&s);
        assert_eq!(l.field(3).data_type(), &DataType::Utf8);
        assert_eq!(l.field(0).data_type(), &DataType::Int64);
        assert!(l.field(0).is_nullable());
        assert_eq!(
            l.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(l.field(2).data_type(), &DataType::Null);
        assert_eq!(null_to_string(l).field(2).data_type(), &DataType::Utf8);
    }
}
