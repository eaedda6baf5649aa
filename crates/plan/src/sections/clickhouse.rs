//! `spec.clickhouse`: Weave's trace store: the chart's, one you run, native manifests rendered
//! by wbstack (Keeper, shards x replicas, an optional S3 disk), or an Altinity installation.

use crate::build::Builder;
use crate::check::{
    check_resources, check_secret_ref, default_cache_size, is_quantity, is_weave_identifier,
    quantity_bytes, Checker,
};
use crate::compile::names;
use crate::ids::{self, outputs, Input};
use crate::kinds::{
    AltinityClickhouse, AltinityKeeper, AltinityOperator, BundledClickhouse, GeneratedSecret,
    StepKind,
};
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
        check_s3(c, s3, &ch.storage_size);
    }
    check_weave_names(c, r);
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
    if ch.mode == ClickhouseMode::Altinity
        && !crate::is_dns_label(&ch.altinity_operator.namespace, 63)
    {
        c.value(
            "spec.clickhouse.altinityOperator.namespace",
            format!(
                "`{}` is not a namespace name",
                ch.altinity_operator.namespace
            ),
        );
    }
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

/// Weave's migrations write the database and the cluster into SQL unquoted and refuse any name
/// but letters, digits, `_` and `.`. A cluster wbstack deploys gets a second, plain name instead;
/// one you run must have such a name itself.
fn check_weave_names(c: &mut Checker, r: &Resolved) {
    let ch = &r.spec.clickhouse;
    if !r.spec.wandb.weave.enabled || matches!(ch.mode, ClickhouseMode::None) {
        return;
    }
    if !is_weave_identifier(&ch.database) {
        c.value_help(
            "spec.clickhouse.database",
            format!(
                "Weave's migrations refuse the database name `{}`",
                ch.database
            ),
            "use letters, digits, '_' and '.' only",
        );
    }
    if ch.mode == ClickhouseMode::External
        && r.ch_replicated
        && !is_weave_identifier(&ch.cluster_name)
    {
        c.value_help(
            "spec.clickhouse.clusterName",
            format!(
                "Weave's migrations refuse the cluster name `{}` (they write `ON CLUSTER <name>` unquoted)",
                ch.cluster_name
            ),
            "name the cluster of your ClickHouse with letters, digits, '_' and '.' only, e.g. weave_cluster",
        );
    }
}

/// The endpoint's bucket and folder become the IAM grant of ClickHouse's role: a bucket that
/// breaks S3's naming rules (`*`) or a folder with a wildcard would widen it.
fn check_endpoint_bucket(c: &mut Checker, endpoint: &str) {
    const AT: &str = "spec.clickhouse.s3.endpoint";
    let Some(g) = super::irsa::endpoint_grant(endpoint) else {
        c.value_help(
            AT,
            format!("`{endpoint}` names no bucket"),
            "like https://s3.us-east-1.amazonaws.com/BUCKET/FOLDER/",
        );
        return;
    };
    if let Some(why) = crate::check::s3_bucket_problem(&g.bucket) {
        c.value(
            AT,
            format!(
                "the bucket `{}` in the endpoint is not a valid bucket name: {why}",
                g.bucket
            ),
        );
    } else if g.prefix.contains(['*', '?']) {
        c.value(
            AT,
            format!("the folder `{}` in the endpoint has a wildcard, which would widen ClickHouse's grant", g.prefix),
        );
    }
}

