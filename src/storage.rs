//! `up`'s storage preflight: where the plan's volumes in the cluster go, and whether the cluster
//! can hold them. They go to the plan's `spec.kubernetes.storageClass` or, without one, to the
//! cluster's default class; with neither, every claim would wait unbound. Where the class's CSI
//! driver publishes its capacity (`CSIStorageCapacity`, storage.k8s.io/v1), that capacity in all
//! is compared with the persistent storage the size asks for and with the volumes wbstack
//! claims, and the largest volume it can make with the largest wbstack claims. A driver that
//! publishes none (the EBS CSI driver does not) leaves capacity unchecked, and the run says so.

use crate::capacity::GIB;
use crate::preflight::quantity;
use serde_json::Value;
use wbstack_k8s::Kube;
use wbstack_plan::{ClickhouseMode, MysqlMode, Nodes, Plan, RedisMode, Size, StepPlan};

const API: &str = "storage.k8s.io/v1";
const DEFAULT: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// What claims volumes in the cluster: wbstack's own servers, `(what, count, bytes each,
/// size as written)`, and the chart's components whose volumes the chart sizes.
#[derive(Debug, Default, PartialEq)]
pub struct Wanted {
    pub volumes: Vec<(String, u32, f64, String)>,
    pub chart: Vec<&'static str>,
}

impl Wanted {
    pub fn of(plan: &Plan, steps: &[StepPlan]) -> Wanted {
        let mut w = Wanted::default();
        for sp in steps {
            let Some(servers) = sp.kind.footprint(None).servers else {
                continue;
            };
            for v in servers.volumes {
                let bytes = quantity(v.size);
                w.volumes
                    .push((v.what.to_owned(), v.count, bytes, v.size.to_owned()));
            }
        }
        let s = &plan.spec;
        let chart = [
            (s.mysql.mode == MysqlMode::InCluster, "the chart's MySQL"),
            (s.redis.mode == RedisMode::InCluster, "the chart's Redis"),
            (
                s.clickhouse.mode == ClickhouseMode::InChart,
                "the chart's ClickHouse",
            ),
        ];
        w.chart = chart.iter().filter(|(on, _)| *on).map(|c| c.1).collect();
        w
    }

    fn is_empty(&self) -> bool {
        self.volumes.is_empty() && self.chart.is_empty()
    }

    /// wbstack's own volumes, and with `chart` the chart's components, in words.
    fn named(&self, chart: bool) -> String {
        let mut v: Vec<String> = self
            .volumes
            .iter()
            .map(|(what, n, _, size)| format!("{what} ({n} x {size})"))
            .collect();
        if chart {
            v.extend(self.chart.iter().map(|c| (*c).to_owned()));
        }
        v.join(", ")
    }
}

/// The class the cluster gives a claim that names none: the one marked default, the newest
/// when several are (as Kubernetes picks since 1.26).
pub fn default_class(classes: &[Value]) -> Option<String> {
    let marked = |c: &&Value| {
        DEFAULT
            .iter()
            .any(|a| c["metadata"]["annotations"][*a].as_str() == Some("true"))
    };
    classes
        .iter()
        .filter(marked)
        .max_by_key(|c| c["metadata"]["creationTimestamp"].as_str().unwrap_or(""))
        .and_then(|c| c["metadata"]["name"].as_str().map(str::to_owned))
}

/// The class the plan's volumes go to; an error in words when there is none.
pub fn class_for(plan: &Plan, w: &Wanted, classes: &[Value]) -> Result<Option<String>, String> {
    if let Some(c) = &plan.spec.kubernetes.storage_class {
        return Ok(Some(c.clone()));
    }
    if let Some(c) = default_class(classes) {
        return Ok(Some(c));
    }
    if w.is_empty() {
        return Ok(None);
    }
    let have: Vec<&str> = classes
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    Err(format!(
        "the plan names no StorageClass (spec.kubernetes.storageClass) and the cluster has no \
         default one, so the volumes of {} would wait unbound; name one (the cluster has: {}) or \
         mark one default (annotation {}: \"true\")",
        w.named(true),
        if have.is_empty() {
            "none".to_owned()
        } else {
            have.join(", ")
        },
        DEFAULT[0]
    ))
}

/// What the class's driver publishes: (objects, bytes in all, largest volume it can make).
fn published(class: &str, capacities: &[Value]) -> Option<(usize, f64, f64)> {
    let mine: Vec<(f64, f64)> = capacities
        .iter()
        .filter(|c| c["storageClassName"].as_str() == Some(class))
        .filter_map(|c| {
            let cap = quantity(c["capacity"].as_str()?);
            let max = c["maximumVolumeSize"].as_str().map_or(cap, quantity);
            Some((cap, max))
        })
        .collect();
    if mine.is_empty() {
        return None;
    }
    let total = mine.iter().map(|c| c.0).sum();
    let largest = mine.iter().map(|c| c.1).fold(0.0, f64::max);
    Some((mine.len(), total, largest))
}

/// The shortfall of `class` against the size and wbstack's volumes, in words; `Ok(false)`
/// when its driver publishes no capacity.
pub fn judge(size: Size, class: &str, w: &Wanted, capacities: &[Value]) -> Result<bool, String> {
    let Some((objects, total, largest)) = published(class, capacities) else {
        return Ok(false);
    };
    let want = f64::from(Nodes::of(size).storage_gib) * GIB;
    let claimed: f64 = w.volumes.iter().map(|v| f64::from(v.1) * v.2).sum();
    let mut short = Vec::new();
    if total < want {
        short.push(format!(
            "size {} asks for {} GiB of persistent storage",
            size.as_str(),
            gib(want)
        ));
    }
    if total < claimed {
        short.push(format!(
            "{} claim {} GiB in all",
            w.named(false),
            gib(claimed)
        ));
    }
    let big = w.volumes.iter().filter(|v| v.2 > largest);
    short.extend(big.map(|(what, _, _, s)| {
        format!(
            "{what} claims volumes of {s}, larger than the {} GiB the largest can be",
            gib(largest)
        )
    }));
    if short.is_empty() {
        return Ok(true);
    }
    Err(format!(
        "StorageClass {class}'s driver publishes {} GiB in all ({objects} CSIStorageCapacity \
         objects): {} (a driver that adds capacity as claims wait for it can skip this check)",
        gib(total),
        short.join("; ")
    ))
}

