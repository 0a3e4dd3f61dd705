//! The pieces of SQL the PostgreSQL engine writes around a model's SQL,
//! what is at a name (`pg_class`), and server errors turned into messages
//! that point at a line of the model's SQL.

use sluice_connectors::postgres::catalog::ident;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::{GenericClient, SimpleQueryMessage};

use crate::engine::{EngineError, EngineResult};

/// PostgreSQL's longest identifier, in bytes (`NAMEDATALEN - 1`).
const MAX_IDENT: usize = 63;

/// A relation in the connected database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Schema.
    pub schema: String,
    /// Table or view name.
    pub name: String,
}

impl Name {
    /// `"schema"."name"`.
    pub fn sql(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    /// The same schema, the name with `suffix` (the name cut so that the
    /// whole fits in 63 bytes, as dbt-postgres does).
    pub fn suffixed(&self, suffix: &str) -> Name {
        Name {
            schema: self.schema.clone(),
            name: suffixed(&self.name, suffix),
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// `name` + `suffix`, `name` cut at a character boundary to fit 63 bytes.
pub fn suffixed(name: &str, suffix: &str) -> String {
    let room = MAX_IDENT.saturating_sub(suffix.len());
    let mut end = name.len().min(room);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &name[..end])
}

/// What `pg_class` holds at a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// `r`, `p` (partitioned).
    Table,
    /// `v`.
    View,
    /// `m`.
    MaterializedView,
    /// `f`.
    ForeignTable,
    /// An index, sequence, composite type…: its `relkind`.
    Other(char),
}

impl RelKind {
    fn of(relkind: i8) -> RelKind {
        match relkind as u8 as char {
            'r' | 'p' => RelKind::Table,
            'v' => RelKind::View,
            'm' => RelKind::MaterializedView,
            'f' => RelKind::ForeignTable,
            c => RelKind::Other(c),
        }
    }

    /// The word `ALTER …` and `DROP …` take (`None`: not a table or view).
    pub fn keyword(self) -> Option<&'static str> {
        match self {
            RelKind::Table => Some("TABLE"),
            RelKind::View => Some("VIEW"),
            RelKind::MaterializedView => Some("MATERIALIZED VIEW"),
            RelKind::ForeignTable => Some("FOREIGN TABLE"),
            RelKind::Other(_) => None,
        }
    }

    /// For people: `table`, `sequence`, …
    pub fn describe(self) -> &'static str {
        match self {
            RelKind::Table => "table",
            RelKind::View => "view",
            RelKind::MaterializedView => "materialized view",
            RelKind::ForeignTable => "foreign table",
            RelKind::Other('i' | 'I') => "index",
            RelKind::Other('S') => "sequence",
            RelKind::Other('c') => "composite type",
            RelKind::Other(_) => "relation",
        }
    }
}

/// What is at `name`, if anything.
pub async fn kind_at(client: &impl GenericClient, name: &Name) -> EngineResult<Option<RelKind>> {
    let row = client
        .query_opt(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&name.schema, &name.name],
        )
        .await
        .map_err(|e| db_error(&format!("looking up `{name}`"), &e, None))?;
    match row {
        None => Ok(None),
        Some(r) => {
            let k: i8 = r
                .try_get(0)
                .map_err(|e| db_error(&format!("looking up `{name}`"), &e, None))?;
            Ok(Some(RelKind::of(k)))
        }
    }
}

/// `DROP <kind> IF EXISTS name CASCADE` for whatever is at `name` (an
/// index or a sequence is refused: it is not the engine's to drop).
pub async fn drop_any(client: &impl GenericClient, name: &Name) -> EngineResult<()> {
    let Some(kind) = kind_at(client, name).await? else {
        return Ok(());
    };
    let sql = drop_sql(name, kind)?;
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| db_error(&format!("dropping `{name}`"), &e, None))
}

/// `DROP <kind> IF EXISTS name CASCADE`.
pub fn drop_sql(name: &Name, kind: RelKind) -> EngineResult<String> {
    let word = kind.keyword().ok_or_else(|| not_ours(name, kind))?;
    Ok(format!("DROP {word} IF EXISTS {} CASCADE", name.sql()))
}

/// `ALTER <kind> name RENAME TO new`.
pub fn rename_sql(name: &Name, kind: RelKind, new: &str) -> EngineResult<String> {
    let word = kind.keyword().ok_or_else(|| not_ours(name, kind))?;
    Ok(format!(
        "ALTER {word} {} RENAME TO {}",
        name.sql(),
        ident(new)
    ))
}

