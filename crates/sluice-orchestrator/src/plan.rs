//! The plan: which steps a run takes and what each waits for.
//!
//! Each selected asset is one *materialize* step (assets sharing a `unit`
//! are one step: a Singer tap serves its streams in one process), and an
//! asset with checks gets a *check* step right after it. A step waits for
//! the nearest selected assets upstream of it, through unselected ones;
//! when such an asset has a check step, it waits for the check: a failed
//! check blocks what reads the table (the rest of the run goes on).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::graph::AssetGraph;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Make the assets (load, build).
    Materialize,
    /// Run the checks attached to the asset.
    Check,
}

impl StepKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Materialize => "materialize",
            StepKind::Check => "check",
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Unique in the plan: the asset key, the unit, or `<key>:checks`.
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// The assets it makes or checks.
    pub assets: Vec<String>,
    /// Ids of the steps it waits for.
    pub deps: Vec<String>,
    /// Concurrency pools it takes a slot of.
    pub resources: Vec<String>,
}

/// What to plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Add a check step after each asset with checks.
    pub checks: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { checks: true }
    }
}

/// Steps in an order that respects their dependencies.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// The steps, parents first.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Plan the `selected` runnable assets of `graph`.
    pub fn new(graph: &AssetGraph, selected: &HashSet<String>, opts: PlanOptions) -> Plan {
        let runnable =
            |k: &str| selected.contains(k) && graph.get(k).is_some_and(|a| a.kind.runnable());
        // Which step makes each asset, and which step others wait for.
        let mut made_by: HashMap<&str, String> = HashMap::new();
        let mut gate: HashMap<&str, String> = HashMap::new();
        let mut steps: Vec<Step> = Vec::new();
        let mut unit_step: HashMap<&str, usize> = HashMap::new();
        for a in graph.assets().filter(|a| runnable(&a.key)) {
            let id = match &a.unit {
                Some(u) => match unit_step.get(u.as_str()) {
                    Some(&i) => {
                        steps[i].assets.push(a.key.clone());
                        for r in &a.resources {
                            if !steps[i].resources.contains(r) {
                                steps[i].resources.push(r.clone());
                            }
                        }
                        made_by.insert(&a.key, steps[i].id.clone());
                        gate.insert(&a.key, steps[i].id.clone());
                        continue;
                    }
                    None => {
                        unit_step.insert(u, steps.len());
                        u.clone()
                    }
                },
                None => a.key.clone(),
            };
            steps.push(Step {
                id: id.clone(),
                kind: StepKind::Materialize,
                assets: vec![a.key.clone()],
                deps: Vec::new(),
                resources: a.resources.clone(),
            });
            made_by.insert(&a.key, id.clone());
            gate.insert(&a.key, id);
        }
        // Check steps, right after their asset's step.
        let mut checks: Vec<(usize, Step)> = Vec::new();
        let position: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        if opts.checks {
            for a in graph
                .assets()
                .filter(|a| runnable(&a.key) && !a.checks.is_empty())
            {
                let Some(made) = made_by.get(a.key.as_str()) else {
                    continue;
                };
                let id = format!("{}:checks", a.key);
                let mut deps = vec![made.clone()];
                for r in &a.check_reads {
                    if let Some(s) = made_by.get(r.as_str())
                        && !deps.contains(s)
                    {
                        deps.push(s.clone());
                    }
                }
                let at = position.get(made.as_str()).copied().unwrap_or(0);
                checks.push((
                    at,
                    Step {
                        id: id.clone(),
                        kind: StepKind::Check,
                        assets: vec![a.key.clone()],
                        deps,
                        resources: a.check_resources.clone(),
                    },
                ));
                gate.insert(&a.key, id);
            }
        }
        // Each materialize step waits for the nearest selected assets above
        // its own, through unselected ones.
        for step in steps.iter_mut() {
            let mut deps: Vec<String> = Vec::new();
            for key in &step.assets {
                for parent in nearest_selected(graph, key, &runnable) {
                    if let Some(g) = gate.get(parent.as_str())
                        && g != &step.id
                        && !deps.contains(g)
                    {
                        deps.push(g.clone());
                    }
                }
            }
            step.deps = deps;
        }
        // Check steps waiting on gates of their reads' checks too would
        // over-constrain: they read the tables, made by the steps above.
        let mut out: Vec<Step> = Vec::with_capacity(steps.len() + checks.len());
        let mut by_pos: HashMap<usize, Vec<Step>> = HashMap::new();
        for (at, s) in checks {
            by_pos.entry(at).or_default().push(s);
        }
        for (i, s) in steps.into_iter().enumerate() {
            out.push(s);
            if let Some(cs) = by_pos.remove(&i) {
                out.extend(cs);
            }
        }
        Plan { steps: order(out) }
    }

    /// Only the steps of `keep`; waits for the others are dropped (they
    /// ran before: `--from-failure`).
    pub fn restrict(&self, keep: &HashSet<String>) -> Plan {
        Plan {
            steps: self
                .steps
                .iter()
                .filter(|s| keep.contains(&s.id))
                .map(|s| Step {
                    deps: s
                        .deps
                        .iter()
                        .filter(|d| keep.contains(*d))
                        .cloned()
                        .collect(),
                    ..s.clone()
                })
                .collect(),
        }
    }

    /// The step of this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The selected assets nearest above `key`, looking through unselected ones.
