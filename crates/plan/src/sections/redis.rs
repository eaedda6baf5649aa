//! `spec.redis`: the chart's Redis, one you run, or an ElastiCache group made by wbstack (subnet
//! group, AUTH token in Secrets Manager, mirrored into a Kubernetes Secret).

use super::mysql::ALPHANUMERIC;
use crate::build::{placeholder, Builder};
use crate::check::{aws_identifier_problem, check_secret_ref, Checker};
use crate::compile::names;
use crate::ids::{self, outputs, Input};
use crate::kinds::{AwsSecret, CacheSubnetGroup, MirroredSecret, RedisCache};
use crate::model::RedisMode;
use crate::resolve::Resolved;
use serde_json::json;

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let s = &r.spec.redis;
    match s.mode {
        RedisMode::External => {
            if s.host.as_deref().unwrap_or("").is_empty() {
                c.value_help(
                    "spec.redis",
                    "external Redis needs a host",
                    "set spec.redis.host",
                );
            }
            if let Some(ps) = &s.password_secret {
                check_secret_ref(c, "spec.redis.passwordSecret", ps);
            }
        }
        RedisMode::InCluster => {
            if s.host.is_some() {
                c.at(
                    "spec.redis.host",
                    true,
                    "`host` is not used with mode in-cluster",
                    Some("set mode to external or elasticache, or remove it"),
                );
            }
        }
        RedisMode::Elasticache => check_elasticache(c, r),
    }
    if s.mode != RedisMode::Elasticache {
        for (field, set) in [
            ("nodeType", s.node_type.is_some()),
            ("engineVersion", s.engine_version.is_some()),
            ("snapshotRetentionDays", s.snapshot_retention_days.is_some()),
            ("finalSnapshot", s.final_snapshot.is_some()),
        ] {
            if set {
                c.at(
                    &format!("spec.redis.{field}"),
                    true,
                    format!("`{field}` is only used with mode elasticache"),
                    Some("set mode to elasticache, or remove it"),
                );
            }
        }
    }
    if s.snapshot_retention_days.is_some_and(|d| d > 35) {
        c.value_help(
            "spec.redis.snapshotRetentionDays",
            "ElastiCache keeps snapshots at most 35 days",
            "use 0 to 35",
        );
    }
}

/// The Redis version an ElastiCache group runs.
pub(crate) fn engine_version<'a>(r: &'a Resolved) -> &'a str {
    r.spec.redis.engine_version.as_deref().unwrap_or("7.1")
}

fn check_elasticache(c: &mut Checker, r: &Resolved) {
    let s = &r.spec.redis;
    if let Some(v) = &s.engine_version {
        let parts: Vec<&str> = v.split('.').collect();
        let numeric = parts.len() == 2 && parts.iter().all(|p| p.parse::<u32>().is_ok());
        if !numeric || parts[0].parse::<u32>().unwrap_or(0) < 6 {
            c.value_help(
                "spec.redis.engineVersion",
                format!(
                    "`{v}` is not a Redis version ElastiCache runs (major.minor, 6.2 or newer)"
                ),
                "use 7.1, 7.0 or 6.2",
            );
        }
    }
    if s.host.is_some() {
        c.at(
            "spec.redis.host",
            true,
            "the host of an ElastiCache group is known only once it exists",
            Some("remove host, or use mode external"),
        );
    }
    if let Some(nt) = &s.node_type {
        if !nt.starts_with("cache.") || nt.split('.').count() != 3 {
            c.value(
                "spec.redis.nodeType",
                format!("`{nt}` is not an ElastiCache node type (like cache.m6g.large)"),
            );
        }
    }
    if let Some(problem) = aws_identifier_problem(&format!("{}-redis", r.env), 40) {
        c.value(
            "metadata.name",
            format!("the cache identifier `{}-redis` {problem}", r.env),
        );
    }
}

