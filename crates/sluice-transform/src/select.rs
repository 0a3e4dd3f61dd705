//! dbt's node selection: `--select` / `--exclude`.
//!
//! A selection is a list of arguments (each may hold several criteria
//! separated by spaces: their union); a criterion with commas is the
//! intersection of its parts. A part is `[@][N+|+]method:value[+|+N]`:
//!
//! | method | selects |
//! |---|---|
//! | (none) | a node by name, or by fqn (`shop.staging.*`; a project or package name alone: all its nodes); a path when it has `/` or ends in `.sql`/`.csv` |
//! | `package:mini_utils` | the nodes of an installed package (or of the root project, by its name) |
//! | `tag:x` | nodes tagged `x` |
//! | `path:models/staging` | nodes whose file is under the path (or is it) |
//! | `config.materialized:table` | nodes with that config value |
//! | `resource_type:model` | models, seeds or tests |
//! | `source:raw` / `source:raw.orders` | what reads the source (with `+`) |
//! | `test_type:generic` / `singular` | tests of that kind |
//! | `test_name:unique` | generic tests of that name |
//! | `state:modified` / `state:new` | nodes changed since the manifest given with `--state` |
//! | `fqn:shop.marts.*` | by fully qualified name |
//!
//! `+x` adds ancestors, `x+` descendants (`2+x`: two levels), `@x` adds x's
//! descendants and all their ancestors. In `test` and `build`, a test whose
//! parent is selected is selected too (dbt's eager indirect selection).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use crate::error::{Result, TransformError};
use crate::manifest::{Manifest, NodeKind};

/// A previous run's `manifest.json`, for `state:` selection.
#[derive(Debug, Clone, Default)]
pub struct PreviousState {
    /// unique_id → (checksum, config) of every node it holds.
    nodes: HashMap<String, (String, Value)>,
}

impl PreviousState {
    /// Read `<dir>/manifest.json`.
    pub fn load(dir: &Path) -> Result<PreviousState> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|source| TransformError::Io {
            path: path.clone(),
            source,
        })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| TransformError::Project {
            message: format!("{}: not a dbt manifest: {e}", path.display()),
            hint: Some(
                "--state names the folder of a previous run's manifest.json (its `target/`)".into(),
            ),
        })?;
        let mut nodes = HashMap::new();
        if let Some(Value::Object(all)) = json.get("nodes") {
            for (id, n) in all {
                let checksum = n
                    .pointer("/checksum/checksum")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let config = n.get("config").cloned().unwrap_or(Value::Null);
                nodes.insert(id.clone(), (checksum, config));
            }
        }
        Ok(PreviousState { nodes })
    }
}

fn bad(message: String) -> TransformError {
    TransformError::Project {
        message,
        hint: Some(
            "selectors: `name`, `+name`, `name+`, `@name`, `tag:x`, `path:models/x`, `config.materialized:table`, `resource_type:model`, `source:raw`, `state:modified`; space = union, comma = intersection".into(),
        ),
    }
}

struct Graph<'a> {
    parents: HashMap<&'a str, Vec<&'a str>>,
    children: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Graph<'a> {
    fn new(m: &'a Manifest) -> Graph<'a> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, n) in &m.nodes {
            for d in &n.depends_on {
                parents.entry(name).or_default().push(d);
                children.entry(d).or_default().push(name);
            }
        }
        Graph { parents, children }
    }

    fn walk(&self, start: &HashSet<String>, up: bool, depth: Option<usize>) -> HashSet<String> {
        let edges = if up { &self.parents } else { &self.children };
        let mut out = HashSet::new();
        let mut frontier: Vec<String> = start.iter().cloned().collect();
        let mut level = 0;
        while !frontier.is_empty() && depth.is_none_or(|d| level < d) {
            let mut next = Vec::new();
            for n in &frontier {
                for e in edges.get(n.as_str()).into_iter().flatten() {
                    if out.insert((*e).to_string()) {
                        next.push((*e).to_string());
                    }
                }
            }
            frontier = next;
            level += 1;
        }
        out
    }
}

fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len())
                    .filter(|i| text.is_char_boundary(head.len() + i))
                    .any(|i| glob_match(tail, &text[head.len() + i..]))
        }
    }
}

fn config_matches(v: Option<&Value>, want: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == want,
        Some(Value::Bool(b)) => b.to_string() == want,
        Some(Value::Number(n)) => n.to_string() == want,
        Some(Value::Array(a)) => a.iter().any(|x| config_matches(Some(x), want)),
        _ => false,
    }
}

/// The nodes `method:value` names, before graph operators.
fn base(
    m: &Manifest,
    g: &Graph<'_>,
    method: Option<&str>,
    value: &str,
    previous: Option<&PreviousState>,
) -> Result<(HashSet<String>, bool)> {
    let mut out = HashSet::new();
    // `source:` selects what reads it; the source itself is not a node.
    let mut via_source = false;
    for (name, n) in &m.nodes {
        let hit = match method {
            None | Some("fqn") => {
                let path_like = method.is_none()
                    && (value.contains('/') || value.ends_with(".sql") || value.ends_with(".csv"));
                if path_like {
                    path_matches(&n.path, value)
                } else if value.contains('.') || value.contains('*') {
                    let fqn = n.fqn.join(".");
                    glob_match(value, &fqn)
                        || glob_match(&format!("{}.{value}", m.project), &fqn)
                        || glob_match(value, name)
                } else {
                    name == value
                        || n.fqn.last().is_some_and(|l| l == value)
                        || n.fqn.first().is_some_and(|p| p == value)
                }
            }
            Some("package") => glob_match(value, &n.package_name),
            Some("tag") => n.tags().iter().any(|t| glob_match(value, t)),
            Some("path") => path_matches(&n.path, value),
            Some("resource_type") => n.kind.resource_type() == value,
            Some("test_type") if value == "unit" => n.kind == NodeKind::UnitTest,
            Some("test_type") => {
                n.kind == NodeKind::Test
                    && match value {
                        "generic" | "schema" => {
                            n.test.as_ref().is_some_and(|t| t.generic.is_some())
                        }
                        "singular" | "data" => n.test.as_ref().is_some_and(|t| t.generic.is_none()),
                        _ => {
                            return Err(bad(format!(
                                "test_type:{value} is not generic or singular"
                            )));
                        }
                    }
            }
            Some("test_name") => n
                .test
                .as_ref()
                .and_then(|t| t.generic.as_deref())
                .is_some_and(|t| glob_match(value, t.rsplit('.').next().unwrap_or(t))),
            Some("source") => {
                via_source = true;
                n.sources.iter().any(|(s, t)| {
                    glob_match(value, s)
                        || glob_match(value, &format!("{s}.{t}"))
                        || glob_match(
                            &format!("{}.{value}", m.project),
                            &format!("{}.{s}.{t}", m.project),
                        )
                })
            }
            Some("state") => {
                let Some(prev) = previous else {
                    return Err(TransformError::Project {
                        message: format!("`state:{value}` needs a previous manifest"),
                        hint: Some(
                            "pass --state <folder of an earlier run's manifest.json>".into(),
                        ),
                    });
                };
                match (value, prev.nodes.get(&n.unique_id)) {
                    ("new", old) => old.is_none(),
                    ("modified", None) => true,
                    ("modified", Some((checksum, config))) => {
                        checksum != &n.checksum
                            || config
                                .get("materialized")
                                .and_then(Value::as_str)
                                .is_some_and(|old| old != n.materialized())
                    }
                    (other, _) => {
                        return Err(bad(format!("state:{other} (supported: modified, new)")));
                    }
                }
            }
            Some(m) if m.starts_with("config.") => {
                config_matches(n.config.get(&m["config.".len()..]), value)
                    || (m == "config.materialized" && n.materialized() == value)
            }
            Some(other) => return Err(bad(format!("unknown selector method `{other}:`"))),
        };
        if hit {
            out.insert(name.clone());
        }
    }
    let _ = g;
    Ok((out, via_source))
}

