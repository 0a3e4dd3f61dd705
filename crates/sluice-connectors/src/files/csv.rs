//! The CSV tokenizer: bytes → records in one reused buffer.
//!
//! ```text
//!  file ─read 1 MiB─► input buffer ─csv-core DFA─► Records
//!                                                   data:   idaliceNYC2bob…   (unescaped field bytes)
//!                                                   bounds: 0 2 7 10 11 14 …  (field i = data[bounds[i]..bounds[i+1]])
//!                                                   rec_start, lines          (per record)
//! ```
//!
//! `csv-core` never fails and copies field bytes without per-field
//! allocation. Around it this module adds what `csv-core` does not: the
//! 1-based line where each record starts (skipped blank and comment lines
//! included), `skip_lines`, a UTF-8 BOM, and the detection of a quoted field
//! left open at the end of the file (found by feeding one probe `\n`: inside
//! quotes it is copied as data instead of ending the record).

use std::io::{self, Read};

use csv_core::{ReadRecordResult, Reader, ReaderBuilder, Terminator};

use super::config::CsvDialect;

const INPUT_CHUNK: usize = 1 << 20;

/// Records of one batch, tokenized.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Unescaped field bytes, back to back; `used` bytes are valid.
    data: Vec<u8>,
    used: usize,
    /// `bounds[0] = 0`; field `i` is `data[bounds[i]..bounds[i + 1]]`.
    /// `nbounds` entries are valid.
    bounds: Vec<usize>,
    nbounds: usize,
    /// Record `r` holds fields `rec_start[r]..rec_start[r + 1]`.
    rec_start: Vec<usize>,
    /// 1-based line where each record starts.
    lines: Vec<u64>,
    /// The last record ends inside an unterminated quoted field.
    pub(crate) unterminated: Option<Unterminated>,
}

/// A quoted field still open at the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unterminated {
    /// The record (always the last one).
    pub(crate) record: usize,
    /// Index of the open field within the record.
    pub(crate) field: usize,
    /// Line where the open field starts.
    pub(crate) line: u64,
}

impl Records {
    /// Forget every record, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.used = 0;
        self.nbounds = 1;
        if self.bounds.is_empty() {
            self.bounds.resize(1 << 12, 0);
        }
        if self.data.is_empty() {
            self.data.resize(1 << 16, 0);
        }
        self.rec_start.clear();
        self.rec_start.push(0);
        self.lines.clear();
        self.unterminated = None;
    }

    /// Number of records.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }

    /// The valid field bytes of all records.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data[..self.used]
    }

    /// Field boundaries (`bounds[i]..bounds[i + 1]`).
    pub(crate) fn bounds(&self) -> &[usize] {
        &self.bounds[..self.nbounds]
    }

    /// Per record, the index of its first field (one extra entry at the end).
    pub(crate) fn rec_start(&self) -> &[usize] {
        &self.rec_start
    }

    /// Start line of record `r`.
    pub(crate) fn line(&self, r: usize) -> u64 {
        self.lines[r]
    }

    /// Fields in record `r`.
    pub(crate) fn field_count(&self, r: usize) -> usize {
        self.rec_start[r + 1] - self.rec_start[r]
    }

    /// Bytes of field `c` of record `r` (`c < field_count(r)`).
    pub(crate) fn field(&self, r: usize, c: usize) -> &[u8] {
        let i = self.rec_start[r] + c;
        &self.data[self.bounds[i]..self.bounds[i + 1]]
    }

    /// The fields of record `r` as (lossy) texts.
    pub(crate) fn texts(&self, r: usize) -> Vec<String> {
        (0..self.field_count(r))
            .map(|c| String::from_utf8_lossy(self.field(r, c)).into_owned())
            .collect()
    }

    fn grow_data(&mut self) {
        let len = (self.data.len() * 2).max(1 << 16);
        self.data.resize(len, 0);
    }

    fn grow_bounds(&mut self) {
        let len = (self.bounds.len() * 2).max(1 << 12);
        self.bounds.resize(len, 0);
    }

    /// csv-core wrote the ends of the record's fields relative to the
    /// record's first byte; make them absolute and close the record.
    fn finish_record(&mut self, first_bound: usize, data_start: usize, line: u64) {
        for b in &mut self.bounds[first_bound..self.nbounds] {
            *b += data_start;
        }
        self.rec_start.push(self.nbounds - 1);
        self.lines.push(line);
    }
}

/// Streaming tokenizer over one file.
pub(crate) struct CsvReader<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    done: bool,
    started: bool,
    core: Reader,
    comment: Option<u8>,
    skip_lines: usize,
    in_comment: bool,
    /// Mid-record: (first bound index, data start, start line).
    open: Option<(usize, usize, u64)>,
    bytes: u64,
}

impl<R: Read> CsvReader<R> {
    /// A tokenizer over `src` with `dialect`.
    pub(crate) fn new(src: R, dialect: &CsvDialect) -> Self {
        let core = ReaderBuilder::new()
            .delimiter(dialect.delimiter)
            .quote(dialect.quote)
            .escape(dialect.escape)
            .double_quote(dialect.double_quote)
            .terminator(Terminator::CRLF)
            .build();
        Self {
            src,
            buf: vec![0; INPUT_CHUNK],
            pos: 0,
            len: 0,
            eof: false,
            done: false,
            started: false,
            core,
            comment: dialect.comment,
            skip_lines: dialect.skip_lines,
            in_comment: false,
            open: None,
            bytes: 0,
        }
    }

