//! A thin layer over kube's dynamic API: manifests in, JSON out, errors classified.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use wbstack_engine::StepError;

/// The field manager of every server-side apply wbstack makes.
pub const FIELD_MANAGER: &str = "wbstack";

/// A cluster connection.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    /// The environment whose objects these are: stamped on everything applied or created.
    pub(crate) environment: Option<std::sync::Arc<str>>,
    /// Secrets the plan adopts by name: used as they are, never written.
    pub(crate) adopted_secrets: std::sync::Arc<[String]>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kube")
    }
}

/// A kind of object wbstack manages: its apiVersion, kind, plural and scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ObjectType {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
}

/// A built-in type, as k8s-openapi describes it.
fn typed<K: k8s_openapi::Resource>() -> ObjectType
where
    K::Scope: 'static,
{
    use std::any::TypeId;
    ObjectType {
        api_version: K::API_VERSION,
        kind: K::KIND,
        plural: K::URL_PATH_SEGMENT,
        namespaced: TypeId::of::<K::Scope>() == TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
    }
}

/// A custom resource, as its CustomResourceDefinition names it (W&B's and Altinity's).
const fn custom(api_version: &'static str, kind: &'static str, plural: &'static str) -> ObjectType {
    ObjectType {
        api_version,
        kind,
        plural,
        namespaced: true,
    }
}

/// Every kind of object wbstack manages.
fn object_types() -> &'static [ObjectType] {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    use k8s_openapi::api::{networking::v1 as net, rbac::v1 as rbac, storage::v1 as storage};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    static TYPES: std::sync::LazyLock<Vec<ObjectType>> = std::sync::LazyLock::new(|| {
        vec![
            typed::<core::Node>(),
            typed::<core::Namespace>(),
            typed::<core::Pod>(),
            typed::<core::Secret>(),
            typed::<core::ConfigMap>(),
            typed::<core::Service>(),
            typed::<core::ServiceAccount>(),
            typed::<core::PersistentVolumeClaim>(),
            typed::<core::Event>(),
            typed::<storage::StorageClass>(),
            typed::<storage::CSIStorageCapacity>(),
            typed::<net::IngressClass>(),
            typed::<net::NetworkPolicy>(),
            typed::<apps::Deployment>(),
            typed::<apps::StatefulSet>(),
            typed::<apps::DaemonSet>(),
            typed::<batch::Job>(),
            typed::<rbac::ClusterRole>(),
            typed::<rbac::ClusterRoleBinding>(),
            typed::<rbac::Role>(),
            typed::<rbac::RoleBinding>(),
            typed::<ext::CustomResourceDefinition>(),
            custom("apps.wandb.com/v1", "WeightsAndBiases", "weightsandbiases"),
            custom("apps.wandb.com/v2", "WeightsAndBiases", "weightsandbiases"),
            custom(
                "clickhouse.altinity.com/v1",
                "ClickHouseInstallation",
                "clickhouseinstallations",
            ),
            custom(
                "clickhouse-keeper.altinity.com/v1",
                "ClickHouseKeeperInstallation",
                "clickhousekeeperinstallations",
            ),
        ]
    });
    &TYPES
}

/// The API resource of a kind wbstack manages.
pub fn resource(api_version: &str, kind: &str) -> Result<(ApiResource, bool), StepError> {
    let t = object_types()
        .iter()
        .find(|t| t.api_version == api_version && t.kind == kind)
        .ok_or_else(|| {
            StepError::permanent(format!("wbstack does not manage {api_version} {kind}"))
        })?;
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    Ok((
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), t.plural),
        t.namespaced,
    ))
}

