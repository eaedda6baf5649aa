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

/// The requests the audit log records as refused to `user`.
fn forbidden(env: &Env, user: &str) -> Vec<String> {
    let tb = env.testbed.as_ref().unwrap();
    std::fs::read_to_string(tb.dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["user"]["username"] == user && e["responseStatus"]["code"] == 403)
        .map(|e| {
            let o = &e["objectRef"];
            format!(
                "{} {}/{} {}",
                e["verb"].as_str().unwrap_or(""),
                o["apiGroup"].as_str().unwrap_or(""),
                o["resource"].as_str().unwrap_or(""),
                o["name"].as_str().unwrap_or("")
            )
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
    let all = env.dir.path().join("job.json");
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
    std::fs::write(&all, list.to_string()).unwrap();
    env.kubectl(&["apply", "--dry-run=server", "-f", all.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(common::LICENSE));
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
            forbidden(&env, "wbstack-job"),
            text(&out)
        );
    }
    assert_eq!(forbidden(&env, "wbstack-job"), Vec::<String>::new());
    // What the role was used for, printed for the record (the granted set is the role's rules).
    let tb = env.testbed.as_ref().unwrap();
    let mut used = std::collections::BTreeSet::new();
    for e in std::fs::read_to_string(tb.dir.join("audit.log"))
        .unwrap()
        .lines()
    {
        let Ok(e) = serde_json::from_str::<Value>(e) else {
            continue;
        };
        if e["user"]["username"] == "wbstack-job" {
            let o = &e["objectRef"];
            used.insert(format!(
                "{}/{} {}",
                o["apiGroup"].as_str().unwrap_or(""),
                o["resource"].as_str().unwrap_or(""),
                e["verb"].as_str().unwrap_or("")
            ));
        }
    }
    eprintln!(
        "job role: {} (group/resource verb) pairs used by up and down: {used:?}",
        used.len()
    );
}
