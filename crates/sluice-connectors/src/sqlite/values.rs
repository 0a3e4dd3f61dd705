//! Parsing SQLite values (text dates, times, decimals, booleans) without
//! allocating: the read loop calls these once per value.

/// Microseconds per day.
const DAY_MICROS: i64 = 86_400_000_000;
/// The julian day number of 1970-01-01T00:00:00Z.
const UNIX_EPOCH_JULIAN: f64 = 2_440_587.5;
/// Days from 0001-01-01 (chrono's CE day 1) to 1970-01-01.
const CE_TO_UNIX_DAYS: i32 = 719_163;

/// Fixed-width digits at `b[at..at + n]`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of `YYYY-MM-DD` at the start of `b`.
fn ymd(b: &[u8]) -> Option<i64> {
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (y, m, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let date = chrono::NaiveDate::from_ymd_opt(y as i32, m, d)?;
    Some(i64::from(
        chrono::Datelike::num_days_from_ce(&date) - CE_TO_UNIX_DAYS,
    ))
}

/// `HH:MM[:SS[.fraction]]` at the start of `b`: (µs of the day, bytes used).
fn hms(b: &[u8]) -> Option<(i64, usize)> {
    if b.get(2) != Some(&b':') {
        return None;
    }
    let (h, m) = (digits(b, 0, 2)?, digits(b, 3, 2)?);
    if h > 23 || m > 59 {
        return None;
    }
    let mut micros = (i64::from(h) * 3600 + i64::from(m) * 60) * 1_000_000;
    let mut pos = 5;
    if b.get(pos) == Some(&b':') {
        let s = digits(b, pos + 1, 2)?;
        if s > 59 {
            return None;
        }
        micros += i64::from(s) * 1_000_000;
        pos += 3;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            let mut frac = 0i64;
            while let Some(c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
                if pos - start < 6 {
                    frac = frac * 10 + i64::from(c - b'0');
                } else if *c != b'0' {
                    // Finer than a microsecond: refuse rather than truncate.
                    return None;
                }
                pos += 1;
            }
            if pos == start {
                return None;
            }
            for _ in (pos - start)..6 {
                frac *= 10;
            }
            micros += frac;
        }
    }
    Some((micros, pos))
}

/// A time of day (`HH:MM[:SS[.ffffff]]`) in microseconds.
pub fn parse_time(b: &[u8]) -> Option<i64> {
    let (micros, used) = hms(b)?;
    (used == b.len()).then_some(micros)
}

