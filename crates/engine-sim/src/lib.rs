//! Test support for `wbstack-engine`: fake clouds, a synthetic step, graph shapes, and the
//! `engine-sim` driver used by the crash, lock and cancellation tests and by the benchmark.
//!
//! ```
//! use std::sync::Arc;
//! use wbstack_engine_sim::{build_graph, MemCloud, Shape};
//! let cloud = Arc::new(MemCloud::new());
//! let nodes = Shape { steps: 20, width: 5, fan_in: 2, seed: 1 }.nodes((0, 0));
//! let graph = build_graph(cloud, &nodes, 0);
//! assert_eq!(graph.len(), 20);
//! ```

mod cloud;
mod graphs;
mod shape;
mod step;

pub use cloud::{Cloud, Fault, FileCloud, MemCloud, Resource};
pub use graphs::build_graph;
pub use shape::{critical_path_by, critical_path_ms, Node, Shape};
pub use step::SimStep;
