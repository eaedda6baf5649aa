//! The chart table against the chart's own files (`../shared/fixtures/operator-wandb-chart`):
//! its `Chart.yaml` (aliases and install conditions), `values.yaml` (their defaults) and the real
//! `helm template` output of 50 value sets. The table is derived from them here; the embedded copy
//! must equal the derivation (`WBSTACK_BLESS=1` rewrites it), and for every value set the
//! workloads the table predicts must be exactly the workloads the chart rendered.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use wbstack_chart::{operator_wandb, Account, Chart, Component, Container, Workload, RELEASE};

const WORKLOADS: [&str; 5] = ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"];
/// The release name the snapshots were rendered with.
const SNAPSHOT_RELEASE: &str = "chartsnap";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/operator-wandb-chart")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// One rendered workload: the subchart it came from and the object.
struct Rendered {
    component: String,
    object: Value,
}

/// The workloads of one snapshot, each with the subchart its `# Source:` line names.
fn rendered(snapshot: &Path) -> Vec<Rendered> {
    let text = std::fs::read_to_string(snapshot).unwrap();
    let mut out = Vec::new();
    for doc in text.split("\n---\n") {
        let Some(source) = doc.lines().find_map(|l| l.strip_prefix("# Source: ")) else {
            continue;
        };
        let parts: Vec<&str> = source.split('/').collect();
        if parts.len() < 3 || parts[1] != "charts" {
            continue;
        }
        let Ok(object) = serde_yaml_ng::from_str::<Value>(doc) else {
            continue;
        };
        if WORKLOADS.contains(&object["kind"].as_str().unwrap_or("")) {
            out.push(Rendered {
                component: parts[2].to_owned(),
                object,
            });
        }
    }
    out
}

