//! The W&B pods' ServiceAccounts, as their Deployments name them.

use serde_json::Value;
use wbstack_k8s::Kube;

/// The ServiceAccounts the resource's Deployments run as: the API's first, then the app's,
/// then the others'.
pub(crate) async fn service_accounts(kube: &Kube, ns: &str, resource: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={resource}");
    let Ok(deployments) = kube
        .list("apps/v1", "Deployment", Some(ns), &selector)
        .await
    else {
        return Vec::new();
    };
    let rank = |d: &Value| {
        let name = d["metadata"]["name"].as_str().unwrap_or("");
        [name.ends_with("-api"), name.ends_with("-app"), true]
            .iter()
            .position(|m| *m)
    };
    let mut ordered: Vec<&Value> = deployments.iter().collect();
    ordered.sort_by_key(|d| rank(d));
    let mut names: Vec<String> = Vec::new();
    for d in ordered {
        if let Some(sa) = d["spec"]["template"]["spec"]["serviceAccountName"].as_str() {
            if !names.iter().any(|n| n == sa) {
                names.push(sa.to_owned());
            }
        }
    }
    names
}
