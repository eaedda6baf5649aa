//! Which probes can run from here, and why the others cannot.

use crate::clickhouse_probe::Clickhouse;
use crate::host_probe::Host;
use crate::mysql_probe::Mysql;
use crate::redis_probe::Redis;
use crate::references::References;
use crate::run::Probe;
use crate::verdict::Finding;
use crate::wiring::Wiring;
use wbstack_k8s::Kube;

/// Where verify runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
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
    if o.sandbox {
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

/// Chooses the probes for the resource as its values wire it.
pub async fn choose(kube: &Kube, w: &Wiring, o: &Options) -> Chosen {
    let mut c = Chosen::default();
    c.probes.push(Box::new(References {
        kube: kube.clone(),
        namespace: w.namespace.clone(),
        resource: w.resource.clone(),
    }));
    match w.mysql(kube).await {
        Some(t) if cluster_local(&t.at.host) => {
            c.skipped.push(unreachable("mysql", "MySQL", &t.at.host))
        }
        Some(target) => c.probes.push(Box::new(Mysql { target })),
        None => c
            .skipped
            .push(Finding::skip("mysql", "MySQL", in_cluster("MySQL", o))),
    }
    match w.redis(kube).await {
        Some(t) if cluster_local(&t.at.host) => {
            c.skipped.push(unreachable("redis", "Redis", &t.at.host))
        }
        Some(target) => c.probes.push(Box::new(Redis { target })),
        None => c
            .skipped
            .push(Finding::skip("redis", "Redis", in_cluster("Redis", o))),
    }
    match w.clickhouse(kube).await {
        Some(_) if o.sandbox => c.skipped.push(Finding::skip(
            "clickhouse",
            "ClickHouse",
            "the sandbox runs no ClickHouse server",
        )),
        Some(t) if cluster_local(&t.at.host) => {
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
