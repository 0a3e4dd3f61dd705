//! Building a plugin's venv: `python -m venv`, `pip install`, `pip freeze`.
//!
//! ```text
//!  requirement ──► pip install REQ --report ─┐
//!                                            ├─► pip freeze ─► LockedPlugin ─► installed.json
//!  sluice.lock ──► pip install -r frozen ────┘                 (and sluice.lock, by the caller)
//! ```
//!
//! Every install starts from an empty venv, so the freeze is exactly what
//! the plugin needs. All of pip's output goes to
//! `.sluice/logs/plugin-install-<name>.log`; a failure quotes its last lines
//! and leaves no venv behind.
//!
//! The project's secrets never reach the log, the freeze or the record: the
//! requirement, every line of pip's output and every frozen line go
//! through the redactor (`***` for a secret). A frozen line with `***` in it
//! cannot be installed as it is; installing from the lock then gives pip
//! the real requirement in its place (re-resolved, the other packages
//! pinned).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::lock::{LOCK_FILE, LockedPlugin, frozen_version, normalize, write_atomic};
use super::{install_log, plugin_dir, record_path, venv_dir, venv_exe};
use crate::output::UserError;
use crate::progress::Spinner;

/// What to fill a fresh venv from.
#[derive(Debug, Clone, Copy)]
pub enum InstallFrom<'a> {
    /// Resolve this pip requirement now (and lock the result).
    Requirement(&'a str),
    /// Reproduce a locked set of packages.
    Lock {
        /// The lock entry.
        locked: &'a LockedPlugin,
        /// The requirement as `sluice.yml` has it, secrets included: what
        /// pip gets for the frozen lines that were redacted.
        requirement: &'a str,
    },
}

impl InstallFrom<'_> {
    fn requirement(&self) -> &str {
        match self {
            InstallFrom::Requirement(r) => r,
            InstallFrom::Lock { requirement, .. } => requirement,
        }
    }
}

/// What [`LoadedProject::redact`](sluice_core::config::LoadedProject::redact)
/// puts in place of a secret.
const REDACTED: &str = "***";

/// Lines of pip's output an error quotes.
const TAIL_LINES: usize = 12;

