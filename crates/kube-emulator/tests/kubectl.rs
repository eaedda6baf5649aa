//! Conformance: the real kubectl against the emulator, asserting on kubectl's own output.

use wbstack_test_support::emulator::{Server, CHI_CRD, OPERATOR, WANDB_CRD};

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: wandb
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1"}]}
"#;

#[test]
fn apply_creates_then_configures_then_leaves_unchanged_and_waits() {
    let s = Server::start();
    assert_eq!(
        s.ok(&["create", "namespace", "wandb"]).trim(),
        "namespace/wandb created"
    );
    let f = s.file("d.yaml", DEPLOY);
    assert_eq!(
        s.ok(&["apply", "-f", &f]).trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        s.ok(&["apply", "-f", &f]).trim(),
        "deployment.apps/web unchanged"
    );
    let f2 = s.file("d2.yaml", &DEPLOY.replace("nginx:1", "nginx:2"));
    assert_eq!(
        s.ok(&["apply", "-f", &f2]).trim(),
        "deployment.apps/web configured"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}"
        ]),
        "nginx:2 2"
    );
    assert!(s
        .ok(&[
            "wait",
            "--for=jsonpath={.status.readyReplicas}=2",
            "deploy/web",
            "-n",
            "wandb",
            "--timeout=20s"
        ])
        .contains("condition met"));
    assert!(s
        .ok(&[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "-n",
            "wandb",
            "--timeout=20s"
        ])
        .contains("condition met"));
    let table = s.ok(&["get", "deploy", "-n", "wandb"]);
    assert!(table.starts_with("NAME   READY"), "{table}");
    assert!(table.contains("web    2/2"), "{table}");
}

#[test]
fn label_selectors_filter_gets() {
    let s = Server::start();
    s.ok(&["create", "namespace", "wandb"]);
    for (name, tier) in [("a", "front"), ("b", "back"), ("c", "front")] {
        s.ok(&["create", "configmap", name, "-n", "wandb"]);
        s.ok(&[
            "label",
            "configmap",
            name,
            "-n",
            "wandb",
            &format!("tier={tier}"),
        ]);
    }
    let names = |sel: &str| {
        s.ok(&[
            "get",
            "cm",
            "-n",
            "wandb",
            "-l",
            sel,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
    };
    assert_eq!(names("tier=front"), "a c");
    assert_eq!(names("tier!=front"), "b");
    assert_eq!(names("tier in (back,side)"), "b");
    assert_eq!(names("tier notin (back)"), "a c");
    assert_eq!(names("tier"), "a b c");
    assert_eq!(names("!tier"), "");
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "-A",
            "--field-selector",
            "metadata.name=b",
            "-o",
            "jsonpath={.items[*].metadata.namespace}"
        ]),
        "wandb"
    );
}

#[test]
fn server_side_apply_owns_fields_reports_conflicts_and_forces() {
    let s = Server::start();
    s.ok(&["create", "namespace", "wandb"]);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: wandb}\ndata: {a: \"1\", b: \"2\"}\n";
    let f = s.file("cm.yaml", cm);
    assert_eq!(
        s.ok(&["apply", "--server-side", "-f", &f]).trim(),
        "configmap/cfg serverside-applied"
    );
    // Dropping a field from the applied configuration removes it.
    let f = s.file("cm.yaml", &cm.replace("b: \"2\"", "c: \"3\""));
    s.ok(&["apply", "--server-side", "-f", &f]);
    assert_eq!(
        s.ok(&["get", "cm", "cfg", "-n", "wandb", "-o", "jsonpath={.data}"]),
        r#"{"a":"1","c":"3"}"#
    );
    // Another manager changes a field: applying again conflicts, --force-conflicts wins.
    s.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "wandb",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"c":"x"}}"#,
    ]);
    let err = s.fails(&["apply", "--server-side", "-f", &f]);
    assert!(
        err.contains("conflict with \"kubectl-patch\"") && err.contains(".data.c"),
        "{err}"
    );
    s.ok(&["apply", "--server-side", "--force-conflicts", "-f", &f]);
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "cfg",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.data.c}"
        ]),
        "3"
    );
    let managers = s.ok(&[
        "get",
        "cm",
        "cfg",
        "-n",
        "wandb",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("kubectl"), "{managers}");
}

