//! Every Secret and key the `WeightsAndBiases` resource names in its values, and every one its
//! workloads' containers read (`secretKeyRef`, `envFrom`), exists and is not empty. Read from
//! the live resource and workloads, as the pods see them.

use crate::run::Probe;
use crate::verdict::Finding;
use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use wbstack_k8s::Kube;

const NAME: &str = "references";

/// The probe for one resource.
pub struct References {
    pub kube: Kube,
    pub namespace: String,
    pub resource: String,
}

/// A Secret key someone reads, and who.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    secret: String,
    /// `None`: the whole Secret (`envFrom`).
    key: Option<String>,
}

const KEY_FIELDS: [&str; 5] = [
    "key",
    "passwordKey",
    "secretKey",
    "accessKeyName",
    "secretKeyName",
];

/// The references in the resource's values: an object under a key that names a secret, with a
/// Secret's name and one or more of its keys.
fn in_values(v: &Value, at: &str, out: &mut BTreeMap<Reference, String>) {
    let Some(o) = v.as_object() else {
        return;
    };
    let name = o
        .get("name")
        .or_else(|| o.get("secretName"))
        .and_then(Value::as_str);
    let leaf = at.rsplit('.').next().unwrap_or("");
    if let Some(secret) = name.filter(|_| leaf.to_ascii_lowercase().contains("secret")) {
        for k in KEY_FIELDS {
            if let Some(key) = o.get(k).and_then(Value::as_str) {
                let r = Reference {
                    secret: secret.to_owned(),
                    key: Some(key.to_owned()),
                };
                out.entry(r).or_insert_with(|| at.to_owned());
            }
        }
    }
    for (k, child) in o {
        in_values(child, &format!("{at}.{k}"), out);
    }
}

/// The references in a workload's pod template.
fn in_workload(w: &Value, out: &mut BTreeMap<Reference, String>) {
    let who = format!(
        "{} {}",
        w["kind"].as_str().unwrap_or("workload"),
        w["metadata"]["name"].as_str().unwrap_or("")
    );
    let spec = &w["spec"]["template"]["spec"];
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|c| spec[*c].as_array())
        .flatten();
    for c in containers {
        for e in c["env"].as_array().into_iter().flatten() {
            let r = &e["valueFrom"]["secretKeyRef"];
            if let (Some(s), Some(k)) = (r["name"].as_str(), r["key"].as_str()) {
                if r["optional"] != true {
                    let key = Some(k.to_owned());
                    out.entry(Reference {
                        secret: s.into(),
                        key,
                    })
                    .or_insert_with(|| who.clone());
                }
            }
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            let r = &e["secretRef"];
            if let Some(s) = r["name"].as_str().filter(|_| r["optional"] != true) {
                let key = None;
                out.entry(Reference {
                    secret: s.into(),
                    key,
                })
                .or_insert_with(|| who.clone());
            }
        }
    }
}

impl References {
    async fn collect(&self) -> Result<BTreeMap<Reference, String>, String> {
        let (ns, name) = (&self.namespace, &self.resource);
        let cr = self
            .kube
            .get("apps.wandb.com/v1", "WeightsAndBiases", Some(ns), name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("WeightsAndBiases {ns}/{name} does not exist"))?;
        let mut out = BTreeMap::new();
        in_values(&cr["spec"]["values"], "values", &mut out);
        let selector = format!("app.kubernetes.io/instance={name}");
        for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
            let ws = self
                .kube
                .list("apps/v1", kind, Some(ns), &selector)
                .await
                .map_err(|e| e.to_string())?;
            for w in &ws {
                in_workload(w, &mut out);
            }
        }
        Ok(out)
    }

    async fn check(&self, r: &Reference, by: &str) -> Finding {
        let ns = &self.namespace;
        let checked = match &r.key {
            Some(k) => format!("Secret {ns}/{} key {k} (read by {by})", r.secret),
            None => format!("Secret {ns}/{} (read whole by {by})", r.secret),
        };
        let todo = "run `wbstack up` to write it again, or restore it from where it came";
        let live = match self.kube.get("v1", "Secret", Some(ns), &r.secret).await {
            Ok(Some(s)) => s,
            Ok(None) => return Finding::fail(NAME, checked, "the Secret does not exist", todo),
            Err(e) => {
                return Finding::fail(NAME, checked, e.to_string(), "check access to the Secret")
            }
        };
        let Some(key) = &r.key else {
            return Finding::pass(NAME, checked, "present");
        };
        let value = live["data"][key]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        match value {
            None => Finding::fail(NAME, checked, format!("no key {key}"), todo),
            Some(v) if v.is_empty() => Finding::fail(NAME, checked, "the value is empty", todo),
            Some(_) => Finding::pass(NAME, checked, "present, not empty"),
        }
    }
}

#[async_trait]
impl Probe for References {
    fn name(&self) -> &str {
        NAME
    }
    fn checks(&self) -> String {
        format!(
            "the Secrets WeightsAndBiases {}/{} and its workloads read",
            self.namespace, self.resource
        )
    }
    async fn run(&self) -> Vec<Finding> {
        let refs = match self.collect().await {
            Ok(r) => r,
            Err(seen) => {
                let todo = "check that the environment is up (`wbstack status`)";
                return vec![Finding::fail(NAME, self.checks(), seen, todo)];
            }
        };
        let checks = refs.iter().map(|(r, by)| self.check(r, by));
        futures::future::join_all(checks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_found_in_the_values_and_the_pod_templates() {
        let values = json!({"global": {
            "licenseSecret": {"name": "lic", "key": "license"},
            "mysql": {"host": "db", "passwordSecret": {"name": "db", "passwordKey": "PW"}},
            "redis": {"secret": {"secretName": "redis", "secretKey": "PW"}},
            "bucket": {"secret": {"secretName": "keys", "accessKeyName": "A", "secretKeyName": "S"}},
            "image": {"name": "x", "key": "y"}
        }});
        let mut out = BTreeMap::new();
        in_values(&values, "values", &mut out);
        let found: Vec<String> = out
            .iter()
            .map(|(r, at)| format!("{}/{}@{at}", r.secret, r.key.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            found,
            [
                "db/PW@values.global.mysql.passwordSecret",
                "keys/A@values.global.bucket.secret",
                "keys/S@values.global.bucket.secret",
                "lic/license@values.global.licenseSecret",
                "redis/PW@values.global.redis.secret",
            ]
        );
        let w = json!({"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"template": {"spec": {"containers": [
            {"env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k", "optional": true}}}
            ], "envFrom": [{"secretRef": {"name": "s3"}}]}
        ]}}}});
        let mut out = BTreeMap::new();
        in_workload(&w, &mut out);
        let found: Vec<(&str, Option<&str>)> = out
            .keys()
            .map(|r| (r.secret.as_str(), r.key.as_deref()))
            .collect();
        assert_eq!(found, [("s1", Some("k")), ("s3", None)]);
    }
}
