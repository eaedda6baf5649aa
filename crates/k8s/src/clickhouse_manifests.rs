//! ClickHouse for Weave as native objects (the self-managed guide's configuration: macros,
//! the replicated cluster, Keeper, an S3 disk with a cache and the `s3_main` policy) and as an
//! Altinity `ClickHouseInstallation`. The password is read from a Secret, never written here.

use serde_json::{json, Value};
use wbstack_plan::{AltinityClickhouse, AltinityKeeper, BundledClickhouse};

/// Resources are two optional pairs of strings: serializing them cannot fail.
fn resources(r: &Option<wbstack_plan::Resources>) -> Value {
    r.as_ref().map(|r| serde_json::to_value(r).unwrap_or_default()).unwrap_or_else(|| {
        json!({"requests": {"cpu": "500m", "memory": "500Mi"}, "limits": {"cpu": "3", "memory": "6Gi"}})
    })
}

/// The environment variable the S3 disk's endpoint is read from: the plan's endpoint with the
/// replica's own folder (`.../$(CLICKHOUSE_REPLICA_ID)/`), so replicas never share objects.
pub const S3_ENDPOINT_ENV: &str = "CLICKHOUSE_S3_ENDPOINT";

/// The server configuration of bundled ClickHouse, following the Weave self-managed guide:
/// macros from the environment, logger, the cluster replicated Weave tables expect (and its
/// plain alias when Weave would refuse the name), Keeper as ZooKeeper, an optional Prometheus
/// endpoint, and the S3 disk with a cache and the `s3_main` policy. It loads in ClickHouse 24.8
/// and in current releases (checked against both by the test suite).
pub fn clickhouse_server_xml(c: &BundledClickhouse) -> String {
    let ns = &c.namespace;
    let mut x = String::from("<clickhouse>\n  <!-- Macros -->\n  <macros>\n    <shard from_env=\"CLICKHOUSE_SHARD_ID\"></shard>\n    <replica from_env=\"CLICKHOUSE_REPLICA_ID\"></replica>\n    <cluster>");
    x.push_str(&c.cluster_name);
    x.push_str("</cluster>\n  </macros>\n");
    x.push_str(&format!(
        "  <logger>\n    <level>{}</level>\n    <console>1</console>\n  </logger>\n",
        c.log_level
    ));
    x.push_str("  <listen_host>0.0.0.0</listen_host>\n  <remote_servers>\n");
    let mut names = vec![c.cluster_name.as_str()];
    if c.weave_cluster != c.cluster_name {
        names.push(&c.weave_cluster);
    }
    for name in names {
        let hosts: Vec<Vec<String>> = (0..c.shards)
            .map(|s| {
                (0..c.replicas)
                    .map(|r| {
                        format!(
                            "{n}-shard{s}-{r}.{n}-headless.{ns}.svc.cluster.local",
                            n = c.name
                        )
                    })
                    .collect()
            })
            .collect();
        x.push_str(&remote_cluster(name, &hosts, true));
    }
    x.push_str("  </remote_servers>\n  <zookeeper>\n");
    for k in 0..c.keeper_replicas {
        x.push_str(&format!("    <node>\n      <host>{}-keeper-{k}.{}-keeper-headless.{ns}.svc.cluster.local</host>\n      <port>9181</port>\n    </node>\n", c.name, c.name));
    }
    x.push_str("  </zookeeper>\n");
    x.push_str(
        "  <distributed_ddl>\n    <path>/clickhouse/task_queue/ddl</path>\n  </distributed_ddl>\n",
    );
    if c.prometheus {
        x.push_str("  <prometheus>\n    <endpoint>/metrics</endpoint>\n    <port>9363</port>\n    <metrics>true</metrics>\n    <events>true</events>\n    <asynchronous_metrics>true</asynchronous_metrics>\n  </prometheus>\n");
    }
    if let Some(s3) = &c.s3 {
        x.push_str(&storage_xml(s3));
    }
    x.push_str("</clickhouse>\n");
    x
}

/// One cluster of `remote_servers`: a `<shard>` per list of hosts, each host a replica.
fn remote_cluster(name: &str, shards: &[Vec<String>], credentials: bool) -> String {
    let mut x = format!("    <{name}>\n");
    for hosts in shards {
        x.push_str("      <shard>\n        <internal_replication>true</internal_replication>\n");
        for h in hosts {
            x.push_str(&format!(
                "        <replica>\n          <host>{h}</host>\n          <port>9000</port>\n"
            ));
            if credentials {
                x.push_str("          <user from_env=\"CLICKHOUSE_USER\"></user>\n          <password from_env=\"CLICKHOUSE_PASSWORD\"></password>\n");
            }
            x.push_str("        </replica>\n");
        }
        x.push_str("      </shard>\n");
    }
    x.push_str(&format!("    </{name}>\n"));
    x
}

