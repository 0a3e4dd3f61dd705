//! `${VAR}` interpolation in the project file.
//!
//! Interpolation runs on the raw text before YAML parsing, so a missing variable
//! is reported at the exact line and column of its `${…}`. Values come from the
//! process environment first, then from the project's `.env` file (the
//! environment wins, as in docker compose and dbt). `$${` writes a literal `${`.
//! `${VAR:-default}` uses `default` when `VAR` is unset or empty.
//!
//! Interpolated values are secrets until proven otherwise: callers keep the
//! list of substituted names ([`Interpolated::used`]) so that printing the
//! configuration can redact them.

use std::collections::BTreeMap;

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarOrigin {
    /// The process environment.
    Environment,
    /// The project's `.env` file.
    DotEnv,
    /// The `:-default` written in the project file.
    Default,
}

/// The result of interpolating a text.
#[derive(Debug, Clone)]
pub struct Interpolated {
    /// The text with every `${…}` replaced.
    pub text: String,
    /// The variables that were substituted, with their values and origins.
    pub used: BTreeMap<String, (String, VarOrigin)>,
}

/// A `${VAR}` that could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    /// Name of the variable.
    pub name: String,
    /// 1-based line of the `${`.
    pub line: usize,
    /// 1-based column (in characters) of the `${`.
    pub column: usize,
    /// True when the `${` was never closed by a `}`.
    pub unterminated: bool,
}

/// Replace `${VAR}` / `${VAR:-default}` in `text`, except inside YAML
/// comments (a commented-out `# url: ${OLD_DB}` must not require `OLD_DB`).
///
/// `lookup` resolves a name (environment first, then `.env`).
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<(String, VarOrigin)>,
) -> Result<Interpolated, MissingVar> {
    let mut out = String::with_capacity(text.len());
    let mut used = BTreeMap::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let cut = comment_start(line).unwrap_or(line.len());
        interpolate_span(text, offset, &line[..cut], &lookup, &mut out, &mut used)?;
        out.push_str(&line[cut..]);
        offset += line.len();
    }
    Ok(Interpolated { text: out, used })
}

/// Byte offset of a YAML comment in `line`: a `#` at the start or after
/// white space, outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

fn interpolate_span(
    text: &str,
    base: usize,
    span: &str,
    lookup: &impl Fn(&str) -> Option<(String, VarOrigin)>,
    out: &mut String,
    used: &mut BTreeMap<String, (String, VarOrigin)>,
) -> Result<(), MissingVar> {
    let mut rest = span;
    let mut consumed = base; // bytes of `text` before `rest`
    while let Some(pos) = rest.find("${") {
        // `$${` is an escaped literal `${`.
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            consumed += pos + 2;
            continue;
        }
        out.push_str(&rest[..pos]);
        let start = consumed + pos;
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            let (line, column) = line_col(text, start);
            return Err(MissingVar {
                name: after.lines().next().unwrap_or_default().to_string(),
                line,
                column,
                unterminated: true,
            });
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (inner.trim(), None),
        };
        let found = lookup(name).filter(|(v, _)| !(default.is_some() && v.is_empty()));
        let (value, origin) = match (found, default) {
            (Some(v), _) => v,
            (None, Some(d)) => (d.to_string(), VarOrigin::Default),
            (None, None) => {
                let (line, column) = line_col(text, start);
                return Err(MissingVar {
                    name: name.to_string(),
                    line,
                    column,
                    unterminated: false,
                });
            }
        };
        out.push_str(&value);
        used.insert(name.to_string(), (value, origin));
        rest = &after[end + 1..];
        consumed = start + 2 + end + 1;
    }
    out.push_str(rest);
    Ok(())
}

/// 1-based line and character column of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Parse a `.env` file: `KEY=value` lines, `#` comments, optional `export `,
/// single or double quotes around the value.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            value[1..value.len() - 1].to_string()
        } else {
            // Unquoted values may carry a trailing ` # comment`.
            value
                .split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        vars.insert(key.trim().to_string(), value);
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<(String, VarOrigin)> {
        match name {
            "HOST" => Some(("db.local".into(), VarOrigin::Environment)),
            "EMPTY" => Some((String::new(), VarOrigin::Environment)),
            _ => None,
        }
    }

    #[test]
    fn substitutes_and_records_names() {
        let r = interpolate("url: pg://${HOST}:5432/${DB:-app}", env).unwrap();
        assert_eq!(r.text, "url: pg://db.local:5432/app");
        assert_eq!(r.used["HOST"].1, VarOrigin::Environment);
        assert_eq!(r.used["DB"], ("app".into(), VarOrigin::Default));
    }

    #[test]
    fn empty_value_takes_default_only_with_default() {
        assert_eq!(interpolate("${EMPTY:-x}", env).unwrap().text, "x");
        assert_eq!(interpolate("[${EMPTY}]", env).unwrap().text, "[]");
    }

    #[test]
    fn escaped_dollar_is_literal() {
        assert_eq!(interpolate("a: $${HOST}", env).unwrap().text, "a: ${HOST}");
    }

    #[test]
    fn missing_variable_is_located() {
        let e = interpolate("a: 1\nb: x ${NOPE}\n", env).unwrap_err();
        assert_eq!((e.name.as_str(), e.line, e.column), ("NOPE", 2, 6));
        let e = interpolate("a: ${HOST", env).unwrap_err();
        assert!(e.unterminated);
    }

    #[test]
    fn comments_are_not_interpolated() {
        let r = interpolate("a: 1 # was ${OLD}\n# b: ${OLD}\nc: \"x # ${HOST}\"\n", env).unwrap();
        assert_eq!(
            r.text,
            "a: 1 # was ${OLD}\n# b: ${OLD}\nc: \"x # db.local\"\n"
        );
        assert!(!r.used.contains_key("OLD"));
        let e = interpolate("a: 1\nb: ${NOPE} # note\n", env).unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
    }

    #[test]
    fn dotenv_parsing() {
        let v = parse_dotenv("# c\nexport A=1\nB=\"two words\"\nC='x' \nD=plain # note\n");
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two words");
        assert_eq!(v["C"], "x");
        assert_eq!(v["D"], "plain");
    }
}
