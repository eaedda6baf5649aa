//! An in-memory Kubernetes API server over HTTP, with simulated controllers.
//!
//! It speaks the JSON protocol closely enough for kubectl and kube-rs: discovery, an OpenAPI v3
//! index, CRUD with resourceVersion conflicts, merge / JSON / strategic-merge patches and
//! server-side apply with field managers, lists with label and field selectors, tables, watches
//! with history replay and bookmarks, finalizers, namespace deletion, and CRDs that make their
//! kinds servable. Controllers make Deployments and StatefulSets ready after a delay, stand in
//! for the W&B operator (`WeightsAndBiases`) and the Altinity operator
//! (`ClickHouseInstallation`), and run a Job's pod as a local process when its image is mapped
//! to a program here. Faults (500 / 429, dropped watches) can be injected, and the
//! cluster can be persisted to a file.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kube_emulator::{Config, Emulator};
//! let running = Emulator::new(Config::default()).serve("127.0.0.1:0".parse()?).await?;
//! std::fs::write("kubeconfig", running.kubeconfig())?;
//! # Ok(()) }
//! ```

mod altinity;
mod cluster;
mod controllers;
mod discovery;
mod error;
mod helm_release;
mod http;
mod kubelet;
mod patch;
mod registry;
mod schema;
mod selector;
mod server;
mod table;
mod token;
mod util;
mod wandb_operator;
mod workloads;

pub use cluster::{Change, ChangeKind, Cluster, Footprint, PatchKind, Snapshot, Stats};
pub use controllers::{
    NEVER_READY_ANNOTATION, OPERATOR_LABEL, READY_AFTER_ANNOTATION, WANDB_FINALIZER,
};
pub use error::{ApiError, Details};
pub use registry::{Registry, ResourceType};
pub use selector::{FieldSelector, LabelSelector};
pub use server::{
    kubeconfig, save, Config, Emulator, EmulatorError, Fault, Faults, LocalImage, PodFault, Running,
};