fn nearest_selected(
    graph: &AssetGraph,
    key: &str,
    selected: &impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = graph
        .get(key)
        .map(|a| a.deps.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(k) = stack.pop() {
        if !seen.insert(k) {
            continue;
        }
        if selected(k) {
            out.push(k.to_string());
        } else if let Some(a) = graph.get(k) {
            stack.extend(a.deps.iter().map(String::as_str));
        }
    }
    out
}

/// Stable topological order of steps (a unit step can gather assets from
/// several places of the asset order, so its waits are settled here).
fn order(steps: Vec<Step>) -> Vec<Step> {
    let ids: HashSet<String> = steps.iter().map(|s| s.id.clone()).collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut left = steps;
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let before = left.len();
        let mut rest = Vec::with_capacity(left.len());
        for s in left {
            if s.deps.iter().all(|d| done.contains(d) || !ids.contains(d)) {
                done.insert(s.id.clone());
                out.push(s);
            } else {
                rest.push(s);
            }
        }
        if rest.len() == before {
            // A cycle through a unit (two units feeding each other): keep
            // the remaining order; the executor reports them as blocked.
            out.extend(rest);
            break;
        }
        left = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::graph;
    use crate::graph::{Asset, AssetKind};

    fn all(g: &AssetGraph) -> HashSet<String> {
        g.assets().map(|a| a.key.clone()).collect()
    }

    #[test]
    fn steps_wait_for_checks_and_look_through_unselected() {
        let mut assets = vec![
            Asset::new("raw", AssetKind::Stream),
            Asset::new("stg", AssetKind::Model),
            Asset::new("fct", AssetKind::Model),
        ];
        assets[0].checks = vec!["not_null_id".into()];
        assets[1].deps = vec!["raw".into()];
        assets[2].deps = vec!["stg".into()];
        let g = AssetGraph::new(assets).unwrap();
        let p = Plan::new(&g, &all(&g), PlanOptions::default());
        let ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["raw", "raw:checks", "stg", "fct"]);
        assert_eq!(p.step("stg").unwrap().deps, ["raw:checks"]);
        assert_eq!(p.step("raw:checks").unwrap().deps, ["raw"]);

        let p = Plan::new(&g, &all(&g), PlanOptions { checks: false });
        assert_eq!(p.step("stg").unwrap().deps, ["raw"]);

        // stg unselected: fct still waits for raw's checks.
        let sel: HashSet<String> = ["raw".to_string(), "fct".to_string()].into();
        let p = Plan::new(&g, &sel, PlanOptions::default());
        assert_eq!(p.step("fct").unwrap().deps, ["raw:checks"]);
    }

    #[test]
    fn units_make_one_step_and_externals_none() {
        let mut a = Asset::new("tap.a", AssetKind::Stream);
        a.unit = Some("tap".into());
        a.resources = vec!["source:tap".into()];
        let mut b = Asset::new("tap.b", AssetKind::Stream);
        b.unit = Some("tap".into());
        let ext = Asset::new("ext", AssetKind::External);
        let mut m = Asset::new("m", AssetKind::Model);
        m.deps = vec!["tap.b".into(), "ext".into()];
        let g = AssetGraph::new(vec![a, b, ext, m]).unwrap();
        let p = Plan::new(&g, &all(&g), PlanOptions::default());
        assert_eq!(p.len(), 2);
        assert_eq!(p.steps[0].assets, ["tap.a", "tap.b"]);
        assert_eq!(p.steps[0].resources, ["source:tap"]);
        assert_eq!(p.step("m").unwrap().deps, ["tap"]);
    }

    #[test]
    fn restrict_drops_waits_on_steps_that_ran() {
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["b"])]);
        let p = Plan::new(&g, &all(&g), PlanOptions::default());
        let keep: HashSet<String> = ["b".to_string(), "c".to_string()].into();
        let r = p.restrict(&keep);
        assert_eq!(r.len(), 2);
        assert!(r.step("b").unwrap().deps.is_empty());
        assert_eq!(r.step("c").unwrap().deps, ["b"]);
    }
}
