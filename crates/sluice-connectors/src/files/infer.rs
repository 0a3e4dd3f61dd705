//! Type inference from sampled values, and column naming.
//!
//! Each column keeps a set of candidate types; every sampled non-NULL value
//! removes the candidates it does not fit. The first candidate left, in the
//! order below, is the column's type:
//!
//! | candidate | every value is … |
//! |---|---|
//! | bool | `true` / `false` (any case) |
//! | int64 | an integer without a leading zero that fits in 64 bits |
//! | float64 | a number (integer-looking texts that are not int64, e.g. `007`, are not) |
//! | date | `YYYY-MM-DD` |
//! | timestamp | `YYYY-MM-DD[T ]HH:MM:SS[.f]` without offset (dates count as midnight) |
//! | timestamptz | the same with `Z` or `±HH[:MM]`, normalised to UTC |
//! | string | anything (also: a column that is NULL in the whole sample) |
//!
//! Timestamps are always microseconds (Delta stores µs). Declared `columns:`
//! types win over inference.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use arrow_cast::parse::Parser;
use sluice_core::config::suggest::did_you_mean;
use sluice_core::connector::ConnectorError;

use super::values::{
    TsShape, is_bool_word, is_int_token, is_integer_like, parse_date, timestamp_shape,
};

/// Candidate types of one column.
#[derive(Debug, Clone)]
pub(crate) struct Guess {
    seen: bool,
    boolean: bool,
    int: bool,
    float: bool,
    date: bool,
    naive: bool,
    zoned: bool,
}

impl Default for Guess {
    fn default() -> Self {
        Self {
            seen: false,
            boolean: true,
            int: true,
            float: true,
            date: true,
            naive: true,
            zoned: true,
        }
    }
}

impl Guess {
    /// A guess for JSON string values: only the temporal types are candidates
    /// (a JSON string `"42"` stays a string).
    pub(crate) fn temporal_only() -> Self {
        Self {
            boolean: false,
            int: false,
            float: false,
            ..Self::default()
        }
    }

    /// Narrow the candidates with one non-NULL value.
    pub(crate) fn observe(&mut self, s: &str) {
        self.seen = true;
        if self.boolean && !is_bool_word(s) {
            self.boolean = false;
        }
        if self.int && !is_int_token(s) {
            self.int = false;
        }
        if self.float
            && (is_integer_like(s) && !is_int_token(s)
                || !s.bytes().any(|b| b.is_ascii_digit())
                || Float64Type::parse(s).is_none())
        {
            self.float = false;
        }
        if self.date || self.naive || self.zoned {
            let is_date = s.len() == 10 && parse_date(s).is_some();
            let shape = if is_date { None } else { timestamp_shape(s) };
            self.date &= is_date;
            self.naive &= is_date || shape == Some(TsShape::Naive);
            self.zoned &= shape == Some(TsShape::Zoned);
        }
    }

    /// The inferred type.
    pub(crate) fn data_type(&self) -> DataType {
        if !self.seen {
            DataType::Utf8
        } else if self.boolean {
            DataType::Boolean
        } else if self.int {
            DataType::Int64
        } else if self.float {
            DataType::Float64
        } else if self.date {
            DataType::Date32
        } else if self.naive {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        } else if self.zoned {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        } else {
            DataType::Utf8
        }
    }
}

/// Header names made usable: trimmed, empty ones named `column_<n>`,
/// duplicates suffixed `_2`, `_3`, … (each change is logged as a warning).
pub(crate) fn unique_names(raw: Vec<String>, file: &str) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, name) in raw.into_iter().enumerate() {
        let trimmed = name.trim();
        let base = if trimmed.is_empty() {
            let generated = format!("column_{}", i + 1);
            tracing::warn!(
                file,
                "Column {} has an empty header; named it `{generated}`",
                i + 1
            );
            generated
        } else {
            trimmed.to_string()
        };
        let mut unique = base.clone();
        let mut n = 2;
        while taken.contains(&unique) {
            unique = format!("{base}_{n}");
            n += 1;
        }
        if unique != base {
            tracing::warn!(
                file,
                "Column {} repeats the header `{base}`; named it `{unique}`",
                i + 1
            );
        }
        taken.insert(unique.clone());
        out.push(unique);
    }
    out
}

/// The type of a column given what the sample suggests and what the stream
/// already knows (the destination table, or an earlier file of this run):
/// - nothing known, or the known type is a string: the sample's type (a
///   string column stays a string: its text is kept as is);
/// - the sample's type widens the known one safely (int → float64): widen,
///   and let the destination's schema rules record it;
/// - otherwise keep the known type: values that do not fit it become bad
///   records (located, quarantined or fatal per `on_error`) instead of
///   silently turning the column into a string.
pub(crate) fn keep_known(inferred: DataType, known: Option<&DataType>) -> DataType {
    use sluice_core::evolution::fits_into;
    match known {
        None => inferred,
        Some(k) if !decodable(k) => inferred,
        Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => DataType::Utf8,
        Some(k) if fits_into(k, &inferred) && &inferred != k && inferred != DataType::Utf8 => {
            inferred
        }
        Some(k) => k.clone(),
    }
}

/// Types the text decoders (CSV) can build from a cell.
fn decodable(t: &DataType) -> bool {
    use arrow::datatypes::TimeUnit;
    matches!(
        t,
        DataType::Utf8
            | DataType::Binary
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Date32
            | DataType::Time64(TimeUnit::Microsecond)
            | DataType::Timestamp(TimeUnit::Microsecond, _)
            | DataType::Decimal128(..)
    )
}

