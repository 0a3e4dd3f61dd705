//! Incremental models on PostgreSQL, inside the caller's transaction:
//!
//! 1. `CREATE TEMP TABLE <name>__dbt_tmp<time> ON COMMIT DROP AS (<sql>)`;
//! 2. the columns of both (`pg_attribute`, `format_type`) and
//!    `on_schema_change`: `ignore` writes the columns both have; `fail`
//!    refuses added, removed or retyped columns; `append_new_columns` adds
//!    the new ones (`ALTER TABLE … ADD COLUMN`, the temp table's type);
//!    `sync_all_columns` also drops the removed ones and retypes the
//!    changed ones (`ALTER COLUMN … TYPE … USING`);
//! 3. `append`: `INSERT`; `delete+insert`: `DELETE … USING` the temp table
//!    on the `unique_key` columns, then `INSERT`; `merge`: `MERGE` on the
//!    keys (update every other column, insert the rest), or delete+insert
//!    when the server has no `MERGE` (before PostgreSQL 15).

use sluice_connectors::postgres::catalog::ident;
use tokio_postgres::Transaction;

use super::sql::{Name, db_error, suffixed, wrap};
use crate::engine::{EngineError, EngineResult, Incremental, OnSchemaChange, Outcome};

/// A column: name and `format_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    data_type: String,
}

const COLUMNS_SQL: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
    FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
    ORDER BY a.attnum";

async fn columns(
    tx: &Transaction<'_>,
    relation_sql: &str,
    what: &str,
) -> EngineResult<Vec<Column>> {
    let rows = tx
        .query(COLUMNS_SQL, &[&relation_sql])
        .await
        .map_err(|e| db_error(&format!("reading the columns of {what}"), &e, None))?;
    rows.iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get(0)?,
                data_type: r.try_get(1)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| db_error(&format!("reading the columns of {what}"), &e, None))
}

/// How the model's columns differ from the table's.
#[derive(Debug, Default)]
struct Diff {
    added: Vec<Column>,
    removed: Vec<Column>,
    /// (column, table's type, model's type).
    retyped: Vec<(String, String, String)>,
}

impl Diff {
    fn of(table: &[Column], model: &[Column]) -> Diff {
        let find = |cols: &[Column], n: &str| cols.iter().find(|c| c.name == n).cloned();
        let mut d = Diff::default();
        for m in model {
            match find(table, &m.name) {
                None => d.added.push(m.clone()),
                Some(t) if t.data_type != m.data_type => {
                    d.retyped
                        .push((m.name.clone(), t.data_type, m.data_type.clone()));
                }
                Some(_) => {}
            }
        }
        d.removed = table
            .iter()
            .filter(|t| find(model, &t.name).is_none())
            .cloned()
            .collect();
        d
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.retyped.is_empty()
    }

