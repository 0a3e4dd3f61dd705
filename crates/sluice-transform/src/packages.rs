//! `packages.yml` / `dependencies.yml`: the packages a project depends on,
//! and `deps`, which installs the `local:` ones.
//!
//! ```text
//!  packages.yml ─► PackageSpec ─┬─ local: ../x ─► link dbt_packages/<name> → ../x (copy where links fail)
//!                               └─ hub, git, tarball, private ─► must already be in dbt_packages/
//!                                  (installed by `dbt deps` or vendored), else an error with a hint
//! ```
//!
//! As dbt does, the folder a package is installed in is named after the
//! `name:` of its `dbt_project.yml`, and every command but `deps` refuses
//! to run when fewer packages are installed than the file lists.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, TransformError};
use crate::project::{DbtProject, PROJECT_FILE};

/// The files that may list packages, in the order dbt reads them.
pub const PACKAGE_FILES: [&str; 2] = ["packages.yml", "dependencies.yml"];

/// One entry of `packages:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSpec {
    /// `local: <path>`, relative to the project folder.
    Local {
        /// The path as written.
        path: String,
    },
    /// `package: dbt-labs/dbt_utils` (dbt Hub).
    Hub {
        /// `owner/name`.
        package: String,
    },
    /// `git: <url>` (optionally with `subdirectory:`), or `private: owner/repo`.
    Git {
        /// The URL (or `owner/repo` of `private:`).
        url: String,
        /// `subdirectory:`.
        subdirectory: Option<String>,
    },
    /// `tarball: <url>` with `name:`.
    Tarball {
        /// The URL.
        url: String,
        /// `name:`.
        name: String,
    },
}

impl PackageSpec {
    /// How the entry reads in messages (`local: ../x`, `package: a/b`).
    pub fn label(&self) -> String {
        match self {
            PackageSpec::Local { path } => format!("local: {path}"),
            PackageSpec::Hub { package } => format!("package: {package}"),
            PackageSpec::Git { url, .. } => format!("git: {url}"),
            PackageSpec::Tarball { url, .. } => format!("tarball: {url}"),
        }
    }

    /// The names the package is likely installed under (a hub or git
    /// package's real name is in its own `dbt_project.yml`, which Sluice
    /// cannot fetch): `dbt_utils` for `dbt-labs/dbt_utils` and for
    /// `…/dbt-utils.git`.
    fn likely_names(&self) -> Vec<String> {
        let last = |s: &str| {
            s.trim_end_matches('/')
                .rsplit(['/', ':'])
                .next()
                .unwrap_or(s)
                .trim_end_matches(".git")
                .to_string()
        };
        let base = match self {
            PackageSpec::Local { path } => last(path),
            PackageSpec::Hub { package } => last(package),
            PackageSpec::Git { url, subdirectory } => last(subdirectory.as_deref().unwrap_or(url)),
            PackageSpec::Tarball { name, .. } => name.clone(),
        };
        let mut out = vec![base.clone(), base.replace('-', "_")];
        if let Some(rest) = base.strip_prefix("dbt-") {
            out.push(rest.replace('-', "_"));
        }
        out.dedup();
        out
    }
}

/// The packages a project lists, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// `packages.yml` or `dependencies.yml`, relative to the project.
    pub file: PathBuf,
    /// Its `packages:` entries, in order.
    pub packages: Vec<PackageSpec>,
}

fn spec_error(file: &Path, index: usize, message: &str) -> TransformError {
    TransformError::Project {
        message: format!(
            "{}: package #{} {message}",
            file.display(),
            index + 1
        ),
        hint: Some(
            "each entry is `- local: ../path`, `- package: owner/name` (with `version:`), `- git: url` (with `revision:`) or `- tarball: url` (with `name:`)"
                .into(),
        ),
    }
}

/// Read the project's `packages.yml` (else `dependencies.yml`); `None`
/// when neither lists packages.
pub fn requirements(project: &DbtProject) -> Result<Option<Requirements>> {
    let mut found: Option<Requirements> = None;
    for name in PACKAGE_FILES {
        let path = project.dir.join(name);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| TransformError::Io {
            path: path.clone(),
            source,
        })?;
        let yaml: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(&text).map_err(|e| TransformError::yaml(&path, &e))?
        };
        let Some(entries) = yaml.get("packages") else {
            continue;
        };
        let file = PathBuf::from(name);
        if let Some(first) = &found {
            return Err(TransformError::Project {
                message: format!(
                    "both `{}` and `{name}` list `packages:`",
                    first.file.display()
                ),
                hint: Some("keep the packages in one of the two files, as dbt requires".into()),
            });
        }
        let entries = match entries {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            _ => {
                return Err(TransformError::Project {
                    message: format!("{name}: `packages:` must be a list"),
                    hint: Some("e.g. `packages:\\n  - local: ../my_package`".into()),
                });
            }
        };
        let packages = entries
            .iter()
            .enumerate()
            .map(|(i, e)| parse_spec(&file, i, e))
            .collect::<Result<Vec<_>>>()?;
        found = Some(Requirements { file, packages });
    }
    Ok(found)
}

