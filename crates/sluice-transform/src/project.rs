//! `dbt_project.yml` and the files of a dbt project.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Result, TransformError};

/// The project file's name.
pub const PROJECT_FILE: &str = "dbt_project.yml";

/// Where `dbt deps` installs packages unless `packages-install-path` says
/// otherwise.
pub const DEFAULT_INSTALL_PATH: &str = "dbt_packages";

/// `dbt_project.yml` as written (keys Sluice does not use yet are kept in `other`).
#[derive(Debug, Clone, Deserialize)]
struct ProjectYaml {
    name: String,
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default, rename = "model-paths", alias = "source-paths")]
    model_paths: Option<Vec<String>>,
    #[serde(default, rename = "seed-paths", alias = "data-paths")]
    seed_paths: Option<Vec<String>>,
    #[serde(default, rename = "test-paths")]
    test_paths: Option<Vec<String>>,
    #[serde(default, rename = "analysis-paths")]
    analysis_paths: Option<Vec<String>>,
    #[serde(default, rename = "macro-paths")]
    macro_paths: Option<Vec<String>>,
    #[serde(default, rename = "snapshot-paths")]
    snapshot_paths: Option<Vec<String>>,
    #[serde(default, rename = "docs-paths")]
    docs_paths: Option<Vec<String>>,
    #[serde(default, rename = "target-path")]
    target_path: Option<String>,
    #[serde(default)]
    vars: IndexMap<String, Value>,
    #[serde(default)]
    models: Value,
    #[serde(default)]
    seeds: Value,
    #[serde(default)]
    snapshots: Value,
    #[serde(default, alias = "data_tests")]
    tests: Value,
    #[serde(default)]
    sources: Value,
    #[serde(default)]
    analyses: Value,
    #[serde(flatten)]
    other: IndexMap<String, Value>,
}

/// Where each kind of file lives, relative to the project folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `model-paths` (default `models`).
    pub models: Vec<String>,
    /// `seed-paths` (default `seeds`).
    pub seeds: Vec<String>,
    /// `test-paths` (default `tests`).
    pub tests: Vec<String>,
    /// `analysis-paths` (default `analyses`).
    pub analyses: Vec<String>,
    /// `macro-paths` (default `macros`).
    pub macros: Vec<String>,
    /// `snapshot-paths` (default `snapshots`).
    pub snapshots: Vec<String>,
    /// `docs-paths` (default: all of the above).
    pub docs: Vec<String>,
}

/// The configuration trees of `dbt_project.yml`, by resource type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigTrees {
    /// `models:`.
    pub models: Value,
    /// `seeds:`.
    pub seeds: Value,
    /// `snapshots:`.
    pub snapshots: Value,
    /// `data_tests:` / `tests:`.
    pub tests: Value,
    /// `sources:`.
    pub sources: Value,
    /// `analyses:`.
    pub analyses: Value,
}

/// What a project file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A SQL model (`models/**/*.sql`).
    Model,
    /// A CSV seed.
    Seed,
    /// A file of `{% macro %}` / `{% test %}` / `{% materialization %}` blocks
    /// (also generic tests under `tests/generic/`).
    Macro,
    /// A singular data test (`tests/**/*.sql`): SQL returning failing rows.
    Test,
    /// A file of `{% snapshot %}` blocks.
    Snapshot,
    /// An analysis: compiled, never run.
    Analysis,
    /// A properties (schema) YAML file.
    Properties,
    /// A Markdown file of `{% docs %}` blocks.
    Docs,
}

/// One file of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    /// What it is.
    pub kind: FileKind,
    /// Its path relative to the project folder (`models/staging/stg_orders.sql`).
    pub path: PathBuf,
    /// The node name: the file name without extension.
    pub name: String,
    /// dbt's fully qualified name: project, folders under the resource path,
    /// name (`["shop", "staging", "stg_orders"]`).
    pub fqn: Vec<String>,
}

/// A loaded dbt project.
#[derive(Debug, Clone)]
pub struct DbtProject {
    /// The project folder.
    pub dir: PathBuf,
    /// `name`.
    pub name: String,
    /// `version`, as written.
    pub version: Option<String>,
    /// `profile` (default: the project name).
    pub profile: String,
    /// Resource paths.
    pub paths: Paths,
    /// `target-path` (default `target`).
    pub target_path: String,
    /// `vars:` (global ones and per-package maps, as written).
    pub vars: IndexMap<String, Value>,
    /// `models:`, `seeds:`, … configuration trees.
    pub configs: ConfigTrees,
    /// Keys of `dbt_project.yml` Sluice keeps but does not act on yet
    /// (`on-run-start`, `dispatch`, `quoting`, …).
    pub other: IndexMap<String, Value>,
    /// Every file of the project, sorted by kind then path.
    pub files: Vec<ProjectFile>,
}

