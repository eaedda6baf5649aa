//! Bundled ClickHouse's Kubernetes objects, built from k8s-openapi's types: its configuration,
//! Services, the Keeper StatefulSet and one StatefulSet per shard. The password is read from a
//! Secret through environment variables; it is never written here.

use crate::clickhouse_manifests::{
    clickhouse_server_xml, clickhouse_users_xml, keeper_xml, replica_s3_endpoint,
    with_pull_secrets, S3_ENDPOINT_ENV,
};
use crate::typed::value;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecretKeySelector, Service, ServiceAccount,
    ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeMap;
use wbstack_plan::BundledClickhouse;

type Labels = BTreeMap<String, String>;

fn labels(instance: &str, component: &str) -> Labels {
    [
        ("app.kubernetes.io/name", "clickhouse"),
        ("app.kubernetes.io/instance", instance),
        ("app.kubernetes.io/component", component),
        ("app.kubernetes.io/managed-by", "wbstack"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// What a component's pods are selected by.
fn selector(instance: &str, component: &str) -> Labels {
    let mut l = labels(instance, component);
    l.retain(|k, _| k == "app.kubernetes.io/instance" || k == "app.kubernetes.io/component");
    l
}

fn meta(name: &str, ns: &str, labels: Labels) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.to_owned()),
        labels: Some(labels),
        ..Default::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn resources(r: &Option<wbstack_plan::Resources>) -> ResourceRequirements {
    let Some(r) = r else {
        return ResourceRequirements {
            requests: Some(quantities(&[("cpu", "500m"), ("memory", "500Mi")])),
            limits: Some(quantities(&[("cpu", "3"), ("memory", "6Gi")])),
            ..Default::default()
        };
    };
    let of = |c: &Option<wbstack_plan::CpuMem>| {
        c.as_ref()
            .map(|c| quantities(&[("cpu", &c.cpu), ("memory", &c.memory)]))
    };
    ResourceRequirements {
        requests: of(&r.requests),
        limits: of(&r.limits),
        ..Default::default()
    }
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        ..Default::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, sub_path: Option<&str>) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        sub_path: sub_path.map(str::to_owned),
        ..Default::default()
    }
}

fn config_volume(config_map: String) -> Volume {
    Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..Default::default()
    }
}

fn env_from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(source),
        ..Default::default()
    }
}

