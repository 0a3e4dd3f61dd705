//! `sluice sql`: DataFusion over the lake.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use arrow::array::RecordBatch;
use sluice_lake::QueryEngine;

use crate::cli::{SqlArgs, SqlFormat};
use crate::output::{Reporter, UserError};
use crate::project::Project;

/// Run a query and print the result.
pub async fn sql(dir: Option<&Path>, args: &SqlArgs, reporter: &Reporter) -> Result<ExitCode> {
    let batches = if args.query.to_ascii_lowercase().contains("sluice.history.") {
        // The project's run and check history, as SQL tables next to the lake's.
        let project = Project::load(dir)?;
        let engine = QueryEngine::new(&project.lake).await?;
        crate::history::register_history(engine.context(), &project.store()?)?;
        let df = engine
            .sql(&args.query)
            .await
            .map_err(|e| sql_error(e, &project.lake))?;
        df.collect().await?
    } else {
        let lake = Project::lake_of(dir)?;
        query_lake(&lake, &args.query).await?
    };
    let format = if reporter.json() && args.format == SqlFormat::Table {
        SqlFormat::Json
    } else {
        args.format
    };
    let mut out = std::io::stdout().lock();
    write_batches(&mut out, &batches, format)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Run `query` over the project's lake.
pub async fn query(project: &Project, query: &str) -> Result<Vec<RecordBatch>> {
    query_lake(&project.lake, query).await
}

/// Run `query` over `lake`.
pub async fn query_lake(lake: &sluice_lake::Lake, query: &str) -> Result<Vec<RecordBatch>> {
    let engine = QueryEngine::new(lake).await?;
    let df = engine.sql(query).await.map_err(|e| sql_error(e, lake))?;
    Ok(df.collect().await?)
}

fn sql_error(e: sluice_lake::LakeError, lake: &sluice_lake::Lake) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("not found") || text.contains("No table named") {
        let tables = lake
            .local_root()
            .map(|_| "run `sluice tables` to list the tables (as `schema.table`)".to_string());
        return UserError::error(text, tables);
    }
    UserError::error(
        text,
        Some("the SQL dialect is Apache DataFusion's (PostgreSQL-like)".to_string()),
    )
}

/// Print batches in a format.
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: SqlFormat,
) -> Result<()> {
    match format {
        SqlFormat::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let cols: Vec<String> = batches
                    .first()
                    .map(|b| {
                        b.schema()
                            .fields()
                            .iter()
                            .map(|f| f.name().clone())
                            .collect()
                    })
                    .unwrap_or_default();
                writeln!(
                    out,
                    "(0 rows{})",
                    if cols.is_empty() {
                        String::new()
                    } else {
                        format!("; columns: {}", cols.join(", "))
                    }
                )?;
            } else {
                writeln!(
                    out,
                    "{}",
                    arrow::util::pretty::pretty_format_batches(batches)?
                )?;
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
            }
        }
        SqlFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            let mut wrote = false;
            for b in batches {
                w.write(b)?;
                wrote = true;
            }
            drop(w);
            if !wrote {
                // No batch at all: still nothing to print but a newline-free empty output.
            }
        }
        SqlFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            drop(w);
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
        SqlFormat::Jsonl => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}
