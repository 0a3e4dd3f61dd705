//! The project's asset graph: every stream's table, every dbt seed, model
//! and snapshot, with the checks attached to each.
//!
//! Edges come from the data, never from a task list: a model's `ref()`s,
//! and its `source()`s joined to the streams that load them
//! ([`crate::lineage`]). A dbt source no stream loads is an external asset
//! (a leaf that is never run). Checks attach to the asset whose table they
//! check: a stream's own `checks:` run inside its load (on every batch and
//! on the committed table); the top-level `checks:` map's run in a check
//! step after the asset; a dbt data test runs in the check step of the last
//! (in graph order) of the assets it reads, and that step also waits for
//! the others.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use sluice_core::config::StreamSpec;
use sluice_core::connector::Source;
use sluice_orchestrator::{Asset, AssetGraph, AssetKind};
use sluice_quality::Check;
use sluice_transform::manifest::NodeKind;

use crate::cli::TransformOptions;
use crate::commands::transform::{Loaded, load, plain_options};
use crate::lineage::Place;
use crate::output::UserError;
use crate::plan::{Selection, plan};
use crate::project::Project;
use crate::quality::{project_checks, stream_checks, table_key};

/// Pool every dbt node's step takes a slot of.
pub const TRANSFORM_POOL: &str = "transform";

/// The graph and what its steps need.
pub struct ProjectAssets {
    /// The assets and edges.
    pub graph: AssetGraph,
    /// Streams by asset key.
    pub streams: HashMap<String, StreamSpec>,
    /// Built sources by name.
    pub sources: HashMap<String, Arc<dyn Source>>,
    /// The dbt project, when the project has a `transform:` section.
    pub dbt: Option<Loaded>,
    /// The top-level map's checks, by the asset whose table they check.
    pub checks: HashMap<String, Vec<Check>>,
    /// dbt data and unit tests (node names), by the asset they attach to.
    pub tests: HashMap<String, Vec<String>>,
    /// Ids of every check `sluice.yml` declares now (streams' and the map's).
    pub declared_checks: std::collections::HashSet<String>,
}

impl ProjectAssets {
    /// Build the graph of `project`: discovers database sources' streams
    /// (this connects to them) and compiles the dbt project (with `vars`,
    /// YAML, when given: a partition's window).
    pub async fn load(
        project: &Project,
        run_id: &str,
        full_refresh: bool,
        with_dbt: bool,
        only_source: Option<&str>,
        vars: Option<String>,
    ) -> Result<ProjectAssets> {
        let config = project.config();
        let (specs, sources) = if config.sources.0.is_empty() {
            (Vec::new(), HashMap::new())
        } else {
            // `sluice extract SOURCE` connects to that source only.
            let selection = Selection {
                patterns: Vec::new(),
                source: only_source.map(str::to_string),
            };
            let planned = plan(project, &selection).await?;
            (planned.specs, planned.sources)
        };
        let mut assets: Vec<Asset> = Vec::new();
        let mut streams = HashMap::new();
        let mut by_table: HashMap<String, usize> = HashMap::new();
        let mut spec_checks: std::collections::HashSet<String> = std::collections::HashSet::new();
        for spec in specs {
            let key = spec.id();
            let mut a = Asset::new(&key, AssetKind::Stream);
            let table = table_key(project, &spec.table, spec.destination.as_deref());
            a.table = Some(table.clone());
            a.sources = vec![spec.source.clone()];
            a.resources = vec![format!("source:{}", spec.source)];
            if let Some(d) = &spec.destination {
                a.resources.push(format!("destination:{d}"));
                a.check_resources.push(format!("destination:{d}"));
            }
            if sources
                .get(&spec.source)
                .is_some_and(|s| s.reads_together())
            {
                a.unit = Some(format!("source:{}", spec.source));
            }
            let own = stream_checks(project, &spec, spec.destination.as_deref())?;
            a.inline_checks = own.iter().map(|c| c.name.clone()).collect();
            spec_checks.extend(own.into_iter().map(|c| c.id));
            by_table.insert(table.to_lowercase(), assets.len());
            assets.push(a);
            streams.insert(key, spec);
        }
        let dbt = match &config.transform {
            Some(_) if with_dbt => {
                let options = TransformOptions {
                    vars,
                    ..plain_options()
                };
                Some(load(Some(&project.dir), &options, (run_id, full_refresh)).await?)
            }
            _ => None,
        };
        let mut tests: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(l) = &dbt {
            add_dbt(l, &mut assets, &mut by_table, &mut tests);
        }
        // The top-level map's checks, on the asset of their table.
        let mut checks: HashMap<String, Vec<Check>> = HashMap::new();
        let all_checks = project_checks(project)?;
        let declared_checks = all_checks.iter().map(|c| c.id.clone()).collect();
        for c in all_checks {
            if spec_checks.contains(&c.id) {
                continue;
            }
            if let Some(&i) = by_table.get(&c.table.to_lowercase()) {
                // A relationships check reads its `to:` table too: its step
                // waits for what makes it.
                let reads = match &c.kind {
                    sluice_quality::Kind::Relationships { to, .. } => by_table
                        .get(&to.to_lowercase())
                        .filter(|&&j| j != i)
                        .map(|&j| assets[j].key.clone()),
                    _ => None,
                };
                let a = &mut assets[i];
                a.checks.push(c.name.clone());
                if let Some(r) = reads
                    && !a.check_reads.contains(&r)
                {
                    a.check_reads.push(r);
                }
                checks.entry(a.key.clone()).or_default().push(c);
            }
        }
        let graph = AssetGraph::new(assets)
            .map_err(|e| UserError::error(e.to_string(), Some(e.hint().to_string())))?;
        Ok(ProjectAssets {
            graph,
            streams,
            sources,
            dbt,
            checks,
            tests,
            declared_checks,
        })
    }
}