/// Where the chart reads an external Redis password: `global.redis.secret.{secretName,
/// secretKey}` (without it the chart makes a Secret with an empty password).
fn secret(name: &str, key: &str) -> serde_json::Value {
    json!({"secretName": name, "secretKey": key})
}

/// The connection parameters of a Redis that speaks TLS (ElastiCache in transit encryption),
/// with the chart's own session TTL kept.
fn params() -> serde_json::Value {
    json!({"tls": true, "ttlInSeconds": 604800})
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    let s = &r.spec.redis;
    super::components::switch(b, "redis", s.mode == RedisMode::InCluster);
    match s.mode {
        RedisMode::InCluster => {}
        RedisMode::External => {
            let mut v = json!({"host": s.host, "port": s.port.unwrap_or(6379)});
            if let Some(ps) = &s.password_secret {
                v["secret"] = secret(&ps.name, &ps.key);
            }
            if s.tls == Some(true) {
                v["params"] = params();
            }
            b.set("/global/redis", v);
        }
        RedisMode::Elasticache => compile_elasticache(b, r),
    }
}

/// The daily snapshot window of an ElastiCache group (UTC), away from RDS's default backup
/// windows in the busiest regions.
const SNAPSHOT_WINDOW: &str = "05:00-06:00";

fn compile_elasticache(b: &mut Builder, r: &Resolved) {
    let (env, pre) = (r.env, &r.preset);
    b.step(
        ids::CACHE_SUBNETS,
        CacheSubnetGroup {
            name: format!("{env}-redis"),
            subnet_ids: r.aws.subnet_ids.clone(),
        },
    );
    b.step(
        ids::REDIS_AUTH,
        AwsSecret {
            name: format!("wbstack/{env}/redis-auth"),
            recovery_days: r.aws.secret_recovery_days,
            alphabet: ALPHANUMERIC.into(),
            length: 64,
        },
    );
    b.step(
        ids::REDIS,
        RedisCache {
            id: format!("{env}-redis"),
            node_type: r
                .spec
                .redis
                .node_type
                .clone()
                .unwrap_or_else(|| pre.cache_node_type.into()),
            nodes: pre.cache_nodes,
            multi_az: pre.multi_az(),
            engine_version: engine_version(r).into(),
            security_group_ids: r.aws.security_group_ids.clone(),
            security_group: crate::sections::security_group_input(r),
            apply_immediately: r.apply_immediately(),
            snapshot_retention_days: r
                .spec
                .redis
                .snapshot_retention_days
                .unwrap_or(pre.cache_snapshot_days),
            snapshot_window: SNAPSHOT_WINDOW.into(),
            final_snapshot: r.spec.redis.final_snapshot.unwrap_or(true),
            restore: r.spec.restore.as_ref().map(super::restore::cache),
            kms: Input::new(ids::KMS, outputs::ARN),
            subnets: Input::new(ids::CACHE_SUBNETS, outputs::NAME),
            auth: Input::new(ids::REDIS_AUTH, outputs::SECRET),
        },
    );
    b.step(
        ids::REDIS_PASSWORD,
        MirroredSecret {
            namespace: r.ns.clone(),
            name: names::REDIS.into(),
            key: names::REDIS_KEY.into(),
            // The version the group accepts: during a rotation, the new token once it does.
            from: Input::new(ids::REDIS, outputs::AUTH),
        },
    );
    b.need(Input::new(ids::REDIS_PASSWORD, outputs::SECRET));
    // W&B's pods carry when the token's Secret was last written, so a new token (or one
    // edited by hand and set back) restarts them with it.
    let rev = Input::new(ids::REDIS_PASSWORD, outputs::WRITTEN);
    let at = "/global/pod/annotations/wbstack.dev~1redis-auth-revision";
    b.set(at, json!(placeholder(rev)));
    b.bind(at, rev);
    let host = Input::new(ids::REDIS, outputs::ENDPOINT);
    b.set(
        "/global/redis",
        json!({"host": placeholder(host), "port": 6379, "secret": secret(names::REDIS, names::REDIS_KEY), "params": params()}),
    );
    b.bind("/global/redis/host", host);
    b.bind("/global/redis/port", Input::new(ids::REDIS, outputs::PORT));
}

