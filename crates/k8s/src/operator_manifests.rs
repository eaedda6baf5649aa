//! The W&B operator as its official `operator` chart installs it: the `WeightsAndBiases` CRD of
//! the operator version, and a `<release>-controller-manager` Deployment labelled
//! `control-plane: controller-manager`, with the environment the operator reads.

use crate::typed::{self, labels, meta, value, Labels};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
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
fn rules() -> Vec<PolicyRule> {
    const RW: &[&str] = &[
        "update", "delete", "get", "list", "create", "patch", "watch",
    ];
    const READ: &[&str] = &["get", "list", "watch"];
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    };
    vec![
        rule(
            "apps.wandb.com",
            &["weightsandbiases"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(
            "apps.wandb.com",
            &["weightsandbiases/status"],
            &["get", "update", "patch"],
        ),
        rule(
            "apps.wandb.com",
            &["weightsandbiases/finalizers"],
            &["update"],
        ),
        rule(
            "",
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "secrets",
                "serviceaccounts",
                "services",
            ],
            RW,
        ),
        rule(
            "",
            &[
                "endpoints",
                "nodes",
                "namespaces",
                "pods",
                "pods/log",
                "pods/status",
                "replicationcontrollers",
                "resourcequotas",
            ],
            READ,
        ),
        rule(
            "apps",
            &[
                "deployments",
                "controllerrevisions",
                "daemonsets",
                "replicasets",
                "statefulsets",
            ],
            RW,
        ),
        rule("autoscaling", &["horizontalpodautoscalers"], RW),
        rule(
            "batch",
            &["cronjobs", "jobs"],
            &["get", "list", "watch", "create", "delete", "patch"],
        ),
        rule("events.k8s.io", &["events"], &["list", "watch"]),
        rule(
            "networking.k8s.io",
            &["ingresses", "ingresses/status", "networkpolicies"],
            RW,
        ),
        rule("policy", &["poddisruptionbudgets"], RW),
        rule(
            "rbac.authorization.k8s.io",
            &[
                "roles",
                "rolebindings",
                "clusterroles",
                "clusterrolebindings",
            ],
            RW,
        ),
        rule("coordination.k8s.io", &["leases"], RW),
    ]
}

/// The operator's namespace, service account, RBAC and Deployment (the CRD is its own step).
pub fn operator(namespace: &str, version: &str, airgapped: bool, image: &str) -> Vec<Value> {
    let name = format!("{OPERATOR_RELEASE}-controller-manager");
    let sa = OPERATOR_RELEASE;
    let l = labels(&[
        CONTROL_PLANE_LABEL,
        OPERATOR_LABEL,
        ("app.kubernetes.io/version", version),
        MANAGED_BY,
    ]);
    vec![
        value(Namespace {
            metadata: meta(namespace, None, typed::managed()),
            ..Default::default()
        }),
        value(ServiceAccount {
            metadata: meta(sa, Some(namespace), l.clone()),
            ..Default::default()
        }),
        value(ClusterRole {
            metadata: meta(OPERATOR_RELEASE, None, l.clone()),
            rules: Some(rules()),
            ..Default::default()
        }),
        value(ClusterRoleBinding {
            metadata: meta(OPERATOR_RELEASE, None, l.clone()),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: OPERATOR_RELEASE.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: sa.into(),
                namespace: Some(namespace.into()),
                ..Default::default()
            }]),
        }),
        value(deployment(&name, namespace, image, sa, airgapped, l)),
    ]
}

fn probe(path: &str, delay: i32, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(8081),
            ..Default::default()
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn manager(ns: &str, image: &str, sa: &str, airgapped: bool) -> Container {
    let quantities = |cpu: &str, memory: &str| {
        [("cpu", cpu), ("memory", memory)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
            .collect()
    };
    Container {
        name: "manager".into(),
        image: Some(image.into()),
        command: Some(vec!["/manager".into()]),
        args: Some(vec!["--leader-elect".into(), "--zap-devel=false".into()]),
        env: Some(vec![
            env("WANDB_MANAGER_SERVICE_ACCOUNT", sa),
            env("OPERATOR_NAMESPACE", ns),
            EnvVar {
                name: "SERVICE_ACCOUNT_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "spec.serviceAccountName".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            env("AIRGAPPED", &airgapped.to_string()),
        ]),
        liveness_probe: Some(probe("/healthz", 15, 20)),
        readiness_probe: Some(probe("/readyz", 5, 10)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("100m", "128Mi")),
            limits: Some(quantities("500m", "512Mi")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn deployment(
    name: &str,
    ns: &str,
    image: &str,
    sa: &str,
    airgapped: bool,
    l: Labels,
) -> Deployment {
    let pod_labels = labels(&[CONTROL_PLANE_LABEL, OPERATOR_LABEL]);
    Deployment {
        metadata: meta(name, Some(ns), l),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels(&[CONTROL_PLANE_LABEL])),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(sa.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    termination_grace_period_seconds: Some(10),
                    containers: vec![manager(ns, image, sa, airgapped)],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
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
