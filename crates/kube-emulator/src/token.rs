//! `POST .../serviceaccounts/{name}/token`, as kube-apiserver answers a TokenRequest: a
//! JWT-shaped token for the ServiceAccount, with the audiences asked for (the API server's
//! default when none), `sub` `system:serviceaccount:<namespace>:<name>` and an expiry (an hour
//! unless asked otherwise). The signature is random: no one here verifies it.

use crate::error::ApiError;
use crate::http::{body_value, json_response, App, Target};
use crate::util::{now_secs, rfc3339};
use axum::extract::Request;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;

/// The issuer the tokens name unless the configuration gives one (kube-apiserver's default).
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn part(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The issuer the configuration names, else kube-apiserver's default.
pub(crate) fn issuer(config: &std::sync::RwLock<crate::Config>) -> String {
    config
        .read()
        .ok()
        .and_then(|c| c.service_account_issuer.clone())
        .unwrap_or_else(|| ISSUER.into())
}

/// A token for the ServiceAccount `sa`, for `audiences`, valid `ttl` seconds.
pub(crate) fn mint(issuer: &str, sa: &Value, audiences: &Value, ttl: i64) -> String {
    let (ns, name) = (&sa["metadata"]["namespace"], &sa["metadata"]["name"]);
    let now = now_secs();
    let claims = json!({
        "aud": audiences, "iss": issuer, "iat": now, "nbf": now, "exp": now + ttl,
        "sub": format!("system:serviceaccount:{}:{}", ns.as_str().unwrap_or(""), name.as_str().unwrap_or("")),
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}}
    });
    let signature: [u8; 32] = rand::random();
    format!(
        "{}.{}.{}",
        part(&json!({"alg": "RS256", "kid": "emulator"})),
        part(&claims),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
    )
}

pub(crate) async fn request(app: &Arc<App>, req: Request, t: Target) -> Result<Response, ApiError> {
    let ns = t.namespace.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let sa = app.cluster.get(&t.rt, &ns, &name)?;
    let body = body_value(req, false).await?;
    let spec = &body["spec"];
    let issuer = issuer(&app.config);
    let audiences = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!([issuer]),
    };
    let ttl = spec["expirationSeconds"].as_i64().unwrap_or(3600).max(600);
    let now = now_secs();
    let token = mint(&issuer, &sa, &audiences, ttl);
    let answer = json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": ttl, "boundObjectRef": null},
        "status": {"token": token, "expirationTimestamp": rfc3339(now + ttl)}
    });
    Ok(json_response(201, &answer))
}
