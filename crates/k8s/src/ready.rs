//! Readiness predicates, composable and pure, and a watch-driven wait that re-checks them.

use crate::client::{resource, Kube};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use wbstack_engine::{StepCtx, StepError};

/// A Deployment or StatefulSet has observed its generation and all replicas are ready.
pub fn workload_ready(o: &Value) -> bool {
    let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
    let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &o["status"];
    let observed = st["observedGeneration"].as_i64().unwrap_or(0) >= gen;
    let ready = st["readyReplicas"].as_i64().unwrap_or(0) == want;
    let updated = o["kind"] != "Deployment" || st["updatedReplicas"].as_i64().unwrap_or(0) == want;
    observed && ready && updated && o["metadata"]["deletionTimestamp"].is_null()
}

/// `ready/wanted` for progress messages.
pub fn workload_progress(o: &Value) -> String {
    format!(
        "{} {}/{}",
        o["metadata"]["name"].as_str().unwrap_or(""),
        o["status"]["readyReplicas"].as_i64().unwrap_or(0),
        o["spec"]["replicas"].as_i64().unwrap_or(1)
    )
}

/// An Altinity ClickHouseInstallation is Completed with every host done, none failed, and an
/// endpoint.
pub fn chi_ready(o: &Value) -> bool {
    let st = &o["status"];
    st["status"] == "Completed"
        && st["hosts"].as_i64().is_some()
        && st["hostsCompleted"] == st["hosts"]
        && st["hostsFailed"].as_i64().unwrap_or(0) == 0
        && st["endpoint"].as_str().is_some_and(|e| !e.is_empty())
        && st["observedGeneration"]
            .as_i64()
            .is_none_or(|g| Some(g) >= o["metadata"]["generation"].as_i64())
}

/// What a WeightsAndBiases resource says about itself.
#[derive(Debug, PartialEq, Eq)]
pub enum WandbPhase {
    /// The operator reports the configuration invalid.
    Invalid,
    /// The operator finished applying this generation.
    Completed,
    /// Anything else: not yet.
    Pending(String),
}

/// Reads the phase. The v1 operator's `status.phase: Completed` only says its Helm apply
/// returned and is not tied to a generation; a newer operator's `status.ready` / `Ready`
/// condition with `observedGeneration` is used when present.
pub fn wandb_phase(o: &Value) -> WandbPhase {
    let st = &o["status"];
    let phase = st["phase"].as_str().unwrap_or("");
    if phase == "Invalid Config" {
        return WandbPhase::Invalid;
    }
    let gen = o["metadata"]["generation"].as_i64();
    if let Some(conds) = st["conditions"].as_array() {
        if let Some(c) = conds.iter().find(|c| c["type"] == "Ready") {
            let current = c["observedGeneration"]
                .as_i64()
                .is_none_or(|g| Some(g) >= gen);
            return if c["status"] == "True" && current {
                WandbPhase::Completed
            } else {
                WandbPhase::Pending(format!("Ready={}", c["status"].as_str().unwrap_or("?")))
            };
        }
    }
    if let Some(ready) = st["ready"].as_bool() {
        let current = st["observedGeneration"]
            .as_i64()
            .is_none_or(|g| Some(g) >= gen);
        return if ready && current {
            WandbPhase::Completed
        } else {
            WandbPhase::Pending("ready=false".into())
        };
    }
    if phase == "Completed" {
        WandbPhase::Completed
    } else {
        WandbPhase::Pending(if phase.is_empty() {
            "no status yet".into()
        } else {
            phase.into()
        })
    }
}

/// A watch to re-check on: kind, namespace, label selector.
pub struct Watch<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub namespace: Option<&'a str>,
    pub labels: String,
}

/// Re-runs `check` whenever a watched object changes (and at least every 30 s, to recover from
/// anything a watch missed) until it yields a value or fails. Returns promptly on cancellation;
/// the caller (the engine) owns the timeout.
pub async fn wait_for<T, F, Fut>(
    kube: &Kube,
    watches: Vec<Watch<'_>>,
    ctx: &StepCtx,
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
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workloads_are_ready_only_at_their_generation_with_all_replicas() {
        let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3}});
        assert!(!workload_ready(&d));
        d["status"]["observedGeneration"] = json!(2);
        assert!(workload_ready(&d));
        d["status"]["readyReplicas"] = json!(2);
        assert!(!workload_ready(&d));
    }

    #[test]
    fn chi_needs_completed_hosts_and_an_endpoint() {
        let mut c = json!({"metadata": {"generation": 1}, "status": {"status": "Completed", "hosts": 2, "hostsCompleted": 2, "endpoint": "e"}});
        assert!(chi_ready(&c));
        c["status"]["hostsFailed"] = json!(1);
        assert!(!chi_ready(&c));
    }

    #[test]
    fn wandb_phase_prefers_a_generation_aware_condition() {
        assert_eq!(
            wandb_phase(&json!({"status": {"phase": "Invalid Config"}})),
            WandbPhase::Invalid
        );
        assert_eq!(
            wandb_phase(&json!({"status": {"phase": "Completed"}})),
            WandbPhase::Completed
        );
        let stale = json!({"metadata": {"generation": 3}, "status": {"phase": "Completed", "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}});
        assert!(matches!(wandb_phase(&stale), WandbPhase::Pending(_)));
    }
}
