//! `wbstack render --job`: wbstack run as a Kubernetes Job, with least privilege (`job_rbac`).
//! The test bed's RBAC authorizer judges it: `tests/job.rs` lists what the Job is granted and
//! runs `up` and `down` with an identity bound to exactly these roles.

use crate::job_rbac::job_rbac;
use crate::job_scope::JobScope;
use crate::operator_manifests::MANAGED_BY;
use crate::typed::{labels, meta, value, Labels};
use k8s_openapi::api::batch::v1::{Job, JobSpec as BatchJobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, SeccompProfile, SecretKeySelector,
    SecurityContext, ServiceAccount, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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

/// The Job's pod: `up` on the mounted plan, as a non-root user with nothing granted beyond
/// what Pod Security `restricted` allows.
fn container(s: &JobSpec, state_dir: &str, mount: &str) -> Container {
    let mut env = vec![
        env_value("NO_COLOR", "1"),
        // `verify`'s probe Job runs the image this Job runs.
        env_value("WBSTACK_PROBE_IMAGE", s.image),
    ];
    if let Some(var) = s.license_env {
        env.push(EnvVar {
            name: var.into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: format!("{}-license", s.environment),
                    key: "license".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let args = [
        "up",
        "--plan",
        "/plan/plan.yaml",
        "--state-dir",
        state_dir,
        "--output",
        "json",
    ];
    Container {
        name: "wbstack".into(),
        image: Some(s.image.into()),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        env: Some(env),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "plan".into(),
                mount_path: "/plan".into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "state".into(),
                mount_path: mount.into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    }
}

fn env_value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The Job running `up`, with the plan from its ConfigMap and the state volume.
fn up_job(s: &JobSpec, name: &str, labels: &Labels, state_volume: Volume, c: Container) -> Job {
    let plan = Volume {
        name: "plan".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: format!("{name}-plan"),
            ..Default::default()
        }),
        ..Default::default()
    };
    Job {
        metadata: meta(&format!("{name}-up"), Some(s.namespace), labels.clone()),
        spec: Some(BatchJobSpec {
            backoff_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name.into()),
                    restart_policy: Some("OnFailure".into()),
                    containers: vec![c],
                    volumes: Some(vec![plan, state_volume]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where the state lives: a claim, or with the state in S3 a scratch directory for the
/// journal's working copy (the Job then needs no claim). Returns the `--state-dir`, the volume,
/// where it is mounted, and the claim if one is needed.
fn state<'a>(
    s: &JobSpec<'a>,
    name: &str,
    labels: &Labels,
) -> (&'a str, Volume, &'static str, Option<Value>) {
    let volume = |source: Volume| Volume {
        name: "state".into(),
        ..source
    };
    match s.state.filter(|l| l.starts_with("s3://")) {
        Some(url) => (
            url,
            volume(Volume {
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }),
            "/tmp",
            None,
        ),
        None => {
            let claim = PersistentVolumeClaim {
                metadata: meta(&format!("{name}-state"), Some(s.namespace), labels.clone()),
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(
                            [("storage".to_owned(), Quantity("1Gi".into()))]
                                .into_iter()
                                .collect(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let source = Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: format!("{name}-state"),
                    ..Default::default()
                }),
                ..Default::default()
            };
            ("/state", volume(source), "/state", Some(value(claim)))
        }
    }
}

/// The manifests: the Job's namespace and the plan's, the ServiceAccount, its roles
/// (`job_rbac`), the operator's ClusterRole (which the Job may not write), the plan's
/// ConfigMap, a claim for the state directory, and the Job running `up`.
pub fn job(s: &JobSpec) -> Vec<Value> {
    let name = format!("wbstack-{}", s.environment);
    let ns = s.namespace;
    let l = labels(&[MANAGED_BY, ("wbstack.dev/environment", s.environment)]);
    let mut sa_meta = meta(&name, Some(ns), l.clone());
    if let Some(arn) = s.role_arn {
        sa_meta.annotations = Some(labels(&[("eks.amazonaws.com/role-arn", arn)]));
    }
    let (state_dir, state_volume, mount, claim) = state(s, &name, &l);
    let mut docs = vec![value(Namespace {
        metadata: meta(ns, None, namespace_labels(&l)),
        ..Default::default()
    })];
    // The plan's namespaces hold the Job's Roles, so they come first and stay the
    // administrator's: not labelled as wbstack's, `down` keeps them (and the Roles).
    for n in s.scope.namespaces.iter().filter(|n| *n != ns) {
        docs.push(value(Namespace {
            metadata: meta(n, None, labels(&[(JOB_LABEL, s.environment)])),
            ..Default::default()
        }));
    }
    docs.push(value(ServiceAccount {
        metadata: sa_meta,
        ..Default::default()
    }));
    docs.extend(job_rbac(s.scope, &name, ns, &l));
    for role in &s.scope.roles {
        let mut role = role.clone();
        role["metadata"]["labels"][crate::ENVIRONMENT_LABEL] = json!(s.environment);
        docs.push(role);
    }
    docs.push(value(ConfigMap {
        metadata: meta(&format!("{name}-plan"), Some(ns), l.clone()),
        data: Some(
            [("plan.yaml".to_owned(), s.plan.to_owned())]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }));
    docs.extend(claim);
    let c = container(s, state_dir, mount);
    docs.push(value(up_job(s, &name, &l, state_volume, c)));
    docs
}

/// The Job's namespace enforces Pod Security `restricted` (the Job's pod meets it: non-root, no
/// privilege escalation, no capabilities, the runtime's seccomp profile).
fn namespace_labels(labels: &Labels) -> Labels {
    let mut l = labels.clone();
    for mode in ["enforce", "warn", "audit"] {
        l.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
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
