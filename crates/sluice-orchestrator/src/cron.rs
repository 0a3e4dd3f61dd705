//! Cron schedules with time zones: parse a 5-field expression (or a macro such
//! as `@daily`) and compute when it fires.
//!
//! ```text
//!   "*/15 9-17 * * MON-FRI"  --Cron::parse-->  Cron (one bit set per field)
//!   Cron + "Europe/Paris"    --Schedule------>  next_after(t) / ticks_between(a, b)
//! ```
//!
//! # Semantics
//! - Fields are `minute hour day-of-month month day-of-week`. Each takes `*`,
//!   a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to the
//!   field's maximum), or a comma list of those. Months take `JAN`–`DEC`, days
//!   of the week `SUN`–`SAT` (any case); day-of-week `0` and `7` are Sunday.
//! - Vixie cron's day rule: if day-of-month or day-of-week starts with `*`
//!   (this includes `*/2`), a day must match both fields; if both are
//!   restricted, a day matches when **either** matches (`0 0 13 * FRI` fires on
//!   every 13th and on every Friday).
//! - Ticks are computed on the wall clock of the schedule's zone, then turned
//!   into UTC instants:
//!   - a local time that does not exist (clocks spring forward) is skipped:
//!     `0 2 * * *` in `America/New_York` does not fire on the day 02:00 is
//!     skipped;
//!   - a local time that happens twice (clocks fall back) fires once, at its
//!     first occurrence. This holds for every minute of the repeated hour, so
//!     `*/15 * * * *` pauses during the second pass of that hour.
//! - The search never walks minute by minute: it skips whole months, days and
//!   hours that cannot match. It gives up after five years (`0 0 30 2 *` never
//!   fires).

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Months, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// Result alias for this module.
pub type Result<T, E = CronError> = std::result::Result<T, E>;

/// How far ahead [`Schedule::next_after`] looks before it gives up.
const HORIZON_MONTHS: u32 = 5 * 12;

/// One of the five fields of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    /// Minute of the hour, 0–59.
    Minute,
    /// Hour of the day, 0–23.
    Hour,
    /// Day of the month, 1–31.
    DayOfMonth,
    /// Month, 1–12 or `JAN`–`DEC`.
    Month,
    /// Day of the week, 0–7 or `SUN`–`SAT` (0 and 7 are Sunday).
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
    ];

    /// The field's name as written in messages, e.g. `day-of-month`.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        }
    }

    /// The values the field accepts, e.g. `0-59`.
    pub fn allowed(self) -> &'static str {
        match self {
            CronField::Minute => "0-59",
            CronField::Hour => "0-23",
            CronField::DayOfMonth => "1-31",
            CronField::Month => "1-12 or JAN-DEC",
            CronField::DayOfWeek => "0-7 or SUN-SAT, 0 and 7 are Sunday",
        }
    }

    fn example(self) -> &'static str {
        match self {
            CronField::Minute => "`0`, `*/15` or `0,30`",
            CronField::Hour => "`6`, `9-17` or `*/2`",
            CronField::DayOfMonth => "`1`, `1-15` or `1,15`",
            CronField::Month => "`1`, `JAN-MAR` or `*/3`",
            CronField::DayOfWeek => "`1-5`, `MON-FRI` or `SAT,SUN`",
        }
    }

    fn min(self) -> u32 {
        match self {
            CronField::DayOfMonth | CronField::Month => 1,
            _ => 0,
        }
    }

    fn max(self) -> u32 {
        match self {
            CronField::Minute => 59,
            CronField::Hour => 23,
            CronField::DayOfMonth => 31,
            CronField::Month => 12,
            CronField::DayOfWeek => 7,
        }
    }

    /// Names accepted for values `min()..`, in order.
    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
            CronField::DayOfWeek => &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
            _ => &[],
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with one token of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    /// The field or one item of its comma list is empty (`1,,2`).
    Empty,
    /// The token is neither a number nor a name the field accepts.
    NotAValue,
    /// The value is outside the field's range.
    OutOfRange,
    /// A range whose start is after its end (`5-1`).
    Reversed,
    /// A step that is not a number from 1 to the field's maximum.
    BadStep,
    /// A step of 0.
    ZeroStep,
}

