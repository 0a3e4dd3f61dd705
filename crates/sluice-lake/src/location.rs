//! Where the lake is, and where each table lives in it.

use std::collections::HashMap;
use std::path::Path;

use deltalake::{DeltaTable, DeltaTableBuilder};
use sluice_core::TableName;
use url::Url;

use crate::error::{LakeError, Result};

/// A lake: a root URL under which each table is `<schema>/<table>/`.
#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    options: HashMap<String, String>,
}

impl Lake {
    /// A lake at `root` (a URL ending in `/`), with object-store options.
    pub fn new(mut root: Url, options: HashMap<String, String>) -> Self {
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        Lake { root, options }
    }

    /// Resolve the project's `lake:` setting: `None` is `.sluice/lake` in the
    /// project; a relative path is relative to the project; anything with a
    /// scheme is an object-store URL.
    pub fn from_config(
        project_dir: &Path,
        url: Option<&str>,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Lake> {
        let options: HashMap<String, String> = options.into_iter().collect();
        let text = url.unwrap_or(".sluice/lake");
        let root = if text.contains("://") {
            Url::parse(text).map_err(|e| LakeError::Location {
                location: text.to_string(),
                message: e.to_string(),
            })?
        } else {
            let path = if Path::new(text).is_absolute() {
                Path::new(text).to_path_buf()
            } else {
                project_dir.join(text)
            };
            std::fs::create_dir_all(&path).map_err(|e| LakeError::Location {
                location: path.display().to_string(),
                message: format!("cannot create the folder: {e}"),
            })?;
            let path = path.canonicalize().map_err(|e| LakeError::Location {
                location: path.display().to_string(),
                message: e.to_string(),
            })?;
            Url::from_directory_path(&path).map_err(|()| LakeError::Location {
                location: path.display().to_string(),
                message: "not an absolute path".into(),
            })?
        };
        match root.scheme() {
            "file" | "memory" => {}
            "s3" | "s3a" => {
                // delta-rs resolves `s3://` tables through these handlers.
                deltalake::aws::register_handlers(None);
                if root.host_str().is_none_or(str::is_empty) {
                    return Err(LakeError::Location {
                        location: text.to_string(),
                        message: "an S3 lake needs a bucket: `s3://bucket/prefix`".into(),
                    });
                }
            }
            other => {
                return Err(LakeError::Location {
                    location: text.to_string(),
                    message: format!(
                        "`{other}://` lakes are not built into this Sluice (supported: local folders, `file://`, `s3://` and S3-compatible stores, `memory://`)"
                    ),
                });
            }
        }
        Ok(Lake::new(root, options))
    }

    /// The lake's root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// Object-store options.
    pub fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// The object store holding the lake, and the lake root's path in it.
    /// S3 settings come from `lake.options` (`aws_endpoint_url`,
    /// `aws_region`, `aws_access_key_id`, …) and then from `AWS_*`
    /// environment variables, as for delta-rs.
    pub fn object_store(
        &self,
    ) -> Result<(
        std::sync::Arc<dyn object_store::ObjectStore>,
        object_store::path::Path,
    )> {
        use std::str::FromStr;

        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let err = |e: object_store::Error| LakeError::Location {
            location: self.root.to_string(),
            message: e.to_string(),
        };
        match self.root.scheme() {
            "s3" | "s3a" => {
                let mut url = self.root.clone();
                let _ = url.set_scheme("s3");
                let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
                for (k, v) in &self.options {
                    if let Ok(key) = AmazonS3ConfigKey::from_str(&k.to_ascii_lowercase()) {
                        builder = builder.with_config(key, v);
                    }
                }
                let store = builder.build().map_err(err)?;
                let path = object_store::path::Path::from(self.root.path());
                Ok((std::sync::Arc::new(store), path))
            }
            _ => {
                let (store, path) =
                    object_store::parse_url_opts(&self.root, self.options.iter()).map_err(err)?;
                Ok((std::sync::Arc::from(store), path))
            }
        }
    }

    /// The lake root as a local path, for `file://` lakes.
    pub fn local_root(&self) -> Option<std::path::PathBuf> {
        (self.root.scheme() == "file")
            .then(|| self.root.to_file_path().ok())
            .flatten()
    }

    /// URL of a table's folder.
    pub fn table_url(&self, table: &TableName) -> Url {
        let mut url = self.root.clone();
        let path = format!("{}{}/{}/", self.root.path(), table.schema, table.name);
        url.set_path(&path);
        url
    }

    /// Where a table lives, for people.
    pub fn describe(&self, table: &TableName) -> String {
        let url = self.table_url(table);
        match url.to_file_path() {
            Ok(p) if url.scheme() == "file" => p.display().to_string(),
            _ => url.to_string(),
        }
    }

    /// A handle on a table's location (not loaded).
    pub fn handle(&self, table: &TableName) -> Result<DeltaTable> {
        DeltaTableBuilder::from_url(self.table_url(table))
            .map_err(|e| LakeError::delta(table, e))?
            .with_storage_options(self.options.clone())
            .build()
            .map_err(|e| LakeError::delta(table, e))
    }

    /// Load a table, `None` if it does not exist.
    pub async fn open(&self, table: &TableName) -> Result<Option<DeltaTable>> {
        let mut handle = self.handle(table)?;
        let exists = handle
            .verify_deltatable_existence()
            .await
            .map_err(|e| LakeError::delta(table, e))?;
        if !exists {
            return Ok(None);
        }
        handle
            .load()
            .await
            .map_err(|e| LakeError::delta(table, e))?;
        Ok(Some(handle))
    }

    /// Load a table that must exist.
    pub async fn open_existing(&self, table: &TableName) -> Result<DeltaTable> {
        self.open(table)
            .await?
            .ok_or_else(|| LakeError::NoSuchTable(table.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_urls_nest_schema_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::from_config(dir.path(), None, []).unwrap();
        let url = lake.table_url(&TableName::new("shop", "orders"));
        assert!(
            url.as_str().ends_with("/.sluice/lake/shop/orders/"),
            "{url}"
        );
        assert!(
            lake.describe(&TableName::new("shop", "orders"))
                .ends_with(".sluice/lake/shop/orders/")
        );
        assert!(Lake::from_config(dir.path(), Some("gs://b/x"), []).is_err());
    }
}