fn gib(bytes: f64) -> String {
    crate::capacity::fmt(bytes / GIB)
}

/// The StorageClasses, or `None` (with a warning) when they cannot be listed.
pub async fn classes(kube: &Kube) -> Option<Vec<Value>> {
    match kube.list(API, "StorageClass", None, "").await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("preflight storage-class: the StorageClasses cannot be listed ({e}); the default class is not checked");
            None
        }
    }
}

/// The capacity check on the live cluster.
pub async fn check(kube: &Kube, plan: &Plan, w: &Wanted) -> Result<(), String> {
    let Some(classes) = classes(kube).await else {
        return Ok(());
    };
    let Ok(Some(class)) = class_for(plan, w, &classes) else {
        return Ok(());
    };
    let capacities = match kube.list(API, "CSIStorageCapacity", None, "").await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("preflight storage-capacity: CSIStorageCapacity cannot be listed ({e}); not checked");
            return Ok(());
        }
    };
    if !judge(plan.spec.size, &class, w, &capacities)? {
        tracing::info!(
            "preflight storage-capacity: StorageClass {class}'s driver publishes no capacity (CSIStorageCapacity); the {} GiB size {} asks for is not checked",
            Nodes::of(plan.spec.size).storage_gib,
            plan.spec.size.as_str()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, default: Option<&str>, created: &str) -> Value {
        let mut c = json!({"apiVersion": API, "kind": "StorageClass",
            "metadata": {"name": name, "creationTimestamp": created}, "provisioner": "ebs.csi.aws.com"});
        if let Some(d) = default {
            c["metadata"]["annotations"] = json!({ d: "true" });
        }
        c
    }

    /// As a CSI driver's external-provisioner publishes it, one per topology segment.
    fn capacity(class: &str, cap: Option<&str>, max: Option<&str>) -> Value {
        let mut c = json!({"apiVersion": API, "kind": "CSIStorageCapacity",
            "metadata": {"generateName": "csisc-", "namespace": "kube-system"},
            "storageClassName": class,
            "nodeTopology": {"matchLabels": {"topology.kubernetes.io/zone": "us-east-1a"}}});
        if let Some(v) = cap {
            c["capacity"] = json!(v);
        }
        if let Some(v) = max {
            c["maximumVolumeSize"] = json!(v);
        }
        c
    }

    fn wanted(volumes: &[(&str, u32, &str)], chart: &[&'static str]) -> Wanted {
        Wanted {
            volumes: volumes
                .iter()
                .map(|(w, n, s)| ((*w).to_owned(), *n, quantity(s), (*s).to_owned()))
                .collect(),
            chart: chart.to_vec(),
        }
    }

    #[test]
    fn the_default_class_is_the_newest_marked_one_by_either_annotation() {
        let beta = DEFAULT[1];
        let classes = [
            class("gp2", Some(DEFAULT[0]), "2024-01-01T00:00:00Z"),
            class("gp3", Some(beta), "2025-06-01T00:00:00Z"),
            class("io2", None, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&classes).as_deref(), Some("gp3"));
        assert_eq!(default_class(&classes[2..]), None);
    }

    #[test]
    fn capacity_is_judged_only_where_the_driver_publishes_it() {
        let w = wanted(
            &[("ClickHouse", 3, "100Gi"), ("ClickHouse Keeper", 3, "10Gi")],
            &["the chart's Redis"],
        );
        // The EBS CSI driver publishes none: unchecked.
        assert_eq!(judge(Size::Small, "gp3", &w, &[]), Ok(false));
        // Another class's, or an object whose capacity is unknown, does not count.
        let other = [
            capacity("local", Some("10Ti"), None),
            capacity("gp3", None, None),
        ];
        assert_eq!(judge(Size::Small, "gp3", &w, &other), Ok(false));
        // Three zones of 200 GiB: 600 GiB in all, enough for small (500 GiB).
        let zones = vec![capacity("gp3", Some("200Gi"), None); 3];
        assert_eq!(judge(Size::Small, "gp3", &w, &zones), Ok(true));
        let why = judge(Size::Medium, "gp3", &w, &zones).unwrap_err();
        assert!(
            why.contains("gp3's driver publishes 600 GiB in all (3 CSIStorageCapacity objects): size medium asks for 2048 GiB"),
            "{why}"
        );
    }

    #[test]
    fn a_volume_larger_than_the_driver_can_make_is_named() {
        let w = wanted(&[("ClickHouse", 3, "1Ti")], &[]);
        let nodes = vec![capacity("local-path", Some("2Ti"), Some("500Gi")); 3];
        let why = judge(Size::Small, "local-path", &w, &nodes).unwrap_err();
        assert!(
            why.ends_with("ClickHouse claims volumes of 1Ti, larger than the 500 GiB the largest can be (a driver that adds capacity as claims wait for it can skip this check)"),
            "{why}"
        );
        let small = [capacity("local-path", Some("1000Gi"), None)];
        let why = judge(Size::Small, "local-path", &w, &small).unwrap_err();
        assert!(
            why.contains("ClickHouse (3 x 1Ti) claim 3072 GiB in all"),
            "{why}"
        );
    }
}
