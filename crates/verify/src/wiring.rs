//! What the pods are told: the endpoints in the live resource's values and the values of the
//! Secrets they name, read as the pods read them. Never wbstack's memory of what it made.

use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use wbstack_engine::{Secret, SecretRef};
use wbstack_k8s::Kube;

/// A store's address and the credentials the pods use for it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The user, where the store has users.
    pub user: Option<String>,
    /// The password the pods read, and where from; `Err` says why it could not be read.
    pub password: Result<Secret, String>,
    /// A CA bundle (PEM) the chart is given for this store, if any.
    pub ca: Option<String>,
}

impl Endpoint {
    /// The password's value, or the failing finding of `probe` when it could not be read.
    pub(crate) fn password_or_finding(
        &self,
        probe: &str,
        checked: &str,
    ) -> Result<String, crate::Finding> {
        self.password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .map_err(|why| {
                let todo = "run `wbstack up` to write the Secret again";
                crate::Finding::fail(probe, checked, why.clone(), todo)
            })
    }
}

/// Where the values put MySQL.
#[derive(Clone, Debug)]
pub struct MysqlTarget {
    pub at: Endpoint,
    pub database: String,
}

/// Where the values put Redis.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    pub at: Endpoint,
    pub tls: bool,
}

/// Where the values put ClickHouse, and the cluster Weave is told to use.
#[derive(Clone, Debug)]
pub struct ClickhouseTarget {
    pub at: Endpoint,
    pub database: String,
    /// The replicated cluster Weave runs its DDL on (`WF_CLICKHOUSE_REPLICATED_CLUSTER`, else
    /// Weave's `weave_cluster`); `None` when not replicated.
    pub cluster: Option<String>,
    /// How many replicas the plan asks for (shards times replicas), when known.
    pub expected_replicas: Option<u32>,
}

/// The bucket the values name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketTarget {
    pub name: String,
    pub region: String,
    pub kms_key: Option<String>,
    pub path: Option<String>,
}

/// Where the values of the Secrets the resource names are read.
#[derive(Clone)]
pub enum Source {
    /// From the API, as the kubelet reads them for the pods (verify from where wbstack runs).
    Api(Kube),
    /// From the probe pod's own environment: each Secret key (`name/key`) was put into the
    /// variable named by a `secretKeyRef`, as the W&B pods get theirs.
    Env(BTreeMap<String, String>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Api(_) => f.write_str("Api"),
            Source::Env(vars) => f.debug_tuple("Env").field(vars).finish(),
        }
    }
}

/// A `WeightsAndBiases` resource as its pods see it.
#[derive(Clone, Debug)]
pub struct Wiring {
    pub namespace: String,
    pub resource: String,
    pub values: Value,
    pub source: Source,
    /// Passwords the values hold themselves (`global.<store>.password`), which are not copied
    /// into a probe Job.
    pub withheld: Vec<String>,
}

/// The Secret and key a section names for its password (`fields`: the section's Secret
/// object, its name key and its key key; `default_key` when no key is named).
fn secret_ref(section: &Value, fields: [&str; 3], default_key: &str) -> Option<(String, String)> {
    let secret = &section[fields[0]];
    let name = text(&secret[fields[1]])?;
    let key = text(&secret[fields[2]]).unwrap_or_else(|| default_key.into());
    Some((name, key))
}

const MYSQL: ([&str; 3], &str) = (["passwordSecret", "name", "passwordKey"], "MYSQL_PASSWORD");
const REDIS: ([&str; 3], &str) = (["secret", "secretName", "secretKey"], "REDIS_PASSWORD");
const CLICKHOUSE: ([&str; 3], &str) = (
    ["passwordSecret", "name", "passwordKey"],
    "CLICKHOUSE_PASSWORD",
);
const BUCKET_KEYS: [([&str; 3], &str); 2] = [
    (["secret", "secretName", "accessKeyName"], "ACCESS_KEY"),
    (["secret", "secretName", "secretKeyName"], "SECRET_KEY"),
];