fn parse_spec(file: &Path, i: usize, e: &Value) -> Result<PackageSpec> {
    let text = |key: &str| -> Result<Option<String>> {
        match e.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(spec_error(
                file,
                i,
                &format!("has a `{key}:` that is not text"),
            )),
        }
    };
    if !e.is_object() {
        return Err(spec_error(file, i, "is not a mapping"));
    }
    if let Some(path) = text("local")? {
        return Ok(PackageSpec::Local { path });
    }
    if let Some(package) = text("package")? {
        return Ok(PackageSpec::Hub { package });
    }
    if let Some(url) = text("git")?.or(text("private")?) {
        return Ok(PackageSpec::Git {
            url,
            subdirectory: text("subdirectory")?,
        });
    }
    if let Some(url) = text("tarball")? {
        let name =
            text("name")?.ok_or_else(|| spec_error(file, i, "(`tarball:`) needs a `name:`"))?;
        return Ok(PackageSpec::Tarball { url, name });
    }
    Err(spec_error(
        file,
        i,
        "has none of `local:`, `package:`, `git:`, `private:`, `tarball:`",
    ))
}

/// What `deps` did for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepOutcome {
    /// A `local:` package, now linked into the install path.
    Linked {
        /// The package's name.
        name: String,
        /// Where it was linked (relative to the project).
        at: PathBuf,
    },
    /// A `local:` package, copied (the system has no symbolic links).
    Copied {
        /// The package's name.
        name: String,
        /// Where it was copied (relative to the project).
        at: PathBuf,
    },
    /// Already installed: nothing written.
    UpToDate {
        /// The package's name.
        name: String,
        /// The entry.
        spec: PackageSpec,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransformError + '_ {
    move |source| TransformError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The names of the packages installed in the project's install path (the
/// `name:` of each one's `dbt_project.yml`, and its folder's name).
fn installed_names(project: &DbtProject) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in project.load_packages()? {
        if let Some(dir) = p.dir.file_name() {
            out.push(dir.to_string_lossy().into_owned());
        }
        out.push(p.name);
    }
    Ok(out)
}

/// Install the project's packages: link each `local:` package into the
/// install path (copy it where links are not available), as `dbt deps`
/// does; leave a package that is already there as it is. Hub, git and
/// tarball packages must already be installed (Sluice cannot fetch them
/// yet): an error names each one that is not.
pub fn deps(project: &DbtProject) -> Result<Vec<DepOutcome>> {
    let Some(req) = requirements(project)? else {
        return Ok(Vec::new());
    };
    let install = project.packages_install_path();
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for spec in &req.packages {
        match spec {
            PackageSpec::Local { path } => {
                out.push(install_local(project, &req.file, path, &install)?);
            }
            other => {
                let installed = installed_names(project)?;
                match other
                    .likely_names()
                    .into_iter()
                    .find(|n| installed.contains(n))
                {
                    Some(name) => out.push(DepOutcome::UpToDate {
                        name,
                        spec: other.clone(),
                    }),
                    None => missing.push(other.clone()),
                }
            }
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|s| format!("`{}`", s.label())).collect();
        let first = missing[0].likely_names().pop().unwrap_or_default();
        return Err(TransformError::Project {
            message: format!(
                "{}: {} {} not installed in `{}/`, and Sluice cannot fetch hub, git or tarball packages yet",
                req.file.display(),
                list.join(", "),
                if missing.len() == 1 { "is" } else { "are" },
                install.display()
            ),
            hint: Some(format!(
                "run `dbt deps` once (it installs them into `{0}/`), or vendor each package into `{0}/` (e.g. `{0}/{first}/dbt_project.yml`); then run `sluice transform deps` again",
                install.display()
            )),
        });
    }
    Ok(out)
}

fn install_local(
    project: &DbtProject,
    file: &Path,
    path: &str,
    install: &Path,
) -> Result<DepOutcome> {
    let src = project.dir.join(path);
    if !src.join(PROJECT_FILE).is_file() {
        return Err(TransformError::Project {
            message: format!(
                "{}: local package `{path}` has no {PROJECT_FILE} (looked in `{}`)",
                file.display(),
                src.display()
            ),
            hint: Some("a `local:` path is relative to the project folder".into()),
        });
    }
    let package = DbtProject::load(&src)?;
    let src = src.canonicalize().map_err(io(&src))?;
    let at = install.join(&package.name);
    let dest = project.dir.join(&at);
    if let Ok(meta) = std::fs::symlink_metadata(&dest) {
        if meta.file_type().is_symlink() {
            if dest.canonicalize().ok().as_deref() == Some(src.as_path()) {
                return Ok(DepOutcome::UpToDate {
                    name: package.name,
                    spec: PackageSpec::Local {
                        path: path.to_string(),
                    },
                });
            }
            std::fs::remove_file(&dest).map_err(io(&dest))?;
        } else if meta.is_dir() && dest.join(PROJECT_FILE).is_file() {
            // A copy (from a system without links, or vendored): dbt
            // replaces it with the current source.
            std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
        } else {
            return Err(TransformError::Project {
                message: format!(
                    "`{}` is in the way of local package `{}`",
                    dest.display(),
                    package.name
                ),
                hint: Some("move it out of the packages install path".into()),
            });
        }
    }
    let parent = project.dir.join(install);
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    if link(&src, &dest) {
        return Ok(DepOutcome::Linked {
            name: package.name,
            at,
        });
    }
    copy_dir(&src, &dest)?;
    Ok(DepOutcome::Copied {
        name: package.name,
        at,
    })
}

