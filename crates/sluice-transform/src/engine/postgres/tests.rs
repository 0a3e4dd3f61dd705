//! The PostgreSQL engine against a real server (127.0.0.1:5432, user
//! `postgres`, trust auth): every test has a database of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use indexmap::IndexMap;
use serde_json::{Value, json};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::PgEngine;
use super::profile::PgProfile;
use crate::engine::{Engine, Existing, Incremental, OnSchemaChange};
use crate::jinja::{Relation, Target};
use crate::profiles::Output;
use crate::seed::Seed;

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database, dropped when the value is.
struct TestDb {
    name: String,
}

async fn client(conninfo: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

impl TestDb {
    async fn new() -> TestDb {
        let name = format!(
            "sluice_t_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        client(ADMIN)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDb { name }
    }

    fn settings(&self) -> IndexMap<String, Value> {
        serde_json::from_value(json!({
            "type": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres",
            "password": "", "dbname": self.name, "schema": "main", "threads": 1
        }))
        .unwrap()
    }

    async fn engine(&self) -> PgEngine {
        PgEngine::from_profile(&PgProfile::from_settings(&self.settings()).unwrap())
            .await
            .unwrap()
    }

    /// Every row of `sql`, values as PostgreSQL's text.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let c = client(&format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={}",
            self.name
        ))
        .await;
        c.simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    }

    /// The rows of `sql` as `a|b` lines (NULL as `∅`).
    async fn lines(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .await
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| v.unwrap_or_else(|| "∅".into()))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    /// The relations in `schema` and their `relkind`.
    async fn relations(&self, schema: &str) -> Vec<String> {
        self.lines(&format!(
            "SELECT c.relname || ':' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'v', 'm') ORDER BY 1"
        ))
        .await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let c = client(ADMIN).await;
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

fn rel(schema: &str, name: &str) -> Relation {
    Relation {
        database: None,
        schema: schema.into(),
        identifier: name.into(),
    }
}

#[tokio::test]
async fn views_and_tables_are_swapped_in_one_transaction() {
    let db = TestDb::new().await;
    let e = db.engine().await;
    assert_eq!(e.kind(), "postgres");
    assert!(e.describe().ends_with(&db.name), "{}", e.describe());
    let t = Relation {
        database: Some(db.name.clone()),
        ..rel("fresh", "orders")
    };
    assert_eq!(e.existing(&t).await.unwrap(), None);

    // A table in a schema that does not exist yet; the row count is CREATE TABLE AS's.
    let o = e
        .create_table(&t, "select 1 as id, 'a' as v union all select 2, 'b';\n")
        .await
        .unwrap();
    assert_eq!(o.rows, Some(2));
    assert_eq!(e.existing(&t).await.unwrap(), Some(Existing::Table));
    let v = rel("fresh", "big_orders");
    e.create_view(&v, &format!("select * from {t} where id > 1"))
        .await
        .unwrap();
    assert_eq!(e.existing(&v).await.unwrap(), Some(Existing::View));
    assert_eq!(
        db.lines("select id, v from fresh.big_orders").await,
        ["2|b"]
    );

    // The view replaced by a view: its new SQL.
    e.create_view(&v, &format!("select id * 10 as id from {t}"))
        .await
        .unwrap();
    assert_eq!(
        db.lines("select id from fresh.big_orders order by id")
            .await,
        ["10", "20"]
    );

    // table → view, and back; no __dbt_tmp / __dbt_backup left over.
    e.create_view(&t, "select 3 as id").await.unwrap();
    assert_eq!(e.existing(&t).await.unwrap(), Some(Existing::View));
    let o = e.create_table(&t, "select 4 as id").await.unwrap();
    assert_eq!(o.rows, Some(1));
    assert_eq!(db.lines("select id from fresh.orders").await, ["4"]);
    // big_orders read the old relation: dropped with it (CASCADE), as dbt-postgres does.
    assert_eq!(db.relations("fresh").await, ["orders:r"]);

    // A failing replacement leaves the old relation as it was.
    let err = e.create_table(&t, "select nope from x").await.unwrap_err();
    assert!(
        err.message.contains("creating table `fresh.orders`"),
        "{err}"
    );
    assert_eq!(db.lines("select id from fresh.orders").await, ["4"]);
    assert_eq!(db.relations("fresh").await, ["orders:r"]);

    e.drop(&t).await.unwrap();
    assert_eq!(e.existing(&t).await.unwrap(), None);
    e.drop(&t).await.unwrap();

    // Another database is refused, with what to do.
    let other = Relation {
        database: Some("elsewhere".into()),
        ..rel("fresh", "orders")
    };
    let err = e.create_view(&other, "select 1").await.unwrap_err();
    assert!(
        err.message.contains("cannot write across databases") && err.message.contains("hint:"),
        "{err}"
    );
}

#[tokio::test]
async fn errors_point_at_the_line_of_the_model() {
    let db = TestDb::new().await;
    let e = db.engine().await;
    let sql = "select\n  1 as id,\n  amount_usd\nfrom (select 1 as amount) t";
    let err = e.create_table(&rel("main", "m"), sql).await.unwrap_err();
    assert!(
        err.message.contains(
            "column \"amount_usd\" does not exist (SQLSTATE 42703) at Line: 3, Column: 3"
        ),
        "{err}"
    );
    assert_eq!(crate::runner::locate(&err.message, sql), Some(3));
    let err = e
        .create_view(&rel("main", "m"), "select 1\nfrom\nwhere")
        .await
        .unwrap_err();
    assert!(
        err.message.contains("syntax error at or near \"where\"")
            && err.message.contains("Line: 3"),
        "{err}"
    );

    // check plans without running: nothing is created, errors are located.
    e.check("select 1 as id").await.unwrap();
    let err = e.check("select 1\n  from main.nope").await.unwrap_err();
    assert!(err.message.contains("Line: 2"), "{err}");
    let started = std::time::Instant::now();
    e.check("select pg_sleep(5), 1 as id").await.unwrap();
    assert!(started.elapsed().as_secs() < 4);
    assert!(db.relations("main").await.is_empty());

    // A view on a missing relation, and one with a server hint.
    let err = e
        .create_view(&rel("main", "m"), "select * from main.missing")
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("relation \"main.missing\" does not exist"),
        "{err}"
    );
    let err = e
        .create_view(&rel("main", "m"), "select lower(1)")
        .await
        .unwrap_err();
    assert!(err.message.contains("server hint:"), "{err}");
}

