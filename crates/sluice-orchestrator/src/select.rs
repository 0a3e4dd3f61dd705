//! dbt-style selection over the asset graph.
//!
//! A selector is a space-separated union of terms; a term is a
//! comma-separated intersection of atoms; an atom is
//! `[@][N+]method:value[+N]` or `[@][N+]value[+N]`:
//! - a plain value matches an asset's key (`shop.orders`, `stg_orders`),
//!   its table (`raw.orders`), the source of a stream (`shop` selects
//!   every stream of source `shop`), or, with `*`/`?`, a glob on the key;
//! - `tag:T`, `source:S` (a Sluice source, a dbt source `raw` or
//!   `raw.orders`), `kind:K` (also `resource_type:`; stream, seed, model,
//!   snapshot), `path:P` (files under P), `key:K` (exact key only),
//!   `table:T`;
//! - `+x` adds x's ancestors, `x+` its descendants, `2+x` / `x+1` limit
//!   the depth, `@x` adds x's descendants and all their ancestors.

use std::collections::HashSet;

use crate::graph::{AssetGraph, AssetKind};

/// A selector that selects nothing or does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// An atom matches no asset.
    #[error("`{atom}` matches no asset{}", near_list(.near))]
    NoMatch {
        /// The atom.
        atom: String,
        /// Asset keys that look like it.
        near: Vec<String>,
    },
    /// An atom does not parse.
    #[error("`{atom}` is not a selector: {reason}")]
    Syntax {
        /// The atom.
        atom: String,
        /// Why.
        reason: String,
    },
}

fn near_list(near: &[String]) -> String {
    if near.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", near.join(", "))
    }
}

impl SelectError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            SelectError::NoMatch { .. } => {
                "list the assets with `sluice graph`; select by key, table, source:, tag:, kind: or path:, with + for parents/children"
            }
            SelectError::Syntax { .. } => {
                "write e.g. `+orders`, `shop+`, `tag:daily,kind:model`, `source:shop`"
            }
        }
    }
}

