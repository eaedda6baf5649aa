//! `spec.clickhouse`: Weave's trace store: the chart's, one you run, native manifests rendered
//! by wbstack (Keeper, shards x replicas, an optional S3 disk), or an Altinity installation.

use crate::build::Builder;
use crate::check::{check_resources, check_secret_ref, is_quantity, Checker};
use crate::compile::names;
use crate::ids::{self, outputs, Input};
use crate::kinds::{AltinityClickhouse, BundledClickhouse, GeneratedSecret, StepKind};
use crate::model::{ClickhouseMode, ClickhouseS3};
use crate::resolve::Resolved;
use serde_json::json;

const LOG_LEVELS: [&str; 10] = [
    "none",
    "fatal",
    "critical",
    "error",
    "warning",
    "notice",
    "information",
    "debug",
    "trace",
    "test",
];

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let ch = &r.spec.clickhouse;
    match ch.mode {
        ClickhouseMode::External => {
            if ch.host.as_deref().unwrap_or("").is_empty() {
                c.value_help(
                    "spec.clickhouse",
                    "external ClickHouse needs a host",
                    "set spec.clickhouse.host",
                );
            }
            if let Some(ps) = &ch.password_secret {
                check_secret_ref(c, "spec.clickhouse.passwordSecret", ps);
            }
        }
        ClickhouseMode::Bundled | ClickhouseMode::Altinity => check_deployed(c, r),
        ClickhouseMode::InChart | ClickhouseMode::None => {}
    }
    if ch.s3.is_some() && ch.mode != ClickhouseMode::Bundled {
        c.at(
            "spec.clickhouse.s3",
            true,
            "an S3 disk is configured only for mode bundled",
            None,
        );
    }
    if let Some(s3) = &ch.s3 {
        check_s3(c, s3);
    }
    if ch.cluster_name.is_empty()
        || !ch
            .cluster_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        c.value(
            "spec.clickhouse.clusterName",
            format!("`{}` is not a valid cluster name", ch.cluster_name),
        );
    }
    if !LOG_LEVELS.contains(&ch.log_level.as_str()) {
        c.value(
            "spec.clickhouse.logLevel",
            format!("unknown log level `{}`", ch.log_level),
        );
    }
    if ch.mode == ClickhouseMode::None && r.spec.wandb.weave.enabled {
        c.value_help(
            "spec.clickhouse.mode",
            "Weave needs ClickHouse",
            "choose a ClickHouse mode, or set spec.wandb.weave.enabled: false",
        );
    }
    if !is_quantity(&ch.storage_size) {
        c.value(
            "spec.clickhouse.storageSize",
            format!("`{}` is not a size (like 100Gi)", ch.storage_size),
        );
    }
    check_resources(c, "spec.clickhouse.resources", &ch.resources);
}

fn check_deployed(c: &mut Checker, r: &Resolved) {
    let ch = &r.spec.clickhouse;
    if ch.host.is_some() {
        c.at(
            "spec.clickhouse.host",
            true,
            "wbstack names the host of a ClickHouse it deploys",
            Some("remove host, or use mode external"),
        );
    }
    if ch.shards == 0 {
        c.value("spec.clickhouse.shards", "at least one shard");
    }
    if ch.replicas == Some(0) {
        c.value("spec.clickhouse.replicas", "at least one replica");
    }
    if ch.replicated == Some(true) && r.ch_replicas < 2 {
        c.value_help(
            "spec.clickhouse.replicated",
            "replicated ClickHouse needs at least 2 replicas",
            "set spec.clickhouse.replicas to 2 or more, or replicated: false",
        );
    }
}

fn check_s3(c: &mut Checker, s3: &ClickhouseS3) {
    if !(s3.endpoint.starts_with("https://") || s3.endpoint.starts_with("http://")) {
        c.value(
            "spec.clickhouse.s3.endpoint",
            format!("`{}` is not an http(s) URL", s3.endpoint),
        );
    }
    if !s3.use_environment_credentials && s3.credentials_secret.is_none() {
        c.value_help(
            "spec.clickhouse.s3",
            "S3 credentials are needed",
            "set useEnvironmentCredentials: true or credentialsSecret",
        );
    }
    if !is_quantity(&s3.cache_size) {
        c.value(
            "spec.clickhouse.s3.cacheSize",
            format!("`{}` is not a size (like 100Gi)", s3.cache_size),
        );
    }
}