#[tokio::test]
async fn test_queries_read_one_row() {
    let db = TestDb::new().await;
    let e = db.engine().await;
    let t = rel("main", "t");
    e.create_table(&t, "select * from (values (1), (1), (2), (null)) v(id)")
        .await
        .unwrap();
    let wrap = |failing: &str| {
        format!(
            "select count(*) as failures, count(*) != 0 as should_warn, count(*) != 0 as should_error\nfrom (\n{failing}\n) dbt_internal_test"
        )
    };
    let r = e
        .run_test(&wrap("select id from main.t where id is null"))
        .await
        .unwrap();
    assert_eq!((r.failures, r.should_warn, r.should_error), (1, true, true));
    let r = e
        .run_test(&wrap(
            "select id from main.t where id is not null group by id having count(*) > 1",
        ))
        .await
        .unwrap();
    assert_eq!(r.failures, 1);
    let r = e
        .run_test(&wrap("select id from main.t where id > 5"))
        .await
        .unwrap();
    assert_eq!(
        (r.failures, r.should_warn, r.should_error),
        (0, false, false)
    );
    let err = e
        .run_test(&wrap("select id\nfrom main.t\nwhere idd > 5"))
        .await
        .unwrap_err();
    assert!(err.message.contains("Line: 5"), "{err}");
    let err = e.run_test("select 1 where false").await.unwrap_err();
    assert!(err.message.contains("no row"), "{err}");
}

async fn orders(e: &PgEngine) -> Relation {
    let t = rel("main", "orders");
    e.create_table(
        &t,
        "select * from (values (1, 'a'::text, 10), (2, 'b', 20)) v(id, status, amount)",
    )
    .await
    .unwrap();
    t
}

const NEW_ROWS: &str =
    "select * from (values (2, 'B'::text, 21), (3, 'c', 30)) v(id, status, amount)";

