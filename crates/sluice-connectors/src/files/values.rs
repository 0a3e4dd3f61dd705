//! Text → value parsers shared by type inference and the CSV decoder.
//!
//! The shapes are strict on purpose: inference only proposes a type when
//! every sampled value has its canonical shape, so that decoding later never
//! truncates (a `date` column refuses `2024-01-01T10:00:00` instead of
//! dropping the time). Timestamps have a hand-written fast path for the
//! common `YYYY-MM-DD[T ]HH:MM:SS[.f][Z]` shape and fall back to
//! `arrow_cast`'s parser for everything else (offsets, odd forms).

use arrow::datatypes::{Date32Type, Int64Type};
use arrow_cast::parse::{Parser, string_to_datetime};
use chrono::Utc;

/// `true`/`false` in any case: the words inference accepts as booleans.
pub(crate) fn is_bool_word(s: &str) -> bool {
    s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
}

/// A declared `bool` column accepts `true/false`, `t/f`, `yes/no`, `y/n`, `1/0`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "t", "yes", "y", "1"];
    const FALSE: [&str; 5] = ["false", "f", "no", "n", "0"];
    let s = s.trim();
    if TRUE.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if FALSE.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

/// An integer token inference may type as int64: optional sign, digits, no
/// leading zero (`007` stays text: codes and zip codes keep their zeros).
pub(crate) fn is_int_token(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s).as_bytes();
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits[0] != b'0')
        && Int64Type::parse(s).is_some()
}

/// A token that looks like an integer but is not an int64 (leading zeros,
/// overflow): inference must not turn it into a float either.
pub(crate) fn is_integer_like(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s).as_bytes();
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// `YYYY-MM-DD` (or an ISO extended year such as `+10000-01-01`) → days since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<i32> {
    if s.len() > 10 && !s.starts_with(['+', '-']) {
        return None;
    }
    Date32Type::parse(s)
}

/// Whether a timestamp carries its own offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsShape {
    /// `2024-01-01 10:00:00`: wall-clock time, no zone.
    Naive,
    /// `2024-01-01T10:00:00Z`, `…+02:00`: an instant.
    Zoned,
}

/// The shape of a timestamp text: `YYYY-MM-DD[T ]HH:MM:SS[.f]` then nothing
/// (naive), `Z` or an offset `±HH[:MM]` (zoned). `None` for anything else.
pub(crate) fn timestamp_shape(s: &str) -> Option<TsShape> {
    let b = s.as_bytes();
    if b.len() < 19 || !is_date_shape(&b[..10]) || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let digit = |i: usize| b[i].is_ascii_digit();
    if !(digit(11) && digit(12) && b[13] == b':' && digit(14) && digit(15) && b[16] == b':')
        || !(digit(17) && digit(18))
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let rest = s[i..].trim_start_matches(' ');
    let shape = match rest.as_bytes() {
        [] => TsShape::Naive,
        [b'Z' | b'z'] => TsShape::Zoned,
        [b'+' | b'-', tail @ ..] => {
            let ok = match tail {
                [h1, h2] => h1.is_ascii_digit() && h2.is_ascii_digit(),
                [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => {
                    [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
                }
                _ => false,
            };
            if !ok {
                return None;
            }
            TsShape::Zoned
        }
        _ => return None,
    };
    // The shape is right; the value must also exist (no 2024-02-30).
    parse_timestamp_micros(s).map(|_| shape)
}

fn is_date_shape(b: &[u8]) -> bool {
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A timestamp text → microseconds since the epoch, in UTC. Texts without an
/// offset are taken as they are (UTC wall clock); texts with one are
/// converted to UTC.
pub(crate) fn parse_timestamp_micros(s: &str) -> Option<i64> {
    if let Some(v) = fast_timestamp(s.as_bytes()) {
        return Some(v);
    }
    string_to_datetime(&Utc, s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z]` without allocation or chrono.
/// Anything else (offsets, leap seconds, short forms) returns `None` and
/// takes the general path.
fn fast_timestamp(b: &[u8]) -> Option<i64> {
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let d = |i: usize| -> Option<i64> {
        let v = b[i].wrapping_sub(b'0');
        (v < 10).then_some(v as i64)
    };
    let two = |i: usize| -> Option<i64> { Some(d(i)? * 10 + d(i + 1)?) };
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    match &b[i..] {
        [] | [b'Z' | b'z'] => {}
        _ => return None,
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(secs * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests may unwrap")]
mod tests {
    use super::*;

    #[test]
    fn fast_path_agrees_with_arrow() {
        let samples = [
            "2024-01-01T00:00:00Z",
            "2023-07-15 13:45:59",
            "2000-02-29T23:59:59.5",
            "1969-12-31T23:59:59.999999Z",
            "1900-03-01 00:00:00.123456789",
            "2400-02-29T12:00:00.1Z",
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59.999999",
        ];
        for s in samples {
            let expected = string_to_datetime(&Utc, s).unwrap().timestamp_micros();
            assert_eq!(fast_timestamp(s.as_bytes()), Some(expected), "{s}");
        }
        assert_eq!(fast_timestamp(b"2023-02-29T00:00:00"), None);
        assert_eq!(fast_timestamp(b"2023-01-01T24:00:00"), None);
        assert_eq!(fast_timestamp(b"2023-01-01T10:00:00+02:00"), None);
        assert_eq!(
            parse_timestamp_micros("2023-01-01T10:00:00+02:00"),
            parse_timestamp_micros("2023-01-01T08:00:00Z")
        );
    }

    #[test]
    fn shapes() {
        assert_eq!(
            timestamp_shape("2024-01-01T10:00:00Z"),
            Some(TsShape::Zoned)
        );
        assert_eq!(
            timestamp_shape("2024-01-01 10:00:00.25 +0530"),
            Some(TsShape::Zoned)
        );
        assert_eq!(timestamp_shape("2024-01-01 10:00:00"), Some(TsShape::Naive));
        assert_eq!(timestamp_shape("2024-01-01T10:00"), None);
        assert_eq!(timestamp_shape("2024-02-30T10:00:00"), None);
        assert_eq!(timestamp_shape("2024-01-01T10:00:00 PST"), None);
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2024-02-29T10:00:00"), None);
        assert!(is_int_token("-42") && is_int_token("0") && !is_int_token("007"));
        assert!(!is_int_token("99999999999999999999") && is_integer_like("007"));
        assert_eq!(parse_bool("Yes"), Some(true));
        assert!(is_bool_word("FALSE") && !is_bool_word("1"));
    }
}
