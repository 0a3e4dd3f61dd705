//! Table names in the lake and warehouses: `<schema>.<table>`.

use std::fmt;

/// A two-part table name. Streams land as `<source>.<stream>` unless the
/// stream sets `table:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TableName {
    /// The schema (namespace); the source name by default.
    pub schema: String,
    /// The table; the stream name by default.
    pub name: String,
}

impl TableName {
    /// Build a name from its parts.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parse `schema.table`; a bare `table` gets `default_schema`.
    pub fn parse(text: &str, default_schema: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let name = match parts.as_slice() {
            [t] => Self::new(default_schema, *t),
            [s, t] => Self::new(*s, *t),
            _ => {
                return Err(format!(
                    "`{text}` is not a table name of the form `schema.table`"
                ));
            }
        };
        for part in [&name.schema, &name.name] {
            validate_identifier(part)?;
        }
        Ok(name)
    }

    /// The quarantine table that goes with this table: `<table>__quarantine`.
    pub fn quarantine(&self) -> Self {
        Self::new(&self.schema, format!("{}__quarantine", self.name))
    }

    /// True for `<table>__quarantine` tables.
    pub fn is_quarantine(&self) -> bool {
        self.name.ends_with("__quarantine")
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Names of sources, streams, schemas and tables: letters, digits, `_` and
/// `-`, not starting with a digit or `-`. They become folder names and SQL
/// identifiers, so anything else is refused early.
pub fn validate_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use letters, digits, `_` or `-`, starting with a letter or `_`"
        ))
    }
}

/// Turn an arbitrary string (a file stem, a remote table name) into a valid
/// identifier: lower-case, runs of other characters become `_`.
pub fn sanitize_identifier(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    let mut out = trimmed.to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(
            TableName::parse("shop.orders", "x").unwrap().to_string(),
            "shop.orders"
        );
        assert_eq!(
            TableName::parse("orders", "shop").unwrap().to_string(),
            "shop.orders"
        );
        assert!(TableName::parse("a.b.c", "x").is_err());
        assert!(TableName::parse("a.b c", "x").is_err());
        assert_eq!(
            TableName::new("s", "t").quarantine().to_string(),
            "s.t__quarantine"
        );
    }

    #[test]
    fn sanitizing() {
        assert_eq!(sanitize_identifier("Orders 2024*"), "orders_2024");
        assert_eq!(sanitize_identifier("2024"), "_2024");
        assert_eq!(sanitize_identifier("***"), "_");
    }
}
