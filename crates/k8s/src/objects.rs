//! Helpers every Kubernetes step shares: the fingerprint annotation, outputs, Secret manifests.

use crate::typed;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::ByteString;
use serde_json::{json, Value};
use wbstack_engine::{Fingerprint, Outputs, Secret, SecretRef};

/// The annotation that records the fingerprint wbstack applied.
pub const FINGERPRINT_ANNOTATION: &str = "wbstack.dev/fingerprint";

pub(crate) fn annotated(mut obj: Value, fp: &Fingerprint) -> Value {
    obj["metadata"]["annotations"][FINGERPRINT_ANNOTATION] = json!(fp.as_str());
    obj
}

pub(crate) fn observed_fp(obj: &Value) -> Option<Fingerprint> {
    obj["metadata"]["annotations"][FINGERPRINT_ANNOTATION]
        .as_str()
        .map(Fingerprint::from_hex)
}

pub(crate) fn out(pairs: &[(&str, Value)]) -> Outputs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub(crate) fn secret_outputs(ns: &str, name: &str, key: &str) -> Outputs {
    let r = SecretRef::new("kubernetes", format!("{ns}/{name}")).with_key(key);
    out(&[
        ("name", json!(name)),
        ("key", json!(key)),
        ("secret", serde_json::to_value(r).unwrap_or_default()),
    ])
}

/// An Opaque Secret holding one key.
pub fn secret_manifest(namespace: &str, name: &str, key: &str, value: &Secret) -> Value {
    let data = [(
        key.to_owned(),
        ByteString(value.expose().as_bytes().to_vec()),
    )];
    typed::value(k8s_openapi::api::core::v1::Secret {
        metadata: typed::meta(name, Some(namespace), typed::managed()),
        type_: Some("Opaque".into()),
        data: Some(data.into_iter().collect()),
        ..Default::default()
    })
}

/// A namespace wbstack makes.
pub fn namespace_manifest(name: &str) -> Value {
    typed::value(Namespace {
        metadata: typed::meta(name, None, typed::managed()),
        ..Default::default()
    })
}

pub(crate) fn terminating(o: &Value) -> bool {
    !o["metadata"]["deletionTimestamp"].is_null()
}