/// Link `dest` to `src`; false where the system cannot.
#[cfg(unix)]
fn link(src: &Path, dest: &Path) -> bool {
    std::os::unix::fs::symlink(src, dest).is_ok()
}

/// Link `dest` to `src`; false where the system cannot.
#[cfg(not(unix))]
fn link(_src: &Path, _dest: &Path) -> bool {
    false
}

/// Copy the folder `src` to `dest`, skipping hidden entries.
fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let from = entry.path();
        let to = dest.join(entry.file_name());
        if from.is_dir() {
            copy_dir(&from, &to)?;
        } else {
            std::fs::copy(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(())
}

/// Refuse to go on when the project lists more packages than are
/// installed (dbt's check before every command but `deps`).
pub fn check_installed(project: &DbtProject) -> Result<()> {
    let Some(req) = requirements(project)? else {
        return Ok(());
    };
    let installed = project.load_packages()?.len();
    let wanted = req.packages.len();
    if installed >= wanted {
        return Ok(());
    }
    Err(TransformError::Project {
        message: format!(
            "found {wanted} package(s) specified in {}, but only {installed} package(s) installed in `{}`",
            req.file.display(),
            project.packages_install_path().display()
        ),
        hint: Some(format!(
            "run `sluice transform deps` to install local packages; hub and git packages need `dbt deps` once, or a copy vendored into `{}/`",
            project.packages_install_path().display()
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn deps_links_local_packages_once_and_names_missing_hub_packages() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("shop");
        write(&root, PROJECT_FILE, "name: shop\n");
        write(&d.path().join("utils_src"), PROJECT_FILE, "name: mini\n");
        write(
            &root,
            "packages.yml",
            "packages:\n  - local: ../utils_src\n",
        );
        let project = DbtProject::load(&root).unwrap();
        let e = check_installed(&project).unwrap_err();
        assert_eq!(
            e.to_string(),
            "found 1 package(s) specified in packages.yml, but only 0 package(s) installed in `dbt_packages`"
        );
        let done = deps(&project).unwrap();
        assert!(
            matches!(&done[..], [DepOutcome::Linked { name, at } | DepOutcome::Copied { name, at }]
                if name == "mini" && at == Path::new("dbt_packages/mini")),
            "{done:?}"
        );
        assert_eq!(project.load_packages().unwrap()[0].name, "mini");
        check_installed(&project).unwrap();
        let again = deps(&project).unwrap();
        assert!(
            matches!(&again[..], [DepOutcome::UpToDate { name, .. }] if name == "mini"),
            "{again:?}"
        );

        write(
            &root,
            "packages.yml",
            "packages:\n  - local: ../utils_src\n  - package: dbt-labs/dbt_utils\n    version: [\">=1.0.0\"]\n  - git: https://github.com/dbt-labs/dbt-audit-helper.git\n    revision: 0.12.0\n",
        );
        let e = deps(&project).unwrap_err();
        assert_eq!(
            e.to_string(),
            "packages.yml: `package: dbt-labs/dbt_utils`, `git: https://github.com/dbt-labs/dbt-audit-helper.git` are not installed in `dbt_packages/`, and Sluice cannot fetch hub, git or tarball packages yet"
        );
        assert!(e.hint().unwrap().contains("run `dbt deps` once"), "{e:?}");
        // Vendored: found under its project name.
        write(
            &root,
            "dbt_packages/dbt_utils/dbt_project.yml",
            "name: dbt_utils\n",
        );
        write(
            &root,
            "dbt_packages/audit_helper/dbt_project.yml",
            "name: audit_helper\n",
        );
        let done = deps(&project).unwrap();
        assert_eq!(done.len(), 3, "{done:?}");
    }

    #[test]
    fn bad_entries_and_two_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), PROJECT_FILE, "name: shop\n");
        write(d.path(), "packages.yml", "packages:\n  - version: 1\n");
        let project = DbtProject::load(d.path()).unwrap();
        let e = requirements(&project).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("packages.yml: package #1 has none of"),
            "{e}"
        );
        write(d.path(), "packages.yml", "packages:\n  - local: ../x\n");
        write(d.path(), "dependencies.yml", "packages:\n  - local: ../y\n");
        let e = requirements(&project).unwrap_err();
        assert!(
            e.to_string()
                .contains("both `packages.yml` and `dependencies.yml`"),
            "{e}"
        );
        std::fs::remove_file(d.path().join("packages.yml")).unwrap();
        let r = requirements(&project).unwrap().unwrap();
        assert_eq!(r.file, Path::new("dependencies.yml"));
        assert_eq!(
            r.packages,
            vec![PackageSpec::Local {
                path: "../y".into()
            }]
        );
    }
}
