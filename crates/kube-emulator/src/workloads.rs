//! Deployments, StatefulSets and DaemonSets become ready after a delay, with the status shapes
//! their controllers write (a StatefulSet's revisions, a DaemonSet's node counts), and their
//! pods exist with the kubelet's status; Jobs complete. A configured fault makes a workload's
//! pods fail as real ones do (a crash loop, an image pull, no node that fits, a failed Job),
//! with the same status fields and Warning events.

use crate::controllers::{
    meta_str, rt, Controllers, NEVER_READY_ANNOTATION, READY_AFTER_ANNOTATION,
};
use crate::registry::ResourceType;
use crate::util::{now_secs, rfc3339};
use crate::{Fault, PatchKind};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The nodes a DaemonSet's pods run on.
const NODES: i64 = 1;

fn revision(o: &Value) -> String {
    let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
    format!("{}-{:010x}", meta_str(o, "name"), gen * 0x9e37_79b9)
}

/// The status of a workload that has observed its generation but not rolled it out yet: the
/// replicas that were ready stay ready until new ones replace them.
fn rolling(plural: &str, o: &Value) -> Value {
    let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
    let st = &o["status"];
    if plural == "daemonsets" {
        return json!({"observedGeneration": gen, "desiredNumberScheduled": NODES, "currentNumberScheduled": NODES,
            "numberReady": st["numberReady"].as_i64().unwrap_or(0), "updatedNumberScheduled": 0,
            "numberAvailable": st["numberAvailable"].as_i64().unwrap_or(0), "numberUnavailable": NODES - st["numberAvailable"].as_i64().unwrap_or(0).min(NODES)});
    }
    let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = st["readyReplicas"].as_i64().unwrap_or(0).min(replicas);
    let mut s = json!({"observedGeneration": gen, "replicas": replicas, "updatedReplicas": 0, "readyReplicas": ready, "availableReplicas": ready});
    if plural == "statefulsets" {
        s["currentReplicas"] = ready.into();
        s["currentRevision"] = st["currentRevision"]
            .as_str()
            .map_or_else(|| json!(revision(o)), |r| json!(r));
        s["updateRevision"] = revision(o).into();
    }
    if !st["conditions"].is_null() {
        s["conditions"] = st["conditions"].clone();
    }
    s
}

