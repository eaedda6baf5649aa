//! Builds an engine graph of synthetic steps from a shape.

use crate::cloud::Cloud;
use crate::shape::Node;
use crate::step::SimStep;
use std::sync::Arc;
use wbstack_engine::{Graph, StepId, StepSpec};

/// One `SimStep` per node, in a validated graph.
pub fn build_graph(cloud: Arc<dyn Cloud>, nodes: &[Node], destroy_ms: u64) -> Graph {
    let specs = nodes
        .iter()
        .map(|n| {
            let mut s = SimStep::new(&n.name, cloud.clone());
            s.ready_ms = n.ready_ms;
            s.destroy_ms = destroy_ms;
            StepSpec {
                id: StepId::new(n.name.clone()),
                deps: n
                    .deps
                    .iter()
                    .map(|&d| StepId::new(nodes[d].name.clone()))
                    .collect(),
                step: Arc::new(s),
                hooks: Vec::new(),
                timeout: None,
            }
        })
        .collect();
    Graph::new(specs).expect("a layered shape is always a DAG")
}
