//! `wbstack render --job`: wbstack run as a Kubernetes Job, with least privilege. The rules are
//! every call `up` and `down` make (the test bed's RBAC authorizer checks them: `tests/job.rs`
//! runs `up` and `down` with an identity bound to exactly this role).

use crate::operator_manifests::MANAGED_BY;
use serde_json::{json, Value};

/// What a Job needs to run wbstack for one environment.
pub struct JobSpec<'a> {
    /// The environment (the plan's `metadata.name`).
    pub environment: &'a str,
    /// Where the Job, its ServiceAccount and its state run.
    pub namespace: &'a str,
    /// The plan file's text, mounted from a ConfigMap.
    pub plan: &'a str,
    /// The wbstack image.
    pub image: &'a str,
    /// The environment variable the plan reads the license from, if any: filled from the Secret
    /// `<environment>-license` (key `license`), which the user creates.
    pub license_env: Option<&'a str>,
    /// An IAM role for the ServiceAccount (IRSA), for the AWS steps and a state store in S3.
    pub role_arn: Option<&'a str>,
    /// `s3://BUCKET/PREFIX` to keep the state there (the Job then needs no volume claim and
    /// any later Job, or a laptop, resumes it); otherwise a claim holds it.
    pub state: Option<&'a str>,
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 7] = [
    "get", "list", "watch", "create", "patch", "update", "delete",
];

/// The cluster-wide rules `up` and `down` need, and no more: the objects wbstack applies, reads
/// and deletes; the workloads and events readiness reads; and `escalate`/`bind` on the roles,
/// because installing the W&B operator grants the operator's own permissions.
pub fn job_rules() -> Vec<Value> {
    vec![
        rule(&[""], &["namespaces"], &WRITE),
        rule(
            &[""],
            &[
                "secrets",
                "configmaps",
                "services",
                "serviceaccounts",
                "persistentvolumeclaims",
            ],
            &WRITE,
        ),
        rule(&[""], &["pods", "events"], &READ),
        // `up`'s preflight: a node large enough, the StorageClass and IngressClass the plan names.
        rule(&[""], &["nodes"], &["list"]),
        rule(&["storage.k8s.io"], &["storageclasses"], &["get", "list"]),
        rule(
            &["networking.k8s.io"],
            &["ingressclasses"],
            &["get", "list"],
        ),
        rule(
            &["apps"],
            &["deployments", "statefulsets", "daemonsets"],
            &WRITE,
        ),
        rule(&["apps"], &["replicasets"], &READ),
        rule(&["batch"], &["jobs", "cronjobs"], &READ),
        rule(
            &["rbac.authorization.k8s.io"],
            &[
                "clusterroles",
                "clusterrolebindings",
                "roles",
                "rolebindings",
            ],
            &[
                "get", "list", "watch", "create", "patch", "update", "delete", "escalate", "bind",
            ],
        ),
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &WRITE,
        ),
        rule(&["apps.wandb.com"], &["weightsandbiases"], &WRITE),
        rule(
            &["clickhouse.altinity.com"],
            &["clickhouseinstallations"],
            &WRITE,
        ),
    ]
}

/// The manifests: namespace, ServiceAccount, ClusterRole and binding, the plan's ConfigMap, a
/// claim for the state directory, and the Job running `up`.
pub fn job(s: &JobSpec) -> Vec<Value> {
    let name = format!("wbstack-{}", s.environment);
    let ns = s.namespace;
    let labels = json!({MANAGED_BY.0: MANAGED_BY.1, "wbstack.dev/environment": s.environment});
    let meta = |n: &str| json!({"name": n, "namespace": ns, "labels": labels});
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(&name)});
    if let Some(arn) = s.role_arn {
        sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": arn});
    }
    let mut env = vec![json!({"name": "NO_COLOR", "value": "1"})];
    if let Some(var) = s.license_env {
        env.push(json!({"name": var, "valueFrom": {"secretKeyRef": {"name": format!("{}-license", s.environment), "key": "license"}}}));
    }
    let remote = s.state.filter(|l| l.starts_with("s3://"));
    // With the state in S3, a scratch /tmp holds the journal's working copy.
    let (state_dir, state_volume) = match remote {
        Some(url) => (url, json!({"name": "state", "emptyDir": {}})),
        None => (
            "/state",
            json!({"name": "state", "persistentVolumeClaim": {"claimName": format!("{name}-state")}}),
        ),
    };
    let mount = if remote.is_some() { "/tmp" } else { "/state" };
    let container = json!({
        "name": "wbstack", "image": s.image,
        "args": ["up", "--plan", "/plan/plan.yaml", "--state-dir", state_dir, "--output", "json"],
        "env": env,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "plan", "mountPath": "/plan", "readOnly": true}, {"name": "state", "mountPath": mount}],
    });
    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(&format!("{name}-state")),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": namespace_labels(&labels)}}),
        sa,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels}, "rules": job_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&format!("{name}-plan")),
            "data": {"plan.yaml": s.plan}}),
        claim,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(&format!("{name}-up")),
            "spec": {"backoffLimit": 3, "template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": name, "restartPolicy": "OnFailure",
                "containers": [container],
                "volumes": [{"name": "plan", "configMap": {"name": format!("{name}-plan")}},
                    state_volume]}}}}),
    ];
    docs.into_iter()
        .filter(|d| remote.is_none() || d["kind"] != "PersistentVolumeClaim")
        .collect()
}

/// The Job's namespace enforces Pod Security `restricted` (the Job's pod meets it: non-root, no
/// privilege escalation, no capabilities, the runtime's seccomp profile).
fn namespace_labels(labels: &Value) -> Value {
    let mut l = labels.clone();
    for mode in ["enforce", "warn", "audit"] {
        l[format!("pod-security.kubernetes.io/{mode}")] = json!("restricted");
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_mounts_the_plan_and_state_and_never_holds_the_license() {
        let docs = job(&JobSpec {
            environment: "e",
            namespace: "wbstack",
            plan: "kind: Plan\n",
            image: "wbstack:1",
            license_env: Some("WANDB_LICENSE"),
            role_arn: Some("arn:aws:iam::1:role/r"),
            state: None,
        });
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "ConfigMap",
                "PersistentVolumeClaim",
                "Job"
            ]
        );
        let c = &docs[6]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["env"][1]["valueFrom"]["secretKeyRef"]["name"],
            "e-license"
        );
        assert_eq!(
            docs[1]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::1:role/r"
        );
    }

    #[test]
    fn with_the_state_in_s3_the_job_needs_no_claim() {
        let docs = job(&JobSpec {
            environment: "e",
            namespace: "wbstack",
            plan: "kind: Plan\n",
            image: "wbstack:1",
            license_env: None,
            role_arn: Some("arn:aws:iam::1:role/r"),
            state: Some("s3://team-state/wbstack"),
        });
        assert!(docs.iter().all(|d| d["kind"] != "PersistentVolumeClaim"));
        let pod = &docs.last().unwrap()["spec"]["template"]["spec"];
        let args = pod["containers"][0]["args"].as_array().unwrap();
        let at = args.iter().position(|a| a == "--state-dir").unwrap();
        assert_eq!(args[at + 1], "s3://team-state/wbstack");
        assert_eq!(pod["volumes"][1], json!({"name": "state", "emptyDir": {}}));
        assert_eq!(pod["containers"][0]["volumeMounts"][1]["mountPath"], "/tmp");
    }
}
