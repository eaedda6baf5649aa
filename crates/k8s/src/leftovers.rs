//! What a release leaves behind when its workloads are deleted: the volume claims its
//! StatefulSets made (neither Helm nor a StatefulSet's deletion removes them; the claims carry
//! the StatefulSet's selector, so the release's instance label), and the Secrets a chart keeps
//! through `helm uninstall` (`helm.sh/resource-policy: keep`, marked with the release by Helm's
//! own annotations). A teardown removes them too: nothing billable or secret is left behind.

use crate::client::Kube;
use serde_json::Value;
use wbstack_engine::StepError;

const RELEASE_NAME: &str = "meta.helm.sh/release-name";
const RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
const RESOURCE_POLICY: &str = "helm.sh/resource-policy";

fn instance(release: &str) -> String {
    format!("app.kubernetes.io/instance={release}")
}

/// The release's volume claims and, for a Helm release, the Secrets its chart kept.
pub(crate) async fn leftovers(
    kube: &Kube,
    namespace: &str,
    release: &str,
    helm: bool,
) -> Result<Vec<Value>, StepError> {
    let mut found = kube
        .list(
            "v1",
            "PersistentVolumeClaim",
            Some(namespace),
            &instance(release),
        )
        .await?;
    if helm {
        let secrets = kube.list("v1", "Secret", Some(namespace), "").await?;
        found.extend(
            secrets
                .into_iter()
                .filter(|s| kept_by_release(s, namespace, release)),
        );
    }
    Ok(found)
}

fn kept_by_release(o: &Value, namespace: &str, release: &str) -> bool {
    let a = &o["metadata"]["annotations"];
    a[RELEASE_NAME] == release && a[RELEASE_NAMESPACE] == namespace && a[RESOURCE_POLICY] == "keep"
}

/// Deletes them (a claim still mounted goes once its pods have).
pub(crate) async fn delete_leftovers(
    kube: &Kube,
    namespace: &str,
    release: &str,
    helm: bool,
) -> Result<(), StepError> {
    for o in leftovers(kube, namespace, release, helm).await? {
        kube.delete_manifest(&o).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_secrets_helm_kept_for_this_release_are_leftovers() {
        let s = |name: &str, ns: &str, policy: &str| {
            json!({"metadata": {"annotations": {
                RELEASE_NAME: name, RELEASE_NAMESPACE: ns, RESOURCE_POLICY: policy}}})
        };
        assert!(kept_by_release(
            &s("wandb", "wandb", "keep"),
            "wandb",
            "wandb"
        ));
        assert!(!kept_by_release(
            &s("other", "wandb", "keep"),
            "wandb",
            "wandb"
        ));
        assert!(!kept_by_release(
            &s("wandb", "elsewhere", "keep"),
            "wandb",
            "wandb"
        ));
        assert!(!kept_by_release(&s("wandb", "wandb", ""), "wandb", "wandb"));
        assert!(!kept_by_release(&json!({"metadata": {}}), "wandb", "wandb"));
    }
}
