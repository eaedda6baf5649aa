//! The Weave patterns end to end: bundled ClickHouse (Keeper, shards x replicas, S3 disk) and an
//! Altinity ClickHouseInstallation, each followed by the WeightsAndBiases resource.

use wbstack_test_support::on_both;
use wbstack_test_support::{text, Back, Env};

fn weave_with_bundled_clickhouse_comes_up_and_goes_away(back: Back) {
    let env = Env::on(back, 150);
    let plan = env.plan("weave-clickhouse-s3.yaml");
    env.ok(&["up", "--plan", &plan]);
    let awaited = env.release_workloads("wandb", "wandb");
    assert!(
        awaited.contains(&"Deployment/wandb-weave-bc".to_owned()),
        "{awaited:?}"
    );
    // Keeper and the shard are StatefulSets, ready, with the replicas the plan asks for.
    let sts = env.kubectl(&[
        "get",
        "sts",
        "-n",
        "wandb",
        "-l",
        "app.kubernetes.io/instance=wbstack-clickhouse",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.readyReplicas} {end}",
    ]);
    assert_eq!(
        sts.trim(),
        "wbstack-clickhouse-keeper=3 wbstack-clickhouse-shard0=3",
        "{sts}"
    );
    let xml = env.kubectl(&[
        "get",
        "cm",
        "wbstack-clickhouse-config",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.data.wbstack\\.xml}",
    ]);
    for needle in [
        "<cluster_1S_3R>",
        "<storage_policy>s3_main</storage_policy>",
        "<use_environment_credentials>true</use_environment_credentials>",
        "<level>information</level>",
        "<endpoint>/metrics</endpoint>",
        "wbstack-clickhouse-keeper-2.wbstack-clickhouse-keeper-headless.wandb.svc.cluster.local",
    ] {
        assert!(
            xml.contains(needle),
            "{needle} missing from the server configuration"
        );
    }
    // The password reaches ClickHouse only through a Secret reference.
    let env_json = env.kubectl(&["get", "sts", "wbstack-clickhouse-shard0", "-n", "wandb", "-o", "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"CLICKHOUSE_PASSWORD\")].valueFrom.secretKeyRef.name}"]);
    assert_eq!(env_json, "wbstack-clickhouse");
    let ch = env.kubectl(&["get", "wandb", "wandb", "-n", "wandb", "-o", "jsonpath={.spec.values.global.clickhouse.host}:{.spec.values.global.clickhouse.port} {.spec.values.global.clickhouse.replicated} {.spec.values.global.weave-trace.enabled} {.spec.values.weave-trace.install}"]);
    assert_eq!(
        ch,
        "wbstack-clickhouse.wandb.svc.cluster.local:8123 true true true"
    );
    let cr = env.kubectl(&["get", "wandb", "wandb", "-n", "wandb", "-o", "json"]);
    assert!(!cr.contains("\"password\""), "no password in the resource");
    env.ok(&["down", "--env", "wandb-weave-s3"]);
    let left: Vec<_> = env
        .objects()
        .into_iter()
        .filter(|(_, ns, _)| ns == "wandb")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// With the Altinity operator (the emulator's stand-in, or on the test bed one that makes a
