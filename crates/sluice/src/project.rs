//! A project: its folder, `sluice.yml`, `.env`, lake and store.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sluice_core::config::{LoadedProject, ProjectConfig, parse_project};
use sluice_lake::Lake;
use sluice_store::Store;

use crate::output::UserError;

/// Name of the project file.
pub const PROJECT_FILE: &str = "sluice.yml";

/// A loaded project.
pub struct Project {
    /// The project folder (absolute).
    pub dir: PathBuf,
    /// The parsed `sluice.yml`.
    pub loaded: LoadedProject,
    /// The project's lake.
    pub lake: Lake,
}

impl Project {
    /// Find and load the project: `dir` if given, else the nearest folder
    /// upward from the current one with a `sluice.yml`.
    pub fn load(dir: Option<&Path>) -> Result<Project> {
        let dir = match dir {
            Some(d) => {
                let d = d.canonicalize().map_err(|e| {
                    UserError::error(
                        format!("Project folder `{}` is not usable: {e}", d.display()),
                        None,
                    )
                })?;
                if !project_file(&d).exists() {
                    return Err(UserError::error(
                        format!("`{}` has no `{PROJECT_FILE}`", d.display()),
                        Some(format!("create one with `sluice init {}`", d.display())),
                    ));
                }
                d
            }
            None => find_project_dir()?,
        };
        let file = project_file(&dir);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("Cannot read `{}`", file.display()))?;
        let dotenv = std::fs::read_to_string(dir.join(".env")).ok();
        let shown = file
            .strip_prefix(std::env::current_dir().unwrap_or_default())
            .unwrap_or(&file)
            .to_path_buf();
        let loaded = parse_project(&text, &shown, dotenv.as_deref(), |k| std::env::var(k).ok())?;
        crate::output::set_secrets(loaded.secrets.clone());
        let lake = Lake::from_config(
            &dir,
            loaded.config.lake.url.as_deref(),
            loaded.config.lake.options.clone(),
        )?;
        Ok(Project { dir, loaded, lake })
    }

    /// The lake of the project (see [`Project::load`]); in a dbt project
    /// folder, the lake `sluice transform` writes (see [`transform_home`]):
    /// the owning Sluice project's, else `<folder>/.sluice/lake`.
    pub fn lake_of(dir: Option<&Path>) -> Result<Lake> {
        let folder = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().context("Cannot read the current folder")?,
        };
        if !project_file(&folder).exists() && folder.join("dbt_project.yml").exists() {
            return Ok(match transform_home(Some(&folder))?.sluice {
                Some(p) => p.lake,
                None => Lake::from_config(&folder, None, [])?,
            });
        }
        Ok(Project::load(dir)?.lake)
    }

    /// The configuration.
    pub fn config(&self) -> &ProjectConfig {
        &self.loaded.config
    }

    /// The project's `.sluice/` folder.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".sluice")
    }

    /// Open the store (`.sluice/sluice.db`).
    pub fn store(&self) -> Result<Store> {
        Ok(Store::open(&self.state_dir().join("sluice.db"))?)
    }

    /// Take the project's run lock, so two loads never write the same tables
    /// at once. Released when the returned file is dropped.
    pub fn lock(&self) -> Result<File> {
        std::fs::create_dir_all(self.state_dir())?;
        let path = self.state_dir().join("run.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("Cannot open `{}`", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(UserError::error(
                "Another sluice load is running in this project",
                Some(
                    "wait for it to finish; two loads must not write the same tables at once"
                        .to_string(),
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("Cannot lock `{}`", path.display()))
            }
        }
    }

    /// The project's name: `name:` of sluice.yml, else its folder's.
    pub fn name(&self) -> String {
        self.config().name.clone().unwrap_or_else(|| {
            self.dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "sluice".to_string())
        })
    }

    /// `text` with every secret from the environment replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.loaded.redact(text)
    }
}

/// A dbt project folder and the Sluice project that owns it, if any.
pub struct TransformHome {
    /// The folder holding `dbt_project.yml`.
    pub dbt_dir: PathBuf,
    /// The Sluice project: its lake is the lake engine's, and its
    /// `transform:` section (when present) chooses the engine.
    pub sluice: Option<Project>,
}

/// Where `sluice transform` works when started at `dir` (default: the
/// current folder), first match wins:
/// 1. `dir` has a `sluice.yml`: the dbt project is its `transform.project_dir`
///    (default `dir` itself);
/// 2. a `sluice.yml` in a folder above `dir` whose `transform.project_dir`
///    is `dir`;
/// 3. `dir` alone.
pub fn transform_home(dir: Option<&Path>) -> Result<TransformHome> {
    let start = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir().context("Cannot read the current folder")?,
    };
    let start = start.canonicalize().unwrap_or(start);
    if project_file(&start).exists() {
        let project = Project::load(Some(&start))?;
        let dbt_dir = match project
            .config()
            .transform
            .as_ref()
            .and_then(|t| t.project_dir.as_deref())
        {
            Some(d) => project.dir.join(d),
            None => start,
        };
        return Ok(TransformHome {
            dbt_dir,
            sluice: Some(project),
        });
    }
    for above in start.ancestors().skip(1) {
        let file = project_file(above);
        // Only a file that names a transform project can own this folder.
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if !text.contains("transform:") {
            continue;
        }
        let project = Project::load(Some(above))?;
        let points_here = project
            .config()
            .transform
            .as_ref()
            .and_then(|t| t.project_dir.as_deref())
            .and_then(|d| project.dir.join(d).canonicalize().ok())
            .is_some_and(|d| d == start);
        if points_here {
            return Ok(TransformHome {
                dbt_dir: start,
                sluice: Some(project),
            });
        }
    }
    Ok(TransformHome {
        dbt_dir: start,
        sluice: None,
    })
}

fn project_file(dir: &Path) -> PathBuf {
    dir.join(PROJECT_FILE)
}

fn find_project_dir() -> Result<PathBuf> {
    let start = std::env::current_dir().context("Cannot read the current folder")?;
    let mut dir = start.as_path();
    loop {
        if project_file(dir).exists() {
            return Ok(dir.to_path_buf());
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => {
                return Err(UserError::error(
                    format!("No `{PROJECT_FILE}` in `{}` or any folder above it", start.display()),
                    Some("run `sluice init` to create a project here, `sluice quickstart` for a demo, or pass `--project-dir DIR`".to_string()),
                ));
            }
        }
    }
}
