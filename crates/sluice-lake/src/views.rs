//! Views in the lake. Delta has no views, so a view is a small JSON file,
//! `<lake>/<schema>/<name>/_sluice_view.json`, holding its SQL; the query
//! engine plans it when a query names it. A folder holds a table (a
//! `_delta_log/`) or a view, never both: making one drops the other.

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sluice_core::TableName;

use crate::error::{LakeError, Result};
use crate::location::Lake;

/// The file that makes a folder a view.
pub const VIEW_FILE: &str = "_sluice_view.json";

/// What a name in the lake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelationKind {
    /// A Delta table.
    Table,
    /// A view (SQL planned on use).
    View,
}

/// A stored view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    /// Its SQL, in DataFusion's dialect, naming lake tables `"schema"."table"`.
    pub sql: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// The run that made it.
    #[serde(default)]
    pub run_id: Option<String>,
}

impl Lake {
    fn folder(&self, name: &TableName) -> Result<object_store::path::Path> {
        let (_, root) = self.object_store()?;
        Ok(root
            .clone()
            .join(name.schema.as_str())
            .join(name.name.as_str()))
    }

    /// What `name` is, if anything.
    pub async fn relation_kind(&self, name: &TableName) -> Result<Option<RelationKind>> {
        let (store, _) = self.object_store()?;
        let folder = self.folder(name)?;
        let inner = store.list_with_delimiter(Some(&folder)).await?;
        if inner
            .common_prefixes
            .iter()
            .any(|p| p.filename() == Some("_delta_log"))
        {
            return Ok(Some(RelationKind::Table));
        }
        if inner
            .objects
            .iter()
            .any(|o| o.location.filename() == Some(VIEW_FILE))
        {
            return Ok(Some(RelationKind::View));
        }
        Ok(None)
    }

    /// Make (or replace) the view `name`. A table of that name is dropped.
    pub async fn create_view(
        &self,
        name: &TableName,
        sql: &str,
        run_id: Option<&str>,
    ) -> Result<()> {
        if self.relation_kind(name).await? == Some(RelationKind::Table) {
            self.drop_relation(name).await?;
        }
        let def = ViewDef {
            sql: sql.to_string(),
            created: Utc::now(),
            run_id: run_id.map(str::to_string),
        };
        let bytes = serde_json::to_vec_pretty(&def).map_err(|e| LakeError::Unsupported {
            table: name.to_string(),
            message: format!("cannot encode the view: {e}"),
        })?;
        let (store, _) = self.object_store()?;
        // One PUT: readers see the old definition or the new one.
        store
            .put(&self.folder(name)?.join(VIEW_FILE), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// The definition of the view `name`, `None` if it is not a view.
    pub async fn view(&self, name: &TableName) -> Result<Option<ViewDef>> {
        let (store, _) = self.object_store()?;
        let bytes = match store.get(&self.folder(name)?.join(VIEW_FILE)).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LakeError::Unsupported {
                table: name.to_string(),
                message: format!("the view file `{VIEW_FILE}` is damaged: {e}"),
            })
    }

    /// Drop the table or view `name` (everything under its folder).
    pub async fn drop_relation(&self, name: &TableName) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        let (store, _) = self.object_store()?;
        let folder = self.folder(name)?;
        let locations = store.list(Some(&folder)).map_ok(|m| m.location).boxed();
        store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await?;
        if let Some(local) = self.local_root() {
            // Local stores leave empty folders behind; remove them so the
            // name is free (best effort: another writer may be adding files).
            let _ = std::fs::remove_dir_all(local.join(&name.schema).join(&name.name));
        }
        Ok(())
    }

    /// Every table and view of the lake, sorted by name.
    pub async fn relations(&self) -> Result<Vec<(TableName, RelationKind)>> {
        let (store, root) = self.object_store()?;
        let mut out = Vec::new();
        for schema in store
            .list_with_delimiter(Some(&root))
            .await?
            .common_prefixes
        {
            let Some(schema_name) = schema.filename().map(str::to_string) else {
                continue;
            };
            if schema_name.starts_with(['.', '_']) {
                continue;
            }
            for table in store
                .list_with_delimiter(Some(&schema))
                .await?
                .common_prefixes
            {
                let Some(table_name) = table.filename().map(str::to_string) else {
                    continue;
                };
                let inner = store.list_with_delimiter(Some(&table)).await?;
                let kind = if inner
                    .common_prefixes
                    .iter()
                    .any(|p| p.filename() == Some("_delta_log"))
                {
                    RelationKind::Table
                } else if inner
                    .objects
                    .iter()
                    .any(|o| o.location.filename() == Some(VIEW_FILE))
                {
                    RelationKind::View
                } else {
                    continue;
                };
                out.push((TableName::new(schema_name.clone(), table_name), kind));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
