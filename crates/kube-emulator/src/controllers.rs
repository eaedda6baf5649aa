//! Simulated controllers: namespace and CRD finalization, workloads and their pods
//! (`workloads.rs`), a W&B operator stand-in (`wandb_operator.rs`) and an Altinity ClickHouse
//! operator stand-in (`altinity.rs`). Each acts on committed changes and takes its configured
//! delay, so readiness takes realistic time.

use crate::cluster::{Change, ChangeKind, Cluster};
use crate::registry::ResourceType;
use crate::util::{now_secs, rfc3339};
use crate::Config;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

/// The label that marks wbstack's W&B operator Deployment; the stand-in acts while an operator
/// Deployment is ready (this label, or an official install: `control-plane:
/// controller-manager` running `wandb/controller`).
pub const OPERATOR_LABEL: (&str, &str) = ("app.kubernetes.io/name", "wandb-operator");
/// The finalizer the W&B operator puts on its resources.
pub const WANDB_FINALIZER: &str = "finalizer.app.wandb.com";
/// Annotation: milliseconds until a workload becomes ready (overrides the default delay).
pub const READY_AFTER_ANNOTATION: &str = "kube-emulator.wbstack.dev/ready-after-ms";
/// Annotation: `"true"` keeps a workload from ever becoming ready.
pub const NEVER_READY_ANNOTATION: &str = "kube-emulator.wbstack.dev/never-ready";

pub(crate) struct Controllers {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) config: Arc<RwLock<Config>>,
    /// Work done once per object and generation (`kind/uid/generation`).
    pub(crate) scheduled: Mutex<HashSet<String>>,
    pub(crate) finalizing: Mutex<HashSet<String>>,
    /// The spec each W&B resource's release was last applied with (the operator's "active
    /// spec"), by uid.
    pub(crate) active: Mutex<HashMap<String, Value>>,
    /// What the pods run here printed.
    pub(crate) logs: crate::kubelet::Logs,
}

pub(crate) fn rt(c: &Cluster, g: &str, v: &str, p: &str) -> Option<ResourceType> {
    c.resource(g, v, p)
}

pub(crate) fn meta_str<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or("")
}

