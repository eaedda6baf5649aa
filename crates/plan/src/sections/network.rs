//! `spec.kubernetes.networkPolicies`: NetworkPolicies in the namespace of W&B (and of the
//! ClickHouse wbstack runs): all traffic denied, then the flows W&B needs. The step follows the
//! resource: the front door's flows are read from the release the operator installed.

use crate::build::Builder;
use crate::check::Checker;
use crate::ids::{self, outputs, Input};
use crate::kinds::{AltinityFlow, DataPort, NetworkPolicies, StepKind};
use crate::model::{ClickhouseMode, MysqlMode, RedisMode};
use crate::resolve::Resolved;
use serde_json::json;

const FIELD: &str = "spec.kubernetes.networkPolicies";

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let Some(n) = &r.spec.kubernetes.network_policies else {
        return;
    };
    for (field, list) in [
        ("ingressNamespaces", &n.ingress_namespaces),
        ("monitoringNamespaces", &n.monitoring_namespaces),
    ] {
        for (i, ns) in list.iter().enumerate() {
            if !crate::is_dns_label(ns, 63) {
                c.value(
                    &format!("{FIELD}.{field}[{i}]"),
                    format!("`{ns}` is not a namespace name (a DNS label)"),
                );
            }
        }
    }
    for (field, list) in [
        ("ingressCidrs", &n.ingress_cidrs),
        ("dataCidrs", &n.data_cidrs),
    ] {
        for (i, cidr) in list.iter().enumerate() {
            if let Some((why, help)) = cidr_problem(cidr) {
                c.value_help(&format!("{FIELD}.{field}[{i}]"), why, &help);
            }
        }
    }
}

/// With wbstack's policies on, the chart's in-cluster Redis and ClickHouse (Bitnami subcharts)
/// are told not to make their own: theirs admit any source on the servers' ports (their
/// `networkPolicy.allowExternal` defaults to true), and policies only ever add to what is
/// allowed, so they would reopen what the default deny closes.
pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    if !r
        .spec
        .kubernetes
        .network_policies
        .as_ref()
        .is_some_and(|n| n.enabled)
    {
        return;
    }
    if r.spec.redis.mode == RedisMode::InCluster {
        b.set("/redis/networkPolicy/enabled", json!(false));
    }
    if r.spec.clickhouse.mode == ClickhouseMode::InChart && r.spec.wandb.weave.enabled {
        b.set("/clickhouse/networkPolicy/enabled", json!(false));
        b.set("/clickhouse/keeper/networkPolicy/enabled", json!(false));
    }
}

/// Why `s` is not a CIDR an `ipBlock` takes, and how to write it.
fn cidr_problem(s: &str) -> Option<(String, String)> {
    match s.parse::<ipnet::IpNet>() {
        Err(_) => Some((
            format!("`{s}` is not a CIDR"),
            "an address and a prefix length, like 10.0.0.0/16".into(),
        )),
        Ok(net) if net.trunc() != net => Some((
            format!("`{s}` has bits set beyond its prefix"),
            format!("write the network: {}", net.trunc()),
        )),
        Ok(_) => None,
    }
}

/// The step, when the plan asks for the policies.
pub(crate) fn step(r: &Resolved, planned: &[crate::StepPlan]) -> Option<NetworkPolicies> {
    let n = r.spec.kubernetes.network_policies.as_ref()?;
    if !n.enabled {
        return None;
    }
    let altinity = planned.iter().find_map(|s| match &s.kind {
        StepKind::ClickhouseAltinity(chi) => Some(AltinityFlow {
            installation: chi.name.clone(),
            operator: Input::new(ids::ALTINITY_OPERATOR, outputs::NAMESPACE),
        }),
        _ => None,
    });
    Some(NetworkPolicies {
        namespace: r.ns.clone(),
        release: r.spec.wandb.name.clone(),
        ingress_namespaces: n.ingress_namespaces.clone(),
        ingress_cidrs: n.ingress_cidrs.clone(),
        monitoring_namespaces: n.monitoring_namespaces.clone(),
        data_cidrs: n.data_cidrs.clone(),
        data_ports: data_ports(r),
        altinity,
        after: Input::new(ids::WANDB, outputs::HOST),
    })
}

/// The ports of the data stores outside the cluster that W&B's pods reach.
fn data_ports(r: &Resolved) -> Vec<DataPort> {
    let s = r.spec;
    let mut v = Vec::new();
    let mut add = |port: u16, what: &str| {
        v.push(DataPort {
            port,
            what: what.into(),
        })
    };
    if s.mysql.mode != MysqlMode::InCluster {
        add(s.mysql.port.unwrap_or(3306), "MySQL");
    }
    if s.redis.mode != RedisMode::InCluster {
        add(s.redis.port.unwrap_or(6379), "Redis");
    }
    if let Some(k) = &s.kafka {
        add(k.broker_port, "Kafka");
    }
    if s.clickhouse.mode == ClickhouseMode::External {
        add(s.clickhouse.port.unwrap_or(8123), "ClickHouse");
    }
    v.sort();
    v.dedup_by(|a, b| {
        if a.port == b.port {
            b.what = format!("{}, {}", b.what, a.what);
            true
        } else {
            false
        }
    });
    v
}