/// Each rendered workload as (kind, name).
fn kinds_and_names(objects: &[Rendered]) -> BTreeSet<(String, String)> {
    objects
        .iter()
        .map(|r| {
            (
                r.object["kind"].as_str().unwrap().to_owned(),
                r.object["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn snapshots() -> Vec<(String, PathBuf)> {
    let dir = fixtures().join("test-configs/__snapshots__");
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    assert_eq!(v.len(), 50, "the fixtures hold 50 renders");
    v
}

fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.replace(SNAPSHOT_RELEASE, RELEASE)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Labels every render of a workload carries (value sets add their own; those are not the
/// chart's), without the ones that carry versions.
fn common_labels(all: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let mut out = all[0].clone();
    out.retain(|k, v| {
        k != "helm.sh/chart"
            && k != "app.kubernetes.io/version"
            && all.iter().all(|l| l.get(k) == Some(v))
    });
    out
}

fn selector(o: &Value) -> BTreeMap<String, String> {
    let s = &o["spec"]["selector"]["matchLabels"];
    if s.is_object() {
        strings(s)
    } else {
        BTreeMap::new()
    }
}

/// Whether the chart renders this Job only when a template condition holds: its
/// `jobs.<name>.enabled` in `values.yaml` is a template, not a boolean.
fn conditional(values: &Value, component: &str, kind: &str, name: &str) -> bool {
    let key = name.trim_start_matches(&format!("{RELEASE}-"));
    let section = if kind == "CronJob" {
        "cronJobs"
    } else {
        "jobs"
    };
    values[component][section][key]["enabled"]
        .as_str()
        .is_some_and(|s| s.contains("{{"))
}

/// Takes `registry` off the front of every container image of a workload.
fn strip_registry(o: &mut Value, registry: &str) {
    for pod in [
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
    ] {
        if let Some(cs) = o
            .pointer_mut(&format!("{pod}/containers"))
            .and_then(Value::as_array_mut)
        {
            for c in cs {
                if let Some(img) = c["image"].as_str().and_then(|i| i.strip_prefix(registry)) {
                    c["image"] = Value::String(img.to_owned());
                }
            }
        }
    }
}

/// The table, derived from the fixtures.
fn derive() -> Chart {
    let root = fixtures();
    let chart = yaml(&root.join("Chart.yaml"));
    let values = yaml(&root.join("values.yaml"));
    // (component, kind, name) -> every render of it.
    let mut seen: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
    for (config, snap) in snapshots() {
        // Images as the chart names them by default: without the registry the value set put
        // in front of them (`global.imageRegistry`).
        let set = yaml(&root.join("test-configs").join(format!("{config}.yaml")));
        let registry = set["global"]["imageRegistry"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(|r| format!("{}/", r.trim_end_matches('/')));
        for mut r in rendered(&snap) {
            if let Some(reg) = &registry {
                strip_registry(&mut r.object, reg);
            }
            let name = r.object["metadata"]["name"]
                .as_str()
                .unwrap()
                .replace(SNAPSHOT_RELEASE, RELEASE);
            let kind = r.object["kind"].as_str().unwrap().to_owned();
            seen.entry((r.component, kind, name))
                .or_default()
                .push(r.object);
        }
    }
    let mut components = Vec::new();
    for dep in chart["dependencies"].as_array().unwrap() {
        let name = dep["alias"]
            .as_str()
            .or(dep["name"].as_str())
            .unwrap()
            .to_owned();
        let switch = dep["condition"].as_str().unwrap().to_owned();
        let default = at(&values, &switch)
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let mut workloads = Vec::new();
        for ((c, kind, wname), objects) in &seen {
            if c != &name {
                continue;
            }
            let labels: Vec<_> = objects
                .iter()
                .map(|o| strings(&o["metadata"]["labels"]))
                .collect();
            let mut replicas: Vec<i64> = objects
                .iter()
                .map(|o| o["spec"]["replicas"].as_i64().unwrap_or(1))
                .collect();
            replicas.sort();
            workloads.push(Workload {
                kind: kind.clone(),
                name: wname.clone(),
                // The replicas most renders have (value sets override some).
                replicas: mode(&replicas),
                hook: objects[0]["metadata"]["annotations"]["helm.sh/hook"]
                    .as_str()
                    .map(str::to_owned),
                conditional: conditional(&values, &name, kind, wname),
                labels: common_labels(&labels),
                selector: selector(&objects[0]),
                containers: containers(objects),
            });
        }
        let account = account(&values[&name]["serviceAccount"]);
        components.push(Component {
            name,
            chart: dep["name"].as_str().unwrap().to_owned(),
            switch,
            default,
            account: (dep["name"] == "wandb-base").then_some(account).flatten(),
            workloads,
        });
    }
    Chart {
        name: chart["name"].as_str().unwrap().to_owned(),
        version: chart["version"].as_str().unwrap().to_owned(),
        components,
    }
}

/// A `serviceAccount` section's name and `create`, where the chart's values set either.
fn account(sa: &Value) -> Option<Account> {
    let a = Account {
        name: sa["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        create: sa["create"].as_bool(),
    };
    (a != Account::default()).then_some(a)
}

/// The pod's containers most renders give the workload (value sets add sidecars or images of
/// their own; the most common list is the chart's).
fn containers(objects: &[Value]) -> Vec<Container> {
    let lists: Vec<Vec<Container>> = objects
        .iter()
        .map(|o| {
            let spec = &o["spec"];
            let pod = if spec["jobTemplate"].is_object() {
                &spec["jobTemplate"]["spec"]["template"]["spec"]
            } else {
                &spec["template"]["spec"]
            };
            pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Container {
                    name: c["name"].as_str().unwrap_or("").to_owned(),
                    image: c["image"].as_str().unwrap_or("").to_owned(),
                })
                .collect()
        })
        .collect();
    let mut best: (usize, Vec<Container>) = (0, Vec::new());
    for l in &lists {
        let n = lists.iter().filter(|m| *m == l).count();
        if n > best.0 || (n == best.0 && *l < best.1) {
            best = (n, l.clone());
        }
    }
    best.1
}

fn mode(sorted: &[i64]) -> i64 {
    let mut best = (0, sorted[0]);
    for &x in sorted {
        let n = sorted.iter().filter(|&&y| y == x).count();
        if n > best.0 {
            best = (n, x);
        }
    }
    best.1
}

#[test]
fn the_embedded_table_is_the_one_derived_from_the_chart() {
    let derived = derive();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/operator-wandb-0.43.8.json");
    if std::env::var("WBSTACK_BLESS").is_ok_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&derived).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    assert_eq!(
        operator_wandb(),
        &derived,
        "the embedded table differs from the chart's files; run with WBSTACK_BLESS=1 to regenerate {}",
        path.display()
    );
    assert_eq!(derived.version, "0.43.8");
    // The switches the issue names, as the chart has them.
    let c = |n: &str| derived.component(n).unwrap();
    assert_eq!(c("api").switch, "global.api.enabled");
    assert!(!c("api").default);
    assert_eq!(c("glue").switch, "global.glue.enabled");
    assert!(!c("executor").default && !c("weave-trace").default);
    assert_eq!(c("app").workloads[0].name, "{release}-app-bc");
    assert_eq!(c("redis").workloads[0].name, "{release}-redis-master");
}

#[test]
fn for_every_value_set_the_table_predicts_exactly_the_rendered_workloads() {
    let chart = operator_wandb();
    let (mut compared, mut replicas_compared) = (0, 0);
    for (name, snap) in snapshots() {
        let values = yaml(&fixtures().join(format!("test-configs/{name}.yaml")));
        let expected: Vec<_> = chart.workloads(SNAPSHOT_RELEASE, &values).collect();
        let required: BTreeSet<(String, String)> = expected
            .iter()
            .filter(|e| !e.conditional)
            .map(|e| (e.kind.clone(), e.name.clone()))
            .collect();
        let optional: BTreeSet<(String, String)> = expected
            .iter()
            .map(|e| (e.kind.clone(), e.name.clone()))
            .collect();
        let objects = rendered(&snap);
        let actual = kinds_and_names(&objects);
        let missing: Vec<_> = required.difference(&actual).collect();
        let extra: Vec<_> = actual.difference(&optional).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: predicted but not rendered {missing:?}; rendered but not predicted {extra:?}"
        );
        for e in &expected {
            let Some(r) = objects
                .iter()
                .find(|r| r.object["metadata"]["name"] == e.name.as_str())
            else {
                continue;
            };
            let o = &r.object;
            for (k, v) in &e.labels {
                assert_eq!(
                    o["metadata"]["labels"][k].as_str(),
                    Some(v.as_str()),
                    "{name}: {} label {k}",
                    e.name
                );
            }
            if !e.selector.is_empty() {
                assert_eq!(
                    &selector(o)
                        .into_iter()
                        .map(|(k, v)| (k, v.replace(RELEASE, SNAPSHOT_RELEASE)))
                        .collect::<BTreeMap<_, _>>(),
                    &e.selector,
                    "{name}: {} selector",
                    e.name
                );
            }
            // Sizing presets (a component's `size`/`sizing`, KEDA, or a global size other than
            // the snapshots' `testing`) compute replicas in templates the table does not model;
            // elsewhere the table's replicas are the chart's.
            let sized = values[&e.component]["size"].is_string()
                || values[&e.component]["sizing"].is_object()
                || !matches!(values["global"]["size"].as_str(), None | Some("testing"));
            match o["spec"]["replicas"].as_i64() {
                Some(n) if !sized => {
                    assert_eq!(n, e.replicas, "{name}: {} replicas", e.name);
                    replicas_compared += 1;
                }
                _ => {}
            }
            compared += 1;
        }
    }
    println!(
        "compared {compared} workloads of 50 renders with the table ({replicas_compared} replica counts)"
    );
}

/// The pod spec of a rendered workload (a CronJob's through its job template).
fn pod_spec(o: &Value) -> &Value {
    match o["kind"].as_str() {
        Some("CronJob") => &o["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &o["spec"]["template"]["spec"],
    }
}

#[test]
fn every_w_and_b_pod_runs_as_the_service_account_the_table_names() {
    let chart = operator_wandb();
    let mut compared = 0;
    for (name, snap) in snapshots() {
        let values = yaml(&fixtures().join(format!("test-configs/{name}.yaml")));
        for r in rendered(&snap) {
            let Some(c) = chart.component(&r.component).filter(|c| c.is_service()) else {
                continue;
            };
            let actual = pod_spec(&r.object)["serviceAccountName"].as_str();
            let predicted = c.service_account(SNAPSHOT_RELEASE, &values);
            let what = format!(
                "{name}: {} {}",
                r.object["kind"], r.object["metadata"]["name"]
            );
            match predicted {
                Some(p) => assert_eq!(actual, Some(p.as_str()), "{what}"),
                // No account of its own: the namespace's default.
                None => assert!(
                    matches!(actual, None | Some("default")),
                    "{what}: {actual:?}"
                ),
            }
            compared += 1;
        }
    }
    println!("{compared} W&B pods compared with the service account the table names");
    assert!(compared > 500, "{compared}");
}

/// The renders of `release-names/values.yaml` (every component on) under three release names.
const RELEASE_NAMES: [&str; 3] = ["chartsnap", "wandb-weave", "weave-app"];

fn release_render(release: &str) -> Vec<Rendered> {
    rendered(&fixtures().join(format!("release-names/{release}.yaml")))
}

#[test]
fn names_follow_helms_rule_under_every_release_name() {
    let chart = operator_wandb();
    let values = yaml(&fixtures().join("release-names/values.yaml"));
    let mut compared = 0;
    let mut gaps = None;
    for release in RELEASE_NAMES {
        let expected: Vec<_> = chart.workloads(release, &values).collect();
        let predicted: BTreeSet<(String, String)> = expected
            .iter()
            .map(|e| (e.kind.clone(), e.name.clone()))
            .collect();
        let required: BTreeSet<(String, String)> = expected
            .iter()
            .filter(|e| !e.conditional)
            .map(|e| (e.kind.clone(), e.name.clone()))
            .collect();
        let objects = release_render(release);
        let actual = kinds_and_names(&objects);
        // What the table predicts and this render lacks is a template condition the table
        // does not model (prometheus' server here), not a naming question: it must be the same
        // under every release name.
        let missing: BTreeSet<(String, String)> = required
            .difference(&actual)
            .map(|(k, n)| (k.clone(), n.replacen(release, RELEASE, 1)))
            .collect();
        let extra: Vec<_> = actual.difference(&predicted).collect();
        assert!(
            extra.is_empty(),
            "{release}: rendered but not predicted {extra:?}"
        );
        match &gaps {
            None => {
                println!("predicted, not rendered under any release name: {missing:?}");
                gaps = Some(missing);
            }
            Some(g) => assert_eq!(g, &missing, "{release}"),
        }
        // Each rendered workload is the one of its own component, and runs as the account the
        // table names.
        for r in &objects {
            let name = r.object["metadata"]["name"].as_str().unwrap();
            assert!(
                expected
                    .iter()
                    .any(|e| e.name == name && e.component == r.component),
                "{release}: {name} of {}",
                r.component
            );
            let Some(c) = chart.component(&r.component).filter(|c| c.is_service()) else {
                continue;
            };
            let actual = pod_spec(&r.object)["serviceAccountName"].as_str();
            match c.service_account(release, &values) {
                Some(p) => assert_eq!(actual, Some(p.as_str()), "{release}: {name}"),
                None => assert!(matches!(actual, None | Some("default")), "{release}"),
            }
            compared += 1;
        }
    }
    assert_eq!(
        operator_wandb()
            .workloads("wandb-weave", &values)
            .find(|w| w.component == "weave")
            .unwrap()
            .name,
        "wandb-weave-bc"
    );
    println!("{compared} workloads of 3 release-name renders compared with the table");
}

#[test]
fn the_table_finds_the_names_the_chart_renders_twice() {
    let chart = operator_wandb();
    let values = yaml(&fixtures().join("release-names/values.yaml"));
    for release in RELEASE_NAMES {
        // What the real render has twice (kind and name), by object name.
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        let text =
            std::fs::read_to_string(fixtures().join(format!("release-names/{release}.yaml")))
                .unwrap();
        for doc in text.split("\n---\n") {
            let Ok(o) = serde_yaml_ng::from_str::<Value>(doc) else {
                continue;
            };
            if let (Some(k), Some(n)) = (o["kind"].as_str(), o["metadata"]["name"].as_str()) {
                *seen.entry((k.to_owned(), n.to_owned())).or_default() += 1;
            }
        }
        let twice: BTreeSet<String> = seen
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((_, name), _)| name)
            .collect();
        let found: BTreeSet<String> = chart
            .collisions(release, &values)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(found, twice, "{release}");
    }
    let c = chart.collisions("weave-app", &values);
    assert_eq!(c[0].components, ["app", "weave"]);
}

/// Why wbstack makes ElastiCache with cluster mode disabled: the chart takes one Redis host and
/// port (`global.redis` has no cluster or configuration-endpoint setting), and in every real
/// render each service gets a single-node URL built from them. A cluster-mode group answers
/// such a client with MOVED for keys on other shards.
#[test]
fn every_service_reaches_redis_at_one_host_and_port() {
    let values = yaml(&fixtures().join("values.yaml"));
    let redis = at(&values, "global.redis").unwrap().as_object().unwrap();
    let keys: BTreeSet<&str> = redis.keys().map(String::as_str).collect();
    assert!(keys.contains("host") && keys.contains("port"), "{keys:?}");
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("cluster") || k.contains("nodes")),
        "{keys:?}"
    );
    let mut urls = 0;
    for (name, path) in snapshots() {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| l.contains("redis://")) {
            urls += 1;
            let url = line.split("redis://").nth(1).unwrap();
            // The password, when the chart passes one, comes before the one host.
            let host = url.strip_prefix(":$(REDIS_PASSWORD)@").unwrap_or(url);
            assert!(
                host.starts_with("$(REDIS_HOST):$(REDIS_PORT)"),
                "{name}: {line}"
            );
        }
        assert!(
            !text.contains("rediss+cluster") && !text.contains("redis+cluster"),
            "{name}"
        );
    }
    assert!(urls > 0, "the renders name Redis URLs");
    eprintln!("{urls} Redis URLs in the renders, each at $(REDIS_HOST):$(REDIS_PORT)");
}

/// W&B reads and writes MySQL through one host: `global.mysql` has a host and a port and no
/// reader endpoint, and every MySQL URL of the real renders is at `$(MYSQL_HOST):$(MYSQL_PORT)`.
/// So a read replica serves none of W&B's reads; the readers wbstack makes (Aurora's) are there
/// to fail over to.
#[test]
fn every_service_reaches_mysql_at_one_host_and_port() {
    let values = yaml(&fixtures().join("values.yaml"));
    let mysql = at(&values, "global.mysql").unwrap().as_object().unwrap();
    let keys: BTreeSet<&str> = mysql.keys().map(String::as_str).collect();
    assert!(keys.contains("host") && keys.contains("port"), "{keys:?}");
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("read") || k.contains("replica")),
        "{keys:?}"
    );
    let mut urls = 0;
    for (name, path) in snapshots() {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| l.contains("mysql://")) {
            for url in line.split("mysql://").skip(1) {
                urls += 1;
                let host = url.split_once('@').map_or(url, |(_, h)| h);
                assert!(
                    host.starts_with("$(MYSQL_HOST):$(MYSQL_PORT)/"),
                    "{name}: {line}"
                );
            }
        }
    }
    assert!(urls > 0, "the renders name MySQL URLs");
    eprintln!("{urls} MySQL URLs in the renders, each at $(MYSQL_HOST):$(MYSQL_PORT)");
}

