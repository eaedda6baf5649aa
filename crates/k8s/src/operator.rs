//! The W&B operator: installed when absent, adopted when present.

use crate::client::Kube;
use crate::objects::{out, terminating};
use crate::ready::{wait_for, workload_ready, Watch};
use crate::render;
use async_trait::async_trait;
use serde_json::Value;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, Operator, OperatorInstall};

/// The W&B operator: installed when absent, adopted when present.
pub struct OperatorStep {
    kube: Kube,
    namespace: String,
    version: String,
    install: OperatorInstall,
}

impl OperatorStep {
    pub fn new(kube: Kube, spec: Operator) -> Self {
        OperatorStep {
            kube,
            namespace: spec.namespace,
            version: spec.version,
            install: spec.install,
        }
    }

    async fn find(&self) -> Result<(Option<Value>, Option<Value>), StepError> {
        let crd = self
            .kube
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                render::WANDB_CRD,
            )
            .await?;
        let sel = format!("{}={}", render::OPERATOR_LABEL.0, render::OPERATOR_LABEL.1);
        let deploy = self
            .kube
            .list("apps/v1", "Deployment", None, &sel)
            .await?
            .into_iter()
            .find(|d| !terminating(d));
        Ok((crd, deploy))
    }
}

#[async_trait]
impl Step for OperatorStep {
    fn kind(&self) -> &str {
        Operator::LABEL
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("operator", &self.namespace, &self.version))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let (crd, deploy) = self.find().await?;
        Ok(match (crd, deploy) {
            (Some(_), Some(d)) if workload_ready(&d) => Observation::ready(out(&[
                ("namespace", d["metadata"]["namespace"].clone()),
                (
                    "image",
                    d["spec"]["template"]["spec"]["containers"][0]["image"].clone(),
                ),
            ])),
            (Some(_), Some(_)) => Observation::InProgress {
                detail: Some("operator starting".into()),
            },
            _ if self.install == OperatorInstall::Never => Observation::Failed {
                message:
                    "the W&B operator is not installed and spec.wandb.operator.install is `never`"
                        .into(),
            },
            (None, None) => Observation::Absent,
            // Half there (an interrupted install): apply completes it.
            _ => Observation::Absent,
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        for m in render::operator(&self.namespace, &self.version) {
            self.kube.apply(&m).await?;
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch {
            api_version: "apps/v1",
            kind: "Deployment",
            namespace: None,
            labels: format!("{}={}", render::OPERATOR_LABEL.0, render::OPERATOR_LABEL.1),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                Observation::Failed { message } => return Err(StepError::permanent(message)),
                _ => None,
            })
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        // Dependents (the WeightsAndBiases resource) are gone by now: teardown runs in reverse.
        for m in render::operator(&self.namespace, &self.version)
            .iter()
            .rev()
        {
            self.kube.delete_manifest(m).await?;
        }
        Ok(())
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let watches = vec![Watch {
            api_version: "v1",
            kind: "Namespace",
            namespace: None,
            labels: String::new(),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            let ns = self
                .kube
                .get("v1", "Namespace", None, &self.namespace)
                .await?;
            let crd = self
                .kube
                .get(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    None,
                    render::WANDB_CRD,
                )
                .await?;
            Ok((ns.is_none() && crd.is_none()).then_some(()))
        })
        .await
    }
}
