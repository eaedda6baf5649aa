//! A ClickHouseInstallation for the Altinity operator.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::objects::{annotated, observed_fp, out};
use crate::ready::{chi_ready, settled, wait_for, Watch};
use crate::render;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{AltinityClickhouse, Kind};

/// A ClickHouseInstallation for the Altinity operator.
pub struct ClickhouseAltinityStep {
    kube: Kube,
    spec: AltinityClickhouse,
}

impl ClickhouseAltinityStep {
    pub fn new(kube: Kube, spec: AltinityClickhouse) -> Self {
        ClickhouseAltinityStep { kube, spec }
    }
}

#[async_trait]
impl Step for ClickhouseAltinityStep {
    fn kind(&self) -> &str {
        AltinityClickhouse::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        self.kube
            .marked(
                "clickhouse.altinity.com/v1",
                "ClickHouseInstallation",
                Some(&self.spec.namespace),
                &self.spec.name,
            )
            .await
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&render::clickhouse_altinity(&self.spec))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(o) = self
            .kube
            .get(
                "clickhouse.altinity.com/v1",
                "ClickHouseInstallation",
                Some(&self.spec.namespace),
                &self.spec.name,
            )
            .await?
        else {
            return Ok(Observation::Absent);
        };
        self.kube.refuse_foreign(&o)?;
        // The Altinity status has no observedGeneration: the task a change was applied with
        // (`spec.taskID`) must be among the completed ones, so an old Completed does not count.
        if chi_ready(&o, o["spec"]["taskID"].as_str()) {
            Ok(Observation::Ready {
                outputs: out(&[
                    (
                        "host",
                        json!(format!(
                            "clickhouse-{}.{}.svc.cluster.local",
                            self.spec.name, self.spec.namespace
                        )),
                    ),
                    ("port", json!(8123)),
                    ("endpoint", o["status"]["endpoint"].clone()),
                ]),
                fingerprint: observed_fp(&o),
            })
        } else if o["status"]["hostsFailed"].as_i64().unwrap_or(0) > 0
            || o["status"]["status"] == "Aborted"
        {
            Ok(Observation::Failed {
                message: format!(
                    "ClickHouseInstallation {}: status {}, {} hosts failed",
                    self.spec.name, o["status"]["status"], o["status"]["hostsFailed"]
                ),
            })
        } else {
            Ok(Observation::InProgress {
                detail: o["status"]["status"].as_str().map(str::to_owned),
            })
        }
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let fp = self.fingerprint();
        let mut m = annotated(render::clickhouse_altinity(&self.spec), &fp);
        m["spec"]["taskID"] = json!(format!("wbstack-{}", fp.short()));
        self.kube.apply(&m).await.map(|_| ()).map_err(|e| {
            if e.message().contains("does not manage") || e.message().contains("404") {
                StepError::permanent(format!(
                    "{} (is the Altinity ClickHouse operator installed?)",
                    e.message()
                ))
            } else {
                e
            }
        })
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch {
            api_version: "clickhouse.altinity.com/v1",
            kind: "ClickHouseInstallation",
            namespace: Some(&self.spec.namespace),
            labels: String::new(),
            fields: String::new(),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            settled(self.observe(ctx).await?)
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube
            .delete_own(
                "clickhouse.altinity.com/v1",
                "ClickHouseInstallation",
                Some(&self.spec.namespace),
                &self.spec.name,
            )
            .await
    }
}

impl K8sStepKind for AltinityClickhouse {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(ClickhouseAltinityStep::new(
            w.kube.clone(),
            self.clone(),
        )))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![render::clickhouse_altinity(self)]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.altinity = true;
        s.namespaces.insert(self.namespace.clone());
    }
}
