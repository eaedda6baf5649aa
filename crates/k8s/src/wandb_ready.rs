//! What "ready" means for a W&B release: the operator has taken up the resource's latest change,
//! says it applied it, and every long-running workload the chart makes for these values (read
//! from the chart table: names, kinds) has finished rolling out. Anything else keeps the wait
//! going, with the reason; what cannot heal by waiting ends it.

use crate::client::Kube;
use crate::explain::{diagnose, stuck_job, Stuck};
use crate::ready::{job_complete, workload_progress, workload_ready};
use crate::release_ready::Awaited;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use std::collections::btree_map::{BTreeMap, Entry};
use std::time::SystemTime;
use wbstack_engine::StepError;

/// The workloads not ready yet, as `Kind name missing` or `name 1/3`: listed per kind and
/// namespace, matched by name (a chart may name or label them any way).
pub(crate) async fn unready_workloads(
    kube: &Kube,
    awaited: &[Awaited],
) -> Result<Vec<String>, StepError> {
    let mut live: BTreeMap<(&str, &str), Vec<Value>> = BTreeMap::new();
    for a in awaited {
        let key = (a.kind.as_str(), a.namespace.as_str());
        if let Entry::Vacant(slot) = live.entry(key) {
            let api = if a.kind == "Job" {
                "batch/v1"
            } else {
                "apps/v1"
            };
            slot.insert(kube.list(api, &a.kind, Some(&a.namespace), "").await?);
        }
    }
    let mut waiting = Vec::new();
    for a in awaited {
        let objs = &live[&(a.kind.as_str(), a.namespace.as_str())];
        match objs
            .iter()
            .find(|o| o["metadata"]["name"] == a.name.as_str())
        {
            None => waiting.push(format!("{} {} missing", a.kind, a.name)),
            Some(o) if a.kind == "Job" && !job_complete(o) => {
                waiting.push(format!("Job {} running", a.name))
            }
            Some(o) if a.kind != "Job" && !workload_ready(o) => waiting.push(workload_progress(o)),
            Some(_) => {}
        }
    }
    Ok(waiting)
}

/// The selector of everything the chart renders for a release.
pub(crate) fn instance_selector(release: &str) -> String {
    format!("app.kubernetes.io/instance={release}")
}

/// A failed Job of the release (a migration, a hook): it ends the wait at once.
pub(crate) async fn failed_job(
    kube: &Kube,
    namespace: &str,
    release: &str,
) -> Result<Option<Stuck>, StepError> {
    let jobs = kube
        .list(
            "batch/v1",
            "Job",
            Some(namespace),
            &instance_selector(release),
        )
        .await?;
    Ok(jobs.iter().find_map(stuck_job))
}

/// Why the release's pods are not ready, if the kubelet or the scheduler says.
pub(crate) async fn stuck_pods(
    kube: &Kube,
    namespace: &str,
    release: &str,
) -> Result<Vec<Stuck>, StepError> {
    diagnose(kube, namespace, &instance_selector(release)).await
}

/// When an event happened: `lastTimestamp`, else `eventTime`.
fn event_time(e: &Value) -> Option<SystemTime> {
    let t = e["lastTimestamp"]
        .as_str()
        .or_else(|| e["eventTime"].as_str())?;
    let ts: Timestamp = t.parse().ok()?;
    Some(SystemTime::from(ts))
}

/// Whether the operator has started a reconcile of the resource at or after `since`: the v1
/// operator records a `Reconciling` event at the start of every reconcile (events carry
/// seconds, so `since` is taken a second early).
pub(crate) fn reconciled_since(
    events: &[Value],
    kind: &str,
    name: &str,
    since: SystemTime,
) -> bool {
    let since = since - std::time::Duration::from_secs(1);
    events.iter().any(|e| {
        e["involvedObject"]["kind"] == kind
            && e["involvedObject"]["name"] == name
            && event_time(e).is_some_and(|t| t >= since)
    })
}

/// The operator's events about the resource, oldest first, as `Reason: message`.
pub(crate) fn operator_events(events: &[Value], kind: &str, name: &str) -> String {
    let mut about: Vec<&Value> = events
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .collect();
    about.sort_by_key(|e| event_time(e));
    let msgs: Vec<String> = about
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    if msgs.is_empty() {
        "no event from the operator says why".into()
    } else {
        msgs.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn a_reconcile_counts_only_when_its_event_is_as_recent_as_the_change() {
        let at = |t: &str| SystemTime::from(t.parse::<Timestamp>().unwrap());
        let ev = |time: &str| json!({"involvedObject": {"kind": "WeightsAndBiases", "name": "wandb"}, "reason": "Reconciling", "message": "Reconciling", "type": "Normal", "lastTimestamp": time});
        let events = vec![ev("2026-12-01T10:00:00Z")];
        assert!(reconciled_since(
            &events,
            "WeightsAndBiases",
            "wandb",
            at("2026-12-01T10:00:00.500Z")
        ));
        assert!(!reconciled_since(
            &events,
            "WeightsAndBiases",
            "wandb",
            at("2026-12-01T10:00:05Z")
        ));
        assert!(!reconciled_since(
            &events,
            "WeightsAndBiases",
            "other",
            at("2026-12-01T09:00:00Z")
        ));
        let micro = json!({"involvedObject": {"kind": "WeightsAndBiases", "name": "wandb"}, "eventTime": "2026-12-01T10:00:07.123456Z"});
        assert!(reconciled_since(
            &[micro],
            "WeightsAndBiases",
            "wandb",
            at("2026-12-01T10:00:07Z") + Duration::from_millis(10)
        ));
    }

    #[test]
    fn the_operators_events_say_why_in_order() {
        let events = vec![
            json!({"involvedObject": {"kind": "WeightsAndBiases", "name": "w"}, "reason": "ApplyFailed", "message": "Invalid config for apply", "lastTimestamp": "2026-12-01T10:00:02Z"}),
            json!({"involvedObject": {"kind": "WeightsAndBiases", "name": "w"}, "reason": "LoadingConfig", "message": "Loading desired configuration", "lastTimestamp": "2026-12-01T10:00:01Z"}),
        ];
        assert_eq!(
            operator_events(&events, "WeightsAndBiases", "w"),
            "LoadingConfig: Loading desired configuration; ApplyFailed: Invalid config for apply"
        );
    }
}
