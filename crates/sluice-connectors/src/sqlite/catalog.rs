//! Opening the file read-only, and discovery: tables from `sqlite_master`,
//! columns from `pragma_table_info`, row estimates from `sqlite_stat1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sluice_core::connector::ConnectorError;

use super::types::{SqlKind, kind_for, kind_of};
use crate::db::settings::DbSettings;
use crate::db::{ColumnInfo, RemoteTable, TableInfo, select};

/// The schema name SQLite gives the opened file.
pub const SCHEMA: &str = "main";

/// A table ready to read.
#[derive(Debug, Clone)]
pub struct SqlTable {
    /// Discovery's view.
    pub info: TableInfo,
    /// How each column is read.
    pub kinds: Vec<SqlKind>,
    /// Whether rows have a `rowid` (not views, not `WITHOUT ROWID` tables).
    pub has_rowid: bool,
}

/// Quote an identifier: `"Order ID"`.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The database file of a source.
#[derive(Debug, Clone)]
pub struct SqliteFile {
    /// Source name, for messages.
    pub source: String,
    /// Resolved path.
    pub path: PathBuf,
}

impl SqliteFile {
    /// Open read-only; a missing file is a configuration error.
    pub fn open(&self) -> Result<Connection, ConnectorError> {
        if !self.path.is_file() {
            let what = if self.path.exists() {
                "is not a file"
            } else {
                "does not exist"
            };
            return Err(ConnectorError::config(
                format!(
                    "Source `{}`: the SQLite database `{}` {what}",
                    self.source,
                    self.path.display()
                ),
                Some(
                    "check `path` (relative to the project folder) or `url: sqlite:///absolute/path.db`"
                        .to_string(),
                ),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| self.error(e))?;
        // A writer holding a lock (rollback journal) makes readers wait, not fail.
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.error(e))?;
        Ok(conn)
    }

    /// An error from SQLite, naming the file.
    pub fn error(&self, e: rusqlite::Error) -> ConnectorError {
        let not_db = matches!(
            &e,
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase
        );
        if not_db {
            return ConnectorError::config(
                format!(
                    "Source `{}`: `{}` is not a SQLite database",
                    self.source,
                    self.path.display()
                ),
                Some("point `path` at a SQLite database file".to_string()),
            );
        }
        ConnectorError::external(
            format!(
                "Source `{}`: SQLite `{}`: {e}",
                self.source,
                self.path.display()
            ),
            e,
        )
    }
}

/// Where `path:` or `url:` (`sqlite:///abs.db`, `sqlite://rel.db`) points,
/// relative paths against `project_dir`.
pub fn resolve(
    path: Option<&str>,
    url: Option<&str>,
    project_dir: &Path,
) -> Result<PathBuf, String> {
    let raw = match (path, url) {
        (Some(p), _) => p,
        (None, Some(u)) => u
            .strip_prefix("sqlite://")
            .or_else(|| u.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                format!("`url: {u}` is not a SQLite URL; use `sqlite:///absolute/path.db`, `sqlite://relative/path.db` or `path:`")
            })?,
        (None, None) => return Err("no `path`; add `path: data/app.db`".to_string()),
    };
    let raw = raw.split('?').next().unwrap_or(raw);
    if raw.is_empty() {
        return Err("the database path is empty".to_string());
    }
    let p = Path::new(raw);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        project_dir.join(p)
    })
}

/// The selected tables of the database, with columns mapped to Arrow.
pub fn discover(
    file: &SqliteFile,
    conn: &Connection,
    selection: &select::Selection,
    settings: &DbSettings,
) -> Result<Vec<SqlTable>, ConnectorError> {
    let q = |e| file.error(e);
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(q)?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .map_err(q)?
        .collect::<Result<_, _>>()
        .map_err(q)?;
    let all: Vec<RemoteTable> = names
        .iter()
        .map(|n| RemoteTable {
            schema: SCHEMA.into(),
            name: n.clone(),
        })
        .collect();
    let selected = selection.apply(&all, &file.source)?;
    let streams = select::stream_names(&selected, SCHEMA, &file.source)?;
    settings.check_known(&streams)?;
    let estimates = estimates(conn);
    let mut out = Vec::with_capacity(selected.len());
    for (table, stream) in selected.into_iter().zip(streams) {
        let declared = settings.stream(&stream)?.columns;
        let mut stmt = conn
            .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(q)?;
        let cols: Vec<(String, String, bool, i64)> = stmt
            .query_map([&table.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?))
            })
            .map_err(q)?
            .collect::<Result<_, _>>()
            .map_err(q)?;
        let mut columns = Vec::with_capacity(cols.len());
        let mut kinds = Vec::with_capacity(cols.len());
        let mut keys: Vec<(i64, String)> = Vec::new();
        for (name, db_type, notnull, pk) in cols {
            let (kind, as_text) = match declared.iter().find(|(d, _)| *d == name) {
                Some((_, dt)) => {
                    let kind = kind_for(dt).ok_or_else(|| {
                        ConnectorError::config(
                            format!(
                                "Column `{name}` of `{}`: SQLite values cannot be read as {}",
                                table.display(),
                                sluice_core::types::type_name(dt)
                            ),
                            Some("declare one of string, bool, int64, float64, decimal(p,s), date, timestamp, timestamptz, time, binary".to_string()),
                        )
                    })?;
                    let why = (kind == SqlKind::Text && kind_of(&db_type).0 != SqlKind::Text)
                        .then(|| "declared `string` in `columns:`".to_string());
                    (kind, why)
                }
                None => kind_of(&db_type),
            };
            if pk > 0 {
                keys.push((pk, name.clone()));
            }
            columns.push(ColumnInfo {
                name,
                db_type: if db_type.is_empty() {
                    "(none)".into()
                } else {
                    db_type
                },
                data_type: kind.data_type(),
                nullable: !notnull,
                as_text,
            });
            kinds.push(kind);
        }
        for (d, _) in &declared {
            if !columns.iter().any(|c| &c.name == d) {
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                let hint = sluice_core::config::suggest::did_you_mean(d, names.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("the table's columns: {}", names.join(", ")));
                return Err(ConnectorError::config(
                    format!(
                        "Stream `{}.{stream}`: `columns:` declares `{d}`, which `{}` does not have",
                        file.source,
                        table.display()
                    ),
                    Some(hint),
                ));
            }
        }
        keys.sort();
        let has_rowid = !columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case("_rowid_"))
            && conn
                .prepare(&format!(
                    "SELECT _rowid_ FROM {} LIMIT 0",
                    ident(&table.name)
                ))
                .is_ok();
        let info = TableInfo {
            rows_estimate: estimates.get(&table.name).copied(),
            primary_key: keys.into_iter().map(|(_, k)| k).collect(),
            table,
            stream,
            columns,
        };
        out.push(SqlTable {
            info,
            kinds,
            has_rowid,
        });
    }
    Ok(out)
}

/// Row counts `ANALYZE` left in `sqlite_stat1` (none when it never ran).
fn estimates(conn: &Connection) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(mut stmt) = conn.prepare("SELECT tbl, stat FROM sqlite_stat1") else {
        return out;
    };
    let Ok(rows) = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    }) else {
        return out;
    };
    for (tbl, stat) in rows.flatten() {
        if let Some(n) = stat
            .as_deref()
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
        {
            out.entry(tbl).or_insert(n);
        }
    }
    out
}
