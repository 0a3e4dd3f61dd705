//! `sluice plugin add | list | remove`: the project's Singer taps and targets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use sluice_core::config::{PluginSpec, check_plugin};

use crate::cli::PluginAction;
use crate::output::{Reporter, UserError, table};
use crate::plugins::lock::{LOCK_FILE, Lock, LockedPlugin};
use crate::plugins::{self, How, configured, find_executable, read_record, venv_exe};
use crate::project::Project;

/// Run a `sluice plugin` action.
pub fn plugin(dir: Option<&Path>, action: PluginAction, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    match action {
        PluginAction::Add { name, pip, force } => add(&project, &name, pip, force, reporter),
        PluginAction::List => list(&project, reporter),
        PluginAction::Remove { name } => remove(&project, &name, reporter),
    }
}

fn add(
    project: &Project,
    name: &str,
    pip: Option<String>,
    force: bool,
    reporter: &Reporter,
) -> Result<ExitCode> {
    check_plugin("`sluice plugin add`", name).map_err(|m| {
        UserError::error(
            m,
            Some("a plugin's name is the executable its package installs, e.g. `tap-csv`".into()),
        )
    })?;
    let uses: Vec<(PluginSpec, String)> = configured(project.config())
        .into_iter()
        .filter(|(spec, _)| spec.name == name)
        .collect();
    let requirement = requirement_for(project, name, pip, &uses, reporter)?;
    let done = plugins::ensure(
        &project.dir,
        name,
        &requirement,
        force,
        Some(reporter),
        &|t: &str| project.redact(t),
    )?;
    let p = &done.plugin;
    if reporter.json() {
        let action = match done.how {
            How::Present => "present",
            How::FromLock => "installed_from_lock",
            How::Resolved => "installed",
            How::Locked => "locked",
        };
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "name": name,
                "action": action,
                "pip": p.pip,
                "distribution": p.distribution,
                "version": p.version,
                "executable": done.exe,
                "requirements": p.requirements,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let packages = p.requirements.len();
    let line = match done.how {
        How::Present => format!(
            "Plugin {name} {} is installed and matches {LOCK_FILE}; `--force` resolves `{}` again",
            p.version, p.pip
        ),
        How::FromLock => format!(
            "Installed plugin {name} {} from {LOCK_FILE} ({packages} packages)",
            p.version
        ),
        How::Resolved => format!(
            "Installed plugin {name} {} (pip: {}); locked {packages} packages in {LOCK_FILE}",
            p.version, p.pip
        ),
        How::Locked => format!(
            "Locked plugin {name} {} in {LOCK_FILE} ({packages} packages, already installed)",
            p.version
        ),
    };
    crate::outln!("{line}");
    crate::outln!("  executable: {}", shown(&project.dir, &done.exe));
    Ok(ExitCode::SUCCESS)
}

/// The requirement `plugin add` installs: `--pip`, else what `sluice.yml`
/// says, else what the lock says, else the plugin's name.
fn requirement_for(
    project: &Project,
    name: &str,
    pip: Option<String>,
    uses: &[(PluginSpec, String)],
    reporter: &Reporter,
) -> Result<String> {
    let mut pips: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (spec, user) in uses {
        if spec.executable.is_none()
            && let Some(p) = &spec.pip
        {
            pips.entry(p.as_str()).or_default().push(user.as_str());
        }
    }
    if let Some(pip) = pip {
        for (other, users) in &pips {
            if *other != pip {
                reporter.warn(&format!(
                    "{} in sluice.yml installs `{name}` with pip `{}`; the next run will reinstall it from that",
                    users.join(", "),
                    project.redact(other)
                ));
            }
        }
        return Ok(pip);
    }
    if pips.len() > 1 {
        let list: Vec<String> = pips
            .iter()
            .map(|(p, users)| format!("`{p}` ({})", users.join(", ")))
            .collect();
        return Err(UserError::error(
            format!(
                "plugin `{name}` has different pip requirements in sluice.yml: {}",
                list.join(", ")
            ),
            Some("a plugin has one venv: give every source and destination that runs it the same `pip:`".into()),
        ));
    }
    if let Some((pip, _)) = pips.into_iter().next() {
        return Ok(pip.to_string());
    }
    if let Some((spec, user)) = uses.iter().find(|(s, _)| s.executable.is_some()) {
        return Err(UserError::error(
            format!(
                "plugin `{name}` runs as `executable: {}` ({user}); there is nothing to install",
                spec.executable.as_deref().unwrap_or_default()
            ),
            Some(format!(
                "give `--pip SPEC` to install it into a venv anyway, or remove `executable:` from {user}"
            )),
        ));
    }
    let lock = Lock::read(&project.dir)?;
    match lock.plugins.get(name).map(|l| l.pip.clone()) {
        Some(pip) if pip.contains("***") => Err(UserError::error(
            format!(
                "plugin `{name}`: {LOCK_FILE} has its pip requirement only with a secret hidden (`{pip}`), which cannot be installed"
            ),
            Some(format!(
                "give the requirement: `sluice plugin add {name} --pip SPEC`, or a `pip:` in sluice.yml (with `${{VAR}}` for the secret)"
            )),
        )),
        Some(pip) => Ok(pip),
        None => Ok(name.to_string()),
    }
}

fn remove(project: &Project, name: &str, reporter: &Reporter) -> Result<ExitCode> {
    let (had_dir, had_entry) = plugins::remove(&project.dir, name)?;
    if !had_dir && !had_entry {
        return Err(UserError::error(
            format!("plugin `{name}` is neither installed nor in {LOCK_FILE}"),
            Some("`sluice plugin list` shows the project's plugins".into()),
        ));
    }
    let users: Vec<String> = configured(project.config())
        .into_iter()
        .filter(|(spec, _)| spec.name == name && spec.executable.is_none())
        .map(|(_, user)| user)
        .collect();
    if !users.is_empty() {
        reporter.warn(&format!(
            "{} in sluice.yml still runs `{name}`; the next run installs it again",
            users.join(", ")
        ));
    }
    if reporter.json() {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "name": name,
                "removed_venv": had_dir,
                "removed_lock_entry": had_entry,
            }))?
        );
    } else {
        let what = match (had_dir, had_entry) {
            (true, true) => format!("its venv and its entry in {LOCK_FILE}"),
            (true, false) => "its venv".to_string(),
            _ => format!("its entry in {LOCK_FILE}"),
        };
        crate::outln!("Removed plugin {name}: {what}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One row of `sluice plugin list`.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    /// `pip` or `executable`.
    kind: &'static str,
    pip: Option<String>,
    distribution: Option<String>,
    version: Option<String>,
    locked: bool,
    installed: bool,
    /// Installed, but the next run reinstalls it (another requirement in
    /// sluice.yml, or another frozen set in the lock).
    outdated: bool,
    executable: Option<String>,
    used_by: Vec<String>,
}

fn list(project: &Project, reporter: &Reporter) -> Result<ExitCode> {
    let dir = &project.dir;
    let lock = Lock::read(dir)?;
    let mut specs: BTreeMap<String, (Option<PluginSpec>, Vec<String>)> = BTreeMap::new();
    for (spec, user) in configured(project.config()) {
        let entry = specs.entry(spec.name.clone()).or_default();
        entry.0.get_or_insert(spec);
        entry.1.push(user);
    }
    for name in lock
        .plugins
        .keys()
        .cloned()
        .chain(plugins::installed_names(dir))
    {
        specs.entry(name).or_default();
    }
    let rows: Vec<Row> = specs
        .into_iter()
        .map(|(name, (spec, used_by))| match spec {
            Some(PluginSpec {
                executable: Some(exe),
                ..
            }) => Row {
                kind: "executable",
                pip: None,
                distribution: None,
                version: None,
                locked: false,
                installed: find_executable(dir, &exe).is_some(),
                outdated: false,
                executable: Some(
                    find_executable(dir, &exe)
                        .map(|p| p.display().to_string())
                        .unwrap_or(exe),
                ),
                used_by,
                name,
            },
            spec => {
                let locked = lock.plugins.get(&name);
                let record = read_record(dir, &name);
                // Locked and recorded redacted: compared and shown so.
                let wanted = spec
                    .and_then(|s| s.pip)
                    .map(|p| project.redact(&p))
                    .or_else(|| locked.map(|l| l.pip.clone()))
                    .or_else(|| record.as_ref().map(|r| r.pip.clone()));
                pip_row(dir, name, wanted, locked, record, used_by)
            }
        })
        .collect();

    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        crate::outln!(
            "No plugins yet: `sluice plugin add NAME` installs one, and every `type: singer` source or destination in sluice.yml lists its own."
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "plugin",
        "pip",
        "version",
        "installed",
        "executable",
        "used by",
    ]);
    for r in &rows {
        let installed = match (r.installed, r.outdated, r.locked || r.kind == "executable") {
            (false, _, _) => "no",
            (true, true, _) => "outdated",
            (true, false, false) => "yes (not locked)",
            (true, false, true) => "yes",
        };
        t.add_row(vec![
            r.name.clone(),
            r.pip.clone().unwrap_or_else(|| "-".into()),
            r.version.clone().unwrap_or_else(|| "-".into()),
            installed.to_string(),
            r.executable
                .as_deref()
                .map(|e| shown(dir, Path::new(e)))
                .unwrap_or_else(|| "-".into()),
            if r.used_by.is_empty() {
                "-".to_string()
            } else {
                r.used_by.join(", ")
            },
        ]);
    }
    crate::outln!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn pip_row(
    dir: &Path,
    name: String,
    wanted: Option<String>,
    locked: Option<&LockedPlugin>,
    record: Option<LockedPlugin>,
    used_by: Vec<String>,
) -> Row {
    let exe = venv_exe(dir, &name);
    let installed = exe.is_file() && record.is_some();
    let wanted_str = wanted.as_deref();
    let lock_matches = locked.filter(|l| Some(l.pip.as_str()) == wanted_str);
    let outdated = installed
        && record.as_ref().is_some_and(|r| {
            Some(r.pip.as_str()) != wanted_str
                || lock_matches.is_some_and(|l| l.requirements != r.requirements)
        });
    let facts = if installed {
        record.as_ref()
    } else {
        lock_matches
    };
    Row {
        kind: "pip",
        pip: wanted,
        distribution: facts.map(|f| f.distribution.clone()),
        version: facts.map(|f| f.version.clone()),
        locked: lock_matches.is_some(),
        installed,
        outdated,
        executable: Some(exe.display().to_string()),
        used_by,
        name,
    }
}

/// A path relative to the project folder when it is inside it.
fn shown(project_dir: &Path, path: &Path) -> String {
    path.strip_prefix(project_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}