#[tokio::test]
async fn incremental_append_delete_insert_and_merge() {
    let db = TestDb::new().await;
    let all = "select id, status, amount from main.orders order by id, status";
    let e = db.engine().await;
    let t = orders(&e).await;
    let o = e
        .incremental(&t, NEW_ROWS, &Incremental::Append, OnSchemaChange::Ignore)
        .await
        .unwrap();
    assert_eq!(o.rows, Some(2));
    assert_eq!(
        db.lines(all).await,
        ["1|a|10", "2|B|21", "2|b|20", "3|c|30"]
    );

    let key = vec!["id".to_string()];
    for strategy in [
        Incremental::DeleteInsert(key.clone()),
        Incremental::Merge(key.clone()),
    ] {
        let t = orders(&e).await;
        let o = e
            .incremental(&t, NEW_ROWS, &strategy, OnSchemaChange::Ignore)
            .await
            .unwrap();
        assert_eq!(o.rows, Some(2), "{strategy:?}");
        assert_eq!(
            db.lines(all).await,
            ["1|a|10", "2|B|21", "3|c|30"],
            "{strategy:?}"
        );
    }
    // Merge on a server without MERGE: delete+insert.
    let e = e.without_merge();
    let t = orders(&e).await;
    e.incremental(
        &t,
        NEW_ROWS,
        &Incremental::Merge(key),
        OnSchemaChange::Ignore,
    )
    .await
    .unwrap();
    assert_eq!(db.lines(all).await, ["1|a|10", "2|B|21", "3|c|30"]);

    // Keys on several columns; a key the model lacks is named.
    let t = orders(&e).await;
    let keys = vec!["id".to_string(), "status".to_string()];
    let e = db.engine().await;
    e.incremental(
        &t,
        NEW_ROWS,
        &Incremental::Merge(keys),
        OnSchemaChange::Ignore,
    )
    .await
    .unwrap();
    assert_eq!(
        db.lines(all).await,
        ["1|a|10", "2|B|21", "2|b|20", "3|c|30"]
    );
    let err = e
        .incremental(
            &t,
            "select 9 as id",
            &Incremental::DeleteInsert(vec!["status".into()]),
            OnSchemaChange::Ignore,
        )
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("unique_key `status` is not a column of the model's SQL"),
        "{err}"
    );
    // A failing step changes nothing, and its error is located.
    let before = db.lines(all).await;
    let err = e
        .incremental(
            &t,
            "select id,\n  oops\nfrom main.orders",
            &Incremental::Append,
            OnSchemaChange::Ignore,
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("Line: 2"), "{err}");
    assert_eq!(db.lines(all).await, before);
}

const CHANGED: &str =
    "select * from (values (3, 30::bigint, date '2024-01-02')) v(id, amount, shipped_on)";

#[tokio::test]
async fn on_schema_change_ignore_fail_append_and_sync() {
    let db = TestDb::new().await;
    let e = db.engine().await;
    let columns = "select string_agg(column_name || ' ' || data_type, ', ' order by ordinal_position) \
                   from information_schema.columns where table_schema = 'main' and table_name = 'orders'";
    let all = "select * from main.orders order by id";

    // ignore: the table's columns only; `status` (not in the model) is NULL.
    let t = orders(&e).await;
    let o = e
        .incremental(&t, CHANGED, &Incremental::Append, OnSchemaChange::Ignore)
        .await
        .unwrap();
    assert!(o.changes.is_empty());
    assert_eq!(
        db.lines(columns).await,
        ["id integer, status text, amount integer"]
    );
    assert_eq!(db.lines(all).await, ["1|a|10", "2|b|20", "3|∅|30"]);

    // fail: every difference named, nothing written.
    let t = orders(&e).await;
    let err = e
        .incremental(&t, CHANGED, &Incremental::Append, OnSchemaChange::Fail)
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("new in the model: `shipped_on` (date)")
            && err.message.contains("gone from the model: `status` (text)")
            && err.message.contains("`amount` integer → bigint")
            && err.message.contains("hint:"),
        "{err}"
    );
    assert_eq!(db.lines(all).await, ["1|a|10", "2|b|20"]);
    e.incremental(&t, NEW_ROWS, &Incremental::Append, OnSchemaChange::Fail)
        .await
        .unwrap();

    // append_new_columns: the new column, typed as the model's.
    let t = orders(&e).await;
    let o = e
        .incremental(
            &t,
            CHANGED,
            &Incremental::Append,
            OnSchemaChange::AppendNewColumns,
        )
        .await
        .unwrap();
    assert_eq!(o.changes, ["added column `shipped_on` (date)"]);
    assert_eq!(
        db.lines(columns).await,
        ["id integer, status text, amount integer, shipped_on date"]
    );
    assert_eq!(
        db.lines(all).await,
        ["1|a|10|∅", "2|b|20|∅", "3|∅|30|2024-01-02"]
    );

    // sync_all_columns: added, dropped, retyped.
    let t = orders(&e).await;
    let o = e
        .incremental(
            &t,
            CHANGED,
            &Incremental::Merge(vec!["id".into()]),
            OnSchemaChange::SyncAllColumns,
        )
        .await
        .unwrap();
    assert_eq!(
        o.changes,
        [
            "added column `shipped_on` (date)",
            "dropped column `status`",
            "column `amount` integer → bigint"
        ]
    );
    assert_eq!(
        db.lines(columns).await,
        ["id integer, amount bigint, shipped_on date"]
    );
    assert_eq!(db.lines(all).await, ["1|10|∅", "2|20|∅", "3|30|2024-01-02"]);
}

fn seed(columns: Vec<(&str, ArrayRef)>) -> Seed {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    Seed {
        schema,
        rows: batch.num_rows(),
        batches: vec![batch.clone(), batch],
    }
}

