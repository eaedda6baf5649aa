//! Simulated controllers: namespace and CRD finalization, workload readiness, a W&B operator
//! stand-in and an Altinity ClickHouse operator stand-in. Each acts on committed changes and
//! takes its configured delay, so readiness takes realistic time.

use crate::cluster::{Change, ChangeKind, Cluster};
use crate::registry::ResourceType;
use crate::util::{now_secs, rfc3339};
use crate::Config;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The label that marks the W&B operator's Deployment; the stand-in acts while one is ready.
pub const OPERATOR_LABEL: (&str, &str) = ("app.kubernetes.io/name", "wandb-operator");
/// The finalizer the W&B operator puts on its resources.
pub const WANDB_FINALIZER: &str = "finalizer.app.wandb.com";
/// Annotation: milliseconds until a workload becomes ready (overrides the default delay).
pub const READY_AFTER_ANNOTATION: &str = "kube-emulator.wbstack.dev/ready-after-ms";
/// Annotation: `"true"` keeps a workload from ever becoming ready.
pub const NEVER_READY_ANNOTATION: &str = "kube-emulator.wbstack.dev/never-ready";

/// Components the W&B stand-in installs by default, and those that are StatefulSets.
const DEFAULT_ON: [&str; 6] = ["app", "api", "console", "frontend", "parquet", "weave"];
const OPTIONAL: [&str; 12] = [
    "executor",
    "filestream",
    "flat-run-fields-updater",
    "glue",
    "nginx",
    "weave-trace",
    "weave-trace-worker",
    "prometheus",
    "otel",
    "anaconda2",
    "bufstream",
    "settings-migration-job",
];
const STATEFUL: [&str; 4] = ["mysql", "redis", "clickhouse", "kafka"];

pub(crate) struct Controllers {
    cluster: Arc<Cluster>,
    config: Arc<RwLock<Config>>,
    scheduled: Mutex<HashSet<String>>,
    finalizing: Mutex<HashSet<String>>,
}

fn rt(c: &Cluster, g: &str, v: &str, p: &str) -> Option<ResourceType> {
    c.resource(g, v, p)
}

fn meta_str<'a>(o: &'a Value, k: &str) -> &'a str {
    o["metadata"][k].as_str().unwrap_or("")
}