fn secret_key(name: &str, key: &str) -> EnvVarSource {
    EnvVarSource {
        secret_key_ref: Some(SecretKeySelector {
            name: name.to_owned(),
            key: key.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn claim(name: &str, size: &str, class: &Option<String>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(quantities(&[("storage", size)])),
                ..Default::default()
            }),
            storage_class_name: class.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn headless(
    name: String,
    ns: &str,
    labels: Labels,
    sel: Labels,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata: meta(&name, ns, labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(sel),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A StatefulSet of `replicas` pods of `container`, with a data claim per pod.
fn stateful_set(
    meta: ObjectMeta,
    replicas: u32,
    service: String,
    sel: Labels,
    pod: PodSpec,
    data: PersistentVolumeClaim,
) -> StatefulSet {
    let pod_labels = meta.labels.clone();
    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas as i32),
            service_name: Some(service),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(sel),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: pod_labels,
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![data]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn keeper(c: &BundledClickhouse) -> StatefulSet {
    let (n, ns) = (c.name.as_str(), c.namespace.as_str());
    let container = Container {
        name: "keeper".into(),
        image: Some(c.keeper_image.clone()),
        command: Some(
            [
                "/bin/sh",
                "-c",
                "export KEEPER_SERVER_ID=$(( ${HOSTNAME##*-} + 1 )); exec /entrypoint.sh",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ports: Some(vec![
            container_port("client", 9181),
            container_port("raft", 9234),
        ]),
        volume_mounts: Some(vec![
            mount("config", "/etc/clickhouse-keeper/keeper_config.d", None),
            mount("data", "/var/lib/clickhouse-keeper", None),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "256Mi")])),
            limits: Some(quantities(&[("cpu", "1"), ("memory", "1Gi")])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![config_volume(format!("{n}-keeper-config"))]),
        ..Default::default()
    };
    stateful_set(
        meta(&format!("{n}-keeper"), ns, labels(n, "keeper")),
        c.keeper_replicas,
        format!("{n}-keeper-headless"),
        selector(n, "keeper"),
        pod,
        claim("data", wbstack_plan::KEEPER_VOLUME, &c.storage_class),
    )
}

/// The server's environment: its shard, its replica (the pod's name), the user and database,
/// the password by reference, and the S3 disk's endpoint and credentials by reference.
fn server_env(c: &BundledClickhouse, shard: u32) -> Vec<EnvVar> {
    let pod_name = EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: "metadata.name".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut env = vec![
        env("CLICKHOUSE_SHARD_ID", &shard.to_string()),
        env_from("CLICKHOUSE_REPLICA_ID", pod_name),
        env("CLICKHOUSE_USER", &c.user),
        env("CLICKHOUSE_DB", &c.database),
        env_from(
            "CLICKHOUSE_PASSWORD",
            secret_key(&c.password_secret, &c.password_key),
        ),
    ];
    if let Some(s3) = &c.s3 {
        env.push(self::env(
            S3_ENDPOINT_ENV,
            &replica_s3_endpoint(&s3.endpoint),
        ));
        if let Some(cs) = &s3.credentials_secret {
            env.push(env_from("AWS_ACCESS_KEY_ID", secret_key(cs, "ACCESS_KEY")));
            env.push(env_from(
                "AWS_SECRET_ACCESS_KEY",
                secret_key(cs, "SECRET_KEY"),
            ));
        }
    }
    env
}

fn shard(c: &BundledClickhouse, s: u32) -> StatefulSet {
    let (n, ns) = (c.name.as_str(), c.namespace.as_str());
    let mut ports = vec![
        container_port("http", 8123),
        container_port("tcp", 9000),
        container_port("interserver", 9009),
    ];
    if c.prometheus {
        ports.push(container_port("metrics", 9363));
    }
    let container = Container {
        name: "clickhouse".into(),
        image: Some(c.image.clone()),
        env: Some(server_env(c, s)),
        ports: Some(ports),
        volume_mounts: Some(vec![
            mount(
                "config",
                "/etc/clickhouse-server/config.d/wbstack.xml",
                Some("wbstack.xml"),
            ),
            mount(
                "config",
                "/etc/clickhouse-server/users.d/users.xml",
                Some("users.xml"),
            ),
            mount("data", "/var/lib/clickhouse", None),
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ping".into()),
                port: IntOrString::Int(8123),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(resources(&c.resources)),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![config_volume(format!("{n}-config"))]),
        service_account_name: c.service_account.clone(),
        ..Default::default()
    };
    let mut l = labels(n, "server");
    l.insert("wbstack.dev/shard".into(), s.to_string());
    let mut sel = selector(n, "server");
    sel.insert("wbstack.dev/shard".into(), s.to_string());
    stateful_set(
        meta(&format!("{n}-shard{s}"), ns, l),
        c.replicas,
        format!("{n}-headless"),
        sel,
        pod,
        claim("data", &c.storage_size, &c.storage_class),
    )
}

fn config_map(name: String, ns: &str, labels: Labels, data: &[(&str, String)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(&name, ns, labels),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Every object of bundled ClickHouse: configuration, services, the Keeper StatefulSet and one
/// StatefulSet per shard.
pub fn clickhouse_bundled(c: &BundledClickhouse) -> Vec<Value> {
    let (n, ns) = (c.name.as_str(), c.namespace.as_str());
    let server = || labels(n, "server");
    let mut out = Vec::new();
    if let Some(sa) = &c.service_account {
        // Its role annotation is the IAM role's ARN, added by the step once the role exists.
        out.push(value(ServiceAccount {
            metadata: meta(sa, ns, server()),
            ..Default::default()
        }));
    }
    out.extend([
        value(config_map(
            format!("{n}-config"),
            ns,
            server(),
            &[
                ("wbstack.xml", clickhouse_server_xml(c)),
                ("users.xml", clickhouse_users_xml(c)),
            ],
        )),
        value(config_map(
            format!("{n}-keeper-config"),
            ns,
            labels(n, "keeper"),
            &[("keeper.xml", keeper_xml(c))],
        )),
        value(headless(
            format!("{n}-headless"),
            ns,
            server(),
            selector(n, "server"),
            vec![
                port("http", 8123),
                port("tcp", 9000),
                port("interserver", 9009),
            ],
        )),
        value(Service {
            metadata: meta(n, ns, server()),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(selector(n, "server")),
                ports: Some(vec![port("http", 8123), port("tcp", 9000)]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        value(headless(
            format!("{n}-keeper-headless"),
            ns,
            labels(n, "keeper"),
            selector(n, "keeper"),
            vec![port("client", 9181), port("raft", 9234)],
        )),
        value(keeper(c)),
    ]);
    out.extend((0..c.shards).map(|s| value(shard(c, s))));
    with_pull_secrets(out, &c.pull_secrets)
}