impl Wiring {
    /// Reads the live resource.
    pub async fn read(kube: &Kube, namespace: &str, resource: &str) -> Result<Wiring, String> {
        let cr = kube
            .get(
                "apps.wandb.com/v1",
                "WeightsAndBiases",
                Some(namespace),
                resource,
            )
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("WeightsAndBiases {namespace}/{resource} does not exist"))?;
        Ok(Wiring {
            namespace: namespace.to_owned(),
            resource: resource.to_owned(),
            values: cr["spec"]["values"].clone(),
            source: Source::Api(kube.clone()),
            withheld: Vec::new(),
        })
    }

    /// Every Secret key (name, key) the probes read: the stores' passwords and the bucket's
    /// access keys.
    pub fn secret_refs(&self) -> Vec<(String, String)> {
        let mut refs: Vec<(String, String)> = [
            ("mysql", MYSQL),
            ("redis", REDIS),
            ("clickhouse", CLICKHOUSE),
        ]
        .into_iter()
        .chain(BUCKET_KEYS.map(|k| ("bucket", k)))
        .filter_map(|(store, (fields, key))| secret_ref(self.global(store), fields, key))
        .collect();
        refs.dedup();
        refs
    }

    /// One key of a Secret, as the pods get it.
    pub(crate) async fn secret(&self, name: &str, key: &str) -> Result<Secret, String> {
        match &self.source {
            Source::Api(kube) => read_secret(kube, &self.namespace, name, key).await,
            Source::Env(vars) => {
                let ns = &self.namespace;
                let var = vars.get(&format!("{name}/{key}")).ok_or_else(|| {
                    format!("Secret {ns}/{name} key {key} was not given to the probe pod")
                })?;
                let value = std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "Secret {ns}/{name} has no key {key} (the probe pod's {var} is empty)"
                        )
                    })?;
                let reference = SecretRef::new("kubernetes", format!("{ns}/{name}")).with_key(key);
                Ok(Secret::new(reference, value))
            }
        }
    }

    fn global(&self, key: &str) -> &Value {
        &self.values["global"][key]
    }

    /// A store's password as the chart reads it: from the Secret its section names, else the
    /// plain `password` of `global.<store>`.
    async fn password(
        &self,
        store: &str,
        (fields, default_key): ([&str; 3], &str),
    ) -> Result<Secret, String> {
        let section = self.global(store);
        match secret_ref(section, fields, default_key) {
            Some((name, key)) => self.secret(&name, &key).await,
            None => {
                let at = format!("global.{store}.password");
                if self.withheld.contains(&at) {
                    return Err(format!("{at} is written into the values, and verify does not copy it into the probe Job: run `verify --from-here`, or keep the password in a Secret"));
                }
                plain(&section["password"], &at)
            }
        }
    }

    /// MySQL, unless the chart runs its own (`mysql.install`) or no host is set.
    pub async fn mysql(&self) -> Option<MysqlTarget> {
        let m = self.global("mysql");
        let host = text(&m["host"])?;
        let password = self.password("mysql", MYSQL).await;
        Some(MysqlTarget {
            at: Endpoint {
                host,
                port: port(&m["port"], 3306),
                user: Some(text(&m["user"]).unwrap_or_else(|| "wandb".into())),
                password,
                ca: text(&m["caCert"]),
            },
            database: text(&m["database"]).unwrap_or_else(|| "wandb_local".into()),
        })
    }

    /// Redis, unless no host is set.
    pub async fn redis(&self) -> Option<RedisTarget> {
        let r = self.global("redis");
        let host = text(&r["host"])?;
        let password = self.password("redis", REDIS).await;
        let tls = r["params"]["tls"] == true || r["params"]["tls"] == "true";
        Some(RedisTarget {
            at: Endpoint {
                host,
                port: port(&r["port"], 6379),
                user: None,
                password,
                ca: text(&r["caCert"]),
            },
            tls,
        })
    }

    /// ClickHouse, unless no host is set.
    pub async fn clickhouse(&self) -> Option<ClickhouseTarget> {
        let c = self.global("clickhouse");
        let host = text(&c["host"])?;
        let password = self.password("clickhouse", CLICKHOUSE).await;
        let replicated = c["replicated"] == true;
        let named = text(&self.values["weave-trace"]["env"]["WF_CLICKHOUSE_REPLICATED_CLUSTER"]);
        Some(ClickhouseTarget {
            at: Endpoint {
                host,
                port: port(&c["port"], 8123),
                user: Some(text(&c["user"]).unwrap_or_else(|| "default".into())),
                password,
                ca: None,
            },
            database: text(&c["database"]).unwrap_or_else(|| "weave_trace_db".into()),
            cluster: replicated.then(|| named.unwrap_or_else(|| "weave_cluster".into())),
            expected_replicas: None,
        })
    }

    /// The default bucket, when it is S3.
    pub fn bucket(&self) -> Option<BucketTarget> {
        let b = self.global("defaultBucket");
        if text(&b["provider"]).is_some_and(|p| p != "s3") {
            return None;
        }
        Some(BucketTarget {
            name: text(&b["name"])?,
            region: text(&b["region"]).unwrap_or_else(|| "us-east-1".into()),
            kms_key: text(&b["kmsKey"]),
            path: text(&b["path"]),
        })
    }

    /// The URL users reach W&B at.
    pub fn host(&self) -> Option<String> {
        text(self.global("host"))
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn port(v: &Value, default: u16) -> u16 {
    text(v).and_then(|p| p.parse().ok()).unwrap_or(default)
}

/// A password written into the values themselves (the chart allows it; wbstack never does).
fn plain(v: &Value, at: &str) -> Result<Secret, String> {
    let value = text(v).ok_or_else(|| format!("neither a Secret nor {at} is set"))?;
    Ok(Secret::new(SecretRef::new("values", at), value))
}

/// One key of a Secret, as the pods read it.
pub(crate) async fn read_secret(
    kube: &Kube,
    ns: &str,
    name: &str,
    key: &str,
) -> Result<Secret, String> {
    let s = kube
        .get("v1", "Secret", Some(ns), name)
        .await
        .map_err(|e| format!("Secret {ns}/{name}: {e}"))?
        .ok_or_else(|| format!("Secret {ns}/{name} does not exist"))?;
    let bytes = s["data"][key]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .ok_or_else(|| format!("Secret {ns}/{name} has no key {key}"))?;
    let value = String::from_utf8(bytes)
        .map_err(|_| format!("Secret {ns}/{name} key {key} is not UTF-8"))?;
    let reference = SecretRef::new("kubernetes", format!("{ns}/{name}")).with_key(key);
    Ok(Secret::new(reference, value))
}

/// A wiring of `values` in namespace `wandb`, with no Secret to read.
#[cfg(test)]
pub(crate) fn of_values(values: Value) -> Wiring {
    Wiring {
        namespace: "wandb".into(),
        resource: "wandb".into(),
        source: Source::Env(Default::default()),
        withheld: Vec::new(),
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bucket_and_host_are_read_from_the_values_as_the_chart_reads_them() {
        let w = of_values(json!({"global": {
            "host": "https://wandb.example.com",
            "defaultBucket": {"provider": "s3", "name": "b", "region": "eu-west-1", "kmsKey": "arn:k", "path": ""}
        }}));
        assert_eq!(
            w.bucket(),
            Some(BucketTarget {
                name: "b".into(),
                region: "eu-west-1".into(),
                kms_key: Some("arn:k".into()),
                path: None
            })
        );
        assert_eq!(w.host().as_deref(), Some("https://wandb.example.com"));
        let gcs = Wiring {
            values: json!({"global": {"defaultBucket": {"provider": "gcs", "name": "b"}}}),
            ..w
        };
        assert_eq!(gcs.bucket(), None);
        assert_eq!(port(&json!("3307"), 3306), 3307);
        assert_eq!(port(&json!(6380), 6379), 6380);
        assert_eq!(port(&Value::Null, 6379), 6379);
    }
}
