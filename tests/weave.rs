//! The Weave patterns end to end: bundled ClickHouse (Keeper, shards x replicas, S3 disk) and an
//! Altinity ClickHouseInstallation, each followed by the WeightsAndBiases resource.

mod common;
use common::{text, Back, Env};

fn weave_with_bundled_clickhouse_comes_up_and_goes_away(back: Back) {
    let env = Env::on(back, 150);
    let plan = env.plan("weave-clickhouse-s3.yaml");
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    let out = env.run(&["down", "--env", "wandb-weave-s3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    let out = env.run(&["down", "--env", "wandb-weave"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let left: Vec<_> = env
        .objects()
        .into_iter()
        .filter(|(_, ns, _)| ns == "wandb")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A ClickHouse applied part-way (a kill between two of its objects, or one deleted by hand) is
/// finished by the next run, not waited on.
fn bundled_clickhouse_missing_an_object_is_applied_again(back: Back) {
    let env = Env::on(back, 100);
    let plan = env.plan("weave-clickhouse-s3.yaml");
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    env.kubectl(&["delete", "sts", "wbstack-clickhouse-shard0", "-n", "wandb"]);
    let out = env.run(&["up", "--plan", &plan, "--timeout", "90"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    bundled_clickhouse_missing_an_object_is_applied_again,
);
