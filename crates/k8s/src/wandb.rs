//! The WeightsAndBiases resource and its readiness.

use crate::client::Kube;
use crate::explain::StuckClock;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::leftovers::{delete_leftovers, leftovers};
use crate::objects::{annotated, observed_fp, out, terminating};
use crate::ready::{settled, wait_for_every, wandb_phase_v1, wandb_phase_v2, WandbPhase, Watch};
use crate::release_ready::{installed, latest_revision, Installed, Wanted};
use crate::render;
use crate::wandb_ready::{
    failed_job, instance_selector, operator_events, reconciled_since, stuck_pods, unready_workloads,
};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, WandbResource};

const KIND: &str = "WeightsAndBiases";
const V1: &str = "apps.wandb.com/v1";
const V2: &str = "apps.wandb.com/v2";

/// The WeightsAndBiases resource. Ready when the operator has taken up its latest change, says
/// it is applied (v1: `Completed`; v2: `Ready` for this generation) and, for the Helm-based v1
/// operator, every long-running workload the chart makes for these values is rolled out.
pub struct WandbStep {
    kube: Kube,
    spec: WandbResource,
    /// When this run changed the resource, until the operator is seen to have taken it up.
    applied_at: Mutex<Option<SystemTime>>,
    /// Since when the operator has said `Invalid Config` (it retries; it fails only if it
    /// lasts).
    invalid_since: Mutex<Option<Instant>>,
    stuck: StuckClock,
    /// Whether this run has said that readiness falls back to the chart table.
    fallback_said: Mutex<bool>,
    /// When this run changed the resource's spec: the release's newest revision before the
    /// change (0 for none). Only a newer one can carry the change.
    revision_before: Mutex<Option<i64>>,
}

impl WandbStep {
    pub fn new(kube: Kube, spec: WandbResource) -> Self {
        let grace = Duration::from_secs(spec.stuck_seconds);
        WandbStep {
            kube,
            spec,
            applied_at: Mutex::new(None),
            invalid_since: Mutex::new(None),
            stuck: StuckClock::new(grace),
            fallback_said: Mutex::new(false),
            revision_before: Mutex::new(None),
        }
    }

