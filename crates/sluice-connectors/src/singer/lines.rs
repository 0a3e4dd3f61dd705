//! Singer output as lines: a pipe read on a blocking thread, split on `\n`.
//!
//! Taps (and whatever feeds `sluice singer target`) flush after every
//! message. Read through the async reactor, every flush would wake it
//! (edge-triggered epoll fires per pipe write: measured 190k wakeups and
//! +2 s of CPU per 200k records). A blocking read that waits a moment after
//! a short read lets the pipe fill instead: a few hundred reads a second.

use std::io::Read;
use std::time::Duration;

use tokio::sync::mpsc;

/// A read shorter than this waits [`COALESCE_WAIT`] before the next one.
const COALESCE_BELOW: usize = 64 * 1024;
/// See [`COALESCE_BELOW`].
const COALESCE_WAIT: Duration = Duration::from_millis(2);
/// Chunk size of one read.
const CHUNK: usize = 1 << 20;

/// Read `source` to its end on a blocking thread, in chunks. The thread
/// stops at the end, on an error (sent as the last item), or when the
/// receiver is dropped.
pub fn read_in_thread<R: Read + Send + 'static>(
    mut source: R,
) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut chunk = vec![0u8; CHUNK];
            match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        break;
                    }
                    if n < COALESCE_BELOW {
                        std::thread::sleep(COALESCE_WAIT);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

/// Chunks in, numbered lines out (1-based, `\r\n` or `\n`, blank lines
/// skipped but counted).
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    start: usize,
    line_no: u64,
}

impl Lines {
    /// Append a chunk.
    pub fn extend(&mut self, chunk: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete, non-blank line and its number.
    pub fn next_line(&mut self) -> Option<(u64, &[u8])> {
        loop {
            let nl = memchr::memchr(b'\n', &self.buf[self.start..])?;
            let (from, to) = (self.start, self.start + nl);
            self.start = to + 1;
            self.line_no += 1;
            let line = &self.buf[from..to];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                let (from, len) = (from, line.len());
                return Some((self.line_no, &self.buf[from..from + len]));
            }
        }
    }

    /// At the end of the input: the last line when it has no `\n`.
    pub fn last_line(&mut self) -> Option<(u64, Vec<u8>)> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        if rest.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        self.line_no += 1;
        Some((self.line_no, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_chunks_are_numbered_and_blank_ones_skipped() {
        let mut l = Lines::default();
        l.extend(b"a\r\n\nb");
        assert_eq!(l.next_line(), Some((1, &b"a"[..])));
        assert_eq!(l.next_line(), None);
        l.extend(b"c\nd");
        assert_eq!(l.next_line(), Some((3, &b"bc"[..])));
        assert_eq!(l.next_line(), None);
        assert_eq!(l.last_line(), Some((4, b"d".to_vec())));
        assert_eq!(l.last_line(), None);
    }
}
