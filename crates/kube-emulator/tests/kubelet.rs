//! A Job whose image is mapped to a program here runs as a local process: its pod is made as
//! the Job controller makes it, its environment resolved as a kubelet resolves it (values,
//! Secret keys, the downward API, the pod identity webhook's role and token file) over the
//! image's own and nothing of the emulator's, its output served as the pod's log; the Job
//! ends as the process does. A missing Secret key holds the pod in
//! `CreateContainerConfigError`, as a kubelet does.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube_emulator::{Config, LocalImage};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use wbstack_test_support::emulator::Server;

const IMAGE: &str = "registry.example/shell:1";

fn job(name: &str, script: &str, env: serde_json::Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "serviceAccountName": "runner", "restartPolicy": "Never",
            "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", script], "env": env}]}}}
    }))
    .unwrap()
}

/// The Job's condition once it has one (`Complete` or `Failed`), and its pod.
async fn ended(client: &kube::Client, name: &str) -> (String, Pod) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for _ in 0..200 {
        let j = jobs.get(name).await.unwrap();
        let done = j
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
        let listed = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await
            .unwrap();
        if let (Some(c), Some(p)) = (done, listed.items.into_iter().next()) {
            return (c.type_, p);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Job {name} never ended");
}

#[test]
fn a_job_runs_here_with_the_pods_environment_and_its_output_is_the_log() {
    let image = LocalImage {
        program: "/bin/sh".into(),
        env: BTreeMap::from([("FROM_IMAGE".to_owned(), "image-env".to_owned())]),
    };
    let s = Server::with(Config {
        workload_delay: Duration::from_millis(50),
        service_account_issuer: Some("https://oidc.example/id/X".into()),
        local_images: BTreeMap::from([(IMAGE.to_owned(), image)]),
        ..Config::default()
    });
    let client = s.client();
    std::env::set_var("EMULATOR_HOST_ONLY", "leaks");
    s.rt.block_on(async move {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        let secret = json!({"metadata": {"name": "db"}, "stringData": {"password": "s3cret-value"}});
        let secret: Secret = serde_json::from_value(secret).unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let sa = json!({"metadata": {"name": "runner", "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}}});
        sas.create(&PostParams::default(), &serde_json::from_value(sa).unwrap())
            .await
            .unwrap();
        let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
        let env = json!([
            {"name": "PLAIN", "value": "plain"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "ABSENT", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k", "optional": true}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}
        ]);
        let script = "echo $PLAIN $PASSWORD $FROM_IMAGE $SA role=$AWS_ROLE_ARN absent=${ABSENT-unset} host=${EMULATOR_HOST_ONLY-none}; echo \"token=$AWS_WEB_IDENTITY_TOKEN_FILE\"; echo to-stderr >&2";
        jobs.create(&PostParams::default(), &job("ok", script, env.clone()))
            .await
            .unwrap();
        let (cond, pod) = ended(&client, "ok").await;
        assert_eq!(cond, "Complete");
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Succeeded"));
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let name = pod.metadata.name.unwrap();
        let log = pods.logs(&name, &LogParams::default()).await.unwrap();
        assert!(
            log.contains("plain s3cret-value image-env runner role=arn:aws:iam::1:role/r absent=unset host=none"),
            "{log}"
        );
        let file = log.split("token=").nth(1).unwrap().lines().next().unwrap();
        let token = std::fs::read_to_string(file).unwrap();
        use base64::Engine as _;
        let claims = token.split('.').nth(1).unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["iss"], "https://oidc.example/id/X");
        assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
        assert_eq!(claims["sub"], "system:serviceaccount:default:runner");
        assert!(log.contains("to-stderr"), "{log}");

        jobs.create(&PostParams::default(), &job("fails", "echo no; exit 3", json!([])))
            .await
            .unwrap();
        let (cond, pod) = ended(&client, "fails").await;
        assert_eq!(cond, "Failed");
        let st = pod.status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let term = st.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
        assert_eq!(term.exit_code, 3);

        let missing = json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k"}}}]);
        jobs.create(&PostParams::default(), &job("held", "echo never", missing))
            .await
            .unwrap();
        let lp = ListParams::default().labels("job-name=held");
        let mut reason = None;
        for _ in 0..100 {
            let waiting = pods.list(&lp).await.unwrap().items.into_iter().next().and_then(|p| {
                p.status?.container_statuses?[0].state.clone()?.waiting
            });
            if let Some(w) = waiting {
                reason = Some((w.reason.unwrap(), w.message.unwrap()));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            reason,
            Some(("CreateContainerConfigError".into(), "secret \"none\" not found".into()))
        );
    });
}
