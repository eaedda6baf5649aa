//! The namespace step.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::objects::{out, terminating};
use crate::ready::{wait_for, Watch};
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, Namespace};

/// A namespace.
pub struct NamespaceStep {
    kube: Kube,
    name: String,
}

impl NamespaceStep {
    pub fn new(kube: Kube, spec: Namespace) -> Self {
        NamespaceStep {
            kube,
            name: spec.name,
        }
    }
}

#[async_trait]
impl Step for NamespaceStep {
    fn kind(&self) -> &str {
        Namespace::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        self.kube.marked("v1", "Namespace", None, &self.name).await
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("namespace", &self.name))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(
            match self.kube.get("v1", "Namespace", None, &self.name).await? {
                None => Observation::Absent,
                Some(o) if terminating(&o) => Observation::InProgress {
                    detail: Some("terminating".into()),
                },
                Some(_) => Observation::ready(out(&[("name", json!(self.name))])),
            },
        )
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        // Observed absent: a server-side apply creates it, which RBAC authorizes by the
        // namespace's name (a POST is authorized without one).
        let obj = crate::objects::namespace_manifest(&self.name);
        self.kube.apply(&obj).await.map(|_| ())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch::named("v1", "Namespace", &self.name)];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                Observation::InProgress { .. } => {
                    return Err(StepError::transient(format!(
                        "namespace {} is still being deleted",
                        self.name
                    )))
                }
                _ => None,
            })
        })
        .await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let watches = vec![Watch::named("v1", "Namespace", &self.name)];
        // Gone, or left in place for another's resource (not being deleted).
        wait_for(&self.kube, watches, ctx, || async {
            let live = self.kube.get("v1", "Namespace", None, &self.name).await?;
            Ok(live.is_none_or(|l| !terminating(&l)).then_some(()))
        })
        .await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let Some(live) = self.kube.get("v1", "Namespace", None, &self.name).await? else {
            return Ok(());
        };
        // Deleting a namespace deletes what is in it: not while another's resource is there.
        let what = format!("namespace {}", self.name);
        if !crate::ownership::may_remove_shared(
            &self.kube,
            ctx,
            &what,
            Some(&self.name),
            crate::ownership::ANY_RESOURCE,
            &[live],
        )
        .await?
        {
            return Ok(());
        }
        self.kube.delete("v1", "Namespace", None, &self.name).await
    }
}

impl K8sStepKind for Namespace {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(NamespaceStep::new(w.kube.clone(), self.clone())))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.namespaces.insert(self.name.clone());
    }
}
