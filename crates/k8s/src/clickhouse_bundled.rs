//! Bundled ClickHouse: Keeper and shards as native objects.

use crate::client::Kube;
use crate::explain::{diagnose, StuckClock};
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::leftovers::delete_leftovers;
use crate::objects::{annotated, observed_fp, out};
use crate::ready::{settled, wait_for, wait_for_every, workload_progress, workload_ready, Watch};
use crate::render;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{BundledClickhouse, Kind};

/// The pod annotation naming the revision of the password a workload was started with.
pub const REVISION: &str = "wbstack.dev/clickhouse-password-revision";

/// The generated password's revision, when this plan generates it.
fn revision(ctx: &StepCtx) -> Option<String> {
    ctx.dep_str(
        wbstack_plan::ids::CLICKHOUSE_PASSWORD,
        wbstack_plan::ids::outputs::REVISION,
    )
    .map(str::to_owned)
}

/// Whether a manifest is a workload whose containers read the ClickHouse password.
fn reads_password(m: &Value) -> bool {
    m["kind"] == "StatefulSet"
        && m["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["env"].as_array().into_iter().flatten())
            .any(|e| e["name"] == "CLICKHOUSE_PASSWORD")
}

/// Bundled ClickHouse: native manifests, ready when Keeper and every shard are.
pub struct ClickhouseBundledStep {
    kube: Kube,
    spec: BundledClickhouse,
    stuck: StuckClock,
}

impl ClickhouseBundledStep {
    pub fn new(kube: Kube, spec: BundledClickhouse) -> Self {
        let stuck = StuckClock::new(Duration::from_secs(spec.stuck_seconds));
        ClickhouseBundledStep { kube, spec, stuck }
    }

    /// What keeps the pods from being ready, once it has lasted the grace: the wait's end.
    async fn stuck(&self) -> Result<Option<String>, StepError> {
        let sel = format!("app.kubernetes.io/instance={}", self.spec.name);
        let stuck = diagnose(&self.kube, &self.spec.namespace, &sel).await?;
        Ok(self
            .stuck
            .expired(&stuck)
            .map(|s| format!("{s} (for over {} s)", self.spec.stuck_seconds)))
    }

    fn manifests(&self) -> Vec<Value> {
        let fp = self.fingerprint();
        render::clickhouse_bundled(&self.spec)
            .into_iter()
            .map(|m| annotated(m, &fp))
            .collect()
    }

    /// The manifests to apply: the shards' pod templates carry the password's revision, so a
    /// new password restarts them with it.
    ///
    /// Under IRSA the servers' ServiceAccount carries the role's ARN.
    fn manifests_for(&self, ctx: &StepCtx) -> Vec<Value> {
        let rev = revision(ctx);
        let role = self
            .spec
            .role
            .and_then(|i| ctx.dep_str(i.step, i.output))
            .map(str::to_owned);
        self.manifests()
            .into_iter()
            .map(|mut m| {
                if let (Some(r), true) = (&rev, reads_password(&m)) {
                    m["spec"]["template"]["metadata"]["annotations"][REVISION] = json!(r);
                }
                if let (Some(arn), true) = (&role, m["kind"] == "ServiceAccount") {
                    m["metadata"]["annotations"][wbstack_plan::ROLE_ANNOTATION] = json!(arn);
                }
                m
            })
            .collect()
    }
    fn outputs(&self) -> Outputs {
        out(&[
            (
                "host",
                json!(format!(
                    "{}.{}.svc.cluster.local",
                    self.spec.name, self.spec.namespace
                )),
            ),
            ("port", json!(8123)),
            ("cluster", json!(self.spec.cluster_name)),
        ])
    }
    /// Keeper must not be older than the server it serves.
    fn check_versions(&self) -> Result<(), StepError> {
        let tag = |img: &str| {
            img.rsplit(':')
                .next()
                .unwrap_or("")
                .split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        if tag(&self.spec.keeper_image) < tag(&self.spec.image) {
            return Err(StepError::permanent(format!(
                "ClickHouse Keeper ({}) is older than the server ({})",
                self.spec.keeper_image, self.spec.image
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Step for ClickhouseBundledStep {
    fn kind(&self) -> &str {
        BundledClickhouse::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        for m in self.manifests() {
            if self.kube.marked_manifest(&m).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&render::clickhouse_bundled(&self.spec))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let ms = self.manifests_for(ctx);
        let mut present = 0;
        let mut fp = None;
        let mut waiting = Vec::new();
        let mut edited = Vec::new();
        for m in &ms {
            if let Some(live) = self.kube.get_manifest(m).await? {
                self.kube.refuse_foreign(&live)?;
                present += 1;
                if m["kind"] == "ConfigMap" && m["data"] != live["data"] {
                    // The server's or the users' configuration edited by hand (a replica out of
                    // the cluster, a user's networks opened): written back.
                    edited.push(live["data"].clone());
                }
                let want = &m["spec"]["template"]["metadata"]["annotations"][REVISION];
                let has = &live["spec"]["template"]["metadata"]["annotations"][REVISION];
                if want.is_string() && want != has {
                    // Started with another password: to be restarted with this one.
                    fp = Some(Fingerprint::of(&("password-revision", want)));
                }
                let role = wbstack_plan::ROLE_ANNOTATION;
                let (want, has) = (
                    &m["metadata"]["annotations"][role],
                    &live["metadata"]["annotations"][role],
                );
                if m["kind"] == "ServiceAccount" && want.is_string() && want != has {
                    // The role annotation was edited or lost: applied again.
                    fp = Some(Fingerprint::of(&("role", has)));
                }
                if m["kind"] == "StatefulSet" {
                    fp = fp.or_else(|| observed_fp(&live));
                    if !workload_ready(&live) {
                        waiting.push(workload_progress(&live));
                    }
                }
            }
        }
        if !edited.is_empty() {
            fp = Some(Fingerprint::of(&("edited", &edited)));
        }
        // Some objects but not all: an apply was cut short (a kill between two of its calls).
        // Nothing will finish it but applying again, so it counts as absent, not as in progress.
        Ok(if present < ms.len() {
            Observation::Absent
        } else if !waiting.is_empty() {
            if let Some(message) = self.stuck().await? {
                return Ok(Observation::Failed { message });
            }
            ctx.progress(format!("waiting for {}", waiting.join(", ")));
            Observation::InProgress {
                detail: Some(waiting.join(", ")),
            }
        } else {
            Observation::Ready {
                outputs: self.outputs(),
                fingerprint: fp,
            }
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        self.check_versions()?;
        for m in self.manifests_for(ctx) {
            self.kube.apply(&m).await?;
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch {
            api_version: "apps/v1",
            kind: "StatefulSet",
            namespace: Some(&self.spec.namespace),
            labels: format!("app.kubernetes.io/instance={}", self.spec.name),
            fields: String::new(),
        }];
        wait_for_every(&self.kube, watches, ctx, Duration::from_secs(5), || async {
            settled(self.observe(ctx).await?)
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        for m in self.manifests().iter().rev() {
            self.kube.delete_own_manifest(m).await?;
        }
        // StatefulSets leave their volume claims behind; nothing is left behind here.
        delete_leftovers(&self.kube, &self.spec.namespace, &self.spec.name, false).await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let watches = vec![Watch {
            api_version: "apps/v1",
            kind: "StatefulSet",
            namespace: Some(&self.spec.namespace),
            labels: format!("app.kubernetes.io/instance={}", self.spec.name),
            fields: String::new(),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            for m in self.manifests() {
                if self.kube.get_manifest(&m).await?.is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }
}

impl K8sStepKind for BundledClickhouse {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(ClickhouseBundledStep::new(
            w.kube.clone(),
            self.clone(),
        )))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        render::clickhouse_bundled(self)
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.namespaces.insert(self.namespace.clone());
    }
}
