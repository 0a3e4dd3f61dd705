//! `{% docs name %}…{% enddocs %}` blocks of a project's Markdown files,
//! and `doc('name')`, which descriptions use to include them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use minijinja::value::{Rest, Value};
use minijinja::{Environment, Error, ErrorKind};

use super::did_you_mean;
use crate::error::{Result, TransformError};

/// Docs blocks by name.
pub type Docs = HashMap<String, String>;

/// The tag at the start of `s` (`{% word args %}`, `{%- … -%}`): its word,
/// its argument text, whether it trims before/after, and its length.
fn tag_at(s: &str) -> Option<(&str, &str, bool, bool, usize)> {
    let inner_end = s.find("%}")?;
    let inner = &s[2..inner_end];
    let trim_before = inner.starts_with('-');
    let trim_after = inner.ends_with('-');
    let inner = inner.trim_start_matches('-').trim_end_matches('-').trim();
    let (word, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
    Some((word, args.trim(), trim_before, trim_after, inner_end + 2))
}

/// Add the docs blocks of `text` (the file `path`) to `docs`. Their text is
/// kept trimmed, as dbt keeps it.
pub fn parse_docs(path: &Path, text: &str, docs: &mut Docs) -> Result<()> {
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let error = |at: usize, message: String| TransformError::Template {
        path: path.to_path_buf(),
        line: Some(line_of(at)),
        message,
    };
    let mut pos = 0;
    while let Some(i) = text[pos..].find("{%") {
        let start = pos + i;
        let Some((word, name, _, _, len)) = tag_at(&text[start..]) else {
            return Err(error(start, "a `{%` tag is never closed".into()));
        };
        pos = start + len;
        if word != "docs" {
            continue;
        }
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(error(
                start,
                format!(
                    "`{{% docs {name} %}}`: a docs block needs a name of letters, digits and `_`"
                ),
            ));
        }
        let body_start = pos;
        let mut end = None;
        let mut p = body_start;
        while let Some(j) = text[p..].find("{%") {
            let at = p + j;
            match tag_at(&text[at..]) {
                Some(("enddocs", _, _, _, l)) => {
                    end = Some((at, at + l));
                    break;
                }
                Some((_, _, _, _, l)) => p = at + l,
                None => break,
            }
        }
        let Some((body_end, after)) = end else {
            return Err(error(
                start,
                format!("`{{% docs {name} %}}` has no `{{% enddocs %}}`"),
            ));
        };
        if docs
            .insert(
                name.to_string(),
                text[body_start..body_end].trim().to_string(),
            )
            .is_some()
        {
            return Err(error(
                start,
                format!("docs block `{name}` is defined twice"),
            ));
        }
        pos = after;
    }
    Ok(())
}

/// Add `doc('name')` (and `doc('package', 'name')`) to `env`.
pub(crate) fn register(env: &mut Environment<'static>, docs: Arc<Docs>) {
    env.add_function("doc", move |args: Rest<String>| -> Result<Value, Error> {
        let name = match args.as_slice() {
            [name] | [_, name] => name,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "doc takes a docs block name, or a package and a name",
                ));
            }
        };
        docs.get(name)
            .map(|d| Value::from(d.clone()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "doc('{name}') names no docs block{}",
                        did_you_mean(name, docs.keys())
                    ),
                )
            })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_trimmed_and_checked() {
        let mut docs = Docs::new();
        parse_docs(
            Path::new("models/docs.md"),
            "# Title\n{% docs orders %}\nOne row per **order**.\n{% enddocs %}\n{%- docs status -%} a {% raw %}x{% endraw %} {%- enddocs -%}",
            &mut docs,
        )
        .unwrap();
        assert_eq!(docs["orders"], "One row per **order**.");
        assert_eq!(docs["status"], "a {% raw %}x{% endraw %}");
        let e = parse_docs(
            Path::new("models/more.md"),
            "\n{% docs orders %}again{% enddocs %}",
            &mut docs,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "models/more.md:2: docs block `orders` is defined twice");
        let e = parse_docs(Path::new("a.md"), "{% docs x %}never closed", &mut docs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no `{% enddocs %}`"), "{e}");
    }
}
