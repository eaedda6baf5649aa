//! Which probes can run from here, and why the others cannot.

use crate::clickhouse_probe::Clickhouse;
use crate::host_probe::Host;
use crate::mysql_probe::Mysql;
use crate::redis_probe::Redis;
use crate::references::References;
use crate::run::Probe;
use crate::verdict::Finding;
use crate::wiring::{Source, Wiring};
use serde::{Deserialize, Serialize};

/// Where verify runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Inside the cluster (the probe Job): its Services are in reach.
    #[serde(default)]
    pub in_cluster: bool,
    /// Against the sandbox's emulated cluster: no pod runs, no ingress serves.
    pub sandbox: bool,
    /// Do not check the host's certificate (said in the findings).
    pub skip_certificate: bool,
    /// How many ClickHouse replicas the plan asks for, when it deploys ClickHouse.
    pub clickhouse_replicas: Option<u32>,
}

/// The probes to run, and a skip finding for each data path that cannot be probed.
#[derive(Default)]
pub struct Chosen {
    pub probes: Vec<Box<dyn Probe>>,
    pub skipped: Vec<Finding>,
}

/// Why a store the chart runs itself cannot be reached from here.
fn in_cluster(what: &str, o: &Options) -> String {
    if o.in_cluster {
        format!("the chart runs its own {what}: verify probes the stores the values name")
    } else if o.sandbox {
        format!("the chart runs its own {what}, and the sandbox runs no pods")
    } else {
        format!("the chart runs its own {what} inside the cluster, out of reach from here")
    }
}

/// A name only the cluster's DNS answers (`<service>.<namespace>.svc[.cluster.local]`).
fn cluster_local(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    h.ends_with(".svc")
        || h.ends_with(".svc.cluster.local")
        || (!h.contains('.') && h != "localhost")
}

/// The skip of a store whose host is a cluster Service.
fn unreachable(probe: &str, what: &str, host: &str) -> Finding {
    Finding::skip(
        probe,
        format!("{what} at {host}"),
        "a Service inside the cluster, out of reach from here",
    )
}

/// The references probe: it reads the cluster's API, so it runs where wbstack runs.
pub fn references(w: &Wiring) -> Option<Box<dyn Probe>> {
    let Source::Api(kube) = &w.source else {
        return None;
    };
    Some(Box::new(References {
        kube: kube.clone(),
        namespace: w.namespace.clone(),
        resource: w.resource.clone(),
    }))
}

/// Chooses the probes for the resource as its values wire it: the references when the API is
/// in reach, and each store the values name.
pub async fn choose(w: &Wiring, o: &Options) -> Chosen {
    let mut c = Chosen::default();
    c.probes.extend(references(w));
    let out_of_reach = |host: &str| !o.in_cluster && cluster_local(host);
    match w.mysql().await {
        Some(t) if out_of_reach(&t.at.host) => {
            c.skipped.push(unreachable("mysql", "MySQL", &t.at.host))
        }
        Some(target) => c.probes.push(Box::new(Mysql { target })),
        None => c
            .skipped
            .push(Finding::skip("mysql", "MySQL", in_cluster("MySQL", o))),
    }
    match w.redis().await {
        Some(t) if out_of_reach(&t.at.host) => {
            c.skipped.push(unreachable("redis", "Redis", &t.at.host))
        }
        Some(target) => c.probes.push(Box::new(Redis { target })),
        None => c
            .skipped
            .push(Finding::skip("redis", "Redis", in_cluster("Redis", o))),
    }
    match w.clickhouse().await {
        Some(_) if o.sandbox => c.skipped.push(Finding::skip(
            "clickhouse",
            "ClickHouse",
            "the sandbox runs no ClickHouse server",
        )),
        Some(t) if out_of_reach(&t.at.host) => {
            c.skipped
                .push(unreachable("clickhouse", "ClickHouse", &t.at.host))
        }
        Some(mut target) => {
            target.expected_replicas = o.clickhouse_replicas;
            c.probes.push(Box::new(Clickhouse { target }));
        }
        None => c.skipped.push(Finding::skip(
            "clickhouse",
            "ClickHouse",
            "the values name no ClickHouse (Weave is off, or the chart runs its own)",
        )),
    }
    match w.host() {
        Some(_) if o.sandbox => c.skipped.push(Finding::skip(
            "host",
            "the W&B host",
            "the sandbox has no ingress or load balancer: the host is not served",
        )),
        Some(url) => c.probes.push(Box::new(Host {
            url,
            ca: None,
            skip_certificate: o.skip_certificate,
        })),
        None => c.skipped.push(Finding::skip(
            "host",
            "the W&B host",
            "the values set no global.host",
        )),
    }
    c
}

#[cfg(test)]
mod tests {
    use super::cluster_local;

    #[test]
    fn names_only_the_clusters_dns_answers_are_told_apart() {
        assert!(cluster_local("wbstack-clickhouse.wandb.svc.cluster.local"));
        assert!(cluster_local("redis.wandb.svc"));
        assert!(cluster_local("wandb-mysql"));
        assert!(!cluster_local("localhost"));
        assert!(!cluster_local("127.0.0.1"));
        assert!(!cluster_local("db.cluster-abc.us-west-2.rds.amazonaws.com"));
    }
}
