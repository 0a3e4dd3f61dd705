//! Time partitions: cut time into hourly, daily, weekly (Monday) or monthly
//! slices on the wall clock of a time zone, name each slice with a key, and
//! list the slices of a backfill.
//!
//! ```text
//!   PartitionSpec { daily, start 2026-01-01, Europe/Paris }
//!     partition("2026-11-24")  -> [2026-11-23T23:00Z, 2026-11-24T23:00Z)
//!     containing(t)            -> the partition with start <= t < end
//!     range("2026-11", "2026-12-03") -> every partition in between, inclusive
//! ```
//!
//! # Keys and boundaries
//! | granularity | key format      | example         | starts at (local time) |
//! |-------------|-----------------|-----------------|------------------------|
//! | hourly      | `YYYY-MM-DDTHH` | `2026-11-24T05` | the hour               |
//! | daily       | `YYYY-MM-DD`    | `2026-11-24`    | midnight               |
//! | weekly      | `YYYY-MM-DD`    | `2026-11-23`    | Monday midnight        |
//! | monthly     | `YYYY-MM`       | `2026-11`       | the 1st, midnight      |
//!
//! A partition starts at the first instant its local start time is reached
//! and ends (exclusive) where the next one starts, so partitions tile time
//! with no gap or overlap, even across daylight saving changes:
//! - when clocks spring forward, the skipped hour has no hourly partition
//!   (asking for it is an error), and a daily partition lasts 23 hours;
//! - when clocks fall back, the repeated hour's partition lasts two hours
//!   (both passes share one key), and a daily partition lasts 25 hours.
//!
//! The spec's `start` is the start of the first partition:
//! [`PartitionSpec::parse`](crate::partition::PartitionSpec::parse) moves an
//! unaligned start forward to the next boundary, so no partition begins
//! before it.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::cron::parse_time_zone;

/// Result alias for this module.
pub type Result<T, E = PartitionError> = std::result::Result<T, E>;

/// The most partitions [`PartitionSpec::range`] returns.
pub const MAX_RANGE_PARTITIONS: usize = 100_000;

/// How far [`first_instant`] looks past a local time skipped by the clocks
/// (the longest known jump is a whole day, Pacific/Apia in 2011).
const GAP_SEARCH_MINUTES: u32 = 26 * 60;

/// How long each partition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One local hour; key `YYYY-MM-DDTHH`.
    Hourly,
    /// One local day; key `YYYY-MM-DD`.
    Daily,
    /// Monday to Sunday; key the Monday's `YYYY-MM-DD`.
    Weekly,
    /// One calendar month; key `YYYY-MM`.
    Monthly,
}

