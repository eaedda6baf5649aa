//! What a probe Job is told: the part of the resource's values the probes read (never a
//! password written into them) and, for each Secret key they read, the variable a
//! `secretKeyRef` puts it in. The order itself holds no secret; the pod gets the values from
//! the Secrets, as the W&B pods do.

use crate::select::Options;
use crate::wiring::{Source, Wiring};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The variable that carries the order into the probe pod.
pub const ORDER_VAR: &str = "WBSTACK_VERIFY_ORDER";

/// The sections of `global` the probes read.
const SECTIONS: [&str; 6] = [
    "host",
    "mysql",
    "redis",
    "clickhouse",
    "defaultBucket",
    "bucket",
];
/// Keys that may hold a secret written into the values themselves.
const PLAIN: [&str; 3] = ["password", "accessKey", "secretKey"];

/// The probe Job's instructions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub namespace: String,
    pub resource: String,
    /// What the probes read of the values, with no secret in it.
    pub values: Value,
    pub options: Options,
    /// Secret key (`name/key`) → the variable the pod reads it from.
    pub secrets: BTreeMap<String, String>,
    /// Plain passwords left out (`global.<store>.password`).
    pub withheld: Vec<String>,
    /// An AWS endpoint other than AWS's own (a local emulation), if any.
    pub aws_endpoint: Option<String>,
}

impl Order {
    /// The order for the resource as its values wire it.
    pub fn new(w: &Wiring, options: Options, aws_endpoint: Option<String>) -> Order {
        let mut global = serde_json::Map::new();
        let mut withheld = Vec::new();
        for s in SECTIONS {
            let mut v = w.values["global"][s].clone();
            if let Some(section) = v.as_object_mut() {
                for k in PLAIN {
                    if section.remove(k).is_some_and(|p| !p.is_null()) {
                        withheld.push(format!("global.{s}.{k}"));
                    }
                }
            }
            if !v.is_null() {
                global.insert(s.into(), v);
            }
        }
        let cluster = &w.values["weave-trace"]["env"]["WF_CLICKHOUSE_REPLICATED_CLUSTER"];
        let mut values = json!({"global": global});
        if !cluster.is_null() {
            values["weave-trace"] = json!({"env": {"WF_CLICKHOUSE_REPLICATED_CLUSTER": cluster}});
        }
        let secrets = w
            .secret_refs()
            .into_iter()
            .enumerate()
            .map(|(i, (name, key))| (format!("{name}/{key}"), format!("WBSTACK_SECRET_{i}")))
            .collect();
        Order {
            namespace: w.namespace.clone(),
            resource: w.resource.clone(),
            values,
            options,
            secrets,
            withheld,
            aws_endpoint,
        }
    }

    /// The probe container's environment: the order, and each Secret key by reference
    /// (optional, so a missing one is a finding rather than a pod that never starts).
    pub fn env(&self) -> Vec<k8s_openapi::api::core::v1::EnvVar> {
        use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
        let order = EnvVar {
            name: ORDER_VAR.into(),
            value: Some(serde_json::to_string(self).expect("an order is plain data")),
            ..Default::default()
        };
        let refs = self.secrets.iter().map(|(at, var)| {
            let (name, key) = at.split_once('/').unwrap_or((at, ""));
            EnvVar {
                name: var.clone(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: name.into(),
                        key: key.into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }
        });
        std::iter::once(order).chain(refs).collect()
    }

    /// The resource's wiring as the probe pod sees it.
    pub fn wiring(&self) -> Wiring {
        Wiring {
            namespace: self.namespace.clone(),
            resource: self.resource.clone(),
            values: self.values.clone(),
            source: Source::Env(self.secrets.clone()),
            withheld: self
                .withheld
                .iter()
                .filter(|w| w.ends_with(".password"))
                .cloned()
                .collect(),
        }
    }

    /// Reads the order from the probe pod's environment.
    pub fn from_env() -> Result<Order, String> {
        let raw = std::env::var(ORDER_VAR)
            .map_err(|_| format!("{ORDER_VAR} is not set: `verify --in-pod` runs inside the probe Job `verify` makes"))?;
        serde_json::from_str(&raw).map_err(|e| format!("{ORDER_VAR}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_names_secrets_by_reference_and_carries_no_password() {
        let w = crate::wiring::of_values(json!({"global": {
                "host": "https://wandb.example.com",
                "license": "a-license-value",
                "mysql": {"host": "db", "passwordSecret": {"name": "wbstack-mysql", "passwordKey": "MYSQL_PASSWORD"}},
                "redis": {"host": "r", "password": "plain-redis-password"},
                "bucket": {"secret": {"secretName": "keys", "accessKeyName": "id", "secretKeyName": "sk"}}
            }, "weave-trace": {"env": {"WF_CLICKHOUSE_REPLICATED_CLUSTER": "c", "OTHER": "x"}}}));
        let o = Order::new(&w, Options::default(), None);
        let text = serde_json::to_string(&o).unwrap();
        assert!(!text.contains("a-license-value") && !text.contains("plain-redis-password"));
        assert_eq!(o.withheld, ["global.redis.password"]);
        assert_eq!(
            o.secrets.keys().collect::<Vec<_>>(),
            ["keys/id", "keys/sk", "wbstack-mysql/MYSQL_PASSWORD"]
        );
        assert_eq!(
            o.values["weave-trace"]["env"],
            json!({"WF_CLICKHOUSE_REPLICATED_CLUSTER": "c"})
        );
        let env = serde_json::to_value(o.env()).unwrap();
        assert_eq!(env.as_array().unwrap().len(), 4);
        assert_eq!(
            env[3]["valueFrom"]["secretKeyRef"],
            json!({"name": "wbstack-mysql", "key": "MYSQL_PASSWORD", "optional": true})
        );
        let back: Order = serde_json::from_str(env[0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.wiring().withheld, ["global.redis.password"]);
    }
}
