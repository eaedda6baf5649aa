//! Readiness predicates, composable and pure, and a watch-driven wait that re-checks them.
//!
//! Each predicate reads the status shape the real controller writes: the Deployment, StatefulSet
//! and DaemonSet controllers; the W&B operator v1 (`status.phase` only) and v2 (`status.ready`,
//! a `Ready` condition with `observedGeneration`); the Altinity operator (no
//! `observedGeneration`: a `taskID` ties a status to the change that produced it).

use crate::client::{resource, Kube};
use crate::conditions::Rollout;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use wbstack_engine::{Observation, Outputs, StepCtx, StepError};

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A Deployment, StatefulSet or DaemonSet read through the dynamic API has observed its
/// generation and finished rolling it out, as the typed conditions of `conditions.rs` judge it.
pub fn workload_ready(o: &Value) -> bool {
    Rollout::of(o).is_some_and(|r| r.done())
}

/// A Job read through the dynamic API has finished (its `Complete` condition is true).
pub fn job_complete(o: &Value) -> bool {
    crate::conditions::job_value_complete(o)
}

/// `name ready/wanted` for progress messages.
pub fn workload_progress(o: &Value) -> String {
    match Rollout::of(o) {
        Some(r) => r.progress(),
        None => o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
    }
}

/// An Altinity ClickHouseInstallation is done with the change `task_id` names (when one is
/// given): Completed, that task among the completed ones, every host done and none failed.
pub fn chi_ready(o: &Value, task_id: Option<&str>) -> bool {
    let st = &o["status"];
    let task_done = task_id.is_none_or(|t| {
        st["taskIDsCompleted"]
            .as_array()
            .is_some_and(|done| done.iter().any(|d| d == t))
    });
    st["status"] == "Completed"
        && task_done
        && st["hosts"].as_i64().is_some()
        && st["hostsCompleted"] == st["hosts"]
        && int(&st["hostsFailed"]) == 0
}

/// What a WeightsAndBiases resource says about itself.
#[derive(Debug, PartialEq, Eq)]
pub enum WandbPhase {
    /// The operator reports the configuration invalid (the v1 operator retries it).
    Invalid,
    /// The operator finished applying (v1: its Helm release was applied; v2: Ready for this
    /// generation).
    Completed,
    /// Anything else: not yet.
    Pending(String),
}

/// The phase of a resource read through `apps.wandb.com/v1`: the v1 operator writes only
/// `status.phase` (`Loading`, `Completed`, `Invalid Config`), tied to no generation.
pub fn wandb_phase_v1(o: &Value) -> WandbPhase {
    match o["status"]["phase"].as_str().unwrap_or("") {
        "Invalid Config" => WandbPhase::Invalid,
        "Completed" => WandbPhase::Completed,
        "" => WandbPhase::Pending("no status yet".into()),
        other => WandbPhase::Pending(other.into()),
    }
}

/// The phase of a resource read through `apps.wandb.com/v2`: `status.ready` and the `Ready`
/// condition, both for the current generation.
pub fn wandb_phase_v2(o: &Value) -> WandbPhase {
    let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
    let st = &o["status"];
    let cond = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let Some(c) = cond else {
        return WandbPhase::Pending("no Ready condition yet".into());
    };
    let current = int(&c["observedGeneration"]) >= gen && int(&st["observedGeneration"]) >= gen;
    if c["status"] == "True" && st["ready"] == true && current {
        WandbPhase::Completed
    } else if !current {
        WandbPhase::Pending(format!("generation {gen} not observed yet"))
    } else {
        WandbPhase::Pending(format!(
            "Ready={} ({}: {})",
            c["status"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        ))
    }
}

/// A watch to re-check on: kind, namespace, label selector and field selector (empty: all).
pub struct Watch<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub namespace: Option<&'a str>,
    pub labels: String,
    pub fields: String,
}

impl<'a> Watch<'a> {
    /// A watch on one object, by name: other objects' changes do not wake the wait (many
    /// environments share a cluster).
    pub fn named(api_version: &'a str, kind: &'a str, name: &str) -> Self {
        Watch {
            api_version,
            kind,
            namespace: None,
            labels: String::new(),
            fields: format!("metadata.name={name}"),
        }
    }
}

