//! Singer plugins: where their executables are, installing and locking them.
//!
//! A plugin with a pip requirement lives in its own venv,
//! `.sluice/plugins/<name>/venv/`, and runs as
//! `.sluice/plugins/<name>/venv/bin/<name>`; what the venv holds is pinned in
//! the project's `sluice.lock` ([`lock`]) and built by [`install`]. A plugin
//! with `executable:` is that file (a path relative to the project) or that
//! name on `PATH`, and is never installed.
//!
//! ```text
//!  executable(spec) ──► executable: ? ──► path / PATH lookup
//!        │ pip
//!        ▼
//!  ensure(name, requirement) ── venv matches sluice.lock ─────────────► .sluice/plugins/<name>/venv/bin/<name>
//!        │ lock entry for this requirement, venv missing or different ─► install -r frozen set
//!        │ no lock entry, or another requirement ───────────────────────► install REQ, write sluice.lock
//! ```
//!
//! Installs take `.sluice/plugins/.lock`, so two processes never build the
//! same venv or write the lock file at once.
//!
//! A `pip:` may hold a secret (`git+https://${GH_TOKEN}@github.com/…`,
//! interpolated before it gets here). `sluice.lock` is committed, so the
//! requirement is stored and compared redacted (`***` for each value from
//! the environment or `.env`), and so are the frozen lines, `installed.json`,
//! the install log and what is printed. A frozen line that held a secret
//! cannot be installed from the lock alone: an install from the lock takes
//! that package from the `pip:` requirement again, every other package as
//! pinned ([`install`]).

pub mod install;
pub mod lock;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use sluice_core::config::{DestinationConfig, PluginSpec, ProjectConfig, SourceConfig};

use crate::output::{Reporter, UserError};
use crate::progress::Spinner;
use crate::project::Project;
use install::InstallFrom;
use lock::{Lock, LockedPlugin};

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// Where [`executable`] reports an install it has to do (its one
/// `installing plugin …` line and the spinner); set once by the CLI.
pub fn set_reporter(reporter: &Reporter) {
    let _ = REPORTER.set(reporter.clone());
}

/// The Python that creates plugin venvs: `SLUICE_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The folder of everything Sluice keeps for a plugin.
pub fn plugin_dir(project_dir: &Path, name: &str) -> PathBuf {
    project_dir.join(".sluice").join("plugins").join(name)
}

/// The folder of a plugin's venv.
pub fn venv_dir(project_dir: &Path, name: &str) -> PathBuf {
    plugin_dir(project_dir, name).join("venv")
}

/// The executable a pip-installed plugin runs as.
pub fn venv_exe(project_dir: &Path, name: &str) -> PathBuf {
    venv_dir(project_dir, name).join("bin").join(name)
}

/// What the plugin's venv holds (`installed.json`, the venv's own copy of
/// its lock entry).
pub fn record_path(project_dir: &Path, name: &str) -> PathBuf {
    plugin_dir(project_dir, name).join("installed.json")
}

/// pip's output of the plugin's last install.
pub fn install_log(project_dir: &Path, name: &str) -> PathBuf {
    project_dir
        .join(".sluice")
        .join("logs")
        .join(format!("plugin-install-{name}.log"))
}

