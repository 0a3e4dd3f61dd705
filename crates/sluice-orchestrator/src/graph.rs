//! The asset graph: every table Sluice makes (a stream's table, a model, a
//! seed, a snapshot) is an asset, and its edges come from the data itself
//! (`source()`/`ref()` and stream → table), never from a task list.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use indexmap::IndexMap;
use serde::Serialize;

/// What makes an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// A stream of a source, loaded into its table.
    Stream,
    /// A dbt seed (a CSV of the project).
    Seed,
    /// A dbt model.
    Model,
    /// A dbt snapshot.
    Snapshot,
    /// A table nothing in the project makes (a dbt source no stream
    /// loads): a leaf that is never run.
    External,
}

impl AssetKind {
    /// The name selectors use (`kind:model`).
    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Stream => "stream",
            AssetKind::Seed => "seed",
            AssetKind::Model => "model",
            AssetKind::Snapshot => "snapshot",
            AssetKind::External => "external",
        }
    }

    /// Whether a run can make it.
    pub fn runnable(self) -> bool {
        self != AssetKind::External
    }
}

/// One asset.
#[derive(Debug, Clone, Serialize)]
pub struct Asset {
    /// Unique key: a stream's `<source>.<stream>`, a dbt node's name.
    pub key: String,
    /// What makes it.
    pub kind: AssetKind,
    /// The relation it lands in (`schema.table`, or `<destination>:schema.table`).
    pub table: Option<String>,
    /// Keys of the assets it reads.
    pub deps: Vec<String>,
    /// Tags (dbt tags; stream tags).
    pub tags: Vec<String>,
    /// Names `source:NAME` selects it by: the Sluice source of a stream,
    /// and `dbt_source` / `dbt_source.table` of a dbt source it loads.
    pub sources: Vec<String>,
    /// The file that defines it, relative to the project (`path:` selects by prefix).
    pub path: Option<String>,
    /// Names of the checks attached to it.
    pub checks: Vec<String>,
    /// Names of the checks its materialize step runs itself (a stream's
    /// checks run on every batch and on the committed table).
    pub inline_checks: Vec<String>,
    /// Other assets its checks read (a relationships check's parent
    /// table): the check step waits for them too.
    pub check_reads: Vec<String>,
    /// Concurrency pools its step takes a slot of (`source:shop`, `db:warehouse`).
    pub resources: Vec<String>,
    /// Pools its check step takes a slot of (checks query the table, not
    /// the source).
    pub check_resources: Vec<String>,
    /// Assets with the same unit run as one step (a Singer tap serves all
    /// of its streams in one process).
    pub unit: Option<String>,
}

impl Asset {
    /// A new asset with no edges, tags or checks.
    pub fn new(key: impl Into<String>, kind: AssetKind) -> Asset {
        Asset {
            key: key.into(),
            kind,
            table: None,
            deps: Vec::new(),
            tags: Vec::new(),
            sources: Vec::new(),
            path: None,
            checks: Vec::new(),
            inline_checks: Vec::new(),
            check_reads: Vec::new(),
            resources: Vec::new(),
            check_resources: Vec::new(),
            unit: None,
        }
    }
}

/// A mistake in the graph.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// Two assets share a key.
    #[error("two assets are called `{0}`")]
    Duplicate(String),
    /// An edge names an asset that is not there.
    #[error("asset `{asset}` depends on `{missing}`, which is not an asset of the project")]
    MissingDep {
        /// The asset.
        asset: String,
        /// Its unknown dependency.
        missing: String,
    },
    /// The edges form a cycle.
    #[error("the assets depend on each other in a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

impl GraphError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            GraphError::Duplicate(_) => {
                "rename one of them: stream ids and dbt node names share one namespace"
            }
            GraphError::MissingDep { .. } => "check the name in ref()/source() and the streams",
            GraphError::Cycle(_) => "break the cycle: a model cannot read, even indirectly, itself",
        }
    }
}

/// Assets and their edges, in topological order (parents first; ties in
/// the order they were given).
#[derive(Debug, Clone, Default)]
pub struct AssetGraph {
    assets: IndexMap<String, Asset>,
    children: HashMap<String, Vec<String>>,
}

