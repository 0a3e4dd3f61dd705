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
use std::time::Duration;

use sluice_core::connector::{ConnectorError, Result};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// Replaces secrets in a text before it is logged.
pub type Redactor = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// How many stderr lines an error quotes.
const TAIL_LINES: usize = 20;

/// The longest stderr line kept, in bytes; the rest of a line is skipped.
const LINE_CAP: usize = 4096;

/// How long to wait for the end of a plugin's stderr once it exited.
const STDERR_GRACE: Duration = Duration::from_secs(2);

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
        // Python plugins: UTF-8 whatever the locale. Not unbuffered: a
        // write per message would cost a tap ~25% more CPU (measured).
        cmd.env("PYTHONIOENCODING", "utf-8");
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
                // Read to EOF whatever comes (invalid UTF-8, huge lines):
                // stopping early would close the pipe, and the plugin would
                // die of SIGPIPE at its next stderr write.
                let mut reader = BufReader::new(err);
                let mut buf = Vec::new();
                loop {
                    match read_line_capped(&mut reader, &mut buf, LINE_CAP).await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            tracing::debug!("{label}: cannot read its stderr: {e}");
                            break;
                        }
                    }
                    let text = String::from_utf8_lossy(&buf);
                    let line = redact(text.trim_end_matches(['\n', '\r']));
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

/// Read one line (without its `\n`) into `buf`, keeping its first `cap`
/// bytes and skipping the rest; `false` at the end of the input.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<bool> {
    buf.clear();
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(true);
        }
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
        self.join_stderr().await;
        if status.success() {
            Ok(())
        } else {
            Err(self.failed(status))
        }
    }

    /// Stop the plugin now (the run failed or was cancelled).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        self.join_stderr().await;
    }

    /// Let the stderr reader reach the end of the output, but not forever:
    /// a grandchild (a wrapper script that runs the plugin without `exec`)
    /// may keep the pipe open after the plugin exited. The reader then goes
    /// on in the background.
    async fn join_stderr(&mut self) {
        if let Some(h) = self.stderr.take()
            && tokio::time::timeout(STDERR_GRACE, h).await.is_err()
        {
            tracing::debug!(
                "{}: its stderr is still open after it exited (a child process of it?); not waiting for it",
                self.label
            );
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A plugin that is the `sh` script `body`.
    fn script(dir: &Path, body: &str) -> Plugin {
        let program = dir.join("plugin.sh");
        std::fs::write(&program, format!("#!/bin/sh\n{body}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Plugin {
            label: "tap sh".into(),
            program,
            dir: dir.to_path_buf(),
            env: Vec::new(),
            redact: Arc::new(|s: &str| s.replace("hunter2", "***")),
        }
    }

    #[tokio::test]
    async fn stderr_is_read_to_the_end_past_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = script(
            dir.path(),
            r#"printf 'bad \377\376 bytes\n' >&2
i=0
while [ $i -lt 200 ]; do echo "line $i of noise" >&2; i=$((i+1)); done
echo "password hunter2 rejected" >&2
echo "ERROR: the real reason" >&2
exit 4"#,
        );
        let err = plugin.spawn(&[], false).unwrap().wait().await.unwrap_err();
        let err = err.to_string();
        // The plugin wrote everything (no SIGPIPE) and exited with its code.
        assert!(err.contains("failed with exit code 4"), "{err}");
        assert!(err.contains("ERROR: the real reason"), "{err}");
        assert!(err.contains("password *** rejected"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let log = std::fs::read_to_string(dir.path().join(".sluice/logs/tap-sh.log")).unwrap();
        assert!(log.contains("bad \u{fffd}\u{fffd} bytes"), "{log}");
        assert!(log.contains("line 199 of noise"), "{log}");
        assert!(log.contains("ERROR: the real reason"), "{log}");
    }

    #[tokio::test]
    async fn a_long_stderr_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = script(
            dir.path(),
            r#"head -c 100000 /dev/zero | tr '\0' x >&2
echo " end of the long line" >&2
echo "after it" >&2
exit 1"#,
        );
        let running = plugin.spawn(&[], false).unwrap();
        let tail = running.tail();
        running.wait().await.unwrap_err();
        let lines = tail.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].len(), LINE_CAP);
        assert!(lines[0].bytes().all(|b| b == b'x'));
        assert_eq!(lines[1], "after it");
    }

    #[tokio::test]
    async fn a_grandchild_holding_stderr_does_not_block_wait_or_kill() {
        let dir = tempfile::tempdir().unwrap();
        // A wrapper without `exec`: the background `sleep` keeps stderr open.
        let plugin = script(dir.path(), "sleep 10 &\necho 'ERROR: gone' >&2\nexit 2");
        let start = Instant::now();
        let err = plugin.spawn(&[], false).unwrap().wait().await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(6), "{err}");
        assert!(err.to_string().contains("exit code 2"), "{err}");
        assert!(err.to_string().contains("ERROR: gone"), "{err}");

        let plugin = script(dir.path(), "sleep 10 &\nsleep 10");
        let running = plugin.spawn(&[], false).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        running.kill().await;
        assert!(start.elapsed() < Duration::from_secs(6));
    }

    #[tokio::test]
    async fn read_line_capped_splits_lines_and_keeps_the_last_one() {
        let mut input: &[u8] = b"one\r\n\ntoo long\nlast";
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while read_line_capped(&mut input, &mut buf, 5).await.unwrap() {
            got.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(got, ["one\r", "", "too l", "last"]);
    }
}