/// Build `.sluice/plugins/<name>/venv` from scratch and record what it
/// holds in `installed.json`. Any earlier venv of the plugin is removed
/// first; on failure nothing of the plugin is left. `redact` hides secrets
/// in everything logged, shown or recorded.
pub fn install(
    project_dir: &Path,
    name: &str,
    from: InstallFrom<'_>,
    spinner: &Spinner,
    redact: &(dyn Fn(&str) -> String + Sync),
) -> Result<LockedPlugin> {
    let dir = plugin_dir(project_dir, name);
    remove_dir(&dir)?;
    let result = build(project_dir, name, from, spinner, redact);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn build(
    project_dir: &Path,
    name: &str,
    from: InstallFrom<'_>,
    spinner: &Spinner,
    redact: &(dyn Fn(&str) -> String + Sync),
) -> Result<LockedPlugin> {
    let shown_req = redact(from.requirement());
    let dir = plugin_dir(project_dir, name);
    let venv = venv_dir(project_dir, name);
    std::fs::create_dir_all(&dir).with_context(|| format!("Cannot create `{}`", dir.display()))?;
    let log_path = install_log(project_dir, name);
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("Cannot create `{}`", parent.display()))?;
    }
    let log = File::create(&log_path)
        .with_context(|| format!("Cannot write `{}`", log_path.display()))?;
    let shown_log = log_path.strip_prefix(project_dir).unwrap_or(&log_path);
    let hint = match from {
        InstallFrom::Requirement(_) => format!(
            "check the pip requirement `{shown_req}` (name, version, extras) and that PyPI is reachable; pip's whole output is in {}",
            shown_log.display()
        ),
        InstallFrom::Lock { locked, .. } => format!(
            "the packages {LOCK_FILE} pins for `{name}` do not install here; `sluice plugin add {name} --force` resolves `{}` again and re-locks (pip's whole output is in {})",
            locked.pip,
            shown_log.display()
        ),
    };
    let step = Step {
        name,
        hint: &hint,
        log: &log,
        log_path: &log_path,
        project_dir,
        redact,
    };

    let python = super::python();
    spinner.status("creating the venv");
    step.run(
        Command::new(&python).args(["-m", "venv"]).arg(&venv),
        &format!("{python} -m venv {}", venv.display()),
        &mut |_| {},
    )?;

    let pip = venv.join("bin").join("pip");
    let report = dir.join("install-report.json");
    let mut cmd = Command::new(&pip);
    cmd.args([
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
    ]);
    let what = match from {
        InstallFrom::Requirement(req) => {
            cmd.arg("--report").arg(&report).arg(req);
            format!("pip install {shown_req}")
        }
        InstallFrom::Lock {
            locked,
            requirement,
        } => {
            // Lines that held a secret were locked redacted and cannot be
            // installed as they are: pip gets the requirement instead.
            let (redacted, pinned): (Vec<&String>, Vec<&String>) = locked
                .requirements
                .iter()
                .partition(|l| l.contains(REDACTED));
            let frozen = dir.join("requirements.txt");
            let mut text = pinned
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            text.push('\n');
            write_atomic(&frozen, text.as_bytes())?;
            cmd.arg("-r").arg(&frozen);
            let shown = frozen.strip_prefix(project_dir).unwrap_or(&frozen);
            if redacted.is_empty() {
                format!("pip install -r {}", shown.display())
            } else {
                cmd.arg(requirement);
                format!("pip install -r {} {shown_req}", shown.display())
            }
        }
    };
    spinner.status(&what);
    step.run(&mut cmd, &what, &mut |line| {
        if let Some(status) = pip_status(line) {
            spinner.status(&status);
        }
    })?;

    spinner.status("pip freeze");
    let mut requirements = Vec::new();
    step.run(
        Command::new(&pip).args(["freeze", "--all", "--disable-pip-version-check"]),
        "pip freeze",
        &mut |line| {
            let line = line.trim();
            let is_pip = line
                .split_once("==")
                .is_some_and(|(n, _)| normalize(n) == "pip");
            if !line.is_empty() && !line.starts_with('#') && !is_pip {
                requirements.push(line.to_string());
            }
        },
    )?;

    let distribution = match from {
        InstallFrom::Requirement(req) => requested_distribution(&report)
            .or_else(|| super::lock::requirement_name(req))
            .ok_or_else(|| {
                UserError::error(
                    format!(
                        "plugin `{name}`: cannot tell which distribution `pip install {shown_req}` installed"
                    ),
                    Some(format!(
                        "pip 22.2 or newer writes an install report; see {}",
                        log_path.display()
                    )),
                )
            })?,
        InstallFrom::Lock { locked, .. } => locked.distribution.clone(),
    };
    let _ = std::fs::remove_file(&report);
    let version = frozen_version(&requirements, &distribution).unwrap_or_else(|| "?".into());

    let exe = venv_exe(project_dir, name);
    if !exe.is_file() {
        return Err(wrong_name(name, &shown_req, &venv));
    }
    let installed = match from {
        InstallFrom::Requirement(_) => LockedPlugin {
            pip: shown_req.clone(),
            distribution,
            version,
            python: venv_python_version(&venv),
            requirements,
        },
        // The venv is built from this lock entry: record the entry itself, so
        // that it counts as matching the lock even where pip had to add or
        // could not keep a package (another Python, another platform).
        InstallFrom::Lock { locked, .. } => {
            warn_on_drift(name, &locked.requirements, &requirements);
            locked.clone()
        }
    };
    let mut json = serde_json::to_string_pretty(&installed)?;
    json.push('\n');
    write_atomic(&record_path(project_dir, name), json.as_bytes())?;
    Ok(installed)
}

/// One logged command of an install.
struct Step<'a> {
    name: &'a str,
    hint: &'a str,
    log: &'a File,
    log_path: &'a Path,
    project_dir: &'a Path,
    /// Hides secrets in what is logged and passed on.
    redact: &'a (dyn Fn(&str) -> String + Sync),
}

impl Step<'_> {
    /// Run `cmd` (`what`, already redacted, names it): stdout line by line
    /// to the log and `on_line`, stderr to the log, every line redacted. A
    /// failure quotes the log's last lines.
    fn run(&self, cmd: &mut Command, what: &str, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        let mut log = self.log;
        let start = log.stream_position().unwrap_or(0);
        let _ = writeln!(log, "$ {what}");
        let mut child = cmd
            .current_dir(self.project_dir)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                UserError::error(
                    format!("plugin `{}`: cannot run `{what}`: {e}", self.name),
                    Some(
                        "plugins need Python 3 with the venv module (set SLUICE_PYTHON to pick the interpreter)"
                            .to_string(),
                    ),
                )
            })?;
        let stderr = child.stderr.take();
        std::thread::scope(|scope| {
            if let Some(err) = stderr {
                scope.spawn(move || {
                    let mut log = self.log;
                    for_each_line(err, &mut |line| {
                        let _ = writeln!(log, "{}", (self.redact)(line));
                    });
                });
            }
            if let Some(out) = child.stdout.take() {
                for_each_line(out, &mut |line| {
                    let line = (self.redact)(line);
                    let _ = writeln!(log, "{line}");
                    on_line(&line);
                });
            }
        });
        let status = child
            .wait()
            .with_context(|| format!("`{what}` did not finish"))?;
        if status.success() {
            return Ok(());
        }
        let code = status
            .code()
            .map(|c| format!("exit code {c}"))
            .unwrap_or_else(|| "killed by a signal".to_string());
        let tail = self.tail(start);
        Err(UserError::error(
            format!(
                "plugin `{}`: `{what}` failed ({code}):\n    {}",
                self.name,
                tail.join("\n    ")
            ),
            Some(self.hint.to_string()),
        ))
    }

    /// The last lines the log got since `start`.
    fn tail(&self, start: u64) -> Vec<String> {
        let mut text = String::new();
        let read = File::open(self.log_path).and_then(|mut f| {
            f.seek(SeekFrom::Start(start))?;
            f.read_to_string(&mut text)
        });
        if read.is_err() {
            return Vec::new();
        }
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("$ "))
            .map(str::to_string)
            .collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec()
    }
}

