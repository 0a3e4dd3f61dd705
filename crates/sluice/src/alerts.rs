//! Alerts: a JSON document POSTed to the webhooks of
//! `orchestration.alerts` when a run fails, a check fails or an asset is
//! stale. A webhook that cannot be reached is a warning, never a failed
//! run. URLs often carry a token: they are never printed or stored.

use std::time::Duration;

use serde_json::{Value, json};

use crate::output::Reporter;
use crate::project::Project;

/// The events alerts can be sent on.
pub const EVENTS: [&str; 3] = ["run_failed", "check_failed", "stale"];

/// Post `body` (with `event` and the project's name added) to every alert
/// of the project that listens to `event`. Returns how many were delivered.
pub async fn send(project: &Project, reporter: &Reporter, event: &str, mut body: Value) -> usize {
    let targets: Vec<&str> = project
        .config()
        .orchestration
        .alerts
        .iter()
        .filter(|a| a.on.is_empty() || a.on.iter().any(|e| e == event))
        .map(|a| a.url.as_str())
        .collect();
    if targets.is_empty() {
        return 0;
    }
    if let Value::Object(map) = &mut body {
        map.insert("event".into(), json!(event));
        map.insert("project".into(), json!(project.name()));
        map.insert("sent_at".into(), json!(chrono::Utc::now().to_rfc3339()));
    }
    let text = project.redact(&body.to_string());
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            reporter.warn(&format!("alerts: cannot build an HTTP client: {e}"));
            return 0;
        }
    };
    let mut delivered = 0;
    for (i, url) in targets.iter().enumerate() {
        let sent = client
            .post(*url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(text.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => delivered += 1,
            // The URL is not shown: it may hold a token.
            Ok(r) => reporter.warn(&format!(
                "alert {} (`{event}`): the webhook answered {}",
                i + 1,
                r.status()
            )),
            Err(e) => reporter.warn(&format!(
                "alert {} (`{event}`): the webhook could not be reached: {}",
                i + 1,
                project.redact(&without_url(&e))
            )),
        }
    }
    delivered
}

/// reqwest's error text without the URL it appends.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}
