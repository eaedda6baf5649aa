//! The W&B operator: an operator already running (an official install, labelled
//! `control-plane: controller-manager` and running `wandb/controller`, or wbstack's own) is
//! adopted; otherwise wbstack installs one as the official chart does.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::objects::{annotated, observed_fp, out, terminating, FINGERPRINT_ANNOTATION};
use crate::ownership::{ours_to_remove, remove_installed, WANDB_RESOURCES};
use crate::ready::{settled, wait_for, workload_progress, workload_ready, Watch};
use crate::render::{self, is_operator, MANAGED_BY};
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, Operator, OperatorInstall};

/// The operator step.
pub struct OperatorStep {
    kube: Kube,
    spec: Operator,
}

impl OperatorStep {
    pub fn new(kube: Kube, spec: Operator) -> Self {
        OperatorStep { kube, spec }
    }

    fn manifests(&self) -> Vec<Value> {
        manifests(&self.spec)
    }
}

/// Applies an operator's ClusterRole or Role unless it is there as the step would write it:
/// writing it needs the permissions it grants held (an identity with less, such as the
/// `render --job` Job, finds it applied with the Job's manifests).
pub(crate) async fn apply_role(kube: &Kube, m: &Value) -> Result<(), StepError> {
    if let Some(live) = kube.get_manifest(m).await? {
        let fp = FINGERPRINT_ANNOTATION;
        if ours(&live)
            && live["rules"] == m["rules"]
            && live["metadata"]["annotations"][fp] == m["metadata"]["annotations"][fp]
        {
            return Ok(());
        }
    }
    kube.apply(m).await.map(|_| ()).map_err(|e| {
        if e.to_string().contains("(403 ") {
            StepError::permanent(format!(
                "{e}: the {} {} grants an operator's permissions, which this identity does \
                 not hold; have it applied by one who does (`wbstack render --job` prints it)",
                m["kind"].as_str().unwrap_or(""),
                m["metadata"]["name"].as_str().unwrap_or(""),
            ))
        } else {
            e
        }
    })
}

/// The operator's manifests as the step applies them.
fn manifests(s: &Operator) -> Vec<Value> {
    let fp = fingerprint(s);
    render::with_pull_secrets(
        render::operator(&s.namespace, &s.version, s.airgapped, &s.image),
        &s.pull_secrets,
    )
    .into_iter()
    .map(|m| annotated(m, &fp))
    .collect()
}

fn fingerprint(s: &Operator) -> Fingerprint {
    Fingerprint::of(&render::with_pull_secrets(
        render::operator(&s.namespace, &s.version, s.airgapped, &s.image),
        &s.pull_secrets,
    ))
}

/// The operator's ClusterRole as the step applies it (without the environment's label).
fn cluster_role(s: &Operator) -> Value {
    manifests(s)
        .into_iter()
        .find(|m| m["kind"] == "ClusterRole")
        .expect("the operator's manifests hold its ClusterRole")
}

impl OperatorStep {
    /// The operator Deployment running in the cluster, if any (in any namespace).
    async fn find(&self) -> Result<Option<Value>, StepError> {
        Ok(self
            .kube
            .list("apps/v1", "Deployment", None, "")
            .await?
            .into_iter()
            .find(|d| is_operator(d) && !terminating(d)))
    }

    fn watches(&self) -> Vec<Watch<'static>> {
        vec![Watch {
            api_version: "apps/v1",
            kind: "Deployment",
            namespace: None,
            labels: format!(
                "{}={}",
                render::CONTROL_PLANE_LABEL.0,
                render::CONTROL_PLANE_LABEL.1
            ),
            fields: String::new(),
        }]
    }

    /// What a teardown re-checks on: the Deployment, and the namespace it goes with, which
    /// stays terminating a while after the Deployment is gone.
    fn teardown_watches(&self) -> Vec<Watch<'static>> {
        let mut w = self.watches();
        w.push(Watch::named("v1", "Namespace", &self.spec.namespace));
        w
    }
}

/// An operator's Deployment, ready: its namespace, name and image. wbstack's own is kept
/// current (its fingerprint is the one it was applied with); another install is used as it is
/// (taken as `desired`).
pub(crate) fn running_operator(d: &Value, desired: Fingerprint) -> Observation {
    let fingerprint = if ours(d) {
        observed_fp(d)
    } else {
        Some(desired)
    };
    Observation::Ready {
        outputs: out(&[
            ("namespace", d["metadata"]["namespace"].clone()),
            ("name", d["metadata"]["name"].clone()),
            (
                "image",
                d["spec"]["template"]["spec"]["containers"][0]["image"].clone(),
            ),
        ]),
        fingerprint,
    }
}

fn ours(o: &Value) -> bool {
    o["metadata"]["labels"][MANAGED_BY.0] == MANAGED_BY.1
}

#[async_trait]
impl Step for OperatorStep {
    fn kind(&self) -> &str {
        Operator::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        for m in self.manifests() {
            if m["kind"] == "Deployment" {
                return self.kube.marked_manifest(&m).await;
            }
        }
        Ok(false)
    }
    fn shared(&self) -> bool {
        true
    }
    fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.spec)
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(d) = self.find().await? else {
            return Ok(if self.spec.install == OperatorInstall::Never {
                Observation::Failed {
                    message: "the W&B operator is not installed and spec.wandb.operator.install is `never`".into(),
                }
            } else {
                Observation::Absent
            });
        };
        if !workload_ready(&d) {
            return Ok(Observation::InProgress {
                detail: Some(format!("operator starting ({})", workload_progress(&d))),
            });
        }
        Ok(running_operator(&d, self.fingerprint()))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        for m in self.manifests() {
            if m["kind"] == "ClusterRole" {
                apply_role(&self.kube, &m).await?;
            } else if m["kind"] == "Namespace" {
                // Made if missing; one that exists (made by an administrator with the Job's
                // manifests, or by anyone else) is used as it is and never removed.
                if self.kube.get_manifest(&m).await?.is_none() {
                    self.kube.apply(&m).await?;
                }
            } else {
                self.kube.apply(&m).await?;
            }
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        wait_for(&self.kube, self.watches(), ctx, || async {
            settled(self.observe(ctx).await?)
        })
        .await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        // This environment's resource is gone by now (teardown runs in reverse); another's may
        // still need the operator. Only what this environment installed goes.
        let what = "the W&B operator";
        remove_installed(&self.kube, ctx, &self.manifests(), what, WANDB_RESOURCES).await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        // Done when nothing of ours is still going away: deleted, or left for others.
        wait_for(&self.kube, self.teardown_watches(), ctx, || async {
            for m in self.manifests() {
                if self
                    .kube
                    .get_manifest(&m)
                    .await?
                    .is_some_and(|l| ours_to_remove(&self.kube, &l) && terminating(&l))
                {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }
}

impl K8sStepKind for Operator {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(OperatorStep::new(w.kube.clone(), self.clone())))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        if self.install != wbstack_plan::OperatorInstall::Never {
            s.roles.push(cluster_role(self));
        }
        s.namespaces.insert(self.namespace.clone());
    }
}