/// The status of a rolled-out workload.
fn rolled_out(plural: &str, o: &Value) -> Value {
    let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
    if plural == "daemonsets" {
        return json!({"observedGeneration": gen, "desiredNumberScheduled": NODES, "currentNumberScheduled": NODES,
            "numberReady": NODES, "updatedNumberScheduled": NODES, "numberAvailable": NODES, "numberUnavailable": 0});
    }
    let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
    let mut s = json!({"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
    if plural == "statefulsets" {
        s["currentReplicas"] = replicas.into();
        s["currentRevision"] = revision(o).into();
        s["updateRevision"] = revision(o).into();
    } else {
        let now = rfc3339(now_secs());
        s["conditions"] = json!([
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now}
        ]);
    }
    s
}

fn is_rolled_out(plural: &str, o: &Value) -> bool {
    let st = &o["status"];
    if plural == "daemonsets" {
        return st["numberReady"] == NODES && st["updatedNumberScheduled"] == NODES;
    }
    let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
    st["readyReplicas"] == replicas
        && st["availableReplicas"] == replicas
        && st["updatedReplicas"] == replicas
}

impl Controllers {
    /// Deployments, StatefulSets, DaemonSets: observe the generation now, become ready after the
    /// delay (unless a fault or `never_ready` holds them back); their pods follow.
    pub(crate) fn workload(self: &Arc<Self>, plural: &str, o: &Value) {
        if !o["metadata"]["deletionTimestamp"].is_null() {
            return;
        }
        let Some(r) = rt(&self.cluster, "apps", "v1", plural) else {
            return;
        };
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        if o["status"]["observedGeneration"].as_i64() != Some(gen) {
            self.set_status(&r, o, rolling(plural, o));
            return;
        }
        if is_rolled_out(plural, o) {
            return;
        }
        let fault = self.fault_of(o);
        if self.never_ready(o) || fault.is_some() {
            if self.once(format!("pods/{}/{gen}", meta_str(o, "uid"))) {
                self.ensure_pods(&r, o, fault, false);
            }
            return;
        }
        if !self.once(format!("{}/{gen}", meta_str(o, "uid"))) {
            return;
        }
        self.ensure_pods(&r, o, None, false);
        let delay = o["metadata"]["annotations"][READY_AFTER_ANNOTATION]
            .as_str()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(self.cfg().workload_delay);
        let me = self.clone();
        let (ns, name, plural) = (
            meta_str(o, "namespace").to_owned(),
            meta_str(o, "name").to_owned(),
            plural.to_owned(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Ok(cur) = me.cluster.get(&r, &ns, &name) else {
                return;
            };
            if cur["metadata"]["generation"].as_i64() != Some(gen)
                || !cur["metadata"]["deletionTimestamp"].is_null()
            {
                return;
            }
            me.ensure_pods(&r, &cur, None, true);
            me.set_status(&r, &cur, rolled_out(&plural, &cur));
        });
    }

    /// A StatefulSet's claims for one ordinal, as its controller makes them: named
    /// `<template>-<set>-<ordinal>`, labelled with the template's labels and the set's selector,
    /// and not owned by the set (deleting the set leaves them).
    fn ensure_claims(&self, o: &Value, ordinal: i64) {
        let Some(r) = rt(&self.cluster, "", "v1", "persistentvolumeclaims") else {
            return;
        };
        let ns = meta_str(o, "namespace");
        let empty = vec![];
        let templates = o["spec"]["volumeClaimTemplates"]
            .as_array()
            .unwrap_or(&empty);
        for t in templates {
            let name = format!("{}-{}-{ordinal}", meta_str(t, "name"), meta_str(o, "name"));
            if self.cluster.get(&r, ns, &name).is_ok() {
                continue;
            }
            let mut labels = t["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            if let Some(sel) = o["spec"]["selector"]["matchLabels"].as_object() {
                for (k, v) in sel {
                    labels[k] = v.clone();
                }
            }
            let body = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": t["spec"].clone(),
            });
            if let Ok(pvc) = self
                .cluster
                .create(&r, Some(ns), body, "kube-controller-manager")
            {
                self.set_status(&r, &pvc, json!({"phase": "Bound"}));
            }
        }
    }

    fn never_ready(&self, o: &Value) -> bool {
        o["metadata"]["annotations"][NEVER_READY_ANNOTATION] == "true"
            || self
                .cfg()
                .never_ready
                .iter()
                .any(|n| n == meta_str(o, "name"))
    }

    fn fault_of(&self, o: &Value) -> Option<Fault> {
        let name = meta_str(o, "name");
        self.cfg()
            .pod_faults
            .iter()
            .find(|f| f.workload == name)
            .map(|f| f.fault)
    }

    /// The workload's pods, as many as it wants, with the status the kubelet would report.
    fn ensure_pods(&self, owner_rt: &ResourceType, o: &Value, fault: Option<Fault>, ready: bool) {
        let Some(pods) = rt(&self.cluster, "", "v1", "pods") else {
            return;
        };
        let ns = meta_str(o, "namespace");
        let count = if owner_rt.plural == "daemonsets" {
            NODES
        } else {
            o["spec"]["replicas"].as_i64().unwrap_or(1)
        };
        let template = &o["spec"]["template"];
        for i in 0..count {
            if owner_rt.plural == "statefulsets" {
                self.ensure_claims(o, i);
            }
            let name = pod_name(&owner_rt.plural, o, i);
            let status = pod_status(template, &name, fault, ready);
            let mut labels = template["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            let body = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": labels,
                    "ownerReferences": [{"apiVersion": o["apiVersion"], "kind": o["kind"], "name": meta_str(o, "name"), "uid": meta_str(o, "uid"), "controller": true}]},
                "spec": template["spec"].clone(),
            });
            if let Some(pod) = self.apply_as(&pods, ns, &name, body, "kube-emulator-kubelet") {
                self.set_status(&pods, &pod, status);
            }
            if let Some(f) = fault {
                self.fault_events(&pods, ns, &name, template, f);
            }
        }
    }

    fn fault_events(&self, pods: &ResourceType, ns: &str, pod: &str, template: &Value, f: Fault) {
        let Ok(p) = self.cluster.get(pods, ns, pod) else {
            return;
        };
        let (container, image) = first_container(template);
        match f {
            Fault::CrashLoop => self.event(&p, "BackOff", &format!("Back-off restarting failed container {container} in pod {pod}"), "Warning", "kubelet"),
            Fault::ImagePull => {
                self.event(&p, "Failed", &format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"), "Warning", "kubelet");
                self.event(&p, "BackOff", &format!("Back-off pulling image \"{image}\""), "Warning", "kubelet");
            }
            Fault::Unschedulable => self.event(&p, "FailedScheduling", "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.", "Warning", "default-scheduler"),
            Fault::JobFailed => {}
        }
    }

    /// Jobs complete after the delay, or fail up to their backoff limit.
    pub(crate) fn job(self: &Arc<Self>, o: &Value) {
        if !o["metadata"]["deletionTimestamp"].is_null() || !o["status"]["conditions"].is_null() {
            return;
        }
        if !self.once(format!("job/{}", meta_str(o, "uid"))) {
            return;
        }
        if let Some(image) = self.local_image(o) {
            self.run_here(o, image);
            return;
        }
        let Some(r) = rt(&self.cluster, "batch", "v1", "jobs") else {
            return;
        };
        let fault = self.fault_of(o);
        let me = self.clone();
        let (ns, name) = (
            meta_str(o, "namespace").to_owned(),
            meta_str(o, "name").to_owned(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(me.cfg().workload_delay).await;
            let Ok(cur) = me.cluster.get(&r, &ns, &name) else {
                return;
            };
            let now = rfc3339(now_secs());
            let status = if fault == Some(Fault::JobFailed) {
                let limit = cur["spec"]["backoffLimit"].as_i64().unwrap_or(6);
                me.event(
                    &cur,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    "Warning",
                    "job-controller",
                );
                json!({"failed": limit + 1, "startTime": now, "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now}]})
            } else {
                json!({"succeeded": 1, "startTime": now, "completionTime": now, "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "lastProbeTime": now, "lastTransitionTime": now},
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached", "lastProbeTime": now, "lastTransitionTime": now}]})
            };
            me.set_status(&r, &cur, status);
        });
    }

    /// Applies an object of type `r` as the field manager `manager` (server-side apply,
    /// forced, as a controller does); the object as stored.
    pub(crate) fn apply_as(
        &self,
        r: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        manager: &str,
    ) -> Option<Value> {
        self.cluster
            .patch(r, ns, name, PatchKind::Apply, body, false, manager, true)
            .ok()
            .map(|(o, _)| o)
    }

    /// A deleted workload's pods go with it.
    pub(crate) fn delete_pods_of(&self, owner: &Value) {
        let Some(pods) = rt(&self.cluster, "", "v1", "pods") else {
            return;
        };
        let uid = meta_str(owner, "uid");
        for p in self.cluster.all("", "pods") {
            let owned = p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid));
            if owned {
                let _ = self
                    .cluster
                    .delete(&pods, meta_str(&p, "namespace"), meta_str(&p, "name"));
            }
        }
    }
}

/// `<deployment>-<hash>-<suffix>`, `<statefulset>-<ordinal>`, `<daemonset>-<suffix>`.
fn pod_name(plural: &str, o: &Value, i: i64) -> String {
    let name = meta_str(o, "name");
    let uid = meta_str(o, "uid").replace('-', "");
    let tail = |n: usize| uid.chars().rev().take(n).collect::<String>();
    match plural {
        "statefulsets" => format!("{name}-{i}"),
        "daemonsets" => format!("{name}-{}", tail(5)),
        _ => format!("{name}-{}-{}{i}", &uid[..uid.len().min(9)], tail(4)),
    }
}

/// The digest the container runtime reports for a pulled image (`imageID`).
fn image_id(image: &str) -> String {
    use std::hash::{Hash, Hasher};
    let digest: String = (0u8..4)
        .map(|i| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (image, i).hash(&mut h);
            format!("{:016x}", h.finish())
        })
        .collect();
    let repo = image.split(':').next().unwrap_or(image);
    format!("{repo}@sha256:{digest}")
}

/// The name and image of a pod template's first container.
fn first_container(template: &Value) -> (&str, &str) {
    let c = &template["spec"]["containers"][0];
    (
        c["name"].as_str().unwrap_or("main"),
        c["image"].as_str().unwrap_or(""),
    )
}

/// The pod status the kubelet (or the scheduler) reports.
fn pod_status(template: &Value, pod: &str, fault: Option<Fault>, ready: bool) -> Value {
    let now = rfc3339(now_secs());
    let (container, image) = first_container(template);
    let pulled = image_id(image);
    let cond = |t: &str, s: bool| json!({"type": t, "status": if s { "True" } else { "False" }, "lastTransitionTime": now});
    let waiting = |reason: &str, message: String| {
        json!({"phase": "Pending", "conditions": [cond("PodScheduled", true), cond("Ready", false)],
            "containerStatuses": [{"name": container, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": reason, "message": message}}}]})
    };
    match fault {
        Some(Fault::CrashLoop) => {
            json!({"phase": "Running", "conditions": [cond("PodScheduled", true), cond("Ready", false)],
            "containerStatuses": [{"name": container, "image": image, "imageID": pulled, "ready": false, "restartCount": 5, "started": false,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 2m40s restarting failed container={container} pod={pod}")}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "fatal: the service could not start", "startedAt": now, "finishedAt": now}}}]})
        }
        Some(Fault::ImagePull) => waiting(
            "ImagePullBackOff",
            format!("Back-off pulling image \"{image}\""),
        ),
        Some(Fault::Unschedulable) => {
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.", "lastTransitionTime": now}]})
        }
        Some(Fault::JobFailed) | None if !ready => waiting("ContainerCreating", String::new()),
        _ => {
            // Every container (a chart pod may have sidecars) running and ready.
            let statuses: Vec<Value> = template["spec"]["containers"].as_array().into_iter().flatten().map(|c| {
                let image = c["image"].as_str().unwrap_or("");
                json!({"name": c["name"], "image": image, "imageID": image_id(image), "ready": true, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": now}}})
            }).collect();
            json!({"phase": "Running", "conditions": [cond("PodScheduled", true), cond("Initialized", true), cond("ContainersReady", true), cond("Ready", true)],
            "containerStatuses": statuses})
        }
    }
}
