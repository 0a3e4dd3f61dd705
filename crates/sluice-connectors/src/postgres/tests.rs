//! The PostgreSQL source against the local server (127.0.0.1:5432, user
//! postgres): the connector contract, with a database of its own.

use serde_json::json;
use sluice_core::config::{DatabaseSource, OnError, StreamOptions};

use super::{PgConnector, PgSource};
use crate::conformance::{ConformanceOptions, check_source};

/// A database created for one test, dropped at the end.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn new(tag: &str, setup: &str) -> TestDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("sluice_u_{tag}_{}_{nanos}", std::process::id());
        let admin = admin().await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let db = TestDb { name };
        let client = PgConnector::from_url(&db.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        client.batch_execute(setup).await.unwrap();
        db
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    async fn drop_now(self) {
        admin()
            .await
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

async fn admin() -> tokio_postgres::Client {
    PgConnector::from_url("postgres://postgres@127.0.0.1:5432/postgres")
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_postgres_source_keeps_the_contract() {
    let db = TestDb::new(
        "contract",
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(10,2), updated_at timestamptz NOT NULL, tags text[]);
         INSERT INTO orders SELECT i, i * 1.5, timestamptz '2026-01-01 00:00+00' + i * interval '1 hour', ARRAY['a', 'b']
           FROM generate_series(1, 2500) i;
         CREATE TABLE events (id int, at date, payload jsonb);
         INSERT INTO events VALUES (1, '2026-01-01', '{}'), (2, NULL, NULL), (NULL, '2026-01-02', '[1]');
         CREATE TABLE empty_one (id int PRIMARY KEY);",
    )
    .await;
    let config: DatabaseSource = serde_json::from_value(json!({
        "type": "postgres",
        "url": db.url(),
        "streams": {
            "orders": {"replication": "incremental", "cursor": "updated_at", "split": {"column": "id", "ranges": 3}},
        }
    }))
    .unwrap();
    let source = PgSource::new("pg", &config, &StreamOptions::default()).unwrap();
    let options = ConformanceOptions {
        batch_size: 1000,
        on_error: OnError::Fail,
        incremental: vec!["orders".into()],
    };
    let reports = check_source(&source, &options).await.unwrap();
    let by_name = |n: &str| reports.iter().find(|r| r.name == n).unwrap();
    assert_eq!(by_name("orders").rows, 2500);
    assert_eq!(by_name("orders").reread_rows, 0);
    assert_eq!(by_name("events").rows, 3);
    // A full stream reads everything again.
    assert_eq!(by_name("events").reread_rows, 3);
    assert_eq!(by_name("empty_one").rows, 0);
    db.drop_now().await;
}