/// `column_1`, `column_2`, … for files without a header.
pub(crate) fn default_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("column_{i}")).collect()
}

/// The schema of a file from its column names, the inferred guesses and the
/// declared types. A declared column the file does not have is an error
/// (usually a typo), named with a suggestion.
pub(crate) fn schema_with_declared(
    names: &[String],
    inferred: impl Fn(usize) -> DataType,
    declared: &[(String, DataType)],
    file: &str,
) -> Result<Schema, ConnectorError> {
    for (name, _) in declared {
        if !names.contains(name) {
            let suggestion = did_you_mean(name, names.iter().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(ConnectorError::config(
                format!(
                    "Column `{name}` is declared in `columns:` but `{file}` has no such column{suggestion}"
                ),
                Some(format!(
                    "the file's columns are {}; fix the name in `columns:`",
                    list(names)
                )),
            ));
        }
    }
    let fields: Vec<Field> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let dt = declared
                .iter()
                .find(|(d, _)| d == name)
                .map_or_else(|| inferred(i), |(_, dt)| dt.clone());
            Field::new(name, dt, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// `` `a`, `b`, `c` `` (at most 20 names).
pub(crate) fn list(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(20).map(|n| format!("`{n}`")).collect();
    if names.len() > 20 {
        out.push(format!("… ({} more)", names.len() - 20));
    }
    out.join(", ")
}

/// Replace Utf8 fields whose sampled values are all temporal by the
/// temporal type (JSON Lines: arrow-json infers strings as Utf8).
pub(crate) fn refine_strings(schema: &Schema, guesses: &[(String, Guess)]) -> Schema {
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .map(|f| {
            let refined = (f.data_type() == &DataType::Utf8)
                .then(|| guesses.iter().find(|(n, _)| n == f.name()))
                .flatten()
                .map(|(_, g)| g.data_type())
                .filter(|dt| dt != &DataType::Utf8);
            match refined {
                Some(dt) => Arc::new(f.as_ref().clone().with_data_type(dt)),
                None => f.clone(),
            }
        })
        .collect();
    Schema::new(fields)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> DataType {
        let mut g = Guess::default();
        values.iter().for_each(|v| g.observe(v));
        g.data_type()
    }

    #[test]
    fn picks_the_narrowest_type() {
        assert_eq!(infer(&["true", "FALSE"]), DataType::Boolean);
        assert_eq!(infer(&["1", "-20", "300"]), DataType::Int64);
        assert_eq!(infer(&["1", "2.5", "1e3"]), DataType::Float64);
        assert_eq!(infer(&["007", "12"]), DataType::Utf8);
        assert_eq!(infer(&["99999999999999999999"]), DataType::Utf8);
        assert_eq!(infer(&["2024-01-01", "2024-12-31"]), DataType::Date32);
        assert_eq!(
            infer(&["2024-01-01", "2024-01-02 10:00:00.5"]),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(
            infer(&["2024-01-01T10:00:00Z", "2024-01-01T10:00:00+02:00"]),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            infer(&["2024-01-01T10:00:00Z", "2024-01-01 10:00:00"]),
            DataType::Utf8
        );
        assert_eq!(infer(&["1", "x"]), DataType::Utf8);
        assert_eq!(infer(&[]), DataType::Utf8);
        assert_eq!(infer(&["NaN", "abc"]), DataType::Utf8);
    }

    #[test]
    fn names_are_made_unique() {
        let names = unique_names(
            vec![
                "id".into(),
                "".into(),
                "name".into(),
                " name ".into(),
                "name_2".into(),
            ],
            "f.csv",
        );
        assert_eq!(names, ["id", "column_2", "name", "name_2", "name_2_2"]);
        assert_eq!(default_names(2), ["column_1", "column_2"]);
    }

    #[test]
    fn declared_types_win_and_typos_are_named() {
        let names = vec!["id".to_string(), "amount".to_string()];
        let declared = vec![("amount".to_string(), DataType::Decimal128(12, 2))];
        let schema = schema_with_declared(&names, |_| DataType::Int64, &declared, "f.csv").unwrap();
        assert_eq!(schema.field(1).data_type(), &DataType::Decimal128(12, 2));
        let bad = vec![("amont".to_string(), DataType::Int64)];
        let err = schema_with_declared(&names, |_| DataType::Int64, &bad, "f.csv").unwrap_err();
        assert!(err.to_string().contains("did you mean `amount`"), "{err}");
    }
}

#[cfg(test)]
mod keep_known_tests {
    use super::*;

    #[test]
    fn known_types_stay_unless_the_data_widens_them() {
        assert_eq!(keep_known(DataType::Int64, None), DataType::Int64);
        assert_eq!(
            keep_known(DataType::Utf8, Some(&DataType::Float64)),
            DataType::Float64
        );
        assert_eq!(
            keep_known(DataType::Float64, Some(&DataType::Int64)),
            DataType::Float64
        );
        assert_eq!(
            keep_known(DataType::Int64, Some(&DataType::Float64)),
            DataType::Float64
        );
        assert_eq!(
            keep_known(DataType::Int64, Some(&DataType::Utf8)),
            DataType::Utf8
        );
        assert_eq!(
            keep_known(DataType::Boolean, Some(&DataType::Date32)),
            DataType::Date32
        );
    }
}
