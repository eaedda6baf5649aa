//! RDS (Aurora and MySQL) and ElastiCache steps against moto, with the parameter settings W&B
//! runs with, described independently.
//!
//! Where moto's ElastiCache falls short of AWS (a deleted replication group stays `deleting`
//! forever, DeleteCacheSubnetGroup answers 500), the proxy in front of it answers as AWS does
//! (`common/elasticache.rs`); a 500 is still injected on purpose to show that wbstack reports it
//! with the operation and resource after retrying.

use std::sync::Arc;
use std::time::Duration;
use wbstack_aws::*;
use wbstack_engine::{
    CancellationToken, DownOptions, Engine, EngineConfig, EventSink, Graph, Journal, RetryPolicy,
    RunStatus, StepOutcome, StepSpec,
};
use wbstack_plan::{
    AwsSecret, CacheSubnetGroup, DbParameterGroups, DbSubnetGroup, Input, KmsKey, MysqlDatabase,
    RedisCache,
};
use wbstack_test_support::moto::Moto;

fn engine(wait: Duration) -> Engine {
    Engine::new(
        EngineConfig {
            retry: RetryPolicy {
                min_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
                max_attempts: 3,
                jitter: true,
            },
            wait_timeout: wait,
            ..EngineConfig::default()
        },
        EventSink::new(),
    )
}

fn graph(aws: &Aws, subnets: &[String], aurora: bool) -> Graph {
    let s = |x: &str| x.to_owned();
    Graph::new(vec![
        StepSpec::new(
            "aws.kms",
            &[],
            Arc::new(KmsKeyStep::new(
                aws.clone(),
                "aws.kms",
                KmsKey {
                    alias: s("alias/dev-wandb"),
                    deletion_window_days: 7,
                },
            )),
        ),
        StepSpec::new(
            "aws.db-subnets",
            &[],
            Arc::new(DbSubnetGroupStep::new(
                aws.clone(),
                "aws.db-subnets",
                DbSubnetGroup {
                    name: s("dev-mysql"),
                    subnet_ids: subnets.to_vec(),
                },
            )),
        ),
        StepSpec::new(
            "aws.db-params",
            &[],
            Arc::new(DbParameterGroupsStep::new(
                aws.clone(),
                "aws.db-params",
                DbParameterGroups {
                    name: s("dev-mysql"),
                    aurora,
                },
            )),
        ),
        StepSpec::new(
            "aws.db-password",
            &[],
            Arc::new(AwsSecretStep::new(
                aws.clone(),
                "aws.db-password",
                AwsSecret {
                    name: s("wbstack/dev/mysql-master"),
                    recovery_days: 0,
                    alphabet: s("abcdefghijklmnopqrstuvwxyz0123456789"),
                    length: 32,
                },
            )),
        ),
        StepSpec::new(
            "aws.mysql",
            &[
                "aws.kms",
                "aws.db-subnets",
                "aws.db-params",
                "aws.db-password",
            ],
            Arc::new(MysqlDatabaseStep::new(
                aws.clone(),
                "aws.mysql",
                MysqlDatabase {
                    identifier: s("dev-mysql"),
                    aurora,
                    instances: 2,
                    instance_class: s("db.r6g.large"),
                    engine_version: if aurora {
                        s("8.0.mysql_aurora.3.05.2")
                    } else {
                        s("8.0.39")
                    },
                    database: s("wandb_local"),
                    user: s("wandb"),
                    storage_gb: 100,
                    backup_retention_days: 7,
                    deletion_protection: false,
                    final_snapshot: false,
                    security_group_ids: vec![],
                    security_group: None,
                    log_exports: vec![s("error"), s("slowquery")],
                    performance_insights: true,
                    apply_immediately: true,
                    restore: None,
                    kms: Input::new("aws.kms", "arn"),
                    subnets: Input::new("aws.db-subnets", "name"),
                    instance_params: Input::new("aws.db-params", "instance_group"),
                    cluster_params: Input::new("aws.db-params", "cluster_group"),
                    password: Input::new("aws.db-password", "secret"),
                },
            )),
        ),
        StepSpec::new(
            "aws.cache-subnets",
            &[],
            Arc::new(CacheSubnetGroupStep::new(
                aws.clone(),
                "aws.cache-subnets",
                CacheSubnetGroup {
                    name: s("dev-redis"),
                    subnet_ids: subnets.to_vec(),
                },
            )),
        ),
        StepSpec::new(
            "aws.redis-auth",
            &[],
            Arc::new(AwsSecretStep::new(
                aws.clone(),
                "aws.redis-auth",
                AwsSecret {
                    name: s("wbstack/dev/redis-auth"),
                    recovery_days: 0,
                    alphabet: s("abcdefghijklmnopqrstuvwxyz0123456789"),
                    length: 64,
                },
            )),
        ),
        StepSpec::new(
            "aws.redis",
            &["aws.kms", "aws.cache-subnets", "aws.redis-auth"],
            Arc::new(RedisCacheStep::new(
                aws.clone(),
                "aws.redis",
                RedisCache {
                    id: s("dev-redis"),
                    node_type: s("cache.m6g.large"),
                    nodes: 2,
                    multi_az: true,
                    engine_version: s("7.1"),
                    security_group_ids: vec![],
                    security_group: None,
                    apply_immediately: true,
                    snapshot_retention_days: 7,
                    snapshot_window: s("05:00-06:00"),
                    final_snapshot: false,
                    restore: None,
                    kms: Input::new("aws.kms", "arn"),
                    subnets: Input::new("aws.cache-subnets", "name"),
                    auth: Input::new("aws.redis-auth", "secret"),
                },
            )),
        ),
    ])
    .unwrap()
}

