//! What wbstack sends to the operator-wandb chart and to Kubernetes, checked against their own
//! data: the chart's `values.yaml` and `Chart.yaml` (`../shared/fixtures/operator-wandb-chart`),
//! the Kubernetes OpenAPI schemas (kubernetes-validate, from PyPI) and the CRDs of the W&B operator
//! and of Altinity (`../shared/fixtures`).

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wbstack_plan::{Plan, StepKind};
use wbstack_test_support::python::{self, venv};
use wbstack_test_support::Env;

/// The Kubernetes releases whose schemas the objects are held to: the oldest and the newest the
/// validator knows (the EKS standard-support window lies between them).
const KUBERNETES: [&str; 2] = ["1.25.0", "1.37.0"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

fn yaml(path: &Path) -> Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&t).unwrap()
}

/// The shipped plans, and variants that reach every mode a plan can choose.
fn plans() -> Vec<(String, Plan)> {
    let mut out = Vec::new();
    for p in ["poc", "production", "weave-altinity", "weave-clickhouse-s3"] {
        let path = Env::plans().join(format!("{p}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        out.push((p.to_owned(), wbstack_plan::parse(p, &text).unwrap()));
    }
    let production = std::fs::read_to_string(Env::plans().join("production.yaml")).unwrap();
    let variants = [
        ("external-stores", "  mysql:\n    mode: aurora\n    database: wandb_prod\n    user: wandb\n    backupRetentionDays: 14\n  redis:\n    mode: elasticache\n", "  mysql:\n    mode: external\n    host: db.internal\n    passwordSecret: {name: db, key: password}\n  redis:\n    mode: external\n    host: redis.internal\n    tls: true\n    passwordSecret: {name: redis, key: password}\n  kafka:\n    brokerHost: kafka.internal\n    passwordSecret: {name: kafka, key: client-passwords}\n"),
        ("external-clickhouse", "  clickhouse:\n    mode: bundled\n    replicas: 3\n", "  clickhouse:\n    mode: external\n    host: ch.internal\n    replicas: 3\n    passwordSecret: {name: ch, key: password}\n"),
        ("more-components", "    monitoring:\n", "    components:\n      glue: {install: true, replicas: 2}\n      nginx: {replicas: 2}\n      flat-run-fields-updater: {install: true}\n    monitoring:\n"),
        ("sso", "    monitoring:\n", SSO),
    ];
    for (name, from, to) in variants {
        assert!(production.contains(from), "{name}");
        let mut text = production.replace(from, to);
        if name == "external-stores" {
            // No store on AWS is left for the stores' security group to guard.
            text = text.replace(
                "    securityGroup:\n      allowFrom: [sg-0a1b2c3d4e5f60001]\n",
                "",
            );
        }
        let plan = wbstack_plan::parse(name, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name.to_owned(), plan));
    }
    out
}

/// SSO as the chart's own `oidc-secret-from-k8s` test configuration sets it up, the client
/// secret by reference (and the issuer over https, which wbstack requires).
const SSO: &str = "    sso:\n      issuer: https://keycloak:8080/keycloak/realms/master/\n      clientId: wandb\n      clientSecret: {name: wandb-oidc-secret-user-defined, key: OIDC_SECRET}\n    monitoring:\n";

/// The `spec.values` of a plan's WeightsAndBiases resource.
fn values(plan: &Plan) -> Value {
    wbstack_plan::compile(plan)
        .into_iter()
        .find_map(|s| match s.kind {
            StepKind::WandbResource(w) => Some(w.values),
            _ => None,
        })
        .unwrap()
}

/// Paths of `v` that no default in `defaults` defines. A map the chart leaves empty (`env: {}`,
/// `annotations: {}`) is the user's to fill.
fn unknown(v: &Value, defaults: &[&Value], path: &str, out: &mut Vec<String>) {
    let Some(m) = v.as_object() else { return };
    for (k, x) in m {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        let next: Vec<&Value> = defaults.iter().filter_map(|d| d.get(k)).collect();
        if next.is_empty() {
            out.push(p);
        } else if !next
            .iter()
            .any(|d| d.as_object().is_some_and(|o| o.is_empty()) || d.is_null())
        {
            unknown(x, &next, &p, out);
        }
    }
}

/// The chart's own OIDC test configuration gives the issuer, client and method, and the secret
/// both in plaintext and by reference; wbstack gives the same, by reference only, which the
/// chart's snapshot shows is what its pods read (`GORILLA_OIDC_SECRET` and `OIDC_SECRET` from
/// the Secret).
#[test]
fn sso_is_the_charts_own_oidc_configuration_with_the_secret_by_reference_only() {
    let dir = fixtures().join("operator-wandb-chart/test-configs");
    let theirs = yaml(&dir.join("oidc-secret-from-k8s.yaml"))["global"]["auth"]["oidc"].clone();
    let (_, plan) = plans().into_iter().find(|(n, _)| n == "sso").unwrap();
    let ours = values(&plan)["global"]["auth"]["oidc"].clone();
    let mut expected = theirs.clone();
    expected.as_object_mut().unwrap().remove("secret");
    expected["issuer"] = json!(theirs["issuer"]
        .as_str()
        .unwrap()
        .replace("http://", "https://"));
    assert_eq!(ours, expected, "theirs: {theirs}");
    let snapshot =
        std::fs::read_to_string(dir.join("__snapshots__/oidc-secret-from-k8s.snap")).unwrap();
    let secret = theirs["oidcSecret"]["name"].as_str().unwrap();
    for var in ["GORILLA_OIDC_SECRET", "OIDC_SECRET"] {
        let read = format!("- name: {var}\n          valueFrom:\n            secretKeyRef:\n              key: OIDC_SECRET\n              name: {secret}");
        assert!(snapshot.contains(&read), "{var}");
    }
}

#[test]
fn every_rendered_value_is_one_the_chart_defines() {
    let chart = fixtures().join("operator-wandb-chart");
    let values_yaml = yaml(&chart.join("values.yaml"));
    let base = yaml(&chart.join("wandb-base/values.yaml"));
    let deps = yaml(&chart.join("Chart.yaml"));
    let aliases: BTreeSet<&str> = deps["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["name"] == "wandb-base")
        .filter_map(|d| d["alias"].as_str())
        .collect();
    let mut checked = 0;
    for (name, plan) in plans() {
        let v = values(&plan);
        let mut bad = Vec::new();
        for (k, x) in v.as_object().unwrap() {
            let mut defaults = vec![&values_yaml[k.as_str()]];
            if aliases.contains(k.as_str()) {
                defaults.push(&base);
            }
            if defaults[0].is_null() && defaults.len() == 1 {
                bad.push(k.clone());
                continue;
            }
            unknown(x, &defaults, k, &mut bad);
        }
        assert!(
            bad.is_empty(),
            "{name}: values the chart does not define: {bad:?}"
        );
        checked += 1;
    }
    println!("{checked} plans' values are all the chart's own keys");
}

/// A component's install switch in `Chart.yaml`.
fn conditions() -> Vec<(String, String)> {
    let deps = yaml(&fixtures().join("operator-wandb-chart/Chart.yaml"));
    deps["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let name = d["alias"].as_str().or(d["name"].as_str()).unwrap();
            (name.to_owned(), d["condition"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Whether the chart installs `component` with these values (over its `values.yaml`).
fn installs(component: &str, values: &Value, defaults: &Value) -> bool {
    let (_, cond) = conditions()
        .into_iter()
        .find(|(n, _)| n == component)
        .unwrap();
    let at = |v: &Value| {
        cond.split('.')
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_bool)
    };
    at(values).or_else(|| at(defaults)).unwrap_or(true)
}

#[test]
fn every_component_switch_is_the_one_chart_yaml_names_and_the_seeds_components_are_installed() {
    let defaults = yaml(&fixtures().join("operator-wandb-chart/values.yaml"));
    for (name, plan) in plans() {
        let v = values(&plan);
        // A switch the values set is the chart's switch for that component.
        for (component, cond) in conditions() {
            for key in ["install", "enabled"] {
                let set = format!("{component}.{key}");
                if v[&component].get(key).is_some() {
                    assert_eq!(
                        cond, set,
                        "{name}: values set {set}, the chart installs {component} on {cond}"
                    );
                }
            }
        }
    }
    // The components each seed asks for are the ones the chart installs.
    let seeds: [(&str, &[&str], &[&str]); 4] = [
        (
            "poc",
            &[
                "api",
                "app",
                "frontend",
                "console",
                "mysql",
                "redis",
                "clickhouse",
                "weave",
                "weave-trace",
            ],
            &["executor"],
        ),
        (
            "production",
            &[
                "api",
                "app",
                "frontend",
                "console",
                "executor",
                "weave",
                "weave-trace",
                "weave-trace-worker",
                "filestream",
                "parquet",
                "prometheus",
                "otel",
            ],
            &["mysql", "redis", "clickhouse", "kafka"],
        ),
        (
            "weave-altinity",
            &[
                "weave",
                "weave-trace",
                "weave-trace-worker",
                "api",
                "app",
                "frontend",
            ],
            &["clickhouse"],
        ),
        (
            "weave-clickhouse-s3",
            &["weave", "weave-trace", "app"],
            &["clickhouse"],
        ),
    ];
    let all = plans();
    for (plan, on, off) in seeds {
        let v = values(&all.iter().find(|(n, _)| n == plan).unwrap().1);
        for c in on {
            assert!(
                installs(c, &v, &defaults),
                "{plan}: the seed's {c} is not installed"
            );
        }
        for c in off {
            assert!(!installs(c, &v, &defaults), "{plan}: {c} is installed");
        }
    }
    // The executor runs tasks only with its queue on (the chart's templates read
    // global.executor.enabled).
    let production = values(&all.iter().find(|(n, _)| n == "production").unwrap().1);
    assert_eq!(production["global"]["executor"]["enabled"], true);
}

/// Every object wbstack applies for a plan (secret values are placeholders).
fn objects(plan: &Plan) -> Vec<Value> {
    use wbstack_k8s::render;
    let value = wbstack_engine::Secret::new(
        wbstack_engine::SecretRef::new("test", "x"),
        "placeholder-value",
    );
    let mut out = Vec::new();
    for s in wbstack_plan::compile(plan) {
        match &s.kind {
            StepKind::Namespace(n) => out.push(render::namespace(&n.name)),
            StepKind::LicenseSecret(x) => {
                out.push(render::secret(&x.namespace, &x.name, &x.key, &value))
            }
            StepKind::GeneratedSecret(x) => {
                out.push(render::secret(&x.namespace, &x.name, &x.key, &value))
            }
            StepKind::MirroredSecret(x) => {
                out.push(render::secret(&x.namespace, &x.name, &x.key, &value))
            }
            StepKind::WandbCrd(c) => out.push(render::wandb_crd(&c.version)),
            StepKind::Operator(o) => out.extend(render::operator(
                &o.namespace,
                &o.version,
                o.airgapped,
                &o.image,
            )),
            StepKind::ClickhouseBundled(c) => out.extend(render::clickhouse_bundled(c)),
            StepKind::ClickhouseAltinity(c) => {
                for mut installation in render::clickhouse_altinity(c) {
                    installation["spec"]["taskID"] = json!("wbstack-0123456789ab");
                    out.push(installation);
                }
            }
            StepKind::WandbResource(w) => {
                out.push(render::wandb(&w.namespace, &w.name, &w.chart, &w.values))
            }
            _ => {}
        }
    }
    out
}

/// Runs the validator for each Kubernetes release; returns each object's result lines.
fn validate(objects: &[Value], crds: &[PathBuf]) -> Vec<Value> {
    KUBERNETES
        .iter()
        .flat_map(|k| validate_for(k, objects, crds))
        .collect()
}

fn validate_for(kubernetes: &str, objects: &[Value], crds: &[PathBuf]) -> Vec<Value> {
    let bin = venv(
        "k8s-validate",
        &[
            "kubernetes-validate==1.37.0",
            "jsonschema==4.26.0",
            "PyYAML==6.0.2",
        ],
    );
    let input = json!({"kubernetes": kubernetes, "crds": crds, "objects": objects});
    let (out, err) = python::run(&bin, "validate_objects.py", &input);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), objects.len(), "{err}");
    lines
}

fn crds() -> Vec<PathBuf> {
    let f = fixtures();
    vec![
        f.join("wandb-operator/crd-v1.22.0.yaml"),
        f.join("altinity/crd-clickhouseinstallations.yaml"),
        f.join("altinity/crd-clickhousekeeperinstallations.yaml"),
    ]
}

fn failures(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .filter(|r| r["against"].is_null() || !r["errors"].as_array().unwrap().is_empty())
        .map(|r| r.to_string())
        .collect()
}

#[test]
fn every_rendered_object_validates_against_the_kubernetes_schemas_and_its_crd() {
    let mut all = Vec::new();
    for (_, plan) in plans() {
        all.extend(objects(&plan));
    }
    let results = validate(&all, &crds());
    let bad = failures(&results);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let by_crd = results
        .iter()
        .filter(|r| r["against"].as_str().is_some_and(|a| a.ends_with(".yaml")))
        .count()
        / KUBERNETES.len();
    println!(
        "{} objects valid ({by_crd} against their CRD, the rest against Kubernetes {KUBERNETES:?})",
        all.len()
    );
    // The resource also fits the CRD of the official operator chart and the v1 of operator v2.
    let f = fixtures();
    for crd in [
        f.join("wandb-operator-crd.yaml"),
        f.join("wandb-operator/crd-v2.0.0-beta.3.yaml"),
    ] {
        let resources: Vec<Value> = all
            .iter()
            .filter(|o| o["kind"] == "WeightsAndBiases")
            .cloned()
            .collect();
        let bad = failures(&validate(&resources, std::slice::from_ref(&crd)));
        assert!(bad.is_empty(), "{}: {}", crd.display(), bad.join("\n"));
    }
    // And the validator does reject what the API server would prune or refuse.
    let mut wrong = all
        .iter()
        .find(|o| o["kind"] == "WeightsAndBiases")
        .unwrap()
        .clone();
    wrong["spec"]["valuez"] = json!({});
    let mut sts = all
        .iter()
        .find(|o| o["kind"] == "StatefulSet")
        .unwrap()
        .clone();
    sts["spec"]["replicas"] = json!("three");
    let results = validate(&[wrong, sts], &crds());
    assert_eq!(
        failures(&results).len(),
        2 * KUBERNETES.len(),
        "{results:?}"
    );
}

/// Every object in the emulated cluster, validated; returns the kinds seen.
fn validate_cluster(env: &Env, crds: &[PathBuf]) -> BTreeSet<String> {
    let objects: Vec<Value> = env.running().cluster.snapshot().objects;
    let results = validate(&objects, crds);
    let bad = failures(&results);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    println!("{} emulator objects valid", objects.len());
    results
        .iter()
        .filter_map(|r| r["kind"].as_str().map(String::from))
        .collect()
}

fn up(env: &Env, plan: &str) {
    env.ok(&["up", "--plan", Env::plans().join(plan).to_str().unwrap()]);
}

#[test]
fn what_the_emulator_makes_for_a_poc_validates_too() {
    // The stand-ins' objects (workloads, pods, events, statuses) are held to the same schemas.
    let env = Env::new(100);
    up(&env, "poc.yaml");
    let kinds = validate_cluster(&env, &crds());
    for k in [
        "Pod",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "Event",
        "CustomResourceDefinition",
        "WeightsAndBiases",
    ] {
        assert!(kinds.contains(k), "{k} not among {kinds:?}");
    }
}

#[test]
fn a_cluster_whose_crd_stores_v2_keeps_it_and_is_read_through_v2() {
    // The v2 operator's own CRD (it stores v2 and serves v1 too): wbstack adopts it, never
    // replaces it, and reads the resource's status through v2.
    let env = Env::new(100);
    let v2 = fixtures().join("wandb-operator/crd-v2.0.0-beta.3.yaml");
    env.kubectl(&["apply", "--server-side", "-f", v2.to_str().unwrap()]);
    up(&env, "poc.yaml");
    let crd: Value = serde_json::from_str(&env.kubectl(&[
        "get",
        "crd",
        "weightsandbiases.apps.wandb.com",
        "-o",
        "json",
    ]))
    .unwrap();
    let storage: Vec<&Value> = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["storage"] == true)
        .collect();
    assert_eq!(storage[0]["name"], "v2", "the CRD was replaced");
    let wb: Value = serde_json::from_str(&env.kubectl(&[
        "get",
        "weightsandbiases.v2.apps.wandb.com",
        "wandb-dev",
        "-n",
        "wandb",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(wb["status"]["ready"], true, "{wb}");
    assert_eq!(
        wb["status"]["observedGeneration"],
        wb["metadata"]["generation"]
    );
    // The status the v2 stand-in writes fits the v2 CRD. (Its spec is whatever the v2
    // conversion makes of a v1 resource, which the fixtures do not pin; it is left out.)
    let status = json!({"apiVersion": wb["apiVersion"], "kind": wb["kind"], "metadata": wb["metadata"], "status": wb["status"]});
    let mut crds = crds();
    crds[0] = v2;
    let bad = failures(&validate(&[status], &crds));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let others: Vec<Value> = env
        .running()
        .cluster
        .snapshot()
        .objects
        .into_iter()
        .filter(|o| o["kind"] != "WeightsAndBiases")
        .collect();
    let bad = failures(&validate(&others, &crds));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_altinity_installation_and_its_status_fit_altinitys_crd() {
    let env = Env::new(100);
    // The plan installs the operator from its install bundle: the bundle's objects, as
    // applied, are validated with the rest.
    up(&env, "weave-altinity.yaml");
    let chi: Value =
        serde_json::from_str(&env.kubectl(&["get", "chi", "-n", "wandb", "-o", "json"])).unwrap();
    let chi = &chi["items"][0];
    assert_eq!(chi["status"]["status"], "Completed", "{chi}");
    let kinds = validate_cluster(&env, &crds());
    for kind in [
        "ClickHouseInstallation",
        "ClickHouseKeeperInstallation",
        "CustomResourceDefinition",
        "ClusterRole",
        "Role",
        "Deployment",
    ] {
        assert!(kinds.contains(kind), "{kind} not among {kinds:?}");
    }
}

/// `spec.images.registry` rewrites images as the chart's `global.imageRegistry` does: every
/// image of the chart's real render of its `default` value set (which sets the registry) is
/// the table's default image of that container through wbstack's rule.
#[test]
fn images_through_a_registry_are_the_ones_the_chart_renders() {
    let dir = fixtures().join("operator-wandb-chart/test-configs");
    let set = yaml(&dir.join("default.yaml"));
    let registry = set["global"]["imageRegistry"].as_str().unwrap();
    let text = std::fs::read_to_string(dir.join("__snapshots__/default.snap")).unwrap();
    let table = wbstack_chart::operator_wandb();
    let mut checked = 0;
    for doc in text.split("\n---\n") {
        let Ok(o) = serde_yaml_ng::from_str::<Value>(doc) else {
            continue;
        };
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .replace("chartsnap", wbstack_chart::RELEASE);
        let pod = if o["spec"]["jobTemplate"].is_object() {
            &o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        } else {
            &o["spec"]["template"]["spec"]
        };
        for c in pod["containers"].as_array().into_iter().flatten() {
            let wanted = table
                .components
                .iter()
                .flat_map(|comp| &comp.workloads)
                .filter(|w| w.name == name)
                .flat_map(|w| &w.containers)
                .find(|t| t.name == c["name"].as_str().unwrap_or(""));
            let Some(t) = wanted else { continue };
            assert_eq!(
                wbstack_plan::with_registry(Some(registry), &t.image),
                c["image"].as_str().unwrap(),
                "{name}/{}",
                t.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} containers compared");
    eprintln!("{checked} containers of the chart's render match wbstack's registry rule");
}

/// Every `WF_*` variable the chart gives Weave (in its values and any of its 50 renders) is one
/// wbstack knows, so the `weave-env` preflight never refuses a name the chart itself uses.
#[test]
fn every_weave_variable_the_chart_sets_is_known() {
    let chart = fixtures().join("operator-wandb-chart");
    let mut files = vec![chart.join("values.yaml")];
    for dir in ["test-configs", "test-configs/__snapshots__"] {
        for e in std::fs::read_dir(chart.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                files.push(p);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, _) in text.match_indices("WF_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            seen.insert(name);
        }
    }
    assert!(seen.len() >= 8, "{seen:?}");
    for name in &seen {
        assert!(
            wbstack_plan::WEAVE_VARIABLES.contains(&name.as_str()),
            "{name} is set by the chart but unknown to wbstack"
        );
    }
}

/// Whether two lines of a render differ only in what the chart generates anew each render: a
/// random password or key (base64 in a Secret's data), or a checksum of such content.
fn generated(a: &str, b: &str) -> bool {
    let value = |l: &str| {
        l.split_once(": ")
            .map(|(_, v)| v.trim_matches('"').to_owned())
    };
    let key = |l: &str| l.split_once(": ").map(|(k, _)| k.to_owned());
    let b64 = |v: &str| {
        v.len() >= 16
            && v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=')
    };
    key(a) == key(b)
        && (a.contains("checksum/")
            || value(a).is_some_and(|v| b64(&v)) && value(b).is_some_and(|v| b64(&v)))
}

/// The test bed's scenario charts are made from renders under release `chartsnap`; under
/// another release name they must be what real Helm renders there (the chart's `fullname`
/// rule), checked against the real renders of every component under three release names.
#[test]
fn the_test_beds_stitched_renders_are_helms_under_every_release_name() {
    let dir = fixtures().join("operator-wandb-chart/release-names");
    let base = std::fs::read_to_string(dir.join("chartsnap.yaml")).unwrap();
    for release in ["wandb-weave", "weave-app", "chartsnap"] {
        let real = std::fs::read_to_string(dir.join(format!("{release}.yaml"))).unwrap();
        let stitched = wbstack_test_support::testbed::helm_names(&base, release);
        let (s, r): (Vec<&str>, Vec<&str>) = (stitched.lines().collect(), real.lines().collect());
        assert_eq!(s.len(), r.len(), "{release}: line counts");
        let differ: Vec<String> = s
            .iter()
            .zip(&r)
            .enumerate()
            .filter(|(_, (a, b))| a != b && !generated(a, b))
            .map(|(i, (a, b))| format!("line {}: {a:?} != {b:?}", i + 1))
            .collect();
        assert!(differ.is_empty(), "{release}:\n{}", differ.join("\n"));
    }
}