#[test]
fn patch_replace_and_stale_writes() {
    let s = Server::start();
    s.ok(&["create", "namespace", "wandb"]);
    s.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "wandb",
        "--from-literal=a=1",
    ]);
    assert_eq!(
        s.ok(&[
            "patch",
            "cm",
            "cfg",
            "-n",
            "wandb",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"b":"2"}}"#
        ])
        .trim(),
        "configmap/cfg patched"
    );
    s.ok(&[
        "patch",
        "cm",
        "cfg",
        "-n",
        "wandb",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/data/a"}]"#,
    ]);
    assert_eq!(
        s.ok(&["get", "cm", "cfg", "-n", "wandb", "-o", "jsonpath={.data}"]),
        r#"{"b":"2"}"#
    );
    let live = s.ok(&["get", "cm", "cfg", "-n", "wandb", "-o", "yaml"]);
    let f = s.file("live.yaml", &live.replace("b: \"2\"", "b: \"3\""));
    assert_eq!(
        s.ok(&["replace", "-f", &f]).trim(),
        "configmap/cfg replaced"
    );
    // The same file again carries a resourceVersion that is now stale.
    let err = s.fails(&["replace", "-f", &f]);
    assert!(err.contains("the object has been modified"), "{err}");
    let err = s.fails(&["create", "configmap", "cfg", "-n", "wandb"]);
    assert!(err.contains("configmaps \"cfg\" already exists"), "{err}");
    let err = s.fails(&["get", "cm", "nope", "-n", "wandb"]);
    assert!(
        err.contains("NotFound") && err.contains("configmaps \"nope\" not found"),
        "{err}"
    );
    let err = s.fails(&["create", "configmap", "Bad_Name", "-n", "wandb"]);
    assert!(
        err.contains("is invalid") && err.contains("RFC 1123"),
        "{err}"
    );
}

#[test]
fn watch_reports_each_event_and_delete_waits() {
    let s = Server::start();
    s.ok(&["create", "namespace", "wandb"]);
    let mut watch = std::process::Command::new(wbstack_test_support::emulator::kubectl())
        .args([
            "get",
            "cm",
            "-n",
            "wandb",
            "-w",
            "--output-watch-events",
            "--request-timeout=5s",
        ])
        .env("KUBECONFIG", &s.kubeconfig)
        .env("HOME", s.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Start changing things once kubectl's watch is open (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.running().stats()["watches"].as_u64() == Some(0) && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.ok(&["create", "configmap", "w1", "-n", "wandb"]);
    s.ok(&["label", "configmap", "w1", "-n", "wandb", "x=y"]);
    assert_eq!(
        s.ok(&["delete", "configmap", "w1", "-n", "wandb", "--wait"])
            .trim(),
        "configmap \"w1\" deleted"
    );
    // Read what kubectl prints until the deletion shows up (bounded wait).
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
        let done = line.starts_with("DELETED");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let text = lines.join("\n");
    let events: Vec<(&str, &str)> = lines
        .iter()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, w.next()?))
        })
        .collect();
    assert_eq!(
        events,
        vec![("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")],
        "{text}"
    );
}

/// A Deployment labelled as the Altinity operator's.
const ALTINITY_OPERATOR: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clickhouse-operator, namespace: wandb, labels: {app: clickhouse-operator}}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: clickhouse-operator}}\n  template:\n    metadata: {labels: {app: clickhouse-operator}}\n    spec: {containers: [{name: clickhouse-operator, image: altinity/clickhouse-operator:0.25.6}]}\n";