    /// The values with every binding filled from dependency outputs.
    pub fn resolve(&self, ctx: &StepCtx) -> Result<Value, StepError> {
        let mut v = self.spec.values.clone();
        for b in &self.spec.bindings {
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

    /// The API version status is read through: v2 where the CRD stores v2 (read as v1, a v2
    /// resource has no status).
    fn api_version(&self, ctx: &StepCtx) -> &'static str {
        match ctx.dep_str(self.spec.crd.step, self.spec.crd.output) {
            Some("v2") => V2,
            _ => V1,
        }
    }

    async fn events(&self) -> Vec<Value> {
        self.kube
            .list("v1", "Event", Some(&self.spec.namespace), "")
            .await
            .unwrap_or_default()
    }

    /// Whether the operator has taken up the change this run applied (always, when this run
    /// applied none). Seeing it busy, or a reconcile event since, is enough.
    async fn taken_up(&self, phase: &WandbPhase) -> bool {
        let Some(at) = *self.applied_at.lock().unwrap_or_else(|e| e.into_inner()) else {
            return true;
        };
        let seen = *phase != WandbPhase::Completed
            || reconciled_since(&self.events().await, KIND, &self.spec.name, at);
        if seen {
            *self.applied_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        seen
    }

    /// `Invalid Config`: retried by the operator; a failure once it has lasted the grace.
    async fn invalid(&self) -> Observation {
        let since = *self
            .invalid_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
        let why = operator_events(&self.events().await, KIND, &self.spec.name);
        if since.elapsed() >= Duration::from_secs(self.spec.stuck_seconds) {
            Observation::Failed {
                message: format!(
                    "the W&B operator rejects the configuration (Invalid Config for {} s): {why}",
                    since.elapsed().as_secs()
                ),
            }
        } else {
            Observation::InProgress {
                detail: Some(format!("Invalid Config, the operator retries: {why}")),
            }
        }
    }

    /// The fingerprint the live resource stands for: the one applied, unless its spec was
    /// changed since by hand (a `kubectl edit` of a value or of the chart), which is drift that
    /// `up` repairs. Read through v1 only (v2 has its own spec shape); without the inputs' outputs
    /// (a dependency not observed) the annotation is trusted.
    fn live_fingerprint(&self, ctx: &StepCtx, api: &str, cr: &Value) -> Option<Fingerprint> {
        let applied = observed_fp(cr);
        if api != V1 || applied.as_ref() != Some(&self.fingerprint()) {
            return applied;
        }
        let Ok(values) = self.resolve(ctx) else {
            return applied;
        };
        let wanted = render::wandb(
            &self.spec.namespace,
            &self.spec.name,
            &self.spec.chart,
            &values,
        );
        if cr["spec"]["values"] == wanted["spec"]["values"]
            && cr["spec"]["chart"] == wanted["spec"]["chart"]
        {
            applied
        } else {
            Some(Fingerprint::from_hex("changed-by-hand"))
        }
    }

    /// The release's workloads, for the Helm-based v1 operator: those of the Helm release it
    /// installed with these values, or the chart table's when no release can be read.
    async fn release(&self, ctx: &StepCtx, cr: &Value) -> Result<Option<Observation>, StepError> {
        let (ns, name) = (&self.spec.namespace, &self.spec.name);
        if let Some(job) = failed_job(&self.kube, ns, name).await? {
            return Ok(Some(Observation::Failed {
                message: format!("{job}"),
            }));
        }
        let newer_than = *self
            .revision_before
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let want = Wanted {
            values: &cr["spec"]["values"],
            chart: &cr["spec"]["chart"],
        };
        let (awaited, of) = match installed(&self.kube, ns, name, want, newer_than).await? {
            Installed::Release { version, workloads } => {
                (workloads, format!("Helm release {name} revision {version}"))
            }
            Installed::Pending(why) => {
                ctx.progress(format!("waiting: {why}"));
                return Ok(Some(Observation::InProgress { detail: Some(why) }));
            }
            Installed::Failed(message) => return Ok(Some(Observation::Failed { message })),
            Installed::Table { why, workloads } => {
                self.say_once(ctx, &why);
                (workloads, "the chart table".to_owned())
            }
        };
        let waiting = unready_workloads(&self.kube, &awaited).await?;
        if waiting.is_empty() {
            return Ok(None);
        }
        let stuck = stuck_pods(&self.kube, ns, name).await?;
        if let Some(s) = self.stuck.expired(&stuck) {
            return Ok(Some(Observation::Failed {
                message: format!("{s} (for over {} s)", self.spec.stuck_seconds),
            }));
        }
        let mut detail = format!("{} (of {of})", waiting.join(", "));
        for s in &stuck {
            detail.push_str(&format!("; {s}"));
        }
        ctx.progress(format!("waiting for {detail}"));
        Ok(Some(Observation::InProgress {
            detail: Some(detail),
        }))
    }

    /// Says once per run that readiness falls back to the chart table, and why.
    fn say_once(&self, ctx: &StepCtx, why: &str) {
        let mut said = self.fallback_said.lock().unwrap_or_else(|e| e.into_inner());
        if !*said {
            *said = true;
            ctx.progress(format!(
                "readiness judged by the chart table's workloads, not the installed release: {why}"
            ));
        }
    }
}

#[async_trait]
impl Step for WandbStep {
    fn kind(&self) -> &str {
        WandbResource::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        self.kube
            .marked(V1, KIND, Some(&self.spec.namespace), &self.spec.name)
            .await
    }
    fn fingerprint(&self) -> Fingerprint {
        let s = &self.spec;
        Fingerprint::of(&(&s.namespace, &s.name, &s.chart, &s.values, &s.bindings))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<wbstack_engine::Change>, StepError> {
        let api = self.api_version(ctx);
        let (ns, name) = (&self.spec.namespace, &self.spec.name);
        let (Some(cr), Ok(values)) = (
            self.kube.get(api, KIND, Some(ns), name).await?,
            self.resolve(ctx),
        ) else {
            return Ok(Vec::new());
        };
        if api != V1 {
            return Ok(Vec::new());
        }
        let want = render::wandb(ns, name, &self.spec.chart, &values);
        let mut c =
            crate::diff::changes("spec.chart", &cr["spec"]["chart"], &want["spec"]["chart"]);
        c.extend(crate::diff::changes(
            "spec.values",
            &cr["spec"]["values"],
            &want["spec"]["values"],
        ));
        Ok(c)
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let api = self.api_version(ctx);
        let (ns, name) = (&self.spec.namespace, &self.spec.name);
        let Some(cr) = self.kube.get(api, KIND, Some(ns), name).await? else {
            return Ok(Observation::Absent);
        };
        self.kube.refuse_foreign(&cr)?;
        if terminating(&cr) {
            return Ok(Observation::InProgress {
                detail: Some("being deleted".into()),
            });
        }
        let outputs = || {
            out(&[
                ("name", json!(name)),
                ("namespace", json!(ns)),
                ("host", cr["spec"]["values"]["global"]["host"].clone()),
                ("apiVersion", json!(api)),
            ])
        };
        let fingerprint = self.live_fingerprint(ctx, api, &cr);
        if fingerprint.as_ref() != observed_fp(&cr).as_ref() {
            // Changed by hand: whatever the operator is doing with it, the plan's spec goes back.
            return Ok(Observation::Ready {
                outputs: outputs(),
                fingerprint,
            });
        }
        let phase = if api == V2 {
            wandb_phase_v2(&cr)
        } else {
            wandb_phase_v1(&cr)
        };
        if !self.taken_up(&phase).await {
            return Ok(Observation::InProgress {
                detail: Some("waiting for the operator to take up the change".into()),
            });
        }
        match phase {
            WandbPhase::Invalid => return Ok(self.invalid().await),
            WandbPhase::Pending(p) => return Ok(Observation::InProgress { detail: Some(p) }),
            WandbPhase::Completed => {
                *self.invalid_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        // The v2 operator does not deploy through Helm: its Ready condition covers the rest.
        if api == V1 {
            if let Some(o) = self.release(ctx, &cr).await? {
                return Ok(o);
            }
        }
        Ok(Observation::Ready {
            outputs: outputs(),
            fingerprint,
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let values = self.resolve(ctx)?;
        let s = &self.spec;
        let obj = annotated(
            render::wandb(&s.namespace, &s.name, &s.chart, &values),
            &self.fingerprint(),
        );
        let generation = |o: &Value| o["metadata"]["generation"].as_i64();
        let before = self
            .kube
            .get(V1, KIND, Some(&s.namespace), &s.name)
            .await?
            .and_then(|o| generation(&o));
        let revision = latest_revision(&self.kube, &s.namespace, &s.name).await;
        let after = self.kube.apply(&obj).await?;
        if before != generation(&after) {
            *self
                .revision_before
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(revision.unwrap_or(0));
        }
        *self.applied_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(SystemTime::now());
        *self.invalid_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let (ns, sel) = (&self.spec.namespace, instance_selector(&self.spec.name));
        let w = |api_version, kind, labels: &str| Watch {
            api_version,
            kind,
            namespace: Some(ns),
            labels: labels.to_owned(),
            fields: String::new(),
        };
        let revisions = wbstack_chart::HelmRelease::selector(&self.spec.name);
        let watches = vec![
            w(self.api_version(ctx), KIND, ""),
            // A new revision of the release the operator writes.
            w("v1", "Secret", &revisions),
            w("apps/v1", "Deployment", &sel),
            w("apps/v1", "StatefulSet", &sel),
            w("apps/v1", "DaemonSet", &sel),
            w("batch/v1", "Job", &sel),
            w("v1", "Pod", &sel),
        ];
        // Re-checked every few seconds too: how long pods have been stuck is part of the answer.
        wait_for_every(&self.kube, watches, ctx, Duration::from_secs(5), || async {
            settled(self.observe(ctx).await?)
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let s = &self.spec;
        self.kube
            .delete_own(V1, KIND, Some(&s.namespace), &s.name)
            .await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        // The operator's finalizer uninstalls the release first; wait for both.
        let (ns, name) = (&self.spec.namespace, &self.spec.name);
        let sel = format!(
            "app.kubernetes.io/managed-by=Helm,{}",
            instance_selector(name)
        );
        let watches = vec![
            Watch {
                api_version: V1,
                kind: KIND,
                namespace: Some(ns),
                labels: String::new(),
                fields: String::new(),
            },
            Watch {
                api_version: "apps/v1",
                kind: "Deployment",
                namespace: Some(ns),
                labels: sel.clone(),
                fields: String::new(),
            },
            Watch {
                api_version: "v1",
                kind: "PersistentVolumeClaim",
                namespace: Some(ns),
                labels: instance_selector(name),
                fields: String::new(),
            },
        ];
        wait_for_every(
            &self.kube,
            watches,
            ctx,
            Duration::from_secs(10),
            || async {
                if let Some(cr) = self.kube.get(V1, KIND, Some(ns), name).await? {
                    stuck_finalizer(&self.kube, &cr).await?;
                    ctx.progress(format!(
                        "waiting for the operator to remove its finalizer ({})",
                        cr["metadata"]["finalizers"]
                    ));
                    return Ok(None);
                }
                let mut left = 0;
                for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
                    left += self.kube.list("apps/v1", kind, Some(ns), &sel).await?.len();
                }
                if left > 0 {
                    return Ok(None);
                }
                // What `helm uninstall` leaves: the StatefulSets' claims and the Secrets the
                // chart keeps. Removed only now: until the release is gone, the operator may
                // apply it again and bring them back.
                delete_leftovers(&self.kube, ns, name, true).await?;
                Ok(leftovers(&self.kube, ns, name, true)
                    .await?
                    .is_empty()
                    .then_some(()))
            },
        )
        .await
    }
}

/// Fails at once when a resource being deleted holds a finalizer that only the W&B operator
/// removes and no operator is left in the cluster to remove it: nothing can change any more.
async fn stuck_finalizer(kube: &Kube, cr: &Value) -> Result<(), StepError> {
    let finalizers: Vec<&str> = cr["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if finalizers.is_empty() || cr["metadata"]["deletionTimestamp"].is_null() {
        return Ok(());
    }
    let operators = kube.list("apps/v1", "Deployment", None, "").await?;
    if operators.iter().any(crate::render::is_operator) {
        return Ok(());
    }
    let (ns, name) = (
        cr["metadata"]["namespace"].as_str().unwrap_or(""),
        cr["metadata"]["name"].as_str().unwrap_or(""),
    );
    Err(StepError::permanent(format!(
        "WeightsAndBiases {ns}/{name} is held by its finalizers {} and no W&B operator is left \
         in the cluster to run them: install the operator again (`wbstack up` does) so that it \
         uninstalls the release and lets the resource go, or, knowing the release's objects \
         then stay, remove them by hand: kubectl patch weightsandbiases {name} -n {ns} \
         --type merge -p '{{\"metadata\":{{\"finalizers\":null}}}}'",
        finalizers.join(", ")
    )))
}

impl K8sStepKind for WandbResource {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(WandbStep::new(w.kube.clone(), self.clone())))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        let doc = crate::render::wandb(&self.namespace, &self.name, &self.chart, &self.values);
        vec![doc]
    }
    fn scope(&self, s: &mut JobScope, verify: bool) {
        if verify {
            s.verify = Some(self.namespace.clone());
        }
        s.namespaces.insert(self.namespace.clone());
    }
}
