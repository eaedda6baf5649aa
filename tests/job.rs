//! `render --job` against a real RBAC authorizer: the test bed's kube-apiserver validates the
//! Job's manifests (a server-side dry run), and `up` and `down` of the PoC run with an identity
//! bound to exactly the rendered ClusterRole (no group, no other permission).

mod common;
use common::{text, Env};
use serde_json::Value;

mod testbed {
    /// Needs the test bed: named `testbed::` so that the emulator tier skips it.
    #[test]
    fn the_job_role_lets_up_and_down_do_every_call_they_make() {
        super::the_job_role_lets_up_and_down_do_every_call_they_make();
    }
}

/// `verb group/resource` and the name of each request of `user` the audit log records (only
/// the refused ones, 403, if `refused`).
fn requests(env: &Env, user: &str, refused: bool) -> Vec<(String, String)> {
    env.testbed
        .as_ref()
        .unwrap()
        .audit_events(user)
        .iter()
        .filter(|e| !refused || e["responseStatus"]["code"] == 403)
        .map(|e| {
            let o = &e["objectRef"];
            let what = format!(
                "{} {}/{}",
                e["verb"].as_str().unwrap_or(""),
                o["apiGroup"].as_str().unwrap_or(""),
                o["resource"].as_str().unwrap_or("")
            );
            (what, o["name"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

fn the_job_role_lets_up_and_down_do_every_call_they_make() {
    let env = Env::testbed();
    let plan = env.plan("poc.yaml");
    let out = env.run(&["render", "--plan", &plan, "--job", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let docs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // kube-apiserver admits every manifest (schema, RBAC escalation rules, the Job's spec); a
    // dry run makes nothing, so the namespace the others go in is made first.
    env.kubectl(&["create", "namespace", "wbstack"]);
    // The namespace enforces Pod Security `restricted`, as the rendered Namespace asks; the
    // Job's pod template must not draw a warning from the admission plugin.
    let ns = docs.iter().find(|d| d["kind"] == "Namespace").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    env.kubectl(&[
        "label",
        "namespace",
        "wbstack",
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let all = env.dir.path().join("job.json");
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
    std::fs::write(&all, list.to_string()).unwrap();
    let applied = std::process::Command::new(common::testbed::Testbed::kubectl_bin())
        .args(["apply", "--dry-run=server", "-f", all.to_str().unwrap()])
        .env("KUBECONFIG", &env.admin)
        .output()
        .unwrap();
    let said = text(&applied);
    assert!(applied.status.success(), "{said}");
    assert!(!said.contains("PodSecurity"), "{said}");
    // The image is this release's, not a moving tag.
    let job = docs.iter().find(|d| d["kind"] == "Job").unwrap();
    let image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(
        image,
        concat!("ghcr.io/wbstack/wbstack:", env!("CARGO_PKG_VERSION"))
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(common::LICENSE));
    // With the state in S3 (rendering reads nothing there): no claim, and it is admitted too.
    let out = env.run(&[
        "render",
        "--plan",
        &plan,
        "--job",
        "--output",
        "json",
        "--state-dir",
        "s3://team-state/wbstack",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let remote: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(remote.iter().all(|d| d["kind"] != "PersistentVolumeClaim"));
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": remote});
    std::fs::write(&all, list.to_string()).unwrap();
    env.kubectl(&["apply", "--dry-run=server", "-f", all.to_str().unwrap()]);
    // The rendered ClusterRole, bound to the test bed's `wbstack-job` user and nothing else.
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let name = role["metadata"]["name"].as_str().unwrap();
    let binding = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "job-under-test"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "wbstack-job"}]});
    let rbac = env.dir.path().join("rbac.json");
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [role, binding]});
    std::fs::write(&rbac, list.to_string()).unwrap();
    env.kubectl(&["apply", "-f", rbac.to_str().unwrap()]);
    let kubeconfig = env
        .testbed
        .as_ref()
        .unwrap()
        .dir
        .join("kubeconfig/wbstack-job");
    // The PoC, and Weave with bundled ClickHouse (Keeper and shard StatefulSets, Services,
    // ConfigMaps, claims), each brought up and torn down.
    let weave = env.plan("weave-clickhouse-s3.yaml");
    for args in [
        vec!["up", "--plan", plan.as_str()],
        vec!["down", "--env", "wandb-dev"],
        vec!["up", "--plan", weave.as_str()],
        vec!["down", "--env", "wandb-weave-s3"],
    ] {
        let out = env
            .cmd(&args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} as wbstack-job; refused: {:?}\n{}",
            requests(&env, "wbstack-job", true),
            text(&out)
        );
    }
    assert_eq!(requests(&env, "wbstack-job", true), Vec::new());
    // What the role was used for, printed for the record (the granted set is the role's rules).
    let used: std::collections::BTreeSet<String> = requests(&env, "wbstack-job", false)
        .into_iter()
        .map(|(what, _)| what)
        .collect();
    eprintln!(
        "job role: {} (verb group/resource) pairs used by up and down: {used:?}",
        used.len()
    );
}
