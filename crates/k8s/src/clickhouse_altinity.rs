//! A ClickHouseInstallation for the Altinity operator.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::objects::{annotated, observed_fp, out};
use crate::ready::{chi_ready, settled, wait_for, Watch};
use crate::render::{self, zookeeper_node};
use async_trait::async_trait;
use serde_json::{json, Value};
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

const CHI_API: &str = "clickhouse.altinity.com/v1";
const CHI: &str = "ClickHouseInstallation";
const CHK_API: &str = "clickhouse-keeper.altinity.com/v1";
const CHK: &str = "ClickHouseKeeperInstallation";

impl ClickhouseAltinityStep {
    /// The installations as applied: each annotated with the step's fingerprint and given a
    /// task id from it, whose completion marks the change done.
    fn manifests(&self) -> Vec<Value> {
        let fp = self.fingerprint();
        render::clickhouse_altinity(&self.spec)
            .into_iter()
            .map(|m| {
                let mut m = annotated(m, &fp);
                m["spec"]["taskID"] = json!(format!("wbstack-{}", fp.short()));
                m
            })
            .collect()
    }

    /// A ZooKeeper the plan names by its in-cluster Service name must exist: nothing else
    /// would make it, and the installation would wait for it for ever.
    async fn check_zookeeper(&self) -> Result<(), StepError> {
        if self.spec.keeper.is_some() {
            return Ok(());
        }
        let Some((host, _)) = zookeeper_node(&self.spec) else {
            return Ok(());
        };
        let parts: Vec<&str> = host.split('.').collect();
        if parts.len() < 3 || parts[2] != "svc" {
            return Ok(());
        }
        let (svc, ns) = (parts[0], parts[1]);
        if self
            .kube
            .get("v1", "Service", Some(ns), svc)
            .await?
            .is_none()
        {
            return Err(StepError::permanent(format!(
                "spec.clickhouse.zookeeperHost names Service {ns}/{svc}, which does not exist: \
                 install ZooKeeper or ClickHouse Keeper there first, or remove zookeeperHost \
                 to have wbstack make a ClickHouse Keeper ensemble"
            )));
        }
        Ok(())
    }

    fn watches<'a>(&self, ns: Option<&'a str>) -> Vec<Watch<'a>> {
        let watch = |api_version, kind| Watch {
            api_version,
            kind,
            namespace: ns,
            labels: String::new(),
            fields: String::new(),
        };
        let mut watches = vec![watch(CHI_API, CHI)];
        if self.spec.keeper.is_some() {
            watches.push(watch(CHK_API, CHK));
        }
        watches
    }

    fn ready(&self, chi: &Value, fingerprint: Option<Fingerprint>) -> Observation {
        let host = format!(
            "clickhouse-{}.{}.svc.cluster.local",
            self.spec.name, self.spec.namespace
        );
        Observation::Ready {
            outputs: out(&[
                ("host", json!(host)),
                ("port", json!(8123)),
                ("endpoint", chi["status"]["endpoint"].clone()),
            ]),
            fingerprint,
        }
    }

    /// What one installation says: ready (its task completed), failed, or in progress.
    fn judge(o: &Value) -> Result<bool, String> {
        let st = &o["status"];
        if chi_ready(o, o["spec"]["taskID"].as_str()) {
            Ok(true)
        } else if st["hostsFailed"].as_i64().unwrap_or(0) > 0 || st["status"] == "Aborted" {
            Err(format!(
                "{} {}: status {}, {} hosts failed",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or(""),
                st["status"],
                st["hostsFailed"]
            ))
        } else {
            Ok(false)
        }
    }
}

#[async_trait]
impl Step for ClickhouseAltinityStep {
    fn kind(&self) -> &str {
        AltinityClickhouse::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        let (ns, name) = (Some(self.spec.namespace.as_str()), &self.spec.name);
        self.kube.marked(CHI_API, CHI, ns, name).await
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&render::clickhouse_altinity(&self.spec))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let docs = render::clickhouse_altinity(&self.spec);
        let (chi_m, keeper_m) = docs.split_last().expect("the installation is rendered");
        let Some(chi) = self.kube.get_manifest(chi_m).await? else {
            return Ok(Observation::Absent);
        };
        self.kube.refuse_foreign(&chi)?;
        let mut live = vec![chi.clone()];
        for m in keeper_m {
            match self.kube.get_manifest(m).await? {
                Some(k) => live.push(k),
                // A Keeper deleted by hand: a change `up` makes again.
                None => return Ok(self.ready(&chi, Some(Fingerprint::of(&"no Keeper")))),
            }
        }
        let mut waiting = None;
        for o in &live {
            match Self::judge(o) {
                Err(message) => return Ok(Observation::Failed { message }),
                Ok(false) => {
                    let status = o["status"]["status"].as_str().unwrap_or("pending");
                    waiting.get_or_insert(format!("{} {status}", o["kind"].as_str().unwrap_or("")));
                }
                Ok(true) => {}
            }
        }
        Ok(match waiting {
            Some(detail) => Observation::InProgress {
                detail: Some(detail),
            },
            None => self.ready(&chi, observed_fp(&chi)),
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        self.check_zookeeper().await?;
        for m in self.manifests() {
            self.kube.apply(&m).await.map_err(|e| {
                if e.message().contains("does not manage") || e.message().contains("404") {
                    StepError::permanent(format!(
                        "{} (is the Altinity ClickHouse operator installed?)",
                        e.message()
                    ))
                } else {
                    e
                }
            })?;
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = self.watches(Some(self.spec.namespace.as_str()));
        wait_for(&self.kube, watches, ctx, || async {
            settled(self.observe(ctx).await?)
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        // The servers first, then the Keeper they used.
        for m in render::clickhouse_altinity(&self.spec).iter().rev() {
            self.kube.delete_own_manifest(m).await?;
        }
        Ok(())
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        // Gone when every installation is: the operator removes its finalizers first.
        let ns = Some(self.spec.namespace.as_str());
        let watches = self.watches(ns);
        wait_for(&self.kube, watches, ctx, || async {
            for m in render::clickhouse_altinity(&self.spec) {
                if self.kube.get_manifest(&m).await?.is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
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
        render::clickhouse_altinity(self)
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.altinity = true;
        s.namespaces.insert(self.namespace.clone());
    }
}
