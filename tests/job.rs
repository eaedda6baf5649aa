//! `render --job` against a real RBAC authorizer: the test bed's kube-apiserver validates the
//! Job's manifests (a server-side dry run), and `up` and `down` of the PoC run with an identity
//! bound to exactly the rendered ClusterRole (no group, no other permission). With
//! `spec.verify`, the Job may also make and remove `verify`'s probe Job and read its log in the
//! resource's namespace, and nowhere else; the probe Job passes Pod Security `restricted`.

use serde_json::Value;
use wbstack_test_support::{text, Env, Exited};

#[cfg(feature = "testbed")]
mod testbed {
    /// Needs the test bed (feature `testbed`).
    #[test]
    fn the_job_role_lets_up_and_down_do_every_call_they_make() {
        super::the_job_role_lets_up_and_down_do_every_call_they_make();
    }

    #[test]
    fn with_spec_verify_the_job_may_run_its_probe_job_and_nothing_more() {
        super::with_spec_verify_the_job_may_run_its_probe_job_and_nothing_more();
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

/// The Job's manifests for a plan (`render --job`), one JSON document each.
fn bundle(env: &Env, plan: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["render", "--plan", plan, "--job", "--output", "json"];
    args.extend(extra);
    let out = env.run(&args).succeeded();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(wbstack_test_support::LICENSE));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn apply(env: &Env, docs: &[&Value], file: &str, extra: &[&str]) -> std::process::Output {
    let path = env.dir.path().join(file);
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
    std::fs::write(&path, list.to_string()).unwrap();
    std::process::Command::new(wbstack_test_support::testbed::Testbed::kubectl_bin())
        .args(["apply", "-f", path.to_str().unwrap()])
        .args(extra)
        .env("KUBECONFIG", &env.admin)
        .output()
        .unwrap()
}

/// Applies the Job's manifests as an administrator would, with the test bed's `wbstack-job`
/// user bound beside the Job's ServiceAccount; the Job itself is only dry-run (the test bed
/// runs no container), and must draw no Pod Security warning.
fn install_bundle(env: &Env, docs: &[Value]) {
    let mut docs = docs.to_vec();
    for d in &mut docs {
        if d["kind"] == "ClusterRoleBinding" || d["kind"] == "RoleBinding" {
            let user = serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "wbstack-job"});
            d["subjects"].as_array_mut().unwrap().push(user);
        }
    }
    let (job, rest): (Vec<&Value>, Vec<&Value>) = docs.iter().partition(|d| d["kind"] == "Job");
    let out = apply(env, &rest, "bundle.json", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = apply(env, &job, "job.json", &["--dry-run=server"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("PodSecurity"), "{said}");
}

/// What `user` may do in `ns` ("" for cluster-scoped), as the test bed's authorizer answers a
/// SelfSubjectRulesReview (what `kubectl auth can-i --list` asks).
fn granted(env: &Env, user: &str, ns: &str) -> Vec<Value> {
    let review = serde_json::json!({"apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview", "spec": {"namespace": ns}});
    let path = env.dir.path().join("review.json");
    std::fs::write(&path, review.to_string()).unwrap();
    let out = env.kubectl(&[
        "create",
        "-f",
        path.to_str().unwrap(),
        "--validate=false",
        "--as",
        user,
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["status"]["resourceRules"].as_array().unwrap().clone()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The grants among `rules` outside what the plan's objects need: any `*`, `escalate` or
/// `impersonate`; `bind` but on the operator's ClusterRole; and outside the plan's namespaces,
/// any Secret and any write not limited to named objects (`names`).
fn outside(rules: &[Value], in_plan: bool, names: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for r in rules {
        let (verbs, resources, objects) = (
            strings(&r["verbs"]),
            strings(&r["resources"]),
            strings(&r["resourceNames"]),
        );
        // Every authenticated user may ask what it may do.
        if resources.iter().all(|x| x.starts_with("selfsubject")) {
            continue;
        }
        let wild = verbs.iter().chain(&resources).any(|v| *v == "*")
            || verbs.contains(&"escalate")
            || verbs.contains(&"impersonate");
        let bind = verbs.contains(&"bind")
            && (resources != ["clusterroles"] || objects != ["wandb-operator"]);
        let writes = verbs.iter().any(|v| !["get", "list", "watch"].contains(v));
        let unnamed_write = !in_plan && writes && objects.is_empty();
        let stray_names = objects.iter().any(|o| !names.contains(o));
        let secrets = !in_plan && resources.contains(&"secrets");
        if wild || bind || unnamed_write || stray_names || secrets {
            bad.push(r.to_string());
        }
    }
    bad
}

fn the_job_role_lets_up_and_down_do_every_call_they_make() {
    let env = Env::testbed();
    let plan = env.plan("poc.yaml");
    let docs = bundle(&env, &plan, &[]);
    // The Job's namespace enforces Pod Security `restricted`.
    let ns = docs.iter().find(|d| d["kind"] == "Namespace").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    // The image is this release's, not a moving tag.
    let job = docs.iter().find(|d| d["kind"] == "Job").unwrap();
    let image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert_eq!(
        image,
        concat!("ghcr.io/wbstack/wbstack:", env!("CARGO_PKG_VERSION"))
    );
    install_bundle(&env, &docs);
    // What the Job is granted, as the authorizer answers: in the plan's namespaces (`wandb`,
    // and `wandb-cr` where the operator goes), in two others and cluster-wide.
    let names = [
        "wandb",
        "wandb-cr",
        "weightsandbiases.apps.wandb.com",
        "wandb-operator",
    ];
    for (ns, in_plan) in [
        ("wandb", true),
        ("wandb-cr", true),
        ("kube-system", false),
        ("default", false),
    ] {
        let rules = granted(&env, "wbstack-job", ns);
        assert_eq!(
            outside(&rules, in_plan, &names),
            Vec::<String>::new(),
            "in {ns}"
        );
        eprintln!("granted in {ns}:");
        for r in &rules {
            eprintln!("  {r}");
        }
    }
    let listing = env.kubectl(&[
        "auth",
        "can-i",
        "--list",
        "-n",
        "kube-system",
        "--as",
        "wbstack-job",
    ]);
    eprintln!("kubectl auth can-i --list -n kube-system --as wbstack-job:\n{listing}");
    // The same authorizer, asked the questions that matter one by one.
    for (verb, what, ns) in [
        ("list", "secrets", "kube-system"),
        ("get", "secrets", "default"),
        ("bind", "clusterroles/cluster-admin", ""),
        ("escalate", "clusterroles/wandb-operator", ""),
        ("create", "clusterrolebindings", ""),
        ("delete", "namespaces/kube-system", ""),
        (
            "delete",
            "customresourcedefinitions/clickhouseinstallations.clickhouse.altinity.com",
            "",
        ),
        ("create", "deployments", "kube-system"),
    ] {
        assert!(!can(&env, verb, what, ns, None), "{verb} {what} in {ns:?}");
    }
    // With the state in S3 (rendering reads nothing there): no claim, and it is admitted too.
    let remote = bundle(&env, &plan, &["--state-dir", "s3://team-state/wbstack"]);
    assert!(remote.iter().all(|d| d["kind"] != "PersistentVolumeClaim"));
    let all: Vec<&Value> = remote.iter().collect();
    let out = apply(&env, &all, "remote.json", &["--dry-run=server"]);
    assert!(out.status.success(), "{}", text(&out));
    let kubeconfig = env
        .testbed
        .as_ref()
        .unwrap()
        .dir
        .join("kubeconfig/wbstack-job");
    // The PoC, Weave with bundled ClickHouse (Keeper and shard StatefulSets, Services,
    // ConfigMaps, claims) and Weave with Altinity, each brought up and torn down as the Job's
    // identity, each after its own manifests are applied.
    // And Weave with Altinity: the operator from its bundle, its ClusterRole and Role applied
    // with the Job's manifests (writing them needs what they grant), and a Keeper ensemble.
    let weave = env.plan("weave-clickhouse-s3.yaml");
    let altinity = env.plan("weave-altinity.yaml");
    for (plan, name) in [
        (&plan, "wandb-dev"),
        (&weave, "wandb-weave-s3"),
        (&altinity, "wandb-weave"),
    ] {
        if name != "wandb-dev" {
            install_bundle(&env, &bundle(&env, plan, &[]));
        }
        for args in [
            vec!["up", "--plan", plan.as_str()],
            vec!["down", "--env", name],
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
    }
    assert_eq!(requests(&env, "wbstack-job", true), Vec::new());
    let used: std::collections::BTreeSet<String> = requests(&env, "wbstack-job", false)
        .into_iter()
        .map(|(what, _)| what)
        .collect();
    eprintln!(
        "job role: {} (verb group/resource) pairs used by up and down: {used:?}",
        used.len()
    );
}

/// `kubectl auth can-i` as the Job's identity (`ns` "" for cluster-scoped).
fn can(env: &Env, verb: &str, what: &str, ns: &str, sub: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb, what, "--as", "wbstack-job"];
    if !ns.is_empty() {
        args.extend(["-n", ns]);
    }
    if let Some(s) = sub {
        args.extend(["--subresource", s]);
    }
    let out = std::process::Command::new(wbstack_test_support::testbed::Testbed::kubectl_bin())
        .args(&args)
        .env("KUBECONFIG", &env.admin)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

fn with_spec_verify_the_job_may_run_its_probe_job_and_nothing_more() {
    let env = Env::testbed();
    let poc = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap();
    let verified = poc.replacen("spec:\n", "spec:\n  verify: true\n", 1);
    assert_ne!(poc, verified);
    let plan = env.plan_from("verified.yaml", &verified);
    let docs = bundle(&env, &plan, &[]);
    let job = docs.iter().find(|d| d["kind"] == "Job").unwrap();
    let env_vars = &job["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env_vars
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "WBSTACK_PROBE_IMAGE"
                && e["value"] == concat!("ghcr.io/wbstack/wbstack:", env!("CARGO_PKG_VERSION"))),
        "the probe Job runs the Job's own image: {env_vars}"
    );
    install_bundle(&env, &docs);
    // In the resource's namespace: make and remove the probe Job, read its pod's log.
    assert!(can(&env, "create", "jobs", "wandb", None));
    assert!(can(&env, "delete", "jobs", "wandb", None));
    assert!(can(&env, "get", "pods", "wandb", Some("log")));
    // Nowhere else, and no token for another ServiceAccount.
    for ns in ["wandb-cr", "default", "kube-system"] {
        assert!(!can(&env, "create", "jobs", ns, None), "{ns}");
        assert!(!can(&env, "get", "pods", ns, Some("log")), "{ns}");
    }
    assert!(!can(
        &env,
        "create",
        "serviceaccounts",
        "wandb",
        Some("token")
    ));
    // The probe Job itself, as `verify` makes it, passes the API server's validation and Pod
    // Security `restricted` (the Job's own namespace enforces it), made as the Job's identity.
    let w = wbstack_verify::Wiring {
        namespace: "wbstack".into(),
        resource: "wandb".into(),
        values: serde_json::json!({"global": {"mysql": {"host": "db.example", "passwordSecret": {"name": "wbstack-mysql"}}}}),
        source: wbstack_verify::Source::Env(Default::default()),
        withheld: Vec::new(),
    };
    let order = wbstack_verify::Order::new(&w, wbstack_verify::Options::default(), None);
    let probe = wbstack_verify::ProbeJob {
        image: concat!("ghcr.io/wbstack/wbstack:", env!("CARGO_PKG_VERSION")).into(),
        limit: std::time::Duration::from_secs(120),
    };
    let manifest = serde_json::to_value(wbstack_verify::manifest(
        "wbstack-verify-check",
        "default",
        &order,
        &probe,
    ))
    .unwrap();
    let path = env.dir.path().join("probe.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let out = std::process::Command::new(wbstack_test_support::testbed::Testbed::kubectl_bin())
        .args(["create", "--dry-run=server", "-f", path.to_str().unwrap()])
        .env("KUBECONFIG", &env.admin)
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains("PodSecurity") && !said.contains("violate"),
        "{said}"
    );
}