impl Granularity {
    /// The name used in configuration: `hourly`, `daily`, `weekly`, `monthly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hourly => "hourly",
            Granularity::Daily => "daily",
            Granularity::Weekly => "weekly",
            Granularity::Monthly => "monthly",
        }
    }

    /// The key format, e.g. `YYYY-MM-DDTHH`.
    pub fn key_format(self) -> &'static str {
        match self {
            Granularity::Hourly => "YYYY-MM-DDTHH",
            Granularity::Daily | Granularity::Weekly => "YYYY-MM-DD",
            Granularity::Monthly => "YYYY-MM",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Granularity::Hourly => "2026-11-24T05",
            Granularity::Daily => "2026-11-24",
            Granularity::Weekly => "2026-11-23",
            Granularity::Monthly => "2026-11",
        }
    }

    fn shape(self) -> Shape {
        match self {
            Granularity::Hourly => Shape::Hour,
            Granularity::Daily | Granularity::Weekly => Shape::Day,
            Granularity::Monthly => Shape::Month,
        }
    }

    /// The local start of the partition holding the local time `t`.
    fn floor(self, t: NaiveDateTime) -> NaiveDateTime {
        let date = t.date();
        let date = match self {
            Granularity::Hourly => return date.and_hms_opt(t.hour(), 0, 0).unwrap_or(t),
            Granularity::Daily => date,
            Granularity::Weekly => date
                .checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
                .unwrap_or(date),
            Granularity::Monthly => date.with_day(1).unwrap_or(date),
        };
        date.and_time(NaiveTime::MIN)
    }

    /// The local start of the next (`forward`) or previous partition.
    fn step(self, key: NaiveDateTime, forward: bool) -> Option<NaiveDateTime> {
        let delta = match self {
            Granularity::Hourly => TimeDelta::hours(1),
            Granularity::Daily => TimeDelta::days(1),
            Granularity::Weekly => TimeDelta::weeks(1),
            Granularity::Monthly if forward => return key.checked_add_months(Months::new(1)),
            Granularity::Monthly => return key.checked_sub_months(Months::new(1)),
        };
        if forward {
            key.checked_add_signed(delta)
        } else {
            key.checked_sub_signed(delta)
        }
    }

    fn format_key(self, key: NaiveDateTime) -> String {
        let format = match self {
            Granularity::Hourly => "%Y-%m-%dT%H",
            Granularity::Daily | Granularity::Weekly => "%Y-%m-%d",
            Granularity::Monthly => "%Y-%m",
        };
        key.format(format).to_string()
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = PartitionError;

    fn from_str(s: &str) -> Result<Granularity> {
        let all = [
            Granularity::Hourly,
            Granularity::Daily,
            Granularity::Weekly,
            Granularity::Monthly,
        ];
        all.into_iter()
            .find(|g| g.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PartitionError::UnknownGranularity {
                given: s.to_string(),
            })
    }
}

/// One partition: a key and the half-open interval `[start, end)` it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// The key, e.g. `2026-11-24` (see the module docs for each format).
    pub key: String,
    /// The first instant in the partition.
    pub start: DateTime<Utc>,
    /// The first instant after the partition (exclusive).
    pub end: DateTime<Utc>,
}

/// How a time line is cut into partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// How long each partition is.
    pub granularity: Granularity,
    /// The start of the first partition. An unaligned value is treated as the
    /// next partition boundary.
    pub start: DateTime<Utc>,
    /// The zone whose wall clock places the boundaries.
    pub tz: Tz,
}

impl PartitionSpec {
    /// Builds a spec from configuration text. `start` is a date
    /// (`2026-01-01`, midnight in the zone), an RFC 3339 time or a partition
    /// key of any granularity; it is moved forward to the next boundary if it
    /// is not on one. The zone defaults to UTC.
    pub fn parse(granularity: &str, start: &str, timezone: Option<&str>) -> Result<PartitionSpec> {
        let granularity: Granularity = granularity.parse()?;
        let tz = match timezone {
            None => Tz::UTC,
            Some(name) => {
                parse_time_zone(name).map_err(|suggestion| PartitionError::UnknownTimeZone {
                    name: name.to_string(),
                    suggestion,
                })?
            }
        };
        let at = parse_point(start, tz).ok_or_else(|| PartitionError::BadStart {
            given: start.to_string(),
        })?;
        let spec = PartitionSpec {
            granularity,
            start: at,
            tz,
        };
        Ok(PartitionSpec {
            start: spec.first().start,
            ..spec
        })
    }

    /// The partition named by `key`, which must be in this granularity's
    /// format, aligned (weekly keys are Mondays), exist in the zone and not be
    /// before the first partition.
    pub fn partition(&self, key: &str) -> Result<Partition> {
        let g = self.granularity;
        let local = match parse_local(key) {
            Some((shape, local)) if shape == g.shape() => local,
            _ => {
                return Err(PartitionError::BadKey {
                    key: key.to_string(),
                    granularity: g,
                });
            }
        };
        if g == Granularity::Weekly && local.weekday() != Weekday::Mon {
            return Err(PartitionError::NotMonday {
                key: key.to_string(),
                weekday: local.weekday().to_string(),
                monday: g.format_key(g.floor(local)),
            });
        }
        let partition = self.at_key(local);
        if partition.start >= partition.end {
            return Err(PartitionError::Nonexistent {
                key: partition.key,
                tz: self.tz.name(),
                next: self.containing(partition.end).key,
            });
        }
        let first = self.first();
        if partition.start < first.start {
            return Err(PartitionError::BeforeStart {
                key: partition.key,
                first: first.key,
            });
        }
        Ok(partition)
    }