async fn up_and_check(aurora: bool) {
    let moto = Moto::start();
    let subnets = moto.subnets();
    let aws = moto.aws("dev").await;
    let g = graph(&aws, &subnets, aurora);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let (j, st) = Journal::open(&path).unwrap();
    let r = engine(Duration::from_secs(60))
        .up(&g, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());

    // The database, described independently.
    let key_arn = r.state.steps[&"aws.kms".into()].outputs.as_ref().unwrap()["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    if aurora {
        let c = aws
            .rds
            .describe_db_clusters()
            .db_cluster_identifier("dev-mysql")
            .send()
            .await
            .unwrap();
        let c = &c.db_clusters()[0];
        assert_eq!(c.engine(), Some("aurora-mysql"));
        assert_eq!(c.storage_encrypted(), Some(true));
        assert_eq!(c.kms_key_id(), Some(key_arn.as_str()));
        assert_eq!(c.database_name(), Some("wandb_local"));
        assert_eq!(c.master_username(), Some("wandb"));
        assert_eq!(c.backup_retention_period(), Some(7));
        assert_eq!(c.db_cluster_parameter_group(), Some("dev-mysql-cluster"));
        assert_eq!(c.db_cluster_members().len(), 2);
        let p = aws
            .rds
            .describe_db_cluster_parameters()
            .db_cluster_parameter_group_name("dev-mysql-cluster")
            .source("user")
            .send()
            .await
            .unwrap();
        let set: Vec<(String, String)> = p
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_name().unwrap_or("").into(),
                    p.parameter_value().unwrap_or("").into(),
                )
            })
            .collect();
        for (k, v) in CLUSTER_PARAMETERS {
            assert!(
                set.contains(&(k.into(), v.into())),
                "{k}={v} missing from {set:?}"
            );
        }
    } else {
        let i = aws
            .rds
            .describe_db_instances()
            .db_instance_identifier("dev-mysql")
            .send()
            .await
            .unwrap();
        let i = &i.db_instances()[0];
        assert_eq!(i.engine(), Some("mysql"));
        assert_eq!(i.storage_encrypted(), Some(true));
        assert_eq!(i.db_name(), Some("wandb_local"));
        assert_eq!(i.allocated_storage(), Some(100));
    }
    // No instance is reachable from outside the VPC, whatever the subnets' defaults.
    let instances = aws.rds.describe_db_instances().send().await.unwrap();
    assert!(!instances.db_instances().is_empty());
    for i in instances.db_instances() {
        assert_eq!(
            i.publicly_accessible(),
            Some(false),
            "{:?}",
            i.db_instance_identifier()
        );
    }
    let p = aws
        .rds
        .describe_db_parameters()
        .db_parameter_group_name("dev-mysql")
        .source("user")
        .send()
        .await
        .unwrap();
    let set: Vec<(String, String)> = p
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_name().unwrap_or("").into(),
                p.parameter_value().unwrap_or("").into(),
            )
        })
        .collect();
    // A single instance has no cluster group: the cluster's settings, TLS required among them,
    // are the instance's.
    let single = if aurora {
        &[][..]
    } else {
        &CLUSTER_PARAMETERS[..]
    };
    for (k, v) in INSTANCE_PARAMETERS.iter().chain(single) {
        assert!(
            set.contains(&(k.to_string(), v.to_string())),
            "{k}={v} missing from {set:?}"
        );
    }
    assert!(
        set.iter()
            .any(|(k, v)| k == "require_secure_transport" && v == "ON")
            || aurora,
        "{set:?}"
    );
    // The cache.
    let rg = aws
        .elasticache
        .describe_replication_groups()
        .replication_group_id("dev-redis")
        .send()
        .await
        .unwrap();
    let rg = &rg.replication_groups()[0];
    assert_eq!(rg.at_rest_encryption_enabled(), Some(true));
    assert_eq!(rg.transit_encryption_enabled(), Some(true));
    // Daily snapshots, kept as the plan says, in its window.
    assert_eq!(rg.snapshot_retention_limit(), Some(7));
    assert_eq!(rg.snapshot_window(), Some("05:00-06:00"));
    assert_eq!(rg.auth_token_enabled(), Some(true));
    assert_eq!(
        rg.multi_az().map(|m| m.as_str().to_owned()),
        Some("enabled".to_owned())
    );
    assert_eq!(
        rg.automatic_failover().map(|m| m.as_str().to_owned()),
        Some("enabled".to_owned())
    );
    // No secret value in the journal.
    let pw = aws
        .secrets
        .get_secret_value()
        .secret_id("wbstack/dev/mysql-master")
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    let token = aws
        .secrets
        .get_secret_value()
        .secret_id("wbstack/dev/redis-auth")
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned();
    drop(j);
    let journal = std::fs::read_to_string(&path).unwrap();
    assert!(!journal.contains(&pw) && !journal.contains(&token));
    // A converged re-run applies nothing.
    let (j, st) = Journal::open(&path).unwrap();
    let again = engine(Duration::from_secs(60))
        .up(&g, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.stats.apply_calls, 0);
    // Teardown: everything ours is deleted; moto's gaps show as what they are.
    drop(j);
    let (j, st) = Journal::open(&path).unwrap();
    let down = engine(Duration::from_secs(4))
        .down(&g, &j, st, DownOptions::default(), CancellationToken::new())
        .await
        .unwrap();
    let outcome = |id: &str| down.step(id).unwrap().outcome.clone();
    assert_eq!(outcome("aws.mysql"), StepOutcome::Destroyed);
    assert_eq!(outcome("aws.db-subnets"), StepOutcome::Destroyed);
    assert_eq!(outcome("aws.db-params"), StepOutcome::Destroyed);
    assert_eq!(outcome("aws.db-password"), StepOutcome::Destroyed);
    assert!(aws
        .rds
        .describe_db_clusters()
        .db_cluster_identifier("dev-mysql")
        .send()
        .await
        .is_err());
    assert!(aws
        .rds
        .describe_db_instances()
        .db_instance_identifier("dev-mysql-1")
        .send()
        .await
        .is_err());
    assert!(aws
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name("dev-mysql")
        .send()
        .await
        .is_err());
    // The replication group goes (the proxy answers as AWS does where moto keeps it
    // `deleting`), then its subnet group and the KMS key behind it.
    assert_eq!(outcome("aws.redis"), StepOutcome::Destroyed);
    assert_eq!(outcome("aws.cache-subnets"), StepOutcome::Destroyed);
    assert_eq!(outcome("aws.kms"), StepOutcome::Destroyed);
    assert!(aws
        .elasticache
        .describe_replication_groups()
        .replication_group_id("dev-redis")
        .send()
        .await
        .is_err());
    assert!(aws
        .elasticache
        .describe_cache_subnet_groups()
        .cache_subnet_group_name("dev-redis")
        .send()
        .await
        .is_err());
    assert_eq!(down.status, RunStatus::Succeeded, "{:?}", down.steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aurora_cluster_and_redis_come_up_configured_and_go_away() {
    up_and_check(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_mysql_instance_for_small_plans() {
    up_and_check(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_delete_cache_subnet_group_is_reported_not_hidden() {
    let moto = Moto::start();
    moto.caches.fail("DeleteCacheSubnetGroup");
    let subnets = moto.subnets();
    let aws = moto.aws("dev").await;
    let g = Graph::new(vec![StepSpec::new(
        "aws.cache-subnets",
        &[],
        Arc::new(CacheSubnetGroupStep::new(
            aws.clone(),
            "aws.cache-subnets",
            CacheSubnetGroup {
                name: "dev-redis".into(),
                subnet_ids: subnets,
            },
        )),
    )])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let (j, st) = Journal::open(&path).unwrap();
    assert_eq!(
        engine(Duration::from_secs(10))
            .up(&g, &j, st, CancellationToken::new())
            .await
            .unwrap()
            .status,
        RunStatus::Succeeded
    );
    drop(j);
    let (j, st) = Journal::open(&path).unwrap();
    let down = engine(Duration::from_secs(10))
        .down(&g, &j, st, DownOptions::default(), CancellationToken::new())
        .await
        .unwrap();
    match &down.step("aws.cache-subnets").unwrap().outcome {
        // Retried as a server error, then reported with the operation and resource.
        StepOutcome::Failed { error } => assert!(
            error.contains("DeleteCacheSubnetGroup dev-redis failed"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
}
