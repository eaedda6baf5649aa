//! The Altinity ClickHouse operator stand-in: every change of a `ClickHouseInstallation` runs
//! as a task (its `spec.taskID`, or a generated one), `InProgress` then `Completed`, with the
//! status fields the real operator writes: hosts, `taskID`, `taskIDsStarted`,
//! `taskIDsCompleted`, `fqdns`, `endpoint`; and, as there, no `observedGeneration`.

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

impl Controllers {
    pub(crate) fn chi(self: &Arc<Self>, o: &Value) {
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
        if !self.once(format!(
            "clickhouseinstallations/{}/{gen}",
            meta_str(o, "uid")
        )) {
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