    /// The partition with `start <= t < end` (it may be before the spec's
    /// start).
    pub fn containing(&self, t: DateTime<Utc>) -> Partition {
        let g = self.granularity;
        let mut key = g.floor(t.with_timezone(&self.tz).naive_local());
        // The local time's partition holds `t` except around odd clock
        // changes (a jump back across midnight); walk to the right one.
        for _ in 0..4 {
            let (start, end) = self.bounds(key);
            let next = if t < start {
                g.step(key, false)
            } else if t >= end {
                g.step(key, true)
            } else {
                None
            };
            match next {
                Some(next) => key = next,
                None => break,
            }
        }
        self.at_key(key)
    }

    /// Every partition from the one holding `from` to the one holding `to`,
    /// both included. Each bound is a key of this granularity, a date, a key
    /// of another granularity or an RFC 3339 time; a bound inside a partition
    /// selects that partition.
    pub fn range(&self, from: &str, to: &str) -> Result<Vec<Partition>> {
        let bound = |given: &str| {
            parse_point(given, self.tz).ok_or_else(|| PartitionError::BadBound {
                given: given.to_string(),
                granularity: self.granularity,
            })
        };
        let mut current = self.containing(bound(from)?);
        let last = self.containing(bound(to)?);
        if current.start > last.start {
            return Err(PartitionError::Reversed {
                from: current.key,
                to: last.key,
            });
        }
        let first = self.first();
        if current.start < first.start {
            return Err(PartitionError::BeforeStart {
                key: current.key,
                first: first.key,
            });
        }
        let mut out = Vec::new();
        loop {
            if out.len() == MAX_RANGE_PARTITIONS {
                return Err(PartitionError::TooMany {
                    from: out
                        .first()
                        .map_or_else(String::new, |p: &Partition| p.key.clone()),
                    to: last.key,
                    granularity: self.granularity,
                });
            }
            let next = self.containing(current.end);
            let done = current.start >= last.start || next.start <= current.start;
            out.push(current);
            if done {
                return Ok(out);
            }
            current = next;
        }
    }

    /// The last partition that has ended by `now` (`end <= now`) and starts
    /// at or after the spec's start; `None` if there is none yet.
    pub fn latest_complete(&self, now: DateTime<Utc>) -> Option<Partition> {
        let current = self.containing(now);
        let previous = self.containing(
            current
                .start
                .checked_sub_signed(TimeDelta::nanoseconds(1))?,
        );
        (previous.end <= now && previous.start >= self.first().start).then_some(previous)
    }

    /// The first partition: the one starting at `start`, or the next one if
    /// `start` is not on a boundary.
    fn first(&self) -> Partition {
        let p = self.containing(self.start);
        if p.start < self.start {
            self.containing(p.end)
        } else {
            p
        }
    }

    fn bounds(&self, key: NaiveDateTime) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = first_instant(self.tz, key);
        let end = self
            .granularity
            .step(key, true)
            .map_or(DateTime::<Utc>::MAX_UTC, |next| {
                first_instant(self.tz, next)
            });
        (start, end)
    }

    fn at_key(&self, key: NaiveDateTime) -> Partition {
        let (start, end) = self.bounds(key);
        Partition {
            key: self.granularity.format_key(key),
            start,
            end,
        }
    }
}

/// The first instant at which the zone's wall clock reads `local` or later:
/// the instant itself, the first of two when clocks fall back, or the end of
/// the jump when clocks spring forward over it.
fn first_instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..=GAP_SEARCH_MINUTES {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        match probe.checked_add_signed(TimeDelta::minutes(1)) {
            Some(next) => probe = next,
            None => break,
        }
    }
    local.and_utc()
}

