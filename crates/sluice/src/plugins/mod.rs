//! Singer plugins: where their executables are, installing them on demand.
//!
//! A plugin with a pip requirement lives in its own venv,
//! `.sluice/plugins/<name>/venv/`, and runs as
//! `.sluice/plugins/<name>/venv/bin/<name>`. A plugin with `executable:` is
//! that file (a path relative to the project) or that name on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sluice_core::config::PluginSpec;

use crate::output::UserError;
use crate::project::Project;

/// The Python that creates plugin venvs: `SLUICE_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The folder of a plugin's venv.
pub fn venv_dir(project_dir: &Path, name: &str) -> PathBuf {
    project_dir
        .join(".sluice")
        .join("plugins")
        .join(name)
        .join("venv")
}

/// The executable of `spec`, installing the plugin first when it is pip
/// installed and missing.
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
    let exe = venv_dir(&project.dir, &spec.name)
        .join("bin")
        .join(&spec.name);
    if exe.exists() {
        return Ok(exe);
    }
    let requirement = spec.pip.clone().unwrap_or_else(|| spec.name.clone());
    install(&project.dir, &spec.name, &requirement)?;
    if !exe.exists() {
        return Err(UserError::error(
            format!(
                "plugin `{}`: `pip install {requirement}` did not create `{}`",
                spec.name,
                exe.display()
            ),
            Some(format!(
                "the plugin's name must be the executable its package installs; see `ls {}`",
                exe.parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )),
        ));
    }
    Ok(exe)
}

/// Create the plugin's venv and pip install `requirement` into it.
pub fn install(project_dir: &Path, name: &str, requirement: &str) -> Result<()> {
    let venv = venv_dir(project_dir, name);
    tracing::info!(
        "installing plugin `{name}` ({requirement}) into {}",
        venv.display()
    );
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    let python = python();
    run(
        Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .current_dir(project_dir),
        &format!("{python} -m venv {}", venv.display()),
    )?;
    let pip = venv.join("bin").join("pip");
    run(
        Command::new(&pip)
            .args([
                "install",
                "--disable-pip-version-check",
                "--quiet",
                requirement,
            ])
            .current_dir(project_dir),
        &format!("pip install {requirement}"),
    )
    .inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&venv);
    })
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().map_err(|e| {
        UserError::error(
            format!("cannot run `{what}`: {e}"),
            Some("plugins need Python 3 with the venv module (set SLUICE_PYTHON to pick the interpreter)".into()),
        )
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(UserError::error(
        format!("`{what}` failed:\n    {}", tail.join("\n    ")),
        Some("check the pip requirement (name, version) and that PyPI is reachable".into()),
    ))
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
