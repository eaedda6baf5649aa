//! KMS, S3 and Secrets Manager steps against the moto server, checked by describing every
//! resource independently of wbstack's own records.

use std::sync::Arc;
use wbstack_aws::{AwsSecretStep, KmsKeyStep, S3BucketStep};
use wbstack_engine::{
    CancellationToken, DownOptions, Engine, EngineConfig, EventLog, EventSink, Graph, Journal,
    RetryPolicy, RunStatus, StepOutcome, StepSpec,
};
use wbstack_plan::{AwsSecret, Input, KmsKey, S3Bucket};
use wbstack_test_support::moto::Moto;

fn engine() -> (Engine, EventLog) {
    let sink = EventSink::new();
    let log = EventLog::attach(&sink);
    let cfg = EngineConfig {
        retry: RetryPolicy {
            min_delay: std::time::Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        ..EngineConfig::default()
    };
    (Engine::new(cfg, sink), log)
}

/// A graph of the KMS key alone.
fn kms_only(aws: &wbstack_aws::Aws) -> Graph {
    Graph::new(vec![StepSpec::new(
        "aws.kms",
        &[],
        Arc::new(KmsKeyStep::new(
            aws.clone(),
            "aws.kms",
            KmsKey {
                alias: "alias/dev-wandb".into(),
                deletion_window_days: 7,
            },
        )),
    )])
    .unwrap()
}

fn graph(aws: &wbstack_aws::Aws, bucket: &str) -> Graph {
    Graph::new(vec![
        StepSpec::new(
            "aws.kms",
            &[],
            Arc::new(KmsKeyStep::new(
                aws.clone(),
                "aws.kms",
                KmsKey {
                    alias: "alias/dev-wandb".into(),
                    deletion_window_days: 7,
                },
            )),
        ),
        StepSpec::new(
            "aws.bucket",
            &["aws.kms"],
            Arc::new(S3BucketStep::new(
                aws.clone(),
                "aws.bucket",
                S3Bucket {
                    name: bucket.into(),
                    versioning: true,
                    kms_key_arn: None,
                    kms: Some(Input::new("aws.kms", "arn")),
                    cors_origins: vec!["https://wandb.example.com".into()],
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
                    name: "wbstack/dev/mysql-master".into(),
                    recovery_days: 7,
                    alphabet: "abcdefghijklmnopqrstuvwxyz0123456789".into(),
                    length: 32,
                },
            )),
        ),
    ])
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_bucket_and_secret_come_up_configured_rerun_idle_and_go_away() {
    let moto = Moto::start();
    // The plan's own tags (spec.aws.tags) go on every resource beside wbstack's.
    let aws = moto
        .aws("dev")
        .await
        .tagging([("team".to_owned(), "ml-platform".to_owned())].into());
    // Someone else's bucket and key, made before: never touched.
    let foreign_key = wbstack_test_support::moto::someone_elses_bucket_and_key(&aws).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let g = graph(&aws, "dev-wandb-artifacts");
    let (eng, log) = engine();
    let (j, st) = Journal::open(&path).unwrap();
    let r = eng.up(&g, &j, st, CancellationToken::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());

    // Described independently.
    let key_arn = r
        .step("aws.kms")
        .map(|_| ())
        .and(
            r.state
                .steps
                .get(&"aws.kms".into())
                .and_then(|s| s.outputs.as_ref())
                .and_then(|o| o["arn"].as_str().map(str::to_owned)),
        )
        .unwrap();
    let enc = aws
        .s3
        .get_bucket_encryption()
        .bucket("dev-wandb-artifacts")
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    let by_default = rule.apply_server_side_encryption_by_default().unwrap();
    assert_eq!(by_default.sse_algorithm().as_str(), "aws:kms");
    assert_eq!(by_default.kms_master_key_id(), Some(key_arn.as_str()));
    assert_eq!(rule.bucket_key_enabled(), Some(true));
    let pab = aws
        .s3
        .get_public_access_block()
        .bucket("dev-wandb-artifacts")
        .send()
        .await
        .unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let own = aws
        .s3
        .get_bucket_ownership_controls()
        .bucket("dev-wandb-artifacts")
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.ownership_controls().unwrap().rules()[0]
            .object_ownership()
            .as_str(),
        "BucketOwnerEnforced"
    );
    let cors = aws
        .s3
        .get_bucket_cors()
        .bucket("dev-wandb-artifacts")
        .send()
        .await
        .unwrap();
    let c = &cors.cors_rules()[0];
    assert_eq!(c.allowed_methods(), ["GET", "HEAD", "PUT"]);
    assert_eq!(c.allowed_origins(), ["https://wandb.example.com"]);
    assert_eq!(c.expose_headers(), ["ETag"]);
    assert_eq!(c.max_age_seconds(), Some(3000));
    let p = aws
        .s3
        .get_bucket_policy()
        .bucket("dev-wandb-artifacts")
        .send()
        .await
        .unwrap();
    assert!(p.policy().unwrap().contains("aws:SecureTransport"));
    // moto's own answer to GetBucketVersioning, read raw (the proxy renames its root element,
    // which the SDK would reject, for wbstack's reads).
    let ver = moto.raw_get("/dev-wandb-artifacts?versioning");
    assert!(ver.contains("<Status>Enabled</Status>"), "{ver}");
    let rot = aws
        .kms
        .get_key_rotation_status()
        .key_id(&key_arn)
        .send()
        .await
        .unwrap();
    assert!(rot.key_rotation_enabled());
    let policy = aws
        .kms
        .get_key_policy()
        .key_id(&key_arn)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    assert!(policy.policy().unwrap().contains("Administrator"));
    let key_tags = aws
        .kms
        .list_resource_tags()
        .key_id(&key_arn)
        .send()
        .await
        .unwrap();
    let key_tags: Vec<(&str, &str)> = key_tags
        .tags()
        .iter()
        .map(|t| (t.tag_key(), t.tag_value()))
        .collect();
    assert!(key_tags.contains(&("team", "ml-platform")), "{key_tags:?}");
    assert!(
        key_tags.contains(&("wbstack:environment", "dev")),
        "{key_tags:?}"
    );
    let bucket_tags = aws
        .s3
        .get_bucket_tagging()
        .bucket("dev-wandb-artifacts")
        .send()
        .await
        .unwrap();
    assert!(bucket_tags
        .tag_set()
        .iter()
        .any(|t| t.key() == "team" && t.value() == "ml-platform"));
    let secret = aws
        .secrets
        .get_secret_value()
        .secret_id("wbstack/dev/mysql-master")
        .send()
        .await
        .unwrap();
    let value = secret.secret_string().unwrap().to_owned();
    assert_eq!(value.len(), 32);
    drop(j);
    let journal = std::fs::read_to_string(&path).unwrap();
    assert!(!journal.contains(&value), "the password is not journaled");
    assert!(journal.contains("aws-secretsmanager"), "its reference is");
    let events = format!("{:?}", log.events());
    assert!(!events.contains(&value));

    // A converged re-run applies nothing.
    let (j, st) = Journal::open(&path).unwrap();
    let r = eng.up(&g, &j, st, CancellationToken::new()).await.unwrap();
    assert_eq!(r.stats.apply_calls, 0);
    assert!(r.steps.iter().all(|s| s.outcome == StepOutcome::Unchanged));

    // Teardown empties a versioned bucket of every version and delete marker.
    wbstack_test_support::moto::versions_and_delete_markers(&aws, "dev-wandb-artifacts", 5).await;
    drop(j);
    let (j, st) = Journal::open(&path).unwrap();
    let r = eng
        .down(&g, &j, st, DownOptions::default(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());
    let buckets: Vec<String> = aws
        .s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(buckets, vec!["someone-elses-bucket".to_string()]);
    let key = aws
        .kms
        .describe_key()
        .key_id(&key_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.key_metadata().unwrap().key_state().map(|s| s.as_str()),
        Some("PendingDeletion")
    );
    let aliases = aws.kms.list_aliases().send().await.unwrap();
    assert!(!aliases
        .aliases()
        .iter()
        .any(|a| a.alias_name() == Some("alias/dev-wandb")));
    let foreign = aws
        .kms
        .describe_key()
        .key_id(&foreign_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign
            .key_metadata()
            .unwrap()
            .key_state()
            .map(|s| s.as_str()),
        Some("Enabled")
    );
    let d = aws
        .secrets
        .describe_secret()
        .secret_id("wbstack/dev/mysql-master")
        .send()
        .await
        .unwrap();
    assert!(
        d.deleted_date().is_some(),
        "the secret is scheduled for deletion with its recovery window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_with_our_name_that_is_not_ours_is_refused() {
    let moto = Moto::start();
    let aws = moto.aws("dev").await;
    aws.s3
        .create_bucket()
        .bucket("dev-wandb-artifacts")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (j, st) = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let (eng, _) = engine();
    let r = eng
        .up(
            &graph(&aws, "dev-wandb-artifacts"),
            &j,
            st,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    match &r.step("aws.bucket").unwrap().outcome {
        StepOutcome::Failed { error } => assert!(
            error.contains("exists and is not owned by environment dev"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    // Nothing was written to it.
    assert!(aws
        .s3
        .get_bucket_tagging()
        .bucket("dev-wandb-artifacts")
        .send()
        .await
        .is_err());
    drop(j);

    // When the plan adopts it (spec.aws.adopt: [aws.bucket]), it is used as it is, recorded as
    // adopted, and `down` leaves it while removing what the environment made.
    let adopting = aws.clone().adopting(["aws.bucket"]);
    let (j, st) = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let g = graph(&adopting, "dev-wandb-artifacts");
    let r = eng.up(&g, &j, st, CancellationToken::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());
    assert_eq!(r.step("aws.bucket").unwrap().outcome, StepOutcome::Adopted);
    assert!(
        aws.s3
            .get_bucket_tagging()
            .bucket("dev-wandb-artifacts")
            .send()
            .await
            .is_err(),
        "an adopted bucket is not changed"
    );
    drop(j);
    let (j, st) = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let r = eng
        .down(&g, &j, st, DownOptions::default(), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());
    let buckets = aws.s3.list_buckets().send().await.unwrap();
    assert_eq!(buckets.buckets().len(), 1, "the adopted bucket stays");
    let alias = aws
        .kms
        .describe_key()
        .key_id("alias/dev-wandb")
        .send()
        .await;
    assert!(alias.is_err(), "the key this environment made is gone");
}

/// A teardown cut off between the key's two calls is finished by the next one, at either cut:
/// after the deletion was scheduled (the alias still there), and, as an earlier release did the
/// calls the other way round, after the alias went (the key found by its recorded id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_cut_off_between_the_keys_two_calls_is_finished_by_the_next() {
    let moto = Moto::start();
    let aws = moto.aws("dev").await;
    let g = kms_only(&aws);
    for cut_after_alias in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (eng, _log) = engine();
        let (j, st) = Journal::open(&path).unwrap();
        let r = eng.up(&g, &j, st, CancellationToken::new()).await.unwrap();
        assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());
        let key_id = r.state.steps[&"aws.kms".into()].outputs.as_ref().unwrap()["key_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The first call of the cut-off teardown, made by hand.
        if cut_after_alias {
            aws.kms
                .delete_alias()
                .alias_name("alias/dev-wandb")
                .send()
                .await
                .unwrap();
        } else {
            aws.kms
                .schedule_key_deletion()
                .key_id(&key_id)
                .pending_window_in_days(7)
                .send()
                .await
                .unwrap();
        }
        drop(j);
        let (j, st) = Journal::open(&path).unwrap();
        let r = eng
            .down(&g, &j, st, DownOptions::default(), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());
        let key = aws.kms.describe_key().key_id(&key_id).send().await.unwrap();
        assert_eq!(
            key.key_metadata().unwrap().key_state().map(|s| s.as_str()),
            Some("PendingDeletion"),
            "cut after the alias: {cut_after_alias}"
        );
        let aliases = aws.kms.list_aliases().send().await.unwrap();
        assert!(!aliases
            .aliases()
            .iter()
            .any(|a| a.alias_name() == Some("alias/dev-wandb")));
    }
}

/// KMS made the key but its answer was cut: the SDK does not send CreateKey again by itself
/// (it has no idempotency token), and the engine's retry finds the key by its tags. One key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_create_key_does_not_make_a_second_key() {
    let moto = Moto::start();
    let faults = wbstack_test_support::moto::faults::Faults::start(&moto.url, 0.0, 0);
    faults.next("CreateKey", wbstack_test_support::moto::faults::Fault::Cut);
    let settings = wbstack_aws::AwsSettings {
        endpoint: Some(faults.url.clone()),
        ..moto.settings()
    };
    let aws = wbstack_aws::Aws::connect(&settings, "dev").await.unwrap();
    let g = kms_only(&aws);
    let dir = tempfile::tempdir().unwrap();
    let (j, st) = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let (eng, _log) = engine();
    let r = eng.up(&g, &j, st, CancellationToken::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());
    let hit: Vec<_> = faults.injected();
    assert_eq!(hit.len(), 1, "the cut happened: {hit:?}");
    let direct = moto.aws("dev").await;
    let keys = direct.kms.list_keys().send().await.unwrap();
    assert_eq!(keys.keys().len(), 1, "{keys:?}");
}

/// EC2 made the stores' security group but its answer was cut: the retry is told the name is
/// taken, finds its own group by this environment's tags, and finishes it. One group, with only
/// the planned rule and no egress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_create_security_group_finishes_the_group_it_made() {
    use wbstack_test_support::moto::faults::{Fault, Faults};
    let moto = Moto::start();
    let direct = moto.aws("dev").await;
    let subnets = direct.ec2.describe_subnets().send().await.unwrap();
    let subnet = subnets.subnets()[0].subnet_id().unwrap().to_owned();
    let groups = direct.ec2.describe_security_groups().send().await.unwrap();
    let cluster = groups.security_groups()[0].group_id().unwrap().to_owned();
    let faults = Faults::start(&moto.url, 0.0, 0);
    faults.next("CreateSecurityGroup", Fault::Cut);
    let settings = wbstack_aws::AwsSettings {
        endpoint: Some(faults.url.clone()),
        ..moto.settings()
    };
    let aws = wbstack_aws::Aws::connect(&settings, "dev").await.unwrap();
    let spec = wbstack_plan::SecurityGroup {
        name: "wbstack-dev-data".into(),
        description: "the stores of dev".into(),
        subnet,
        allow_from: vec![cluster],
        ports: vec![wbstack_plan::DataPort {
            port: 3306,
            what: "MySQL".into(),
        }],
    };
    let step = wbstack_aws::SecurityGroupStep::new(aws, "aws.security-group", spec);
    let g = Graph::new(vec![StepSpec::new(
        "aws.security-group",
        &[],
        Arc::new(step),
    )])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (j, st) = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let (eng, _log) = engine();
    let r = eng.up(&g, &j, st, CancellationToken::new()).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.first_failure());
    assert_eq!(faults.injected().len(), 1, "the cut happened");
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("group-name")
        .values("wbstack-dev-data")
        .build();
    let out = direct
        .ec2
        .describe_security_groups()
        .filters(filter)
        .send()
        .await
        .unwrap();
    let [group] = out.security_groups() else {
        panic!("exactly one group: {out:?}");
    };
    let ingress = group.ip_permissions();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(ingress[0].from_port(), Some(3306));
    assert!(group.ip_permissions_egress().is_empty(), "{group:?}");
}
