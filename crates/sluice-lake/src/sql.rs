//! SQL over the lake: every table and view is `<schema>.<table>` in DataFusion.
//!
//! Relations are listed once when the engine is made (and again on
//! [`QueryEngine::refresh`]); tables are loaded lazily, on first use in a
//! query, so a lake of thousands of tables costs one listing. A view's SQL
//! is planned each time a query names it, so it always reads the tables as
//! they are now.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};

use async_trait::async_trait;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use sluice_core::TableName;

use crate::error::Result;
use crate::location::Lake;
use crate::views::RelationKind;

/// Catalog name of the lake in SQL.
pub const CATALOG: &str = "lake";

type Registry = Arc<RwLock<BTreeMap<String, BTreeMap<String, RelationKind>>>>;

/// A DataFusion session over a lake.
pub struct QueryEngine {
    ctx: SessionContext,
    lake: Lake,
    registry: Registry,
}

impl QueryEngine {
    /// A session in which every lake table and view is queryable as `schema.table`.
    pub async fn new(lake: &Lake) -> Result<QueryEngine> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, "public");
        let ctx = SessionContext::new_with_config(config);
        let registry: Registry = Arc::default();
        let catalog = LakeCatalog {
            lake: lake.clone(),
            runtime: ctx.runtime_env(),
            state: ctx.state_weak_ref(),
            registry: registry.clone(),
            planning: Arc::default(),
        };
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        let engine = QueryEngine {
            ctx,
            lake: lake.clone(),
            registry,
        };
        engine.refresh().await?;
        Ok(engine)
    }

    /// List the lake's relations again (after other writers changed it).
    pub async fn refresh(&self) -> Result<()> {
        let mut schemas: BTreeMap<String, BTreeMap<String, RelationKind>> = BTreeMap::new();
        for (t, kind) in self.lake.relations().await? {
            schemas.entry(t.schema).or_default().insert(t.name, kind);
        }
        if let Ok(mut r) = self.registry.write() {
            *r = schemas;
        }
        Ok(())
    }

    /// Tell the engine that `name` now is a `kind` (after this process made it).
    pub fn note(&self, name: &TableName, kind: RelationKind) {
        if let Ok(mut r) = self.registry.write() {
            r.entry(name.schema.clone())
                .or_default()
                .insert(name.name.clone(), kind);
        }
    }

    /// Tell the engine that `name` is gone.
    pub fn forget(&self, name: &TableName) {
        if let Ok(mut r) = self.registry.write()
            && let Some(s) = r.get_mut(&name.schema)
        {
            s.remove(&name.name);
        }
    }

    /// Plan a query.
    pub async fn sql(&self, query: &str) -> Result<DataFrame> {
        Ok(self.ctx.sql(query).await?)
    }

    /// The DataFusion session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

#[derive(Debug)]
struct LakeCatalog {
    lake: Lake,
    runtime: Arc<RuntimeEnv>,
    state: Weak<parking_lot::RwLock<SessionState>>,
    registry: Registry,
    /// Views being planned (a view that names itself is an error, not a hang).
    planning: Arc<Mutex<HashSet<TableName>>>,
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.registry
            .read()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let known = self
            .registry
            .read()
            .map(|r| r.contains_key(name))
            .unwrap_or(false);
        known.then(|| {
            Arc::new(LakeSchema {
                lake: self.lake.clone(),
                runtime: self.runtime.clone(),
                state: self.state.clone(),
                registry: self.registry.clone(),
                planning: self.planning.clone(),
                schema: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct LakeSchema {
    lake: Lake,
    runtime: Arc<RuntimeEnv>,
    state: Weak<parking_lot::RwLock<SessionState>>,
    registry: Registry,
    planning: Arc<Mutex<HashSet<TableName>>>,
    schema: String,
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl LakeSchema {
    fn kind(&self, name: &str) -> Option<RelationKind> {
        self.registry
            .read()
            .ok()
            .and_then(|r| r.get(&self.schema).and_then(|s| s.get(name).copied()))
    }

    async fn view(&self, tname: TableName) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let def = self
            .lake
            .view(&tname)
            .await
            .map_err(external)?
            .ok_or_else(|| DataFusionError::Plan(format!("view {tname} has no definition")))?;
        let Some(state) = self.state.upgrade() else {
            return Err(DataFusionError::Internal("the session is gone".into()));
        };
        let state = state.read().clone();
        {
            let mut planning = self
                .planning
                .lock()
                .map_err(|_| DataFusionError::Internal("view planning lock".into()))?;
            if !planning.insert(tname.clone()) {
                planning.clear();
                return Err(DataFusionError::Plan(format!(
                    "view {tname} refers to itself"
                )));
            }
        }
        let plan = state.create_logical_plan(&def.sql).await;
        if let Ok(mut planning) = self.planning.lock() {
            planning.remove(&tname);
        }
        let plan =
            plan.map_err(|e| DataFusionError::Plan(format!("view {tname} no longer plans: {e}")))?;
        Ok(Arc::new(ViewTable::new(plan, Some(def.sql))))
    }
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        self.registry
            .read()
            .ok()
            .and_then(|r| r.get(&self.schema).map(|s| s.keys().cloned().collect()))
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        let tname = TableName::new(&self.schema, name);
        match self.kind(name) {
            None => Ok(None),
            Some(RelationKind::View) => self.view(tname).await.map(Some),
            Some(RelationKind::Table) => {
                let table = self.lake.open_existing(&tname).await.map_err(external)?;
                let log_store = table.log_store();
                let root = log_store.root_url().clone();
                let key = datafusion::execution::object_store::ObjectStoreUrl::parse(format!(
                    "{}://{}",
                    root.scheme(),
                    root.authority()
                ))?;
                if self.runtime.object_store(&key).is_err() {
                    self.runtime
                        .register_object_store(&root, log_store.root_object_store(None));
                }
                let provider = table.table_provider().await.map_err(external)?;
                Ok(Some(provider))
            }
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.kind(name).is_some()
    }
}