    fn describe(&self) -> String {
        let list = |cols: &[Column]| {
            cols.iter()
                .map(|c| format!("`{}` ({})", c.name, c.data_type))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("new in the model: {}", list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("gone from the model: {}", list(&self.removed)));
        }
        if !self.retyped.is_empty() {
            parts.push(format!(
                "type changed: {}",
                self.retyped
                    .iter()
                    .map(|(c, from, to)| format!("`{c}` {from} → {to}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// Run one incremental step into the existing table `target`.
pub(super) async fn run(
    tx: &Transaction<'_>,
    target: &Name,
    sql: &str,
    strategy: &Incremental,
    on_schema_change: OnSchemaChange,
    has_merge: bool,
) -> EngineResult<Outcome> {
    let stamp = chrono::Utc::now().format("%H%M%S%6f").to_string();
    let tmp = suffixed(&target.name, &format!("__dbt_tmp{stamp}"));
    let w = wrap(
        &format!("CREATE TEMP TABLE {} ON COMMIT DROP AS (\n", ident(&tmp)),
        sql,
        "\n)",
    );
    w.run(tx, &format!("building the new rows of `{target}`"))
        .await?;
    let tmp_sql = format!("pg_temp.{}", ident(&tmp));
    let mut table = columns(tx, &target.sql(), &format!("`{target}`")).await?;
    if table.is_empty() {
        return Err(EngineError::new(format!(
            "table `{target}` has no columns, or vanished during the run"
        )));
    }
    let model = columns(tx, &tmp_sql, "the model's SQL").await?;
    let diff = Diff::of(&table, &model);
    let mut changes = Vec::new();
    if !diff.is_empty() {
        let t = target.sql();
        let mut alter = Vec::new();
        match on_schema_change {
            OnSchemaChange::Ignore => {}
            OnSchemaChange::Fail => {
                return Err(EngineError::new(format!(
                    "the columns of the model and of table `{target}` differ (on_schema_change: fail): {}\nhint: run it with `--full-refresh` to rebuild the table, or set `on_schema_change` to append_new_columns or sync_all_columns",
                    diff.describe()
                )));
            }
            OnSchemaChange::AppendNewColumns | OnSchemaChange::SyncAllColumns => {
                for c in &diff.added {
                    alter.push(format!(
                        "ALTER TABLE {t} ADD COLUMN {} {}",
                        ident(&c.name),
                        c.data_type
                    ));
                    changes.push(format!("added column `{}` ({})", c.name, c.data_type));
                }
            }
        }
        if on_schema_change == OnSchemaChange::SyncAllColumns {
            for c in &diff.removed {
                alter.push(format!("ALTER TABLE {t} DROP COLUMN {}", ident(&c.name)));
                changes.push(format!("dropped column `{}`", c.name));
            }
            for (c, from, to) in &diff.retyped {
                alter.push(format!(
                    "ALTER TABLE {t} ALTER COLUMN {c} TYPE {to} USING {c}::{to}",
                    c = ident(c)
                ));
                changes.push(format!("column `{c}` {from} → {to}"));
            }
        }
        for a in &alter {
            tx.batch_execute(a).await.map_err(|e| {
                db_error(
                    &format!("changing the columns of `{target}` (on_schema_change)"),
                    &e,
                    None,
                )
            })?;
        }
        if !alter.is_empty() {
            table = columns(tx, &target.sql(), &format!("`{target}`")).await?;
        }
    }
    // The table's columns the model has, in the table's order.
    let cols: Vec<&str> = table
        .iter()
        .filter(|c| model.iter().any(|m| m.name == c.name))
        .map(|c| c.name.as_str())
        .collect();
    if cols.is_empty() {
        return Err(EngineError::new(format!(
            "the model's SQL has none of the columns of table `{target}`\nhint: run it with `--full-refresh` to rebuild the table"
        )));
    }
    let keys = match strategy {
        Incremental::Append => &[][..],
        Incremental::Merge(k) | Incremental::DeleteInsert(k) => k.as_slice(),
    };
    for k in keys {
        if !cols.contains(&k.as_str()) {
            let whose = if table.iter().any(|c| &c.name == k) {
                "the model's SQL".to_string()
            } else {
                format!("table `{target}`")
            };
            return Err(EngineError::new(format!(
                "unique_key `{k}` is not a column of {whose}\nhint: the key must be a column of both the table and the model's SQL"
            )));
        }
    }
    let list = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    let src = ident(&tmp);
    let on = keys
        .iter()
        .map(|k| format!("d.{k} = s.{k}", k = ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let insert = format!(
        "INSERT INTO {} ({list}) SELECT {list} FROM {src}",
        target.sql()
    );
    let mut statements = Vec::new();
    match strategy {
        Incremental::Append => statements.push(insert),
        Incremental::Merge(_) if has_merge => {
            let set: Vec<String> = cols
                .iter()
                .filter(|c| !keys.iter().any(|k| k == *c))
                .map(|c| format!("{c} = s.{c}", c = ident(c)))
                .collect();
            let matched = if set.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", set.join(", "))
            };
            let values = cols
                .iter()
                .map(|c| format!("s.{}", ident(c)))
                .collect::<Vec<_>>()
                .join(", ");
            statements.push(format!(
                "MERGE INTO {} AS d USING {src} AS s ON {on}\nWHEN MATCHED THEN {matched}\nWHEN NOT MATCHED THEN INSERT ({list}) VALUES ({values})",
                target.sql()
            ));
        }
        Incremental::Merge(_) | Incremental::DeleteInsert(_) => {
            statements.push(format!(
                "DELETE FROM {} AS d USING {src} AS s WHERE {on}",
                target.sql()
            ));
            statements.push(insert);
        }
    }
    let mut rows = 0;
    for s in &statements {
        rows = super::sql::simple(tx, s)
            .await
            .map(|m| super::sql::rows_of(&m))
            .map_err(|e| db_error(&format!("writing the new rows into `{target}`"), &e, None))?;
    }
    Ok(Outcome {
        rows: Some(rows),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(n: &str, t: &str) -> Column {
        Column {
            name: n.into(),
            data_type: t.into(),
        }
    }

    #[test]
    fn diffs_name_what_changed() {
        let d = Diff::of(
            &[
                col("id", "integer"),
                col("old", "text"),
                col("v", "integer"),
            ],
            &[col("id", "integer"), col("v", "bigint"), col("new", "date")],
        );
        assert_eq!(
            d.describe(),
            "new in the model: `new` (date); gone from the model: `old` (text); type changed: `v` integer → bigint"
        );
        assert!(Diff::of(&[col("a", "text")], &[col("a", "text")]).is_empty());
    }
}