    /// Bytes read from the file so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Append up to `max` records to `out`; returns how many (0: end of file).
    pub(crate) fn read(&mut self, out: &mut Records, max: usize) -> io::Result<usize> {
        if out.rec_start.is_empty() {
            out.clear();
        }
        let mut n = 0;
        while n < max && !self.done {
            if self.pos == self.len && !self.eof {
                self.fill()?;
                continue;
            }
            let Some((first_bound, data_start, line)) = self.open else {
                if self.between_records() {
                    self.open = Some((out.nbounds, out.used, self.core.line()));
                }
                continue;
            };
            if self.pos == self.len {
                self.finish_at_eof(out, first_bound, data_start, line);
                n += 1;
                self.done = true;
                break;
            }
            let (res, nin, nout, nend) = self.core.read_record(
                &self.buf[self.pos..self.len],
                &mut out.data[out.used..],
                &mut out.bounds[out.nbounds..],
            );
            self.pos += nin;
            out.used += nout;
            out.nbounds += nend;
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => out.grow_data(),
                ReadRecordResult::OutputEndsFull => out.grow_bounds(),
                ReadRecordResult::Record => {
                    out.finish_record(first_bound, data_start, line);
                    self.open = None;
                    n += 1;
                }
                ReadRecordResult::End => self.done = true,
            }
        }
        Ok(n)
    }

    /// Skip what lies between records (blank lines, comments, `skip_lines`)
    /// one step at a time; true when the next byte starts a record. Sets
    /// `done` at the end of the file.
    fn between_records(&mut self) -> bool {
        if self.pos == self.len {
            self.done = true;
            return false;
        }
        let rest = &self.buf[self.pos..self.len];
        if self.skip_lines > 0 || self.in_comment {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    self.pos += i + 1;
                    self.core.set_line(self.core.line() + 1);
                    if self.in_comment {
                        self.in_comment = false;
                    } else {
                        self.skip_lines -= 1;
                    }
                }
                None => self.pos = self.len,
            }
            return false;
        }
        match rest[0] {
            b'\n' => {
                self.pos += 1;
                self.core.set_line(self.core.line() + 1);
            }
            b'\r' => self.pos += 1,
            b if Some(b) == self.comment => self.in_comment = true,
            _ => return true,
        }
        false
    }

    /// The file ended inside a record: close it, and tell whether a quoted
    /// field was left open.
    fn finish_at_eof(
        &mut self,
        out: &mut Records,
        first_bound: usize,
        data_start: usize,
        line: u64,
    ) {
        // Probe with a newline: outside quotes it ends the record; inside
        // quotes it is copied as data.
        let mut quoted = false;
        loop {
            let (res, _, nout, nend) = self.core.read_record(
                b"\n",
                &mut out.data[out.used..],
                &mut out.bounds[out.nbounds..],
            );
            out.nbounds += nend;
            match res {
                ReadRecordResult::OutputFull => out.grow_data(),
                ReadRecordResult::OutputEndsFull => out.grow_bounds(),
                ReadRecordResult::Record | ReadRecordResult::End => break,
                ReadRecordResult::InputEmpty => {
                    // Inside quotes: the probe byte was copied as data
                    // (`nout` is 1). It is not data: `used` stays as it is.
                    debug_assert!(nout <= 1);
                    quoted = true;
                    break;
                }
            }
        }
        if quoted {
            loop {
                let (res, _, _, nend) = self.core.read_record(
                    &[],
                    &mut out.data[out.used..],
                    &mut out.bounds[out.nbounds..],
                );
                out.nbounds += nend;
                match res {
                    ReadRecordResult::OutputEndsFull => out.grow_bounds(),
                    ReadRecordResult::OutputFull => out.grow_data(),
                    _ => break,
                }
            }
            // The last end (still relative to the record) counted the probe byte.
            let last = out.nbounds - 1;
            out.bounds[last] = out.bounds[last].saturating_sub(1);
        }
        out.finish_record(first_bound, data_start, line);
        self.open = None;
        if quoted {
            let r = out.len() - 1;
            let field = out.field_count(r) - 1;
            let before = out.rec_start[r + 1] - 1;
            let start = out.bounds[out.rec_start[r]];
            let newlines = memchr::memchr_iter(b'\n', &out.data[start..out.bounds[before]]).count();
            out.unterminated = Some(Unterminated {
                record: r,
                field,
                line: line + newlines as u64,
            });
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        self.pos = 0;
        self.len = 0;
        // Fill the whole buffer on the first read so a BOM is seen entirely.
        loop {
            let n = match self.src.read(&mut self.buf[self.len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.len += n;
            self.bytes += n as u64;
            if n == 0 {
                self.eof = true;
                break;
            }
            if self.started || self.len == self.buf.len() {
                break;
            }
        }
        if !self.started {
            self.started = true;
            if self.buf[..self.len].starts_with(b"\xEF\xBB\xBF") {
                self.pos = 3;
            }
        }
        Ok(())
    }
}