/// The generated password, its step, and what the resource waits for.
fn generated_password(b: &mut Builder, r: &Resolved) {
    b.step(
        ids::CLICKHOUSE_PASSWORD,
        GeneratedSecret {
            namespace: r.ns.clone(),
            name: names::CLICKHOUSE.into(),
            key: names::CLICKHOUSE_KEY.into(),
            length: 32,
        },
    );
}

/// `global.clickhouse`: where the resource finds ClickHouse and its password.
fn connection(b: &mut Builder, r: &Resolved, host: String, secret: (&str, &str)) {
    let ch = &r.spec.clickhouse;
    b.set(
        "/global/clickhouse",
        json!({
            "host": host, "port": ch.port.unwrap_or(8123), "database": ch.database, "user": ch.user,
            "passwordSecret": {"name": secret.0, "passwordKey": secret.1}, "replicated": r.ch_replicated,
        }),
    );
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    let ch = &r.spec.clickhouse;
    b.set(
        "/clickhouse/install",
        json!(ch.mode == ClickhouseMode::InChart && r.spec.wandb.weave.enabled),
    );
    match ch.mode {
        ClickhouseMode::InChart | ClickhouseMode::None => {}
        ClickhouseMode::External => compile_external(b, r),
        ClickhouseMode::Bundled | ClickhouseMode::Altinity => {
            generated_password(b, r);
            let (kind, host) = deployed(r);
            b.step(ids::CLICKHOUSE, kind);
            b.need(Input::new(ids::CLICKHOUSE, outputs::HOST));
            b.need(Input::new(ids::CLICKHOUSE_PASSWORD, outputs::SECRET));
            connection(b, r, host, (names::CLICKHOUSE, names::CLICKHOUSE_KEY));
        }
    }
}

fn compile_external(b: &mut Builder, r: &Resolved) {
    let ch = &r.spec.clickhouse;
    let (name, key) = match &ch.password_secret {
        Some(s) => (s.name.clone(), s.key.clone()),
        None => {
            generated_password(b, r);
            b.need(Input::new(ids::CLICKHOUSE_PASSWORD, outputs::SECRET));
            (
                names::CLICKHOUSE.to_owned(),
                names::CLICKHOUSE_KEY.to_owned(),
            )
        }
    };
    connection(b, r, ch.host.clone().unwrap_or_default(), (&name, &key));
}

/// The step of a ClickHouse wbstack deploys, and the host W&B reaches it at.
fn deployed(r: &Resolved) -> (StepKind, String) {
    let (ch, s, ns) = (&r.spec.clickhouse, r.spec, r.ns.clone());
    if ch.mode == ClickhouseMode::Bundled {
        let kind = BundledClickhouse {
            namespace: ns.clone(),
            name: "wbstack-clickhouse".into(),
            cluster_name: ch.cluster_name.clone(),
            shards: ch.shards,
            replicas: r.ch_replicas,
            keeper_replicas: if r.ch_replicated { 3 } else { 1 },
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
        };
        let host = format!("{}.{ns}.svc.cluster.local", kind.name);
        return (kind.into(), host);
    }
    let kind = AltinityClickhouse {
        namespace: ns.clone(),
        name: "weave-clickhouse".into(),
        cluster_name: ch.cluster_name.clone(),
        shards: ch.shards,
        replicas: r.ch_replicas,
        image: ch.image.clone(),
        user: ch.user.clone(),
        password_secret: names::CLICKHOUSE.into(),
        password_key: names::CLICKHOUSE_KEY.into(),
        zookeeper_host: ch.zookeeper_host.clone(),
        resources: ch.resources.clone(),
        storage_size: ch.storage_size.clone(),
        storage_class: s.kubernetes.storage_class.clone(),
    };
    // The Altinity operator's Service for an installation is `clickhouse-<name>`.
    let host = format!("clickhouse-{}.{ns}.svc.cluster.local", kind.name);
    (kind.into(), host)
}
