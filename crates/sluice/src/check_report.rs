//! The static HTML report of a check run: one self-contained page (no
//! script, no network), rendered from the JSON report.

use serde_json::Value;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330}
h1{font-size:1.4rem;margin:0 0 .3rem}.meta{color:#5b6475;margin-bottom:1.2rem}
.cards{display:flex;gap:.8rem;margin-bottom:1.4rem}.card{padding:.6rem 1rem;border-radius:6px;background:#f3f5f9;min-width:6rem}
.card b{display:block;font-size:1.5rem}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e3e7ee;vertical-align:top}
th{background:#f3f5f9;font-weight:600}.s{font-weight:700;border-radius:4px;padding:.05rem .4rem}
.pass{color:#17693a;background:#e3f6ea}.warn{color:#8a5a00;background:#fff3d6}.fail,.error{color:#a4161a;background:#fde4e4}
details{margin-top:.3rem}pre{background:#f7f8fb;padding:.5rem;overflow:auto;max-width:60rem;margin:.3rem 0}
code{font-size:.92em}.muted{color:#5b6475}";

/// The page for `report` (as `sluice check --json` prints it).
pub fn html(report: &Value) -> String {
    let summary = &report["summary"];
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    let mut out = String::new();
    out.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sluice checks</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>");
    out.push_str(&format!(
        "<h1>Data quality: {}</h1><div class=\"meta\">run <code>{}</code> · {} · {:.2}s</div>",
        if n("fail") + n("error") > 0 {
            "failing"
        } else if n("warn") > 0 {
            "passing with warnings"
        } else {
            "passing"
        },
        esc(&text(&report["run_id"])),
        esc(&text(&report["generated_at"])),
        report["seconds"].as_f64().unwrap_or(0.0)
    ));
    out.push_str("<div class=\"cards\">");
    for (k, label) in [
        ("total", "checks"),
        ("pass", "passed"),
        ("warn", "warned"),
        ("fail", "failed"),
        ("error", "errors"),
    ] {
        out.push_str(&format!("<div class=\"card\"><b>{}</b>{label}</div>", n(k)));
    }
    out.push_str("</div><table><thead><tr><th>status</th><th>check</th><th>kind</th><th>phase</th><th>observed</th><th>expected</th><th>details</th></tr></thead><tbody>");
    let empty = Vec::new();
    let results = report["results"].as_array().unwrap_or(&empty);
    // Failures first, then warnings, then passes; in run order within each.
    let rank = |r: &Value| match r["status"].as_str() {
        Some("fail") | Some("error") => 0,
        Some("warn") => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Value> = results.iter().collect();
    ordered.sort_by_key(|r| rank(r));
    for r in ordered {
        let status = text(&r["status"]);
        let observed = match r["failing_rows"].as_u64() {
            Some(f) => format!(
                "{f} of {} rows failing",
                r["total_rows"].as_u64().unwrap_or(0)
            ),
            None => text(&r["observed"]),
        };
        let mut details = esc(&text(&r["message"]));
        if let Some(at) = r["defined_at"].as_str() {
            details.push_str(&format!(
                "<div class=\"muted\">defined at <code>{}</code></div>",
                esc(at)
            ));
        }
        if let Some(t) = r["stored_failures"].as_str() {
            details.push_str(&format!(
                "<div class=\"muted\">failing rows stored in <code>{}</code></div>",
                esc(t)
            ));
        }
        if let Some(samples) = r["samples"].as_array()
            && !samples.is_empty()
        {
            let rows: Vec<String> = samples.iter().map(|s| esc(&s.to_string())).collect();
            details.push_str(&format!(
                "<details><summary>{} sample failing rows</summary><pre>{}</pre></details>",
                samples.len(),
                rows.join("\n")
            ));
        }
        out.push_str(&format!(
            "<tr><td><span class=\"s {st}\">{st}</span></td><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{details}</td></tr>",
            esc(&text(&r["id"])),
            r["description"].as_str().map(|d| format!("<div class=\"muted\">{}</div>", esc(d))).unwrap_or_default(),
            esc(&text(&r["kind"])),
            esc(&text(&r["phase"])),
            esc(&observed),
            esc(&text(&r["expected"])),
            st = esc(&status),
        ));
    }
    out.push_str("</tbody></table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_page_shows_failures_first_with_samples_escaped() {
        let report = json!({
            "run_id": "r1", "generated_at": "2026-11-25T00:00:00Z", "seconds": 0.5,
            "summary": {"total": 2, "pass": 1, "warn": 0, "fail": 1, "error": 0},
            "results": [
                {"id": "shop.orders.not_null_id", "kind": "not_null", "phase": "table", "status": "pass",
                 "observed": 0, "failing_rows": 0, "total_rows": 10, "expected": "no NULLs", "message": "ok", "samples": []},
                {"id": "shop.orders.accepted_values_status", "kind": "accepted_values", "phase": "table", "status": "fail",
                 "observed": 1, "failing_rows": 1, "total_rows": 10, "expected": "values in [a]", "message": "1 failing",
                 "samples": [{"status": "<script>"}], "defined_at": "sluice.yml:9"}
            ]
        });
        let page = html(&report);
        assert!(page.contains("Data quality: failing"));
        let fail = page.find("accepted_values_status").expect("listed");
        let pass = page.find("not_null_id").expect("listed");
        assert!(fail < pass, "failures come first");
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        assert!(page.contains("sluice.yml:9"));
    }
}
