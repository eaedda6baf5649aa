//! The test bed back end: a real control plane (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler from the Kubernetes module), KWOK nodes and the test bed's operator, started by
//! `scripts/testbed.sh` for one test and stopped when it ends.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The identity the product runs as; the audit log counts its requests.
pub const PRODUCT_USER: &str = "wbstack";

/// A binary the test bed's build put in its cache.
fn cache_bin(name: &str) -> PathBuf {
    let cache = std::env::var_os("WBSTACK_TESTBED_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/wbstack-testbed")
        });
    cache.join("bin").join(name)
}

fn script() -> PathBuf {
    crate::paths::root().join("scripts/testbed.sh")
}

/// Builds the test bed's binaries once per test process (a no-op when the cache is current).
fn built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(script()).arg("build").output().unwrap();
        assert!(
            out.status.success(),
            "scripts/testbed.sh build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// One running test bed; `down` when dropped.
pub struct Testbed {
    pub dir: PathBuf,
    /// For the tests' own kubectl (cluster admin).
    pub admin: PathBuf,
    /// For the product.
    pub product: PathBuf,
}

impl Testbed {
    pub fn up(dir: &Path) -> Self {
        built();
        let dir = dir.join("testbed");
        let out = Command::new(script())
            .arg("up")
            .env("WBSTACK_TESTBED_DIR", &dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/testbed.sh up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Testbed {
            admin: dir.join("kubeconfig/admin"),
            product: dir.join(format!("kubeconfig/{PRODUCT_USER}")),
            dir,
        }
    }

    /// The test bed's kubectl, built from the same Kubernetes release as the server.
    pub fn kubectl_bin() -> PathBuf {
        cache_bin("kubectl")
    }

    /// Judges traffic against NetworkPolicies with cyclonus's matcher (`testbed/netpol`):
    /// `input` is `{"policies": [...], "cases": [...]}`; one verdict per case comes back.
    pub fn netpol(input: &Value) -> Vec<Value> {
        built();
        let mut child = Command::new(cache_bin("netpol"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.to_string().as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "netpol failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The audit log's events for the requests of one identity.
    pub fn audit_events(&self, user: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == user)
            .collect()
    }

    /// The audit log's events for the product's requests.
    fn product_events(&self) -> Vec<Value> {
        self.audit_events(PRODUCT_USER)
    }

    /// Create, update, patch and delete requests the product made, as the server audited them.
    pub fn mutations(&self) -> u64 {
        settle_audit(self);
        self.product_events()
            .iter()
            .filter(|e| {
                matches!(
                    e["verb"].as_str(),
                    Some("create" | "update" | "patch" | "delete" | "deletecollection")
                )
            })
            .count() as u64
    }

    /// Every request the product made.
    pub fn requests(&self) -> u64 {
        settle_audit(self);
        self.product_events().len() as u64
    }
}

/// The audit backend writes a request's event as it completes; wait until the product's events
/// stop growing (controllers polling for a CRD not yet made keep the log itself growing).
fn settle_audit(t: &Testbed) {
    let len = || t.product_events().len();
    let mut last = len();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = len();
        if now == last {
            return;
        }
        last = now;
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the workloads look like, and what the control plane and the operator said,
            // for the failed test's output.
            let state = Command::new(Testbed::kubectl_bin())
                .args(["get", "sts,deploy,pods,pvc", "-A", "-o", "wide"])
                .env("KUBECONFIG", &self.admin)
                .output();
            if let Ok(o) = state {
                eprintln!(
                    "--- test bed workloads\n{}",
                    String::from_utf8_lossy(&o.stdout)
                );
            }
            for name in ["operator", "kwok", "kube-controller-manager"] {
                let log = std::fs::read_to_string(self.dir.join(format!("logs/{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!(
                    "--- test bed {name} log (last 40 lines)\n{}",
                    tail.join("\n")
                );
            }
        }
        let _ = Command::new(script())
            .arg("down")
            .env("WBSTACK_TESTBED_DIR", &self.dir)
            .output();
    }
}

fn snapshots() -> PathBuf {
    crate::paths::root().join("../shared/fixtures/operator-wandb-chart/test-configs/__snapshots__")
}

/// One object of a real render and the template it came from.
struct Rendered {
    source: String,
    text: String,
}

/// The documents of every snapshot, `default.snap` first.
fn renders() -> Vec<(String, Vec<Rendered>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(snapshots())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    files.sort_by_key(|p| (p.file_stem().unwrap() != "default", p.clone()));
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let docs = text
                .split("\n---\n")
                .filter_map(|d| {
                    let source = d.lines().find_map(|l| l.strip_prefix("# Source: "))?;
                    Some(Rendered {
                        source: source.to_owned(),
                        text: d.to_owned(),
                    })
                })
                .collect();
            (f.display().to_string(), docs)
        })
        .collect()
}

/// The API groups a plain cluster serves: objects of other groups (Prometheus monitors, KEDA
/// scalers) need their operators' CRDs and are left out of a scenario chart.
fn served(api_version: &str) -> bool {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "policy"
            | "autoscaling"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
    )
}

/// The component a template belongs to: `operator-wandb/charts/<component>/...`, or `None` for
/// the chart's own templates.
fn component_of(source: &str) -> Option<&str> {
    source
        .strip_prefix("operator-wandb/charts/")
        .and_then(|s| s.split('/').next())
}

/// Whether a Bitnami subchart renders its NetworkPolicy for these values: its templates do
/// only `if .Values.networkPolicy.enabled` (`keeper.networkPolicy.enabled` for ClickHouse
/// Keeper's, bitnami/charts `clickhouse/templates/keeper/networkpolicy.yaml`).
fn policy_rendered(d: &Rendered, component: &str, values: &Value) -> bool {
    let v = &values[component];
    let off = |x: &Value| x["networkPolicy"]["enabled"] == Value::Bool(false);
    if d.source.ends_with("/templates/keeper/networkpolicy.yaml") {
        return !off(&v["keeper"]);
    }
    !(d.source.ends_with("/templates/networkpolicy.yaml") && off(v))
}

/// A chart archive for one scenario: the objects of the operator-wandb chart's real renders for
/// the components these values install (each component as some real render made it, with the
/// release name and namespace substituted and the values' replica counts), so that the operator
/// installs real chart output through Helm. Returns the `.tgz`.
pub fn scenario_chart(values: &Value, release: &str, namespace: &str, dir: &Path) -> PathBuf {
    let chart = wbstack_chart::operator_wandb();
    let objects = scenario_objects(values, release, namespace);
    pack_chart(&objects, &chart.version, dir)
}

/// The objects of [`scenario_chart`], one YAML document each.
pub fn scenario_objects(values: &Value, release: &str, namespace: &str) -> Vec<String> {
    let chart = wbstack_chart::operator_wandb();
    let installed: Vec<&str> = chart.installed(values).map(|c| c.name.as_str()).collect();
    let all = renders();
    let mut objects = Vec::new();
    // The chart's own templates as the default values render them.
    objects.extend(
        all[0]
            .1
            .iter()
            .filter(|d| component_of(&d.source).is_none()),
    );
    // The chart installs its Ingress unless `ingress.install` is false (its default is true;
    // the default render's own values turn it off): as a real render made it.
    if values["ingress"]["install"] != Value::Bool(false) {
        let ingress = all
            .iter()
            .flat_map(|(_, docs)| docs)
            .find(|d| d.source == "operator-wandb/templates/ingress.yaml");
        objects.extend(ingress);
    }
    for name in &installed {
        let Some((_, docs)) = all
            .iter()
            .find(|(_, docs)| docs.iter().any(|d| component_of(&d.source) == Some(name)))
        else {
            continue;
        };
        objects.extend(
            docs.iter()
                .filter(|d| component_of(&d.source) == Some(name))
                .filter(|d| policy_rendered(d, name, values)),
        );
    }
    objects
        .into_iter()
        .filter_map(|d| object(d, values, release, namespace, &chart.version))
        .collect()
}

/// Packs objects as chart `operator-wandb` at `version` under `dir/chart`; returns the `.tgz`.
pub fn pack_chart(objects: &[String], version: &str, dir: &Path) -> PathBuf {
    let root = dir.join("chart/operator-wandb");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("objects")).unwrap();
    std::fs::create_dir_all(root.join("templates")).unwrap();
    std::fs::write(
        root.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: operator-wandb\nversion: {version}\ndescription: objects of the chart's real renders\n"
        ),
    )
    .unwrap();
    // The objects are files, not templates: Helm emits them as they are.
    std::fs::write(
        root.join("templates/objects.yaml"),
        "{{- range $path, $_ := .Files.Glob \"objects/*.yaml\" }}\n---\n{{ $.Files.Get $path }}\n{{- end }}\n",
    )
    .unwrap();
    for (n, v) in objects.iter().enumerate() {
        std::fs::write(root.join(format!("objects/{n:04}.yaml")), v).unwrap();
    }
    let tgz = dir.join(format!("chart/operator-wandb-{version}.tgz"));
    let st = Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(dir.join("chart"))
        .arg("operator-wandb")
        .status()
        .unwrap();
    assert!(st.success());
    tgz
}

