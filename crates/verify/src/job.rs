//! The probes inside the cluster, where the stores are in reach: a short-lived Job in the
//! environment's namespace that runs as the W&B pods' ServiceAccount (so as their IAM role)
//! with the same Secret references, running wbstack's own image in its probe mode
//! (`verify --in-pod`). Its findings come back through the pod's log; the Job is removed
//! afterwards, whatever happened.

use crate::order::Order;
use crate::verdict::Finding;
use crate::wiring::Wiring;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{DeleteParams, ListParams, LogParams, ObjectMeta, PostParams};
use kube::Api;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wbstack_k8s::Kube;

/// The probe pod's namespace and ServiceAccount, from the downward API.
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
pub const POD_SERVICE_ACCOUNT: &str = "POD_SERVICE_ACCOUNT";
/// The probe Job's container.
const CONTAINER: &str = "probe";
/// Waiting reasons after which the pod cannot start without a change by hand.
const STUCK: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// How the probe Job runs.
#[derive(Clone, Debug)]
pub struct ProbeJob {
    /// wbstack's image (the one `render --job` runs).
    pub image: String,
    /// How long the Job may take, from creation to its findings.
    pub limit: Duration,
}

fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:05x}",
        (nanos ^ std::process::id().rotate_left(16)) & 0xfffff
    )
}

/// The order, the Secret keys by reference, and who the pod runs as (the downward API).
fn env(order: &Order) -> Vec<EnvVar> {
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut env = order.env();
    env.push(field(POD_NAMESPACE, "metadata.namespace"));
    env.push(field(POD_SERVICE_ACCOUNT, "spec.serviceAccountName"));
    env
}

