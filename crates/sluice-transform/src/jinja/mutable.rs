//! Lists and dicts that `append`/`update` change in place, as in dbt's
//! Python Jinja: `{% set cols = [] %}{% for … %}{% do cols.append(c) %}`.
//!
//! minijinja's values are immutable, so a `{% set name = [...] %}` or
//! `{% set name = {...} %}` tag is rewritten (on its own line, so lines do
//! not move) to wrap the value in `__sluice_mut(...)`, which makes it one of
//! the objects below.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, from_args};
use minijinja::{Error, ErrorKind, State};

/// The function `{% set %}` values are wrapped in.
pub(crate) const WRAP: &str = "__sluice_mut";

/// Wrap the value of every `{% set name = [..] %}` / `{% set name = {..} %}`
/// tag of `text` in `__sluice_mut(...)`.
pub(crate) fn rewrite_sets(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("set") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut copied = 0;
    let mut pos = 0;
    while let Some(i) = text[pos..].find("{%") {
        let start = pos + i;
        let Some(close) = text[start..].find("%}") else {
            break;
        };
        let end = start + close;
        pos = end + 2;
        let inner = &text[start + 2..end];
        let body = inner.trim_start_matches(['-', '+']).trim_start();
        let Some(after_set) = body.strip_prefix("set") else {
            continue;
        };
        if !after_set.starts_with(char::is_whitespace) {
            continue;
        }
        let rest = after_set.trim_start();
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_len == 0 {
            continue;
        }
        let Some(expr) = rest[name_len..].trim_start().strip_prefix('=') else {
            continue;
        };
        let expr = expr.trim_start();
        if !(expr.starts_with('[') || expr.starts_with('{')) {
            continue;
        }
        let expr_start = end - expr.len();
        let trimmed = expr.trim_end();
        let expr_end = match trimmed.strip_suffix(['-', '+']) {
            Some(t) => expr_start + t.trim_end().len(),
            None => expr_start + trimmed.len(),
        };
        out.push_str(&text[copied..expr_start]);
        out.push_str(WRAP);
        out.push('(');
        out.push_str(&text[expr_start..expr_end]);
        out.push(')');
        copied = expr_end;
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

/// `__sluice_mut(value)`: a changeable copy of a list or dict.
pub(crate) fn wrap(value: Value) -> Value {
    if let Some(items) = value.downcast_object_ref::<Vec<Value>>() {
        return Value::from_object(List(Mutex::new(items.clone())));
    }
    if let Some(map) = value.downcast_object_ref::<IndexMap<Value, Value>>() {
        return Value::from_object(Dict(Mutex::new(map.clone())));
    }
    value
}

fn poisoned() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "a list was changed while in use",
    )
}

/// A list with `append`, `extend`, `insert`, `pop`, `remove`.
#[derive(Debug, Default)]
pub(crate) struct List(Mutex<Vec<Value>>);

impl List {
    fn items(&self) -> Result<MutexGuard<'_, Vec<Value>>, Error> {
        self.0.lock().map_err(|_| poisoned())
    }

    /// The items, copied.
    pub fn snapshot(&self) -> Vec<Value> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Object for List {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let items = self.items().ok()?;
        let i = key.as_i64()?;
        let i = if i < 0 { items.len() as i64 + i } else { i };
        items.get(usize::try_from(i).ok()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.snapshot())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.items().ok().map(|v| v.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "append" => {
                let (v,): (Value,) = from_args(args)?;
                self.items()?.push(v);
            }
            "extend" => {
                let (v,): (Value,) = from_args(args)?;
                let new: Vec<Value> = v.try_iter()?.collect();
                self.items()?.extend(new);
            }
            "insert" => {
                let (i, v): (i64, Value) = from_args(args)?;
                let mut items = self.items()?;
                let len = items.len() as i64;
                let i = if i < 0 { (len + i).max(0) } else { i.min(len) };
                items.insert(usize::try_from(i).unwrap_or(0), v);
            }
            "pop" => {
                let (i,): (Option<i64>,) = from_args(args)?;
                let mut items = self.items()?;
                let len = items.len() as i64;
                let i = i.unwrap_or(-1);
                let i = if i < 0 { len + i } else { i };
                if i < 0 || i >= len {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "pop index out of range",
                    ));
                }
                return Ok(items.remove(usize::try_from(i).unwrap_or(0)));
            }
            "remove" => {
                let (v,): (Value,) = from_args(args)?;
                let mut items = self.items()?;
                match items.iter().position(|x| x == &v) {
                    Some(i) => {
                        items.remove(i);
                    }
                    None => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            "list.remove(x): x not in list",
                        ));
                    }
                }
            }
            "index" => {
                let (v,): (Value,) = from_args(args)?;
                let items = self.items()?;
                return items
                    .iter()
                    .position(|x| x == &v)
                    .map(Value::from)
                    .ok_or_else(|| {
                        Error::new(ErrorKind::InvalidOperation, "list.index(x): x not in list")
                    });
            }
            "copy" => return Ok(wrap(Value::from(self.snapshot()))),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }
        Ok(Value::from(()))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Value::from(self.snapshot()), f)
    }
}

/// A dict with `update`, `pop`, `setdefault`.
#[derive(Debug, Default)]
pub(crate) struct Dict(Mutex<IndexMap<Value, Value>>);

impl Dict {
    fn entries(&self) -> Result<MutexGuard<'_, IndexMap<Value, Value>>, Error> {
        self.0.lock().map_err(|_| poisoned())
    }

    /// The entries, copied.
    pub fn snapshot(&self) -> Vec<(Value, Value)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

impl Object for Dict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.entries().ok()?.get(key).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.snapshot().into_iter().map(|(k, _)| k).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.entries().ok().map(|m| m.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "update" => {
                let (other, kwargs): (Option<Value>, Kwargs) = from_args(args)?;
                let mut new = Vec::new();
                if let Some(other) = other {
                    for k in other.try_iter()? {
                        let v = other.get_item(&k)?;
                        new.push((k, v));
                    }
                }
                for k in kwargs.args() {
                    new.push((Value::from(k), kwargs.get::<Value>(k)?));
                }
                self.entries()?.extend(new);
                Ok(Value::from(()))
            }
            "pop" => {
                let (k, default): (Value, Option<Value>) = from_args(args)?;
                let removed = self.entries()?.shift_remove(&k);
                removed.or(default).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, format!("dict.pop: no key {k}"))
                })
            }
            "setdefault" => {
                let (k, default): (Value, Option<Value>) = from_args(args)?;
                let mut entries = self.entries()?;
                Ok(entries
                    .entry(k)
                    .or_insert(default.unwrap_or(Value::from(())))
                    .clone())
            }
            "copy" => Ok(wrap(Value::from_iter(self.snapshot()))),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Value::from_iter(self.snapshot()), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_tags_with_lists_and_dicts_are_wrapped() {
        assert_eq!(
            rewrite_sets(
                "{% set a = [] %}{%- set b = {'k': 1} -%}\n{% set c = 1 %}{% set d %}x{% endset %}{{ set([1]) }}"
            ),
            "{% set a = __sluice_mut([]) %}{%- set b = __sluice_mut({'k': 1}) -%}\n{% set c = 1 %}{% set d %}x{% endset %}{{ set([1]) }}"
        );
        assert_eq!(rewrite_sets("select 1"), "select 1");
    }
}
