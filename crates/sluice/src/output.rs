//! What Sluice prints, and where.
//!
//! Rules (the same for every command):
//! - **stdout** carries results: tables, query output, summaries — or, with
//!   `--json`, one JSON document. Nothing else goes there, so it can be piped.
//! - **stderr** carries progress bars, log lines and errors. Progress bars
//!   appear only when stderr is a terminal (and not with `--quiet`,
//!   `--json` or `--no-progress`).
//! - Errors print as `error: …`, then the offending lines of the project file
//!   when known, then `hint: …` with a concrete next step. Internal errors say
//!   they are bugs.
//! - Exit codes: 0 success; 1 a run or command failed; 2 the project file or
//!   the command line is wrong (including an id that names nothing, see
//!   [`UserError::usage`]).

use std::fmt;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::MultiProgress;
use sluice_core::config::ConfigError;
use sluice_core::connector::ConnectorError;
use sluice_core::error::{Classify, ErrorDomain};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::Global;

static SECRETS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Register the values substituted from the environment, so that every
/// error this process prints has them replaced by `***`.
pub fn set_secrets(secrets: Vec<String>) {
    let _ = SECRETS.set(secrets.into_iter().filter(|s| s.len() >= 3).collect());
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for s in SECRETS.get().into_iter().flatten() {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// A user-facing error raised by the CLI itself.
#[derive(Debug)]
pub struct UserError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// The command line names something that does not exist (a run id):
    /// exit code 2, as for a wrong command line, instead of 1.
    pub usage: bool,
}

impl UserError {
    /// A user error with an optional hint.
    pub fn error(message: impl Into<String>, hint: impl Into<Option<String>>) -> anyhow::Error {
        anyhow::Error::new(UserError {
            message: message.into(),
            hint: hint.into(),
            usage: false,
        })
    }

    /// A user error in the command line itself (exit code 2).
    pub fn usage(message: impl Into<String>, hint: impl Into<Option<String>>) -> anyhow::Error {
        anyhow::Error::new(UserError {
            message: message.into(),
            hint: hint.into(),
            usage: true,
        })
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Where a run's log lines also go: `(level, text)`.
pub type LogTap = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Prints to stderr without tearing progress bars.
#[derive(Clone)]
pub struct Reporter {
    multi: MultiProgress,
    progress: bool,
    quiet: bool,
    json: bool,
    color: bool,
    tap: Option<LogTap>,
}

impl Reporter {
    /// A reporter for these global options.
    pub fn new(global: &Global) -> Reporter {
        let tty = std::io::stderr().is_terminal();
        let progress = tty && !global.quiet && !global.json && !global.no_progress;
        let multi = MultiProgress::new();
        if !progress {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Reporter {
            multi,
            progress,
            quiet: global.quiet,
            json: global.json,
            color: tty && std::env::var_os("NO_COLOR").is_none(),
            tap: None,
        }
    }

    /// The same reporter, whose `info` and `warn` lines also go to `tap`
    /// (a run's log in the run store), `--quiet` or not.
    pub fn with_tap(&self, tap: LogTap) -> Reporter {
        Reporter {
            tap: Some(tap),
            ..self.clone()
        }
    }

    /// The progress bars' container.
    pub fn multi(&self) -> &MultiProgress {
        &self.multi
    }

    /// Whether progress bars are drawn.
    pub fn progress_enabled(&self) -> bool {
        self.progress
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Write a line to stderr (above any progress bars).
    pub fn line(&self, text: &str) {
        self.multi.suspend(|| {
            let _ = writeln!(std::io::stderr(), "{text}");
        });
    }

    /// A status line for people (not with `--quiet`).
    pub fn info(&self, text: &str) {
        if let Some(tap) = &self.tap {
            tap("info", text);
        }
        if !self.quiet {
            self.line(text);
        }
    }

    /// A warning (not with `--quiet`).
    pub fn warn(&self, text: &str) {
        if let Some(tap) = &self.tap {
            tap("warn", text);
        }
        if !self.quiet {
            self.line(&format!("{} {text}", self.paint("warning:", "33")));
        }
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[1;{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Print an error with its causes, location and hint.
    pub fn error(&self, e: &anyhow::Error) {
        let mut out = format!("{} {e}", self.paint("error:", "31"));
        let mut seen = e.to_string();
        for cause in e.chain().skip(1) {
            let text = cause.to_string();
            if !seen.contains(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
                seen.push_str(&text);
            }
        }
        if let Some(config) = e.downcast_ref::<ConfigError>()
            && let Some(snippet) = &config.snippet
        {
            let lines: Vec<&str> = snippet
                .lines()
                .filter(|l| l.contains('|') || l.contains("-->"))
                .collect();
            if !lines.is_empty() {
                out.push('\n');
                out.push_str(&lines.join("\n"));
            }
        }
        if let Some(hint) = hint_of(e) {
            out.push_str(&format!("\n{} {hint}", self.paint("hint:", "36")));
        }
        if domain_of(e) == Some(ErrorDomain::Internal) {
            out.push_str("\nThis is a bug in Sluice; please report it with the command you ran.");
        }
        self.line(&redact(&out));
    }
}

/// The first hint any error in the chain carries.
pub fn hint_of(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            return u.hint.clone();
        }
        if let Some(h) = classify(cause).and_then(|c| c.hint()) {
            return Some(h);
        }
    }
    None
}

fn classify<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn Classify> {
    if let Some(x) = e.downcast_ref::<ConfigError>() {
        return Some(x);
    }
    if let Some(x) = e.downcast_ref::<ConnectorError>() {
        return Some(x);
    }
    if let Some(x) = e.downcast_ref::<sluice_lake::LakeError>() {
        return Some(x);
    }
    if let Some(x) = e.downcast_ref::<sluice_store::StoreError>() {
        return Some(x);
    }
    None
}

/// Who has to act on the error, when known.
pub fn domain_of(e: &anyhow::Error) -> Option<ErrorDomain> {
    if e.downcast_ref::<UserError>().is_some() {
        return Some(ErrorDomain::User);
    }
    e.chain().find_map(|c| classify(c).map(|c| c.domain()))
}

/// Whether running the same thing again may succeed (the error's own
/// judgement: an external system that failed, not bad config or data).
pub fn retryable_of(e: &anyhow::Error) -> bool {
    e.downcast_ref::<UserError>().is_none()
        && e.chain().find_map(classify).is_some_and(|c| c.retryable())
}

/// Exit code for an error (see the module docs).
pub fn exit_code_for(e: &anyhow::Error) -> ExitCode {
    let config = |c: &(dyn std::error::Error + 'static)| {
        c.downcast_ref::<ConfigError>().is_some()
            || matches!(
                c.downcast_ref::<sluice_lake::LakeError>(),
                Some(sluice_lake::LakeError::Location { .. })
            )
            || c.downcast_ref::<UserError>().is_some_and(|u| u.usage)
            || matches!(
                c.downcast_ref::<sluice_store::StoreError>(),
                Some(sluice_store::StoreError::AmbiguousRun { .. })
            )
    };
    if e.chain().any(config) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Log lines: `warning: …`, `info: …` on stderr, above progress bars.
pub fn init_logging(global: &Global, reporter: &Reporter) {
    let default = if global.quiet {
        "error"
    } else {
        match global.verbose {
            0 => {
                "warn,sluice=info,sluice_connectors=info,sluice_lake=info,buoyant_kernel=off,deltalake_core=error"
            }
            1 => "info,sluice=debug,sluice_connectors=debug,sluice_lake=debug,buoyant_kernel=off",
            _ => "debug,sluice=trace,sluice_connectors=trace,sluice_lake=trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(reporter.color)
        .event_format(CliFormat {
            color: reporter.color,
        })
        .with_writer(LogWriter {
            multi: reporter.multi.clone(),
        })
        .try_init();
}

struct CliFormat {
    color: bool,
}

impl<S, N> FormatEvent<S, N> for CliFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (label, code) = match *event.metadata().level() {
            Level::ERROR => ("error:", "31"),
            Level::WARN => ("warning:", "33"),
            Level::INFO => ("info:", "32"),
            Level::DEBUG => ("debug:", "34"),
            Level::TRACE => ("trace:", "35"),
        };
        if self.color {
            write!(writer, "\x1b[1;{code}m{label}\x1b[0m ")?;
        } else {
            write!(writer, "{label} ")?;
        }
        if *event.metadata().level() >= Level::DEBUG {
            write!(writer, "[{}] ", event.metadata().target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[derive(Clone)]
struct LogWriter {
    multi: MultiProgress,
}

struct LogLine {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where log lines also go while a run records them (one run at a time
/// per process: `sluice run`, or `sluice serve`'s queue).
static RUN_LOG: std::sync::Mutex<Option<LogTap>> = std::sync::Mutex::new(None);

/// Send every log line (`info:`, `warning:`, `error:`) to `tap` too, until
/// called again with `None`.
pub fn set_run_log(tap: Option<LogTap>) {
    if let Ok(mut t) = RUN_LOG.lock() {
        *t = tap;
    }
}

/// A log line without its colors, split into level and text.
fn split_log_line(raw: &[u8]) -> Option<(&'static str, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // Skip `ESC [ … m`.
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let plain = plain.trim_end();
    for (label, level) in [
        ("error: ", "error"),
        ("warning: ", "warn"),
        ("info: ", "info"),
    ] {
        if let Some(rest) = plain.strip_prefix(label) {
            return Some((level, rest.to_string()));
        }
    }
    None
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(t) = RUN_LOG.lock()
            && let Some(tap) = t.as_ref()
            && let Some((level, text)) = split_log_line(&buf)
        {
            tap(level, &text);
        }
        self.multi.suspend(|| {
            let _ = std::io::stderr().write_all(&buf);
        });
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine {
            multi: self.multi.clone(),
            buf: Vec::new(),
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes for people: `8.4 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A table for people, with the house style.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// `println!` for command output that a closed pipe does not turn into a
/// panic: `sluice discover app | head` stops quietly when `head` has had
/// enough. Other write errors on stdout are ignored as well; there is no one
/// left to tell.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_split_into_level_and_text_without_colors() {
        assert_eq!(
            split_log_line(b"\x1b[1;32minfo:\x1b[0m s.t: added column `note` (string)\n"),
            Some(("info", "s.t: added column `note` (string)".to_string()))
        );
        assert_eq!(
            split_log_line(b"warning: slow\n"),
            Some(("warn", "slow".to_string()))
        );
        assert_eq!(split_log_line(b"debug: [x] detail\n"), None);
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(8_400_000), "8.4 MB");
    }
}