/// Maps a kube error to transient (retry) or permanent, naming the operation.
pub fn classify(e: kube::Error, what: &str) -> StepError {
    let msg = format!("failed to {what}");
    match &e {
        kube::Error::Api(s) => {
            let code = s.code;
            let m = format!("{msg}: {} ({} {})", s.message, code, s.reason);
            if code == 429 || code >= 500 || code == 409 {
                let mut err = StepError::transient(m);
                if code == 429 {
                    // The server's wait (kube-apiserver puts it in the Status's details as
                    // well as in `Retry-After`), at least a second.
                    let asked = s.details.as_ref().map_or(0, |d| d.retry_after_seconds);
                    let wait = std::time::Duration::from_secs(u64::from(asked.max(1)));
                    err = err.with_retry_after(wait);
                }
                err
            } else {
                StepError::permanent(m)
            }
        }
        kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => {
            StepError::permanent(format!("{msg}: {e}"))
        }
        _ => StepError::transient(format!("{msg}: {e}")),
    }
}

fn to_value(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn meta<'a>(obj: &'a Value, k: &str) -> &'a str {
    obj["metadata"][k].as_str().unwrap_or("")
}

impl Kube {
    /// Wraps a client.
    pub fn new(client: kube::Client) -> Self {
        Kube {
            client,
            environment: None,
            adopted_secrets: std::sync::Arc::from(Vec::new()),
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The dynamic API of a kind in a namespace (ignored for cluster-scoped kinds).
    pub fn api(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
    ) -> Result<Api<DynamicObject>, StepError> {
        let (ar, namespaced) = resource(api_version, kind)?;
        Ok(match (namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (true, None) => Api::all_with(self.client.clone(), &ar),
            (false, _) => Api::all_with(self.client.clone(), &ar),
        })
    }

    fn api_for(&self, obj: &Value) -> Result<Api<DynamicObject>, StepError> {
        let ns = obj["metadata"]["namespace"].as_str();
        self.api(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
            ns,
        )
    }

    /// Server-side apply with field manager `wbstack`, taking over conflicting fields.
    pub async fn apply(&self, obj: &Value) -> Result<Value, StepError> {
        let obj = &self.stamped(obj);
        let api = self.api_for(obj)?;
        let name = meta(obj, "name");
        let what = format!("apply {} {name}", obj["kind"].as_str().unwrap_or(""));
        tracing::debug!(target: "wbstack_k8s::calls", namespace = ?obj["metadata"]["namespace"].as_str(), "{what}");
        crate::retry::call(|| async {
            api.patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
            .map(to_value)
            .map_err(|e| classify(e, &what))
        })
        .await
    }

    /// Creates unless it exists; true if this call created it.
    pub async fn create(&self, obj: &Value) -> Result<bool, StepError> {
        let obj = &self.stamped(obj);
        let api = self.api_for(obj)?;
        let what = format!(
            "create {} {}",
            obj["kind"].as_str().unwrap_or(""),
            meta(obj, "name")
        );
        tracing::debug!(target: "wbstack_k8s::calls", namespace = ?obj["metadata"]["namespace"].as_str(), "{what}");
        let dynobj: DynamicObject = serde_json::from_value(obj.clone())
            .map_err(|e| StepError::permanent(format!("{what}: {e}")))?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        crate::retry::call(|| async {
            match api.create(&pp, &dynobj).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                    Ok(false)
                }
                Err(e) => Err(classify(e, &what)),
            }
        })
        .await
    }

