//! Database calls when a node runs: the node is rendered again right
//! before it runs (its parents are built by then, as in dbt), with
//! `run_query` and `statement` reaching the engine.
//!
//! Rendering is synchronous (minijinja functions are plain functions) and
//! the engines are async, so the render runs on a blocking thread and sends
//! each query over a channel to the task that drives the engine, which
//! answers on a reply channel. The task serves queries until the render
//! ends; a render never waits on a task that is waiting on it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::{Engine, QueryResult};
use crate::error::{Result, TransformError};
use crate::jinja::Database;
use crate::manifest::Manifest;

/// One query for the engine, and where its answer goes.
struct Request {
    sql: String,
    reply: std::sync::mpsc::Sender<std::result::Result<QueryResult, String>>,
}

/// The render thread's side of the channel.
struct Bridge {
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
}

impl Database for Bridge {
    fn query(&self, sql: &str) -> std::result::Result<QueryResult, String> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.requests
            .send(Request {
                sql: sql.to_string(),
                reply,
            })
            .map_err(|_| "the run ended before the query could run".to_string())?;
        answer
            .recv()
            .map_err(|_| "the engine dropped the query without an answer".to_string())?
    }
}

/// Run `work` on a blocking thread with a [`Database`] whose queries run on
/// `engine` here; its result once it ends.
pub async fn with_database<T, F>(engine: &dyn Engine, work: F) -> std::result::Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(Arc<dyn Database>) -> T + Send + 'static,
{
    let (requests, mut incoming) = tokio::sync::mpsc::unbounded_channel::<Request>();
    let database: Arc<dyn Database> = Arc::new(Bridge { requests });
    let mut render = tokio::task::spawn_blocking(move || work(database));
    loop {
        tokio::select! {
            done = &mut render => {
                return done.map_err(|e| format!("the render stopped: {e}"));
            }
            Some(request) = incoming.recv() => {
                let answer = engine.query(&request.sql).await.map_err(|e| e.message);
                // The render may have stopped waiting (it cannot: it blocks
                // on the answer); nothing to do then.
                let _ = request.reply.send(answer);
            }
        }
    }
}

/// A node rendered with the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Its SQL, ephemeral models as CTEs.
    pub sql: String,
    /// What `log()`, `print()` and `print_table()` said.
    pub logs: Vec<String>,
}

/// Node `name` rendered with its database calls run on `engine`
/// (`is_incremental()` as `incremental` says).
pub async fn render(
    manifest: &Manifest,
    engine: &dyn Engine,
    name: &str,
    incremental: bool,
) -> Result<Rendered> {
    let live = manifest.live(name);
    let node = name.to_string();
    let (sql, logs) = with_database(engine, move |db| live.sql(&node, incremental, &db))
        .await
        .map_err(|message| TransformError::Project {
            message: format!("rendering `{name}`: {message}"),
            hint: None,
        })??;
    Ok(Rendered { sql, logs })
}

/// `compile`: the SQL of the nodes in `names` that run database calls,
/// rendered with `engine` (dbt's compile runs them too); what they logged,
/// as `(node, message)`.
pub async fn resolve(
    manifest: &mut Manifest,
    engine: &dyn Engine,
    names: &HashSet<String>,
) -> Result<Vec<(String, String)>> {
    let wanted: Vec<String> = manifest
        .order
        .iter()
        .filter(|n| names.contains(*n) && manifest.needs_database(n))
        .cloned()
        .collect();
    let mut logs = Vec::new();
    for name in &wanted {
        let r = render(manifest, engine, name, false).await?;
        logs.extend(r.logs.into_iter().map(|l| (name.clone(), l)));
        if let Some(node) = manifest.nodes.get_mut(name) {
            node.sql = Some(r.sql);
        }
    }
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::lake::LakeEngine;

    /// Renders on a blocking thread reach the engine on this one, also on a
    /// single-threaded runtime (the tests' and any caller's), several
    /// queries in a row; the lake refuses writes.
    #[tokio::test]
    async fn a_render_thread_queries_the_engine_through_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let lake = sluice_lake::Lake::from_config(dir.path(), None, []).unwrap();
        let engine = LakeEngine::new(lake, "test").await.unwrap();
        let answers = with_database(&engine, |db| {
            let a = db.query("select 1 as x, 'a' as y union all select 2, 'b'");
            let b = db.query("select count(*) as n from (values (1), (2), (3)) t(v)");
            let c = db.query("create table t (x int)");
            (a, b, c)
        })
        .await
        .unwrap();
        let a = answers.0.unwrap();
        assert_eq!(a.schema.fields().len(), 2);
        assert_eq!(a.rows_affected, Some(2));
        assert_eq!(a.message(), "SELECT 2");
        let b = answers.1.unwrap();
        let t = crate::jinja::table_for_tests(&b);
        assert_eq!(t, "[[3]]");
        let refused = answers.2.unwrap_err();
        assert!(
            refused.starts_with("the lake runs only queries (select, with, values, explain) from run_query and statement, not `create table`"),
            "{refused}"
        );
        assert!(refused.contains("\nhint: "), "{refused}");
    }
}