/// The Job: the pods' ServiceAccount, no API token (the probes read nothing from the API),
/// no retries, a deadline, and a container that runs as a non-root user with nothing to write.
pub fn manifest(name: &str, sa: &str, order: &Order, job: &ProbeJob) -> Job {
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "wbstack".to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            "verify".to_owned(),
        ),
        (
            "app.kubernetes.io/instance".to_owned(),
            order.resource.clone(),
        ),
    ]);
    let small = BTreeMap::from([
        ("cpu".to_owned(), Quantity("100m".into())),
        ("memory".to_owned(), Quantity("128Mi".into())),
    ]);
    let container = Container {
        name: CONTAINER.into(),
        image: Some(job.image.clone()),
        command: Some(vec!["wbstack".into(), "verify".into(), "--in-pod".into()]),
        env: Some(env(order)),
        resources: Some(ResourceRequirements {
            requests: Some(small.clone()),
            limits: Some(small),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(order.namespace.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(job.limit.as_secs().max(1) as i64),
            ttl_seconds_after_finished: Some(600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(sa.into()),
                    automount_service_account_token: Some(false),
                    restart_policy: Some("Never".into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Runs the probes in a Job and brings back their findings; the Job's `namespace/name`. `say`
/// is told what is waited for.
pub async fn in_cluster(
    kube: &Kube,
    w: &Wiring,
    order: &Order,
    job: &ProbeJob,
    say: impl Fn(&str),
) -> (String, Vec<Finding>) {
    let ns = &order.namespace;
    let accounts = crate::pods::service_accounts(kube, ns, &w.resource).await;
    let sa = accounts.first().map(String::as_str).unwrap_or("default");
    let name = format!("wbstack-verify-{}", suffix());
    let checked = format!("probe Job {ns}/{name} (image {})", job.image);
    let jobs: Api<Job> = Api::namespaced(kube.client().clone(), ns);
    if let Err(e) = jobs
        .create(&PostParams::default(), &manifest(&name, sa, order, job))
        .await
    {
        let todo = "wbstack needs create, get and delete on jobs and get on pods/log in the namespace (`render --job` grants them with `spec.verify`), or run `verify --from-here`";
        let f = Finding::fail("job", checked, e.to_string(), todo);
        return (format!("{ns}/{name}"), vec![f]);
    }
    say(&format!(
        "waiting for Job {ns}/{name}: the probes inside the cluster, as ServiceAccount {sa} (at most {} s)",
        job.limit.as_secs()
    ));
    let outcome = finish(kube, ns, &name, job.limit, &say).await;
    let removed = jobs.delete(&name, &DeleteParams::background()).await;
    let mut findings = match outcome {
        Ok(log) => read_findings(&log).unwrap_or_else(|seen| {
            vec![Finding::fail(
                "job",
                checked.clone(),
                seen,
                "see the probe pod's log",
            )]
        }),
        Err(seen) => vec![Finding::fail(
            "job",
            checked.clone(),
            seen,
            "fix what the pod reports, or run `verify --from-here`",
        )],
    };
    if let Err(e) = removed {
        let todo = format!("delete it: kubectl delete job -n {ns} {name}");
        findings.push(Finding::warn(
            "job",
            checked,
            format!("the Job was not removed: {e}"),
            todo,
        ));
    }
    (format!("{ns}/{name}"), findings)
}

/// Waits for the Job to finish; its pod's log. Ends at once when the pod cannot start or the Job
/// is gone; says every 15 s what it last saw of the pod.
async fn finish(
    kube: &Kube,
    ns: &str,
    name: &str,
    limit: Duration,
    say: &impl Fn(&str),
) -> Result<String, String> {
    let jobs: Api<Job> = Api::namespaced(kube.client().clone(), ns);
    let pods: Api<Pod> = Api::namespaced(kube.client().clone(), ns);
    let by_job = ListParams::default().labels(&format!("job-name={name}"));
    let started = Instant::now();
    let deadline = started + limit + Duration::from_secs(15);
    let mut told = started;
    loop {
        let Some(live) = jobs.get_opt(name).await.map_err(|e| e.to_string())? else {
            return Err(format!("Job {ns}/{name} is gone: deleted by someone else"));
        };
        let done = live
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
        let listed = pods.list(&by_job).await.map_err(|e| e.to_string())?;
        let pod = listed.items.into_iter().next();
        if told.elapsed() >= Duration::from_secs(15) {
            told = Instant::now();
            let waited = started.elapsed().as_secs();
            say(&format!(
                "still waiting for Job {ns}/{name} ({waited} s): {}",
                seen(pod.as_ref())
            ));
        }
        if let Some(stuck) = pod.as_ref().and_then(stuck) {
            return Err(stuck);
        }
        if let Some(c) = done {
            let Some(pod) = pod.and_then(|p| p.metadata.name) else {
                return Err(format!(
                    "the Job ended {} with no pod left: {}",
                    c.type_,
                    c.message.unwrap_or_default()
                ));
            };
            let lp = LogParams {
                container: Some(CONTAINER.into()),
                ..Default::default()
            };
            return pods
                .logs(&pod, &lp)
                .await
                .map_err(|e| format!("the log of pod {pod}: {e}"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the Job did not finish within {} s; last seen: {}",
                limit.as_secs(),
                seen(pod.as_ref())
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What was last seen of the probe pod: its phase and why its container waits, if it does.
fn seen(p: Option<&Pod>) -> String {
    let Some(p) = p else {
        return "no pod yet".into();
    };
    let name = p.metadata.name.as_deref().unwrap_or("");
    let status = p.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    match waiting {
        Some(w) => format!("pod {name} {phase} ({w})"),
        None => format!("pod {name} {phase}"),
    }
}

/// Why the pod cannot start, when nothing short of a change by hand lets it.
fn stuck(p: &Pod) -> Option<String> {
    let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let w = s.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        STUCK.contains(&reason).then(|| {
            format!(
                "the probe pod cannot start: {reason}: {}",
                w.message.as_deref().unwrap_or("")
            )
        })
    })
}

/// The findings the probe pod printed (its last line that holds them).
pub fn read_findings(log: &str) -> Result<Vec<Finding>, String> {
    log.lines()
        .rev()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            serde_json::from_value(v.get("findings")?.clone()).ok()
        })
        .ok_or_else(|| {
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "the probe pod printed no findings; its log ends: {}",
                tail.join(" | ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Options;
    use serde_json::json;

    #[test]
    fn the_job_runs_as_the_pods_with_secrets_by_reference_and_nothing_more() {
        let w = crate::wiring::of_values(
            json!({"global": {"mysql": {"host": "db", "passwordSecret": {"name": "s", "passwordKey": "k"}}}}),
        );
        let order = Order::new(&w, Options::default(), None);
        let job = ProbeJob {
            image: "ghcr.io/wbstack/wbstack:0.1.0".into(),
            limit: Duration::from_secs(90),
        };
        let m =
            serde_json::to_value(manifest("wbstack-verify-1", "wandb-api", &order, &job)).unwrap();
        let pod = &m["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "wandb-api");
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(m["spec"]["backoffLimit"], 0);
        assert_eq!(m["spec"]["activeDeadlineSeconds"], 90);
        let c = &pod["containers"][0];
        assert_eq!(c["command"], json!(["wbstack", "verify", "--in-pod"]));
        assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["name"], "s");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    }

    #[test]
    fn a_pod_that_cannot_start_without_a_change_by_hand_is_told_at_once() {
        let pod = |reason: &str| -> Pod {
            serde_json::from_value(json!({"status": {"phase": "Pending", "containerStatuses": [
                {"name": "probe", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": reason, "message": "Back-off pulling image \"i\""}}}]}}))
            .unwrap()
        };
        let said = stuck(&pod("ImagePullBackOff")).unwrap();
        assert!(
            said.contains("ImagePullBackOff: Back-off pulling image"),
            "{said}"
        );
        assert_eq!(stuck(&pod("ContainerCreating")), None);
        assert_eq!(
            seen(Some(&pod("ContainerCreating"))),
            "pod  Pending (ContainerCreating)"
        );
        assert_eq!(seen(None), "no pod yet");
    }

    #[test]
    fn findings_are_read_from_the_log_and_a_log_without_them_is_told() {
        let f = Finding::pass("redis", "Redis at r:6379", "PONG");
        let log = format!("starting\n{}\n", json!({"findings": [f]}));
        assert_eq!(read_findings(&log).unwrap(), [f]);
        let e = read_findings("exec format error\n").unwrap_err();
        assert!(e.contains("exec format error"), "{e}");
    }
}