#[cfg(test)]
mod tests {
    use crate::sections::testing::{at, kind, steps, values, AWS};
    use crate::{ids, preset, Size, StepKind};

    #[test]
    fn each_mode_refuses_the_fields_it_does_not_use_where_they_are_written() {
        let external = "  redis:\n    mode: external\n";
        assert_eq!(at(external, "external Redis needs a host").0, "spec.redis");
        let in_cluster = "  redis:\n    host: r.example.com\n    nodeType: cache.t4g.small\n";
        assert_eq!(
            at(in_cluster, "`host` is not used with mode in-cluster"),
            ("spec.redis.host".into(), 9, 5)
        );
        let (path, line, _) = at(in_cluster, "`nodeType` is only used with mode elasticache");
        assert_eq!((path.as_str(), line), ("spec.redis.nodeType", 10));
    }

    #[test]
    fn an_elasticache_group_is_checked_before_anything_is_made() {
        let spec = format!("  redis:\n    mode: elasticache\n    engineVersion: '5.0'\n    nodeType: m6g.large\n    snapshotRetentionDays: 40\n{AWS}");
        let (path, line, _) = at(&spec, "is not a Redis version ElastiCache runs");
        assert_eq!((path.as_str(), line), ("spec.redis.engineVersion", 10));
        let (path, line, _) = at(&spec, "is not an ElastiCache node type");
        assert_eq!((path.as_str(), line), ("spec.redis.nodeType", 11));
        let (path, line, _) = at(&spec, "keeps snapshots at most 35 days");
        assert_eq!(
            (path.as_str(), line),
            ("spec.redis.snapshotRetentionDays", 12)
        );
    }

    #[test]
    fn an_elasticache_group_follows_the_size_and_hands_the_chart_its_endpoint_over_tls() {
        let spec = format!("  size: medium\n  redis:\n    mode: elasticache\n{AWS}");
        let s = steps(&spec);
        let StepKind::RedisCache(c) = kind(&s, ids::REDIS) else {
            panic!("not a cache")
        };
        let medium = preset(Size::Medium);
        assert_eq!(c.id, "dev-redis");
        assert_eq!(
            (c.node_type.as_str(), c.nodes, c.multi_az),
            (
                medium.cache_node_type,
                medium.cache_nodes,
                medium.multi_az()
            )
        );
        assert_eq!(c.snapshot_retention_days, medium.cache_snapshot_days);
        assert_eq!((c.engine_version.as_str(), c.final_snapshot), ("7.1", true));
        let StepKind::MirroredSecret(m) = kind(&s, ids::REDIS_PASSWORD) else {
            panic!("not a mirrored Secret")
        };
        assert_eq!(
            m.from,
            crate::Input::new(ids::REDIS, crate::ids::outputs::AUTH)
        );
        let v = values(&spec);
        assert_eq!(v["global"]["redis"]["params"]["tls"], true);
        assert_eq!(
            v["global"]["redis"]["secret"]["secretName"],
            "wbstack-redis"
        );
        assert_eq!(v["redis"]["install"], false);
    }

    #[test]
    fn an_external_redis_gets_its_secret_and_tls_only_when_asked() {
        let v = values("  redis:\n    mode: external\n    host: r.example.com\n    passwordSecret: {name: r, key: pw}\n");
        assert_eq!(v["global"]["redis"]["host"], "r.example.com");
        assert_eq!(v["global"]["redis"]["port"], 6379);
        assert_eq!(v["global"]["redis"]["secret"]["secretKey"], "pw");
        assert!(v["global"]["redis"].get("params").is_none());
        let tls = values("  redis:\n    mode: external\n    host: r.example.com\n    port: 6380\n    tls: true\n");
        assert_eq!(tls["global"]["redis"]["params"]["tls"], true);
        assert_eq!(tls["global"]["redis"]["port"], 6380);
    }
}
