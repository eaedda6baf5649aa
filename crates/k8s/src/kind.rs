//! What this crate knows of each Kubernetes kind of step: how to build its step, the documents
//! `render` prints for it, and what `render --job` grants the Job for it. Each kind implements
//! [`K8sStepKind`] in its own file; [`kind`](crate::kind) is the one dispatch.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::value_secret::SecretResolver;
use serde_json::Value;
use std::sync::Arc;
use wbstack_engine::{Secret, Step};

/// What a step needs from outside the plan.
#[derive(Clone)]
pub struct Wiring {
    pub kube: Kube,
    /// The license, read from where the plan says.
    pub license: Option<Secret>,
    /// Reads what AWS steps keep in Secrets Manager, when AWS is configured.
    pub resolver: Option<Arc<dyn SecretResolver>>,
}

/// What a step could not be built without.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unwired {
    #[error("the license is missing")]
    License,
    #[error("it needs AWS, which is not configured")]
    Aws,
}

/// A Kubernetes kind of step. Every method is required: a kind without one does not compile.
pub trait K8sStepKind {
    /// Its step.
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired>;
    /// The documents `render` prints for it (none for objects `render --job` or `up` make).
    fn documents(&self) -> Vec<Value>;
    /// What `render --job` grants the Job for it; `verify`: the plan's `spec.verify`.
    fn scope(&self, s: &mut JobScope, verify: bool);
}