fn paths_or(v: Option<Vec<String>>, default: &str) -> Vec<String> {
    v.unwrap_or_else(|| vec![default.to_string()])
}

impl DbtProject {
    /// Load the project in `dir`: parse `dbt_project.yml` and find its files.
    pub fn load(dir: &Path) -> Result<DbtProject> {
        let file = dir.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&file).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                TransformError::Project {
                    message: format!("`{}` has no {PROJECT_FILE}", dir.display()),
                    hint: Some("point --project-dir at the folder of a dbt project".into()),
                }
            } else {
                TransformError::Io {
                    path: file.clone(),
                    source,
                }
            }
        })?;
        let yaml: ProjectYaml = serde_saphyr::from_str(&text).map_err(|e| {
            let mut err = TransformError::yaml(&file, &e);
            if let TransformError::Yaml { message, hint, .. } = &mut err
                && message.contains("missing field `name`")
            {
                *hint = Some("a dbt project needs `name: my_project`".into());
            }
            err
        })?;
        if yaml.name.is_empty()
            || !yaml
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(TransformError::Project {
                message: format!(
                    "{}: project name `{}` must be letters, digits and `_`",
                    file.display(),
                    yaml.name
                ),
                hint: Some("dbt uses the name in fully qualified names and macros".into()),
            });
        }
        let models = paths_or(yaml.model_paths, "models");
        let seeds = paths_or(yaml.seed_paths, "seeds");
        let tests = paths_or(yaml.test_paths, "tests");
        let analyses = paths_or(yaml.analysis_paths, "analyses");
        let macros = paths_or(yaml.macro_paths, "macros");
        let snapshots = paths_or(yaml.snapshot_paths, "snapshots");
        let docs = yaml.docs_paths.unwrap_or_else(|| {
            [&models, &seeds, &tests, &analyses, &macros, &snapshots]
                .into_iter()
                .flatten()
                .cloned()
                .collect()
        });
        let paths = Paths {
            models,
            seeds,
            tests,
            analyses,
            macros,
            snapshots,
            docs,
        };
        let files = find_files(dir, &yaml.name, &paths)?;
        check_unique_names(&files)?;
        Ok(DbtProject {
            dir: dir.to_path_buf(),
            profile: yaml.profile.unwrap_or_else(|| yaml.name.clone()),
            version: yaml.version.map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            name: yaml.name,
            paths,
            target_path: yaml.target_path.unwrap_or_else(|| "target".into()),
            vars: yaml.vars,
            configs: ConfigTrees {
                models: yaml.models,
                seeds: yaml.seeds,
                snapshots: yaml.snapshots,
                tests: yaml.tests,
                sources: yaml.sources,
                analyses: yaml.analyses,
            },
            other: yaml.other,
            files,
        })
    }

    /// `packages-install-path` (default `dbt_packages`), relative to the
    /// project folder.
    pub fn packages_install_path(&self) -> PathBuf {
        PathBuf::from(
            self.other
                .get("packages-install-path")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_INSTALL_PATH),
        )
    }

    /// The installed packages: every folder (or link to one) under the
    /// install path with a `dbt_project.yml`, loaded, in name order. Their
    /// `dir` is under the root project's folder (links are not resolved),
    /// so `dir.strip_prefix(root.dir)` is where they are installed.
    pub fn load_packages(&self) -> Result<Vec<DbtProject>> {
        let base = self.dir.join(self.packages_install_path());
        if !base.is_dir() {
            return Ok(Vec::new());
        }
        let entries = std::fs::read_dir(&base).map_err(|source| TransformError::Io {
            path: base.clone(),
            source,
        })?;
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TransformError::Io {
                path: base.clone(),
                source,
            })?;
            let path = entry.path();
            if path.join(PROJECT_FILE).is_file()
                && !entry.file_name().to_string_lossy().starts_with('.')
            {
                dirs.push(path);
            }
        }
        dirs.sort();
        let mut out: Vec<DbtProject> = Vec::new();
        for dir in dirs {
            let package = DbtProject::load(&dir)?;
            if package.name == self.name {
                return Err(TransformError::Project {
                    message: format!(
                        "the package in `{}` has the root project's name `{}`",
                        dir.display(),
                        self.name
                    ),
                    hint: Some(
                        "a project cannot depend on itself; remove it from the packages".into(),
                    ),
                });
            }
            if let Some(other) = out.iter().find(|p| p.name == package.name) {
                return Err(TransformError::Project {
                    message: format!(
                        "two installed packages are named `{}`: `{}` and `{}`",
                        package.name,
                        other.dir.display(),
                        dir.display()
                    ),
                    hint: Some(format!(
                        "remove one of them from `{}`",
                        self.packages_install_path().display()
                    )),
                });
            }
            out.push(package);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The files of one kind.
    pub fn files_of(&self, kind: FileKind) -> impl Iterator<Item = &ProjectFile> {
        self.files.iter().filter(move |f| f.kind == kind)
    }
}