/// The shape of a key-like text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Month,
    Day,
    Hour,
}

/// Parses `YYYY-MM`, `YYYY-MM-DD` or `YYYY-MM-DDTHH` (exact widths) into a
/// local time.
fn parse_local(text: &str) -> Option<(Shape, NaiveDateTime)> {
    let b = text.as_bytes();
    let num = |from: usize, to: usize| -> Option<u32> {
        let digits = b.get(from..to)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    if b.get(4) != Some(&b'-') {
        return None;
    }
    let month = num(5, 7)?;
    let (shape, day, hour) = match b.len() {
        7 => (Shape::Month, 1, 0),
        10 if b[7] == b'-' => (Shape::Day, num(8, 10)?, 0),
        13 if b[7] == b'-' && b[10] == b'T' => (Shape::Hour, num(8, 10)?, num(11, 13)?),
        _ => return None,
    };
    let local = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, 0, 0)?;
    Some((shape, local))
}

/// A key-like text (local time in `tz`) or an RFC 3339 time, as an instant.
fn parse_point(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Some((_, local)) = parse_local(text) {
        return Some(first_instant(tz, local));
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A partition spec, key or range that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// Not one of the four granularities.
    #[error(
        "Unknown partition granularity `{given}`; expected `hourly`, `daily`, `weekly` or `monthly`"
    )]
    UnknownGranularity {
        /// The text as given.
        given: String,
    },
    /// A time zone that is not in the IANA database.
    #[error("Unknown time zone `{name}`")]
    UnknownTimeZone {
        /// The zone as given.
        name: String,
        /// The zone's correct spelling, when only the case is wrong.
        suggestion: Option<&'static str>,
    },
    /// A start that is neither a date, a key nor an RFC 3339 time.
    #[error(
        "Partition start `{given}` is not a date (`YYYY-MM-DD`), a partition key or an RFC 3339 time"
    )]
    BadStart {
        /// The text as given.
        given: String,
    },
    /// A key not in the granularity's format, or not a real date.
    #[error("`{key}` is not a {granularity} partition key; expected `{}`, e.g. `{}`", .granularity.key_format(), .granularity.example())]
    BadKey {
        /// The key as given.
        key: String,
        /// The spec's granularity.
        granularity: Granularity,
    },
    /// A weekly key that is not a Monday.
    #[error(
        "`{key}` is not a weekly partition key: it is a {weekday}, and a weekly key is the date (`YYYY-MM-DD`) of the Monday that starts the week"
    )]
    NotMonday {
        /// The key as given.
        key: String,
        /// Its day of the week.
        weekday: String,
        /// The Monday of its week.
        monday: String,
    },
    /// An hour (or day) the zone's clocks skip.
    #[error("Partition `{key}` does not exist in `{tz}`: the clocks skip that time")]
    Nonexistent {
        /// The key.
        key: String,
        /// The zone.
        tz: &'static str,
        /// The partition after it.
        next: String,
    },
    /// A key or range bound before the spec's first partition.
    #[error("Partition `{key}` is before the first partition `{first}`")]
    BeforeStart {
        /// The key (after snapping a range bound).
        key: String,
        /// The first partition's key.
        first: String,
    },
    /// A range bound that cannot be read.
    #[error("Range bound `{given}` is not a {granularity} partition key (`{}`), a date (`YYYY-MM-DD`) or an RFC 3339 time", .granularity.key_format())]
    BadBound {
        /// The text as given.
        given: String,
        /// The spec's granularity.
        granularity: Granularity,
    },
    /// A range whose start comes after its end.
    #[error("Range from `{from}` to `{to}` is reversed: `{from}` comes after `{to}`")]
    Reversed {
        /// The first bound's partition key.
        from: String,
        /// The second bound's partition key.
        to: String,
    },
    /// A range longer than [`MAX_RANGE_PARTITIONS`].
    #[error(
        "Range from `{from}` to `{to}` has more than {MAX_RANGE_PARTITIONS} {granularity} partitions"
    )]
    TooMany {
        /// The first partition's key.
        from: String,
        /// The last partition's key.
        to: String,
        /// The spec's granularity.
        granularity: Granularity,
    },
}