/// An ISO-8601 date or date-time as microseconds since the epoch, UTC:
/// `YYYY-MM-DD`, then optionally `T` or a space, `HH:MM[:SS[.f]]` and a
/// zone (`Z`, `±HH:MM`, `±HHMM`, `±HH`; none means UTC).
pub fn parse_timestamp(b: &[u8]) -> Option<i64> {
    let days = ymd(b)?;
    let mut micros = days * DAY_MICROS;
    if b.len() == 10 {
        return Some(micros);
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (time, used) = hms(&b[11..])?;
    micros += time;
    let mut rest = &b[11 + used..];
    if rest.first() == Some(&b' ') {
        rest = &rest[1..];
    }
    match rest {
        [] | [b'Z' | b'z'] => Some(micros),
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let h = digits(zone, 0, 2)?;
            let m = match zone.len() {
                2 => 0,
                4 => digits(zone, 2, 2)?,
                5 if zone[2] == b':' => digits(zone, 3, 2)?,
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let offset = (i64::from(h) * 60 + i64::from(m)) * 60_000_000;
            Some(if *sign == b'+' {
                micros - offset
            } else {
                micros + offset
            })
        }
        _ => None,
    }
}

/// Unix seconds as microseconds.
pub fn unix_seconds(s: i64) -> Option<i64> {
    s.checked_mul(1_000_000)
}

/// A julian day number (SQLite's `julianday()`) as microseconds since the epoch.
pub fn julian_day(jd: f64) -> Option<i64> {
    let micros = ((jd - UNIX_EPOCH_JULIAN) * DAY_MICROS as f64).round();
    (micros.is_finite() && micros.abs() < 9.2e18).then_some(micros as i64)
}

/// Microseconds since the epoch → days, when it is exactly midnight.
pub fn midnight_days(micros: i64) -> Option<i32> {
    (micros.rem_euclid(DAY_MICROS) == 0)
        .then(|| i32::try_from(micros.div_euclid(DAY_MICROS)).ok())
        .flatten()
}

/// Unix seconds → days (the UTC date of that instant).
pub fn unix_days(s: i64) -> Option<i32> {
    i32::try_from(s.div_euclid(86_400)).ok()
}

/// `true`/`false`/`t`/`f`/`1`/`0` (any case).
pub fn parse_bool(b: &[u8]) -> Option<bool> {
    match b.len() {
        1 => match b[0].to_ascii_lowercase() {
            b't' | b'1' => Some(true),
            b'f' | b'0' => Some(false),
            _ => None,
        },
        4 if b.eq_ignore_ascii_case(b"true") => Some(true),
        5 if b.eq_ignore_ascii_case(b"false") => Some(false),
        _ => None,
    }
}

/// `10^n` as i128 (n ≤ 38).
pub fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// A decimal text (`-12.50`, `+3`, `.5`) as an unscaled Decimal128 value of
/// `scale`, at most `precision` digits. More fractional digits than `scale`
/// are refused unless they are zeros.
pub fn parse_decimal(b: &[u8], precision: u8, scale: i8) -> Result<i128, String> {
    let scale = scale.max(0) as usize;
    let (neg, body) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let mut value: i128 = 0;
    let mut int_digits = 0usize;
    let mut frac_digits = 0usize;
    let mut seen_point = false;
    let mut any = false;
    for &c in body {
        match c {
            b'0'..=b'9' => {
                any = true;
                if seen_point {
                    if frac_digits >= scale {
                        if c != b'0' {
                            return Err(format!("has more than {scale} decimal places"));
                        }
                        continue;
                    }
                    frac_digits += 1;
                } else if int_digits > 0 || c != b'0' {
                    int_digits += 1;
                }
                if int_digits + scale > usize::from(precision) {
                    return Err(format!("has more than {precision} digits"));
                }
                value = value * 10 + i128::from(c - b'0');
            }
            b'.' if !seen_point => seen_point = true,
            _ => return Err("is not a decimal number".into()),
        }
    }
    if !any {
        return Err("is not a decimal number".into());
    }
    value *= pow10((scale - frac_digits) as u32);
    Ok(if neg { -value } else { value })
}

/// A real rounded to `scale` places as an unscaled Decimal128 value.
pub fn real_to_decimal(v: f64, precision: u8, scale: i8) -> Result<i128, String> {
    if !v.is_finite() {
        return Err("is not a finite number".into());
    }
    let scaled = (v * 10f64.powi(i32::from(scale))).round();
    let limit = pow10(u32::from(precision));
    if scaled.abs() >= 1e38 || (scaled as i128).abs() >= limit {
        return Err(format!("has more than {precision} digits"));
    }
    Ok(scaled as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_their_iso_forms() {
        let t = |s: &str| parse_timestamp(s.as_bytes());
        let base = 1_709_294_400_000_000; // 2024-03-01T12:00:00Z
        assert_eq!(t("2024-03-01T12:00:00Z"), Some(base));
        assert_eq!(t("2024-03-01 12:00:00"), Some(base));
        assert_eq!(t("2024-03-01 12:00"), Some(base));
        assert_eq!(t("2024-03-01T12:00:00.5"), Some(base + 500_000));
        assert_eq!(t("2024-03-01T12:00:00.123456789"), None);
        assert_eq!(t("2024-03-01T12:00:00.123456000"), Some(base + 123_456));
        assert_eq!(t("2024-03-01T14:00:00+02:00"), Some(base));
        assert_eq!(t("2024-03-01T07:00:00-0500"), Some(base));
        assert_eq!(t("2024-03-01 12:00:00 +00"), Some(base));
        assert_eq!(t("2024-03-01"), Some(base - 43_200_000_000));
        for bad in [
            "2024-02-30",
            "2024-03-01X",
            "yesterday",
            "2024-03-01 25:00",
            "",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(julian_day(2_440_587.5), Some(0));
        assert_eq!(unix_seconds(1_709_294_400), Some(base));
        assert_eq!(midnight_days(86_400_000_000), Some(1));
        assert_eq!(midnight_days(1), None);
        assert_eq!(parse_time(b"12:30:05.25"), Some(45_005_250_000));
        assert_eq!(parse_time(b"24:00"), None);
    }

    #[test]
    fn decimals_and_booleans() {
        assert_eq!(parse_decimal(b"-12.5", 10, 2), Ok(-1250));
        assert_eq!(parse_decimal(b".5", 10, 2), Ok(50));
        assert_eq!(parse_decimal(b"7.100", 10, 2), Ok(710));
        assert!(parse_decimal(b"7.105", 10, 2).is_err());
        assert!(parse_decimal(b"123456789", 10, 2).is_err());
        assert!(parse_decimal(b"abc", 10, 2).is_err());
        assert!(parse_decimal(b"-", 10, 2).is_err());
        assert_eq!(real_to_decimal(0.1 + 0.2, 10, 2), Ok(30));
        assert!(real_to_decimal(1e12, 10, 2).is_err());
        assert_eq!(parse_bool(b"TRUE"), Some(true));
        assert_eq!(parse_bool(b"0"), Some(false));
        assert_eq!(parse_bool(b"yes"), None);
    }
}