/// StatefulSet per host for the real controllers), `up` waits for the installation's task to
/// complete, and `down` leaves nothing in the namespace.
fn weave_with_altinity_clickhouse_waits_for_the_installation(back: Back) {
    let env = Env::on(back, 150);
    let plan = env.plan("weave-altinity.yaml");
    env.ok(&["up", "--plan", &plan]);
    // Release `wandb-weave` contains the alias `weave`: the chart names weave's Deployment
    // `wandb-weave-bc`, and that is what was awaited.
    let awaited = env.release_workloads("wandb", "wandb-weave");
    assert!(
        awaited.contains(&"Deployment/wandb-weave-bc".to_owned()),
        "{awaited:?}"
    );
    assert!(
        !awaited.iter().any(|w| w.contains("weave-weave-bc")),
        "{awaited:?}"
    );
    assert_eq!(
        env.kubectl(&[
            "get",
            "chi",
            "weave-clickhouse",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.status.status} {.status.hostsCompleted}/{.status.hosts}"
        ]),
        "Completed 2/2"
    );
    if back == Back::Testbed {
        // The real StatefulSet controller made one pod per host, and KWOK made them ready.
        let pods = env.kubectl(&["get", "pods", "-n", "wandb", "-l", "clickhouse.altinity.com/chi=weave-clickhouse", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}"]);
        assert_eq!(
            pods.trim(),
            "chi-weave-clickhouse-weave-cluster-0-0-0=True chi-weave-clickhouse-weave-cluster-0-1-0=True"
        );
    }
    let users = env.kubectl(&[
        "get",
        "chi",
        "weave-clickhouse",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.spec.configuration.users}",
    ]);
    assert!(
        users.contains("k8s_secret_password")
            && users.contains("wandb/wbstack-clickhouse/CLICKHOUSE_PASSWORD"),
        "{users}"
    );
    assert!(!users.contains("wandb/password\""), "{users}");
    assert_eq!(
        env.kubectl(&[
            "get",
            "secret",
            "weave-worker-auth",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.metadata.name}"
        ]),
        "weave-worker-auth"
    );
    let host = env.kubectl(&["get", "wandb", "wandb-weave", "-n", "wandb", "-o", "jsonpath={.spec.values.global.clickhouse.host} {.spec.values.global.clickhouse.replicated}"]);
    assert_eq!(
        host,
        "clickhouse-weave-clickhouse.wandb.svc.cluster.local true"
    );
    // The operator wbstack installed from Altinity's bundle, and the Keeper ensemble it made,
    // whose Service the installation names.
    assert_eq!(
        env.kubectl(&["get", "deploy", "-n", "clickhouse-operator", "-l", "app=clickhouse-operator", "-o", "jsonpath={.items[0].metadata.labels.app\\.kubernetes\\.io/managed-by} {.items[0].status.readyReplicas}"]),
        "wbstack 1"
    );
    assert_eq!(
        env.kubectl(&[
            "get",
            "chk",
            "weave-keeper",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.status.status} {.status.hosts}"
        ]),
        "Completed 3"
    );
    assert_eq!(
        env.kubectl(&["get", "chi", "weave-clickhouse", "-n", "wandb", "-o", "jsonpath={.spec.configuration.zookeeper.nodes[0].host}:{.spec.configuration.zookeeper.nodes[0].port}"]),
        "keeper-weave-keeper.wandb.svc.cluster.local:2181"
    );
    env.ok(&["down", "--env", "wandb-weave"]);
    // Events are the controllers' records (Kubernetes expires them after an hour), not resources
    // of the environment: the test bed's controllers can still be writing one about the
    // operator's metrics Service as its namespace goes.
    let left: Vec<_> = env
        .objects()
        .into_iter()
        .filter(|(kind, _, _)| kind != "Event")
        .filter(|(kind, ns, name)| {
            ns == "wandb"
                || ns == "clickhouse-operator"
                || (kind == "Namespace" && name == "clickhouse-operator")
                || name.contains("altinity.com")
                || name.starts_with("clickhouse-operator")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// An Altinity operator already running (the bundle applied by someone else, in its own
/// namespace) is used as it is: `up` installs none, and `down` leaves it and its CRDs.
fn an_altinity_operator_already_running_is_used_and_kept(back: Back) {
    let env = Env::on(back, 150);
    let bundle = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/altinity/install-bundle-0.25.6.yaml");
    // Server-side: the CRDs are too large for kubectl's last-applied annotation.
    env.kubectl(&["apply", "--server-side", "-f", bundle.to_str().unwrap()]);
    let plan = env.plan("weave-altinity.yaml");
    env.ok(&["up", "--plan", &plan]);
    let ns = env.kubectl(&["get", "ns", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert!(!ns.contains("clickhouse-operator"), "{ns}");
    assert_eq!(
        env.kubectl(&[
            "get",
            "chi",
            "weave-clickhouse",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.status.status}"
        ]),
        "Completed"
    );
    env.ok(&["down", "--env", "wandb-weave"]);
    assert_eq!(
        env.kubectl(&[
            "get",
            "deploy",
            "clickhouse-operator",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.metadata.name}"
        ]),
        "clickhouse-operator"
    );
    let crds = env.kubectl(&["get", "crd", "-o", "name"]);
    assert!(
        crds.contains("clickhouseinstallations.clickhouse.altinity.com"),
        "{crds}"
    );
    let chi = env.kubectl(&["get", "chi", "-A", "-o", "name"]);
    assert!(chi.trim().is_empty(), "{chi}");
}

/// A ClickHouse applied part-way (a kill between two of its objects, or one deleted by hand) is
/// finished by the next run, not waited on.
fn bundled_clickhouse_missing_an_object_is_applied_again(back: Back) {
    let env = Env::on(back, 100);
    let plan = env.plan("weave-clickhouse-s3.yaml");
    env.ok(&["up", "--plan", &plan]);
    env.kubectl(&["delete", "sts", "wbstack-clickhouse-shard0", "-n", "wandb"]);
    env.ok(&["up", "--plan", &plan, "--timeout", "90"]);
    let ready = env.kubectl(&[
        "get",
        "sts",
        "wbstack-clickhouse-shard0",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(ready, "3");
}

on_both!(
    weave_with_bundled_clickhouse_comes_up_and_goes_away,
    weave_with_altinity_clickhouse_waits_for_the_installation,
    an_altinity_operator_already_running_is_used_and_kept,
    bundled_clickhouse_missing_an_object_is_applied_again,
);

/// The shipped Altinity plan with one more `spec.clickhouse` line.
fn altinity_plan_with(env: &Env, line: &str) -> String {
    let text = std::fs::read_to_string(Env::plans().join("weave-altinity.yaml")).unwrap();
    let yaml = text.replace(
        "    mode: altinity\n",
        &format!("    mode: altinity\n    {line}\n"),
    );
    env.plan_from("altinity.yaml", &yaml)
}

/// `altinityOperator.install: never` with no operator in the cluster fails at once, naming what
/// is missing, before any installation is written.
#[test]
fn an_altinity_plan_that_requires_an_operator_fails_at_once_without_one() {
    let env = Env::new(50);
    let plan = altinity_plan_with(&env, "altinityOperator: {install: never}");
    let out = env.expect(&["up", "--plan", &plan, "--timeout", "600"], 1);
    let t = text(&out);
    assert!(
        t.contains("the Altinity ClickHouse operator is not installed")
            && t.contains("spec.clickhouse.altinityOperator.install is `never`"),
        "{t}"
    );
    let objects = env.objects();
    assert!(
        !objects.iter().any(|(k, _, _)| k.starts_with("ClickHouse")),
        "{objects:?}"
    );
}

/// A ZooKeeper named by an in-cluster Service that does not exist fails the installation's step
/// at once, naming the Service; nothing would ever make it.
#[test]
fn a_named_zookeeper_service_that_does_not_exist_fails_at_once() {
    let env = Env::new(50);
    let plan = altinity_plan_with(
        &env,
        "zookeeperHost: zookeeper.zookeeper.svc.cluster.local:2181",
    );
    let out = env.expect(&["up", "--plan", &plan, "--timeout", "600"], 1);
    let t = text(&out);
    assert!(
        t.contains("names Service zookeeper/zookeeper, which does not exist"),
        "{t}"
    );
    // Once it exists, the same plan comes up, with no Keeper of wbstack's.
    env.kubectl(&["create", "namespace", "zookeeper"]);
    env.kubectl(&[
        "create",
        "service",
        "clusterip",
        "zookeeper",
        "-n",
        "zookeeper",
        "--tcp=2181",
    ]);
    env.ok(&["up", "--plan", &plan]);
    let chk = env.kubectl(&["get", "chk", "-A", "-o", "name"]);
    assert!(chk.trim().is_empty(), "{chk}");
}