/// A render under release `chartsnap` as Helm would make it under `release`: an object's own
/// name and its references to it (a `name:` at most 4 deep, or a `serviceAccountName:`, that is
/// `chartsnap-<alias>` or `chartsnap-<alias>-bc` for a W&B service) by Helm's `fullname` rule, where a release name
/// that contains the alias stands alone; every other `chartsnap` (references the chart's
/// templates spell out, like `WEAVE_SERVICE`) is the release name.
pub fn helm_names(text: &str, release: &str) -> String {
    let chart = wbstack_chart::operator_wandb();
    let mut aliases: Vec<&str> = chart
        .components
        .iter()
        .filter(|c| c.is_service())
        .map(|c| c.name.as_str())
        .collect();
    aliases.sort_by_key(|a| std::cmp::Reverse(a.len()));
    let rename = |value: &str| -> Option<String> {
        let rest = value.strip_prefix("chartsnap-")?;
        aliases.iter().find_map(|a| {
            let tail = rest.strip_prefix(a)?;
            matches!(tail, "" | "-bc")
                .then(|| format!("{}{tail}", wbstack_chart::fullname(release, a, None)))
        })
    };
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - line.trim_start().len();
        let renamed = ["name: ", "serviceAccountName: "].iter().find_map(|k| {
            // An object's own name, or one of its references to it (a scale target, a role
            // binding's role and subject): deeper `name:`s are references the templates spell
            // out (an Ingress backend's `<release>-app`).
            if *k == "name: " && indent > 4 {
                return None;
            }
            let v = trimmed.strip_prefix(k)?;
            let (q, bare) = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(b) => ("\"", b),
                None => ("", v),
            };
            let new = rename(bare)?;
            Some(format!(
                "{}{k}{q}{new}{q}",
                &line[..line.len() - trimmed.len()]
            ))
        });
        out.push(renamed.unwrap_or_else(|| line.replace("chartsnap", release)));
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    joined
}

