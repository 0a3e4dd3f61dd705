//! Progress bars for long work: one per stream, on stderr, only on a terminal;
//! and a spinner for work that counts no rows (installing a plugin).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{Reporter, human_bytes, thousands};

/// The bar of one stream: bytes read (of the total when known), rows and rows/s.
pub struct StreamProgress {
    bar: ProgressBar,
    started: Instant,
    rows: u64,
    bytes: u64,
    total: Option<u64>,
}

impl StreamProgress {
    /// A bar labelled `label` (hidden when progress is off).
    pub fn new(reporter: &Reporter, label: &str) -> StreamProgress {
        let bar = if reporter.progress_enabled() {
            let bar = reporter.multi().add(ProgressBar::new_spinner());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(spinner_style());
        bar.set_prefix(label.to_string());
        StreamProgress {
            bar,
            started: Instant::now(),
            rows: 0,
            bytes: 0,
            total: None,
        }
    }

    /// The total bytes to read, once known.
    pub fn set_total(&mut self, total: u64) {
        if total > 0 {
            self.total = Some(total);
            self.bar.set_length(total);
            self.bar.set_style(bar_style());
        }
    }

    /// Bytes and rows read since the last call.
    pub fn advance(&mut self, bytes: u64, rows: u64) {
        self.bytes += bytes;
        self.rows += rows;
        if self.total.is_some() {
            self.bar
                .set_position(self.bytes.min(self.total.unwrap_or(u64::MAX)));
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{} rows · {} · {} rows/s",
            thousands(self.rows),
            human_bytes(self.bytes),
            thousands((self.rows as f64 / secs) as u64)
        ));
    }

    /// Show what the stream is doing now (e.g. committing).
    pub fn status(&self, text: &str) {
        self.bar
            .set_message(format!("{} rows · {text}", thousands(self.rows)));
    }

    /// Remove the bar (the summary table reports the outcome).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A spinner with a label and a changing message, for work whose length is
/// unknown. Hidden when progress is off; cleared when dropped.
pub struct Spinner {
    bar: ProgressBar,
}

impl Spinner {
    /// A spinner labelled `label` (hidden when progress is off).
    pub fn new(reporter: &Reporter, label: &str) -> Spinner {
        let bar = if reporter.progress_enabled() {
            let bar = reporter.multi().add(ProgressBar::new_spinner());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(spinner_style());
        bar.set_prefix(label.to_string());
        Spinner { bar }
    }

    /// A spinner that never draws.
    pub fn hidden() -> Spinner {
        Spinner {
            bar: ProgressBar::hidden(),
        }
    }

    /// What is happening now.
    pub fn status(&self, text: &str) {
        self.bar.set_message(text.to_string());
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.cyan} {prefix:.bold} [{bar:30.cyan/blue}] {percent:>3}% {msg} (eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}
