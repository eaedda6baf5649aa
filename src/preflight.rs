//! Checks made before the first change of `up`: the Kubernetes version, the StorageClass the
//! plan names (or a default one, when it names none), the IngressClass and the image pull
//! secrets the plan names, `WF_*` names Weave reads, a node large enough for a ClickHouse
//! replica, and the cluster's capacity for the plan's size: CPU and memory, and storage where
//! the driver publishes it. A failed check is an error (exit 6) naming how to skip it
//! (`--skip-preflight NAME`); nothing has been changed by then.

use crate::exit::CliError;
use wbstack_k8s::Kube;
use wbstack_plan::{Plan, StepPlan};

/// Every check, by the name `--skip-preflight` takes.
pub const CHECKS: [&str; 9] = [
    "kubernetes-version",
    "storage-class",
    "storage-capacity",
    "ingress-class",
    "pull-secrets",
    "weave-env",
    "node-capacity",
    "capacity",
    "aws-identity",
];

/// The oldest Kubernetes the operator-wandb chart supports.
const OLDEST: (u32, u32) = (1, 25);

pub async fn run(
    kube: &Kube,
    plan: &Plan,
    steps: &[StepPlan],
    skip: &[String],
) -> Result<(), CliError> {
    let skipped = |name: &str| {
        debug_assert!(CHECKS.contains(&name), "{name} is not in CHECKS");
        skip.iter().any(|s| s == name)
    };
    let wanted = crate::storage::Wanted::of(plan, steps);
    let fail = |name: &str, why: String| {
        CliError::environment(format!(
            "preflight {name}: {why} (nothing was changed; skip this check with --skip-preflight {name})"
        ))
    };
    if !skipped("kubernetes-version") {
        let v = kube.client().apiserver_version().await.map_err(|e| {
            fail(
                "kubernetes-version",
                format!("cannot read the server's version: {e}"),
            )
        })?;
        let minor: u32 = v.minor.trim_end_matches('+').parse().unwrap_or(0);
        let major: u32 = v.major.parse().unwrap_or(0);
        if (major, minor) < OLDEST {
            return Err(fail(
                "kubernetes-version",
                format!(
                "the cluster runs Kubernetes {}.{}; the operator-wandb chart needs {}.{} or newer",
                v.major, v.minor, OLDEST.0, OLDEST.1
            ),
            ));
        }
    }
    if !skipped("storage-class") {
        for name in storage_classes(plan, steps) {
            let found = kube
                .get("storage.k8s.io/v1", "StorageClass", None, &name)
                .await
                .map_err(|e| fail("storage-class", e.message().to_owned()))?;
            if found.is_none() {
                let have: Vec<String> = kube
                    .list("storage.k8s.io/v1", "StorageClass", None, "")
                    .await
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_owned))
                    .collect();
                return Err(fail("storage-class", format!(
                    "the plan names StorageClass {name}, which the cluster does not have (it has: {})",
                    if have.is_empty() { "none".to_owned() } else { have.join(", ") }
                )));
            }
        }
        if let Some(classes) = crate::storage::classes(kube).await {
            crate::storage::class_for(plan, &wanted, &classes)
                .map_err(|why| fail("storage-class", why))?;
        }
    }
    if !skipped("storage-capacity") {
        crate::storage::check(kube, plan, &wanted)
            .await
            .map_err(|why| fail("storage-capacity", why))?;
    }
    if !skipped("weave-env") {
        if let Some(u) = wbstack_plan::unknown_weave_variables(plan).first() {
            let hint = u
                .closest
                .map(|c| format!("; did you mean {c}?"))
                .unwrap_or_default();
            return Err(fail(
                "weave-env",
                format!(
                    "{} sets {}, which Weave does not read{hint}",
                    u.path, u.name
                ),
            ));
        }
    }
    if !skipped("ingress-class") {
        if let Some(ing) = &plan.spec.wandb.ingress {
            ingress_class(kube, &ing.class)
                .await
                .map_err(|why| fail("ingress-class", why))?;
        }
    }
    if !skipped("pull-secrets") {
        pull_secrets(kube, plan)
            .await
            .map_err(|why| fail("pull-secrets", why))?;
    }
    if !skipped("node-capacity") {
        node_capacity(kube, steps)
            .await
            .map_err(|why| fail("node-capacity", why))?;
    }
    if !skipped("capacity") {
        crate::capacity::check(kube, plan.spec.size)
            .await
            .map_err(|why| fail("capacity", why))?;
    }
    Ok(())
}