/// The error for a name held by something that is not a table or view.
pub fn not_ours(name: &Name, kind: RelKind) -> EngineError {
    EngineError::new(format!(
        "`{name}` is a {} in PostgreSQL, not a table or view; Sluice will not replace it\nhint: rename or drop it, or give the model another name (`alias`)",
        kind.describe()
    ))
}

/// A model's SQL inside a statement: where it starts, so that an error
/// position maps back to the model's lines.
#[derive(Debug, Clone)]
pub struct Wrapped {
    /// The whole statement.
    pub statement: String,
    /// Characters before the model's SQL.
    pub offset: usize,
    /// The model's SQL as placed (trailing `;` removed).
    pub sql: String,
}

/// `before` + the model's SQL + `after` (the SQL's trailing `;` and blanks
/// removed, so it can sit inside parentheses).
pub fn wrap(before: &str, sql: &str, after: &str) -> Wrapped {
    let sql = sql.trim_end().trim_end_matches(';').trim_end().to_string();
    Wrapped {
        statement: format!("{before}{sql}{after}"),
        offset: before.chars().count(),
        sql,
    }
}

impl Wrapped {
    /// Run the statement (simple protocol); the row count of its command
    /// tag (`SELECT n`, `INSERT 0 n`, `MERGE n`).
    pub async fn run(&self, client: &impl GenericClient, doing: &str) -> EngineResult<u64> {
        let messages = simple(client, &self.statement)
            .await
            .map_err(|e| db_error(doing, &e, Some(self)))?;
        Ok(rows_of(&messages))
    }
}

/// `simple_query` through any client (a transaction included).
pub async fn simple(
    client: &impl GenericClient,
    sql: &str,
) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
    client.simple_query(sql).await
}

/// The count of the last command of `messages`.
pub fn rows_of(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .rev()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// A server error as a message: `doing: <PostgreSQL's message> at Line: N,
/// Column: C` (the model's line, when the server gives a position inside
/// it), with the server's detail and hint.
pub fn db_error(doing: &str, e: &tokio_postgres::Error, wrapped: Option<&Wrapped>) -> EngineError {
    let Some(db) = e.as_db_error() else {
        let text = sluice_connectors::postgres::connect::error_text(e);
        return EngineError::new(format!("{doing}: {text}"));
    };
    let mut message = format!("{doing}: {} (SQLSTATE {})", db.message(), db.code().code());
    if let (Some(ErrorPosition::Original(p)), Some(w)) = (db.position(), wrapped)
        && let Some((line, column)) = line_of(w, *p as usize)
    {
        message.push_str(&format!(" at Line: {line}, Column: {column}"));
    }
    if let Some(d) = db.detail() {
        message.push_str(&format!("\n  detail: {d}"));
    }
    if let Some(h) = db.hint() {
        message.push_str(&format!("\n  server hint: {h}"));
    }
    EngineError::new(message)
}

/// The 1-based line and column of the model's SQL at the statement's
/// 1-based character `position`.
fn line_of(w: &Wrapped, position: usize) -> Option<(usize, usize)> {
    let at = position.checked_sub(1)?.checked_sub(w.offset)?;
    let mut line = 1;
    let mut column = 1;
    for (i, c) in w.sql.chars().enumerate() {
        if i == at {
            return Some((line, column));
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    // Just past the end (an unexpected end of input).
    (at == w.sql.chars().count()).then_some((line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgres() {
        assert_eq!(suffixed("orders", "__dbt_tmp"), "orders__dbt_tmp");
        let long = "é".repeat(40);
        let s = suffixed(&long, "__dbt_backup");
        assert!(s.len() <= 63 && s.ends_with("__dbt_backup"), "{s}");
        let n = Name {
            schema: "Main".into(),
            name: "a\"b".into(),
        };
        assert_eq!(n.sql(), "\"Main\".\"a\"\"b\"");
    }

    #[test]
    fn positions_map_to_model_lines() {
        let w = wrap(
            "CREATE VIEW x AS (\n",
            "select 1,\n  nope\nfrom t;\n",
            "\n)",
        );
        assert_eq!(w.sql, "select 1,\n  nope\nfrom t");
        let p = w.statement.find("nope").unwrap() + 1;
        assert_eq!(line_of(&w, p), Some((2, 3)));
        assert_eq!(line_of(&w, 3), None);
        assert_eq!(line_of(&w, w.offset + w.sql.len() + 1), Some((3, 7)));
    }
}
