//! Compiles a validated plan into steps with explicit dependencies, and renders the
//! WeightsAndBiases values (static parts, plus bindings to other steps' outputs).

use crate::model::*;
use crate::presets::preset;
use crate::steps::{AltinityClickhouse, Binding, BundledClickhouse, StepKind, StepPlan};
use serde_json::{json, Map, Value};

/// Names of the Secrets wbstack manages.
pub mod names {
    pub const LICENSE: &str = "wbstack-license";
    pub const LICENSE_KEY: &str = "license";
    pub const MYSQL: &str = "wbstack-mysql";
    pub const MYSQL_KEY: &str = "MYSQL_PASSWORD";
    pub const REDIS: &str = "wbstack-redis";
    pub const REDIS_KEY: &str = "REDIS_PASSWORD";
    pub const CLICKHOUSE: &str = "wbstack-clickhouse";
    pub const CLICKHOUSE_KEY: &str = "CLICKHOUSE_PASSWORD";
    pub const WEAVE_WORKER: &str = "weave-worker-auth";
    pub const WEAVE_WORKER_KEY: &str = "key";
}

/// Merges `overlay` into `base`: maps merge recursively, anything else replaces.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                deep_merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn set(values: &mut Value, pointer: &str, v: Value) {
    let mut cur = values;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let m = cur.as_object_mut().expect("made an object");
        if i == parts.len() - 1 {
            m.insert((*p).to_owned(), v);
            return;
        }
        cur = m
            .entry((*p).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The steps of a plan, in a stable order (dependencies first).
pub fn compile(p: &Plan) -> Vec<StepPlan> {
    let s = &p.spec;
    let env = &p.metadata.name;
    let ns = s.kubernetes.namespace.clone();
    let pre = preset(s.size);
    let timeout = |id: &str| {
        s.timeouts
            .steps
            .get(id)
            .copied()
            .unwrap_or(s.timeouts.ready_seconds)
    };
    let mut steps: Vec<StepPlan> = Vec::new();
    let mut push = |id: &str, deps: Vec<&str>, kind: StepKind| {
        steps.push(StepPlan {
            id: id.to_owned(),
            deps: deps.into_iter().map(str::to_owned).collect(),
            kind,
            timeout_seconds: timeout(id),
        });
    };
    let aws = s.aws.clone().unwrap_or_default();
    let protected = p.metadata.protected;

    // Kubernetes basics.
    push(
        "k8s.namespace",
        vec![],
        StepKind::Namespace { name: ns.clone() },
    );
    let mut wandb_deps = vec!["k8s.namespace", "k8s.operator"];
    let mut values = json!({});
    let mut bindings = Vec::new();
    let g = |v: &mut Value, ptr: &str, x: Value| set(v, ptr, x);

    g(&mut values, "/global/host", json!(s.wandb.host));
    g(&mut values, "/global/size", json!(s.size.as_str()));
    if let Some(sc) = &s.kubernetes.storage_class {
        g(&mut values, "/global/storageClass", json!(sc));
    }
    if let Some(cp) = &s.wandb.cloud_provider {
        g(&mut values, "/global/cloudProvider", json!(cp));
    } else if s.aws.is_some() {
        g(&mut values, "/global/cloudProvider", json!("aws"));
    }
    match &s.wandb.license.secret {
        Some(r) => g(
            &mut values,
            "/global/licenseSecret",
            json!({"name": r.name, "key": r.key}),
        ),
        None => {
            push(
                "k8s.license",
                vec!["k8s.namespace"],
                StepKind::LicenseSecret {
                    namespace: ns.clone(),
                    name: names::LICENSE.into(),
                    key: names::LICENSE_KEY.into(),
                    source: s.wandb.license.clone(),
                },
            );
            wandb_deps.push("k8s.license");
            g(
                &mut values,
                "/global/licenseSecret",
                json!({"name": names::LICENSE, "key": names::LICENSE_KEY}),
            );
        }
    }
    push(
        "k8s.operator",
        vec![],
        StepKind::Operator {
            namespace: s.wandb.operator.namespace.clone(),
            version: s.wandb.operator.version.clone(),
            install: s.wandb.operator.install,
        },
    );

    // AWS: KMS first, everything encrypted with it.
    let kms_needed = s.bucket.mode == BucketMode::S3 && s.bucket.kms_key_arn.is_none()
        || matches!(s.mysql.mode, MysqlMode::Rds | MysqlMode::Aurora)
        || s.redis.mode == RedisMode::Elasticache;
    if kms_needed {
        push(
            "aws.kms",
            vec![],
            StepKind::KmsKey {
                alias: format!("alias/{env}-wandb"),
                deletion_window_days: s.bucket.kms_deletion_window_days,
            },
        );
    }

    // MySQL.
    let m = &s.mysql;
    g(
        &mut values,
        "/mysql/install",
        json!(m.mode == MysqlMode::InCluster),
    );
    let database = m.database.clone().unwrap_or_else(|| "wandb_local".into());
    let user = m.user.clone().unwrap_or_else(|| "wandb".into());
    match m.mode {
        MysqlMode::InCluster => {}
        MysqlMode::External => {
            // Validation requires the secret; compile stays total for plans not yet validated.
            let ps = m.password_secret.clone().unwrap_or(SecretKeyRef {
                name: String::new(),
                key: String::new(),
            });
            g(
                &mut values,
                "/global/mysql",
                json!({"host": m.host, "port": m.port.unwrap_or(3306), "database": database, "user": user, "passwordSecret": {"name": ps.name, "passwordKey": ps.key}}),
            );
        }
        MysqlMode::Rds | MysqlMode::Aurora => {
            let aurora = m.mode == MysqlMode::Aurora;
            push(
                "aws.db-subnets",
                vec![],
                StepKind::DbSubnetGroup {
                    name: format!("{env}-mysql"),
                    subnet_ids: aws.subnet_ids.clone(),
                },
            );
            push(
                "aws.db-params",
                vec![],
                StepKind::DbParameterGroups {
                    name: format!("{env}-mysql"),
                    aurora,
                },
            );
            push(
                "aws.db-password",
                vec![],
                StepKind::AwsSecret {
                    name: format!("wbstack/{env}/mysql-master"),
                    recovery_days: aws.secret_recovery_days,
                    alphabet: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        .into(),
                    length: 32,
                },
            );
            push(
                "aws.mysql",
                vec![
                    "aws.kms",
                    "aws.db-subnets",
                    "aws.db-params",
                    "aws.db-password",
                ],
                StepKind::MysqlDatabase {
                    identifier: format!("{env}-mysql"),
                    aurora,
                    instances: m
                        .instances
                        .unwrap_or(if aurora { pre.db_instances } else { 1 }),
                    instance_class: m
                        .instance_class
                        .clone()
                        .unwrap_or_else(|| pre.db_instance_class.into()),
                    engine_version: m.engine_version.clone().unwrap_or_else(|| {
                        if aurora {
                            "8.0.mysql_aurora.3.05.2".into()
                        } else {
                            "8.0.39".into()
                        }
                    }),
                    database: database.clone(),
                    user: user.clone(),
                    storage_gb: m.storage_gb.unwrap_or(pre.db_storage_gb),
                    backup_retention_days: m
                        .backup_retention_days
                        .unwrap_or(pre.db_backup_retention_days),
                    deletion_protection: m.deletion_protection.unwrap_or(protected),
                    final_snapshot: m.final_snapshot,
                    security_group_ids: aws.security_group_ids.clone(),
                },
            );
            push(
                "k8s.mysql-password",
                vec!["k8s.namespace", "aws.db-password"],
                StepKind::MirroredSecret {
                    namespace: ns.clone(),
                    name: names::MYSQL.into(),
                    key: names::MYSQL_KEY.into(),
                    from_step: "aws.db-password".into(),
                    output: "secret".into(),
                },
            );
            wandb_deps.extend(["aws.mysql", "k8s.mysql-password"]);
            g(
                &mut values,
                "/global/mysql",
                json!({"host": format!("<aws.mysql: endpoint>"), "port": 3306, "database": database, "user": user, "passwordSecret": {"name": names::MYSQL, "passwordKey": names::MYSQL_KEY}}),
            );
            bindings.push(Binding {
                pointer: "/global/mysql/host".into(),
                step: "aws.mysql".into(),
                output: "endpoint".into(),
            });
            bindings.push(Binding {
                pointer: "/global/mysql/port".into(),
                step: "aws.mysql".into(),
                output: "port".into(),
            });
        }
    }

    // Redis.
    let r = &s.redis;
    g(
        &mut values,
        "/redis/install",
        json!(r.mode == RedisMode::InCluster),
    );
    match r.mode {
        RedisMode::InCluster => {}
        RedisMode::External => {
            let mut v = json!({"host": r.host, "port": r.port.unwrap_or(6379)});
            if let Some(ps) = &r.password_secret {
                v["passwordSecret"] = json!({"name": ps.name, "passwordKey": ps.key});
            }
            if r.tls == Some(true) {
                v["params"] = json!({"tls": true});
            }
            g(&mut values, "/global/redis", v);
        }
        RedisMode::Elasticache => {
            push(
                "aws.cache-subnets",
                vec![],
                StepKind::CacheSubnetGroup {
                    name: format!("{env}-redis"),
                    subnet_ids: aws.subnet_ids.clone(),
                },
            );
            push(
                "aws.redis-auth",
                vec![],
                StepKind::AwsSecret {
                    name: format!("wbstack/{env}/redis-auth"),
                    recovery_days: aws.secret_recovery_days,
                    alphabet: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        .into(),
                    length: 64,
                },
            );
            push(
                "aws.redis",
                vec!["aws.kms", "aws.cache-subnets", "aws.redis-auth"],
                StepKind::RedisCache {
                    id: format!("{env}-redis"),
                    node_type: r
                        .node_type
                        .clone()
                        .unwrap_or_else(|| pre.cache_node_type.into()),
                    nodes: pre.cache_nodes,
                    multi_az: pre.multi_az(),
                    security_group_ids: aws.security_group_ids.clone(),
                },
            );
            push(
                "k8s.redis-password",
                vec!["k8s.namespace", "aws.redis-auth"],
                StepKind::MirroredSecret {
                    namespace: ns.clone(),
                    name: names::REDIS.into(),
                    key: names::REDIS_KEY.into(),
                    from_step: "aws.redis-auth".into(),
                    output: "secret".into(),
                },
            );
            wandb_deps.extend(["aws.redis", "k8s.redis-password"]);
            g(
                &mut values,
                "/global/redis",
                json!({"host": "<aws.redis: endpoint>", "port": 6379, "passwordSecret": {"name": names::REDIS, "passwordKey": names::REDIS_KEY}, "params": {"tls": true}}),
            );
            bindings.push(Binding {
                pointer: "/global/redis/host".into(),
                step: "aws.redis".into(),
                output: "endpoint".into(),
            });
            bindings.push(Binding {
                pointer: "/global/redis/port".into(),
                step: "aws.redis".into(),
                output: "port".into(),
            });
        }
    }

    // Bucket.
    let b = &s.bucket;
    match b.mode {
        BucketMode::None => {}
        BucketMode::S3 => {
            let name = b
                .name
                .clone()
                .unwrap_or_else(|| format!("{env}-wandb-artifacts"));
            let deps = if b.kms_key_arn.is_none() {
                vec!["aws.kms"]
            } else {
                vec![]
            };
            push(
                "aws.bucket",
                deps,
                StepKind::S3Bucket {
                    name: name.clone(),
                    versioning: b.versioning,
                    kms_key_arn: b.kms_key_arn.clone(),
                },
            );
            wandb_deps.push("aws.bucket");
            let region = b
                .region
                .clone()
                .or_else(|| aws.region.clone())
                .unwrap_or_else(|| "<aws.bucket: region>".into());
            g(
                &mut values,
                "/global/defaultBucket",
                json!({"provider": "s3", "name": name, "region": region, "kmsKey": b.kms_key_arn.clone().unwrap_or_else(|| "<aws.kms: arn>".into())}),
            );
            bindings.push(Binding {
                pointer: "/global/defaultBucket/region".into(),
                step: "aws.bucket".into(),
                output: "region".into(),
            });
            bindings.push(Binding {
                pointer: "/global/defaultBucket/kmsKey".into(),
                step: "aws.bucket".into(),
                output: "kms_key_arn".into(),
            });
        }
        BucketMode::Existing => {
            g(
                &mut values,
                "/global/defaultBucket",
                json!({"provider": b.provider.clone().unwrap_or_else(|| "s3".into()), "name": b.name, "region": b.region.clone().or_else(|| aws.region.clone())}),
            );
            if let Some(k) = &b.kms_key_arn {
                g(&mut values, "/global/defaultBucket/kmsKey", json!(k));
            }
        }
    }
    if let Some(cs) = &b.credentials_secret {
        g(
            &mut values,
            "/global/bucket/secret",
            json!({"secretName": cs, "accessKeyName": "ACCESS_KEY", "secretKeyName": "SECRET_KEY"}),
        );
    }

    // ClickHouse.
    let ch = &s.clickhouse;
    let replicas = ch.replicas.unwrap_or(pre.clickhouse_replicas);
    let replicated = ch.replicated.unwrap_or(replicas > 1);
    g(
        &mut values,
        "/clickhouse/install",
        json!(ch.mode == ClickhouseMode::InChart && s.wandb.weave.enabled),
    );
    let ch_secret = |values: &mut Value, host: String, secret: (&str, &str)| {
        set(
            values,
            "/global/clickhouse",
            json!({
                "host": host, "port": ch.port.unwrap_or(8123), "database": ch.database, "user": ch.user,
                "passwordSecret": {"name": secret.0, "passwordKey": secret.1}, "replicated": replicated,
            }),
        );
    };
    match ch.mode {
        ClickhouseMode::InChart | ClickhouseMode::None => {}
        ClickhouseMode::External => {
            let (name, key) = match &ch.password_secret {
                Some(r) => (r.name.clone(), r.key.clone()),
                None => (
                    names::CLICKHOUSE.to_owned(),
                    names::CLICKHOUSE_KEY.to_owned(),
                ),
            };
            if ch.password_secret.is_none() {
                push(
                    "k8s.clickhouse-password",
                    vec!["k8s.namespace"],
                    StepKind::GeneratedSecret {
                        namespace: ns.clone(),
                        name: names::CLICKHOUSE.into(),
                        key: names::CLICKHOUSE_KEY.into(),
                        length: 32,
                    },
                );
                wandb_deps.push("k8s.clickhouse-password");
            }
            ch_secret(
                &mut values,
                ch.host.clone().unwrap_or_default(),
                (&name, &key),
            );
        }
        ClickhouseMode::Bundled | ClickhouseMode::Altinity => {
            push(
                "k8s.clickhouse-password",
                vec!["k8s.namespace"],
                StepKind::GeneratedSecret {
                    namespace: ns.clone(),
                    name: names::CLICKHOUSE.into(),
                    key: names::CLICKHOUSE_KEY.into(),
                    length: 32,
                },
            );
            let (kind, host) = if ch.mode == ClickhouseMode::Bundled {
                (
                    StepKind::ClickhouseBundled(BundledClickhouse {
                        namespace: ns.clone(),
                        name: "wbstack-clickhouse".into(),
                        cluster_name: ch.cluster_name.clone(),
                        shards: ch.shards,
                        replicas,
                        keeper_replicas: if replicated { 3 } else { 1 },
                        image: ch.image.clone(),
                        keeper_image: ch.image.replace("clickhouse-server", "clickhouse-keeper"),
                        user: ch.user.clone(),
                        database: ch.database.clone(),
                        password_secret: names::CLICKHOUSE.into(),
                        password_key: names::CLICKHOUSE_KEY.into(),
                        log_level: ch.log_level.clone(),
                        prometheus: ch.prometheus,
                        s3: ch.s3.clone(),
                        resources: ch.resources.clone(),
                        storage_size: ch.storage_size.clone(),
                        storage_class: s.kubernetes.storage_class.clone(),
                    }),
                    format!("wbstack-clickhouse.{ns}.svc.cluster.local"),
                )
            } else {
                (
                    StepKind::ClickhouseAltinity(AltinityClickhouse {
                        namespace: ns.clone(),
                        name: "weave-clickhouse".into(),
                        cluster_name: ch.cluster_name.clone(),
                        shards: ch.shards,
                        replicas,
                        image: ch.image.clone(),
                        user: ch.user.clone(),
                        password_secret: names::CLICKHOUSE.into(),
                        password_key: names::CLICKHOUSE_KEY.into(),
                        zookeeper_host: ch.zookeeper_host.clone(),
                        resources: ch.resources.clone(),
                        storage_size: ch.storage_size.clone(),
                        storage_class: s.kubernetes.storage_class.clone(),
                    }),
                    format!("clickhouse-weave-clickhouse.{ns}.svc.cluster.local"),
                )
            };
            push(
                "k8s.clickhouse",
                vec!["k8s.namespace", "k8s.clickhouse-password"],
                kind,
            );
            wandb_deps.extend(["k8s.clickhouse", "k8s.clickhouse-password"]);
            ch_secret(
                &mut values,
                host,
                (names::CLICKHOUSE, names::CLICKHOUSE_KEY),
            );
        }
    }

    // Components.
    for (c, replicas, resources) in &pre.components {
        let o = s.wandb.components.get(*c).cloned().unwrap_or_default();
        let weave_part = c.starts_with("weave");
        let install = o.install.unwrap_or(match *c {
            "weave" | "weave-trace" => s.wandb.weave.enabled,
            "weave-trace-worker" => s.wandb.weave.trace_workers,
            "executor" | "filestream" => s.size != Size::Small,
            _ => true,
        });
        let key = if *c == "api" { "enabled" } else { "install" };
        let mut v = json!({key: install});
        if install || !weave_part {
            v["replicaCount"] = json!(o.replicas.unwrap_or(*replicas));
            if let Some(r) = o.resources.clone().or_else(|| resources.clone()) {
                v["resources"] = serde_json::to_value(r).unwrap_or_default();
            }
        }
        g(&mut values, &format!("/{c}"), v);
    }
    for (c, o) in &s.wandb.components {
        if pre.components.iter().any(|(p, _, _)| p == c) {
            continue;
        }
        let mut v = json!({"install": o.install.unwrap_or(true)});
        if let Some(r) = o.replicas {
            v["replicaCount"] = json!(r);
        }
        if let Some(r) = &o.resources {
            v["resources"] = serde_json::to_value(r).unwrap_or_default();
        }
        g(&mut values, &format!("/{c}"), v);
    }
    g(
        &mut values,
        "/global/weave-trace/enabled",
        json!(s.wandb.weave.enabled),
    );
    if s.wandb.weave.trace_workers {
        push(
            "k8s.weave-worker-auth",
            vec!["k8s.namespace"],
            StepKind::GeneratedSecret {
                namespace: ns.clone(),
                name: names::WEAVE_WORKER.into(),
                key: names::WEAVE_WORKER_KEY.into(),
                length: 32,
            },
        );
        wandb_deps.push("k8s.weave-worker-auth");
    }
    g(
        &mut values,
        "/prometheus/install",
        json!(s.wandb.monitoring.prometheus),
    );
    g(&mut values, "/otel/install", json!(s.wandb.monitoring.otel));
    match &s.kafka {
        Some(k) => {
            g(
                &mut values,
                "/global/kafka",
                json!({"brokerHost": k.broker_host, "brokerPort": k.broker_port, "user": k.user, "passwordSecret": {"name": k.password_secret.name, "passwordKey": k.password_secret.key}}),
            );
            g(&mut values, "/kafka/install", json!(false));
        }
        None => g(&mut values, "/kafka/install", json!(false)),
    }
    if s.wandb.values.is_object() {
        deep_merge(&mut values, &s.wandb.values);
    }
    push(
        "k8s.wandb",
        wandb_deps,
        StepKind::WandbResource {
            namespace: ns,
            name: s.wandb.name.clone(),
            values,
            bindings,
        },
    );
    let hooks_ok = steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    let _ = hooks_ok;
    steps
}