impl FieldProblem {
    fn describe(self, token: &str) -> String {
        match self {
            FieldProblem::Empty => format!("has an empty item in `{token}`"),
            FieldProblem::NotAValue => format!("value `{token}` is not a number or a known name"),
            FieldProblem::OutOfRange => format!("value `{token}` is out of range"),
            FieldProblem::Reversed => format!("range `{token}` is reversed (start after end)"),
            FieldProblem::BadStep => format!("step `{token}` is not a valid step"),
            FieldProblem::ZeroStep => format!("step `{token}` is zero"),
        }
    }
}

/// A cron expression or time zone that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not have five fields.
    #[error(
        "Cron expression `{expr}` has {found} field(s); expected 5: minute hour day-of-month month day-of-week"
    )]
    FieldCount {
        /// The expression as given.
        expr: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// An `@` macro that is not supported.
    #[error(
        "Cron expression `{expr}`: unknown macro `{token}`; expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"
    )]
    UnknownMacro {
        /// The expression as given.
        expr: String,
        /// The macro.
        token: String,
    },
    /// One field is invalid.
    #[error("Cron expression `{expr}`: {field} {} (allowed: {})", .problem.describe(.token), .field.allowed())]
    Field {
        /// The expression as given.
        expr: String,
        /// Which field.
        field: CronField,
        /// The offending token (a value, a range, a step or the whole field).
        token: String,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// A time zone that is not in the IANA database.
    #[error("Unknown time zone `{name}`")]
    UnknownTimeZone {
        /// The zone as given.
        name: String,
        /// The zone's correct spelling, when only the case is wrong.
        suggestion: Option<&'static str>,
    },
}

impl CronError {
    /// A short suggestion for the user, with an example.
    pub fn hint(&self) -> String {
        match self {
            CronError::FieldCount { .. } => {
                "write five fields: minute hour day-of-month month day-of-week, e.g. `0 6 * * 1-5` \
                 (06:00 on weekdays), or a macro such as `@daily`"
                    .to_string()
            }
            CronError::UnknownMacro { .. } => {
                "use `@hourly`, `@daily`, `@weekly`, `@monthly` or `@yearly`, or five fields \
                 such as `0 6 * * *`"
                    .to_string()
            }
            CronError::Field { field, problem, .. } => match problem {
                FieldProblem::Reversed => format!(
                    "write the smaller value first, e.g. `1-5`; for a range that wraps use a list \
                     such as `22-23,0-2` ({field} takes {})",
                    field.allowed()
                ),
                FieldProblem::ZeroStep | FieldProblem::BadStep => format!(
                    "a step is a number from 1 to {}, e.g. `*/15` (every 15th value)",
                    field.max()
                ),
                _ => format!(
                    "the {field} field takes {}, e.g. {}",
                    field.allowed(),
                    field.example()
                ),
            },
            CronError::UnknownTimeZone { suggestion, .. } => match suggestion {
                Some(name) => format!("did you mean `{name}`?"),
                None => {
                    "use an IANA name such as Europe/Paris, America/New_York or UTC".to_string()
                }
            },
        }
    }
}

/// A parsed cron expression: the set of minutes, hours, days and months at
/// which it fires, without a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    expr: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bit 0 is Sunday; 7 is folded into 0 when parsing.
    days_of_week: u64,
    dom_star: bool,
    dow_star: bool,
}

