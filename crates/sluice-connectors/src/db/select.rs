//! Which tables a database source reads (`include` / `exclude`), and the
//! stream each becomes.

use sluice_core::config::suggest::did_you_mean;
use sluice_core::connector::ConnectorError;
use sluice_core::names::sanitize_identifier;

use super::RemoteTable;

/// `schema.table` patterns with `*` and `?`; a pattern without a dot is a
/// table of the default schema. Matching ignores ASCII case.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    include: Vec<String>,
    exclude: Vec<String>,
    default_schema: String,
}

impl Selection {
    /// A selection; `include: None` means every table.
    pub fn new(
        include: Option<&[String]>,
        exclude: Option<&[String]>,
        default_schema: &str,
    ) -> Selection {
        Selection {
            include: include.map(<[String]>::to_vec).unwrap_or_default(),
            exclude: exclude.map(<[String]>::to_vec).unwrap_or_default(),
            default_schema: default_schema.to_string(),
        }
    }

    fn qualify(&self, pattern: &str) -> String {
        if pattern.contains('.') {
            pattern.to_string()
        } else {
            format!("{}.{pattern}", self.default_schema)
        }
    }

    fn hit(&self, pattern: &str, t: &RemoteTable) -> bool {
        glob_match(
            &self.qualify(pattern).to_ascii_lowercase(),
            &t.display().to_ascii_lowercase(),
        )
    }

    /// Whether `t` is selected.
    pub fn matches(&self, t: &RemoteTable) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| self.hit(p, t)))
            && !self.exclude.iter().any(|p| self.hit(p, t))
    }

    /// The selected tables, sorted; an `include` entry without wildcards
    /// that names no table is an error with a suggestion.
    pub fn apply(
        &self,
        all: &[RemoteTable],
        source: &str,
    ) -> Result<Vec<RemoteTable>, ConnectorError> {
        for p in &self.include {
            if p.contains(['*', '?']) {
                continue;
            }
            if !all.iter().any(|t| self.hit(p, t)) {
                let names: Vec<String> = all.iter().map(RemoteTable::display).collect();
                let wanted = self.qualify(p);
                let hint = match did_you_mean(&wanted, names.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`? Fix `include` of source `{source}`"),
                    None if names.is_empty() => {
                        "the database has no tables visible to this user".to_string()
                    }
                    None => format!(
                        "tables visible to this user: {}",
                        names
                            .iter()
                            .take(20)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(ConnectorError::config(
                    format!(
                        "Source `{source}`: `include` names `{wanted}`, which is not a table of the database"
                    ),
                    Some(hint),
                ));
            }
        }
        let mut out: Vec<RemoteTable> = all.iter().filter(|t| self.matches(t)).cloned().collect();
        out.sort();
        Ok(out)
    }
}

/// `*` matches any run of characters, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Stream names for tables: the table name when it is in the default schema
/// or unique; `<schema>_<table>` otherwise. Names are made identifiers
/// (lower case, `_` for other characters); a clash left after that is an
/// error naming both tables.
pub fn stream_names(
    tables: &[RemoteTable],
    default_schema: &str,
    source: &str,
) -> Result<Vec<String>, ConnectorError> {
    let mut out: Vec<String> = Vec::with_capacity(tables.len());
    for t in tables {
        let unique = tables
            .iter()
            .filter(|o| o.name.eq_ignore_ascii_case(&t.name))
            .count()
            == 1;
        let raw = if t.schema == default_schema || unique {
            t.name.clone()
        } else {
            format!("{}_{}", t.schema, t.name)
        };
        let name = sanitize_identifier(&raw);
        if let Some(i) = out.iter().position(|n| *n == name) {
            return Err(ConnectorError::config(
                format!(
                    "Source `{source}`: tables `{}` and `{}` would both be stream `{name}`",
                    tables[i].display(),
                    t.display()
                ),
                Some("leave one out with `exclude`".to_string()),
            ));
        }
        out.push(name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, n: &str) -> RemoteTable {
        RemoteTable {
            schema: s.into(),
            name: n.into(),
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("public.*", "public.orders"));
        assert!(glob_match("*.ord?rs", "sales.orders"));
        assert!(!glob_match("public.o*", "sales.orders"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn include_exclude_and_suggestions() {
        let all = vec![
            t("public", "orders"),
            t("public", "customers"),
            t("audit", "orders"),
            t("public", "tmp_x"),
        ];
        let s = Selection::new(Some(&["orders".into(), "audit.*".into()]), None, "public");
        assert_eq!(
            s.apply(&all, "app").unwrap(),
            vec![t("audit", "orders"), t("public", "orders")]
        );
        let s = Selection::new(None, Some(&["*.tmp_*".into()]), "public");
        assert_eq!(s.apply(&all, "app").unwrap().len(), 3);
        let s = Selection::new(Some(&["public.ordrs".into()]), None, "public");
        let e = s.apply(&all, "app").unwrap_err();
        use sluice_core::error::Classify;
        assert!(
            e.hint().unwrap().contains("did you mean `public.orders`"),
            "{e:?}"
        );
    }

    #[test]
    fn stream_names_are_short_when_they_can_be() {
        let tables = vec![
            t("audit", "orders"),
            t("public", "orders"),
            t("sales", "Line Items"),
        ];
        assert_eq!(
            stream_names(&tables, "public", "app").unwrap(),
            ["audit_orders", "orders", "line_items"]
        );
        let clash = [t("public", "a_b"), t("a", "b_x"), t("public", "A_B")];
        assert!(stream_names(&clash[..1], "public", "app").is_ok());
        assert!(stream_names(&[t("public", "a-b"), t("public", "a_b")], "public", "app").is_err());
    }
}
