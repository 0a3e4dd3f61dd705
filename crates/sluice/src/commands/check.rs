//! `sluice check`: run the project's data-quality checks on its tables,
//! record the results, write a report; `sluice check history`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use sluice_quality::{Backend, Check, CheckResult, Status, Summary, run_table, validate};
use sluice_store::RunStatus;

use crate::cli::{CheckAction, CheckArgs};
use crate::output::{Reporter, UserError, table, thousands};
use crate::progress::Spinner;
use crate::project::Project;
use crate::quality::{CheckPlace, history, project_checks, record};

/// `sluice check …`.
pub async fn check(dir: Option<&Path>, args: &CheckArgs, reporter: &Reporter) -> Result<ExitCode> {
    match &args.action {
        Some(CheckAction::History(h)) => {
            return history_cmd(dir, h.check.as_deref(), h.limit, reporter);
        }
        Some(CheckAction::Report) => return report_cmd(dir, reporter),
        None => {}
    }
    let project = Project::load(dir)?;
    let all = project_checks(&project)?;
    let checks: Vec<&Check> = all.iter().filter(|c| selected(c, &args.select)).collect();
    let with_dbt = project.config().transform.is_some() && !args.no_dbt && args.select.is_empty();
    if all.is_empty() && !with_dbt {
        return Err(UserError::error(
            "the project declares no checks",
            Some("add `checks:` to a stream, or a top-level `checks:` map of tables (docs/quality.md)".to_string()),
        ));
    }
    if checks.is_empty() && !with_dbt {
        return Err(UserError::error(
            format!("no check matches `{}`", args.select.join(" ")),
            Some(
                "select by check id, name, table or `kind:not_null`; `*` matches anything"
                    .to_string(),
            ),
        ));
    }
    let run_id = uuid::Uuid::now_v7().to_string();
    let mut tables: Vec<String> = Vec::new();
    for c in &checks {
        if !tables.contains(&c.table) {
            tables.push(c.table.clone());
        }
    }
    // One backend per place (the lake, a destination), opened once.
    let mut backends: Vec<(String, Box<dyn Backend>)> = Vec::new();
    let mut table_place: Vec<(String, usize, String)> = Vec::new();
    for t in &tables {
        let prefix = t.split_once(':').map_or("", |(d, _)| d).to_string();
        let (place, name) = CheckPlace::of_key(&project, t)?;
        let at = match backends.iter().position(|(p, _)| *p == prefix) {
            Some(i) => i,
            None => {
                backends.push((prefix, place.backend(&run_id).await?));
                backends.len() - 1
            }
        };
        table_place.push((t.clone(), at, name));
    }
    // Every column and target is checked before any data is read.
    for (t, at, _) in &table_place {
        let owned: Vec<Check> = checks
            .iter()
            .filter(|c| &c.table == t)
            .map(|c| (*c).clone())
            .collect();
        validate(backends[*at].1.as_ref(), &owned).await?;
    }

    let store = Arc::new(Mutex::new(project.store()?));
    if let Ok(s) = store.lock() {
        s.start_run(&run_id, "check")?;
    }
    let started = Instant::now();
    let spinner = Spinner::new(reporter, "checks");
    let now = chrono::Utc::now();
    let mut results: Vec<CheckResult> = Vec::new();
    let hist_store = store.clone();
    let hist = move |id: &str, n: usize| history(&hist_store, id, n);
    for (t, at, name) in &table_place {
        spinner.status(&format!("checking {t}"));
        let of_table: Vec<&Check> = checks.iter().copied().filter(|c| &c.table == t).collect();
        results.extend(run_table(backends[*at].1.as_ref(), name, &of_table, &hist, now).await);
    }
    drop(spinner);
    if with_dbt {
        // The dbt project's data tests, on its own engine, in the same format.
        if let Some(dbt) = crate::commands::transform::dbt_checks(dir, &run_id, reporter).await? {
            for r in &dbt {
                if !tables.contains(&r.table) {
                    tables.push(r.table.clone());
                }
            }
            results.extend(dbt);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let redact = {
        let loaded = project.loaded.clone();
        move |t: &str| loaded.redact(t)
    };
    record(&store, &run_id, &results, &redact);
    // What is printed and written in the report is redacted as well.
    for r in results.iter_mut() {
        crate::quality::redact_result(r, &redact);
    }
    let summary = Summary::of(&results);
    let failed = summary.fail + summary.error > 0 || (args.warn_error && summary.warn > 0);
    let report_dir = project.state_dir().join("reports").join("checks");
    let report = report_json(&run_id, seconds, &results);
    let written = write_report(&report_dir, &report);
    if let Ok(s) = store.lock() {
        let status = if failed {
            RunStatus::Failed
        } else {
            RunStatus::Success
        };
        let error = failed.then(|| format!("{} checks failed", summary.fail + summary.error));
        let _ = s.finish_run(
            &run_id,
            status,
            error.as_deref(),
            &json!({"checks": summary}),
        );
    }
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_results(&results);
        crate::outln!(
            "check run {run_id}: {} checks on {} in {seconds:.2}s: {} passed, {} warned, {} failed, {} errors",
            summary.total,
            if tables.len() == 1 {
                "1 table".to_string()
            } else {
                format!("{} tables", tables.len())
            },
            summary.pass,
            summary.warn,
            summary.fail,
            summary.error
        );
        match written {
            Ok(path) => crate::outln!("report: {}", path.display()),
            Err(e) => reporter.warn(&format!("could not write the report: {e}")),
        }
        print_failures(&results);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--select`: a check id, name or table, `kind:<kind>`, or a pattern with
/// `*`. Nothing selects everything.
fn selected(c: &Check, patterns: &[String]) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| {
            if let Some(kind) = p.strip_prefix("kind:") {
                return c.kind_name == kind;
            }
            [c.id.as_str(), c.name.as_str(), c.table.as_str()]
                .iter()
                .any(|s| glob(p, s))
        })
}

fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

fn shown_observed(r: &CheckResult) -> String {
    match (&r.observed, r.failing_rows) {
        (_, Some(n)) => format!("{} failing", thousands(n)),
        (serde_json::Value::Null, _) => String::new(),
        (serde_json::Value::Object(o), _) if o.contains_key("age_seconds") => {
            sluice_quality::result::fmt_age(o["age_seconds"].as_i64().unwrap_or(0))
        }
        (serde_json::Value::Object(o), _) => format!("{} columns", o.len()),
        (v, _) => shorten(&v.to_string(), 24),
    }
}

/// At most `n` characters of `s` (not bytes: observed values hold column
/// names and texts in any script), with `…` when cut.
/// `s` cut to `n` characters, with `…` when cut.
pub(crate) fn shorten(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

fn status_text(s: Status) -> String {
    match s {
        Status::Pass => "pass".into(),
        Status::Warn => "WARN".into(),
        Status::Fail => "FAIL".into(),
        Status::Error => "ERROR".into(),
    }
}

/// The results table.
pub fn print_results(results: &[CheckResult]) {
    let mut t = table(&["check", "kind", "observed", "time", "status"]);
    for r in results {
        t.add_row(vec![
            r.id.clone(),
            r.kind.clone(),
            shown_observed(r),
            format!("{:.0}ms", r.duration_ms),
            status_text(r.status),
        ]);
    }
    crate::outln!("{t}");
}

/// What failed, with where the check is and a sample.
pub fn print_failures(results: &[CheckResult]) {
    for r in results.iter().filter(|r| r.status != Status::Pass) {
        let at = r
            .defined_at
            .as_deref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        crate::outln!("  {} {}{at}: {}", status_text(r.status), r.id, r.message);
        if let Some(s) = r.samples.first() {
            crate::outln!("    e.g. {s}");
        }
        if let Some(t) = &r.stored_failures {
            crate::outln!("    failing rows in `{t}`: sluice sql \"SELECT * FROM {t}\"");
        }
    }
}

/// The JSON report of a run.
pub fn report_json(run_id: &str, seconds: f64, results: &[CheckResult]) -> serde_json::Value {
    json!({
        "run_id": run_id,
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "seconds": seconds,
        "summary": Summary::of(results),
        "results": results,
    })
}

/// Write `results.json` and `index.html` into `dir`; returns the page.
pub fn write_report(dir: &Path, report: &serde_json::Value) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(report)?)?;
    let page = dir.join("index.html");
    std::fs::write(&page, crate::check_report::html(report))?;
    Ok(page)
}

fn history_cmd(
    dir: Option<&Path>,
    check: Option<&str>,
    limit: usize,
    reporter: &Reporter,
) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let store = project.store()?;
    let rows = store.check_history(check, limit)?;
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        crate::outln!(
            "no check results yet{}",
            check.map(|c| format!(" for `{c}`")).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "checked at",
        "check",
        "phase",
        "observed",
        "status",
        "message",
    ]);
    for r in &rows {
        t.add_row(vec![
            r.checked_at
                .chars()
                .take(19)
                .collect::<String>()
                .replace('T', " "),
            r.check_id.clone(),
            r.phase.clone(),
            match r.failing_rows {
                Some(n) => format!("{} failing", thousands(n)),
                None => shorten(&r.observed.to_string(), 24),
            },
            r.status.clone(),
            r.message.clone(),
        ]);
    }
    crate::outln!("{t}");
    Ok(ExitCode::SUCCESS)
}

fn report_cmd(dir: Option<&Path>, reporter: &Reporter) -> Result<ExitCode> {
    let project = Project::load(dir)?;
    let store = project.store()?;
    let Some(run_id) = store.last_check_run()? else {
        return Err(UserError::error(
            "no check results yet",
            Some("run `sluice check` (or a load with checks) first".to_string()),
        ));
    };
    let results: Vec<CheckResult> = store
        .check_run(&run_id)?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let report = report_json(
        &run_id,
        results.iter().map(|r| r.duration_ms).sum::<f64>() / 1e3,
        &results,
    );
    let page = write_report(&project.state_dir().join("reports").join("checks"), &report)?;
    if reporter.json() {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::outln!(
            "report of run {run_id} ({} checks): {}",
            results.len(),
            page.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{glob, shorten};

    #[test]
    fn shortening_cuts_characters_not_bytes() {
        let s = r#"{"xy":"int64","ääääää":"string"}"#;
        assert_eq!(shorten(s, 24), r#"{"xy":"int64","ääääää":"…"#);
        assert_eq!(shorten("12.5", 24), "12.5");
    }

    #[test]
    fn globs() {
        assert!(glob("shop.*", "shop.orders.not_null_id"));
        assert!(glob("*not_null*", "shop.orders.not_null_id"));
        assert!(glob("*_id", "shop.orders.not_null_id"));
        assert!(!glob("shop.orders", "shop.orders.not_null_id"));
        assert!(!glob("x*", "shop"));
    }
}
