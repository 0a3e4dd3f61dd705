//! Running a Singer plugin: the process, its files and its stderr.
//!
//! A plugin runs with the project folder as its working directory. Its
//! `--config` (and `--catalog`, `--state`) are JSON files written for the
//! run under `.sluice/tmp/` with owner-only permissions and removed when the
//! run ends: the config holds secrets. Every stderr line goes to the
//! plugin's log file (`.sluice/logs/<label>.log`, redacted) and to the debug
//! log; lines that look like errors also reach the terminal as warnings; the
//! last lines are kept for the error when the plugin fails.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use sluice_core::connector::{ConnectorError, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// Replaces secrets in a text before it is logged.
pub type Redactor = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// How many stderr lines an error quotes.
const TAIL_LINES: usize = 20;

/// A plugin executable and how to run it.
#[derive(Clone)]
pub struct Plugin {
    /// `tap csvtap`, `target jsonl`: names the process in logs and errors.
    pub label: String,
    /// The executable.
    pub program: PathBuf,
    /// The project folder: the working directory.
    pub dir: PathBuf,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Hides secrets in what is logged.
    pub redact: Redactor,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("label", &self.label)
            .field("program", &self.program)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Files passed to one run of a plugin; removed on drop.
#[derive(Debug, Default)]
pub struct RunFiles {
    paths: Vec<PathBuf>,
}

impl RunFiles {
    /// Write `value` as JSON to a new file only the owner can read, and
    /// return its path.
    pub fn write(
        &mut self,
        dir: &Path,
        label: &str,
        what: &str,
        value: &serde_json::Value,
    ) -> Result<PathBuf> {
        let tmp = dir.join(".sluice").join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| {
            ConnectorError::external(format!("cannot create `{}`", tmp.display()), e)
        })?;
        let name = format!(
            "{}-{}-{}-{what}.json",
            label.replace([' ', '/'], "_"),
            std::process::id(),
            unique()
        );
        let path = tmp.join(name);
        let text =
            serde_json::to_vec(value).map_err(|e| ConnectorError::Internal(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = options.open(&path)?;
            f.write_all(&text)?;
            f.sync_all()
        };
        write().map_err(|e| {
            ConnectorError::external(format!("cannot write `{}`", path.display()), e)
        })?;
        self.paths.push(path.clone());
        Ok(path)
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The last stderr lines of a plugin, shared with its stderr reader.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        if let Ok(mut q) = self.0.lock() {
            if q.len() == TAIL_LINES {
                q.pop_front();
            }
            q.push_back(line);
        }
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A running plugin.
#[derive(Debug)]
pub struct Running {
    label: String,
    child: Child,
    /// Its stdout (Singer messages from a tap, STATE from a target).
    pub stdout: Option<ChildStdout>,
    /// Its stdin (messages to a target).
    pub stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<()>>,
    tail: StderrTail,
    log: PathBuf,
}

impl Plugin {
    /// Start the plugin with `args`; `stdin` gives it a pipe to read.
    pub fn spawn(&self, args: &[&std::ffi::OsStr], stdin: bool) -> Result<Running> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Python plugins: unbuffered, UTF-8 whatever the locale.
        cmd.env("PYTHONUNBUFFERED", "1")
            .env("PYTHONIOENCODING", "utf-8");
        let mut child = cmd.spawn().map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                Some(format!(
                    "install it with `sluice plugin add {}`, or set `executable:` to its path",
                    self.program
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ))
            } else {
                None
            };
            ConnectorError::Config {
                message: format!(
                    "cannot start {} (`{}`): {e}",
                    self.label,
                    self.program.display()
                ),
                hint,
            }
        })?;
        let log_dir = self.dir.join(".sluice").join("logs");
        let log = log_dir.join(format!("{}.log", self.label.replace([' ', '/'], "-")));
        let tail = StderrTail::default();
        let stderr = child.stderr.take().map(|err| {
            let tail = tail.clone();
            let label = self.label.clone();
            let redact = self.redact.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let _ = tokio::fs::create_dir_all(&log_dir).await;
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .await
                    .ok();
                if let Some(f) = file.as_mut() {
                    let head = format!(
                        "--- {} started {}\n",
                        label,
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                    let _ = f.write_all(head.as_bytes()).await;
                }
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = redact(&line);
                    if looks_like_error(&line) {
                        tracing::warn!("{label}: {line}");
                    } else {
                        tracing::debug!("{label}: {line}");
                    }
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(line.as_bytes()).await;
                        let _ = f.write_all(b"\n").await;
                    }
                    tail.push(line);
                }
                if let Some(f) = file.as_mut() {
                    let _ = f.flush().await;
                }
            })
        });
        Ok(Running {
            label: self.label.clone(),
            stdout: child.stdout.take(),
            stdin: child.stdin.take(),
            child,
            stderr,
            tail,
            log,
        })
    }
}

fn looks_like_error(line: &str) -> bool {
    ["ERROR", "CRITICAL", "Traceback", "FATAL"]
        .iter()
        .any(|w| line.contains(w))
}

impl Running {
    /// The last stderr lines so far.
    pub fn tail(&self) -> StderrTail {
        self.tail.clone()
    }

    /// Wait for the plugin to exit. A non-zero exit is an error that names
    /// the plugin, its exit code and its last stderr lines.
    pub async fn wait(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status =
            self.child.wait().await.map_err(|e| {
                ConnectorError::external(format!("cannot wait for {}", self.label), e)
            })?;
        if let Some(h) = self.stderr.take() {
            let _ = h.await;
        }
        if status.success() {
            Ok(())
        } else {
            Err(self.failed(status))
        }
    }

    /// Stop the plugin now (the run failed or was cancelled).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        if let Some(h) = self.stderr.take() {
            let _ = h.await;
        }
    }

    fn failed(&self, status: ExitStatus) -> ConnectorError {
        exit_error(&self.label, status, &self.tail.lines(), &self.log)
    }
}

/// The error for a plugin that exited with `status`.
pub fn exit_error(label: &str, status: ExitStatus, tail: &[String], log: &Path) -> ConnectorError {
    let code = match status.code() {
        Some(c) => format!("exit code {c}"),
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                match status.signal() {
                    Some(s) => format!("signal {s}"),
                    None => "an unknown status".to_string(),
                }
            }
            #[cfg(not(unix))]
            {
                "an unknown status".to_string()
            }
        }
    };
    let mut message = format!("{label} failed with {code}");
    if tail.is_empty() {
        message.push_str(" (it wrote nothing to stderr)");
    } else {
        message.push_str("; its last stderr lines:");
        for l in tail {
            message.push_str("\n    ");
            message.push_str(&sluice_core::connector::truncate(l, 300));
        }
    }
    message.push_str(&format!("\n  (its whole log: {})", log.display()));
    ConnectorError::External {
        message,
        source: None,
        retryable: false,
    }
}