impl Controllers {
    pub(crate) fn start(
        cluster: Arc<Cluster>,
        config: Arc<RwLock<Config>>,
        logs: crate::kubelet::Logs,
    ) {
        let me = Arc::new(Controllers {
            cluster: cluster.clone(),
            config,
            scheduled: Mutex::new(HashSet::new()),
            finalizing: Mutex::new(HashSet::new()),
            active: Mutex::new(HashMap::new()),
            logs,
        });
        let mut rx = cluster.subscribe();
        // Reconcile what exists (a restored cluster), then follow changes.
        me.resync();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(c) => me.on_change(&c),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => me.resync(),
                    Err(_) => return,
                }
            }
        });
    }

    pub(crate) fn cfg(&self) -> Config {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Marks work as done; false if it already was.
    pub(crate) fn once(&self, key: String) -> bool {
        self.scheduled
            .lock()
            .map(|mut s| s.insert(key))
            .unwrap_or(false)
    }

    fn resync(self: &Arc<Self>) {
        for (g, p) in [
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("", "namespaces"),
            ("apps.wandb.com", "weightsandbiases"),
            ("clickhouse.altinity.com", "clickhouseinstallations"),
            (
                "clickhouse-keeper.altinity.com",
                "clickhousekeeperinstallations",
            ),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ] {
            for o in self.cluster.all(g, p) {
                self.restored(p, &o);
                self.dispatch(g, p, &o, ChangeKind::Modified);
            }
        }
    }

    /// A restarted operator does not redo what it had finished for a generation.
    fn restored(&self, plural: &str, o: &Value) {
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        let uid = meta_str(o, "uid");
        let done = match plural {
            "weightsandbiases" => {
                o["status"]["phase"] == "Completed" || o["status"]["ready"] == true
            }
            "clickhouseinstallations" | "clickhousekeeperinstallations" => {
                o["status"]["status"] == "Completed"
            }
            _ => false,
        };
        if done {
            self.once(format!("{plural}/{uid}/{gen}"));
            if plural == "weightsandbiases" {
                if let Ok(mut a) = self.active.lock() {
                    a.insert(uid.to_owned(), o["spec"].clone());
                }
            }
        }
    }

    fn on_change(self: &Arc<Self>, c: &Change) {
        self.dispatch(&c.group, &c.plural, &c.object, c.kind);
        if c.kind == ChangeKind::Deleted {
            self.deleted(c);
        }
        // The operator Deployment coming or going changes what the W&B stand-in does.
        if c.group == "apps" && c.plural == "deployments" && is_operator(&c.object) {
            for w in self.cluster.all("apps.wandb.com", "weightsandbiases") {
                self.wandb(&w);
            }
        }
        if c.group == "apps"
            && c.plural == "deployments"
            && crate::altinity::is_altinity_operator(&c.object)
        {
            self.altinity_resync();
        }
    }

    fn deleted(self: &Arc<Self>, c: &Change) {
        if c.group == "apps" || (c.group == "batch" && c.plural == "jobs") {
            self.delete_pods_of(&c.object);
        }
        // A deletion inside a terminating namespace may let it finish.
        if !c.namespace.is_empty() {
            if let Some(ns) = rt(&self.cluster, "", "v1", "namespaces")
                .and_then(|r| self.cluster.get(&r, "", &c.namespace).ok())
            {
                if !ns["metadata"]["deletionTimestamp"].is_null() {
                    self.finalize_namespace(&c.namespace);
                }
            }
        }
        // CR deletions may let a CRD finish.
        for crd in self
            .cluster
            .all("apiextensions.k8s.io", "customresourcedefinitions")
        {
            if !crd["metadata"]["deletionTimestamp"].is_null()
                && crd["spec"]["group"] == c.group.as_str()
                && crd["spec"]["names"]["plural"] == c.plural.as_str()
            {
                self.finalize_crd(&crd);
            }
        }
    }

    fn dispatch(self: &Arc<Self>, g: &str, p: &str, o: &Value, kind: ChangeKind) {
        if kind == ChangeKind::Deleted {
            return;
        }
        match (g, p) {
            ("", "namespaces") if !o["metadata"]["deletionTimestamp"].is_null() => {
                self.finalize_namespace(meta_str(o, "name"))
            }
            ("apiextensions.k8s.io", "customresourcedefinitions")
                if !o["metadata"]["deletionTimestamp"].is_null() =>
            {
                self.finalize_crd(o)
            }
            ("apps", "deployments") | ("apps", "statefulsets") | ("apps", "daemonsets") => {
                self.workload(p, o)
            }
            ("batch", "jobs") => self.job(o),
            ("apps.wandb.com", "weightsandbiases") => self.wandb(o),
            ("clickhouse.altinity.com", "clickhouseinstallations")
            | ("clickhouse-keeper.altinity.com", "clickhousekeeperinstallations") => self.chi(o),
            _ => {}
        }
    }

    fn finalize_namespace(self: &Arc<Self>, ns: &str) {
        let contents = self.cluster.in_namespace(ns);
        for (t, o) in &contents {
            if o["metadata"]["deletionTimestamp"].is_null() {
                let _ = self.cluster.delete(t, ns, meta_str(o, "name"));
            }
        }
        if self.cluster.in_namespace(ns).is_empty() {
            if let Some(r) = rt(&self.cluster, "", "v1", "namespaces") {
                self.cluster.purge(&r, "", ns);
            }
        }
    }

    fn finalize_crd(self: &Arc<Self>, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or("").to_owned();
        let plural = crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = meta_str(crd, "name").to_owned();
        let crds = rt(
            &self.cluster,
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
        );
        let Some(r) = self
            .cluster
            .registry()
            .types()
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
        else {
            if let Some(c) = crds {
                self.cluster.purge(&c, "", &name);
            }
            return;
        };
        for o in &self.cluster.all(&group, &plural) {
            if o["metadata"]["deletionTimestamp"].is_null() {
                let _ = self
                    .cluster
                    .delete(&r, meta_str(o, "namespace"), meta_str(o, "name"));
            }
        }
        if self.cluster.all(&group, &plural).is_empty() {
            if let Some(c) = crds {
                self.cluster.purge(&c, "", &name);
            }
        }
    }

    /// Writes an object's status.
    pub(crate) fn set_status(&self, r: &ResourceType, o: &Value, status: Value) {
        let mut body = o.clone();
        body["status"] = status;
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let _ = self.cluster.update(
            r,
            meta_str(o, "namespace"),
            meta_str(o, "name"),
            body,
            true,
            "kube-emulator-controller",
        );
    }

    /// Records an Event about an object, as a controller's event recorder does.
    pub(crate) fn event(&self, obj: &Value, reason: &str, message: &str, kind: &str, source: &str) {
        let Some(r) = rt(&self.cluster, "", "v1", "events") else {
            return;
        };
        let ns = meta_str(obj, "namespace");
        let now = rfc3339(now_secs());
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{}.", meta_str(obj, "name")), "namespace": ns},
            "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta_str(obj, "name"), "namespace": ns, "uid": meta_str(obj, "uid")},
            "reason": reason, "message": message, "type": kind,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": source}
        });
        let _ = self
            .cluster
            .create(&r, Some(ns), ev, "kube-emulator-controller");
    }
}

/// Whether a Deployment runs a W&B operator: wbstack's, or an official install.
pub(crate) fn is_operator(d: &Value) -> bool {
    let l = &d["metadata"]["labels"];
    if l[OPERATOR_LABEL.0] == OPERATOR_LABEL.1 {
        return true;
    }
    l["control-plane"] == "controller-manager"
        && d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["image"]
                        .as_str()
                        .is_some_and(|i| i.contains("wandb/controller"))
                })
            })
}
