//! Python's `datetime` as dbt exposes it: `run_started_at`,
//! `modules.datetime.datetime.now()`, `modules.datetime.date(2024, 1, 1)`,
//! with `strftime`, `isoformat`, `date()` and the usual fields. Values
//! render as Python's `str()` does. There is no arithmetic (`timedelta`):
//! the template language has no operator hook for it.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{
    DateTime as ChronoDateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Timelike, Utc,
};
use minijinja::value::{DynObject, Kwargs, Object, Value, from_args};
use minijinja::{Error, ErrorKind, State};

use super::context::Unsupported;

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// A Python strftime format in chrono's terms (`%f` is microseconds in
/// Python, nanoseconds in chrono), refused when chrono does not know it.
fn strftime_items(format: &str) -> Result<Vec<Item<'static>>, Error> {
    let format = format.replace("%f", "%6f");
    let items: Vec<Item<'static>> = StrftimeItems::new(&format).map(|i| i.to_owned()).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(invalid(format!("strftime: unsupported format `{format}`")));
    }
    Ok(items)
}

/// A `datetime.datetime`, naive or with an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateTime {
    naive: NaiveDateTime,
    offset: Option<FixedOffset>,
}

/// `run_started_at`: a UTC-aware datetime.
pub(crate) fn from_utc(t: ChronoDateTime<Utc>) -> Value {
    Value::from_object(DateTime {
        naive: t.naive_utc(),
        offset: FixedOffset::east_opt(0),
    })
}

impl DateTime {
    fn iso(&self, sep: char) -> String {
        let mut s = self.naive.format("%Y-%m-%d").to_string();
        s.push(sep);
        s.push_str(&self.naive.format("%H:%M:%S").to_string());
        let micros = self.naive.nanosecond() / 1000;
        if micros != 0 {
            s.push_str(&format!(".{micros:06}"));
        }
        if let Some(o) = self.offset {
            let secs = o.local_minus_utc();
            let sign = if secs < 0 { '-' } else { '+' };
            let secs = secs.abs();
            s.push_str(&format!(
                "{sign}{:02}:{:02}",
                secs / 3600,
                (secs % 3600) / 60
            ));
        }
        s
    }

    fn strftime(&self, format: &str) -> Result<String, Error> {
        use std::fmt::Write;
        let items = strftime_items(format)?;
        let mut out = String::new();
        let written = match self.offset {
            Some(o) => match self.naive.and_local_timezone(o).single() {
                Some(dt) => write!(out, "{}", dt.format_with_items(items.iter())),
                None => return Err(invalid("strftime: the time does not exist in its offset")),
            },
            None => write!(out, "{}", self.naive.format_with_items(items.iter())),
        };
        written.map_err(|_| invalid(format!("strftime: `{format}` needs a time zone")))?;
        Ok(out)
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso(' '))
    }
}

impl Object for DateTime {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let n = &self.naive;
        Some(Value::from(match key.as_str()? {
            "year" => i64::from(n.year()),
            "month" => i64::from(n.month()),
            "day" => i64::from(n.day()),
            "hour" => i64::from(n.hour()),
            "minute" => i64::from(n.minute()),
            "second" => i64::from(n.second()),
            "microsecond" => i64::from(n.nanosecond() / 1000),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (format,): (String,) = from_args(args)?;
                Ok(Value::from(self.strftime(&format)?))
            }
            "isoformat" => {
                let (sep,): (Option<String>,) = from_args(args)?;
                let sep = sep.and_then(|s| s.chars().next()).unwrap_or('T');
                Ok(Value::from(self.iso(sep)))
            }
            "date" => Ok(Value::from_object(Date(self.naive.date()))),
            "timestamp" => {
                let utc = match self.offset {
                    Some(o) => self.naive - o,
                    None => self.naive,
                };
                Ok(Value::from(
                    utc.and_utc().timestamp_micros() as f64 / 1_000_000.0,
                ))
            }
            "weekday" => Ok(Value::from(self.naive.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.naive.weekday().number_from_monday())),
            m => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("datetime has no method `{m}` in Sluice"),
            )),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Self>()?;
        Some(self.naive.cmp(&other.naive))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_ref(), f)
    }
}

/// A `datetime.date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Date(NaiveDate);

impl Object for Date {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(match key.as_str()? {
            "year" => i64::from(self.0.year()),
            "month" => i64::from(self.0.month()),
            "day" => i64::from(self.0.day()),
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let (format,): (String,) = from_args(args)?;
                DateTime {
                    naive: self.0.and_time(chrono::NaiveTime::MIN),
                    offset: None,
                }
                .strftime(&format)
                .map(Value::from)
            }
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%d").to_string())),
            "weekday" => Ok(Value::from(self.0.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(self.0.weekday().number_from_monday())),
            m => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("date has no method `{m}` in Sluice"),
            )),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Self>()?;
        Some(self.0.cmp(&other.0))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

fn date_of(y: i32, m: u32, d: u32) -> Result<NaiveDate, Error> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| invalid(format!("no such date: {y}-{m}-{d}")))
}

/// `modules.datetime.datetime`: the constructor and `now`, `utcnow`,
/// `today`, `strptime`, `fromisoformat`.
#[derive(Debug)]
struct DateTimeClass;