    /// Reads an object, if it exists.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, StepError> {
        tracing::trace!(target: "wbstack_k8s::calls", namespace = ?ns, "read {kind} {name}");
        let api = self.api(api_version, kind, ns)?;
        crate::retry::call(|| async {
            api.get_opt(name)
                .await
                .map(|o| o.map(to_value))
                .map_err(|e| classify(e, &format!("read {kind} {name}")))
        })
        .await
    }

    /// Lists objects with a label selector.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        labels: &str,
    ) -> Result<Vec<Value>, StepError> {
        let mut lp = ListParams::default();
        if !labels.is_empty() {
            lp = lp.labels(labels);
        }
        tracing::trace!(target: "wbstack_k8s::calls", namespace = ?ns, labels, "list {kind}");
        // A real server leaves `apiVersion` and `kind` out of a list's items.
        let typed = |mut v: Value| {
            v["apiVersion"] = Value::from(api_version);
            v["kind"] = Value::from(kind);
            v
        };
        let api = self.api(api_version, kind, ns)?;
        crate::retry::call(|| async {
            api.list(&lp)
                .await
                .map(|l| l.items.into_iter().map(to_value).map(typed).collect())
                .map_err(|e| classify(e, &format!("list {kind}")))
        })
        .await
    }

    /// Lists objects with a label selector, or None when the server refuses this client the
    /// list (403): for reads that have a fallback.
    pub async fn list_if_allowed(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        labels: &str,
    ) -> Result<Option<Vec<Value>>, StepError> {
        let lp = ListParams::default().labels(labels);
        tracing::trace!(target: "wbstack_k8s::calls", namespace = ?ns, labels, "list {kind}");
        let api = self.api(api_version, kind, ns)?;
        crate::retry::call(|| async {
            match api.list(&lp).await {
                Ok(l) => Ok(Some(l.items.into_iter().map(to_value).collect())),
                Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
                Err(e) => Err(classify(e, &format!("list {kind}"))),
            }
        })
        .await
    }

    /// Deletes an object; absent counts as done.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(), StepError> {
        tracing::debug!(target: "wbstack_k8s::calls", namespace = ?ns, "delete {kind} {name}");
        let api = self.api(api_version, kind, ns)?;
        crate::retry::call(|| async {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(classify(e, &format!("delete {kind} {name}"))),
            }
        })
        .await
    }

    /// Deletes the object a manifest describes.
    pub async fn delete_manifest(&self, obj: &Value) -> Result<(), StepError> {
        self.delete(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
            obj["metadata"]["namespace"].as_str(),
            meta(obj, "name"),
        )
        .await
    }

    /// Reads the object a manifest describes.
    pub async fn get_manifest(&self, obj: &Value) -> Result<Option<Value>, StepError> {
        self.get(
            obj["apiVersion"].as_str().unwrap_or(""),
            obj["kind"].as_str().unwrap_or(""),
            obj["metadata"]["namespace"].as_str(),
            meta(obj, "name"),
        )
        .await
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    fn api(status: serde_json::Value) -> kube::Error {
        kube::Error::Api(Box::new(serde_json::from_value(status).unwrap()))
    }

    #[test]
    fn a_429_waits_as_long_as_the_server_asks_and_a_conflict_is_retried() {
        let asked = api(
            serde_json::json!({"status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "slow down", "details": {"retryAfterSeconds": 7}}),
        );
        let e = classify(asked, "apply");
        assert_eq!(e.kind(), wbstack_engine::ErrorKind::Transient);
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(7)));
        let bare = api(
            serde_json::json!({"status": "Failure", "code": 429, "reason": "TooManyRequests", "message": "x"}),
        );
        assert_eq!(
            classify(bare, "apply").retry_after(),
            Some(std::time::Duration::from_secs(1))
        );
        let stale = api(
            serde_json::json!({"status": "Failure", "code": 409, "reason": "Conflict", "message": "modified"}),
        );
        assert_eq!(
            classify(stale, "apply").kind(),
            wbstack_engine::ErrorKind::Transient
        );
        let denied = api(
            serde_json::json!({"status": "Failure", "code": 403, "reason": "Forbidden", "message": "no"}),
        );
        assert_eq!(
            classify(denied, "apply").kind(),
            wbstack_engine::ErrorKind::Permanent
        );
    }
}

#[cfg(test)]
mod object_type_tests {
    use super::resource;

    #[test]
    fn built_in_types_take_their_plural_and_scope_from_k8s_openapi() {
        let (ar, namespaced) = resource("rbac.authorization.k8s.io/v1", "RoleBinding").unwrap();
        assert_eq!((ar.plural.as_str(), namespaced), ("rolebindings", true));
        let (ar, namespaced) = resource("storage.k8s.io/v1", "StorageClass").unwrap();
        assert_eq!((ar.plural.as_str(), namespaced), ("storageclasses", false));
        let (ar, namespaced) = resource("v1", "PersistentVolumeClaim").unwrap();
        assert_eq!(
            (ar.plural.as_str(), namespaced),
            ("persistentvolumeclaims", true)
        );
        let err = resource("v1", "PodTemplate").unwrap_err();
        assert!(
            err.message().contains("does not manage v1 PodTemplate"),
            "{err}"
        );
    }
}
