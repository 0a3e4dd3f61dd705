//! Column types as users write them in `columns:` declarations.
//!
//! | written | Arrow |
//! |---|---|
//! | `bool`, `boolean` | Boolean |
//! | `int8` … `int64`, `int`, `integer`, `bigint`, `smallint` | Int8 … Int64 |
//! | `float32`/`real`, `float64`/`double`/`float` | Float32, Float64 |
//! | `decimal(p,s)`, `numeric(p,s)` | Decimal128(p,s) (p ≤ 38) |
//! | `string`, `text`, `varchar` | Utf8 |
//! | `date` | Date32 |
//! | `timestamp` | Timestamp(µs) without time zone |
//! | `timestamptz` | Timestamp(µs, UTC) |
//! | `time` | Time64(µs) |
//! | `binary`, `bytes` | Binary |
//! | `json` | Utf8 holding JSON text |

use arrow_schema::{DataType, TimeUnit};

/// Parse a written type name into an Arrow type.
pub fn parse_type(text: &str) -> Result<DataType, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.as_str();
    let dt = match t {
        "bool" | "boolean" => DataType::Boolean,
        "int8" | "tinyint" => DataType::Int8,
        "int16" | "smallint" => DataType::Int16,
        "int32" | "int" | "integer" => DataType::Int32,
        "int64" | "bigint" | "long" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" | "real" | "float4" => DataType::Float32,
        "float64" | "double" | "float" | "float8" => DataType::Float64,
        "string" | "text" | "varchar" | "utf8" | "json" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "binary" | "bytes" | "bytea" => DataType::Binary,
        _ => {
            if let Some(args) = t
                .strip_prefix("decimal")
                .or_else(|| t.strip_prefix("numeric"))
            {
                return parse_decimal_args(args, text);
            }
            return Err(format!(
                "unknown column type `{text}`; use one of bool, int32, int64, float64, decimal(p,s), string, date, timestamp, timestamptz, time, binary, json"
            ));
        }
    };
    Ok(dt)
}

fn parse_decimal_args(args: &str, text: &str) -> Result<DataType, String> {
    let args = args.trim();
    if args.is_empty() {
        return Ok(DataType::Decimal128(38, 9));
    }
    let inner = args
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .ok_or_else(|| format!("`{text}`: write decimal(precision, scale)"))?;
    let mut parts = inner.split(',').map(str::trim);
    let p: u8 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("`{text}`: precision must be a number from 1 to 38"))?;
    let s: i8 = match parts.next() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("`{text}`: scale must be a number"))?,
        None => 0,
    };
    if !(1..=38).contains(&p) || s < 0 || s as u8 > p {
        return Err(format!(
            "`{text}`: precision must be 1..=38 and scale 0..=precision"
        ));
    }
    Ok(DataType::Decimal128(p, s))
}

/// The short name Sluice prints for a type (the inverse of [`parse_type`]
/// where one exists; Arrow's own name otherwise).
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(", "))
        }
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_names() {
        assert_eq!(parse_type("BIGINT").unwrap(), DataType::Int64);
        assert_eq!(
            parse_type("decimal(12, 2)").unwrap(),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(
            parse_type("numeric(5)").unwrap(),
            DataType::Decimal128(5, 0)
        );
        assert_eq!(
            parse_type("timestamptz").unwrap(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(parse_type("decimal(40,2)").is_err());
        assert!(parse_type("decimal(4,5)").is_err());
        assert!(
            parse_type("strin")
                .unwrap_err()
                .contains("unknown column type")
        );
    }

    #[test]
    fn names_round_trip() {
        for t in [
            "bool",
            "int64",
            "float64",
            "decimal(12,2)",
            "string",
            "date",
            "timestamp",
            "timestamptz",
        ] {
            assert_eq!(type_name(&parse_type(t).unwrap()), t);
        }
    }
}