#[test]
fn a_crd_makes_its_kind_servable_until_deleted() {
    let s = Server::start();
    s.ok(&["create", "namespace", "wandb"]);
    let f = s.file("crd.yaml", CHI_CRD);
    s.ok(&["apply", "-f", &f]);
    assert!(s
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/clickhouseinstallations.clickhouse.altinity.com",
            "--timeout=10s"
        ])
        .contains("condition met"));
    // The operator, as its install bundle labels it: the stand-in acts while it is ready.
    let f = s.file("operator.yaml", ALTINITY_OPERATOR);
    s.ok(&["apply", "-f", &f]);
    let chi = "apiVersion: clickhouse.altinity.com/v1\nkind: ClickHouseInstallation\nmetadata: {name: weave, namespace: wandb}\nspec:\n  configuration:\n    clusters: [{name: weave-cluster, layout: {shardsCount: 1, replicasCount: 2}}]\n";
    let f = s.file("chi.yaml", chi);
    assert_eq!(
        s.ok(&["apply", "-f", &f]).trim(),
        "clickhouseinstallation.clickhouse.altinity.com/weave created"
    );
    assert!(s
        .ok(&[
            "wait",
            "--for=jsonpath={.status.status}=Completed",
            "chi/weave",
            "-n",
            "wandb",
            "--timeout=20s"
        ])
        .contains("condition met"));
    assert_eq!(
        s.ok(&[
            "get",
            "chi",
            "weave",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.status.hosts} {.status.hostsCompleted} {.status.endpoint}"
        ]),
        "2 2 clickhouse-weave.wandb.svc.cluster.local"
    );
    let f = s.file(
        "chi2.yaml",
        &chi.replace("replicasCount: 2", "replicasCount: 3"),
    );
    assert_eq!(
        s.ok(&["apply", "-f", &f]).trim(),
        "clickhouseinstallation.clickhouse.altinity.com/weave configured"
    );
    s.ok(&[
        "delete",
        "crd",
        "clickhouseinstallations.clickhouse.altinity.com",
        "--wait",
        "--timeout=20s",
    ]);
    let err = s.fails(&["get", "chi", "-n", "wandb"]);
    assert!(
        err.contains("doesn't have a resource type") || err.contains("the server could not find"),
        "{err}"
    );
}