#[tokio::test]
async fn seeds_are_copied_in_and_refilled() {
    let db = TestDb::new().await;
    let e = db.engine().await;
    let s = rel("raw", "riders");
    let riders = seed(vec![
        ("id", Arc::new(Int64Array::from(vec![1, 2]))),
        (
            "name",
            Arc::new(StringArray::from(vec![Some("Ada, O."), None])),
        ),
        (
            "signed_up",
            Arc::new(Date32Array::from(vec![19_723, 19_724])),
        ),
        ("score", Arc::new(Float64Array::from(vec![1.5, -0.25]))),
        (
            "active",
            Arc::new(BooleanArray::from(vec![Some(true), None])),
        ),
    ]);
    let o = e.load_seed(&s, riders.clone()).await.unwrap();
    assert_eq!(o.rows, Some(4));
    let all = "select * from raw.riders order by 1, 2";
    assert_eq!(
        db.lines(all).await,
        [
            "1|Ada, O.|2024-01-01|1.5|t",
            "1|Ada, O.|2024-01-01|1.5|t",
            "2|∅|2024-01-02|-0.25|∅",
            "2|∅|2024-01-02|-0.25|∅"
        ]
    );
    assert_eq!(
        db.lines(
            "select string_agg(data_type, ', ' order by ordinal_position) from information_schema.columns \
             where table_schema = 'raw' and table_name = 'riders'"
        )
        .await,
        ["bigint, text, date, double precision, boolean"]
    );

    // Same columns again: truncated and refilled, so a view on it stays.
    e.create_view(&rel("raw", "v"), "select id from raw.riders")
        .await
        .unwrap();
    let one = seed(vec![
        ("id", Arc::new(Int64Array::from(vec![7]))),
        ("name", Arc::new(StringArray::from(vec!["x"]))),
        ("signed_up", Arc::new(Date32Array::from(vec![0]))),
        ("score", Arc::new(Float64Array::from(vec![0.0]))),
        ("active", Arc::new(BooleanArray::from(vec![false]))),
    ]);
    e.load_seed(&s, one).await.unwrap();
    assert_eq!(db.lines("select id from raw.v").await, ["7", "7"]);

    // Other columns: a new table (the view on the old one goes, as in dbt).
    let other = seed(vec![
        ("id", Arc::new(StringArray::from(vec!["r1"]))),
        ("nothing", arrow::array::new_null_array(&DataType::Null, 1)),
    ]);
    let o = e.load_seed(&s, other).await.unwrap();
    assert_eq!(o.rows, Some(2));
    assert_eq!(db.lines(all).await, ["r1|∅", "r1|∅"]);
    assert_eq!(db.relations("raw").await, ["riders:r"]);

    // A view at the seed's name is replaced by the table.
    e.create_view(&s, "select 1 as id").await.unwrap();
    e.load_seed(&s, riders).await.unwrap();
    assert_eq!(e.existing(&s).await.unwrap(), Some(Existing::Table));
    assert_eq!(db.lines("select count(*) from raw.riders").await, ["4"]);
}

#[tokio::test]
async fn profiles_connect_or_say_what_to_fix() {
    let db = TestDb::new().await;
    let output = |settings: IndexMap<String, Value>| Output {
        target: Target {
            name: "pg".into(),
            kind: "postgres".into(),
            schema: "main".into(),
            database: Some(db.name.clone()),
            threads: 1,
        },
        settings,
        file: Some("profiles.yml".into()),
    };
    let e = PgEngine::connect(&output(db.settings())).await.unwrap();
    assert!(e.server_version() >= 90_600);

    let mut s = db.settings();
    s.shift_remove("user");
    let err = PgEngine::connect(&output(s)).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("profiles.yml: output `pg`: the output has no `user`"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("user:"));

    let mut s = db.settings();
    s.insert("dbname".into(), json!("sluice_no_such_db"));
    let err = PgEngine::connect(&output(s)).await.unwrap_err();
    assert!(err.to_string().contains("sluice_no_such_db"), "{err}");
    assert!(err.hint().unwrap().contains("no database"), "{err:?}");

    let mut s = db.settings();
    s.insert("role".into(), json!("sluice_no_such_role"));
    let err = PgEngine::connect(&output(s)).await.unwrap_err();
    assert!(err.to_string().contains("sluice_no_such_role"), "{err}");

    let mut s = db.settings();
    s.insert("search_path".into(), json!("elsewhere"));
    s.insert("keepalives_idle".into(), json!(5));
    let e = PgEngine::connect(&output(s)).await.unwrap();
    let c = e.session().await.unwrap();
    let path: String = c.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert_eq!(path, "elsewhere");
}
