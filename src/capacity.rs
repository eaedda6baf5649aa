//! `up`'s capacity preflight: the cluster's schedulable nodes, by their allocatable CPU and
//! memory in all, against the cluster the reference architecture sizes for the plan's size
//! (small: 3 nodes of 4 CPU and 16 GiB; medium: 5 of 8 and 32; large: 10 of 16 and 64). The
//! total is compared, not the count: fewer, larger nodes hold the same pods. A shortfall is
//! named; a cluster that adds nodes as pods wait for them skips the check.

use crate::preflight::quantity;
use serde_json::Value;
use wbstack_k8s::Kube;
use wbstack_plan::{Nodes, Size};

pub(crate) const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What the schedulable nodes offer: (nodes, CPUs, memory in GiB).
fn offered(nodes: &[Value]) -> (usize, f64, f64) {
    let usable: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["spec"]["unschedulable"] != true)
        .filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .collect();
    let sum = |key: &str| -> f64 {
        usable
            .iter()
            .map(|n| quantity(n["status"]["allocatable"][key].as_str().unwrap_or("0")))
            .sum()
    };
    (usable.len(), sum("cpu"), sum("memory") / GIB)
}

/// The shortfall of the cluster's nodes against `size`, if any, in words.
pub fn shortfall(size: Size, nodes: &[Value]) -> Option<String> {
    let want = Nodes::of(size);
    let (count, cpu, mem) = offered(nodes);
    let (want_cpu, want_mem) = (
        f64::from(want.count * want.cpu),
        f64::from(want.count * want.memory_gib),
    );
    if cpu >= want_cpu && mem >= want_mem {
        return None;
    }
    let mut short = Vec::new();
    if cpu < want_cpu {
        short.push(format!("{} CPU", fmt(want_cpu - cpu)));
    }
    if mem < want_mem {
        short.push(format!("{} GiB of memory", fmt(want_mem - mem)));
    }
    Some(format!(
        "size {} asks for {} nodes of {} CPU and {} GiB ({} CPU and {} GiB in all, and {} GiB of \
         persistent storage); the cluster's {count} schedulable, ready nodes have {} CPU and {} \
         GiB allocatable: {} short (a cluster that adds nodes as pods wait for them can skip this \
         check)",
        size.as_str(),
        want.count,
        want.cpu,
        want.memory_gib,
        want_cpu,
        want_mem,
        want.storage_gib,
        fmt(cpu),
        fmt(mem),
        short.join(" and "),
    ))
}

/// A figure to one decimal, without a trailing `.0`.
pub(crate) fn fmt(v: f64) -> String {
    // `+ 0.0` turns the -0.0 of an empty sum into 0.
    let r = (v * 10.0).round() / 10.0 + 0.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// The check, on the live cluster; skipped (with a warning) when the nodes cannot be listed.
pub async fn check(kube: &Kube, size: Size) -> Result<(), String> {
    let Ok(nodes) = kube.list("v1", "Node", None, "").await else {
        tracing::warn!("preflight capacity: the nodes cannot be listed; not checked");
        return Ok(());
    };
    match shortfall(size, &nodes) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(cpu: &str, memory: &str, ready: bool, cordoned: bool) -> Value {
        json!({"spec": {"unschedulable": cordoned},
            "status": {"allocatable": {"cpu": cpu, "memory": memory},
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn the_total_of_ready_schedulable_nodes_is_compared_with_the_size() {
        let three = vec![node("4", "16Gi", true, false); 3];
        assert_eq!(shortfall(Size::Small, &three), None);
        let why = shortfall(Size::Medium, &three).unwrap();
        assert!(
            why.contains("12 CPU and 48 GiB allocatable: 28 CPU and 112 GiB of memory short"),
            "{why}"
        );
        // Fewer, larger nodes hold the same.
        assert_eq!(
            shortfall(Size::Large, &vec![node("64", "512Gi", true, false); 3]),
            None
        );
        // A cordoned or a not-ready node offers nothing.
        let mixed = vec![
            node("4", "16Gi", true, false),
            node("4", "16Gi", true, true),
            node("4", "16000Mi", false, false),
        ];
        let why = shortfall(Size::Small, &mixed).unwrap();
        assert!(
            why.contains("cluster's 1 schedulable, ready nodes have 4 CPU"),
            "{why}"
        );
        // CPU in millicores, memory in any unit.
        assert_eq!(
            shortfall(Size::Small, &[node("12000m", "48Gi", true, false)]),
            None
        );
    }
}
