//! A validated step graph: unique ids, no dangling dependencies, no cycles.

use crate::hooks::Hook;
use crate::id::StepId;
use crate::step::Step;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A step with its place in the graph.
#[derive(Clone)]
pub struct StepSpec {
    pub id: StepId,
    pub deps: Vec<StepId>,
    pub step: Arc<dyn Step>,
    pub hooks: Vec<Hook>,
    /// Overrides the engine's wait timeout for this step.
    pub timeout: Option<Duration>,
}

impl StepSpec {
    /// A step with dependencies and no hooks.
    pub fn new(id: impl Into<StepId>, deps: &[&str], step: Arc<dyn Step>) -> Self {
        StepSpec {
            id: id.into(),
            deps: deps.iter().map(|d| StepId::new(*d)).collect(),
            step,
            hooks: Vec::new(),
            timeout: None,
        }
    }

    /// Adds a hook.
    pub fn with_hook(mut self, hook: Hook) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Sets this step's wait timeout.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

impl fmt::Debug for StepSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepSpec")
            .field("id", &self.id)
            .field("kind", &self.step.kind())
            .field("deps", &self.deps)
            .finish()
    }
}

/// Why a set of steps is not a graph the engine can run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("step id `{0}` is declared more than once")]
    Duplicate(StepId),
    #[error("step `{step}` depends on `{missing}`, which is not a step of this plan")]
    Dangling { step: StepId, missing: StepId },
    #[error("dependency cycle: {} (each step depends on the next)", display_cycle(.0))]
    Cycle(Vec<StepId>),
}

fn display_cycle(ids: &[StepId]) -> String {
    let mut s: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    if let Some(first) = ids.first() {
        s.push(first.to_string());
    }
    s.join(" -> ")
}

/// A validated DAG of steps, indexed densely (0..len) in declaration order. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Graph {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    specs: Vec<StepSpec>,
    index: HashMap<StepId, usize>,
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    /// Validates and builds the graph; nothing runs if this fails.
    pub fn new(specs: Vec<StepSpec>) -> Result<Graph, GraphError> {
        let mut index = HashMap::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            if index.insert(s.id.clone(), i).is_some() {
                return Err(GraphError::Duplicate(s.id.clone()));
            }
        }
        let mut deps = vec![Vec::new(); specs.len()];
        let mut dependents = vec![Vec::new(); specs.len()];
        let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(specs.len(), specs.len());
        let nodes: Vec<NodeIndex> = (0..specs.len()).map(|i| g.add_node(i)).collect();
        for (i, s) in specs.iter().enumerate() {
            for d in &s.deps {
                let Some(&j) = index.get(d) else {
                    return Err(GraphError::Dangling {
                        step: s.id.clone(),
                        missing: d.clone(),
                    });
                };
                if j == i {
                    return Err(GraphError::Cycle(vec![s.id.clone()]));
                }
                if !deps[i].contains(&j) {
                    deps[i].push(j);
                    dependents[j].push(i);
                    g.add_edge(nodes[j], nodes[i], ());
                }
            }
        }
        // Any strongly connected component with more than one node is a cycle.
        for scc in tarjan_scc(&g) {
            if scc.len() > 1 {
                let mut members: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
                members.sort_unstable();
                // Walk the cycle from its lowest member so the message reads in dependency order.
                let ids = order_cycle(&members, &deps)
                    .into_iter()
                    .map(|i| specs[i].id.clone())
                    .collect();
                return Err(GraphError::Cycle(ids));
            }
        }
        Ok(Graph {
            inner: Arc::new(Inner {
                specs,
                index,
                deps,
                dependents,
            }),
        })
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.inner.specs.len()
    }

    /// Whether there are no steps.
    pub fn is_empty(&self) -> bool {
        self.inner.specs.is_empty()
    }

    /// The step at a dense index.
    pub fn spec(&self, i: usize) -> &StepSpec {
        &self.inner.specs[i]
    }

    /// Every step, in declaration order.
    pub fn specs(&self) -> &[StepSpec] {
        &self.inner.specs
    }

    /// The dense index of an id.
    pub fn index_of(&self, id: &StepId) -> Option<usize> {
        self.inner.index.get(id).copied()
    }

    /// Direct dependencies of step `i`.
    pub fn deps_of(&self, i: usize) -> &[usize] {
        &self.inner.deps[i]
    }

    /// Steps that depend directly on step `i`.
    pub fn dependents_of(&self, i: usize) -> &[usize] {
        &self.inner.dependents[i]
    }

    /// Every step that depends on `i`, directly or not.
    pub fn transitive_dependents(&self, i: usize) -> Vec<usize> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![i];
        let mut out = Vec::new();
        while let Some(n) = stack.pop() {
            for &d in &self.inner.dependents[n] {
                if !seen[d] {
                    seen[d] = true;
                    out.push(d);
                    stack.push(d);
                }
            }
        }
        out
    }

    /// A topological order (dependencies first), stable with respect to declaration order.
    pub fn topo_order(&self) -> Vec<usize> {
        let mut indeg: Vec<usize> = self.inner.deps.iter().map(|d| d.len()).collect();
        let mut queue: std::collections::VecDeque<usize> =
            (0..self.len()).filter(|&i| indeg[i] == 0).collect();
        let mut out = Vec::with_capacity(self.len());
        while let Some(n) = queue.pop_front() {
            out.push(n);
            for &d in &self.inner.dependents[n] {
                indeg[d] -= 1;
                if indeg[d] == 0 {
                    queue.push_back(d);
                }
            }
        }
        out
    }
}

fn order_cycle(members: &[usize], deps: &[Vec<usize>]) -> Vec<usize> {
    // Follow dependency edges that stay inside the component until we return to the start.
    // If the walk does not close on its start, name the whole component instead.
    let start = members[0];
    let mut path = vec![start];
    let mut cur = start;
    for _ in 0..members.len() {
        let next = deps[cur]
            .iter()
            .copied()
            .filter(|d| members.contains(d))
            .min();
        match next {
            Some(n) if n == start => return path,
            Some(n) if !path.contains(&n) => {
                path.push(n);
                cur = n;
            }
            _ => break,
        }
    }
    members.to_vec()
}
