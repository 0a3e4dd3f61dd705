//! `profiles.yml`: which engine a dbt project runs on, and the `target` its
//! Jinja sees.
//!
//! ```yaml
//! shop:                       # the project's `profile`
//!   target: dev
//!   outputs:
//!     dev:  { type: sluice, schema: main, threads: 4 }        # the lake (DataFusion)
//!     prod: { type: postgres, host: localhost, port: 5432, user: "{{ env_var('PGUSER') }}",
//!             password: "{{ env_var('PGPASSWORD', '') }}", dbname: analytics, schema: public }
//! ```
//!
//! Found in `--profiles-dir`, else `DBT_PROFILES_DIR`, else the project
//! folder, else `~/.dbt/`. Values may use `{{ env_var('NAME', 'default') }}`.
//! Without any profiles file the project runs on the lake with schema `main`.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value;

use crate::error::{Result, TransformError};
use crate::jinja::Target;

/// The output a run uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The `target` Jinja sees.
    pub target: Target,
    /// Every key of the output, rendered (connection settings).
    pub settings: IndexMap<String, Value>,
    /// The file it came from (`None`: the built-in default).
    pub file: Option<PathBuf>,
}

/// Where `profiles.yml` is looked for, in order.
pub fn candidates(profiles_dir: Option<&Path>, project_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = profiles_dir {
        out.push(d.join("profiles.yml"));
        return out;
    }
    if let Ok(d) = std::env::var("DBT_PROFILES_DIR") {
        out.push(PathBuf::from(d).join("profiles.yml"));
    }
    out.push(project_dir.join("profiles.yml"));
    if let Ok(home) = std::env::var("HOME") {
        out.push(PathBuf::from(home).join(".dbt").join("profiles.yml"));
    }
    out
}

/// `{{ env_var('X', 'default') }}` (and other Jinja) in the file's text.
fn render(text: &str, path: &Path) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_function(
        "env_var",
        |name: String, default: Option<String>| -> Result<String, minijinja::Error> {
            std::env::var(&name).or_else(|_| {
                default.ok_or_else(|| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("env_var('{name}') is not set and has no default"),
                    )
                })
            })
        },
    );
    env.render_str(text, minijinja::context! {})
        .map_err(|e| TransformError::Template {
            path: path.to_path_buf(),
            line: e.line(),
            message: e
                .detail()
                .map_or_else(|| e.kind().to_string(), str::to_string),
        })
}

/// The output for `profile` (the project's) and `target` (`--target`, else
/// the profile's `target:`).
pub fn load(
    profiles_dir: Option<&Path>,
    project_dir: &Path,
    profile: &str,
    target: Option<&str>,
) -> Result<Output> {
    let Some(file) = candidates(profiles_dir, project_dir)
        .into_iter()
        .find(|p| p.is_file())
    else {
        if profiles_dir.is_some() {
            return Err(TransformError::Project {
                message: "no profiles.yml in --profiles-dir".into(),
                hint: Some("create one, or leave --profiles-dir out to run on the lake".into()),
            });
        }
        return Ok(Output {
            target: Target {
                name: target.unwrap_or("dev").to_string(),
                kind: "sluice".into(),
                schema: "main".into(),
                database: None,
                threads: 4,
            },
            settings: IndexMap::new(),
            file: None,
        });
    };
    let text = std::fs::read_to_string(&file).map_err(|source| TransformError::Io {
        path: file.clone(),
        source,
    })?;
    let text = render(&text, &file)?;
    let all: IndexMap<String, Value> =
        serde_saphyr::from_str(&text).map_err(|e| TransformError::yaml(&file, &e))?;
    let wrong = |message: String, hint: String| TransformError::Project {
        message: format!("{}: {message}", file.display()),
        hint: Some(hint),
    };
    let entry = all.get(profile).ok_or_else(|| {
        let known: Vec<&str> = all
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "config")
            .collect();
        wrong(
            format!("no profile named `{profile}` (the project's `profile:`)"),
            format!("the file's profiles: {}", known.join(", ")),
        )
    })?;
    let outputs = entry
        .get("outputs")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            wrong(
                format!("profile `{profile}` has no `outputs:`"),
                "add `outputs: {dev: {type: sluice, schema: main}}`".into(),
            )
        })?;
    let name = target
        .map(str::to_string)
        .or_else(|| {
            entry
                .get("target")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "dev".into());
    let output = outputs
        .get(&name)
        .and_then(Value::as_object)
        .ok_or_else(|| {
            wrong(
                format!("profile `{profile}` has no output `{name}`"),
                format!(
                    "its outputs: {}",
                    outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
    let kind = output
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !matches!(kind.as_str(), "sluice" | "postgres") {
        return Err(wrong(
            format!(
                "output `{name}` has `type: {kind}`; Sluice runs `sluice` (the lake) and `postgres`"
            ),
            "use `type: sluice` to run on the lake, or `type: postgres` with dbt-postgres's keys"
                .into(),
        ));
    }
    let schema = output
        .get("schema")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if kind == "postgres" {
                "public".into()
            } else {
                "main".into()
            }
        });
    let database = output
        .get("dbname")
        .or_else(|| output.get("database"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let threads = output
        .get("threads")
        .and_then(Value::as_u64)
        .unwrap_or(4)
        .clamp(1, 64) as u32;
    Ok(Output {
        target: Target {
            name,
            kind,
            schema,
            database,
            threads,
        },
        settings: output.clone().into_iter().collect(),
        file: Some(file),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_targets_env_vars_and_clear_errors() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("profiles.yml"),
            "shop:\n  target: dev\n  outputs:\n    dev: {type: sluice, schema: analytics, threads: 2}\n    prod: {type: postgres, host: localhost, user: \"{{ env_var('SLUICE_TEST_NO_SUCH_VAR', 'bob') }}\", dbname: wh, schema: marts}\n    duck: {type: duckdb, path: x.db}\n",
        )
        .unwrap();
        let o = load(None, d.path(), "shop", None).unwrap();
        assert_eq!(
            (
                o.target.name.as_str(),
                o.target.kind.as_str(),
                o.target.schema.as_str(),
                o.target.threads
            ),
            ("dev", "sluice", "analytics", 2)
        );
        let o = load(None, d.path(), "shop", Some("prod")).unwrap();
        assert_eq!(o.target.database.as_deref(), Some("wh"));
        assert_eq!(o.settings["user"], "bob");
        let e = load(None, d.path(), "shop", Some("duck")).unwrap_err();
        assert!(e.to_string().contains("`type: duckdb`"), "{e}");
        let e = load(None, d.path(), "shop", Some("qa")).unwrap_err();
        assert!(e.to_string().contains("no output `qa`"), "{e}");
        assert!(e.hint().unwrap().contains("dev, prod, duck"));
        let e = load(None, d.path(), "other", None).unwrap_err();
        assert!(e.to_string().contains("no profile named `other`"), "{e}");
        let e = load(Some(&d.path().join("nope")), d.path(), "shop", None).unwrap_err();
        assert!(
            e.to_string().contains("no profiles.yml in --profiles-dir"),
            "{e}"
        );
    }
}