/// dbt's seeds, models and snapshots as assets, and its tests attached.
fn add_dbt(
    l: &Loaded,
    assets: &mut Vec<Asset>,
    by_table: &mut HashMap<String, usize>,
    tests: &mut HashMap<String, Vec<String>>,
) {
    let m = &l.manifest;
    let mut index: HashMap<String, usize> = assets
        .iter()
        .enumerate()
        .map(|(i, a)| (a.key.clone(), i))
        .collect();
    // Streams loading a dbt source answer to `source:<name>` too.
    for ((source, table), node) in &m.sources {
        if let Some(stream) = &node.loaded_by
            && let Some(&i) = index.get(stream)
        {
            for name in [source.clone(), format!("{source}.{table}")] {
                if !assets[i].sources.contains(&name) {
                    assets[i].sources.push(name);
                }
            }
        }
    }
    let is_asset = |kind: NodeKind, materialized: &str| {
        matches!(kind, NodeKind::Seed | NodeKind::Model | NodeKind::Snapshot)
            && materialized != "ephemeral"
    };
    let table_of = |schema: &str, identifier: &str| match &l.place {
        Some(Place::Destination(d)) => format!("{d}:{schema}.{identifier}"),
        _ if schema.is_empty() => identifier.to_string(),
        _ => format!("{schema}.{identifier}"),
    };
    // The assets a node reads: its refs (through ephemeral models) and its
    // sources (the loading stream, else an external asset).
    let mut externals: HashMap<(String, String), String> = HashMap::new();
    let mut reads = |name: &str,
                     assets: &mut Vec<Asset>,
                     index: &mut HashMap<String, usize>|
     -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut stack = vec![name.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let Some(node) = m.nodes.get(&n) else {
                continue;
            };
            for d in &node.depends_on {
                match m.nodes.get(d) {
                    Some(dn) if is_asset(dn.kind, dn.materialized()) => out.push(d.clone()),
                    Some(_) => stack.push(d.clone()),
                    None => {}
                }
            }
            for (s, t) in &node.sources {
                let loader = m
                    .sources
                    .get(&(s.clone(), t.clone()))
                    .and_then(|sn| sn.loaded_by.clone())
                    .filter(|k| index.contains_key(k));
                let key = match loader {
                    Some(k) => k,
                    None => externals
                        .entry((s.clone(), t.clone()))
                        .or_insert_with(|| {
                            let mut key = format!("{s}.{t}");
                            if index.contains_key(&key) {
                                key = format!("dbt_source:{s}.{t}");
                            }
                            let mut a = Asset::new(&key, AssetKind::External);
                            if let Some(sn) = m.sources.get(&(s.clone(), t.clone())) {
                                a.table =
                                    Some(table_of(&sn.relation.schema, &sn.relation.identifier));
                                a.path = Some(sn.path.display().to_string());
                            }
                            a.sources = vec![s.clone(), format!("{s}.{t}")];
                            index.insert(key.clone(), assets.len());
                            assets.push(a);
                            key
                        })
                        .clone(),
                };
                out.push(key);
            }
        }
        out.dedup();
        out
    };
    for name in &m.order {
        let Some(node) = m.nodes.get(name) else {
            continue;
        };
        if !is_asset(node.kind, node.materialized()) {
            continue;
        }
        let deps = reads(name, assets, &mut index);
        let kind = match node.kind {
            NodeKind::Seed => AssetKind::Seed,
            NodeKind::Snapshot => AssetKind::Snapshot,
            _ => AssetKind::Model,
        };
        let mut a = Asset::new(name, kind);
        a.deps = deps;
        a.tags = node.tags();
        a.path = Some(node.path.display().to_string());
        let table = table_of(&node.relation.schema, &node.relation.identifier);
        a.table = Some(table.clone());
        a.resources = vec![TRANSFORM_POOL.to_string()];
        a.check_resources = vec![TRANSFORM_POOL.to_string()];
        by_table.insert(table.to_lowercase(), assets.len());
        index.insert(name.clone(), assets.len());
        assets.push(a);
    }
    // Tests: on the last of the assets they read (assets are in a valid
    // order already: streams, then dbt's build order).
    for name in &m.order {
        let Some(node) = m.nodes.get(name) else {
            continue;
        };
        if !matches!(node.kind, NodeKind::Test | NodeKind::UnitTest) {
            continue;
        }
        let parents: Vec<String> = reads(name, assets, &mut index)
            .into_iter()
            .filter(|k| index.get(k).is_some_and(|&i| assets[i].kind.runnable()))
            .collect();
        let Some(last) = parents
            .iter()
            .max_by_key(|k| index.get(*k).copied().unwrap_or(0))
        else {
            // Only external tables: `sluice check` runs it.
            continue;
        };
        let last = last.clone();
        if let Some(&i) = index.get(&last) {
            let a = &mut assets[i];
            a.checks.push(name.clone());
            if !a.check_resources.iter().any(|r| r == TRANSFORM_POOL) {
                a.check_resources.push(TRANSFORM_POOL.to_string());
            }
            for p in parents.iter().filter(|p| **p != last) {
                if !a.check_reads.contains(p) {
                    a.check_reads.push(p.clone());
                }
            }
        }
        tests.entry(last).or_default().push(name.clone());
    }
}