/// The IngressClass the plan names exists (its controller is installed).
async fn ingress_class(kube: &Kube, name: &str) -> Result<(), String> {
    const API: &str = "networking.k8s.io/v1";
    let found = kube
        .get(API, "IngressClass", None, name)
        .await
        .map_err(|e| e.message().to_owned())?;
    if found.is_some() {
        return Ok(());
    }
    let have: Vec<String> = kube
        .list(API, "IngressClass", None, "")
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let hint = if name == "alb" {
        " (install the AWS Load Balancer Controller, which makes it)"
    } else {
        ""
    };
    Err(format!(
        "the plan names IngressClass {name}, which the cluster does not have{hint}; it has: {}",
        if have.is_empty() {
            "none".to_owned()
        } else {
            have.join(", ")
        }
    ))
}

/// The image pull secrets the plan names exist where the pods that use them run: W&B's
/// namespace, and the operator's when wbstack installs it.
async fn pull_secrets(kube: &Kube, plan: &Plan) -> Result<(), String> {
    let s = &plan.spec;
    let mut namespaces = vec![s.kubernetes.namespace.as_str()];
    if s.wandb.operator.install == wbstack_plan::OperatorInstall::Auto {
        namespaces.push(s.wandb.operator.namespace.as_str());
    }
    namespaces.dedup();
    for ns in namespaces {
        for name in &s.images.pull_secrets {
            let found = kube
                .get("v1", "Secret", Some(ns), name)
                .await
                .map_err(|e| e.message().to_owned())?;
            if found.is_none() {
                return Err(format!(
                    "the plan pulls images with Secret {name}, which namespace {ns} does not have (create it first: kubectl create namespace {ns}; kubectl create secret docker-registry {name} -n {ns} ...)"
                ));
            }
        }
    }
    Ok(())
}

/// Every StorageClass the plan's claims use.
fn storage_classes(plan: &Plan, steps: &[StepPlan]) -> Vec<String> {
    let mut names: Vec<String> = plan.spec.kubernetes.storage_class.iter().cloned().collect();
    for sp in steps {
        let fp = sp.kind.footprint(None);
        names.extend(fp.servers.and_then(|s| s.storage_class).map(str::to_owned));
    }
    names.sort();
    names.dedup();
    names
}

/// A node must be able to hold one ClickHouse replica's requests (Weave's ClickHouse asks for
/// large nodes). Skipped when the identity may not list nodes.
async fn node_capacity(kube: &Kube, steps: &[StepPlan]) -> Result<(), String> {
    let wanted = steps.iter().find_map(|sp| {
        sp.kind
            .footprint(None)
            .servers
            .and_then(|s| s.requests.cloned())
    });
    let Some(wanted) = wanted else { return Ok(()) };
    let (cpu, mem) = (quantity(&wanted.cpu), quantity(&wanted.memory));
    let Ok(nodes) = kube.list("v1", "Node", None, "").await else {
        tracing::warn!("preflight node-capacity: the nodes cannot be listed; not checked");
        return Ok(());
    };
    let fits = nodes.iter().any(|n| {
        let a = &n["status"]["allocatable"];
        quantity(a["cpu"].as_str().unwrap_or("0")) >= cpu
            && quantity(a["memory"].as_str().unwrap_or("0")) >= mem
    });
    if fits || nodes.is_empty() {
        return Ok(());
    }
    Err(format!(
        "no node can hold a ClickHouse replica, which requests {} CPU and {} of memory ({} nodes looked at)",
        wanted.cpu, wanted.memory, nodes.len()
    ))
}

/// A Kubernetes quantity (`500m`, `2`, `64Gi`, `1.5G`) as a number of base units.
pub(crate) fn quantity(q: &str) -> f64 {
    let q = q.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("m", 1e-3),
        ("", 1.0),
    ];
    for (s, f) in suffixes {
        if let Some(n) = q.strip_suffix(s).filter(|n| !n.is_empty()) {
            if let Ok(v) = n.parse::<f64>() {
                return v * f;
            }
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::quantity;

    #[test]
    fn quantities_are_read_in_base_units() {
        assert_eq!(quantity("500m"), 0.5);
        assert_eq!(quantity("2"), 2.0);
        assert_eq!(quantity("64Gi"), 64.0 * 1024f64.powi(3));
        assert_eq!(quantity("1.5G"), 1.5e9);
        assert_eq!(quantity("nonsense"), 0.0);
    }
}