#[test]
fn deleting_a_namespace_deletes_its_contents_and_waits_for_finalizers() {
    let s = Server::start();
    s.ok(&["create", "namespace", "gone"]);
    s.ok(&["create", "configmap", "c", "-n", "gone"]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "-n",
        "gone",
        "--from-literal=p=x",
    ]);
    s.ok(&[
        "patch",
        "cm",
        "c",
        "-n",
        "gone",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.ok(&["delete", "namespace", "gone", "--wait=false"]);
    assert_eq!(
        s.ok(&["get", "ns", "gone", "-o", "jsonpath={.status.phase}"]),
        "Terminating"
    );
    let err = s.fails(&["create", "configmap", "late", "-n", "gone"]);
    assert!(err.contains("being terminated"), "{err}");
    s.ok(&[
        "patch",
        "cm",
        "c",
        "-n",
        "gone",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    s.ok(&["wait", "--for=delete", "namespace/gone", "--timeout=10s"]);
    let err = s.fails(&["get", "secret", "pw", "-n", "gone"]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn the_wandb_stand_in_installs_workloads_and_hangs_deletion_without_the_operator() {
    let s = Server::start();
    s.ok(&["create", "namespace", "wandb"]);
    s.ok(&["apply", "-f", &s.file("crd.yaml", WANDB_CRD)]);
    s.ok(&["apply", "-f", &s.file("op.yaml", OPERATOR)]);
    s.ok(&[
        "wait",
        "--for=condition=Available",
        "deploy/wandb-operator",
        "-n",
        "wandb",
        "--timeout=20s",
    ]);
    let cr = "apiVersion: apps.wandb.com/v1\nkind: WeightsAndBiases\nmetadata: {name: wandb, namespace: wandb}\nspec:\n  values:\n    global: {host: \"https://wandb.example.com\", license: lic, api: {enabled: true}}\n    weave-trace: {install: true}\n    mysql: {install: true}\n    app: {replicaCount: 2}\n";
    s.ok(&["apply", "-f", &s.file("cr.yaml", cr)]);
    assert!(s
        .ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Completed",
            "wandb/wandb",
            "-n",
            "wandb",
            "--timeout=20s"
        ])
        .contains("condition met"));
    // The release, as the chart names it (`<release>-<alias>-bc`, subcharts by their own names).
    let names = s.ok(&[
        "get",
        "deploy,sts,ds",
        "-n",
        "wandb",
        "-l",
        "app.kubernetes.io/instance=wandb,app.kubernetes.io/managed-by=Helm",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    for c in [
        "wandb-app-bc",
        "wandb-api",
        "wandb-console-bc",
        "wandb-parquet-bc",
        "wandb-weave-bc",
        "wandb-weave-trace-bc",
        "wandb-mysql",
        "wandb-redis-master",
        "wandb-prometheus-server",
        "wandb-otel-daemonset",
    ] {
        assert!(names.split(' ').any(|n| n == c), "{c} missing from {names}");
    }
    for absent in ["wandb-frontend", "wandb-executor-bc", "wandb-glue"] {
        assert!(
            !names.split(' ').any(|n| n == absent),
            "{absent} in {names}"
        );
    }
    s.ok(&[
        "wait",
        "--for=jsonpath={.status.readyReplicas}=2",
        "deploy/wandb-app-bc",
        "-n",
        "wandb",
        "--timeout=20s",
    ]);
    // Its pods exist, as the kubelet reports them.
    let pods = s.ok(&[
        "get",
        "pods",
        "-n",
        "wandb",
        "-l",
        "app.kubernetes.io/instance=wandb,app.kubernetes.io/name=app",
        "-o",
        "jsonpath={range .items[*]}{.status.phase}/{.status.containerStatuses[0].ready} {end}",
    ]);
    assert_eq!(pods.trim(), "Running/true Running/true", "{pods}");
    assert_eq!(
        s.ok(&[
            "get",
            "wandb",
            "wandb",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.metadata.finalizers[0]}"
        ]),
        "finalizer.app.wandb.com"
    );
    // An apply the operator cannot make: Invalid Config with its event, retried until it can.
    let mut cfg = s.running().config();
    cfg.invalid_config = vec!["bad".into()];
    s.running().set_config(cfg.clone());
    let bad = "apiVersion: apps.wandb.com/v1\nkind: WeightsAndBiases\nmetadata: {name: bad, namespace: wandb}\nspec:\n  values:\n    global: {host: \"https://bad.example.com\"}\n";
    s.ok(&["apply", "-f", &s.file("bad.yaml", bad)]);
    assert!(s
        .ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Invalid Config",
            "wandb/bad",
            "-n",
            "wandb",
            "--timeout=20s"
        ])
        .contains("condition met"));
    let ev = s.ok(&[
        "get",
        "events",
        "-n",
        "wandb",
        "--field-selector",
        "involvedObject.name=bad",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        ev.contains("ApplyFailed") && ev.contains("Reconciling"),
        "{ev}"
    );
    cfg.invalid_config.clear();
    s.running().set_config(cfg);
    assert!(s
        .ok(&[
            "wait",
            "--for=jsonpath={.status.phase}=Completed",
            "wandb/bad",
            "-n",
            "wandb",
            "--timeout=20s"
        ])
        .contains("condition met"));
    // Deleting the operator first: the finalizer stays and deletion hangs.
    s.ok(&[
        "delete",
        "deploy",
        "wandb-operator",
        "-n",
        "wandb",
        "--wait",
    ]);
    s.ok(&["delete", "wandb", "wandb", "-n", "wandb", "--wait=false"]);
    let err = s.fails(&[
        "wait",
        "--for=delete",
        "wandb/wandb",
        "-n",
        "wandb",
        "--timeout=2s",
    ]);
    assert!(err.contains("timed out"), "{err}");
    // With the operator back, deletion completes and the workloads go.
    s.ok(&["apply", "-f", &s.file("op.yaml", OPERATOR)]);
    s.ok(&[
        "wait",
        "--for=delete",
        "wandb/wandb",
        "-n",
        "wandb",
        "--timeout=20s",
    ]);
    let left = s.ok(&[
        "get",
        "deploy",
        "-n",
        "wandb",
        "-l",
        "app.kubernetes.io/instance=wandb",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    assert_eq!(left, "");
}