/// The chart's Kafka clients connect without TLS and one of them ignores the port: `global.kafka`
/// has no TLS, SSL, SASL or mechanism setting, every Kafka URL of the real renders is
/// `kafka://[user:password@]host:port/topic` with only a partition count and a consumer group
/// after it, and flat-run-fields-updater's is at port 9092 whatever `brokerPort` says. So an
/// Amazon MSK cluster with SASL/SCRAM (TLS only, port 9096) is no broker these clients can use.
#[test]
fn the_charts_kafka_clients_have_no_tls_and_the_updater_dials_9092() {
    let values = yaml(&fixtures().join("values.yaml"));
    let kafka = at(&values, "global.kafka").unwrap().as_object().unwrap();
    for key in kafka.keys() {
        let k = key.to_ascii_lowercase();
        assert!(
            !["tls", "ssl", "sasl", "mechanism", "ca"]
                .iter()
                .any(|w| k.contains(w)),
            "global.kafka.{key}"
        );
    }
    let (mut urls, mut pinned) = (0, BTreeSet::new());
    for (name, path) in snapshots() {
        for w in rendered(&path) {
            let text = serde_json::to_string(&w.object).unwrap();
            for url in text.split("kafka://").skip(1) {
                urls += 1;
                let url = url.split(['"', '\'']).next().unwrap();
                let rest = url.split_once('@').map_or(url, |(_, h)| h);
                let (host, query) = rest
                    .split_once('/')
                    .unwrap_or_else(|| panic!("{name} {}: {url}", w.component));
                let query = query.split_once('?').map_or("", |q| q.1);
                for kv in query.split('&') {
                    let key = kv.split('=').next().unwrap();
                    assert!(
                        ["num_partitions", "consumer_group_id"].contains(&key),
                        "{name} {}: {url}",
                        w.component
                    );
                }
                if host != "$(KAFKA_BROKER_HOST):$(KAFKA_BROKER_PORT)" {
                    assert_eq!(host, "$(KAFKA_BROKER_HOST):9092", "{name}: {url}");
                    pinned.insert(w.component.clone());
                }
            }
        }
    }
    assert!(urls > 0, "the renders name Kafka URLs");
    assert_eq!(
        pinned,
        BTreeSet::from(["flat-run-fields-updater".to_owned()])
    );
    eprintln!("{urls} Kafka URLs in the renders, none with a TLS or SASL setting; flat-run-fields-updater's at port 9092");
}