impl AssetGraph {
    /// Build and check the graph: keys unique, every dependency present, no
    /// cycle. Duplicate edges are merged.
    pub fn new(assets: Vec<Asset>) -> Result<AssetGraph, GraphError> {
        let mut by_key: IndexMap<String, Asset> = IndexMap::with_capacity(assets.len());
        for mut a in assets {
            let mut seen = HashSet::new();
            a.deps.retain(|d| seen.insert(d.clone()));
            if by_key.contains_key(&a.key) {
                return Err(GraphError::Duplicate(a.key));
            }
            by_key.insert(a.key.clone(), a);
        }
        for a in by_key.values() {
            if let Some(missing) = a.deps.iter().find(|d| !by_key.contains_key(*d)) {
                return Err(GraphError::MissingDep {
                    asset: a.key.clone(),
                    missing: missing.clone(),
                });
            }
        }
        // Kahn's algorithm, stable: ready assets are taken in given order.
        let index: HashMap<&str, usize> = by_key
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let mut indegree: Vec<usize> = by_key.values().map(|a| a.deps.len()).collect();
        let mut children_idx: Vec<Vec<usize>> = vec![Vec::new(); by_key.len()];
        for (i, a) in by_key.values().enumerate() {
            for d in &a.deps {
                children_idx[index[d.as_str()]].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..by_key.len()).filter(|i| indegree[*i] == 0).collect();
        let mut order = Vec::with_capacity(by_key.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &c in &children_idx[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.insert(c);
                }
            }
        }
        if order.len() < by_key.len() {
            return Err(GraphError::Cycle(find_cycle(&by_key, &indegree)));
        }
        let mut slots: Vec<Option<Asset>> = by_key.into_values().map(Some).collect();
        let mut assets = IndexMap::with_capacity(slots.len());
        for i in order {
            if let Some(a) = slots[i].take() {
                assets.insert(a.key.clone(), a);
            }
        }
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        for a in assets.values() {
            for d in &a.deps {
                children.entry(d.clone()).or_default().push(a.key.clone());
            }
        }
        Ok(AssetGraph { assets, children })
    }