fn path_matches(path: &Path, value: &str) -> bool {
    let value = value.trim_end_matches('/');
    let p = path.to_string_lossy();
    p == value || p.starts_with(&format!("{value}/")) || glob_match(value, &p)
}

fn one(
    m: &Manifest,
    g: &Graph<'_>,
    part: &str,
    previous: Option<&PreviousState>,
) -> Result<HashSet<String>> {
    let mut s = part;
    let at = s.starts_with('@');
    if at {
        s = &s[1..];
    }
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let (up, up_depth) = if s[digits.len()..].starts_with('+') {
        let depth = digits.parse::<usize>().ok();
        s = &s[digits.len() + 1..];
        (true, depth)
    } else {
        (false, None)
    };
    let (down, down_depth) = match s.rfind('+') {
        Some(i) if s[i + 1..].chars().all(|c| c.is_ascii_digit()) => {
            let depth = s[i + 1..].parse::<usize>().ok();
            s = &s[..i];
            (true, depth)
        }
        _ => (false, None),
    };
    if s.is_empty() {
        return Err(bad(format!("`{part}` selects nothing")));
    }
    let (method, value) = match s.split_once(':') {
        Some((m, v)) => (Some(m), v),
        None => (None, s),
    };
    let (mut set, _) = base(m, g, method, value, previous)?;
    if at {
        let desc = g.walk(&set, false, None);
        set.extend(desc);
        let anc = g.walk(&set, true, None);
        set.extend(anc);
    } else {
        if up {
            let anc = g.walk(&set, true, up_depth);
            set.extend(anc);
        }
        if down {
            let desc = g.walk(&set, false, down_depth);
            set.extend(desc);
        }
    }
    Ok(set)
}

fn union_of(
    m: &Manifest,
    g: &Graph<'_>,
    args: &[String],
    previous: Option<&PreviousState>,
) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for arg in args {
        for criterion in arg.split_whitespace() {
            let mut parts = criterion.split(',');
            let Some(first) = parts.next() else { continue };
            let mut set = one(m, g, first, previous)?;
            for p in parts {
                let other = one(m, g, p, previous)?;
                set.retain(|n| other.contains(n));
            }
            out.extend(set);
        }
    }
    Ok(out)
}