impl Cron {
    /// Parses a 5-field expression or a macro (`@daily`, `@hourly`, ...).
    pub fn parse(expr: &str) -> Result<Cron> {
        let expr = expr.trim();
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let expanded: Vec<&str> = match fields.as_slice() {
            [one] if one.starts_with('@') => expand_macro(one)
                .ok_or_else(|| CronError::UnknownMacro {
                    expr: expr.to_string(),
                    token: (*one).to_string(),
                })?
                .split(' ')
                .collect(),
            _ => fields,
        };
        let [minute, hour, dom, month, dow] = expanded.as_slice() else {
            return Err(CronError::FieldCount {
                expr: expr.to_string(),
                found: expanded.len(),
            });
        };
        let parse = |field: CronField, text: &str| parse_field(expr, field, text);
        let [f_min, f_hour, f_dom, f_month, f_dow] = CronField::ALL;
        Ok(Cron {
            expr: expr.to_string(),
            minutes: parse(f_min, minute)?,
            hours: parse(f_hour, hour)?,
            days_of_month: parse(f_dom, dom)?,
            months: parse(f_month, month)?,
            days_of_week: parse(f_dow, dow)?,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// Whether the expression fires at this wall-clock minute (seconds are
    /// ignored).
    pub fn matches(&self, t: NaiveDateTime) -> bool {
        has(self.months, t.month())
            && self.day_matches(t.date())
            && has(self.hours, t.hour())
            && has(self.minutes, t.minute())
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = has(self.days_of_month, date.day());
        let dow = has(self.days_of_week, date.weekday().num_days_from_sunday());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching wall-clock minute at or after `from` (whose seconds
    /// must be zero), or `None` past the end of `last_year`.
    fn next_local(&self, from: NaiveDateTime, last_year: i32) -> Option<NaiveDateTime> {
        let (mut y, mut mo, mut d) = (from.year(), from.month(), from.day());
        let (mut h, mut mi) = (from.hour(), from.minute());
        // Each step either accepts the current unit or moves to the start of
        // the next candidate unit; out-of-range values (month 13, hour 24, ...)
        // carry into the next larger unit on the following pass.
        loop {
            if y > last_year {
                return None;
            }
            match next_bit(self.months, mo) {
                Some(m) if m == mo => {}
                Some(m) => (mo, d, h, mi) = (m, 1, 0, 0),
                None => {
                    (y, mo, d, h, mi) = (y + 1, 1, 1, 0, 0);
                    continue;
                }
            }
            let found = (d..=days_in_month(y, mo)).find(|&day| {
                NaiveDate::from_ymd_opt(y, mo, day).is_some_and(|date| self.day_matches(date))
            });
            match found {
                Some(day) if day == d => {}
                Some(day) => (d, h, mi) = (day, 0, 0),
                None => {
                    (mo, d, h, mi) = (mo + 1, 1, 0, 0);
                    continue;
                }
            }
            match next_bit(self.hours, h) {
                Some(x) if x == h => {}
                Some(x) => (h, mi) = (x, 0),
                None => {
                    (d, h, mi) = (d + 1, 0, 0);
                    continue;
                }
            }
            match next_bit(self.minutes, mi) {
                Some(x) => return NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_opt(h, x, 0),
                None => (h, mi) = (h + 1, 0),
            }
        }
    }
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Cron> {
        Cron::parse(s)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// A cron expression evaluated on the wall clock of a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// When it fires.
    pub cron: Cron,
    /// The zone whose wall clock the expression reads.
    pub tz: Tz,
}

impl Schedule {
    /// Parses an expression and an IANA time zone name (UTC when `None`).
    pub fn parse(expr: &str, timezone: Option<&str>) -> Result<Schedule> {
        let cron = Cron::parse(expr)?;
        let tz = match timezone {
            None => Tz::UTC,
            Some(name) => {
                parse_time_zone(name).map_err(|suggestion| CronError::UnknownTimeZone {
                    name: name.to_string(),
                    suggestion,
                })?
            }
        };
        Ok(Schedule { cron, tz })
    }

    /// The first tick strictly after `after`, or `None` if there is none in
    /// the next five years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let horizon = after.checked_add_months(Months::new(HORIZON_MONTHS))?;
        let last_year = horizon.with_timezone(&self.tz).year();
        let local = after.with_timezone(&self.tz).naive_local();
        let mut from = local
            .with_second(0)?
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::minutes(1))?;
        loop {
            let candidate = self.cron.next_local(from, last_year)?;
            // `earliest` is the single instant, or the first of two when the
            // clocks fall back; `None` when the time is skipped.
            if let Some(fire) = self.tz.from_local_datetime(&candidate).earliest() {
                let fire = fire.with_timezone(&Utc);
                if fire > horizon {
                    return None;
                }
                if fire > after {
                    return Some(fire);
                }
            }
            from = candidate.checked_add_signed(TimeDelta::minutes(1))?;
        }
    }

    /// Every tick strictly after `after`, up to and including `until`.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let next = self.next_after(cursor).filter(|t| *t <= until)?;
            cursor = next;
            Some(next)
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.cron, self.tz.name())
    }
}

/// Looks up an IANA zone; on failure returns the correct spelling if only the
/// case differs.
pub(crate) fn parse_time_zone(name: &str) -> Result<Tz, Option<&'static str>> {
    let name = name.trim();
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    Err(chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .find(|known| known.eq_ignore_ascii_case(name)))
}

fn expand_macro(token: &str) -> Option<&'static str> {
    Some(match token.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Parses one field into a bit set (bit `v` set when value `v` matches).
fn parse_field(expr: &str, field: CronField, text: &str) -> Result<u64> {
    let err = |token: &str, problem| CronError::Field {
        expr: expr.to_string(),
        field,
        token: token.to_string(),
        problem,
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err(text, FieldProblem::Empty));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(parse_step(step).map_err(|p| err(step, p))?)),
            None => (item, None),
        };
        // An empty bound (`0-`) is reported with its whole item.
        let value = |token: &str| {
            parse_value(field, token)
                .map_err(|p| err(if token.is_empty() { item } else { token }, p))
        };
        let (lo, hi) = if range == "*" {
            (field.min(), field.max())
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step.is_some() { field.max() } else { v })
        };
        if lo > hi {
            return Err(err(range, FieldProblem::Reversed));
        }
        let step = step.unwrap_or(1);
        if step > field.max() {
            return Err(err(&step.to_string(), FieldProblem::BadStep));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    if field == CronField::DayOfWeek && has(bits, 7) {
        bits = (bits & !(1 << 7)) | 1;
    }
    Ok(bits)
}

