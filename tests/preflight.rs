//! `up` checks the cluster before its first change: a StorageClass the plan names that the
//! cluster lacks, or ClickHouse requests no node can hold, stop it with exit 6, naming the check
//! and how to skip it, and nothing is changed.

mod common;
use common::{text, Env};

#[test]
fn a_missing_storage_class_stops_up_before_any_change() {
    let env = Env::new(50);
    let plan = std::fs::read_to_string(Env::plans().join("poc.yaml"))
        .unwrap()
        .replace("storageClass: gp2", "storageClass: fast-nvme");
    let plan = env.plan_from("poc.yaml", &plan);
    let before = env.mutations();
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("preflight storage-class")
            && shown.contains("fast-nvme")
            && shown.contains("gp2, gp3, standard")
            && shown.contains("--skip-preflight storage-class"),
        "{shown}"
    );
    assert_eq!(env.mutations(), before, "nothing changed");
    let out = env.run(&["up", "--plan", &plan, "--skip-preflight", "storage-class"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains(
            "preflight node-capacity: no node can hold a ClickHouse replica, which requests 96 CPU"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(env.mutations(), before, "nothing changed");
}