/// The S3 disk (its endpoint from the environment), its local cache and the `s3_main` policy.
/// The cache path is relative: every ClickHouse release places it under its caches directory,
/// where current releases require it to be.
fn storage_xml(s3: &wbstack_plan::ClickhouseS3) -> String {
    let mut x = String::from(
        "  <storage_configuration>\n    <disks>\n      <s3_disk>\n        <type>s3</type>\n",
    );
    x.push_str(&format!(
        "        <endpoint from_env=\"{S3_ENDPOINT_ENV}\"></endpoint>\n"
    ));
    if s3.use_environment_credentials {
        x.push_str("        <use_environment_credentials>true</use_environment_credentials>\n");
    } else {
        x.push_str("        <access_key_id from_env=\"AWS_ACCESS_KEY_ID\"></access_key_id>\n        <secret_access_key from_env=\"AWS_SECRET_ACCESS_KEY\"></secret_access_key>\n");
    }
    x.push_str("      </s3_disk>\n");
    x.push_str(&format!(
        "      <s3_disk_cache>\n        <type>cache</type>\n        <disk>s3_disk</disk>\n        <path>s3_disk_cache/</path>\n        <max_size>{}</max_size>\n        <cache_on_write_operations>1</cache_on_write_operations>\n      </s3_disk_cache>\n    </disks>\n",
        s3.cache_size.as_deref().unwrap_or("80Gi")
    ));
    x.push_str("    <policies>\n      <s3_main>\n        <volumes>\n          <main>\n            <disk>s3_disk_cache</disk>\n          </main>\n        </volumes>\n      </s3_main>\n    </policies>\n  </storage_configuration>\n");
    x.push_str("  <merge_tree>\n    <storage_policy>s3_main</storage_policy>\n  </merge_tree>\n");
    x
}

/// The S3 endpoint of one replica, for the container's environment (Kubernetes expands
/// `$(CLICKHOUSE_REPLICA_ID)`, defined before it, to the pod's name).
pub fn replica_s3_endpoint(endpoint: &str) -> String {
    format!(
        "{}/$(CLICKHOUSE_REPLICA_ID)/",
        endpoint.trim_end_matches('/')
    )
}

/// The user Weave connects as; its password comes from the environment (a Secret).
pub fn clickhouse_users_xml(c: &BundledClickhouse) -> String {
    format!(
        "<clickhouse>\n  <users>\n    <{u}>\n      <password from_env=\"CLICKHOUSE_PASSWORD\"></password>\n      <networks>\n        <ip>::/0</ip>\n      </networks>\n      <profile>default</profile>\n      <quota>default</quota>\n      <access_management>1</access_management>\n    </{u}>\n  </users>\n</clickhouse>\n",
        u = c.user
    )
}

/// ClickHouse Keeper's configuration: one Raft member per replica of the Keeper StatefulSet.
pub fn keeper_xml(c: &BundledClickhouse) -> String {
    let mut x = format!(
        "<clickhouse>\n  <logger>\n    <level>{}</level>\n    <console>1</console>\n  </logger>\n  <listen_host>0.0.0.0</listen_host>\n  <keeper_server>\n    <tcp_port>9181</tcp_port>\n    <server_id from_env=\"KEEPER_SERVER_ID\"></server_id>\n    <log_storage_path>/var/lib/clickhouse-keeper/coordination/log</log_storage_path>\n    <snapshot_storage_path>/var/lib/clickhouse-keeper/coordination/snapshots</snapshot_storage_path>\n    <coordination_settings>\n      <operation_timeout_ms>10000</operation_timeout_ms>\n      <session_timeout_ms>30000</session_timeout_ms>\n      <raft_logs_level>warning</raft_logs_level>\n    </coordination_settings>\n    <raft_configuration>\n",
        c.log_level
    );
    for k in 0..c.keeper_replicas {
        x.push_str(&format!(
            "      <server>\n        <id>{}</id>\n        <hostname>{}-keeper-{k}.{}-keeper-headless.{}.svc.cluster.local</hostname>\n        <port>9234</port>\n      </server>\n",
            k + 1,
            c.name,
            c.name,
            c.namespace
        ));
    }
    x.push_str("    </raft_configuration>\n  </keeper_server>\n</clickhouse>\n");
    x
}

/// Gives every pod template of these workloads the image pull secrets.
pub fn with_pull_secrets(mut objects: Vec<Value>, names: &[String]) -> Vec<Value> {
    if names.is_empty() {
        return objects;
    }
    let refs: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    for o in &mut objects {
        if matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet")) {
            o["spec"]["template"]["spec"]["imagePullSecrets"] = json!(refs);
        }
        if o["kind"] == "ClickHouseInstallation" {
            for t in o["spec"]["templates"]["podTemplates"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                t["spec"]["imagePullSecrets"] = json!(refs);
            }
        }
    }
    objects
}

/// A ClickHouseInstallation. The user's password is read by the Altinity operator from a
/// Secret (`k8s_secret_password`); it never appears in the resource.
/// The configuration file (in `config.d`) naming the cluster once more, for Weave.
pub const WEAVE_CLUSTER_FILE: &str = "config.d/weave_cluster.xml";

