//! Synthetic graph shapes: layers with fan-in and fan-out.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A layered DAG: `steps` steps in layers of `width`; every step after the first layer depends on
/// up to `fan_in` random steps of the layer before (so steps also fan out).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub steps: usize,
    pub width: usize,
    pub fan_in: usize,
    pub seed: u64,
}

/// One node of a shape.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub deps: Vec<usize>,
    /// A readiness delay drawn from the range given to [`Shape::nodes`].
    pub ready_ms: u64,
}

impl Shape {
    /// The nodes, with readiness delays drawn uniformly from `delay_ms` (inclusive).
    pub fn nodes(&self, delay_ms: (u64, u64)) -> Vec<Node> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let width = self.width.max(1);
        let mut out: Vec<Node> = Vec::with_capacity(self.steps);
        for i in 0..self.steps {
            let layer = i / width;
            let mut deps = Vec::new();
            if layer > 0 {
                let prev_start = (layer - 1) * width;
                let prev_end = layer * width;
                for _ in 0..self.fan_in {
                    let d = rng.random_range(prev_start..prev_end);
                    if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
                deps.sort_unstable();
            }
            let ready_ms = if delay_ms.1 > delay_ms.0 {
                rng.random_range(delay_ms.0..=delay_ms.1)
            } else {
                delay_ms.0
            };
            out.push(Node {
                name: format!("s{i:05}"),
                deps,
                ready_ms,
            });
        }
        out
    }
}

/// The length of the longest dependency chain, weighting each node by its readiness delay.
pub fn critical_path_ms(nodes: &[Node]) -> u64 {
    critical_path_by(nodes, |i| nodes[i].ready_ms)
}

/// The length of the longest dependency chain, weighting node `i` by `weight(i)`.
pub fn critical_path_by(nodes: &[Node], weight: impl Fn(usize) -> u64) -> u64 {
    let mut finish = vec![0u64; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let start = n.deps.iter().map(|&d| finish[d]).max().unwrap_or(0);
        finish[i] = start + weight(i);
    }
    finish.into_iter().max().unwrap_or(0)
}