impl Object for DateTimeClass {
    fn call(self: &Arc<Self>, _: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (positional, kwargs): (&[Value], Kwargs) = from_args(args)?;
        let names = [
            "year",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "microsecond",
        ];
        if positional.len() > names.len() {
            return Err(Error::from(ErrorKind::TooManyArguments));
        }
        let mut parts = [0i64; 7];
        for (i, name) in names.iter().enumerate() {
            let v = match positional.get(i) {
                Some(v) => Some(v.clone()),
                None => kwargs.get::<Option<Value>>(name)?,
            };
            match v {
                Some(v) => {
                    parts[i] = v
                        .as_i64()
                        .ok_or_else(|| invalid(format!("datetime(): `{name}` must be a number")))?;
                }
                None if i < 3 => {
                    return Err(invalid(format!("datetime(): `{name}` is missing")));
                }
                None => {}
            }
        }
        kwargs.assert_all_used()?;
        let n = |i: usize| u32::try_from(parts[i]).unwrap_or(u32::MAX);
        let (y, m, d) = (i32::try_from(parts[0]).unwrap_or(i32::MAX), n(1), n(2));
        let time = chrono::NaiveTime::from_hms_micro_opt(n(3), n(4), n(5), n(6))
            .ok_or_else(|| invalid("datetime(): no such time"))?;
        Ok(Value::from_object(DateTime {
            naive: date_of(y, m, d)?.and_time(time),
            offset: None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let naive = match method {
            "now" | "today" => chrono::Local::now().naive_local(),
            "utcnow" => Utc::now().naive_utc(),
            "strptime" => {
                let (text, format): (String, String) = from_args(args)?;
                let f = format.replace("%f", "%6f");
                NaiveDateTime::parse_from_str(&text, &f)
                    .or_else(|_| {
                        NaiveDate::parse_from_str(&text, &f)
                            .map(|d| d.and_time(chrono::NaiveTime::MIN))
                    })
                    .map_err(|e| invalid(format!("strptime('{text}', '{format}'): {e}")))?
            }
            "fromisoformat" => {
                let (text,): (String,) = from_args(args)?;
                if let Ok(dt) = ChronoDateTime::parse_from_rfc3339(&text.replace(' ', "T")) {
                    return Ok(Value::from_object(DateTime {
                        naive: dt.naive_local(),
                        offset: Some(*dt.offset()),
                    }));
                }
                NaiveDateTime::parse_from_str(&text.replace(' ', "T"), "%Y-%m-%dT%H:%M:%S%.f")
                    .or_else(|_| {
                        NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                            .map(|d| d.and_time(chrono::NaiveTime::MIN))
                    })
                    .map_err(|e| invalid(format!("fromisoformat('{text}'): {e}")))?
            }
            m => {
                return Err(Error::new(
                    ErrorKind::UnknownMethod,
                    format!("datetime has no method `{m}` in Sluice"),
                ));
            }
        };
        Ok(Value::from_object(DateTime {
            naive,
            offset: None,
        }))
    }
}

/// `modules.datetime.date`: the constructor, `today`, `fromisoformat`.
#[derive(Debug)]
struct DateClass;

impl Object for DateClass {
    fn call(self: &Arc<Self>, _: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (y, m, d): (i32, u32, u32) = from_args(args)?;
        Ok(Value::from_object(Date(date_of(y, m, d)?)))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "today" => Ok(Value::from_object(Date(chrono::Local::now().date_naive()))),
            "fromisoformat" => {
                let (text,): (String,) = from_args(args)?;
                NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map(|d| Value::from_object(Date(d)))
                    .map_err(|e| invalid(format!("fromisoformat('{text}'): {e}")))
            }
            m => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("date has no method `{m}` in Sluice"),
            )),
        }
    }
}

/// `modules.datetime`.
#[derive(Debug)]
struct Module;

impl Object for Module {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "datetime" => Value::from_object(DateTimeClass),
            "date" => Value::from_object(DateClass),
            "timedelta" => Unsupported::value("modules.datetime.timedelta"),
            "timezone" => Unsupported::value("modules.datetime.timezone"),
            _ => return None,
        })
    }
}

/// The `modules.datetime` value.
pub(crate) fn module() -> Value {
    Value::from_object(Module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_python_does() {
        let t = DateTime {
            naive: NaiveDate::from_ymd_opt(2024, 3, 9)
                .unwrap()
                .and_hms_micro_opt(7, 5, 1, 42)
                .unwrap(),
            offset: FixedOffset::east_opt(0),
        };
        assert_eq!(t.to_string(), "2024-03-09 07:05:01.000042+00:00");
        assert_eq!(t.iso('T'), "2024-03-09T07:05:01.000042+00:00");
        assert_eq!(
            t.strftime("%Y%m%d %H:%M:%S.%f %z").unwrap(),
            "20240309 07:05:01.000042 +0000"
        );
        let naive = DateTime {
            naive: t.naive.with_nanosecond(0).unwrap(),
            offset: None,
        };
        assert_eq!(naive.to_string(), "2024-03-09 07:05:01");
        assert!(naive.strftime("%Q").is_err());
    }
}
