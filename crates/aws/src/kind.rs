//! What this crate knows of each AWS kind of step: how to build its step and what wbstack's
//! own credentials must be granted for it (`render --iam-policy`). Each kind implements
//! [`AwsStepKind`] in its own file; [`kind`](crate::kind) is the one dispatch.

use crate::clients::Aws;
use serde_json::Value;
use std::sync::Arc;
use wbstack_engine::Step;

/// What wbstack's credentials need for one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grants {
    /// IAM policy statements, on the step's own resources by name where they can be.
    pub statements: Vec<Value>,
    /// The service whose service-linked role the step may create (`rds.amazonaws.com`).
    pub service_role: Option<&'static str>,
}

impl Grants {
    pub(crate) fn only(statements: Vec<Value>) -> Self {
        Grants {
            statements,
            service_role: None,
        }
    }
}

/// An AWS kind of step. Every method is required: a kind without one does not compile.
pub trait AwsStepKind {
    /// Its step, as step `id`.
    fn step(&self, aws: Aws, id: &str) -> Arc<dyn Step>;
    /// What wbstack's own credentials need for it in environment `env`.
    fn grants(&self, env: &str) -> Grants;
}