/// What the plugin's venv holds, when it has been installed by Sluice.
pub fn read_record(project_dir: &Path, name: &str) -> Option<LockedPlugin> {
    let text = std::fs::read_to_string(record_path(project_dir, name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The executable of `spec`, installing the plugin first when it is pip
/// installed and missing or different from `sluice.lock`.
pub fn executable(project: &Project, spec: &PluginSpec) -> Result<PathBuf> {
    if let Some(exe) = &spec.executable {
        return find_executable(&project.dir, exe).ok_or_else(|| {
            UserError::error(
                format!("plugin `{}`: executable `{exe}` not found", spec.name),
                Some(if exe.contains('/') {
                    "give a path relative to the project folder, or an absolute one".to_string()
                } else {
                    format!(
                        "put `{exe}` on PATH, give its path, or remove `executable:` to install the plugin with pip"
                    )
                }),
            )
        });
    }
    let requirement = spec.pip.clone().unwrap_or_else(|| spec.name.clone());
    Ok(ensure(
        &project.dir,
        &spec.name,
        &requirement,
        false,
        REPORTER.get(),
        &|t: &str| project.redact(t),
    )?
    .exe)
}

/// How [`ensure`] got the plugin's venv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// It was installed and matched the lock already.
    Present,
    /// It was installed from the frozen set in `sluice.lock`.
    FromLock,
    /// Its requirement was resolved by pip and the result locked.
    Resolved,
    /// It was installed (by this requirement) but not locked; now it is.
    Locked,
}

/// A plugin that is ready to run.
#[derive(Debug, Clone)]
pub struct Ensured {
    /// Its executable.
    pub exe: PathBuf,
    /// What its venv holds (= its entry in `sluice.lock`).
    pub plugin: LockedPlugin,
    /// What had to be done.
    pub how: How,
}

/// Make sure the venv of plugin `name` holds `requirement` as locked, and
/// lock it when it is not: reuse a matching venv, reproduce the lock's
/// frozen set when the lock has this requirement, else resolve the
/// requirement and (re-)lock. `force` resolves and re-locks in any case.
/// `redact` hides the project's secrets: the requirement is locked,
/// compared, logged and shown as `redact` makes it.
pub fn ensure(
    project_dir: &Path,
    name: &str,
    requirement: &str,
    force: bool,
    reporter: Option<&Reporter>,
    redact: &(dyn Fn(&str) -> String + Sync),
) -> Result<Ensured> {
    let shown = redact(requirement);
    if !force && let Some(done) = present(project_dir, name, &shown)? {
        return Ok(done);
    }
    let _guard = install_lock(project_dir)?;
    // Another process may have installed it while this one waited.
    if !force && let Some(done) = present(project_dir, name, &shown)? {
        return Ok(done);
    }
    let mut lock = Lock::read(project_dir)?;
    let exe = venv_exe(project_dir, name);
    let locked = lock
        .plugins
        .get(name)
        .filter(|l| l.pip == shown && !force)
        .cloned();
    if let Some(locked) = locked {
        let plugin = with_spinner(reporter, name, &shown, |spinner| {
            install::install(
                project_dir,
                name,
                InstallFrom::Lock {
                    locked: &locked,
                    requirement,
                },
                spinner,
                redact,
            )
        })?;
        return Ok(Ensured {
            exe,
            plugin,
            how: How::FromLock,
        });
    }
    let record = read_record(project_dir, name).filter(|r| r.pip == shown && !force);
    let (plugin, how) = match record {
        Some(record) if exe.is_file() => (record, How::Locked),
        _ => {
            let plugin = with_spinner(reporter, name, &shown, |spinner| {
                install::install(
                    project_dir,
                    name,
                    InstallFrom::Requirement(requirement),
                    spinner,
                    redact,
                )
            })?;
            (plugin, How::Resolved)
        }
    };
    lock.plugins.insert(name.to_string(), plugin.clone());
    lock.write(project_dir)?;
    Ok(Ensured { exe, plugin, how })
}

/// The plugin, when its venv is there and matches its lock entry for
/// `requirement` (redacted).
fn present(project_dir: &Path, name: &str, requirement: &str) -> Result<Option<Ensured>> {
    let exe = venv_exe(project_dir, name);
    if !exe.is_file() {
        return Ok(None);
    }
    let lock = Lock::read(project_dir)?;
    let (Some(locked), Some(record)) = (lock.plugins.get(name), read_record(project_dir, name))
    else {
        return Ok(None);
    };
    let same = locked.pip == requirement
        && record.pip == requirement
        && record.requirements == locked.requirements;
    Ok(same.then_some(Ensured {
        exe,
        plugin: record,
        how: How::Present,
    }))
}

/// Run an install under the one `installing plugin NAME (SPEC)…` line and a
/// spinner; `requirement` is shown as it is (redacted by the caller).
fn with_spinner<T>(
    reporter: Option<&Reporter>,
    name: &str,
    requirement: &str,
    f: impl FnOnce(&Spinner) -> Result<T>,
) -> Result<T> {
    let line = format!("installing plugin {name} ({requirement})…");
    let spinner = match reporter {
        Some(r) => {
            r.info(&line);
            Spinner::new(r, &format!("plugin {name}"))
        }
        None => {
            tracing::info!("{line}");
            Spinner::hidden()
        }
    };
    f(&spinner)
}

/// Uninstall plugin `name`: its folder under `.sluice/plugins/` and its
/// entry in `sluice.lock`. Returns (whether a folder, whether a lock entry)
/// was removed.
pub fn remove(project_dir: &Path, name: &str) -> Result<(bool, bool)> {
    let _guard = install_lock(project_dir)?;
    let dir = plugin_dir(project_dir, name);
    let had_dir = dir.exists();
    install::remove_dir(&dir)?;
    let mut lock = Lock::read(project_dir)?;
    let had_entry = lock.plugins.remove(name).is_some();
    if had_entry {
        lock.write(project_dir)?;
    }
    Ok((had_dir, had_entry))
}

/// Take `.sluice/plugins/.lock` (released when the file is dropped).
fn install_lock(project_dir: &Path) -> Result<File> {
    let dir = project_dir.join(".sluice").join("plugins");
    std::fs::create_dir_all(&dir).with_context(|| format!("Cannot create `{}`", dir.display()))?;
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("Cannot open `{}`", path.display()))?;
    file.lock()
        .with_context(|| format!("Cannot lock `{}`", path.display()))?;
    Ok(file)
}

/// Names of the plugins with a folder under `.sluice/plugins/`.
pub fn installed_names(project_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(project_dir.join(".sluice").join("plugins"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Every plugin `sluice.yml` runs, with who runs it (`source csvtap`,
/// `destination jsonl`), in file order.
pub fn configured(config: &ProjectConfig) -> Vec<(PluginSpec, String)> {
    let sources = config.sources.0.iter().filter_map(|(name, s)| match s {
        SourceConfig::Singer(tap) => Some((tap.plugin_spec(), format!("source {name}"))),
        _ => None,
    });
    let destinations = config
        .destinations
        .0
        .iter()
        .filter_map(|(name, d)| match d {
            DestinationConfig::Singer(target) => {
                Some((target.plugin_spec(), format!("destination {name}")))
            }
            _ => None,
        });
    sources.chain(destinations).collect()
}

/// `exe` as a path (when it has a `/`, relative to the project) or a name
/// on `PATH`.
pub fn find_executable(project_dir: &Path, exe: &str) -> Option<PathBuf> {
    if exe.contains('/') {
        let p = project_dir.join(exe);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(exe))
        .find(|p| p.is_file())
}