/// The assets `select` picks (all when it is empty) minus those `exclude`
/// picks.
pub fn select(
    graph: &AssetGraph,
    select: &[String],
    exclude: &[String],
) -> Result<HashSet<String>, SelectError> {
    let mut chosen: HashSet<String> = if select.iter().all(|s| s.trim().is_empty()) {
        graph.assets().map(|a| a.key.clone()).collect()
    } else {
        union(graph, select)?
    };
    // Excluding what is not there is no mistake (a job's `exclude` may
    // name assets that come and go); bad syntax still is.
    for term in exclude.iter().flat_map(|s| s.split_whitespace()) {
        match union(graph, &[term.to_string()]) {
            Ok(found) => {
                for k in found {
                    chosen.remove(&k);
                }
            }
            Err(SelectError::NoMatch { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(chosen)
}

fn union(graph: &AssetGraph, selectors: &[String]) -> Result<HashSet<String>, SelectError> {
    let mut out = HashSet::new();
    for term in selectors.iter().flat_map(|s| s.split_whitespace()) {
        let mut set: Option<HashSet<String>> = None;
        for atom in term.split(',').filter(|a| !a.is_empty()) {
            let found = atom_set(graph, atom)?;
            set = Some(match set {
                None => found,
                Some(s) => s.intersection(&found).cloned().collect(),
            });
        }
        out.extend(set.unwrap_or_default());
    }
    Ok(out)
}

/// One atom: its matches plus the graph operators around it.
fn atom_set(graph: &AssetGraph, atom: &str) -> Result<HashSet<String>, SelectError> {
    let syntax = |reason: &str| SelectError::Syntax {
        atom: atom.to_string(),
        reason: reason.to_string(),
    };
    let (at, rest) = match atom.strip_prefix('@') {
        Some(r) => (true, r),
        None => (false, atom),
    };
    // Leading `N+` or `+`.
    let (up, rest) = match rest.find('+') {
        Some(i) if rest[..i].chars().all(|c| c.is_ascii_digit()) && i < rest.len() - 1 => {
            let depth = if i == 0 {
                None
            } else {
                Some(
                    rest[..i]
                        .parse::<usize>()
                        .map_err(|_| syntax("bad depth"))?,
                )
            };
            (Some(depth), &rest[i + 1..])
        }
        _ => (None, rest),
    };
    // Trailing `+N` or `+`.
    let (down, core) = match rest.rfind('+') {
        Some(i) if rest[i + 1..].chars().all(|c| c.is_ascii_digit()) => {
            let depth = if i + 1 == rest.len() {
                None
            } else {
                Some(
                    rest[i + 1..]
                        .parse::<usize>()
                        .map_err(|_| syntax("bad depth"))?,
                )
            };
            (Some(depth), &rest[..i])
        }
        _ => (None, rest),
    };
    if core.is_empty() {
        return Err(syntax("nothing to select"));
    }
    if at && (up.is_some() || down.is_some()) {
        return Err(syntax("`@` cannot be combined with `+`"));
    }
    let matched = matches(graph, core)?;
    if matched.is_empty() {
        return Err(SelectError::NoMatch {
            atom: atom.to_string(),
            near: near(graph, core),
        });
    }
    let mut out = matched.clone();
    for k in &matched {
        if let Some(d) = up {
            out.extend(graph.upstream(k, d));
        }
        if let Some(d) = down {
            out.extend(graph.downstream(k, d));
        }
        if at {
            let below = graph.downstream(k, None);
            for b in &below {
                out.extend(graph.upstream(b, None));
            }
            out.extend(below);
        }
    }
    Ok(out)
}

fn matches(graph: &AssetGraph, core: &str) -> Result<HashSet<String>, SelectError> {
    let (method, value) = match core.split_once(':') {
        Some((m, v)) if is_method(m) => (Some(m), v),
        _ => (None, core),
    };
    let mut out = HashSet::new();
    for a in graph.assets() {
        let hit = match method {
            Some("tag") => a.tags.iter().any(|t| glob(value, t)),
            Some("source") => a.sources.iter().any(|s| glob(value, s)),
            Some("kind" | "resource_type") => {
                value == a.kind.as_str() || (value == "table" && a.kind != AssetKind::External)
            }
            Some("path") => a.path.as_deref().is_some_and(|p| {
                let v = value.trim_end_matches('/');
                p == v || p.starts_with(&format!("{v}/")) || glob(value, p)
            }),
            Some("key") => a.key == value,
            Some("table") => a.table.as_deref().is_some_and(|t| glob(value, t)),
            _ => {
                glob(value, &a.key)
                    || a.table.as_deref().is_some_and(|t| glob(value, t))
                    || (a.kind == AssetKind::Stream
                        && a.sources.first().is_some_and(|s| s == value))
            }
        };
        if hit {
            out.insert(a.key.clone());
        }
    }
    if let Some(m) = method
        && matches!(m, "kind" | "resource_type")
        && !["stream", "seed", "model", "snapshot", "external", "table"].contains(&value)
    {
        return Err(SelectError::Syntax {
            atom: core.to_string(),
            reason: format!(
                "`{value}` is not a kind (stream, seed, model, snapshot, external, table)"
            ),
        });
    }
    Ok(out)
}

fn is_method(m: &str) -> bool {
    matches!(
        m,
        "tag" | "source" | "kind" | "resource_type" | "path" | "key" | "table"
    )
}

/// `*` any run, `?` one character; without either, equality.
pub fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Keys close to `value`: sharing its last dotted part, or containing it.
fn near(graph: &AssetGraph, value: &str) -> Vec<String> {
    let needle = value
        .rsplit(['.', ':'])
        .next()
        .unwrap_or(value)
        .to_lowercase();
    let mut out: Vec<String> = graph
        .assets()
        .filter(|a| {
            let k = a.key.to_lowercase();
            !needle.is_empty() && (k.contains(&needle) || needle.contains(k.as_str()))
        })
        .map(|a| a.key.clone())
        .take(5)
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::graph::{Asset, AssetGraph};

    fn project() -> AssetGraph {
        let mut a = Asset::new("shop.orders", AssetKind::Stream);
        a.table = Some("raw.orders".into());
        a.sources = vec!["shop".into(), "raw".into(), "raw.orders".into()];
        let mut b = Asset::new("shop.customers", AssetKind::Stream);
        b.table = Some("raw.customers".into());
        b.sources = vec!["shop".into()];
        let mut s = Asset::new("stg_orders", AssetKind::Model);
        s.deps = vec!["shop.orders".into()];
        s.tags = vec!["daily".into()];
        s.path = Some("models/staging/stg_orders.sql".into());
        let mut f = Asset::new("fct_orders", AssetKind::Model);
        f.deps = vec!["stg_orders".into(), "shop.customers".into()];
        f.path = Some("models/marts/fct_orders.sql".into());
        let mut c = Asset::new("countries", AssetKind::Seed);
        c.tags = vec!["daily".into()];
        AssetGraph::new(vec![a, b, s, f, c]).unwrap()
    }

    fn sel(s: &[&str], x: &[&str]) -> BTreeSet<String> {
        let s: Vec<String> = s.iter().map(|v| v.to_string()).collect();
        let x: Vec<String> = x.iter().map(|v| v.to_string()).collect();
        select(&project(), &s, &x).unwrap().into_iter().collect()
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn names_tables_sources_and_globs() {
        assert_eq!(sel(&[], &[]).len(), 5);
        assert_eq!(sel(&["stg_orders"], &[]), set(&["stg_orders"]));
        assert_eq!(sel(&["raw.orders"], &[]), set(&["shop.orders"]));
        assert_eq!(sel(&["shop"], &[]), set(&["shop.orders", "shop.customers"]));
        assert_eq!(sel(&["source:raw"], &[]), set(&["shop.orders"]));
        assert_eq!(
            sel(&["*orders"], &[]),
            set(&["shop.orders", "stg_orders", "fct_orders"])
        );
        assert_eq!(sel(&["tag:daily"], &[]), set(&["stg_orders", "countries"]));
        assert_eq!(sel(&["tag:daily,kind:model"], &[]), set(&["stg_orders"]));
        assert_eq!(sel(&["path:models/marts"], &[]), set(&["fct_orders"]));
        assert_eq!(
            sel(&["countries stg_orders"], &[]),
            set(&["countries", "stg_orders"])
        );
        assert_eq!(
            sel(&["kind:stream"], &["shop.customers"]),
            set(&["shop.orders"])
        );
    }

    #[test]
    fn graph_operators() {
        assert_eq!(
            sel(&["+stg_orders"], &[]),
            set(&["stg_orders", "shop.orders"])
        );
        assert_eq!(
            sel(&["shop.orders+"], &[]),
            set(&["shop.orders", "stg_orders", "fct_orders"])
        );
        assert_eq!(
            sel(&["shop.orders+1"], &[]),
            set(&["shop.orders", "stg_orders"])
        );
        assert_eq!(
            sel(&["1+fct_orders"], &[]),
            set(&["fct_orders", "stg_orders", "shop.customers"])
        );
        assert_eq!(
            sel(&["@stg_orders"], &[]),
            set(&["stg_orders", "fct_orders", "shop.orders", "shop.customers"])
        );
        assert_eq!(
            sel(&["source:shop+"], &["kind:stream"]),
            set(&["stg_orders", "fct_orders"])
        );
    }

    #[test]
    fn errors_name_the_atom_and_near_keys() {
        let e = select(&project(), &["stg_order".into()], &[]).unwrap_err();
        assert_eq!(
            e,
            SelectError::NoMatch {
                atom: "stg_order".into(),
                near: vec!["stg_orders".into()]
            }
        );
        assert!(e.to_string().contains("did you mean stg_orders?"));
        let e = select(&project(), &["kind:table_x".into()], &[]).unwrap_err();
        assert!(matches!(e, SelectError::Syntax { .. }), "{e}");
        assert!(select(&project(), &["+".into()], &[]).is_err());
    }

    #[test]
    fn glob_matches() {
        assert!(glob("a*c", "abbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("abc", "abd"));
    }
}
