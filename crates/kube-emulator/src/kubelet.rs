//! A kubelet for the Jobs whose image is mapped to a program on this machine
//! (`Config::local_images`): the Job's pod is made as the Job controller makes it, its
//! environment resolved as a kubelet resolves it (values, Secret keys, the pod's own fields),
//! plus what EKS's pod identity webhook adds for a ServiceAccount that names an IAM role (the
//! role and a projected token file). The container's command runs as a local process with
//! exactly that environment over the image's own; its output is the pod's log
//! (`GET .../pods/{name}/log`), and the pod and the Job end as the process does (or at the
//! Job's `activeDeadlineSeconds`).

use crate::controllers::{meta_str, rt, Controllers};
use crate::error::ApiError;
use crate::http::{App, Target};
use crate::util::{now_secs, rfc3339};
use crate::LocalImage;
use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What each pod run here printed, by `namespace/name`.
pub(crate) type Logs = Arc<Mutex<HashMap<String, String>>>;

/// The annotation EKS's pod identity webhook reads on a ServiceAccount.
const ROLE: &str = "eks.amazonaws.com/role-arn";

/// `GET .../pods/{name}/log`: what the pod's container printed, as plain text.
pub(crate) fn log(app: &Arc<App>, t: Target) -> Result<Response, ApiError> {
    let ns = t.namespace.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    app.cluster.get(&t.rt, &ns, &name)?;
    let text = app
        .logs
        .lock()
        .ok()
        .and_then(|l| l.get(&format!("{ns}/{name}")).cloned())
        .unwrap_or_default();
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        "text/plain".parse().expect("static header"),
    );
    Ok(r)
}

/// How the container's process ended.
struct Ended {
    code: Option<i32>,
    deadline: bool,
}

impl Controllers {
    /// The program a Job's image is mapped to, if any.
    pub(crate) fn local_image(&self, job: &Value) -> Option<LocalImage> {
        let image = job["spec"]["template"]["spec"]["containers"][0]["image"].as_str()?;
        self.cfg().local_images.get(image).cloned()
    }

    /// Runs the Job's pod here.
    pub(crate) fn run_here(self: &Arc<Self>, job: &Value, image: LocalImage) {
        let me = self.clone();
        let job = job.clone();
        tokio::spawn(async move {
            let Some((pod, name)) = me.job_pod(&job) else {
                return;
            };
            let ns = meta_str(&job, "namespace").to_owned();
            let container = job["spec"]["template"]["spec"]["containers"][0].clone();
            let env = match me.pod_env(&ns, &name, &pod, &container) {
                Ok(env) => env,
                Err(why) => {
                    let waiting = json!({"reason": "CreateContainerConfigError", "message": why});
                    me.pod_state(&pod, "Pending", json!({"waiting": waiting}));
                    return;
                }
            };
            me.pod_state(
                &pod,
                "Running",
                json!({"running": {"startedAt": rfc3339(now_secs())}}),
            );
            let deadline = job["spec"]["activeDeadlineSeconds"]
                .as_u64()
                .unwrap_or(3600);
            let (ended, output) = run(&image, &container, env, deadline).await;
            if let Ok(mut logs) = me.logs.lock() {
                logs.insert(format!("{ns}/{name}"), output);
            }
            let code = ended.code.unwrap_or(137);
            let (phase, reason) = if code == 0 {
                ("Succeeded", "Completed")
            } else {
                ("Failed", "Error")
            };
            let now = rfc3339(now_secs());
            me.pod_state(
                &pod,
                phase,
                json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": now, "finishedAt": now}}),
            );
            me.job_ended(&job, code == 0, ended.deadline);
        });
    }

