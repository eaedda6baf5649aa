//! `wbstack render --job`: wbstack run as a Kubernetes Job, with least privilege (`job_rbac`).
//! The test bed's RBAC authorizer judges it: `tests/job.rs` lists what the Job is granted and
//! runs `up` and `down` with an identity bound to exactly these roles.

use crate::job_rbac::job_rbac;
use crate::job_scope::JobScope;
use crate::operator_manifests::MANAGED_BY;
use serde_json::{json, Value};

/// The label on the namespaces the Job's manifests make for the plan.
pub const JOB_LABEL: &str = "wbstack.dev/job-for";

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
    /// What the plan's steps touch: the Job is granted that and no more.
    pub scope: &'a JobScope,
}

/// The manifests: the Job's namespace and the plan's, the ServiceAccount, its roles
/// (`job_rbac`), the operator's ClusterRole (which the Job may not write), the plan's
/// ConfigMap, a claim for the state directory, and the Job running `up`.
pub fn job(s: &JobSpec) -> Vec<Value> {
    let name = format!("wbstack-{}", s.environment);
    let ns = s.namespace;
    let labels = json!({MANAGED_BY.0: MANAGED_BY.1, "wbstack.dev/environment": s.environment});
    let meta = |n: &str| json!({"name": n, "namespace": ns, "labels": labels});
    let mut sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(&name)});
    if let Some(arn) = s.role_arn {
        sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": arn});
    }
    // `verify`'s probe Job runs the image this Job runs.
    let mut env = vec![
        json!({"name": "NO_COLOR", "value": "1"}),
        json!({"name": "WBSTACK_PROBE_IMAGE", "value": s.image}),
    ];
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
    let mut docs = vec![json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": namespace_labels(&labels)}})];
    // The plan's namespaces hold the Job's Roles, so they come first and stay the
    // administrator's: not labelled as wbstack's, `down` keeps them (and the Roles).
    for n in s.scope.namespaces.iter().filter(|n| *n != ns) {
        docs.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": n, "labels": {JOB_LABEL: s.environment}}}));
    }
    docs.push(sa);
    docs.extend(job_rbac(s.scope, &name, ns, &labels));
    for role in &s.scope.roles {
        let mut role = role.clone();
        role["metadata"]["labels"][crate::ENVIRONMENT_LABEL] = json!(s.environment);
        docs.push(role);
    }
    docs.extend([
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&format!("{name}-plan")),
            "data": {"plan.yaml": s.plan}}),
        claim,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(&format!("{name}-up")),
            "spec": {"backoffLimit": 3, "template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": name, "restartPolicy": "OnFailure",
                "containers": [container],
                "volumes": [{"name": "plan", "configMap": {"name": format!("{name}-plan")}},
                    state_volume]}}}}),
    ]);
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
            scope: &JobScope::default(),
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
            c["env"][2]["valueFrom"]["secretKeyRef"]["name"],
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
            scope: &JobScope::default(),
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
