//! A persisted cluster survives a restart, CRD-defined kinds included.

use kube_emulator::{Config, Emulator};
use serde_json::json;

#[tokio::test]
async fn a_persisted_cluster_comes_back_with_its_objects_and_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let emu = Emulator::new(Config::default()).persisted(&path).unwrap();
    let running = emu.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let c = running.cluster.clone();
    let crd_rt = c
        .resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .unwrap();
    let crd: serde_json::Value =
        serde_yaml_ng::from_str(wbstack_test_support::emulator::WANDB_CRD).unwrap();
    c.create(&crd_rt, None, crd, "test").unwrap();
    let ns_rt = c.resource("", "v1", "namespaces").unwrap();
    c.create(&ns_rt, None, json!({"metadata": {"name": "wandb"}}), "test")
        .unwrap();
    let w_rt = c
        .resource("apps.wandb.com", "v1", "weightsandbiases")
        .unwrap();
    c.create(&w_rt, Some("wandb"), json!({"apiVersion": "apps.wandb.com/v1", "kind": "WeightsAndBiases", "metadata": {"name": "wandb"}, "spec": {"values": {}}}), "test").unwrap();
    let rv = c.resource_version();
    running.stop();

    let again = Emulator::new(Config::default()).persisted(&path).unwrap();
    let c2 = again.cluster();
    let w_rt = c2
        .resource("apps.wandb.com", "v1", "weightsandbiases")
        .expect("the CRD's kind is served again");
    let w = c2.get(&w_rt, "wandb", "wandb").unwrap();
    assert_eq!(w["spec"], json!({"values": {}}));
    assert!(
        c2.resource_version() >= rv,
        "resourceVersions keep increasing"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    assert!(Emulator::new(Config::default()).persisted(&bad).is_err());
}
