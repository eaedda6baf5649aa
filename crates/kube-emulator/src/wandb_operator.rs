//! The W&B operator stand-in, as the real one behaves.
//!
//! v1 (when the `WeightsAndBiases` CRD stores v1): on every new generation it records
//! `Reconciling` and `LoadingConfig` events; a spec equal to the one it last applied is just
//! `Completed`; otherwise it sets `Loading`, adds its finalizer, installs the chart's release
//! (the workloads the chart table says the values make, with the chart's names and labels) and
//! writes the release's revision Secret as Helm's `secrets` driver does, records `Completed` and sets `status.phase: Completed`. It writes no other status field. An
//! apply it cannot make (`Config::invalid_config`) is `Invalid Config` with an `ApplyFailed`
//! event, retried until it succeeds. Deleting the resource uninstalls the release, then removes
//! the finalizer.
//!
//! v2 (when the CRD stores v2): no Helm; the same workloads, and a status of `ready`, a `Ready`
//! condition and `observedGeneration` that turn true once they are all rolled out.

use crate::controllers::{is_operator, meta_str, rt, Controllers, WANDB_FINALIZER};
use crate::registry::ResourceType;
use serde_json::{json, Value};
use std::sync::Arc;
use wbstack_chart::{operator_wandb, Expected};

/// The name the operator's event recorder gives as the event source.
const SOURCE: &str = "weightsandbiases-controller";

impl Controllers {
    fn operator_active(&self) -> bool {
        self.cluster.all("apps", "deployments").iter().any(|d| {
            is_operator(d)
                && d["status"]["readyReplicas"].as_i64().unwrap_or(0) >= 1
                && d["metadata"]["deletionTimestamp"].is_null()
        })
    }