    /// The Job's pod, named and labelled as the Job controller makes it.
    fn job_pod(&self, job: &Value) -> Option<(Value, String)> {
        let pods = rt(&self.cluster, "", "v1", "pods")?;
        let (ns, job_name, uid) = (
            meta_str(job, "namespace"),
            meta_str(job, "name"),
            meta_str(job, "uid"),
        );
        let tail: String = uid.chars().rev().filter(|c| *c != '-').take(5).collect();
        let name = format!("{job_name}-{tail}");
        let template = &job["spec"]["template"];
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels["job-name"] = json!(job_name);
        labels["batch.kubernetes.io/job-name"] = json!(job_name);
        labels["controller-uid"] = json!(uid);
        labels["batch.kubernetes.io/controller-uid"] = json!(uid);
        let body = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": template["spec"].clone(),
        });
        let pod = self.apply_as(&pods, ns, &name, body, "kube-controller-manager")?;
        Some((pod, name))
    }

    fn pod_state(&self, pod: &Value, phase: &str, state: Value) {
        let Some(pods) = rt(&self.cluster, "", "v1", "pods") else {
            return;
        };
        let c = &pod["spec"]["containers"][0];
        let running = state.get("running").is_some();
        let status = json!({"phase": phase, "startTime": rfc3339(now_secs()),
            "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": running,
                "restartCount": 0, "started": running, "state": state}]});
        if let Ok(cur) = self
            .cluster
            .get(&pods, meta_str(pod, "namespace"), meta_str(pod, "name"))
        {
            self.set_status(&pods, &cur, status);
        }
    }

    fn job_ended(&self, job: &Value, succeeded: bool, deadline: bool) {
        let Some(jobs) = rt(&self.cluster, "batch", "v1", "jobs") else {
            return;
        };
        let Ok(cur) = self
            .cluster
            .get(&jobs, meta_str(job, "namespace"), meta_str(job, "name"))
        else {
            return;
        };
        let now = rfc3339(now_secs());
        let cond = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "reason": reason, "message": message, "lastProbeTime": now, "lastTransitionTime": now});
        let status = if succeeded {
            json!({"succeeded": 1, "startTime": now, "completionTime": now, "conditions": [
                cond("SuccessCriteriaMet", "CompletionsReached", ""), cond("Complete", "CompletionsReached", "")]})
        } else {
            let (reason, message) = if deadline {
                (
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            } else {
                (
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            };
            json!({"failed": 1, "startTime": now, "conditions": [
                cond("FailureTarget", reason, message), cond("Failed", reason, message)]})
        };
        self.set_status(&jobs, &cur, status);
    }

    /// The container's environment as the kubelet resolves it, with what the pod identity
    /// webhook adds; `Err` is the kubelet's `CreateContainerConfigError` message.
    fn pod_env(
        &self,
        ns: &str,
        pod_name: &str,
        pod: &Value,
        container: &Value,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env = vec![("HOSTNAME".to_owned(), pod_name.to_owned())];
        for e in container["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or("").to_owned();
            if let Some(v) = e["value"].as_str() {
                env.push((name, v.to_owned()));
            } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
                let secret = r.get("name").and_then(Value::as_str).unwrap_or("");
                let key = r.get("key").and_then(Value::as_str).unwrap_or("");
                let optional = r.get("optional") == Some(&json!(true));
                match self.secret_key(ns, secret, key) {
                    Ok(v) => env.push((name, v)),
                    Err(_) if optional => {}
                    Err(why) => return Err(why),
                }
            } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                let v = match path {
                    "metadata.name" => pod_name,
                    "metadata.namespace" => ns,
                    "spec.serviceAccountName" => pod["spec"]["serviceAccountName"]
                        .as_str()
                        .unwrap_or("default"),
                    _ => "",
                };
                env.push((name, v.to_owned()));
            }
        }
        env.extend(self.pod_identity(ns, pod));
        Ok(env)
    }

    fn secret_key(&self, ns: &str, name: &str, key: &str) -> Result<String, String> {
        let secrets = rt(&self.cluster, "", "v1", "secrets").ok_or("no secrets")?;
        let s = self
            .cluster
            .get(&secrets, ns, name)
            .map_err(|_| format!("secret \"{name}\" not found"))?;
        s["data"][key]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| format!("couldn't find key {key} in Secret {ns}/{name}"))
    }

    /// EKS's pod identity webhook: the role and a token file for STS, when the pod's
    /// ServiceAccount names a role.
    fn pod_identity(&self, ns: &str, pod: &Value) -> Vec<(String, String)> {
        let sa_name = pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        let Some(sas) = rt(&self.cluster, "", "v1", "serviceaccounts") else {
            return Vec::new();
        };
        let Ok(sa) = self.cluster.get(&sas, ns, sa_name) else {
            return Vec::new();
        };
        let Some(role) = sa["metadata"]["annotations"][ROLE].as_str() else {
            return Vec::new();
        };
        let issuer = crate::token::issuer(&self.config);
        let token = crate::token::mint(&issuer, &sa, &json!(["sts.amazonaws.com"]), 86400);
        let dir = std::env::temp_dir().join(format!("kube-emulator-pod-{}", meta_str(pod, "uid")));
        let file = dir.join("token");
        if std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&file, token))
            .is_err()
        {
            return Vec::new();
        }
        vec![
            ("AWS_ROLE_ARN".into(), role.to_owned()),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
                file.display().to_string(),
            ),
            ("AWS_STS_REGIONAL_ENDPOINTS".into(), "regional".into()),
        ]
    }
}

/// Runs the container's command (its `command[0]` is the image's program) with the image's
/// environment under the pod's and nothing of this process's own.
async fn run(
    image: &LocalImage,
    container: &Value,
    env: Vec<(String, String)>,
    deadline_secs: u64,
) -> (Ended, String) {
    let words = |k: &str| -> Vec<String> {
        container[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect()
    };
    let (command, args) = (words("command"), words("args"));
    let mut cmd = tokio::process::Command::new(&image.program);
    cmd.args(command.iter().skip(1))
        .args(args)
        .env_clear()
        .envs(&image.env)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let said = format!("exec {}: {e}\n", image.program.display());
            return (
                Ended {
                    code: Some(128),
                    deadline: false,
                },
                said,
            );
        }
    };
    let limit = Duration::from_secs(deadline_secs);
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut log = String::from_utf8_lossy(&out.stderr).into_owned();
            log.push_str(&String::from_utf8_lossy(&out.stdout));
            (
                Ended {
                    code: out.status.code(),
                    deadline: false,
                },
                log,
            )
        }
        Ok(Err(e)) => (
            Ended {
                code: Some(128),
                deadline: false,
            },
            format!("{e}\n"),
        ),
        Err(_) => (
            Ended {
                code: None,
                deadline: true,
            },
            String::new(),
        ),
    }
}
