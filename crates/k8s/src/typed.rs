//! What manifests built from k8s-openapi's types share: labels, metadata, and the step from a
//! typed object to the JSON the API takes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::BTreeMap;

pub(crate) type Labels = BTreeMap<String, String>;

/// Labels from pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The label on everything wbstack makes, alone.
pub(crate) fn managed() -> Labels {
    let (k, v) = crate::operator_manifests::MANAGED_BY;
    labels(&[(k, v)])
}

/// The metadata of an object named `name`, in `namespace` when it is namespaced.
pub(crate) fn meta(name: &str, namespace: Option<&str>, labels: Labels) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels),
        ..Default::default()
    }
}

/// A typed object as the API takes it (apiVersion and kind included).
pub(crate) fn value<T: serde::Serialize>(o: T) -> Value {
    let mut v = serde_json::to_value(o).expect("k8s-openapi objects serialize");
    // A claim template is written as the API server keeps it: without apiVersion and kind
    // (a StatefulSet's claim templates cannot be changed once it exists).
    let templates = v.pointer_mut("/spec/volumeClaimTemplates");
    for t in templates
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(t) = t.as_object_mut() {
            t.remove("apiVersion");
            t.remove("kind");
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;

    #[test]
    fn a_typed_object_carries_its_api_version_and_kind() {
        let ns = value(Namespace {
            metadata: meta("n", None, managed()),
            ..Default::default()
        });
        assert_eq!(
            ns,
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "labels": {"app.kubernetes.io/managed-by": "wbstack"}}})
        );
    }
}
