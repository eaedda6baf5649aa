//! The `WeightsAndBiases` CRD: wbstack's own is applied and kept current; any other (one an
//! official operator install made, or a newer one that stores `v2`) is adopted as it is and
//! never replaced, since replacing a CRD can drop what its stored version holds.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::objects::{annotated, observed_fp, out, terminating};
use crate::ownership::{may_remove_shared, ours_to_remove, WANDB_RESOURCES};
use crate::ready::{wait_for, Watch};
use crate::render::{self, MANAGED_BY, WANDB_CRD};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Arc;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, WandbCrd};

const CRD_API: &str = "apiextensions.k8s.io/v1";
const CRD_KIND: &str = "CustomResourceDefinition";

/// The CRD step.
pub struct WandbCrdStep {
    kube: Kube,
    version: String,
}

impl WandbCrdStep {
    pub fn new(kube: Kube, spec: WandbCrd) -> Self {
        WandbCrdStep {
            kube,
            version: spec.version,
        }
    }

    fn manifest(&self) -> Value {
        render::wandb_crd(&self.version)
    }
}

/// The version a CRD stores and the versions it serves.
fn versions(crd: &Value) -> (String, Vec<String>) {
    let vs = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let storage = vs
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .unwrap_or("v1")
        .to_owned();
    let served = vs
        .iter()
        .filter(|v| v["served"] == true)
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    (storage, served)
}

fn established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

/// Whether wbstack made it (and so may change or delete it).
fn ours(crd: &Value) -> bool {
    crd["metadata"]["labels"][MANAGED_BY.0] == MANAGED_BY.1
}

#[async_trait]
impl Step for WandbCrdStep {
    fn kind(&self) -> &str {
        WandbCrd::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        self.kube.marked(CRD_API, CRD_KIND, None, WANDB_CRD).await
    }
    fn shared(&self) -> bool {
        true
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.manifest())
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(live) = self.kube.get(CRD_API, CRD_KIND, None, WANDB_CRD).await? else {
            return Ok(Observation::Absent);
        };
        if terminating(&live) {
            return Ok(Observation::InProgress {
                detail: Some("being deleted".into()),
            });
        }
        if !established(&live) {
            return Ok(Observation::InProgress {
                detail: Some("not established yet".into()),
            });
        }
        let (storage, served) = versions(&live);
        let newer = storage != "v1" || served.iter().any(|v| v != "v1");
        // Someone else's, or newer than ours: used as it is (the observed fingerprint is the
        // desired one, so nothing is applied over it).
        let fingerprint = if ours(&live) && !newer {
            observed_fp(&live)
        } else {
            Some(self.fingerprint())
        };
        Ok(Observation::Ready {
            outputs: out(&[
                ("name", json!(WANDB_CRD)),
                ("storage", json!(storage)),
                ("served", json!(served)),
                (
                    "owner",
                    json!(if ours(&live) { "wbstack" } else { "other" }),
                ),
            ]),
            fingerprint,
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let m = annotated(self.manifest(), &self.fingerprint());
        self.kube.apply(&m).await.map(|_| ())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch::named(CRD_API, CRD_KIND, WANDB_CRD)];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                _ => None,
            })
        })
        .await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        match self.kube.get(CRD_API, CRD_KIND, None, WANDB_CRD).await? {
            // Deleting a CRD deletes every resource of its kind: only this environment's own
            // goes, and only once no other resource of that kind is left in the cluster.
            Some(live) if ours_to_remove(&self.kube, &live) => {
                let what = "the WeightsAndBiases CRD";
                if may_remove_shared(&self.kube, ctx, what, None, WANDB_RESOURCES, &[live]).await? {
                    self.kube.delete(CRD_API, CRD_KIND, None, WANDB_CRD).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let watches = vec![Watch::named(CRD_API, CRD_KIND, WANDB_CRD)];
        wait_for(&self.kube, watches, ctx, || async {
            let live = self.kube.get(CRD_API, CRD_KIND, None, WANDB_CRD).await?;
            // Gone, or left in place for other resources (not being deleted).
            Ok(live
                .is_none_or(|l| !ours_to_remove(&self.kube, &l) || !terminating(&l))
                .then_some(()))
        })
        .await
    }
}

impl K8sStepKind for WandbCrd {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(WandbCrdStep::new(w.kube.clone(), self.clone())))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.crds.insert(WANDB_CRD.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_crd_stores_v2_and_serves_both() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/wandb-operator/crd-v2.0.0-beta.3.yaml");
        let v2: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let (storage, served) = versions(&v2);
        assert_eq!(storage, "v2");
        assert_eq!(served, vec!["v1".to_string(), "v2".to_string()]);
        let (storage, served) = versions(&render::wandb_crd("1.22.0"));
        assert_eq!((storage.as_str(), served), ("v1", vec!["v1".to_string()]));
    }
}
