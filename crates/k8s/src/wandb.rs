//! The WeightsAndBiases resource and its readiness.

use crate::client::Kube;
use crate::objects::{annotated, observed_fp, out, terminating};
use crate::ready::{wait_for, wandb_phase, workload_progress, workload_ready, WandbPhase, Watch};
use crate::render;
use async_trait::async_trait;
use serde_json::{json, Value};
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Binding, Kind, WandbResource};

/// The WeightsAndBiases resource. Ready when the operator says so for this generation and
/// every Deployment and StatefulSet of the release is ready with the replicas asked for.
pub struct WandbStep {
    kube: Kube,
    namespace: String,
    name: String,
    values: Value,
    bindings: Vec<Binding>,
}

impl WandbStep {
    pub fn new(kube: Kube, spec: WandbResource) -> Self {
        WandbStep {
            kube,
            namespace: spec.namespace,
            name: spec.name,
            values: spec.values,
            bindings: spec.bindings,
        }
    }

    /// The values with every binding filled from dependency outputs.
    pub fn resolve(&self, ctx: &StepCtx) -> Result<Value, StepError> {
        let mut v = self.values.clone();
        for b in &self.bindings {
            let x = ctx
                .dep_output(b.input.step, b.input.output)
                .ok_or_else(|| {
                    StepError::permanent(format!(
                        "step {} has no output {}",
                        b.input.step, b.input.output
                    ))
                })?;
            if let Some(slot) = v.pointer_mut(&b.pointer) {
                *slot = x.clone();
            }
        }
        Ok(v)
    }

    fn release_selector(&self) -> String {
        format!(
            "app.kubernetes.io/managed-by=Helm,app.kubernetes.io/instance={}",
            self.name
        )
    }

    async fn invalid_reason(&self) -> String {
        let events = self
            .kube
            .list("v1", "Event", Some(&self.namespace), "")
            .await
            .unwrap_or_default();
        let msgs: Vec<String> = events
            .iter()
            .filter(|e| {
                e["involvedObject"]["name"] == self.name.as_str()
                    && e["involvedObject"]["kind"] == "WeightsAndBiases"
            })
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .collect();
        if msgs.is_empty() {
            "no event from the operator says why".into()
        } else {
            msgs.join("; ")
        }
    }
}

#[async_trait]
impl Step for WandbStep {
    fn kind(&self) -> &str {
        WandbResource::LABEL
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(&self.namespace, &self.name, &self.values, &self.bindings))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(cr) = self
            .kube
            .get(
                "apps.wandb.com/v1",
                "WeightsAndBiases",
                Some(&self.namespace),
                &self.name,
            )
            .await?
        else {
            return Ok(Observation::Absent);
        };
        if terminating(&cr) {
            return Ok(Observation::InProgress {
                detail: Some("being deleted".into()),
            });
        }
        match wandb_phase(&cr) {
            WandbPhase::Invalid => {
                return Ok(Observation::Failed {
                    message: format!(
                        "the W&B operator rejected the configuration (Invalid Config): {}",
                        self.invalid_reason().await
                    ),
                })
            }
            WandbPhase::Pending(p) => return Ok(Observation::InProgress { detail: Some(p) }),
            WandbPhase::Completed => {}
        }
        let values = &cr["spec"]["values"];
        let sel = self.release_selector();
        let mut workloads = self
            .kube
            .list("apps/v1", "Deployment", Some(&self.namespace), &sel)
            .await?;
        workloads.extend(
            self.kube
                .list("apps/v1", "StatefulSet", Some(&self.namespace), &sel)
                .await?,
        );
        // The phase is not tied to a generation: also require the workloads this configuration
        // asks for, at the replicas it asks for.
        let mut waiting = Vec::new();
        for (name, replicas) in render::expected_workloads(&self.name, values) {
            match workloads
                .iter()
                .find(|w| w["metadata"]["name"] == name.as_str())
            {
                None => waiting.push(format!("{name} missing")),
                Some(w) if w["spec"]["replicas"].as_i64() != Some(replicas) => waiting.push(
                    format!("{name} at {} of {replicas} replicas", w["spec"]["replicas"]),
                ),
                Some(_) => {}
            }
        }
        for w in &workloads {
            if !workload_ready(w) {
                waiting.push(workload_progress(w));
            }
        }
        if !waiting.is_empty() {
            ctx.progress(format!("waiting for {}", waiting.join(", ")));
            return Ok(Observation::InProgress {
                detail: Some(waiting.join(", ")),
            });
        }
        Ok(Observation::Ready {
            outputs: out(&[
                ("name", json!(self.name)),
                ("namespace", json!(self.namespace)),
                ("host", values["global"]["host"].clone()),
                ("workloads", json!(workloads.len())),
            ]),
            fingerprint: observed_fp(&cr),
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let values = self.resolve(ctx)?;
        let obj = annotated(
            render::wandb(&self.namespace, &self.name, &values),
            &self.fingerprint(),
        );
        self.kube.apply(&obj).await.map(|_| ())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let sel = self.release_selector();
        let watches = vec![
            Watch {
                api_version: "apps.wandb.com/v1",
                kind: "WeightsAndBiases",
                namespace: Some(&self.namespace),
                labels: String::new(),
            },
            Watch {
                api_version: "apps/v1",
                kind: "Deployment",
                namespace: Some(&self.namespace),
                labels: sel.clone(),
            },
            Watch {
                api_version: "apps/v1",
                kind: "StatefulSet",
                namespace: Some(&self.namespace),
                labels: sel,
            },
        ];
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
        self.kube
            .delete(
                "apps.wandb.com/v1",
                "WeightsAndBiases",
                Some(&self.namespace),
                &self.name,
            )
            .await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        // The operator's finalizer removes the release first; wait for both.
        let sel = self.release_selector();
        let watches = vec![
            Watch {
                api_version: "apps.wandb.com/v1",
                kind: "WeightsAndBiases",
                namespace: Some(&self.namespace),
                labels: String::new(),
            },
            Watch {
                api_version: "apps/v1",
                kind: "Deployment",
                namespace: Some(&self.namespace),
                labels: sel.clone(),
            },
        ];
        wait_for(&self.kube, watches, ctx, || async {
            let cr = self
                .kube
                .get(
                    "apps.wandb.com/v1",
                    "WeightsAndBiases",
                    Some(&self.namespace),
                    &self.name,
                )
                .await?;
            if let Some(cr) = cr {
                ctx.progress(format!(
                    "waiting for the operator to remove its finalizer ({})",
                    cr["metadata"]["finalizers"]
                ));
                return Ok(None);
            }
            let left = self
                .kube
                .list("apps/v1", "Deployment", Some(&self.namespace), &sel)
                .await?
                .len()
                + self
                    .kube
                    .list("apps/v1", "StatefulSet", Some(&self.namespace), &sel)
                    .await?
                    .len();
            Ok((left == 0).then_some(()))
        })
        .await
    }
}