impl PartitionError {
    /// A short suggestion for the user, with an example.
    pub fn hint(&self) -> String {
        match self {
            PartitionError::UnknownGranularity { .. } => {
                "write one of `hourly`, `daily`, `weekly`, `monthly`, e.g. `daily`".to_string()
            }
            PartitionError::UnknownTimeZone {
                suggestion: Some(name),
                ..
            } => {
                format!("did you mean `{name}`?")
            }
            PartitionError::UnknownTimeZone {
                suggestion: None, ..
            } => "use an IANA name such as Europe/Paris, America/New_York or UTC".to_string(),
            PartitionError::BadStart { .. } => {
                "write a date such as `2026-01-01` or a time such as `2026-01-01T00:00:00Z`"
                    .to_string()
            }
            PartitionError::BadKey { granularity, .. } => format!(
                "{granularity} keys look like `{}` (zero-padded)",
                granularity.example()
            ),
            PartitionError::NotMonday { monday, .. } => {
                format!("use `{monday}`, the Monday of that week")
            }
            PartitionError::Nonexistent { next, .. } => {
                format!("daylight saving time skips it; the data of that time is in `{next}`")
            }
            PartitionError::BeforeStart { first, .. } => format!(
                "partitions start at `{first}`; move the spec's start earlier to include older data"
            ),
            PartitionError::BadBound { granularity, .. } => format!(
                "write a key such as `{}`, a date such as `2026-11-24` or a time such as `2026-11-24T05:00:00Z`",
                granularity.example()
            ),
            PartitionError::Reversed { from, to } => {
                format!("put the earlier bound first: from `{to}` to `{from}`")
            }
            PartitionError::TooMany { .. } => format!(
                "split the backfill into ranges of at most {MAX_RANGE_PARTITIONS} partitions, or use a coarser granularity"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn spec(granularity: &str, start: &str, tz: &str) -> PartitionSpec {
        PartitionSpec::parse(granularity, start, Some(tz)).unwrap()
    }

    /// `(key, start, end)` with RFC 3339 times, for compact assertions.
    fn rows(partitions: &[Partition]) -> Vec<(String, String, String)> {
        partitions
            .iter()
            .map(|p| (p.key.clone(), p.start.to_rfc3339(), p.end.to_rfc3339()))
            .collect()
    }

    fn row(key: &str, start: &str, end: &str) -> (String, String, String) {
        (key.into(), utc(start).to_rfc3339(), utc(end).to_rfc3339())
    }

    #[test]
    fn daily_partitions_follow_local_midnight() {
        let s = spec("daily", "2026-01-01", "Europe/Paris");
        assert_eq!(s.start, utc("2025-12-31T23:00:00Z"));
        let p = s.partition("2026-11-24").unwrap();
        assert_eq!(
            rows(&[p]),
            [row(
                "2026-11-24",
                "2026-11-23T23:00:00Z",
                "2026-11-24T23:00:00Z"
            )]
        );
        assert_eq!(s.containing(utc("2026-11-24T22:59:59Z")).key, "2026-11-24");
        assert_eq!(s.containing(utc("2026-11-24T23:00:00Z")).key, "2026-11-25");
        // 23 hours on the spring-forward day, 25 on the fall-back day.
        let spring = s.partition("2026-03-29").unwrap();
        assert_eq!(spring.end - spring.start, TimeDelta::hours(23));
        let fall = s.partition("2026-10-25").unwrap();
        assert_eq!(fall.end - fall.start, TimeDelta::hours(25));
    }

    #[test]
    fn hourly_partitions_across_daylight_saving_changes() {
        let s = spec("hourly", "2026-01-01", "Europe/Paris");
        // Spring forward on 2026-03-29: 02:00 CET becomes 03:00 CEST, so
        // there is no `T02`.
        assert_eq!(
            rows(&s.range("2026-03-29T00", "2026-03-29T04").unwrap()),
            [
                row(
                    "2026-03-29T00",
                    "2026-03-28T23:00:00Z",
                    "2026-03-29T00:00:00Z"
                ),
                row(
                    "2026-03-29T01",
                    "2026-03-29T00:00:00Z",
                    "2026-03-29T01:00:00Z"
                ),
                row(
                    "2026-03-29T03",
                    "2026-03-29T01:00:00Z",
                    "2026-03-29T02:00:00Z"
                ),
                row(
                    "2026-03-29T04",
                    "2026-03-29T02:00:00Z",
                    "2026-03-29T03:00:00Z"
                ),
            ]
        );
        let e = s.partition("2026-03-29T02").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Partition `2026-03-29T02` does not exist in `Europe/Paris`: the clocks skip that time"
        );
        assert!(e.hint().contains("`2026-03-29T03`"), "{}", e.hint());
        // Fall back on 2026-10-25: 02:00-02:59 happens twice, so `T02` lasts
        // two hours.
        assert_eq!(
            rows(&s.range("2026-10-25T01", "2026-10-25T03").unwrap()),
            [
                row(
                    "2026-10-25T01",
                    "2026-10-24T23:00:00Z",
                    "2026-10-25T00:00:00Z"
                ),
                row(
                    "2026-10-25T02",
                    "2026-10-25T00:00:00Z",
                    "2026-10-25T02:00:00Z"
                ),
                row(
                    "2026-10-25T03",
                    "2026-10-25T02:00:00Z",
                    "2026-10-25T03:00:00Z"
                ),
            ]
        );
        assert_eq!(
            s.containing(utc("2026-10-25T01:30:00Z")).key,
            "2026-10-25T02"
        );
        // A whole local day still has one partition per local hour that
        // exists: 23 in spring, 24 in autumn, tiling the day exactly.
        let spring = s.range("2026-03-29", "2026-03-29T23").unwrap();
        assert_eq!(spring.len(), 23);
        let fall = s.range("2026-10-25", "2026-10-25T23").unwrap();
        assert_eq!(fall.len(), 24);
        assert!(fall.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn weekly_partitions_start_on_monday() {
        let s = spec("weekly", "2026-01-01", "UTC");
        // 2026-01-01 is a Thursday: the first week starts the next Monday.
        assert_eq!(s.start, utc("2026-01-05T00:00:00Z"));
        let p = s.containing(utc("2026-11-26T12:00:00Z"));
        assert_eq!(
            rows(&[p]),
            [row(
                "2026-11-23",
                "2026-11-23T00:00:00Z",
                "2026-11-30T00:00:00Z"
            )]
        );
        assert!(s.partition("2026-11-23").is_ok());

        let e = s.partition("2026-11-24").unwrap_err();
        assert_eq!(
            e,
            PartitionError::NotMonday {
                key: "2026-11-24".into(),
                weekday: "Tue".into(),
                monday: "2026-11-23".into()
            }
        );
        assert!(e.to_string().contains("`YYYY-MM-DD`"));
        assert_eq!(e.hint(), "use `2026-11-23`, the Monday of that week");

        // Range bounds inside a week select that week.
        let keys: Vec<String> = s
            .range("2026-11-24", "2026-12-09T10:00:00Z")
            .unwrap()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["2026-11-23", "2026-11-30", "2026-12-07"]);

        assert_eq!(
            s.partition("2025-12-29").unwrap_err(),
            PartitionError::BeforeStart {
                key: "2025-12-29".into(),
                first: "2026-01-05".into()
            }
        );
    }

    #[test]
    fn monthly_range_across_a_year_boundary() {
        let s = spec("monthly", "2025-01", "America/New_York");
        let expected = [
            row("2025-11", "2025-11-01T04:00:00Z", "2025-12-01T05:00:00Z"),
            row("2025-12", "2025-12-01T05:00:00Z", "2026-01-01T05:00:00Z"),
            row("2026-01", "2026-01-01T05:00:00Z", "2026-02-01T05:00:00Z"),
            row("2026-02", "2026-02-01T05:00:00Z", "2026-03-01T05:00:00Z"),
        ];
        assert_eq!(rows(&s.range("2025-11", "2026-02").unwrap()), expected);
        // Dates and times snap to the month holding them (in the zone:
        // 2026-03-01T04:00Z is still February in New York).
        assert_eq!(
            rows(&s.range("2025-11-15", "2026-03-01T04:00:00Z").unwrap()),
            expected
        );
        assert_eq!(s.range("2026-02", "2026-02").unwrap().len(), 1);
    }

    #[test]
    fn range_errors() {
        let s = spec("monthly", "2025-01", "UTC");
        let e = s.range("2026-03", "2026-01-31").unwrap_err();
        assert_eq!(
            e,
            PartitionError::Reversed {
                from: "2026-03".into(),
                to: "2026-01".into()
            }
        );
        assert_eq!(
            e.hint(),
            "put the earlier bound first: from `2026-01` to `2026-03`"
        );

        let e = s.range("yesterday", "2026-01").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Range bound `yesterday` is not a monthly partition key (`YYYY-MM`), a date (`YYYY-MM-DD`) or an RFC 3339 time"
        );
        assert!(matches!(
            s.range("2024-12", "2025-02").unwrap_err(),
            PartitionError::BeforeStart { ref key, ref first } if key == "2024-12" && first == "2025-01"
        ));

        // Exactly the limit is fine; one more is an error with a hint.
        let s = spec("hourly", "2000-01-01", "UTC");
        let last = utc("2000-01-01T00:00:00Z") + TimeDelta::hours(MAX_RANGE_PARTITIONS as i64 - 1);
        let last_key = s.containing(last).key;
        assert_eq!(
            s.range("2000-01-01T00", &last_key).unwrap().len(),
            MAX_RANGE_PARTITIONS
        );
        let over = s.containing(last + TimeDelta::hours(1)).key;
        let e = s.range("2000-01-01T00", &over).unwrap_err();
        assert!(matches!(e, PartitionError::TooMany { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "Range from `2000-01-01T00` to `{over}` has more than 100000 hourly partitions"
            )
        );
        assert!(e.hint().contains("coarser granularity"));
    }

    #[test]
    fn keys_must_match_the_granularity_format() {
        let daily = spec("daily", "2026-01-01", "UTC");
        for bad in [
            "2026-1-5",
            "2026-11-24T05",
            "2026-11",
            "2026-02-30",
            "26-11-24",
            "2026/11/24",
        ] {
            let e = daily.partition(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "`{bad}` is not a daily partition key; expected `YYYY-MM-DD`, e.g. `2026-11-24`"
                )
            );
        }
        let hourly = spec("hourly", "2026-01-01", "UTC");
        for bad in [
            "2026-11-24",
            "2026-11-24T5",
            "2026-11-24T24",
            "2026-11-24 05",
        ] {
            let e = hourly.partition(bad).unwrap_err();
            assert!(e.to_string().contains("`YYYY-MM-DDTHH`"), "{e}");
            assert_eq!(
                e.hint(),
                "hourly keys look like `2026-11-24T05` (zero-padded)"
            );
        }
        let p = hourly.partition("2026-11-24T05").unwrap();
        assert_eq!(
            (p.start, p.end),
            (utc("2026-11-24T05:00:00Z"), utc("2026-11-24T06:00:00Z"))
        );
        assert!(
            spec("monthly", "2026-01", "UTC")
                .partition("2026-13")
                .is_err()
        );
    }

    #[test]
    fn latest_complete_partition() {
        let s = spec("daily", "2026-01-01", "UTC");
        let key = |now: &str| s.latest_complete(utc(now)).map(|p| p.key);
        assert_eq!(key("2026-11-24T10:00:00Z").as_deref(), Some("2026-11-23"));
        // A partition whose end is exactly `now` is complete.
        assert_eq!(key("2026-11-24T00:00:00Z").as_deref(), Some("2026-11-23"));
        assert_eq!(key("2026-01-02T00:00:00Z").as_deref(), Some("2026-01-01"));
        assert_eq!(key("2026-01-01T12:00:00Z"), None);
        assert_eq!(key("2025-06-01T00:00:00Z"), None);
        // In Paris, 2026-11-23T23:30Z is already 00:30 on the 24th.
        let paris = spec("daily", "2026-01-01", "Europe/Paris");
        let p = paris.latest_complete(utc("2026-11-23T23:30:00Z")).unwrap();
        assert_eq!(p.key, "2026-11-23");
        assert_eq!(p.end, utc("2026-11-23T23:00:00Z"));
    }

    #[test]
    fn parse_reads_granularity_start_and_zone() {
        let s = PartitionSpec::parse("Hourly", "2026-01-01T00:30:00Z", None).unwrap();
        assert_eq!((s.granularity, s.tz), (Granularity::Hourly, Tz::UTC));
        assert_eq!(s.start, utc("2026-01-01T01:00:00Z"));
        let s = spec("daily", "2026-03", "Asia/Kolkata");
        assert_eq!(s.start, utc("2026-02-28T18:30:00Z"));

        let e = PartitionSpec::parse("yearly", "2026-01-01", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unknown partition granularity `yearly`; expected `hourly`, `daily`, `weekly` or `monthly`"
        );
        let e = PartitionSpec::parse("daily", "soon", None).unwrap_err();
        assert!(matches!(e, PartitionError::BadStart { .. }));
        assert!(e.hint().contains("`2026-01-01`"));
        let e = PartitionSpec::parse("daily", "2026-01-01", Some("Europe/Pariss")).unwrap_err();
        assert_eq!(e.to_string(), "Unknown time zone `Europe/Pariss`");
        assert!(e.hint().contains("Europe/Paris"));
    }

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&Granularity::Weekly).unwrap(),
            "\"weekly\""
        );
        let g: Granularity = serde_json::from_str("\"monthly\"").unwrap();
        assert_eq!((g, g.as_str()), (Granularity::Monthly, "monthly"));
        let p = spec("monthly", "2026-01", "UTC")
            .partition("2026-11")
            .unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "key": "2026-11",
                "start": "2026-11-01T00:00:00Z",
                "end": "2026-12-01T00:00:00Z"
            })
        );
    }

    #[test]
    fn partitions_tile_time_around_clock_changes() {
        let zones = [
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe",
            "Pacific/Apia",
        ];
        for tz in zones {
            for g in ["hourly", "daily", "weekly", "monthly"] {
                let s = spec(g, "2011-01-01", tz);
                // Every 10 minutes through periods with clock changes; Apia
                // skipped 2011-12-30 entirely.
                for (from, to) in [
                    ("2011-12-27T00:00:00Z", "2012-01-03T00:00:00Z"),
                    ("2026-03-27T00:00:00Z", "2026-04-07T00:00:00Z"),
                    ("2026-10-02T00:00:00Z", "2026-11-03T00:00:00Z"),
                ] {
                    let (from, to) = (utc(from), utc(to));
                    let mut t = from;
                    while t < to {
                        let p = s.containing(t);
                        assert!(p.start <= t && t < p.end, "{g} {tz} {t}: {p:?}");
                        assert_eq!(s.partition(&p.key).unwrap(), p, "{g} {tz}");
                        t += TimeDelta::minutes(10);
                    }
                    let all = s.range(&from.to_rfc3339(), &to.to_rfc3339()).unwrap();
                    assert!(all.windows(2).all(|w| w[0].end == w[1].start), "{g} {tz}");
                    assert!(all.iter().all(|p| p.start < p.end), "{g} {tz}");
                }
            }
        }
        // The day Apia skipped has no partition.
        let apia = spec("daily", "2011-01-01", "Pacific/Apia");
        assert!(matches!(
            apia.partition("2011-12-30").unwrap_err(),
            PartitionError::Nonexistent { ref next, .. } if next == "2011-12-31"
        ));
    }
}