/// Re-runs `check` whenever a watched object changes (and at least every 30 s, to recover from
/// anything a watch missed) until it yields a value or fails. Returns promptly on cancellation;
/// the caller (the engine) owns the timeout.
pub async fn wait_for<T, F, Fut>(
    kube: &Kube,
    watches: Vec<Watch<'_>>,
    ctx: &StepCtx,
    check: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StepError>>,
{
    wait_for_every(kube, watches, ctx, Duration::from_secs(30), check).await
}

/// [`wait_for`] re-checking at least every `every` (for checks that also depend on time, like
/// how long a pod has been crashing).
pub async fn wait_for_every<T, F, Fut>(
    kube: &Kube,
    watches: Vec<Watch<'_>>,
    ctx: &StepCtx,
    every: Duration,
    mut check: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StepError>>,
{
    let mut streams = Vec::new();
    for w in watches {
        let (ar, namespaced) = resource(w.api_version, w.kind)?;
        let api: Api<DynamicObject> = match (namespaced, w.namespace) {
            (true, Some(ns)) => Api::namespaced_with(kube.client().clone(), ns, &ar),
            _ => Api::all_with(kube.client().clone(), &ar),
        };
        let mut cfg = watcher::Config::default();
        if !w.labels.is_empty() {
            cfg = cfg.labels(&w.labels);
        }
        if !w.fields.is_empty() {
            cfg = cfg.fields(&w.fields);
        }
        streams.push(watcher(api, cfg).default_backoff().map(|_| ()).boxed());
    }
    let mut events = futures::stream::select_all(streams);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        tokio::select! {
            _ = ctx.cancel().cancelled() => return Err(StepError::transient("wait cancelled")),
            e = events.next() => {
                if e.is_none() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// What a wait makes of one observation: done with its outputs, failed for good, or not yet.
pub fn settled(o: Observation) -> Result<Option<Outputs>, StepError> {
    match o {
        Observation::Ready { outputs, .. } => Ok(Some(outputs)),
        Observation::Failed { message } => Err(StepError::permanent(message)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workloads_are_ready_only_at_their_generation_with_all_replicas() {
        let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3}});
        assert!(!workload_ready(&d));
        d["status"]["observedGeneration"] = json!(2);
        assert!(workload_ready(&d));
        d["status"]["readyReplicas"] = json!(2);
        assert!(!workload_ready(&d));
    }

    #[test]
    fn a_deployment_whose_new_pod_cannot_start_is_not_rolled_out() {
        // Seen on the test bed: one replica, the old pod still ready, the new one Pending
        // (maxSurge 1): ready and updated counts look complete, the old ReplicaSet is not gone.
        let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1,
                "availableReplicas": 1, "unavailableReplicas": 1}});
        assert!(!workload_ready(&d));
        d["status"]["replicas"] = json!(1);
        d["status"]["availableReplicas"] = json!(0);
        assert!(!workload_ready(&d), "the new pod is not available yet");
        d["status"]["availableReplicas"] = json!(1);
        assert!(workload_ready(&d));
    }

    #[test]
    fn a_statefulset_is_ready_once_its_rollout_is_done() {
        // Three ready pods of the old revision while the new one rolls out: not ready.
        let mut s = json!({"kind": "StatefulSet", "metadata": {"generation": 3}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "currentReplicas": 2, "updatedReplicas": 1,
                "currentRevision": "ch-7d9f", "updateRevision": "ch-5c4b"}});
        assert!(!workload_ready(&s));
        s["status"]["updatedReplicas"] = json!(3);
        assert!(
            !workload_ready(&s),
            "updated but the revision is not current yet"
        );
        s["status"]["currentRevision"] = json!("ch-5c4b");
        assert!(workload_ready(&s));
    }

    #[test]
    fn a_daemonset_is_ready_when_every_wanted_node_runs_an_updated_ready_pod() {
        let mut d = json!({"kind": "DaemonSet", "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2, "numberUnavailable": 1}});
        assert!(!workload_ready(&d));
        d["status"]["numberReady"] = json!(3);
        d["status"]["numberUnavailable"] = json!(0);
        assert!(workload_ready(&d));
    }

    #[test]
    fn an_altinity_status_counts_only_for_the_task_it_completed() {
        // The shape the Altinity operator writes (no observedGeneration).
        let mut c = json!({"metadata": {"generation": 2}, "status": {"status": "Completed", "hosts": 2, "hostsCompleted": 2,
            "taskID": "auto-1", "taskIDsStarted": ["auto-1"], "taskIDsCompleted": ["auto-1"], "endpoint": "clickhouse-x.ns.svc.cluster.local"}});
        assert!(chi_ready(&c, None));
        assert!(
            !chi_ready(&c, Some("wbstack-abc")),
            "a Completed left from an older change"
        );
        c["status"]["taskIDsCompleted"] = json!(["auto-1", "wbstack-abc"]);
        assert!(chi_ready(&c, Some("wbstack-abc")));
        c["status"]["hostsFailed"] = json!(1);
        assert!(!chi_ready(&c, Some("wbstack-abc")));
    }

    #[test]
    fn the_v1_phase_is_what_the_operator_writes() {
        assert_eq!(
            wandb_phase_v1(&json!({"status": {"phase": "Invalid Config"}})),
            WandbPhase::Invalid
        );
        assert_eq!(
            wandb_phase_v1(&json!({"status": {"phase": "Completed"}})),
            WandbPhase::Completed
        );
        assert_eq!(
            wandb_phase_v1(&json!({"status": {"phase": "Loading"}})),
            WandbPhase::Pending("Loading".into())
        );
        assert!(matches!(wandb_phase_v1(&json!({})), WandbPhase::Pending(_)));
    }

    #[test]
    fn the_v2_phase_needs_ready_for_the_current_generation() {
        let mut o = json!({"apiVersion": "apps.wandb.com/v2", "metadata": {"generation": 3},
            "status": {"ready": true, "observedGeneration": 3,
                "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2, "reason": "Reconciled", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
        assert!(
            matches!(wandb_phase_v2(&o), WandbPhase::Pending(_)),
            "stale condition"
        );
        o["status"]["conditions"][0]["observedGeneration"] = json!(3);
        assert_eq!(wandb_phase_v2(&o), WandbPhase::Completed);
        o["status"]["ready"] = json!(false);
        o["status"]["conditions"][0]["status"] = json!("False");
        assert!(matches!(wandb_phase_v2(&o), WandbPhase::Pending(_)));
        // Read through v1, a v2 resource has no status at all.
        assert!(matches!(
            wandb_phase_v1(&json!({"metadata": {"generation": 3}})),
            WandbPhase::Pending(_)
        ));
    }
}
