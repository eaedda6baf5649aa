//! The W&B operator as its official `operator` chart installs it: the `WeightsAndBiases` CRD of
//! the operator version, and a `<release>-controller-manager` Deployment labelled
//! `control-plane: controller-manager`, with the environment the operator reads.

use serde_json::{json, Value};

/// The CRD's name.
pub const WANDB_CRD: &str = "weightsandbiases.apps.wandb.com";
/// The name wbstack installs the operator under (the official chart's usual release name).
pub const OPERATOR_RELEASE: &str = "wandb-operator";
/// The label the operator's Deployment carries in every official install.
pub const CONTROL_PLANE_LABEL: (&str, &str) = ("control-plane", "controller-manager");
/// The label wbstack's own install adds (older wbstack installs carry only this one).
pub const OPERATOR_LABEL: (&str, &str) = ("app.kubernetes.io/name", "wandb-operator");
/// The label on everything wbstack makes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "wbstack");

/// The operator versions whose CRD this build carries, and the CRD (taken unchanged from the
/// operator's release: `config/crd/bases/apps.wandb.com_weightsandbiases.yaml`).
const CRDS: [(&str, &str); 1] = [("1.22.0", include_str!("../assets/wandb-crd-v1.22.0.yaml"))];

/// The CRD wbstack applies for an operator version (the newest it carries for any other),
/// labelled as wbstack's.
pub fn wandb_crd(version: &str) -> Value {
    let (v, text) = CRDS
        .iter()
        .find(|(v, _)| *v == version)
        .unwrap_or(&CRDS[CRDS.len() - 1]);
    let mut crd: Value = serde_yaml_ng::from_str(text).expect("the carried CRD is valid YAML");
    crd["metadata"]["labels"] = json!({MANAGED_BY.0: MANAGED_BY.1, "app.kubernetes.io/version": v});
    crd
}

/// The verbs of the operator's RBAC markers (`internal/controller`), plus leader election.
fn rules() -> Value {
    let rw = [
        "update", "delete", "get", "list", "create", "patch", "watch",
    ];
    json!([
        {"apiGroups": ["apps.wandb.com"], "resources": ["weightsandbiases"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["apps.wandb.com"], "resources": ["weightsandbiases/status"], "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["apps.wandb.com"], "resources": ["weightsandbiases/finalizers"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "secrets", "serviceaccounts", "services"], "verbs": rw},
        {"apiGroups": [""], "resources": ["endpoints", "nodes", "namespaces", "pods", "pods/log", "pods/status", "replicationcontrollers", "resourcequotas"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "controllerrevisions", "daemonsets", "replicasets", "statefulsets"], "verbs": rw},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": rw},
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status", "networkpolicies"], "verbs": rw},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": rw},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"], "verbs": rw},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": rw}
    ])
}

/// The operator's namespace, service account, RBAC and Deployment (the CRD is its own step).
pub fn operator(namespace: &str, version: &str, airgapped: bool, image: &str) -> Vec<Value> {
    let name = format!("{OPERATOR_RELEASE}-controller-manager");
    let sa = OPERATOR_RELEASE;
    let l = json!({
        CONTROL_PLANE_LABEL.0: CONTROL_PLANE_LABEL.1,
        OPERATOR_LABEL.0: OPERATOR_LABEL.1,
        "app.kubernetes.io/version": version,
        MANAGED_BY.0: MANAGED_BY.1,
    });
    let meta = |kind_name: &str| json!({"name": kind_name, "labels": l});
    let mut ns_meta = meta(namespace);
    ns_meta["labels"] = json!({MANAGED_BY.0: MANAGED_BY.1});
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": ns_meta}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace, "labels": l}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(OPERATOR_RELEASE), "rules": rules()}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": meta(OPERATOR_RELEASE),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR_RELEASE},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]
        }),
        deployment(&name, namespace, image, sa, airgapped, &l),
    ]
}

fn deployment(name: &str, ns: &str, image: &str, sa: &str, airgapped: bool, l: &Value) -> Value {
    let pod_labels =
        json!({CONTROL_PLANE_LABEL.0: CONTROL_PLANE_LABEL.1, OPERATOR_LABEL.0: OPERATOR_LABEL.1});
    let probe = |path: &str, delay: u32, period: u32| json!({"httpGet": {"path": path, "port": 8081}, "initialDelaySeconds": delay, "periodSeconds": period});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": l},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {CONTROL_PLANE_LABEL.0: CONTROL_PLANE_LABEL.1}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": sa,
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 10,
                    "containers": [{
                        "name": "manager",
                        "image": image,
                        "command": ["/manager"],
                        "args": ["--leader-elect", "--zap-devel=false"],
                        "env": [
                            {"name": "WANDB_MANAGER_SERVICE_ACCOUNT", "value": sa},
                            {"name": "OPERATOR_NAMESPACE", "value": ns},
                            {"name": "SERVICE_ACCOUNT_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                            {"name": "AIRGAPPED", "value": airgapped.to_string()}
                        ],
                        "livenessProbe": probe("/healthz", 15, 20),
                        "readinessProbe": probe("/readyz", 5, 10),
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
                    }]
                }
            }
        }
    })
}

/// Whether a Deployment is a W&B operator: an official install (`control-plane:
/// controller-manager` running `wandb/controller`) or one wbstack made.
pub fn is_operator(d: &Value) -> bool {
    let labels = &d["metadata"]["labels"];
    if labels[OPERATOR_LABEL.0] == OPERATOR_LABEL.1 {
        return true;
    }
    let official = labels[CONTROL_PLANE_LABEL.0] == CONTROL_PLANE_LABEL.1;
    let runs_controller = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("wandb/controller"))
            })
        });
    official && runs_controller
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_carried_crd_is_the_operators_own_file() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/wandb-operator/crd-v1.22.0.yaml");
        let upstream = std::fs::read_to_string(fixture).unwrap();
        assert_eq!(
            CRDS[0].1, upstream,
            "assets/wandb-crd-v1.22.0.yaml must be upstream's file unchanged"
        );
        assert_eq!(wandb_crd("1.22.0")["metadata"]["name"], WANDB_CRD);
    }

    #[test]
    fn an_official_install_is_recognised_and_another_kubebuilder_operator_is_not() {
        let d = |image: &str| json!({"metadata": {"labels": {"control-plane": "controller-manager"}}, "spec": {"template": {"spec": {"containers": [{"name": "manager", "image": image}]}}}});
        assert!(is_operator(&d("wandb/controller:1.22.0")));
        assert!(!is_operator(&d("quay.io/other/operator:1")));
        let ours = &operator("wandb-cr", "1.22.0", false, "wandb/controller:1.22.0")[4];
        assert!(is_operator(ours));
        assert_eq!(
            ours["metadata"]["name"],
            "wandb-operator-controller-manager"
        );
    }
}
