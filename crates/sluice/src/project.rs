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
    /// folder without `sluice.yml`, the lake `sluice transform` writes:
    /// `<folder>/.sluice/lake`.
    pub fn lake_of(dir: Option<&Path>) -> Result<Lake> {
        let folder = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_dir().context("Cannot read the current folder")?,
        };
        if !project_file(&folder).exists() && folder.join("dbt_project.yml").exists() {
            return Ok(Lake::from_config(&folder, None, [])?);
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

    /// `text` with every secret from the environment replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.loaded.redact(text)
    }
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
