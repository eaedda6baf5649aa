//! Readiness of built-in workloads as conditions over k8s-openapi's types, in kube-runtime's
//! `wait::Condition` shape (`Fn(Option<&K>) -> bool`): a Deployment, StatefulSet or DaemonSet
//! rolled out at its generation, a Job complete. Objects read through the dynamic API are judged
//! by the same functions through [`Rollout::of`], which types their status.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentStatus, StatefulSet, StatefulSetStatus,
};
use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// What a workload's readiness is judged on: its generation, whether it is being deleted, the
/// replicas it wants, and its status as its controller writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollout {
    pub name: String,
    generation: i64,
    deleting: bool,
    wanted: i32,
    status: Status,
}

/// A workload's status, typed by its kind.
#[derive(Clone, Debug, PartialEq)]
enum Status {
    Deployment(DeploymentStatus),
    StatefulSet(StatefulSetStatus),
    DaemonSet(DaemonSetStatus),
}

impl Rollout {
    fn new(meta: &ObjectMeta, replicas: Option<i32>, status: Status) -> Self {
        Rollout {
            name: meta.name.clone().unwrap_or_default(),
            generation: meta.generation.unwrap_or(1),
            deleting: meta.deletion_timestamp.is_some(),
            wanted: replicas.unwrap_or(1),
            status,
        }
    }

    /// A workload read through the dynamic API (`kind` Deployment, StatefulSet or DaemonSet);
    /// `None` for another kind or a status that is not the kind's.
    pub fn of(o: &Value) -> Option<Rollout> {
        let meta: ObjectMeta = serde_json::from_value(o["metadata"].clone()).ok()?;
        let st = if o["status"].is_null() {
            Value::Object(Default::default())
        } else {
            o["status"].clone()
        };
        let replicas = o["spec"]["replicas"].as_i64().map(|r| r as i32);
        let status = match o["kind"].as_str()? {
            "Deployment" => Status::Deployment(serde_json::from_value(st).ok()?),
            "StatefulSet" => Status::StatefulSet(serde_json::from_value(st).ok()?),
            "DaemonSet" => Status::DaemonSet(serde_json::from_value(st).ok()?),
            _ => return None,
        };
        Some(Rollout::new(&meta, replicas, status))
    }

    /// Observed at its generation, not being deleted, and rolled out: every replica updated and
    /// ready (a Deployment's old replicas gone and the new available, as `kubectl rollout
    /// status` has it; a StatefulSet's current revision its update revision; a DaemonSet's pods
    /// scheduled, updated and ready on every node it wants).
    pub fn done(&self) -> bool {
        let n = |v: Option<i32>| v.unwrap_or(0);
        let (observed, rolled_out) = match &self.status {
            Status::DaemonSet(s) => {
                let want = s.desired_number_scheduled;
                let done = s.number_ready == want
                    && n(s.updated_number_scheduled) == want
                    && n(s.number_unavailable) == 0;
                (s.observed_generation, done)
            }
            Status::Deployment(s) => {
                let want = self.wanted;
                let done = n(s.ready_replicas) == want
                    && n(s.updated_replicas) == want
                    && n(s.replicas) == want
                    && n(s.available_replicas) >= want;
                (s.observed_generation, done)
            }
            Status::StatefulSet(s) => {
                let want = self.wanted;
                let revision =
                    s.update_revision.is_none() || s.current_revision == s.update_revision;
                let done = n(s.ready_replicas) == want && n(s.updated_replicas) == want && revision;
                (s.observed_generation, done)
            }
        };
        observed.unwrap_or(0) >= self.generation && !self.deleting && rolled_out
    }

    /// `name ready/wanted`, for progress messages.
    pub fn progress(&self) -> String {
        let (ready, want) = match &self.status {
            Status::DaemonSet(s) => (s.number_ready, s.desired_number_scheduled),
            Status::Deployment(s) => (s.ready_replicas.unwrap_or(0), self.wanted),
            Status::StatefulSet(s) => (s.ready_replicas.unwrap_or(0), self.wanted),
        };
        format!("{} {ready}/{want}", self.name)
    }
}

/// A Deployment rolled out at its generation.
pub fn deployment_rolled_out(d: Option<&Deployment>) -> bool {
    d.is_some_and(|d| {
        let replicas = d.spec.as_ref().and_then(|s| s.replicas);
        let status = Status::Deployment(d.status.clone().unwrap_or_default());
        Rollout::new(&d.metadata, replicas, status).done()
    })
}

/// A StatefulSet rolled out at its generation.
pub fn statefulset_rolled_out(s: Option<&StatefulSet>) -> bool {
    s.is_some_and(|s| {
        let replicas = s.spec.as_ref().and_then(|s| s.replicas);
        let status = Status::StatefulSet(s.status.clone().unwrap_or_default());
        Rollout::new(&s.metadata, replicas, status).done()
    })
}

/// A DaemonSet rolled out at its generation on every node it wants.
pub fn daemonset_rolled_out(d: Option<&DaemonSet>) -> bool {
    d.is_some_and(|d| {
        let status = Status::DaemonSet(d.status.clone().unwrap_or_default());
        Rollout::new(&d.metadata, None, status).done()
    })
}

/// A Job finished: its `Complete` condition is true (the Job controller sets it once the wanted
/// completions succeeded).
pub fn job_completed(j: Option<&Job>) -> bool {
    j.and_then(|j| j.status.as_ref()).is_some_and(complete)
}

fn complete(s: &JobStatus) -> bool {
    s.conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Complete" && c.status == "True")
}

/// A Job read through the dynamic API has completed.
pub fn job_value_complete(o: &Value) -> bool {
    serde_json::from_value::<JobStatus>(o["status"].clone()).is_ok_and(|s| complete(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::wait::Condition;
    use serde_json::json;

    #[test]
    fn the_conditions_have_kube_runtimes_shape_over_typed_objects() {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        assert!(deployment_rolled_out.matches_object(Some(&d)));
        assert!(!deployment_rolled_out.matches_object(None));
        let mut older = d.clone();
        older.status.as_mut().unwrap().observed_generation = Some(1);
        assert!(!deployment_rolled_out.matches_object(Some(&older)));
        let j: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
            "status": {"conditions": [{"type": "Complete", "status": "True"}]}
        }))
        .unwrap();
        assert!(job_completed.matches_object(Some(&j)));
        let s: StatefulSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ch", "generation": 1},
            "spec": {"replicas": 3, "selector": {}, "serviceName": "ch", "template": {}},
            "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                "currentRevision": "a", "updateRevision": "a"}
        }))
        .unwrap();
        assert!(statefulset_rolled_out.matches_object(Some(&s)));
        let ds: DaemonSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "otel", "generation": 1},
            "spec": {"selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                "numberMisscheduled": 0, "numberReady": 1}
        }))
        .unwrap();
        assert!(!daemonset_rolled_out.matches_object(Some(&ds)));
    }
}