    /// Every asset, parents before children.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values()
    }

    /// The asset of this key.
    pub fn get(&self, key: &str) -> Option<&Asset> {
        self.assets.get(key)
    }

    /// How many assets.
    pub fn len(&self) -> usize {
        self.assets.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    /// Position in topological order.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.assets.get_index_of(key)
    }

    /// Keys of the assets that read `key`.
    pub fn children(&self, key: &str) -> &[String] {
        self.children.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `key`'s ancestors up to `depth` edges away (all when `None`), not
    /// including itself.
    pub fn upstream(&self, key: &str, depth: Option<usize>) -> HashSet<String> {
        self.walk(key, depth, |k| {
            self.assets.get(k).map(|a| a.deps.as_slice()).unwrap_or(&[])
        })
    }

    /// `key`'s descendants up to `depth` edges away (all when `None`), not
    /// including itself.
    pub fn downstream(&self, key: &str, depth: Option<usize>) -> HashSet<String> {
        self.walk(key, depth, |k| self.children(k))
    }

    fn walk<'a>(
        &'a self,
        key: &str,
        depth: Option<usize>,
        next: impl Fn(&str) -> &'a [String],
    ) -> HashSet<String> {
        let mut out = HashSet::new();
        let mut queue = VecDeque::from([(key.to_string(), 0usize)]);
        while let Some((k, d)) = queue.pop_front() {
            if depth.is_some_and(|max| d >= max) {
                continue;
            }
            for n in next(&k) {
                if out.insert(n.clone()) {
                    queue.push_back((n.clone(), d + 1));
                }
            }
        }
        out
    }

    /// The graph as indented text: each selected asset with its kind,
    /// table, checks and what it reads.
    pub fn to_text(&self, selected: &HashSet<String>) -> String {
        let mut out = String::new();
        for a in self.assets().filter(|a| selected.contains(&a.key)) {
            let _ = write!(out, "{} [{}]", a.key, a.kind.as_str());
            if let Some(t) = &a.table
                && t != &a.key
            {
                let _ = write!(out, " -> {t}");
            }
            out.push('\n');
            if !a.deps.is_empty() {
                let _ = writeln!(out, "    reads: {}", a.deps.join(", "));
            }
            if !a.inline_checks.is_empty() {
                let _ = writeln!(
                    out,
                    "    checks while loading: {}",
                    a.inline_checks.join(", ")
                );
            }
            if !a.checks.is_empty() {
                let _ = writeln!(out, "    checks: {}", a.checks.join(", "));
            }
        }
        out
    }

    /// The graph in Graphviz DOT: one node per selected asset, shaped by
    /// kind, and the edges between selected assets.
    pub fn to_dot(&self, selected: &HashSet<String>) -> String {
        let mut out = String::from(
            "digraph sluice {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n",
        );
        for a in self.assets().filter(|a| selected.contains(&a.key)) {
            let (shape, color) = match a.kind {
                AssetKind::Stream => ("cylinder", "#4e79a7"),
                AssetKind::Seed => ("note", "#59a14f"),
                AssetKind::Model => ("box", "#f28e2b"),
                AssetKind::Snapshot => ("box3d", "#b07aa1"),
                AssetKind::External => ("ellipse", "#9d9d9d"),
            };
            let mut label = format!("{}\\n{}", dot_escape(&a.key), a.kind.as_str());
            let checks = a.checks.len() + a.inline_checks.len();
            if checks > 0 {
                let _ = write!(label, " · {checks} checks");
            }
            let _ = writeln!(
                out,
                "  \"{}\" [shape={shape}, color=\"{color}\", label=\"{label}\"];",
                dot_escape(&a.key)
            );
        }
        for a in self.assets().filter(|a| selected.contains(&a.key)) {
            for d in a.deps.iter().filter(|d| selected.contains(*d)) {
                let _ = writeln!(
                    out,
                    "  \"{}\" -> \"{}\";",
                    dot_escape(d),
                    dot_escape(&a.key)
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// The selected assets, for JSON output.
    pub fn selected<'a>(&'a self, selected: &'a HashSet<String>) -> Vec<&'a Asset> {
        self.assets()
            .filter(|a| selected.contains(&a.key))
            .collect()
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One cycle among the assets Kahn's algorithm could not order.
fn find_cycle(assets: &IndexMap<String, Asset>, indegree: &[usize]) -> Vec<String> {
    let stuck: HashSet<&str> = assets
        .keys()
        .enumerate()
        .filter(|(i, _)| indegree[*i] > 0)
        .map(|(_, k)| k.as_str())
        .collect();
    // Every stuck asset has a stuck parent: follow parents until one repeats.
    let Some(start) = assets.keys().find(|k| stuck.contains(k.as_str())) else {
        return Vec::new();
    };
    let mut path: Vec<String> = vec![start.clone()];
    let mut at: HashMap<String, usize> = HashMap::from([(start.clone(), 0)]);
    let mut cur = start.as_str();
    loop {
        let Some(next) = assets
            .get(cur)
            .and_then(|a| a.deps.iter().find(|d| stuck.contains(d.as_str())))
        else {
            return path;
        };
        if let Some(&i) = at.get(next) {
            let mut cycle: Vec<String> = path[i..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0].clone());
            return cycle;
        }
        at.insert(next.clone(), path.len());
        path.push(next.clone());
        cur = next;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `key <- deps` assets of kind model.
    pub(crate) fn graph(edges: &[(&str, &[&str])]) -> AssetGraph {
        AssetGraph::new(
            edges
                .iter()
                .map(|(k, deps)| {
                    let mut a = Asset::new(*k, AssetKind::Model);
                    a.deps = deps.iter().map(|d| d.to_string()).collect();
                    a
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn orders_parents_first_stably() {
        let g = graph(&[
            ("c", &["b"]),
            ("b", &["a"]),
            ("a", &[]),
            ("d", &[]),
            ("e", &["a", "d"]),
        ]);
        let order: Vec<&str> = g.assets().map(|a| a.key.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
        assert_eq!(g.children("a"), ["b", "e"]);
        let up: BTreeSet<String> = g.upstream("e", None).into_iter().collect();
        assert_eq!(up, BTreeSet::from(["a".into(), "d".into()]));
        let down: BTreeSet<String> = g.downstream("a", Some(1)).into_iter().collect();
        assert_eq!(down, BTreeSet::from(["b".into(), "e".into()]));
        assert_eq!(g.downstream("a", None).len(), 3);
    }

    #[test]
    fn rejects_cycles_missing_and_duplicates() {
        let cyc = AssetGraph::new(vec![
            {
                let mut a = Asset::new("x", AssetKind::Model);
                a.deps = vec!["z".into()];
                a
            },
            {
                let mut a = Asset::new("y", AssetKind::Model);
                a.deps = vec!["x".into()];
                a
            },
            {
                let mut a = Asset::new("z", AssetKind::Model);
                a.deps = vec!["y".into()];
                a
            },
        ])
        .unwrap_err();
        let GraphError::Cycle(path) = &cyc else {
            panic!("{cyc:?}")
        };
        assert_eq!(path.len(), 4);
        assert_eq!(path.first(), path.last());
        assert!(cyc.to_string().contains("->"));

        let mut a = Asset::new("a", AssetKind::Model);
        a.deps = vec!["nope".into()];
        assert_eq!(
            AssetGraph::new(vec![a]).unwrap_err(),
            GraphError::MissingDep {
                asset: "a".into(),
                missing: "nope".into()
            }
        );
        assert_eq!(
            AssetGraph::new(vec![
                Asset::new("a", AssetKind::Model),
                Asset::new("a", AssetKind::Seed)
            ])
            .unwrap_err(),
            GraphError::Duplicate("a".into())
        );
    }

    #[test]
    fn renders_text_and_dot() {
        let g = graph(&[("raw", &[]), ("stg", &["raw"])]);
        let all: HashSet<String> = ["raw".to_string(), "stg".to_string()].into();
        let text = g.to_text(&all);
        assert_eq!(text, "raw [model]\nstg [model]\n    reads: raw\n");
        let dot = g.to_dot(&all);
        assert!(dot.contains("\"raw\" -> \"stg\";"), "{dot}");
        let only: HashSet<String> = ["stg".to_string()].into();
        assert!(!g.to_dot(&only).contains("->"));
    }
}
