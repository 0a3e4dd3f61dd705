//! `sluice transform docs generate|serve`, as dbt's `docs generate` and
//! `docs serve`: the project compiled into `manifest.json`, the engine's
//! description of every relation into `catalog.json` (dbt's catalog v1),
//! both shown by one self-contained page, `index.html`; `serve` hands
//! `target/` out over HTTP.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_transform::catalog::{self, Wanted};
use sluice_transform::jinja::Relation;
use sluice_transform::{DbtProject, artifacts, runner, site};

use super::{
    display, engine_for, load, report_template_warnings, selected, user, write_artifact,
    write_files,
};
use crate::cli::{TransformDocsCommand, TransformDocsOptions, TransformServeOptions};
use crate::output::{Reporter, UserError};

/// Run `sluice transform docs …`.
pub(super) async fn docs(
    dir: Option<&Path>,
    command: &TransformDocsCommand,
    reporter: &Reporter,
) -> Result<ExitCode> {
    match command {
        TransformDocsCommand::Generate(o) => generate(dir, o, reporter).await,
        TransformDocsCommand::Serve(o) => serve(dir, o).await,
    }
}

fn describe(w: &Wanted) -> String {
    let what = match w.unique_id.split('.').next() {
        Some(kind) if !kind.is_empty() => kind,
        _ => "node",
    };
    format!("{what} `{}` ({})", w.unique_id, w.relation)
}

async fn generate(
    dir: Option<&Path>,
    o: &TransformDocsOptions,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let started = Instant::now();
    let invocation_id = uuid::Uuid::now_v7().to_string();
    let l = load(dir, &o.common, (&invocation_id, false)).await?;
    report_template_warnings(&l.manifest, reporter);
    let narrowed =
        !o.common.select.is_empty() || !o.common.exclude.is_empty() || o.common.state.is_some();
    let chosen: Option<HashSet<String>> = if narrowed {
        Some(selected(&l, &o.common, false)?.into_iter().collect())
    } else {
        None
    };
    write_artifact(
        &l.project,
        "manifest.json",
        &artifacts::ManifestArtifact::new(&l.manifest, &invocation_id),
    )?;
    let (project, m) = (&l.project, &l.manifest);
    if !o.no_compile {
        let files: Vec<(PathBuf, &str)> = m
            .nodes
            .values()
            .filter(|n| chosen.as_ref().is_none_or(|c| c.contains(&n.name)))
            .filter_map(|n| {
                n.sql.as_deref().map(|sql| {
                    let rel = runner::compiled_path(m, &project.target_path, n);
                    (project.dir.join(rel), sql)
                })
            })
            .collect();
        write_files(&files)?;
    }

    let wanted = catalog::wanted(m, chosen.as_ref());
    let mut relations: Vec<Relation> = Vec::new();
    let mut seen = HashSet::new();
    for w in &wanted {
        if seen.insert(w.relation.to_string()) {
            relations.push(w.relation.clone());
        }
    }
    let engine = engine_for(&l, &invocation_id).await?;
    let read = engine.catalog(&relations).await.map_err(|e| {
        UserError::error(
            format!(
                "cannot read the catalog of target `{}` on {} ({}): {e}",
                l.output.target.name,
                engine.kind(),
                engine.describe()
            ),
            Some("check that the target's engine is reachable, or run `sluice transform docs generate` against another `--target`".into()),
        )
    })?;
    let cat = catalog::catalog_json(&wanted, &read, &invocation_id);
    write_artifact(project, "catalog.json", &cat.json)?;
    let target = project.dir.join(&project.target_path);
    let index = target.join("index.html");
    // The page reads the manifest in dbt's artifact shape, as a JSON tree.
    let manifest = artifacts::manifest_json(m, &invocation_id);
    write_page(&index, &site::index_html(&manifest, &cat.json))?;

    if reporter.json() {
        let missing: Vec<Value> = cat
            .missing
            .iter()
            .map(|w| json!({"unique_id": w.unique_id, "relation": w.relation.to_string()}))
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "project": project.name,
                "engine": engine.kind(),
                "nodes": cat.nodes,
                "sources": cat.sources,
                "missing": missing,
                "errors": read.errors,
                "manifest": target.join("manifest.json"),
                "catalog": target.join("catalog.json"),
                "index": index,
                "seconds": started.elapsed().as_secs_f64(),
            }))?
        );
    } else {
        for e in &read.errors {
            reporter.warn(&format!("catalog: {e}"));
        }
        crate::outln!(
            "catalog of `{}`: {} nodes and {} sources from {} ({}) in {:.0} ms",
            project.name,
            cat.nodes,
            cat.sources,
            engine.kind(),
            engine.describe(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        crate::outln!(
            "wrote {}, catalog.json and index.html",
            display(&target.join("manifest.json"))
        );
        if !cat.missing.is_empty() {
            crate::outln!(
                "note: {} relations do not exist yet and are not in the catalog (build them with `sluice transform build`):",
                cat.missing.len()
            );
            for w in &cat.missing {
                crate::outln!("  {}", describe(w));
            }
        }
        crate::outln!(
            "open {} or run `sluice transform docs serve`",
            display(&index)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Write the page through a temporary file, as the JSON artifacts are.
fn write_page(path: &Path, html: &str) -> Result<()> {
    let fail = |e: std::io::Error| {
        UserError::error(format!("cannot write `{}`: {e}", path.display()), None)
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, html).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The files `serve` hands out, with their content types; anything else
/// is a 404 (no path from the URL reaches the file system).
static SERVED: [(&str, &str); 4] = [
    ("index.html", "text/html; charset=utf-8"),
    ("manifest.json", "application/json"),
    ("catalog.json", "application/json"),
    ("run_results.json", "application/json"),
];

async fn index(State(dir): State<Arc<PathBuf>>) -> Response {
    send(&dir, "index.html").await
}

async fn named(State(dir): State<Arc<PathBuf>>, UrlPath(name): UrlPath<String>) -> Response {
    send(&dir, &name).await
}

async fn send(dir: &Path, name: &str) -> Response {
    let Some((file, kind)) = SERVED.iter().find(|(f, _)| *f == name) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    match tokio::fs::read(dir.join(file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, *kind)], bytes).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            format!("{file} is not in target/: run `sluice transform docs generate`\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {file}: {e}\n"),
        )
            .into_response(),
    }
}

async fn serve(dir: Option<&Path>, o: &TransformServeOptions) -> Result<ExitCode> {
    let dir = crate::project::transform_home(dir)?.dbt_dir;
    let project = DbtProject::load(&dir).map_err(user)?;
    let target = project.dir.join(&project.target_path);
    if !target.join("index.html").exists() {
        return Err(UserError::error(
            format!("there are no docs in `{}` yet", display(&target)),
            Some("run `sluice transform docs generate` first".into()),
        ));
    }
    let listener = tokio::net::TcpListener::bind((o.host.as_str(), o.port))
        .await
        .map_err(|e| {
            UserError::error(
                format!("cannot listen on {}:{}: {e}", o.host, o.port),
                Some("pick another port with `--port` (0: any free port)".into()),
            )
        })?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/", axum::routing::get(index))
        .route("/{name}", axum::routing::get(named))
        .with_state(Arc::new(target.clone()));
    crate::outln!(
        "serving the docs of `{}` from {} at http://{addr}/ (Ctrl-C to stop)",
        project.name,
        display(&target)
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| UserError::error(format!("the docs server stopped: {e}"), None))?;
    Ok(ExitCode::SUCCESS)
}
