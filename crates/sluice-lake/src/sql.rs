//! SQL over the lake: every table is `<schema>.<table>` in DataFusion.
//!
//! Tables are listed once when the engine is made and loaded lazily, on first
//! use in a query, so a lake of thousands of tables costs one listing.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use sluice_core::TableName;

use crate::error::Result;
use crate::location::Lake;

/// Catalog name of the lake in SQL.
pub const CATALOG: &str = "lake";

/// A DataFusion session over a lake.
pub struct QueryEngine {
    ctx: SessionContext,
}

impl QueryEngine {
    /// A session in which every lake table is queryable as `schema.table`.
    pub async fn new(lake: &Lake) -> Result<QueryEngine> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG, "public");
        let ctx = SessionContext::new_with_config(config);
        let mut schemas: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in lake.list().await? {
            schemas.entry(t.schema).or_default().push(t.name);
        }
        let catalog = LakeCatalog {
            lake: lake.clone(),
            runtime: ctx.runtime_env(),
            schemas,
        };
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        Ok(QueryEngine { ctx })
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
    schemas: BTreeMap<String, Vec<String>>,
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.schemas.keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schemas.get(name).map(|tables| {
            Arc::new(LakeSchema {
                lake: self.lake.clone(),
                runtime: self.runtime.clone(),
                schema: name.to_string(),
                tables: tables.clone(),
            }) as Arc<dyn SchemaProvider>
        })
    }
}

#[derive(Debug)]
struct LakeSchema {
    lake: Lake,
    runtime: Arc<RuntimeEnv>,
    schema: String,
    tables: Vec<String>,
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.clone()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        if !self.table_exist(name) {
            return Ok(None);
        }
        let tname = TableName::new(&self.schema, name);
        let table = self
            .lake
            .open_existing(&tname)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
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
        let provider = table
            .table_provider()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(provider))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t == name)
    }
}