fn parse_step(token: &str) -> Result<u32, FieldProblem> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldProblem::BadStep);
    }
    match token.parse::<u32>() {
        Ok(0) => Err(FieldProblem::ZeroStep),
        Ok(step) => Ok(step),
        Err(_) => Err(FieldProblem::BadStep),
    }
}

fn parse_value(field: CronField, token: &str) -> Result<u32, FieldProblem> {
    if token.is_empty() {
        return Err(FieldProblem::Empty);
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u32>() {
            Ok(v) if (field.min()..=field.max()).contains(&v) => Ok(v),
            _ => Err(FieldProblem::OutOfRange),
        };
    }
    field
        .names()
        .iter()
        .position(|name| name.eq_ignore_ascii_case(token))
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| i + field.min())
        .ok_or(FieldProblem::NotAValue)
}

fn has(bits: u64, v: u32) -> bool {
    v < 64 && bits & (1 << v) != 0
}

/// The smallest set bit at or above `from`.
fn next_bit(bits: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = bits >> from;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ticks(schedule: &Schedule, after: &str, until: &str) -> Vec<String> {
        schedule
            .ticks_between(utc(after), utc(until))
            .map(|t| t.to_rfc3339())
            .collect()
    }

    fn same_bits(a: &Cron, b: &Cron) -> bool {
        (
            a.minutes,
            a.hours,
            a.days_of_month,
            a.months,
            a.days_of_week,
        ) == (
            b.minutes,
            b.hours,
            b.days_of_month,
            b.months,
            b.days_of_week,
        ) && (a.dom_star, a.dow_star) == (b.dom_star, b.dow_star)
    }

    #[test]
    fn fields_parse_to_the_right_values() {
        let c = Cron::parse("5/20 9-17/4 1,15,20-22 jan-mar,Dec */2").unwrap();
        assert_eq!(c.minutes, 1 << 5 | 1 << 25 | 1 << 45);
        assert_eq!(c.hours, 1 << 9 | 1 << 13 | 1 << 17);
        assert_eq!(
            c.days_of_month,
            1 << 1 | 1 << 15 | 1 << 20 | 1 << 21 | 1 << 22
        );
        assert_eq!(c.months, 1 << 1 | 1 << 2 | 1 << 3 | 1 << 12);
        // `*/2` over 0-7 is 0,2,4,6 (7 is excluded by the step).
        assert_eq!(c.days_of_week, 1 | 1 << 2 | 1 << 4 | 1 << 6);
        assert_eq!(Cron::parse("* * * * *").unwrap().minutes, (1 << 60) - 1);
    }

    #[test]
    fn sunday_is_zero_seven_or_sun() {
        let zero = Cron::parse("0 0 * * 0").unwrap();
        assert!(same_bits(&zero, &Cron::parse("0 0 * * 7").unwrap()));
        assert!(same_bits(&zero, &Cron::parse("0 0 * * sun").unwrap()));
        let weekend = Cron::parse("0 0 * * SAT,SUN").unwrap();
        assert!(same_bits(&weekend, &Cron::parse("0 0 * * 6-7").unwrap()));
        assert_eq!(weekend.days_of_week, 1 | 1 << 6);
    }

    #[test]
    fn macros_expand_to_their_five_fields() {
        for (mac, fields) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@MIDNIGHT", "0 0 * * *"),
            ("@hourly", "0 * * * *"),
        ] {
            let a = Cron::parse(mac).unwrap();
            assert!(same_bits(&a, &Cron::parse(fields).unwrap()), "{mac}");
            assert_eq!(a.as_str(), mac);
        }
    }

    #[test]
    fn weekly_fires_sunday_midnight() {
        let s = Schedule::parse("@weekly", None).unwrap();
        // 2026-11-24 is a Tuesday.
        assert_eq!(
            ticks(&s, "2026-11-24T10:00:00Z", "2026-12-13T00:00:00Z"),
            [
                "2026-11-29T00:00:00+00:00",
                "2026-12-06T00:00:00+00:00",
                "2026-12-13T00:00:00+00:00",
            ]
        );
    }

    #[test]
    fn next_after_is_strictly_after_and_ignores_seconds() {
        let s = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T10:00:00Z")),
            Some(utc("2026-01-01T10:01:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-01-01T10:00:30.5Z")),
            Some(utc("2026-01-01T10:01:00Z"))
        );
        let s = Schedule::parse("59 23 31 12 *", None).unwrap();
        assert_eq!(
            s.next_after(utc("2026-12-31T23:59:00Z")),
            Some(utc("2027-12-31T23:59:00Z"))
        );
    }

    #[test]
    fn ticks_between_excludes_after_and_includes_until() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        assert_eq!(
            ticks(&s, "2026-01-01T10:00:00Z", "2026-01-01T12:00:00Z"),
            ["2026-01-01T11:00:00+00:00", "2026-01-01T12:00:00+00:00"]
        );
        assert!(ticks(&s, "2026-01-01T10:00:00Z", "2026-01-01T10:59:00Z").is_empty());
    }

    #[test]
    fn weekday_business_hours_in_paris_across_spring_forward() {
        // Europe/Paris moves from UTC+1 to UTC+2 on Sunday 2026-03-29.
        let s = Schedule::parse("*/15 9-17 * * MON-FRI", Some("Europe/Paris")).unwrap();
        // Friday 17:45 CET is the last tick of the week; the next is Monday
        // 09:00 CEST, which is 07:00 UTC, no longer 08:00.
        assert_eq!(
            s.next_after(utc("2026-03-27T16:30:00Z")),
            Some(utc("2026-03-27T16:45:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2026-03-27T16:45:00Z")),
            Some(utc("2026-03-30T07:00:00Z"))
        );
        let week = ticks(&s, "2026-03-26T23:00:00Z", "2026-03-31T22:00:00Z");
        // Friday, Monday, Tuesday: 9 hours x 4 ticks each.
        assert_eq!(week.len(), 3 * 36);
        assert_eq!(week[0], "2026-03-27T08:00:00+00:00");
        assert_eq!(week[35], "2026-03-27T16:45:00+00:00");
        assert_eq!(week[36], "2026-03-30T07:00:00+00:00");
        assert_eq!(week[107], "2026-03-31T15:45:00+00:00");
    }

    #[test]
    fn spring_forward_skips_the_missing_local_time() {
        // America/New_York skips 02:00-02:59 on 2026-03-08.
        let s = Schedule::parse("0 2 * * *", Some("America/New_York")).unwrap();
        assert_eq!(
            ticks(&s, "2026-03-06T12:00:00Z", "2026-03-10T12:00:00Z"),
            [
                "2026-03-07T07:00:00+00:00", // 02:00 EST
                "2026-03-09T06:00:00+00:00", // 02:00 EDT; 03-08 skipped
                "2026-03-10T06:00:00+00:00",
            ]
        );
        // Every 30 minutes: 01:30 EST, then straight to 03:00 EDT.
        let s = Schedule::parse("*/30 * * * *", Some("America/New_York")).unwrap();
        assert_eq!(
            s.next_after(utc("2026-03-08T06:30:00Z")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        assert_eq!(
            s.with_local("2026-03-08T06:30:00Z"),
            "2026-03-08 01:30:00 EST"
        );
        assert_eq!(
            s.with_local("2026-03-08T07:00:00Z"),
            "2026-03-08 03:00:00 EDT"
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        // America/New_York repeats 01:00-01:59 on 2026-11-01
        // (EDT = UTC-4, then EST = UTC-5).
        let s = Schedule::parse("30 1 * * *", Some("America/New_York")).unwrap();
        assert_eq!(
            ticks(&s, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
            [
                "2026-10-31T05:30:00+00:00",
                "2026-11-01T05:30:00+00:00", // 01:30 EDT; not again at 01:30 EST
                "2026-11-02T06:30:00+00:00",
            ]
        );
        // Asked from inside the second pass, it does not fire again that day.
        assert_eq!(
            s.next_after(utc("2026-11-01T06:10:00Z")),
            Some(utc("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn vixie_or_rule_when_both_day_fields_are_restricted() {
        // Every 13th and every Friday.
        let s = Schedule::parse("0 0 13 * FRI", None).unwrap();
        assert_eq!(
            ticks(&s, "2026-01-31T00:00:00Z", "2026-03-14T00:00:00Z"),
            [
                "2026-02-06T00:00:00+00:00",
                "2026-02-13T00:00:00+00:00", // Friday the 13th, once
                "2026-02-20T00:00:00+00:00",
                "2026-02-27T00:00:00+00:00",
                "2026-03-06T00:00:00+00:00",
                "2026-03-13T00:00:00+00:00",
            ]
        );
        // 2026-01-01 is a Thursday: it matches through day-of-month.
        let c = Cron::parse("0 0 1 * MON").unwrap();
        let at = |d: &str| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        };
        assert!(c.matches(at("2026-01-01")));
        assert!(c.matches(at("2026-01-05")));
        assert!(!c.matches(at("2026-01-06")));
        // A field starting with `*` is unrestricted, so both must match:
        // odd days that are Mondays.
        let c = Cron::parse("0 0 */2 * MON").unwrap();
        assert!(c.matches(at("2026-01-05")));
        assert!(!c.matches(at("2026-01-12")));
        assert!(!c.matches(at("2026-01-07")));
    }

    #[test]
    fn february_29th_and_impossible_dates() {
        let s = Schedule::parse("0 12 29 2 *", None).unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2028-02-29T12:00:00Z"))
        );
        // 2100 is not a leap year: the next 29 February after 2096 is in
        // 2104, beyond the five-year horizon.
        assert_eq!(s.next_after(utc("2096-03-01T00:00:00Z")), None);
        assert_eq!(
            Schedule::parse("0 0 30 2 *", None)
                .unwrap()
                .next_after(utc("2026-01-01T00:00:00Z")),
            None
        );
        assert_eq!(
            Schedule::parse("0 0 31 4,6,9,11 *", None)
                .unwrap()
                .next_after(utc("2026-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn half_hour_offset_zone() {
        let s = Schedule::parse("0 9 * * *", Some("Asia/Kolkata")).unwrap();
        assert_eq!(
            s.next_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2026-06-01T03:30:00Z"))
        );
    }

    #[test]
    fn display_gives_expression_and_zone() {
        let s = Schedule::parse("  0 6 * * 1-5 ", Some("Europe/Paris")).unwrap();
        assert_eq!(s.to_string(), "0 6 * * 1-5 (Europe/Paris)");
        assert_eq!(s.cron.to_string(), "0 6 * * 1-5");
        assert_eq!(
            Schedule::parse("@daily", None).unwrap().to_string(),
            "@daily (UTC)"
        );
    }

    fn field_error(expr: &str) -> (CronField, String, FieldProblem, String) {
        match Cron::parse(expr).unwrap_err() {
            e @ CronError::Field { .. } => {
                let msg = e.to_string();
                let CronError::Field {
                    field,
                    token,
                    problem,
                    ..
                } = e
                else {
                    unreachable!()
                };
                (field, token, problem, msg)
            }
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_expression_field_token_and_range() {
        let (field, token, problem, msg) = field_error("0 25 * * *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::Hour, "25", FieldProblem::OutOfRange)
        );
        assert_eq!(
            msg,
            "Cron expression `0 25 * * *`: hour value `25` is out of range (allowed: 0-23)"
        );

        let (field, token, problem, _) = field_error("0 0 0 * *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::DayOfMonth, "0", FieldProblem::OutOfRange)
        );
        let (field, token, problem, _) = field_error("0 0 * 13 *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::Month, "13", FieldProblem::OutOfRange)
        );
        let (field, token, problem, msg) = field_error("0 0 * * 8");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::DayOfWeek, "8", FieldProblem::OutOfRange)
        );
        assert!(
            msg.contains("day-of-week") && msg.contains("0-7 or SUN-SAT"),
            "{msg}"
        );
        let (field, token, problem, _) = field_error("*/0 * * * *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::Minute, "0", FieldProblem::ZeroStep)
        );
        let (field, token, problem, _) = field_error("*/60 * * * *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::Minute, "60", FieldProblem::BadStep)
        );
        let (field, token, problem, _) = field_error("0 17-9 * * *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::Hour, "17-9", FieldProblem::Reversed)
        );
        let (field, token, problem, _) = field_error("0 0 * * FRI-MON");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::DayOfWeek, "FRI-MON", FieldProblem::Reversed)
        );
        let (field, token, problem, _) = field_error("1,,2 * * * *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::Minute, "1,,2", FieldProblem::Empty)
        );
        let (field, token, problem, _) = field_error("0 0 * FOO *");
        assert_eq!(
            (field, token.as_str(), problem),
            (CronField::Month, "FOO", FieldProblem::NotAValue)
        );
        // Month names are not day names.
        let (field, token, _, _) = field_error("0 0 * * JAN");
        assert_eq!((field, token.as_str()), (CronField::DayOfWeek, "JAN"));
        let (_, token, problem, _) = field_error("+5 * * * *");
        assert_eq!((token.as_str(), problem), ("+5", FieldProblem::NotAValue));
        let (_, token, problem, _) = field_error("0 0-/2 * * *");
        assert_eq!((token.as_str(), problem), ("0-/2", FieldProblem::Empty));
    }

    #[test]
    fn errors_for_shape_macros_and_zones_have_hints() {
        let e = Cron::parse("0 6 * *").unwrap_err();
        assert_eq!(
            e,
            CronError::FieldCount {
                expr: "0 6 * *".into(),
                found: 4
            }
        );
        assert!(e.to_string().contains("`0 6 * *` has 4 field(s)"));
        assert!(e.hint().contains("`0 6 * * 1-5`"), "{}", e.hint());
        assert!(matches!(
            Cron::parse("").unwrap_err(),
            CronError::FieldCount { found: 0, .. }
        ));
        assert!(matches!(
            Cron::parse("0 6 * * * *").unwrap_err(),
            CronError::FieldCount { found: 6, .. }
        ));

        let e = Cron::parse("@reboot").unwrap_err();
        assert!(matches!(&e, CronError::UnknownMacro { token, .. } if token == "@reboot"));
        assert!(e.hint().contains("@daily"));

        let e = Cron::parse("0 25 * * *").unwrap_err();
        assert_eq!(
            e.hint(),
            "the hour field takes 0-23, e.g. `6`, `9-17` or `*/2`"
        );
        assert!(
            Cron::parse("0 17-9 * * *")
                .unwrap_err()
                .hint()
                .contains("`22-23,0-2`")
        );

        let e = Schedule::parse("@daily", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e.to_string(), "Unknown time zone `Mars/Olympus`");
        assert_eq!(
            e.hint(),
            "use an IANA name such as Europe/Paris, America/New_York or UTC"
        );
        let e = Schedule::parse("@daily", Some("europe/paris")).unwrap_err();
        assert_eq!(e.hint(), "did you mean `Europe/Paris`?");
    }

    /// Every tick in a window, found by testing each UTC minute: the local
    /// minute matches and this instant is its first occurrence.
    fn brute_force(s: &Schedule, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after.with_second(0).unwrap() + TimeDelta::minutes(1);
        while t <= until {
            let local = t.with_timezone(&s.tz).naive_local();
            let first = s.tz.from_local_datetime(&local).earliest().unwrap();
            if s.cron.matches(local) && first.with_timezone(&Utc) == t {
                out.push(t);
            }
            t += TimeDelta::minutes(1);
        }
        out
    }

    #[test]
    fn agrees_with_a_minute_by_minute_search_around_clock_changes() {
        let windows = [
            (
                "America/New_York",
                "2026-03-07T00:00:00Z",
                "2026-03-09T12:00:00Z",
            ),
            (
                "America/New_York",
                "2026-10-31T00:00:00Z",
                "2026-11-02T12:00:00Z",
            ),
            (
                "Europe/Paris",
                "2026-03-28T00:00:00Z",
                "2026-03-30T00:00:00Z",
            ),
            (
                "Europe/Paris",
                "2026-10-24T00:00:00Z",
                "2026-10-26T00:00:00Z",
            ),
            // Lord Howe moves its clocks by 30 minutes.
            (
                "Australia/Lord_Howe",
                "2026-04-04T00:00:00Z",
                "2026-04-06T00:00:00Z",
            ),
            (
                "Australia/Lord_Howe",
                "2026-10-03T00:00:00Z",
                "2026-10-05T00:00:00Z",
            ),
            (
                "Asia/Kolkata",
                "2026-02-27T00:00:00Z",
                "2026-03-02T00:00:00Z",
            ),
        ];
        let exprs = [
            "*/15 * * * *",
            "30 1 * * *",
            "0 2 * * *",
            "*/7 */3 * * *",
            "0,30 * 1,28 * SUN",
            "45 1-3 * * 0",
            "@hourly",
        ];
        for (tz, after, until) in windows {
            for expr in exprs {
                let s = Schedule::parse(expr, Some(tz)).unwrap();
                let fast: Vec<_> = s.ticks_between(utc(after), utc(until)).collect();
                assert_eq!(
                    fast,
                    brute_force(&s, utc(after), utc(until)),
                    "{expr} in {tz}"
                );
            }
        }
    }

    impl Schedule {
        fn with_local(&self, t: &str) -> String {
            utc(t)
                .with_timezone(&self.tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        }
    }
}