/// One rendered object made this scenario's: release and namespace substituted, the values'
/// replica count for a W&B service's workload. The text is kept as rendered (Helm reads it as
/// YAML 1.1, where `0755` is a number), edited only line by line.
fn object(d: &Rendered, values: &Value, release: &str, ns: &str, version: &str) -> Option<String> {
    let text = helm_names(&d.text, release)
        .replace("###CHART_VERSION###", &format!("operator-wandb-{version}"))
        // chartsnap masks generated values; a Secret's data must be base64.
        .replace("'###DYNAMIC_FIELD###'", "ZHluYW1pYw==")
        .replace("\"###DYNAMIC_FIELD###\"", "ZHluYW1pYw==")
        .replace(".default.svc", &format!(".{ns}.svc"));
    let head: Value = serde_yaml_ng::from_str(&text).ok()?;
    if !head.is_object() || !served(head["apiVersion"].as_str()?) {
        return None;
    }
    let workload = matches!(head["kind"].as_str(), Some("Deployment" | "StatefulSet"));
    let replicas = component_of(&d.source)
        .filter(|_| workload)
        .and_then(|c| values[c]["replicaCount"].as_i64());
    let lines = text.lines().map(|l| match l {
        "  namespace: default" | "  namespace: \"default\"" => format!("  namespace: {ns}"),
        l if l.starts_with("  replicas: ") && replicas.is_some() => {
            format!("  replicas: {}", replicas.unwrap())
        }
        l => l.to_owned(),
    });
    Some(lines.collect::<Vec<_>>().join("\n"))
}
