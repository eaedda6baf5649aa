//! `up` checks the cluster before its first change: a StorageClass the plan names that the
//! cluster lacks, or ClickHouse requests no node can hold, stop it with exit 6, naming the check
//! and how to skip it, and nothing is changed.

use wbstack_test_support::{on_both, text, Back, Env, Exited};

#[test]
fn a_missing_storage_class_stops_up_before_any_change() {
    let env = Env::new(50);
    let plan = std::fs::read_to_string(Env::plans().join("poc.yaml"))
        .unwrap()
        .replace("storageClass: gp2", "storageClass: fast-nvme");
    let plan = env.plan_from("poc.yaml", &plan);
    let before = env.mutations();
    let out = env.expect(&["up", "--plan", &plan], 6);
    let shown = text(&out);
    assert!(
        shown.contains("preflight storage-class")
            && shown.contains("fast-nvme")
            && shown.contains("gp2, gp3, standard")
            && shown.contains("--skip-preflight storage-class"),
        "{shown}"
    );
    assert_eq!(env.mutations(), before, "nothing changed");
    env.ok(&["up", "--plan", &plan, "--skip-preflight", "storage-class"]);
}

#[test]
fn clickhouse_requests_no_node_can_hold_stop_up() {
    let env = Env::new(50);
    let plan = std::fs::read_to_string(Env::plans().join("weave-clickhouse-s3.yaml"))
        .unwrap()
        .replace(
            "requests: {cpu: 500m, memory: 500Mi}",
            "requests: {cpu: \"96\", memory: 64Gi}",
        )
        .replace(
            "limits: {cpu: \"3\", memory: 6Gi}",
            "limits: {cpu: \"96\", memory: 64Gi}",
        );
    let plan = env.plan_from("weave.yaml", &plan);
    let before = env.mutations();
    let out = env.expect(&["up", "--plan", &plan], 6);
    assert!(
        text(&out).contains(
            "preflight node-capacity: no node can hold a ClickHouse replica, which requests 96 CPU"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(env.mutations(), before, "nothing changed");
}

/// AWS that answers for no identity (here: nothing listens where the plan's AWS is) stops `up`
/// before its first change, cluster side included; an old MySQL is refused by validation.
#[test]
fn an_aws_that_answers_for_no_identity_stops_up_and_an_old_mysql_is_refused() {
    let env = Env::new(50);
    let plan = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap().replace(
        "  mysql:\n    mode: in-cluster\n",
        "  mysql:\n    mode: in-cluster\n  bucket:\n    mode: s3\n  aws:\n    region: us-west-2\n",
    );
    let plan = env.plan_from("s3.yaml", &plan);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let before = env.mutations();
    let out = env
        .cmd(&["up", "--plan", &plan])
        .env("WBSTACK_AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
        .exited(6);
    assert!(
        text(&out).contains("preflight aws-identity")
            && text(&out).contains("--skip-preflight aws-identity"),
        "{}",
        text(&out)
    );
    assert_eq!(env.mutations(), before, "nothing changed");

    let old = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace(
            "    mode: aurora\n",
            "    mode: aurora\n    engineVersion: 8.0.mysql_aurora.3.02.0\n",
        );
    // The line the version is on, counted from the plan's own text.
    let line = 1 + old
        .lines()
        .position(|l| l.contains("engineVersion: 8.0.mysql_aurora.3.02.0"))
        .unwrap();
    let old = env.plan_from("old.yaml", &old);
    let out = env.expect(&["validate", &old], 2);
    assert!(
        text(&out).contains(&format!("old.yaml:{line}:20:"))
            && text(&out).contains("older than 3.04"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_ingress_class_the_cluster_lacks_stops_up_before_any_change() {
    let env = Env::new(50);
    let plan = std::fs::read_to_string(Env::plans().join("poc.yaml"))
        .unwrap()
        .replace(
            "    license:\n",
            "    ingress:\n      class: traefik\n    license:\n",
        );
    assert!(plan.contains("class: traefik"));
    let plan = env.plan_from("poc.yaml", &plan);
    let before = env.mutations();
    let out = env.expect(&["up", "--plan", &plan], 6);
    let shown = text(&out);
    assert!(
        shown.contains("preflight ingress-class")
            && shown.contains("IngressClass traefik")
            && shown.contains("it has: alb, nginx")
            && shown.contains("--skip-preflight ingress-class"),
        "{shown}"
    );
    assert_eq!(env.mutations(), before, "nothing changed");
    // The class the cluster has passes.
    let ok = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("class: traefik", "class: nginx");
    let ok = env.plan_from("poc-nginx.yaml", &ok);
    env.ok(&["up", "--plan", &ok]);
}

#[test]
fn pull_secrets_must_exist_first_and_every_pod_then_pulls_with_them() {
    let env = Env::new(50);
    let plan = std::fs::read_to_string(Env::plans().join("weave-clickhouse-s3.yaml"))
        .unwrap()
        .replace(
            "  kubernetes:\n",
            "  images:\n    registry: mirror.corp.example\n    pullSecrets: [corp-mirror]\n  kubernetes:\n",
        );
    assert!(plan.contains("pullSecrets: [corp-mirror]"));
    let plan = env.plan_from("mirror.yaml", &plan);
    let before = env.mutations();
    let out = env.expect(&["up", "--plan", &plan], 6);
    assert!(
        text(&out).contains("preflight pull-secrets")
            && text(&out).contains("Secret corp-mirror, which namespace wandb does not have"),
        "{}",
        text(&out)
    );
    assert_eq!(env.mutations(), before, "nothing changed");
    let operator_ns = "wandb-cr";
    for ns in ["wandb", operator_ns] {
        env.kubectl(&["create", "namespace", ns]);
        env.kubectl(&[
            "create",
            "secret",
            "docker-registry",
            "corp-mirror",
            "-n",
            ns,
            "--docker-server=mirror.corp.example",
            "--docker-username=ci",
            "--docker-password=not-a-real-one",
        ]);
    }
    env.ok(&["up", "--plan", &plan]);
    let pulls = |kind: &str, name: &str, ns: &str| {
        env.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.spec.imagePullSecrets[*].name} {.spec.template.spec.containers[0].image}",
        ])
    };
    assert_eq!(
        pulls("statefulset", "wbstack-clickhouse-shard0", "wandb"),
        "corp-mirror mirror.corp.example/clickhouse/clickhouse-server:24.8"
    );
    assert_eq!(
        pulls("statefulset", "wbstack-clickhouse-keeper", "wandb"),
        "corp-mirror mirror.corp.example/clickhouse/clickhouse-keeper:24.8"
    );
    let op = pulls(
        "deployment",
        "wandb-operator-controller-manager",
        operator_ns,
    );
    assert!(
        op.starts_with("corp-mirror mirror.corp.example/wandb/controller:"),
        "{op}"
    );
    let values = env.kubectl(&[
        "get",
        "wandb",
        "wandb",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.spec.values.global.imagePullSecrets[*].name} {.spec.values.global.imageRegistry}",
    ]);
    assert_eq!(values, "corp-mirror mirror.corp.example");
}

#[test]
fn a_weave_variable_weave_does_not_read_stops_up_naming_the_one_meant() {
    let env = Env::new(50);
    let plan = std::fs::read_to_string(Env::plans().join("weave-clickhouse-s3.yaml"))
        .unwrap()
        .replace(
            "    weave:\n      enabled: true\n",
            "    weave:\n      enabled: true\n    values:\n      weave:\n        extraEnv:\n          WF_CLICKHOUSE_MAX_MEMORY: \"10000000000\"\n",
        );
    assert!(plan.contains("WF_CLICKHOUSE_MAX_MEMORY:"));
    let plan = env.plan_from("weave.yaml", &plan);
    let before = env.mutations();
    let out = env.expect(&["up", "--plan", &plan], 6);
    assert!(
        text(&out).contains("preflight weave-env: spec.wandb.values.weave.extraEnv.WF_CLICKHOUSE_MAX_MEMORY sets WF_CLICKHOUSE_MAX_MEMORY, which Weave does not read; did you mean WF_CLICKHOUSE_MAX_MEMORY_USAGE?"),
        "{}",
        text(&out)
    );
    assert_eq!(env.mutations(), before, "nothing changed");
    env.ok(&["up", "--plan", &plan, "--skip-preflight", "weave-env"]);
}

/// A cluster smaller than the plan's size (the reference architecture's nodes, in all) stops
/// `up` naming the shortfall; a node coming back, or `--skip-preflight capacity`, lets it go.
#[test]
fn a_cluster_smaller_than_the_plans_size_stops_up_naming_the_shortfall() {
    let env = Env::new(50);
    let plan = env.plan("weave-altinity.yaml");
    // The emulator's three nodes have 64 CPU and 512Gi each; cordoned, they offer nothing.
    for n in ["emulated-node-0", "emulated-node-1", "emulated-node-2"] {
        env.kubectl(&["cordon", n]);
    }
    let before = env.mutations();
    let out = env.expect(&["up", "--plan", &plan], 6);
    let shown = text(&out);
    assert!(
        shown.contains("preflight capacity: size medium asks for 5 nodes of 8 CPU and 32 GiB")
            && shown.contains("0 schedulable, ready nodes have 0 CPU and 0 GiB allocatable")
            && shown.contains("40 CPU and 160 GiB of memory short")
            && shown.contains("--skip-preflight capacity"),
        "{shown}"
    );
    assert_eq!(env.mutations(), before, "nothing changed");
    env.kubectl(&["uncordon", "emulated-node-1"]);
    env.ok(&["up", "--plan", &plan]);
}

/// Where the plan's volumes go and whether the cluster can hold them, as the API server has it:
/// with no class named and none marked default, `up` stops naming what would wait unbound; where
/// the class's driver publishes `CSIStorageCapacity` (here one object per zone, as
/// external-provisioner writes them), too little in all, or a volume larger than the driver
/// can make, stops it naming the shortfall. Nothing is changed; the check can be skipped.
fn storage_the_cluster_cannot_give_stops_up(back: Back) {
    let env = Env::on(back, 50);
    let plan = env.plan("weave-clickhouse-s3.yaml");
    let default = "storageclass.kubernetes.io/is-default-class";
    env.kubectl(&[
        "annotate",
        "storageclass",
        "standard",
        &format!("{default}=false"),
        "--overwrite",
    ]);
    let before = env.mutations();
    let shown = text(&env.expect(&["up", "--plan", &plan], 6));
    assert!(
        shown.contains(
            "preflight storage-class: the plan names no StorageClass (spec.kubernetes.storageClass) \
             and the cluster has no default one, so the volumes of ClickHouse (3 x 200Gi), \
             ClickHouse Keeper (3 x 10Gi), the chart's MySQL, the chart's Redis would wait unbound; \
             name one (the cluster has: gp2, gp3, standard)"
        ) && shown.contains("--skip-preflight storage-class"),
        "{shown}"
    );
    assert_eq!(env.mutations(), before, "nothing changed");
    env.kubectl(&[
        "annotate",
        "storageclass",
        "standard",
        &format!("{default}=true"),
        "--overwrite",
    ]);
    let zones: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|z| {
            format!(
                "apiVersion: storage.k8s.io/v1\nkind: CSIStorageCapacity\nmetadata: {{name: csisc-{z}, namespace: kube-system}}\n\
                 storageClassName: standard\ncapacity: 200Gi\nmaximumVolumeSize: 150Gi\n\
                 nodeTopology: {{matchLabels: {{topology.kubernetes.io/zone: us-east-1{z}}}}}\n"
            )
        })
        .collect();
    let file = env.dir.path().join("capacity.yaml");
    std::fs::write(&file, zones.join("---\n")).unwrap();
    env.kubectl(&["apply", "-f", file.to_str().unwrap()]);
    let before_capacity = env.mutations();
    let shown = text(&env.expect(&["up", "--plan", &plan], 6));
    assert!(
        shown.contains(
            "preflight storage-capacity: StorageClass standard's driver publishes 600 GiB in all \
             (3 CSIStorageCapacity objects): ClickHouse (3 x 200Gi), ClickHouse Keeper (3 x 10Gi) \
             claim 630 GiB in all; ClickHouse claims volumes of 200Gi, larger than the 150 GiB the \
             largest can be"
        ),
        "{shown}"
    );
    assert_eq!(env.mutations(), before_capacity, "nothing changed");
    env.ok(&[
        "up",
        "--plan",
        &plan,
        "--skip-preflight",
        "storage-capacity",
    ]);
}

on_both!(storage_the_cluster_cannot_give_stops_up);