/// The installation's cluster under the plain name Weave's migrations accept: the same
/// replicas, by the names the Altinity operator gives their Services
/// (`chi-<installation>-<cluster>-<shard>-<replica>`).
pub fn altinity_weave_cluster_xml(c: &AltinityClickhouse) -> String {
    let hosts: Vec<Vec<String>> = (0..c.shards)
        .map(|s| {
            (0..c.replicas)
                .map(|r| format!("chi-{}-{}-{s}-{r}", c.name, c.cluster_name))
                .collect()
        })
        .collect();
    format!(
        "<clickhouse>\n  <remote_servers>\n{}  </remote_servers>\n</clickhouse>\n",
        remote_cluster(&c.weave_cluster, &hosts, false)
    )
}

pub fn clickhouse_altinity(c: &AltinityClickhouse) -> Vec<Value> {
    let mut docs: Vec<Value> = c.keeper.iter().map(|k| altinity_keeper(c, k)).collect();
    docs.push(altinity_installation(c));
    with_pull_secrets(docs, &c.pull_secrets)
}

/// The port ClickHouse Keeper serves ZooKeeper's protocol on.
pub const KEEPER_PORT: u16 = 2181;

/// The ZooKeeper / Keeper the installation uses: the Keeper wbstack has made (its Service is
/// `keeper-<name>`), or the one the plan names (`host` or `host:port`).
pub fn zookeeper_node(c: &AltinityClickhouse) -> Option<(String, u16)> {
    if let Some(k) = &c.keeper {
        let host = format!("keeper-{}.{}.svc.cluster.local", k.name, c.namespace);
        return Some((host, KEEPER_PORT));
    }
    let zk = c.zookeeper_host.as_deref()?;
    Some(match zk.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_owned(), p.parse().unwrap_or(2181)),
        _ => (zk.to_owned(), 2181),
    })
}

/// A ClickHouse Keeper ensemble for the Altinity operator.
fn altinity_keeper(c: &AltinityClickhouse, k: &AltinityKeeper) -> Value {
    let size = wbstack_plan::KEEPER_VOLUME;
    let mut vct = json!({"name": "keeper-data", "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    if let Some(sc) = &c.storage_class {
        vct["spec"]["storageClassName"] = json!(sc);
    }
    json!({
        "apiVersion": "clickhouse-keeper.altinity.com/v1", "kind": "ClickHouseKeeperInstallation",
        "metadata": {"name": k.name, "namespace": c.namespace, "labels": {"app.kubernetes.io/managed-by": "wbstack"}},
        "spec": {
            "configuration": {
                "clusters": [{"name": "keeper", "layout": {"replicasCount": k.replicas}}],
                "settings": {"keeper_server/tcp_port": KEEPER_PORT.to_string()},
            },
            "defaults": {"templates": {"podTemplate": "keeper", "dataVolumeClaimTemplate": "keeper-data"}},
            "templates": {
                "podTemplates": [{"name": "keeper", "spec": {"containers": [{"name": "clickhouse-keeper", "image": k.image}]}}],
                "volumeClaimTemplates": [vct],
            }
        }
    })
}

fn altinity_installation(c: &AltinityClickhouse) -> Value {
    let mut config = json!({
        "users": {
            format!("{}/k8s_secret_password", c.user): format!("{}/{}/{}", c.namespace, c.password_secret, c.password_key),
            format!("{}/profile", c.user): "default",
            format!("{}/networks/ip", c.user): ["::/0"],
        },
        "profiles": {"default/max_memory_usage": "10000000000"},
        "clusters": [{"name": c.cluster_name, "layout": {"shardsCount": c.shards, "replicasCount": c.replicas}}],
    });
    if let Some((host, port)) = zookeeper_node(c) {
        config["zookeeper"] = json!({"nodes": [{"host": host, "port": port}]});
    }
    if c.weave_cluster != c.cluster_name {
        config["files"] = json!({WEAVE_CLUSTER_FILE: altinity_weave_cluster_xml(c)});
    }
    let mut vct = json!({"name": "data-volume-template", "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": c.storage_size}}}});
    if let Some(sc) = &c.storage_class {
        vct["spec"]["storageClassName"] = json!(sc);
    }
    json!({
        "apiVersion": "clickhouse.altinity.com/v1", "kind": "ClickHouseInstallation",
        "metadata": {"name": c.name, "namespace": c.namespace, "labels": {"app.kubernetes.io/managed-by": "wbstack"}},
        "spec": {
            "configuration": config,
            "defaults": {"templates": {"podTemplate": "pod-template", "dataVolumeClaimTemplate": "data-volume-template", "serviceTemplate": "service-template"}},
            "templates": {
                "podTemplates": [{"name": "pod-template", "spec": {"containers": [{"name": "clickhouse", "image": c.image, "resources": resources(&c.resources)}]}}],
                "volumeClaimTemplates": [vct],
                "serviceTemplates": [{"name": "service-template", "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 8123}, {"name": "tcp", "port": 9000}]}}]
            }
        }
    })
}