/// The node names `select` and `exclude` leave (all nodes when `select`
/// is empty). With `indirect_tests`, tests of selected nodes are added.
pub fn select(
    m: &Manifest,
    select: &[String],
    exclude: &[String],
    previous: Option<&PreviousState>,
    indirect_tests: bool,
) -> Result<HashSet<String>> {
    let g = Graph::new(m);
    let mut set = if select.is_empty() {
        m.nodes.keys().cloned().collect()
    } else {
        union_of(m, &g, select, previous)?
    };
    if indirect_tests && !select.is_empty() {
        for (name, n) in &m.nodes {
            let unit_of_selected = n.kind == NodeKind::UnitTest
                && n.test
                    .as_ref()
                    .and_then(|t| t.attached.as_ref())
                    .is_some_and(|m| set.contains(m));
            let test_of_selected =
                n.kind == NodeKind::Test && n.depends_on.iter().any(|d| set.contains(d));
            if unit_of_selected || test_of_selected {
                set.insert(name.clone());
            }
        }
    }
    if !exclude.is_empty() {
        let out = union_of(m, &g, exclude, previous)?;
        set.retain(|n| !out.contains(n));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::jinja::Target;
    use crate::project::DbtProject;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn manifest() -> (tempfile::TempDir, Manifest) {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        write(
            dir,
            "dbt_project.yml",
            "name: shop\nmodels:\n  shop:\n    marts: {+materialized: table, +tags: [daily]}\n",
        );
        write(dir, "seeds/raw.csv", "id\n1\n");
        write(
            dir,
            "models/staging/stg.sql",
            "select * from {{ ref('raw') }}",
        );
        write(
            dir,
            "models/staging/stg2.sql",
            "select * from {{ source('app', 'users') }}",
        );
        write(dir, "models/marts/a.sql", "select * from {{ ref('stg') }}");
        write(
            dir,
            "models/marts/b.sql",
            "select * from {{ ref('a') }} join {{ ref('stg2') }} using (id)",
        );
        write(
            dir,
            "models/schema.yml",
            "version: 2\nsources: [{name: app, tables: [{name: users}]}]\nmodels:\n  - name: a\n    columns: [{name: id, tests: [unique]}]\n",
        );
        let p = DbtProject::load(dir).unwrap();
        let t = Target {
            name: "dev".into(),
            kind: "sluice".into(),
            schema: "main".into(),
            database: None,
            threads: 1,
        };
        let m = crate::manifest::compile(&p, &t, &IndexMap::new()).unwrap();
        (d, m)
    }

    fn sel(m: &Manifest, s: &[&str], x: &[&str], tests: bool) -> Vec<String> {
        let s: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        let x: Vec<String> = x.iter().map(|x| x.to_string()).collect();
        let mut v: Vec<String> = select(m, &s, &x, None, tests)
            .unwrap()
            .into_iter()
            .collect();
        v.sort();
        v
    }

    #[test]
    fn graph_operators_methods_and_set_algebra() {
        let (_d, m) = manifest();
        assert_eq!(sel(&m, &["a"], &[], false), vec!["a"]);
        assert_eq!(sel(&m, &["+a"], &[], false), vec!["a", "raw", "stg"]);
        assert_eq!(
            sel(&m, &["stg+"], &[], false),
            vec!["a", "b", "stg", "unique_a_id"]
        );
        assert_eq!(sel(&m, &["1+b"], &[], false), vec!["a", "b", "stg2"]);
        assert_eq!(sel(&m, &["tag:daily"], &[], false), vec!["a", "b"]);
        assert_eq!(sel(&m, &["tag:daily,+b"], &["b"], false), vec!["a"]);
        assert_eq!(
            sel(&m, &["path:models/staging"], &[], false),
            vec!["stg", "stg2"]
        );
        assert_eq!(
            sel(&m, &["config.materialized:table"], &[], false),
            vec!["a", "b"]
        );
        assert_eq!(sel(&m, &["source:app+"], &[], false), vec!["b", "stg2"]);
        assert_eq!(sel(&m, &["a"], &[], true), vec!["a", "unique_a_id"]);
        assert_eq!(sel(&m, &["shop.marts.*"], &[], false), vec!["a", "b"]);
        assert_eq!(
            sel(&m, &["resource_type:seed stg2"], &[], false),
            vec!["raw", "stg2"]
        );
        assert_eq!(
            sel(&m, &["@stg"], &[], false),
            vec!["a", "b", "raw", "stg", "stg2", "unique_a_id"]
        );
        assert!(select(&m, &["nope:x".into()], &[], None, false).is_err());
        assert!(select(&m, &["state:modified".into()], &[], None, false).is_err());
    }

    #[test]
    fn state_modified_compares_checksums() {
        let (_d, m) = manifest();
        let mut prev = PreviousState::default();
        for n in m.nodes.values() {
            prev.nodes.insert(
                n.unique_id.clone(),
                (
                    n.checksum.clone(),
                    serde_json::json!({"materialized": n.materialized()}),
                ),
            );
        }
        prev.nodes.get_mut("model.shop.a").unwrap().0 = "changed".into();
        let s = select(&m, &["state:modified+".into()], &[], Some(&prev), false).unwrap();
        let mut v: Vec<_> = s.into_iter().collect();
        v.sort();
        assert_eq!(v, vec!["a", "b", "unique_a_id"]);
    }
}