#[cfg(test)]
mod tests {
    use crate::ids;
    use crate::kinds::{DataPort, NetworkPolicies, StepKind};
    use crate::sections::testing::{at, ids, kind, steps, values, AWS};

    fn policies(spec: &str) -> NetworkPolicies {
        match kind(&steps(spec), ids::NETWORK_POLICIES) {
            StepKind::NetworkPolicies(n) => n.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_policies_unless_asked_or_when_disabled() {
        assert!(!ids(&steps("")).contains(&ids::NETWORK_POLICIES));
        let off = "  kubernetes:\n    networkPolicies: {enabled: false}\n";
        assert!(!ids(&steps(off)).contains(&ids::NETWORK_POLICIES));
    }

    #[test]
    fn the_policies_follow_the_resource_and_name_its_release() {
        let s = steps("  kubernetes:\n    networkPolicies: {}\n");
        let order = ids(&s);
        let at_np = order.iter().position(|i| *i == ids::NETWORK_POLICIES);
        let at_wandb = order.iter().position(|i| *i == ids::WANDB);
        assert!(at_np > at_wandb, "{order:?}");
        let n = policies("  kubernetes:\n    networkPolicies: {}\n");
        assert_eq!(
            (n.namespace.as_str(), n.release.as_str()),
            ("wandb", "wandb")
        );
        // In-cluster data stores are in the namespace: no port outside it.
        assert!(n.data_ports.is_empty());
        assert!(n.altinity.is_none());
    }

    #[test]
    fn the_data_stores_outside_the_cluster_give_their_ports() {
        let spec = format!(
            "  kubernetes:\n    networkPolicies: {{dataCidrs: [10.0.0.0/16]}}\n  mysql: {{mode: aurora}}\n  redis: {{mode: elasticache}}\n  clickhouse: {{mode: external, host: ch.example.com, port: 8443}}\n{AWS}"
        );
        let n = policies(&spec);
        let ports: Vec<(u16, &str)> = n
            .data_ports
            .iter()
            .map(|DataPort { port, what }| (*port, what.as_str()))
            .collect();
        assert_eq!(
            ports,
            [(3306, "MySQL"), (6379, "Redis"), (8443, "ClickHouse")]
        );
        assert_eq!(n.data_cidrs, ["10.0.0.0/16"]);
    }

    #[test]
    fn an_altinity_installation_lets_its_operator_in() {
        let n =
            policies("  kubernetes:\n    networkPolicies: {}\n  clickhouse: {mode: altinity}\n");
        let a = n.altinity.expect("the operator's flow");
        assert_eq!(a.installation, "weave-clickhouse");
        assert_eq!(a.operator.step, ids::ALTINITY_OPERATOR);
    }

    #[test]
    fn the_charts_own_open_policies_are_turned_off_for_its_in_cluster_stores() {
        let on = "    weave: {enabled: true}\n  kubernetes:\n    networkPolicies: {}\n";
        let v = values(on);
        assert_eq!(v["redis"]["networkPolicy"]["enabled"], false);
        assert_eq!(v["clickhouse"]["networkPolicy"]["enabled"], false);
        assert_eq!(v["clickhouse"]["keeper"]["networkPolicy"]["enabled"], false);
        let off = values("");
        assert!(off["redis"]["networkPolicy"].is_null());
        assert!(off["clickhouse"]["networkPolicy"].is_null());
    }

    #[test]
    fn bad_namespaces_and_cidrs_are_pointed_at() {
        let spec = "  kubernetes:\n    networkPolicies:\n      ingressNamespaces: [Ingress_Nginx]\n      ingressCidrs: [10.0.0.1/16]\n      dataCidrs: [vpc]\n";
        assert_eq!(
            at(spec, "not a namespace name"),
            (
                "spec.kubernetes.networkPolicies.ingressNamespaces[0]".into(),
                10,
                27
            )
        );
        assert_eq!(
            at(spec, "bits set beyond its prefix"),
            (
                "spec.kubernetes.networkPolicies.ingressCidrs[0]".into(),
                11,
                22
            )
        );
        assert_eq!(
            at(spec, "is not a CIDR"),
            (
                "spec.kubernetes.networkPolicies.dataCidrs[0]".into(),
                12,
                19
            )
        );
    }
}
