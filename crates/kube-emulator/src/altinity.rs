//! The Altinity ClickHouse operator stand-in. It acts only while an operator Deployment (labelled
//! `app=clickhouse-operator`, as the install bundle and the Helm chart label it) is ready: then
//! every change of a `ClickHouseInstallation` or `ClickHouseKeeperInstallation` runs as a task
//! (its `spec.taskID`, or a generated one), `InProgress` then `Completed`, with the status fields
//! the real operator writes: hosts, `taskID`, `taskIDsStarted`, `taskIDsCompleted`, `fqdns`,
//! `endpoint`; and, as there, no `observedGeneration`. An installation carries the operator's
//! finalizer, which the operator removes when it is deleted: with no operator, it stays.

use crate::controllers::{meta_str, Controllers};
use serde_json::{json, Value};
use std::sync::Arc;

fn list_with(st: &Value, key: &str, task: &str) -> Value {
    let mut v: Vec<Value> = st[key].as_array().cloned().unwrap_or_default();
    if !v.iter().any(|t| t == task) {
        v.push(task.into());
    }
    Value::Array(v)
}

/// The finalizer the operator puts on a ClickHouseInstallation.
const FINALIZER: &str = "finalizer.clickhouseinstallation.altinity.com";

/// Whether a Deployment runs the Altinity operator.
pub(crate) fn is_altinity_operator(d: &Value) -> bool {
    d["metadata"]["labels"]["app"] == "clickhouse-operator"
}

impl Controllers {
    fn altinity_active(&self) -> bool {
        self.cluster.all("apps", "deployments").iter().any(|d| {
            is_altinity_operator(d)
                && d["status"]["readyReplicas"].as_i64().unwrap_or(0) >= 1
                && d["metadata"]["deletionTimestamp"].is_null()
        })
    }

    /// Every installation again (the operator came up).
    pub(crate) fn altinity_resync(self: &Arc<Self>) {
        for (g, p) in INSTALLATIONS {
            for o in self.cluster.all(g, p) {
                self.chi(&o);
            }
        }
    }

    pub(crate) fn chi(self: &Arc<Self>, o: &Value) {
        let kind = o["kind"].as_str().unwrap_or("ClickHouseInstallation");
        let Some(r) = self
            .cluster
            .resource_for_kind(o["apiVersion"].as_str().unwrap_or(""), kind)
        else {
            return;
        };
        if !self.altinity_active() {
            return;
        }
        let chi = kind == "ClickHouseInstallation";
        if !o["metadata"]["deletionTimestamp"].is_null() {
            if chi {
                self.set_finalizer(&r, o, false);
            }
            return;
        }
        if chi && !has_finalizer(o) {
            // The change that adds it comes back here.
            return self.set_finalizer(&r, o, true);
        }
        let gen = o["metadata"]["generation"].as_i64().unwrap_or(1);
        if !self.once(format!("{}/{}/{gen}", r.plural, meta_str(o, "uid"))) {
            return;
        }
        let (ns, name) = (
            meta_str(o, "namespace").to_owned(),
            meta_str(o, "name").to_owned(),
        );
        let task = o["spec"]["taskID"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("auto-{}", &crate::util::uuid()[..8]));
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
        let mut st = o["status"].clone();
        if !st.is_object() {
            st = json!({});
        }
        st["status"] = "InProgress".into();
        st["taskID"] = task.clone().into();
        st["taskIDsStarted"] = list_with(&st, "taskIDsStarted", &task);
        st["hosts"] = hosts.into();
        st["shards"] = shards.into();
        st["replicas"] = replicas.into();
        st["hostsCompleted"] = 0.into();
        self.set_status(&r, o, st);
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.cfg().clickhouse_delay).await;
            let Ok(cur) = me.cluster.get(&r, &ns, &name) else {
                return;
            };
            if cur["metadata"]["generation"].as_i64() != Some(gen) {
                return;
            }
            let mut st = cur["status"].clone();
            st["status"] = "Completed".into();
            st["taskIDsCompleted"] = list_with(&st, "taskIDsCompleted", &task);
            st["hostsCompleted"] = hosts.into();
            st["hostsUpdated"] = hosts.into();
            st["fqdns"] = json!(fqdns);
            st["endpoint"] = format!("clickhouse-{name}.{ns}.svc.cluster.local").into();
            me.set_status(&r, &cur, st);
        });
    }
}

/// The resources the operator acts on: (group, plural).
pub(crate) const INSTALLATIONS: [(&str, &str); 2] = [
    ("clickhouse.altinity.com", "clickhouseinstallations"),
    (
        "clickhouse-keeper.altinity.com",
        "clickhousekeeperinstallations",
    ),
];

fn has_finalizer(o: &Value) -> bool {
    o["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

impl Controllers {
    /// Adds (`on`) or removes the operator's finalizer.
    fn set_finalizer(&self, r: &crate::registry::ResourceType, o: &Value, on: bool) {
        if has_finalizer(o) == on {
            return;
        }
        let (ns, name) = (meta_str(o, "namespace"), meta_str(o, "name"));
        let Ok(mut body) = self.cluster.get(r, ns, name) else {
            return;
        };
        let mut fins: Vec<Value> = body["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        fins.retain(|f| f != FINALIZER);
        if on {
            fins.push(FINALIZER.into());
        }
        body["metadata"]["finalizers"] = Value::Array(fins);
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let _ = self
            .cluster
            .update(r, ns, name, body, false, "clickhouse-operator");
    }
}