fn check_s3(c: &mut Checker, s3: &ClickhouseS3, storage: &str) {
    if !(s3.endpoint.starts_with("https://") || s3.endpoint.starts_with("http://")) {
        c.value(
            "spec.clickhouse.s3.endpoint",
            format!("`{}` is not an http(s) URL", s3.endpoint),
        );
    } else {
        check_endpoint_bucket(c, &s3.endpoint);
    }
    if !s3.use_environment_credentials && s3.credentials_secret.is_none() {
        c.value_help(
            "spec.clickhouse.s3",
            "S3 credentials are needed",
            "set useEnvironmentCredentials: true or credentialsSecret",
        );
    }
    let Some(cache) = &s3.cache_size else {
        return;
    };
    if !is_quantity(cache) {
        c.value(
            "spec.clickhouse.s3.cacheSize",
            format!("`{cache}` is not a size (like 100Gi)"),
        );
    } else if let (Some(cb), Some(sb)) = (quantity_bytes(cache), quantity_bytes(storage)) {
        if cb >= sb {
            c.value_help(
                "spec.clickhouse.s3.cacheSize",
                format!("the cache ({cache}) must be smaller than the volume it lives on (storageSize {storage})"),
                "leave room for ClickHouse's own data; the default is 80% of storageSize",
            );
        }
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

/// An image through the plan's registry.
fn image(r: &Resolved, image: &str) -> String {
    crate::digests::pinned(
        &crate::model::with_registry(r.spec.images.registry.as_deref(), image),
        &r.spec.images.digests,
    )
}

/// W&B's pods carry the generated password's revision, so a new password (made only when the
/// Secret and its origin copy are both gone) restarts them with it.
fn roll_on_new_password(b: &mut Builder) {
    let rev = Input::new(ids::CLICKHOUSE_PASSWORD, outputs::REVISION);
    let at = "/global/pod/annotations/wbstack.dev~1clickhouse-password-revision";
    b.set(at, json!(crate::build::placeholder(rev)));
    b.bind(at, rev);
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
    let in_chart = ch.mode == ClickhouseMode::InChart && r.spec.wandb.weave.enabled;
    super::components::switch(b, "clickhouse", in_chart);
    match ch.mode {
        ClickhouseMode::InChart | ClickhouseMode::None => {}
        ClickhouseMode::External => compile_external(b, r),
        ClickhouseMode::Bundled | ClickhouseMode::Altinity => {
            generated_password(b, r);
            if ch.mode == ClickhouseMode::Altinity {
                b.step(ids::ALTINITY_OPERATOR, altinity_operator(r));
            }
            let (kind, host) = deployed(r);
            weave_cluster(b, r, &weave_cluster_name(r));
            b.step(ids::CLICKHOUSE, kind);
            b.need(Input::new(ids::CLICKHOUSE, outputs::HOST));
            b.need(Input::new(ids::CLICKHOUSE_PASSWORD, outputs::SECRET));
            connection(b, r, host, (names::CLICKHOUSE, names::CLICKHOUSE_KEY));
            roll_on_new_password(b);
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
            roll_on_new_password(b);
            (
                names::CLICKHOUSE.to_owned(),
                names::CLICKHOUSE_KEY.to_owned(),
            )
        }
    };
    connection(b, r, ch.host.clone().unwrap_or_default(), (&name, &key));
    weave_cluster(b, r, &ch.cluster_name);
}

/// The cluster name Weave uses for a ClickHouse wbstack deploys: the cluster's own, or the
/// plain alias `weave_cluster` when Weave would refuse the name.
fn weave_cluster_name(r: &Resolved) -> String {
    let name = &r.spec.clickhouse.cluster_name;
    if is_weave_identifier(name) {
        name.clone()
    } else {
        WEAVE_DEFAULT_CLUSTER.into()
    }
}

/// The cluster Weave's migrations use when none is named.
const WEAVE_DEFAULT_CLUSTER: &str = "weave_cluster";

/// Names the replicated cluster in the environment of the Weave services that run DDL on it
/// (`WF_CLICKHOUSE_REPLICATED_CLUSTER`; Weave assumes `weave_cluster` otherwise).
fn weave_cluster(b: &mut Builder, r: &Resolved, name: &str) {
    if !r.ch_replicated || !r.spec.wandb.weave.enabled {
        return;
    }
    let mut services = vec!["weave-trace"];
    if r.spec.wandb.weave.trace_workers {
        services.push("weave-trace-worker");
    }
    for s in services {
        b.set(
            &format!("/{s}/env/WF_CLICKHOUSE_REPLICATED_CLUSTER"),
            json!(name),
        );
    }
}

/// The Altinity operator, as its install bundle (0.25.6) names its images.
fn altinity_operator(r: &Resolved) -> AltinityOperator {
    let op = &r.spec.clickhouse.altinity_operator;
    AltinityOperator {
        namespace: op.namespace.clone(),
        install: op.install,
        image: image(r, "altinity/clickhouse-operator:0.25.6"),
        metrics_image: image(r, "altinity/metrics-exporter:0.25.6"),
        pull_secrets: r.spec.images.pull_secrets.clone(),
    }
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
            image: image(r, &ch.image),
            keeper_image: image(
                r,
                &ch.image.replace("clickhouse-server", "clickhouse-keeper"),
            ),
            user: ch.user.clone(),
            database: ch.database.clone(),
            password_secret: names::CLICKHOUSE.into(),
            password_key: names::CLICKHOUSE_KEY.into(),
            log_level: ch.log_level.clone(),
            prometheus: ch.prometheus,
            s3: ch.s3.clone().map(|mut s3| {
                s3.cache_size = s3
                    .cache_size
                    .or_else(|| default_cache_size(&ch.storage_size));
                s3
            }),
            resources: ch
                .resources
                .clone()
                .or(r.preset.clickhouse_resources.clone()),
            storage_size: ch.storage_size.clone(),
            storage_class: s.kubernetes.storage_class.clone(),
            weave_cluster: weave_cluster_name(r),
            stuck_seconds: s.timeouts.stuck_seconds,
            service_account: crate::sections::clickhouse_uses_role(r.plan)
                .then(|| crate::sections::CLICKHOUSE_ACCOUNT.to_owned()),
            role: crate::sections::clickhouse_uses_role(r.plan).then_some(crate::ids::Input::new(
                crate::ids::IAM_ROLE,
                crate::ids::outputs::ARN,
            )),
            pull_secrets: s.images.pull_secrets.clone(),
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
        image: image(r, &ch.image),
        user: ch.user.clone(),
        password_secret: names::CLICKHOUSE.into(),
        password_key: names::CLICKHOUSE_KEY.into(),
        zookeeper_host: ch.zookeeper_host.clone(),
        keeper: (r.ch_replicated && ch.zookeeper_host.is_none()).then(|| AltinityKeeper {
            name: "weave-keeper".into(),
            replicas: 3,
            image: image(
                r,
                &ch.image.replace("clickhouse-server", "clickhouse-keeper"),
            ),
        }),
        resources: ch
            .resources
            .clone()
            .or(r.preset.clickhouse_resources.clone()),
        storage_size: ch.storage_size.clone(),
        storage_class: s.kubernetes.storage_class.clone(),
        weave_cluster: weave_cluster_name(r),
        pull_secrets: s.images.pull_secrets.clone(),
    };
    // The Altinity operator's Service for an installation is `clickhouse-<name>`.
    let host = format!("clickhouse-{}.{ns}.svc.cluster.local", kind.name);
    (kind.into(), host)
}

#[cfg(test)]
mod tests {
    use crate::sections::testing::{at, ids, kind, steps, values};
    use crate::{ids, StepKind};

    #[test]
    fn weave_needs_a_clickhouse_and_one_it_can_migrate() {
        let (path, line, _) = at("  clickhouse: {mode: none}\n", "Weave needs ClickHouse");
        assert_eq!((path.as_str(), line), ("spec.clickhouse.mode", 8));
        let off = "    weave: {enabled: false}\n  clickhouse: {mode: none}\n";
        assert!(!ids(&steps(off)).contains(&ids::CLICKHOUSE));
        let (path, _, _) = at(
            "  clickhouse: {mode: bundled, database: weave-db}\n",
            "refuse the database name `weave-db`",
        );
        assert_eq!(path, "spec.clickhouse.database");
        let (path, _, _) = at("  clickhouse: {mode: external}\n", "needs a host");
        assert_eq!(path, "spec.clickhouse");
    }

    #[test]
    fn replication_sizes_and_the_host_of_a_deployed_clickhouse_are_checked() {
        let spec = "  clickhouse: {mode: bundled, replicas: 1, replicated: true, host: ch, storageSize: big}\n";
        assert_eq!(
            at(spec, "at least 2 replicas").0,
            "spec.clickhouse.replicated"
        );
        assert_eq!(
            at(spec, "names the host of a ClickHouse it deploys").0,
            "spec.clickhouse.host"
        );
        assert_eq!(at(spec, "is not a size").0, "spec.clickhouse.storageSize");
    }

    #[test]
    fn a_bundled_cluster_gets_three_keepers_when_replicated_and_one_otherwise() {
        let s = steps("  clickhouse: {mode: bundled, replicas: 3}\n");
        let StepKind::ClickhouseBundled(c) = kind(&s, ids::CLICKHOUSE) else {
            panic!("not bundled ClickHouse")
        };
        assert_eq!((c.replicas, c.keeper_replicas, c.shards), (3, 3, 1));
        let single = steps("  clickhouse: {mode: bundled, replicas: 1}\n");
        let StepKind::ClickhouseBundled(c) = kind(&single, ids::CLICKHOUSE) else {
            panic!("not bundled ClickHouse")
        };
        assert_eq!((c.replicas, c.keeper_replicas), (1, 1));
        let v = values("  clickhouse: {mode: bundled, replicas: 3}\n");
        assert_eq!(v["global"]["clickhouse"]["replicated"], true);
    }

    #[test]
    fn an_altinity_installation_comes_with_its_operator_and_keeper() {
        let s = steps("  clickhouse: {mode: altinity, replicas: 2}\n");
        let StepKind::AltinityOperator(o) = kind(&s, ids::ALTINITY_OPERATOR) else {
            panic!("not the Altinity operator")
        };
        assert_eq!(o.namespace, "clickhouse-operator");
        let StepKind::ClickhouseAltinity(c) = kind(&s, ids::CLICKHOUSE) else {
            panic!("not an Altinity installation")
        };
        let keeper = c
            .keeper
            .as_ref()
            .expect("a replicated installation gets a Keeper");
        assert_eq!(keeper.replicas, 3);
        assert_eq!(c.zookeeper_host, None);
        let position = |id: &str| ids(&s).iter().position(|i| *i == id).unwrap();
        assert!(position(ids::ALTINITY_OPERATOR) < position(ids::CLICKHOUSE));
        let given =
            steps("  clickhouse: {mode: altinity, replicas: 2, zookeeperHost: zk.example.com}\n");
        let StepKind::ClickhouseAltinity(c) = kind(&given, ids::CLICKHOUSE) else {
            panic!("not an Altinity installation")
        };
        assert!(c.keeper.is_none());
        assert_eq!(c.zookeeper_host.as_deref(), Some("zk.example.com"));
    }
}