    /// Whether the cluster's `WeightsAndBiases` CRD stores v2 (a v2 operator's).
    fn stores_v2(&self) -> bool {
        self.cluster
            .all("apiextensions.k8s.io", "customresourcedefinitions")
            .iter()
            .filter(|c| c["spec"]["group"] == "apps.wandb.com")
            .flat_map(|c| {
                c["spec"]["versions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .any(|v| v["storage"] == true && v["name"] == "v2")
    }

    /// The stand-in.
    pub(crate) fn wandb(self: &Arc<Self>, o: &Value) {
        let Some(r) = self
            .cluster
            .resource_for_kind(o["apiVersion"].as_str().unwrap_or(""), "WeightsAndBiases")
        else {
            return;
        };
        if !self.operator_active() {
            return;
        }
        if !o["metadata"]["deletionTimestamp"].is_null() {
            return self.uninstall(r, o);
        }
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        if !self.once(format!("weightsandbiases/{}/{gen}", meta_str(o, "uid"))) {
            return;
        }
        if self.stores_v2() {
            return self.reconcile_v2(r, o.clone());
        }
        self.event(o, "Reconciling", "Reconciling", "Normal", SOURCE);
        self.event(
            o,
            "LoadingConfig",
            "Loading desired configuration",
            "Normal",
            SOURCE,
        );
        let uid = meta_str(o, "uid").to_owned();
        let unchanged = self
            .active
            .lock()
            .is_ok_and(|a| a.get(&uid) == Some(&o["spec"]));
        if unchanged {
            return self.set_phase(&r, o, "Completed");
        }
        self.set_phase(&r, o, "Loading");
        self.add_finalizer(&r, meta_str(o, "namespace"), meta_str(o, "name"));
        let me = self.clone();
        let (ns, name) = (
            meta_str(o, "namespace").to_owned(),
            meta_str(o, "name").to_owned(),
        );
        tokio::spawn(async move { me.apply_v1(r, ns, name, gen).await });
    }

    fn set_phase(&self, r: &ResourceType, o: &Value, phase: &str) {
        let Ok(cur) = self
            .cluster
            .get(r, meta_str(o, "namespace"), meta_str(o, "name"))
        else {
            return;
        };
        let mut status = cur["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["phase"] = phase.into();
        self.set_status(r, &cur, status);
    }

    fn add_finalizer(&self, r: &ResourceType, ns: &str, name: &str) {
        let Ok(cur) = self.cluster.get(r, ns, name) else {
            return;
        };
        let mut fins: Vec<Value> = cur["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if fins.iter().any(|f| f == WANDB_FINALIZER) {
            return;
        }
        fins.push(WANDB_FINALIZER.into());
        let mut body = cur.clone();
        body["metadata"]["finalizers"] = Value::Array(fins);
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let _ = self
            .cluster
            .update(r, ns, name, body, false, "wandb-operator");
    }

    /// The Helm apply, retried while it fails, as the operator requeues.
    async fn apply_v1(self: Arc<Self>, r: ResourceType, ns: String, name: String, gen: i64) {
        let delay = self.cfg().operator_delay;
        loop {
            tokio::time::sleep(delay / 3).await;
            let Ok(cur) = self.cluster.get(&r, &ns, &name) else {
                return;
            };
            if cur["metadata"]["generation"].as_i64() != Some(gen)
                || !cur["metadata"]["deletionTimestamp"].is_null()
            {
                return;
            }
            if self.cfg().invalid_config.contains(&name) {
                self.set_phase(&r, &cur, "Invalid Config");
                self.event(
                    &cur,
                    "ApplyFailed",
                    "Invalid config for apply",
                    "Normal",
                    SOURCE,
                );
                tokio::time::sleep(delay).await;
                self.event(&cur, "Reconciling", "Reconciling", "Normal", SOURCE);
                continue;
            }
            self.install(&cur, "Helm");
            tokio::time::sleep(delay / 3).await;
            let Ok(cur) = self.cluster.get(&r, &ns, &name) else {
                return;
            };
            if cur["metadata"]["generation"].as_i64() != Some(gen) {
                return;
            }
            if let Ok(mut a) = self.active.lock() {
                a.insert(meta_str(&cur, "uid").to_owned(), cur["spec"].clone());
            }
            self.event(
                &cur,
                "Completed",
                "Completed reconcile successfully",
                "Normal",
                SOURCE,
            );
            self.set_phase(&r, &cur, "Completed");
            return;
        }
    }

    /// The v2 operator: the workloads, then `Ready` once they are rolled out.
    fn reconcile_v2(self: &Arc<Self>, r: ResourceType, o: Value) {
        // The v2 operator reads and writes its resource through v2, whose schema has its status.
        let r = self
            .cluster
            .resource_for_kind("apps.wandb.com/v2", "WeightsAndBiases")
            .unwrap_or(r);
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        self.add_finalizer(&r, meta_str(&o, "namespace"), meta_str(&o, "name"));
        let me = self.clone();
        tokio::spawn(async move {
            let (ns, name) = (meta_str(&o, "namespace"), meta_str(&o, "name"));
            let expected = me.install(&o, "wandb-operator");
            loop {
                let Ok(cur) = me.cluster.get(&r, ns, name) else {
                    return;
                };
                if cur["metadata"]["generation"].as_i64() != Some(gen) {
                    return;
                }
                let ready = expected
                    .iter()
                    .filter(|w| w.awaited())
                    .all(|w| me.rolled_out(ns, w));
                me.set_status(&r, &cur, v2_status(gen, ready));
                if ready {
                    return;
                }
                tokio::time::sleep(me.cfg().operator_delay / 3).await;
            }
        });
    }

    fn rolled_out(&self, ns: &str, w: &Expected) -> bool {
        let plural = plural(&w.kind);
        let Some(r) = rt(&self.cluster, group(&w.kind), "v1", plural) else {
            return false;
        };
        self.cluster.get(&r, ns, &w.name).is_ok_and(|o| {
            let st = &o["status"];
            match plural {
                "daemonsets" => {
                    st["numberReady"].as_i64() == st["desiredNumberScheduled"].as_i64()
                        && st["numberReady"].as_i64().unwrap_or(0) > 0
                }
                _ => st["readyReplicas"].as_i64() == o["spec"]["replicas"].as_i64(),
            }
        })
    }

    /// Deletion: uninstall the release, then let the resource go.
    fn uninstall(self: &Arc<Self>, r: ResourceType, o: &Value) {
        let has_fin = o["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == WANDB_FINALIZER));
        if !has_fin
            || !self
                .finalizing
                .lock()
                .map(|mut s| s.insert(format!("wandb-delete/{}", meta_str(o, "uid"))))
                .unwrap_or(false)
        {
            return;
        }
        let me = self.clone();
        let o = o.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.cfg().operator_delay / 2).await;
            let (ns, name) = (meta_str(&o, "namespace"), meta_str(&o, "name"));
            me.prune(ns, name, &[]);
            me.forget_release(ns, name);
            if let Ok(mut a) = me.active.lock() {
                a.remove(meta_str(&o, "uid"));
            }
            let Ok(cur) = me.cluster.get(&r, ns, name) else {
                return;
            };
            let mut body = cur.clone();
            let rest: Vec<Value> = cur["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != WANDB_FINALIZER)
                .collect();
            body["metadata"]["finalizers"] = Value::Array(rest);
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let _ = me
                .cluster
                .update(&r, ns, name, body, false, "wandb-operator");
        });
    }

    /// Installs (or upgrades) the release: the chart's workloads for the resource's values;
    /// what the release had that these values no longer make goes. Returns what it made.
    fn install(&self, owner: &Value, managed_by: &str) -> Vec<Expected> {
        let ns = meta_str(owner, "namespace");
        let release = meta_str(owner, "name");
        let values = &owner["spec"]["values"];
        let expected: Vec<Expected> = operator_wandb()
            .workloads(release, values)
            // Upgrade-only hooks do not run on install; template-conditional objects cannot be
            // told from the values.
            .filter(|w| !w.conditional && w.hook.as_deref().is_none_or(|h| h.contains("install")))
            .collect();
        let accounts = accounts(release, values, &expected);
        let mut objects: Vec<Value> = accounts
            .iter()
            .map(|(name, component)| self.create_account(owner, name, component, managed_by))
            .collect();
        objects.extend(expected.iter().map(|w| {
            let sa = accounts.iter().find(|(_, c)| *c == w.component);
            self.create_workload(owner, w, managed_by, sa.map(|(n, _)| n.as_str()))
        }));
        let mut keep: Vec<String> = expected.iter().map(|w| w.name.clone()).collect();
        keep.extend(accounts.iter().map(|(n, _)| n.clone()));
        self.prune(ns, release, &keep);
        if managed_by == "Helm" {
            let version = owner["spec"]["chart"]["version"].as_str();
            self.record_release(ns, release, values, version, &objects);
        }
        expected
    }

    /// Applies a W&B service's ServiceAccount, with the annotations the values give it
    /// (`<alias>.serviceAccount.annotations`: an IAM role for IRSA); returns it as rendered.
    fn create_account(
        &self,
        owner: &Value,
        name: &str,
        component: &str,
        managed_by: &str,
    ) -> Value {
        let ns = meta_str(owner, "namespace");
        let annotations =
            owner["spec"]["values"][component]["serviceAccount"]["annotations"].clone();
        let body = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": name, "namespace": ns,
            "labels": {"app.kubernetes.io/instance": meta_str(owner, "name"), "app.kubernetes.io/managed-by": managed_by},
            "annotations": if annotations.is_object() { annotations } else { json!({}) },
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": "WeightsAndBiases", "name": meta_str(owner, "name"), "uid": meta_str(owner, "uid"), "controller": true}]}});
        if let Some(r) = rt(&self.cluster, "", "v1", "serviceaccounts") {
            self.apply_as(&r, ns, name, body.clone(), "wandb-operator");
        }
        body
    }

    /// Applies one workload (running as `account`, when its service has one); returns it as
    /// rendered.
    fn create_workload(
        &self,
        owner: &Value,
        w: &Expected,
        managed_by: &str,
        account: Option<&str>,
    ) -> Value {
        let mut body = workload_object(owner, w, managed_by);
        if let Some(sa) = account {
            let template = match w.kind.as_str() {
                "CronJob" => &mut body["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                _ => &mut body["spec"]["template"]["spec"],
            };
            template["serviceAccountName"] = json!(sa);
        }
        let plural = plural(&w.kind);
        let Some(r) = rt(&self.cluster, group(&w.kind), "v1", plural) else {
            return body;
        };
        let ns = meta_str(owner, "namespace");
        self.apply_as(&r, ns, &w.name, body.clone(), "wandb-operator");
        body
    }

    /// Deletes the release's workloads and ServiceAccounts not in `keep`.
    fn prune(&self, ns: &str, release: &str, keep: &[String]) {
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "Job",
            "CronJob",
            "ServiceAccount",
        ] {
            let plural = plural(kind);
            let Some(r) = rt(&self.cluster, group(kind), "v1", plural) else {
                continue;
            };
            for o in self.cluster.all(group(kind), plural) {
                let l = &o["metadata"]["labels"];
                if meta_str(&o, "namespace") == ns
                    && l["app.kubernetes.io/instance"] == release
                    && (l["app.kubernetes.io/managed-by"] == "Helm"
                        || l["app.kubernetes.io/managed-by"] == "wandb-operator")
                    && !keep.iter().any(|k| k == meta_str(&o, "name"))
                {
                    let _ = self.cluster.delete(&r, ns, meta_str(&o, "name"));
                }
            }
        }
    }
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        "Job" => "jobs",
        "CronJob" => "cronjobs",
        "ServiceAccount" => "serviceaccounts",
        _ => "deployments",
    }
}

fn group(kind: &str) -> &'static str {
    match kind {
        "Job" | "CronJob" => "batch",
        "ServiceAccount" => "",
        _ => "apps",
    }
}

/// The ServiceAccounts of the W&B services these workloads belong to, by the chart's naming
/// (`Component::service_account`), each with its component.
fn accounts(release: &str, values: &Value, expected: &[Expected]) -> Vec<(String, String)> {
    let chart = operator_wandb();
    let mut out: Vec<(String, String)> = Vec::new();
    for w in expected {
        let Some(c) = chart.component(&w.component) else {
            continue;
        };
        if let Some(sa) = c.service_account(release, values) {
            if !out.iter().any(|(n, _)| *n == sa) {
                out.push((sa, w.component.clone()));
            }
        }
    }
    out
}

/// The v2 operator's status shape.
fn v2_status(gen: i64, ready: bool) -> Value {
    let now = crate::util::rfc3339(crate::util::now_secs());
    let (status, reason, message) = if ready {
        ("True", "Reconciled", "all components are ready")
    } else {
        ("False", "Reconciling", "waiting for components")
    };
    json!({"ready": ready, "observedGeneration": gen, "conditions": [
        {"type": "Ready", "status": status, "reason": reason, "message": message, "observedGeneration": gen, "lastTransitionTime": now}]})
}

/// A workload as the chart renders it: its name, labels, selector and containers from the chart
/// table; the owner reference the operator adds.
fn workload_object(owner: &Value, w: &Expected, managed_by: &str) -> Value {
    let ns = meta_str(owner, "namespace");
    let mut labels = json!(w.labels);
    labels["app.kubernetes.io/managed-by"] = managed_by.into();
    let selector = if w.selector.is_empty() {
        json!({"app.kubernetes.io/instance": meta_str(owner, "name"), "app.kubernetes.io/name": w.component})
    } else {
        json!(w.selector)
    };
    let mut pod_labels = labels.clone();
    if let (Some(p), Some(s)) = (pod_labels.as_object_mut(), selector.as_object()) {
        p.extend(s.clone());
    }
    // The chart's containers (sidecars included), or one named after the component.
    let containers: Vec<Value> = if w.containers.is_empty() {
        vec![json!({"name": w.component, "image": format!("wandb/{}:emulated", w.component)})]
    } else {
        w.containers
            .iter()
            .map(|c| json!({"name": c.name, "image": c.image}))
            .collect()
    };
    let pod = json!({"metadata": {"labels": pod_labels}, "spec": {"containers": containers}});
    let meta = json!({"name": w.name, "namespace": ns, "labels": labels,
        "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": "WeightsAndBiases", "name": meta_str(owner, "name"), "uid": meta_str(owner, "uid"), "controller": true}]});
    let spec = match w.kind.as_str() {
        "Job" => {
            json!({"backoffLimit": 0, "template": {"metadata": pod["metadata"], "spec": {"restartPolicy": "Never", "containers": pod["spec"]["containers"]}}})
        }
        "CronJob" => {
            json!({"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"metadata": pod["metadata"], "spec": {"restartPolicy": "Never", "containers": pod["spec"]["containers"]}}}}})
        }
        "DaemonSet" => json!({"selector": {"matchLabels": selector}, "template": pod}),
        "StatefulSet" => {
            json!({"replicas": w.replicas, "serviceName": w.name, "selector": {"matchLabels": selector}, "template": pod})
        }
        _ => {
            json!({"replicas": w.replicas, "selector": {"matchLabels": selector}, "template": pod})
        }
    };
    let mut body = json!({"apiVersion": if group(&w.kind) == "batch" { "batch/v1" } else { "apps/v1" }, "kind": w.kind, "metadata": meta, "spec": spec});
    if let Some(h) = &w.hook {
        body["metadata"]["annotations"] = json!({"helm.sh/hook": h});
    }
    body
}