/// Call `f` with each line of `input` (lossy UTF-8, without the line end),
/// to its end.
fn for_each_line(input: impl Read, f: &mut dyn FnMut(&str)) {
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        f(line.trim_end_matches(['\n', '\r']));
    }
}

/// Warn when a venv built from the lock holds other packages than the lock
/// lists.
fn warn_on_drift(name: &str, locked: &[String], installed: &[String]) {
    let extra: Vec<&str> = installed
        .iter()
        .filter(|r| !locked.contains(r))
        .map(String::as_str)
        .collect();
    let missing: Vec<&str> = locked
        .iter()
        .filter(|r| !installed.contains(r))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() || !missing.is_empty() {
        tracing::warn!(
            "plugin `{name}`: its venv differs from {LOCK_FILE} (installed: {}; not installed: {}); `sluice plugin add {name} --force` re-locks it",
            if extra.is_empty() {
                "-".to_string()
            } else {
                extra.join(", ")
            },
            if missing.is_empty() {
                "-".to_string()
            } else {
                missing.join(", ")
            },
        );
    }
}

/// A short status for the spinner from a line of pip's output: which
/// package it collects, how many it installs.
fn pip_status(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix("Collecting ") {
        let package = rest.split(" (from").next().unwrap_or(rest).trim();
        let short: String = package.chars().take(60).collect();
        return Some(format!("collecting {short}"));
    }
    let packages = line.strip_prefix("Installing collected packages: ")?;
    Some(format!(
        "installing {} packages",
        packages.split(',').filter(|p| !p.trim().is_empty()).count()
    ))
}

/// The distribution pip's `--report` marks as requested.
fn requested_distribution(report: &Path) -> Option<String> {
    let text = std::fs::read_to_string(report).ok()?;
    let report: serde_json::Value = serde_json::from_str(&text).ok()?;
    report["install"].as_array()?.iter().find_map(|item| {
        (item["requested"] == true)
            .then(|| item["metadata"]["name"].as_str().map(str::to_string))
            .flatten()
    })
}

/// The `version` line of the venv's `pyvenv.cfg`.
fn venv_python_version(venv: &Path) -> Option<String> {
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    cfg.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_string())
    })
}

/// The error for a package that installs no executable named after the
/// plugin, naming the ones it does install.
fn wrong_name(name: &str, requirement: &str, venv: &Path) -> anyhow::Error {
    let mut found: Vec<String> = std::fs::read_dir(venv.join("bin"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tap-") || n.starts_with("target-"))
        .collect();
    found.sort();
    let hint = match found.as_slice() {
        [one] => format!(
            "it installs `{one}`: name the plugin after its executable, e.g. `sluice plugin add {one} --pip {requirement}` (in sluice.yml: `plugin: {one}` and `pip: {requirement}`)"
        ),
        [] => "a plugin's name must be the executable its package installs; check the package's documentation".to_string(),
        many => format!(
            "it installs {}: name the plugin after one of them",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    UserError::error(
        format!(
            "plugin `{name}`: `pip install {requirement}` installed no executable named `{name}`"
        ),
        Some(hint),
    )
}

/// Remove a folder if it is there.
pub fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("Cannot remove `{}`", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinner_status_from_pip_lines() {
        assert_eq!(
            pip_status("Collecting pytz==2018.4 (from singer-python==5.8.0->target-jsonl)")
                .as_deref(),
            Some("collecting pytz==2018.4")
        );
        assert_eq!(
            pip_status("Installing collected packages: simplejson, pytz, target-jsonl").as_deref(),
            Some("installing 3 packages")
        );
        assert_eq!(pip_status("  Downloading pytz-2018.4.whl (510 kB)"), None);
    }
}