impl Controllers {
    pub(crate) fn start(cluster: Arc<Cluster>, config: Arc<RwLock<Config>>) {
        let me = Arc::new(Controllers {
            cluster: cluster.clone(),
            config,
            scheduled: Mutex::new(HashSet::new()),
            finalizing: Mutex::new(HashSet::new()),
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

    fn cfg(&self) -> Config {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    fn resync(self: &Arc<Self>) {
        for (g, p) in [
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("", "namespaces"),
            ("apps.wandb.com", "weightsandbiases"),
            ("clickhouse.altinity.com", "clickhouseinstallations"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ] {
            for o in self.cluster.all(g, p) {
                // A restarted operator does not redo what it had finished for this generation.
                if p == "weightsandbiases"
                    && matches!(
                        o["status"]["phase"].as_str(),
                        Some("Completed") | Some("Invalid Config")
                    )
                {
                    let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
                    if let Ok(mut s) = self.scheduled.lock() {
                        s.insert(format!("wandb/{}/{gen}", meta_str(&o, "uid")));
                    }
                }
                if p == "clickhouseinstallations" && o["status"]["status"] == "Completed" {
                    let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
                    if let Ok(mut s) = self.scheduled.lock() {
                        s.insert(format!("chi/{}/{gen}", meta_str(&o, "uid")));
                    }
                }
                self.dispatch(g, p, &o, ChangeKind::Modified);
            }
        }
    }

    fn on_change(self: &Arc<Self>, c: &Change) {
        self.dispatch(&c.group, &c.plural, &c.object, c.kind);
        // A deletion inside a terminating namespace may let it finish.
        if c.kind == ChangeKind::Deleted && !c.namespace.is_empty() {
            if let Some(ns) = rt(&self.cluster, "", "v1", "namespaces")
                .and_then(|r| self.cluster.get(&r, "", &c.namespace).ok())
            {
                if !ns["metadata"]["deletionTimestamp"].is_null() {
                    self.finalize_namespace(&c.namespace);
                }
            }
        }
        // CR deletions may let a CRD finish.
        if c.kind == ChangeKind::Deleted {
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
        // The operator Deployment coming or going changes what the W&B stand-in does.
        if c.group == "apps" && c.plural == "deployments" && is_operator(&c.object) {
            for w in self.cluster.all("apps.wandb.com", "weightsandbiases") {
                self.wandb(&w);
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
            ("apps", "deployments") | ("apps", "statefulsets") => self.workload(p, o),
            ("apps.wandb.com", "weightsandbiases") => self.wandb(o),
            ("clickhouse.altinity.com", "clickhouseinstallations") => self.chi(o),
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
        let Some(r) = self
            .cluster
            .registry()
            .types()
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
        else {
            if let Some(c) = rt(
                &self.cluster,
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
            ) {
                self.cluster.purge(&c, "", &name);
            }
            return;
        };
        let objs = self.cluster.all(&group, &plural);
        for o in &objs {
            if o["metadata"]["deletionTimestamp"].is_null() {
                let _ = self
                    .cluster
                    .delete(&r, meta_str(o, "namespace"), meta_str(o, "name"));
            }
        }
        if self.cluster.all(&group, &plural).is_empty() {
            if let Some(c) = rt(
                &self.cluster,
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
            ) {
                self.cluster.purge(&c, "", &name);
            }
        }
    }

    fn set_status(&self, r: &ResourceType, o: &Value, status: Value) {
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

    /// Deployments and StatefulSets: observe the generation now, become ready after the delay.
    fn workload(self: &Arc<Self>, plural: &str, o: &Value) {
        if !o["metadata"]["deletionTimestamp"].is_null() {
            return;
        }
        let Some(r) = rt(&self.cluster, "apps", "v1", plural) else {
            return;
        };
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        let replicas = o["spec"]["replicas"].as_i64().unwrap_or(1);
        let st = &o["status"];
        if st["observedGeneration"].as_i64() != Some(gen) {
            // A new generation is observed and rolls out: the replicas that were ready stay
            // ready (and the conditions stay as they were) until the new ones replace them.
            let ready = st["readyReplicas"].as_i64().unwrap_or(0).min(replicas);
            let mut s = json!({"observedGeneration": gen, "replicas": replicas, "updatedReplicas": 0, "readyReplicas": ready, "availableReplicas": ready});
            if plural == "statefulsets" {
                s["currentReplicas"] = replicas.into();
            }
            if !st["conditions"].is_null() {
                s["conditions"] = st["conditions"].clone();
            }
            self.set_status(&r, o, s);
            return;
        }
        if st["readyReplicas"].as_i64().unwrap_or(0) == replicas
            && st["availableReplicas"].as_i64().unwrap_or(0) == replicas
            && st["updatedReplicas"].as_i64().unwrap_or(0) == replicas
        {
            return;
        }
        if self.never_ready(o) {
            return;
        }
        let key = format!("{}/{gen}", meta_str(o, "uid"));
        if !self
            .scheduled
            .lock()
            .map(|mut s| s.insert(key))
            .unwrap_or(false)
        {
            return;
        }
        let delay = o["metadata"]["annotations"][READY_AFTER_ANNOTATION]
            .as_str()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(self.cfg().workload_delay);
        let me = self.clone();
        let (ns, name) = (
            meta_str(o, "namespace").to_owned(),
            meta_str(o, "name").to_owned(),
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
            let replicas = cur["spec"]["replicas"].as_i64().unwrap_or(1);
            let mut s = json!({"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
            if r.plural == "statefulsets" {
                s["currentReplicas"] = replicas.into();
            } else {
                let now = rfc3339(now_secs());
                s["conditions"] = json!([
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now, "lastTransitionTime": now}
                ]);
            }
            me.set_status(&r, &cur, s);
        });
    }

    fn never_ready(&self, o: &Value) -> bool {
        o["metadata"]["annotations"][NEVER_READY_ANNOTATION] == "true"
            || self
                .cfg()
                .never_ready
                .iter()
                .any(|n| n == meta_str(o, "name"))
    }

    fn operator_active(&self) -> bool {
        self.cluster.all("apps", "deployments").iter().any(|d| {
            is_operator(d)
                && d["status"]["readyReplicas"].as_i64().unwrap_or(0) >= 1
                && d["metadata"]["deletionTimestamp"].is_null()
        })
    }

    fn event(&self, obj: &Value, reason: &str, message: &str, kind: &str) {
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
            "source": {"component": "wandb-operator"}
        });
        let _ = self
            .cluster
            .create(&r, Some(ns), ev, "kube-emulator-controller");
    }

    /// The W&B operator stand-in.
    fn wandb(self: &Arc<Self>, o: &Value) {
        let Some(r) = self
            .cluster
            .resource_for_kind(o["apiVersion"].as_str().unwrap_or(""), "WeightsAndBiases")
        else {
            return;
        };
        if !self.operator_active() {
            return;
        }
        let ns = meta_str(o, "namespace").to_owned();
        let name = meta_str(o, "name").to_owned();
        let finalizers: Vec<Value> = o["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has_fin = finalizers.iter().any(|f| f == WANDB_FINALIZER);
        if !o["metadata"]["deletionTimestamp"].is_null() {
            let key = format!("wandb-delete/{}", meta_str(o, "uid"));
            if !self
                .finalizing
                .lock()
                .map(|mut s| s.insert(key))
                .unwrap_or(false)
            {
                return;
            }
            let me = self.clone();
            let o = o.clone();
            tokio::spawn(async move {
                tokio::time::sleep(me.cfg().operator_delay / 2).await;
                me.remove_release(&ns, &name, &[]);
                let mut body = o.clone();
                let rest: Vec<Value> = finalizers
                    .into_iter()
                    .filter(|f| f != WANDB_FINALIZER)
                    .collect();
                body["metadata"]["finalizers"] = Value::Array(rest);
                if let Some(m) = body["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                let _ = me
                    .cluster
                    .update(&r, &ns, &name, body, false, "wandb-operator");
            });
            return;
        }
        if !has_fin {
            let mut body = o.clone();
            let mut f = finalizers.clone();
            f.push(WANDB_FINALIZER.into());
            body["metadata"]["finalizers"] = Value::Array(f);
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let _ = self
                .cluster
                .update(&r, &ns, &name, body, false, "wandb-operator");
            return; // the update comes back as a change
        }
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        let key = format!("wandb/{}/{gen}", meta_str(o, "uid"));
        if !self
            .scheduled
            .lock()
            .map(|mut s| s.insert(key))
            .unwrap_or(false)
        {
            return;
        }
        let mut status = o["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["phase"] = "Loading".into();
        self.set_status(&r, o, status);
        let me = self.clone();
        tokio::spawn(async move {
            let delay = me.cfg().operator_delay;
            tokio::time::sleep(delay / 3).await;
            let Ok(cur) = me.cluster.get(&r, &ns, &name) else {
                return;
            };
            if cur["metadata"]["generation"].as_i64() != Some(gen) {
                return;
            }
            let values = &cur["spec"]["values"];
            match wandb_components(values) {
                Err(why) => {
                    let mut s = cur["status"].clone();
                    s["phase"] = "Invalid Config".into();
                    me.set_status(&r, &cur, s);
                    me.event(&cur, "InvalidConfig", &why, "Warning");
                }
                Ok(components) => {
                    let mut s = cur["status"].clone();
                    s["phase"] = "Applying".into();
                    me.set_status(&r, &cur, s);
                    let keep: Vec<String> = components
                        .iter()
                        .map(|(c, _, _)| format!("{name}-{c}"))
                        .collect();
                    for (c, stateful, replicas) in &components {
                        me.install_component(&cur, c, *stateful, *replicas);
                    }
                    me.remove_release(&ns, &name, &keep);
                    tokio::time::sleep(delay / 3).await;
                    let Ok(cur) = me.cluster.get(&r, &ns, &name) else {
                        return;
                    };
                    if cur["metadata"]["generation"].as_i64() != Some(gen) {
                        return;
                    }
                    let mut s = cur["status"].clone();
                    s["phase"] = "Completed".into();
                    me.set_status(&r, &cur, s);
                }
            }
        });
    }

    fn install_component(&self, owner: &Value, component: &str, stateful: bool, replicas: i64) {
        let plural = if stateful {
            "statefulsets"
        } else {
            "deployments"
        };
        let Some(r) = rt(&self.cluster, "apps", "v1", plural) else {
            return;
        };
        let ns = meta_str(owner, "namespace");
        let instance = meta_str(owner, "name");
        let name = format!("{instance}-{component}");
        let labels = json!({"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": instance, "app.kubernetes.io/name": component});
        let mut spec = json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": instance, "app.kubernetes.io/name": component}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": component, "image": format!("wandb/{component}:emulated")}]}}
        });
        if stateful {
            spec["serviceName"] = name.clone().into();
        }
        let body = json!({
            "apiVersion": "apps/v1",
            "kind": if stateful { "StatefulSet" } else { "Deployment" },
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": "WeightsAndBiases", "name": instance, "uid": meta_str(owner, "uid"), "controller": true}]},
            "spec": spec
        });
        let _ = self.cluster.patch(
            &r,
            ns,
            &name,
            crate::cluster::PatchKind::Apply,
            body,
            false,
            "wandb-operator",
            true,
        );
    }

    fn remove_release(&self, ns: &str, instance: &str, keep: &[String]) {
        for plural in ["deployments", "statefulsets"] {
            let Some(r) = rt(&self.cluster, "apps", "v1", plural) else {
                continue;
            };
            for o in self.cluster.all("apps", plural) {
                let l = &o["metadata"]["labels"];
                if meta_str(&o, "namespace") == ns
                    && l["app.kubernetes.io/instance"] == instance
                    && l["app.kubernetes.io/managed-by"] == "Helm"
                    && !keep.iter().any(|k| k == meta_str(&o, "name"))
                {
                    let _ = self.cluster.delete(&r, ns, meta_str(&o, "name"));
                }
            }
        }
    }

    /// The Altinity operator stand-in for ClickHouseInstallation.
    fn chi(self: &Arc<Self>, o: &Value) {
        let Some(r) = self.cluster.resource_for_kind(
            o["apiVersion"].as_str().unwrap_or(""),
            "ClickHouseInstallation",
        ) else {
            return;
        };
        if !o["metadata"]["deletionTimestamp"].is_null() {
            return;
        }
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        let key = format!("chi/{}/{gen}", meta_str(o, "uid"));
        if !self
            .scheduled
            .lock()
            .map(|mut s| s.insert(key))
            .unwrap_or(false)
        {
            return;
        }
        let ns = meta_str(o, "namespace").to_owned();
        let name = meta_str(o, "name").to_owned();
        let cluster0 = &o["spec"]["configuration"]["clusters"][0];
        let cname = cluster0["name"].as_str().unwrap_or("cluster").to_owned();
        let shards = cluster0["layout"]["shardsCount"]
            .as_i64()
            .unwrap_or(1)
            .max(1);
        let replicas = cluster0["layout"]["replicasCount"]
            .as_i64()
            .unwrap_or(1)
            .max(1);
        let hosts = shards * replicas;
        let fqdns: Vec<String> = (0..shards)
            .flat_map(|s| (0..replicas).map(move |rep| (s, rep)))
            .map(|(s, rep)| format!("chi-{name}-{cname}-{s}-{rep}.{ns}.svc.cluster.local"))
            .collect();
        self.set_status(&r, o, json!({"status": "InProgress", "hosts": hosts, "hostsCompleted": 0, "shards": shards, "replicas": replicas, "observedGeneration": gen}));
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.cfg().clickhouse_delay).await;
            let Ok(cur) = me.cluster.get(&r, &ns, &name) else {
                return;
            };
            if cur["metadata"]["generation"].as_i64() != Some(gen) {
                return;
            }
            me.set_status(&r, &cur, json!({
                "status": "Completed", "hosts": hosts, "hostsCompleted": hosts, "hostsFailed": 0,
                "shards": shards, "replicas": replicas, "observedGeneration": gen,
                "endpoint": format!("clickhouse-{name}.{ns}.svc.cluster.local"),
                "fqdns": fqdns,
            }));
        });
    }
}

fn is_operator(d: &Value) -> bool {
    d["metadata"]["labels"][OPERATOR_LABEL.0] == OPERATOR_LABEL.1
}

/// The workloads a WeightsAndBiases's values install: (component, is StatefulSet, replicas).
/// An error says why the configuration is invalid.
pub fn wandb_components(values: &Value) -> Result<Vec<(String, bool, i64)>, String> {
    if !values.is_object() {
        return Err("spec.values must be an object".into());
    }
    let host = values["global"]["host"].as_str().unwrap_or("");
    if !(host.starts_with("https://") || host.starts_with("http://")) {
        return Err(format!("global.host must be an http(s) URL, got {host:?}"));
    }
    for (store, key) in [("mysql", "host"), ("redis", "host")] {
        let install = values[store]["install"].as_bool().unwrap_or(true);
        if !install
            && values["global"][store][key]
                .as_str()
                .unwrap_or("")
                .is_empty()
        {
            return Err(format!(
                "{store}.install is false but global.{store}.{key} is not set"
            ));
        }
    }
    let mut out = Vec::new();
    let enabled = |c: &str, default: bool| {
        let v = &values[c];
        v["install"]
            .as_bool()
            .or_else(|| v["enabled"].as_bool())
            .unwrap_or(default)
    };
    let replicas = |c: &str| -> Result<i64, String> {
        match &values[c]["replicaCount"] {
            Value::Null => Ok(1),
            v => v
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{c}.replicaCount must be a non-negative integer, got {v}")),
        }
    };
    for c in DEFAULT_ON {
        if enabled(c, true) {
            out.push((c.to_owned(), false, replicas(c)?));
        }
    }
    for c in OPTIONAL {
        if enabled(c, false) {
            out.push((c.to_owned(), false, replicas(c)?));
        }
    }
    for c in STATEFUL {
        let default = c == "mysql" || c == "redis";
        if enabled(c, default) {
            out.push((c.to_owned(), true, replicas(c)?));
        }
    }
    Ok(out)
}