/// Which kinds each resource path holds, by extension.
fn kind_of(resource: FileKind, rel_in_resource: &Path, ext: &str) -> Option<FileKind> {
    match (resource, ext) {
        (_, "yml" | "yaml") => Some(FileKind::Properties),
        (_, "md") => Some(FileKind::Docs),
        (FileKind::Model, "sql") => Some(FileKind::Model),
        (FileKind::Seed, "csv") => Some(FileKind::Seed),
        (FileKind::Macro, "sql") => Some(FileKind::Macro),
        // Generic tests are macros (`{% test %}` blocks) under tests/generic/.
        (FileKind::Test, "sql") if rel_in_resource.starts_with("generic") => Some(FileKind::Macro),
        (FileKind::Test, "sql") => Some(FileKind::Test),
        (FileKind::Snapshot, "sql") => Some(FileKind::Snapshot),
        (FileKind::Analysis, "sql") => Some(FileKind::Analysis),
        _ => None,
    }
}

fn find_files(dir: &Path, project: &str, paths: &Paths) -> Result<Vec<ProjectFile>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let resources = [
        (FileKind::Model, &paths.models),
        (FileKind::Seed, &paths.seeds),
        (FileKind::Test, &paths.tests),
        (FileKind::Analysis, &paths.analyses),
        (FileKind::Macro, &paths.macros),
        (FileKind::Snapshot, &paths.snapshots),
    ];
    for (resource, roots) in resources {
        for root in roots {
            let base = dir.join(root);
            if !base.is_dir() {
                continue;
            }
            let mut found = Vec::new();
            walk(&base, &mut found)?;
            for path in found {
                let Ok(rel_in) = path.strip_prefix(&base) else {
                    continue;
                };
                let ext = path
                    .extension()
                    .map(|e| e.to_string_lossy().to_ascii_lowercase())
                    .unwrap_or_default();
                let Some(kind) = kind_of(resource, rel_in, &ext) else {
                    continue;
                };
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                if !seen.insert(rel.clone()) {
                    continue;
                }
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut fqn = vec![project.to_string()];
                if let Some(parent) = rel_in.parent() {
                    fqn.extend(
                        parent
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
                    );
                }
                fqn.push(name.clone());
                out.push(ProjectFile {
                    kind,
                    path: rel,
                    name,
                    fqn,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.kind as u8, &a.path).cmp(&(b.kind as u8, &b.path)));
    Ok(out)
}

/// Files under `dir`, recursively, skipping hidden entries.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| TransformError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| TransformError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Models, seeds and analyses share one namespace: `ref` would be ambiguous
/// otherwise (dbt refuses the same). Snapshots are named by their
/// `{% snapshot %}` blocks, checked when those are parsed.
fn check_unique_names(files: &[ProjectFile]) -> Result<()> {
    let mut seen: HashMap<&str, &ProjectFile> = HashMap::new();
    for f in files.iter().filter(|f| {
        matches!(
            f.kind,
            FileKind::Model | FileKind::Seed | FileKind::Analysis
        )
    }) {
        if let Some(other) = seen.insert(f.name.as_str(), f) {
            return Err(TransformError::Project {
                message: format!(
                    "two resources are named `{}`: `{}` and `{}`",
                    f.name,
                    other.path.display(),
                    f.path.display()
                ),
                hint: Some("`ref` must name exactly one; rename one of the files".into()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::resolve;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn shop() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(
            dir,
            PROJECT_FILE,
            "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: warehouse\nvars:\n  start_date: '2024-01-01'\nmodels:\n  shop:\n    +materialized: view\n    marts:\n      materialized: table\nseeds:\n  shop:\n    +schema: raw\non-run-start: [\"select 1\"]\n",
        );
        write(
            dir,
            "models/staging/stg_orders.sql",
            "select * from {{ ref('raw_orders') }}",
        );
        write(
            dir,
            "models/marts/orders.sql",
            "select * from {{ ref('stg_orders') }}",
        );
        write(
            dir,
            "models/schema.yml",
            "version: 2\nmodels: [{name: orders}]\n",
        );
        write(
            dir,
            "models/overview.md",
            "{% docs __overview__ %}x{% enddocs %}",
        );
        write(dir, "seeds/raw_orders.csv", "id,amount\n1,2\n");
        write(
            dir,
            "macros/cents.sql",
            "{% macro cents(x) %}{{ x }} / 100.0{% endmacro %}",
        );
        write(
            dir,
            "tests/assert_positive.sql",
            "select * from {{ ref('orders') }} where amount < 0",
        );
        write(
            dir,
            "tests/generic/is_even.sql",
            "{% test is_even(model, column_name) %}select 1{% endtest %}",
        );
        write(
            dir,
            "snapshots/orders_snap.sql",
            "{% snapshot orders_snapshot %}select 1{% endsnapshot %}",
        );
        write(dir, "analyses/adhoc.sql", "select 1");
        write(dir, "models/.hidden/x.sql", "select 1");
        write(dir, "models/notes.txt", "not a model");
        d
    }

    #[test]
    fn loads_the_project_file_and_finds_every_kind_of_file() {
        let d = shop();
        let p = DbtProject::load(d.path()).unwrap();
        assert_eq!(p.name, "shop");
        assert_eq!(p.version.as_deref(), Some("1.0"));
        assert_eq!(p.profile, "warehouse");
        assert_eq!(p.vars["start_date"], "2024-01-01");
        assert_eq!(p.paths.models, vec!["models"]);
        assert!(p.other.contains_key("on-run-start"));
        let kinds: Vec<(FileKind, String)> = p
            .files
            .iter()
            .map(|f| (f.kind, f.path.display().to_string()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (FileKind::Model, "models/marts/orders.sql".into()),
                (FileKind::Model, "models/staging/stg_orders.sql".into()),
                (FileKind::Seed, "seeds/raw_orders.csv".into()),
                (FileKind::Macro, "macros/cents.sql".into()),
                (FileKind::Macro, "tests/generic/is_even.sql".into()),
                (FileKind::Test, "tests/assert_positive.sql".into()),
                (FileKind::Snapshot, "snapshots/orders_snap.sql".into()),
                (FileKind::Analysis, "analyses/adhoc.sql".into()),
                (FileKind::Properties, "models/schema.yml".into()),
                (FileKind::Docs, "models/overview.md".into()),
            ]
        );
        let stg = p
            .files_of(FileKind::Model)
            .find(|f| f.name == "stg_orders")
            .unwrap();
        assert_eq!(stg.fqn, vec!["shop", "staging", "stg_orders"]);
        assert_eq!(
            resolve(&p.configs.models, &stg.fqn)["materialized"],
            json!("view")
        );
        let orders = p
            .files_of(FileKind::Model)
            .find(|f| f.name == "orders")
            .unwrap();
        assert_eq!(
            resolve(&p.configs.models, &orders.fqn)["materialized"],
            json!("table")
        );
        let seed = p.files_of(FileKind::Seed).next().unwrap();
        assert_eq!(resolve(&p.configs.seeds, &seed.fqn)["schema"], json!("raw"));
    }

    #[test]
    fn clear_errors_for_a_missing_file_a_bad_name_and_clashing_names() {
        let d = tempfile::tempdir().unwrap();
        let e = DbtProject::load(d.path()).unwrap_err();
        assert!(e.to_string().contains("has no dbt_project.yml"), "{e}");
        assert!(e.hint().is_some());

        write(d.path(), PROJECT_FILE, "version: 1\n");
        let e = DbtProject::load(d.path()).unwrap_err();
        assert!(e.to_string().contains("dbt_project.yml"), "{e}");
        assert_eq!(e.hint(), Some("a dbt project needs `name: my_project`"));

        write(d.path(), PROJECT_FILE, "name: my-shop\n");
        let e = DbtProject::load(d.path()).unwrap_err();
        assert!(e.to_string().contains("`my-shop`"), "{e}");

        write(d.path(), PROJECT_FILE, "name: shop\n");
        write(d.path(), "models/a/orders.sql", "select 1");
        write(d.path(), "seeds/orders.csv", "id\n1\n");
        let e = DbtProject::load(d.path()).unwrap_err();
        assert!(
            e.to_string().contains("two resources are named `orders`"),
            "{e}"
        );
    }

    #[test]
    fn custom_paths_and_legacy_spellings() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            PROJECT_FILE,
            "name: p\nsource-paths: [sql]\ndata-paths: [data]\n",
        );
        write(d.path(), "sql/m.sql", "select 1");
        write(d.path(), "data/s.csv", "a\n1\n");
        let p = DbtProject::load(d.path()).unwrap();
        assert_eq!(p.files_of(FileKind::Model).count(), 1);
        assert_eq!(p.files_of(FileKind::Seed).count(), 1);
        assert_eq!(p.profile, "p");
    }
}
