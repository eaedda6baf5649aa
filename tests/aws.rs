//! The combined binary (kube and the AWS SDK sharing one TLS backend) against moto and the
//! emulated cluster: a PoC with its artifacts in an S3 bucket encrypted with a KMS key.

use std::sync::atomic::Ordering;
use wbstack_test_support::moto;
use wbstack_test_support::on_both;
use wbstack_test_support::{text, Back, Env, Exited};

/// The PoC with its artifacts in an S3 bucket (`bucket` adds settings to `spec.bucket`),
/// written as `s3.yaml`, and moto.
fn poc_with_a_bucket(bucket: &str) -> (Env, moto::Moto) {
    let env = Env::new(100);
    let moto = moto::Moto::start();
    let plan = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap().replace(
        "  mysql:\n    mode: in-cluster\n",
        &format!("  mysql:\n    mode: in-cluster\n  bucket:\n    mode: s3\n{bucket}  aws:\n    region: us-west-2\n    secretRecoveryDays: 0\n"),
    );
    std::fs::write(env.dir.path().join("s3.yaml"), plan).unwrap();
    (env, moto)
}

/// A command against moto in us-west-2.
fn on_moto(env: &Env, moto: &moto::Moto, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd(args);
    moto::Moto::point(&moto.url, &mut c);
    c.env("AWS_REGION", "us-west-2");
    c.output().unwrap()
}

#[test]
fn poc_with_an_s3_bucket_comes_up_reruns_idle_and_goes_away() {
    let (env, moto) = poc_with_a_bucket("    versioning: true\n");
    let run = |args: &[&str]| on_moto(&env, &moto, args);
    run(&["up", "--plan", "s3.yaml"]).succeeded();
    let bucket = env.kubectl(&["get", "wandb", "wandb-dev", "-n", "wandb", "-o", "jsonpath={.spec.values.global.defaultBucket.name} {.spec.values.global.defaultBucket.region} {.spec.values.global.defaultBucket.kmsKey}"]);
    let parts: Vec<&str> = bucket.split(' ').collect();
    assert_eq!(parts[0], "wandb-dev-wandb-artifacts");
    assert_eq!(parts[1], "us-west-2");
    assert!(
        parts[2].starts_with("arn:aws:kms:us-west-2:"),
        "the bound KMS key ARN: {bucket}"
    );
    let out = run(&["up", "--plan", "s3.yaml", "--output", "json"]);
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["report"]["stats"]["apply_calls"], 0, "{v}");
    run(&["down", "--env", "wandb-dev"]).succeeded();
    let buckets = moto.raw_get("/");
    assert!(!buckets.contains("wandb-dev-wandb-artifacts"), "{buckets}");
}

fn the_production_pattern_end_to_end_against_moto(back: Back) {
    let env = Env::on(back, 100);
    let moto = moto::Moto::start();
    let recorder = moto::Recorder::start(&moto);
    let prod = unprotected_production(&env, &moto);
    let run = |args: &[&str]| via(&env, &recorder.url, args);
    // The first run logs at the highest verbosity: every library at trace level.
    let out = run(&["up", "--plan", &prod, "-vvv"]).succeeded();
    let awaited = env.release_workloads("wandb", "wandb-prod");
    assert!(
        awaited.contains(&"Deployment/wandb-prod-app-bc".to_owned()),
        "{awaited:?}"
    );
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    // `output` names the endpoints and identifiers, and the passwords only by reference.
    let o = run(&["output", "--env", "wandb-prod", "--output", "json"]).succeeded();
    let o: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        o["steps"]["aws.kms"]["arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:kms:")),
        "{o}"
    );
    assert_eq!(
        o["steps"]["aws.bucket"]["name"], "wandb-prod-artifacts",
        "{o}"
    );
    assert!(o["steps"]["aws.mysql"]["endpoint"].is_string(), "{o}");
    assert!(
        o["secrets"].as_array().unwrap().iter().any(|s| s["secret"]
            .as_str()
            .unwrap()
            .starts_with("aws-secretsmanager:")),
        "{o}"
    );
    for expected in [
        "wbstack_aws::calls",
        "operation=CreateDBCluster",
        "wbstack_k8s::calls",
        "wbstack_engine::journal",
        "TRACE aws_smithy_runtime",
    ] {
        assert!(logs.contains(expected), "no {expected:?} in the trace logs");
    }
    // The resource points at the AWS data stores, by the secrets wbstack made.
    let v = env.kubectl(&["get", "wandb", "wandb-prod", "-n", "wandb", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    let g = &v["spec"]["values"]["global"];
    assert!(
        g["mysql"]["host"].as_str().unwrap().contains("dev")
            || g["mysql"]["host"]
                .as_str()
                .unwrap()
                .contains("wandb-prod-mysql"),
        "{}",
        g["mysql"]
    );
    assert_eq!(g["mysql"]["passwordSecret"]["name"], "wbstack-mysql");
    assert_eq!(g["redis"]["params"]["tls"], true);
    assert!(!g["redis"]["host"].as_str().unwrap().is_empty());
    assert!(g["defaultBucket"]["kmsKey"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:kms:us-west-2:"));
    // The Kubernetes Secrets hold exactly what Secrets Manager holds, and nothing else does.
    let mysql_b64 = env.kubectl(&[
        "get",
        "secret",
        "wbstack-mysql",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.data.MYSQL_PASSWORD}",
    ]);
    assert!(!mysql_b64.is_empty());
    let journal =
        std::fs::read_to_string(env.dir.path().join(".wbstack/wandb-prod/journal.jsonl")).unwrap();
    assert!(!journal.contains(&mysql_b64));
    assert!(!text(&out).contains(&mysql_b64));
    // Neither Secrets Manager value appears in the journal, the events or the output.
    let values = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let aws = moto.aws("wandb-prod").await;
        let mut v = Vec::new();
        for id in [
            "wbstack/wandb-prod/mysql-master",
            "wbstack/wandb-prod/redis-auth",
        ] {
            v.push(
                aws.secrets
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .unwrap()
                    .secret_string()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    });
    let events = run(&["status", "--env", "wandb-prod", "--output", "json"]);
    let mut forms = Vec::new();
    for v in &values {
        use base64::Engine as _;
        forms.push(base64::engine::general_purpose::STANDARD.encode(v));
    }
    for v in forms
        .iter()
        .chain([wbstack_test_support::LICENSE.to_owned()].iter())
    {
        assert!(!logs.contains(v.as_str()), "a secret is in the trace logs");
        assert!(!journal.contains(v.as_str()), "a secret is in the journal");
    }
    eprintln!(
        "trace logs: {} bytes, {} lines",
        logs.len(),
        logs.lines().count()
    );
    assert!(
        logs.len() > 100_000,
        "trace logs are there to scan: {} bytes",
        logs.len()
    );
    for v in &values {
        assert!(
            !logs.contains(v.as_str()),
            "a secret value is in the trace logs"
        );
        assert!(
            !journal.contains(v.as_str()),
            "a secret value is in the journal"
        );
        assert!(
            !text(&out).contains(v.as_str()) && !text(&events).contains(v.as_str()),
            "a secret value is in the output"
        );
    }
    assert!(
        recorder.ops().iter().any(|o| o == "CreateDBCluster"),
        "the recorder sees wbstack's calls"
    );
    // A re-run makes no mutating AWS call and at most one read per resource, counted by the
    // recording proxy in front of moto.
    recorder.clear();
    let k8s_before = env.mutations();
    let out = run(&["up", "--plan", &prod, "--output", "json"]);
    assert_eq!(
        env.mutations(),
        k8s_before,
        "no Kubernetes mutation on a re-run"
    );
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let r: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(r["report"]["stats"]["apply_calls"], 0, "{r}");
    assert_eq!(
        r["report"]["stats"]["unchanged"], r["report"]["stats"]["steps"],
        "{r}"
    );
    let ops = recorder.ops();
    let mutations: Vec<&String> = ops.iter().filter(|o| moto::mutating(o)).collect();
    assert!(mutations.is_empty(), "{mutations:?}");
    // Who is calling (up's preflight), KMS key with its rotation and policy, bucket with its
    // public-access block, encryption, policy, CORS and versioning, DB subnet group, 2
    // parameter groups, 2 secrets, cluster + 2 instances, cache subnet group, replication group
    // and the engine version of its first member, the pods' IAM role and its policy, the
    // values set on the two parameter groups, the alarms (one listing) and the stores' security
    // group (one listing): 27 reads.
    eprintln!(
        "converged re-run: {} AWS reads, 0 mutations: {ops:?}",
        ops.len()
    );
    assert!(
        ops.len() <= 27,
        "{} reads for 27 settings: {ops:?}",
        ops.len()
    );
    // Teardown deletes what is ours, keeping a final snapshot of the database and of the cache
    // and saying where (the proxy answers as AWS does where moto keeps a deleted replication
    // group `deleting` forever and ignores its final snapshot).
    let out = run(&["down", "--env", "wandb-prod", "--timeout", "60"]).succeeded();
    for kept in [
        "keeping a final snapshot wandb-prod-redis-final-",
        "keeping a final snapshot wandb-prod-mysql-final-",
    ] {
        assert!(text(&out).contains(kept), "{kept}: {}", text(&out));
    }
    assert!(
        text(&out).contains("it encrypts the snapshots wandb-prod-mysql-final-"),
        "{}",
        text(&out)
    );
    let redis_kept = moto.caches.final_snapshots();
    assert_eq!(redis_kept.len(), 1, "{redis_kept:?}");
    let ops = recorder.ops();
    for op in [
        "DeleteDBInstance",
        "DeleteDBCluster",
        "DeleteDBSubnetGroup",
        "DeleteDBParameterGroup",
        "DeleteDBClusterParameterGroup",
        "DeleteSecret",
        "DeleteReplicationGroup",
        "DeleteCacheSubnetGroup",
        "DeleteRolePolicy",
        "DeleteRole",
        "s3:DELETE",
    ] {
        assert!(ops.iter().any(|o| o == op), "{op} missing from {ops:?}");
    }
    // Listed in moto independently: nothing owned is left but the snapshots kept and the key
    // that encrypts them.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let aws = moto.aws("wandb-prod").await;
        assert_no_rds_left(&aws).await;
        let secrets = aws.secrets.list_secrets().send().await.unwrap();
        assert!(secrets.secret_list().is_empty(), "{secrets:?}");
        let buckets = aws.s3.list_buckets().send().await.unwrap();
        assert!(buckets.buckets().is_empty(), "{buckets:?}");
        let rg = aws
            .elasticache
            .describe_replication_groups()
            .send()
            .await
            .unwrap();
        assert!(rg.replication_groups().is_empty(), "{rg:?}");
        let snaps = aws.elasticache.describe_snapshots().send().await.unwrap();
        let names: Vec<&str> = snaps
            .snapshots()
            .iter()
            .filter_map(|s| s.snapshot_name())
            .collect();
        assert_eq!(names, [redis_kept[0].as_str()]);
        let db = aws
            .rds
            .describe_db_cluster_snapshots()
            .send()
            .await
            .unwrap();
        // The key that encrypts the kept snapshot is kept with it, and the run said so.
        let keys = aws.kms.list_keys().send().await.unwrap();
        assert_eq!(keys.keys().len(), 1, "{keys:?}");
        let key = aws
            .kms
            .describe_key()
            .key_id(keys.keys()[0].key_id().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            key.key_metadata().unwrap().key_state().map(|s| s.as_str()),
            Some("Enabled")
        );
        let manual: Vec<&str> = db
            .db_cluster_snapshots()
            .iter()
            .filter(|s| s.snapshot_type() == Some("manual"))
            .filter_map(|s| s.db_cluster_snapshot_identifier())
            .collect();
        assert!(
            manual.len() == 1 && manual[0].starts_with("wandb-prod-mysql-final-"),
            "{db:?}"
        );
    });
    let left: Vec<_> = env
        .objects()
        .into_iter()
        .filter(|(_, ns, _)| ns == "wandb")
        .collect();
    assert!(
        left.iter()
            .all(|(k, _, _)| k != "WeightsAndBiases" && k != "StatefulSet"),
        "{left:?}"
    );
}

fn production_killed_mid_run_resumes_with_exactly_one_of_each_resource(back: Back) {
    let env = Env::on(back, 300);
    let moto = moto::Moto::start();
    let prod = unprotected_production(&env, &moto);
    let cmd = |args: &[&str]| {
        let mut c = env.cmd(args);
        moto::Moto::point(&moto.url, &mut c);
        c
    };
    let mut killed = 0;
    for i in 0..5u64 {
        let mut child = cmd(&["up", "--plan", &prod]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60 + i * 170));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(killed >= 3, "only {killed} runs were killed part-way");
    cmd(&["resume", "--env", "wandb-prod", "--timeout", "120"])
        .output()
        .unwrap()
        .succeeded();
    // Counted in moto directly.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let aws = moto.aws("wandb-prod").await;
        let clusters = aws.rds.describe_db_clusters().send().await.unwrap();
        assert_eq!(clusters.db_clusters().len(), 1);
        // The error and slow query logs go to CloudWatch Logs (the plan's default).
        assert_eq!(
            clusters.db_clusters()[0].enabled_cloudwatch_logs_exports(),
            ["error", "slowquery"]
        );
        let instances = aws.rds.describe_db_instances().send().await.unwrap();
        assert_eq!(instances.db_instances().len(), 2);
        let groups = aws
            .elasticache
            .describe_replication_groups()
            .send()
            .await
            .unwrap();
        assert_eq!(groups.replication_groups().len(), 1);
        let buckets = aws.s3.list_buckets().send().await.unwrap();
        assert_eq!(buckets.buckets().len(), 1);
        let secrets = aws.secrets.list_secrets().send().await.unwrap();
        assert_eq!(secrets.secret_list().len(), 2);
        let keys = aws.kms.list_keys().send().await.unwrap();
        assert_eq!(keys.keys().len(), 1, "one KMS key: none made twice");
    });
}

#[test]
fn down_leaves_nothing_owned_in_aws_and_nothing_of_anyone_else_is_touched() {
    teardown_leaves_nothing_owned(Lost::Nothing);
}

/// The state directory is lost after `up`: `down --plan` finds the environment's resources by
/// their tags and labels, and removes exactly those.
#[test]
fn with_its_state_lost_down_finds_what_the_environment_owns_by_tags_and_labels() {
    teardown_leaves_nothing_owned(Lost::Local);
}

/// The same with the state in S3 (the plan's `spec.state`), deleted from the bucket after `up`:
/// the state bucket itself is neither touched by `down` nor kept anything on this machine.
#[test]
fn with_its_remote_state_lost_down_finds_what_the_environment_owns_and_spares_the_state_bucket() {
    teardown_leaves_nothing_owned(Lost::Remote);
}

/// The state directory is lost after `up`, and `up` runs again before `down`: what carries the
/// environment's tags and labels is recorded as its own (never as adopted), so a plain `down`
/// removes it all, and the resource's finalizer is run by the operator before the operator goes.
#[test]
fn with_its_state_lost_up_again_records_its_own_resources_as_its_own_and_down_removes_them() {
    teardown_leaves_nothing_owned(Lost::LocalThenUp);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lost {
    Nothing,
    Local,
    Remote,
    LocalThenUp,
}

fn teardown_leaves_nothing_owned(lost: Lost) {
    // The production plan with Redis in the cluster: moto never finishes deleting an
    // ElastiCache group (see the test above), so this is the teardown that can finish there.
    let env = Env::new(100);
    let moto = moto::Moto::start();
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace(
            "  redis:\n    mode: elasticache\n",
            "  redis:\n    mode: in-cluster\n",
        );
    let plan = if lost == Lost::Remote {
        moto.create_bucket("team-state");
        plan.replacen("spec:\n", "spec:\n  state: s3://team-state/wbstack\n", 1)
    } else {
        plan
    };
    std::fs::write(
        env.dir.path().join("prod.yaml"),
        moto.production_plan(&plan),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        moto::Moto::point(&moto.url, &mut c);
        c.output().unwrap()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Someone else's bucket and key, made before wbstack runs.
    let foreign_key = rt.block_on(async {
        let aws = moto.aws("wandb-prod").await;
        moto::someone_elses_bucket_and_key(&aws).await
    });
    run(&["up", "--plan", "prod.yaml"]).succeeded();
    // Artifacts land in the versioned bucket: several versions and delete markers per key.
    rt.block_on(async {
        let aws = moto.aws("wandb-prod").await;
        moto::versions_and_delete_markers(&aws, "wandb-prod-artifacts", 4).await;
    });
    let target: [&str; 2] = match lost {
        Lost::Nothing => ["--env", "wandb-prod"],
        Lost::Local => {
            std::fs::remove_dir_all(env.dir.path().join(".wbstack")).unwrap();
            ["--plan", "prod.yaml"]
        }
        Lost::Remote => {
            assert!(!env.dir.path().join(".wbstack").exists());
            let deleted = rt.block_on(moto.delete_keys("team-state", "wbstack/wandb-prod/"));
            assert!(deleted > 2, "{deleted} keys");
            ["--plan", "prod.yaml"]
        }
        Lost::LocalThenUp => {
            std::fs::remove_dir_all(env.dir.path().join(".wbstack")).unwrap();
            let out = run(&["up", "--plan", "prod.yaml", "--output", "json"]).succeeded();
            let last = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap()
                .to_owned();
            let v: serde_json::Value = serde_json::from_str(&last).unwrap();
            assert_eq!(v["report"]["stats"]["adopted"], 0, "{v}");
            assert_eq!(v["report"]["stats"]["created"], 0, "{v}");
            let steps = v["report"]["steps"].as_array().unwrap();
            assert!(steps.iter().all(|s| s["outcome"] != "adopted"), "{steps:?}");
            ["--env", "wandb-prod"]
        }
    };
    // The plan is protected (and so is its database): a plain `down` is refused, touching
    // nothing; `--force` goes ahead and lifts the database's deletion protection on the way.
    run(&["down", target[0], target[1]]).exited(5);
    let protected = rt.block_on(async {
        let aws = moto.aws("wandb-prod").await;
        let c = aws.rds.describe_db_clusters().send().await.unwrap();
        c.db_clusters()[0].deletion_protection()
    });
    assert_eq!(protected, Some(true));
    // Without the final snapshot (which would keep the key that encrypts it): nothing owned
    // is left.
    let out = run(&[
        "down",
        target[0],
        target[1],
        "--force",
        "--skip-final-snapshot",
    ])
    .succeeded();
    if matches!(lost, Lost::Local | Lost::Remote) {
        assert!(
            text(&out).contains("no journal: finding what it owns"),
            "{}",
            text(&out)
        );
    }
    // Listed in moto, independently of wbstack's records.
    rt.block_on(async {
        let aws = moto.aws("wandb-prod").await;
        assert_no_rds_left(&aws).await;
        let secrets = aws.secrets.list_secrets().send().await.unwrap();
        assert!(secrets.secret_list().is_empty(), "{secrets:?}");
        let buckets = aws.s3.list_buckets().send().await.unwrap();
        let mut names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
        names.sort();
        let expected: &[&str] = match lost {
            Lost::Remote => &["someone-elses-bucket", "team-state"],
            _ => &["someone-elses-bucket"],
        };
        assert_eq!(names, expected);
        let aliases = aws.kms.list_aliases().send().await.unwrap();
        assert!(
            aliases
                .aliases()
                .iter()
                .all(|a| !a.alias_name().unwrap_or("").contains("wandb-prod")),
            "{aliases:?}"
        );
        let keys = aws.kms.list_keys().send().await.unwrap();
        assert_eq!(keys.keys().len(), 2);
        for k in keys.keys() {
            let id = k.key_id().unwrap();
            let d = aws.kms.describe_key().key_id(id).send().await.unwrap();
            let state = d
                .key_metadata()
                .unwrap()
                .key_state()
                .map(|s| s.as_str().to_owned());
            if id == foreign_key {
                assert_eq!(state.as_deref(), Some("Enabled"), "someone else's key");
            } else {
                assert_eq!(state.as_deref(), Some("PendingDeletion"), "ours");
            }
        }
    });
    // And on the cluster side, only what was there before wbstack.
    let left: Vec<_> = env
        .objects()
        .into_iter()
        .filter(|(k, ns, _)| ns == "wandb" || k == "Namespace" && ns.is_empty())
        .collect();
    assert!(
        left.iter().all(|(k, _, _)| k != "WeightsAndBiases"
            && k != "StatefulSet"
            && k != "Secret"
            && k != "Deployment"),
        "{left:?}"
    );
}

/// No DB cluster, instance or subnet group, and no parameter group of `wandb-prod`, is left in
/// moto (listed through the SDK, independently of wbstack's records).
async fn assert_no_rds_left(aws: &wbstack_aws::Aws) {
    let clusters = aws.rds.describe_db_clusters().send().await.unwrap();
    assert!(clusters.db_clusters().is_empty(), "{clusters:?}");
    let instances = aws.rds.describe_db_instances().send().await.unwrap();
    assert!(instances.db_instances().is_empty(), "{instances:?}");
    let groups = aws.rds.describe_db_subnet_groups().send().await.unwrap();
    assert!(groups.db_subnet_groups().is_empty(), "{groups:?}");
    let params = aws.rds.describe_db_parameter_groups().send().await.unwrap();
    assert!(
        params.db_parameter_groups().iter().all(|p| !p
            .db_parameter_group_name()
            .unwrap_or("")
            .contains("wandb-prod")),
        "{params:?}"
    );
    let cparams = aws
        .rds
        .describe_db_cluster_parameter_groups()
        .send()
        .await
        .unwrap();
    assert!(
        cparams.db_cluster_parameter_groups().iter().all(|p| !p
            .db_cluster_parameter_group_name()
            .unwrap_or("")
            .contains("wandb-prod")),
        "{cparams:?}"
    );
}

on_both!(
    the_production_pattern_end_to_end_against_moto,
    production_killed_mid_run_resumes_with_exactly_one_of_each_resource,
);

/// A teardown without a journal that cannot see a resource stops before destroying anything and
/// names what it could not see; once it can, it also finds a key whose alias is gone (by its
/// tags, not its name) and schedules its deletion.
#[test]
fn a_discovery_that_cannot_see_stops_naming_it_and_a_key_without_its_alias_is_found_by_tags() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let recorder = moto::Recorder::start(&moto);
    let plan = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap().replace(
        "  mysql:\n    mode: in-cluster\n",
        "  mysql:\n    mode: in-cluster\n  bucket:\n    mode: s3\n  aws:\n    region: us-west-2\n    secretRecoveryDays: 0\n",
    );
    let plan = env.plan_from("s3.yaml", &plan);
    let run = |args: &[&str]| via(&env, &recorder.url, args);
    run(&["up", "--plan", &plan]).succeeded();
    std::fs::remove_dir_all(env.dir.path().join(".wbstack")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-dev"));
    let (alias, key_id) = rt.block_on(async {
        let a = aws.kms.list_aliases().send().await.unwrap();
        let a = a
            .aliases()
            .iter()
            .find(|a| a.alias_name().unwrap_or("").contains("wandb-dev"))
            .unwrap()
            .clone();
        (
            a.alias_name().unwrap().to_owned(),
            a.target_key_id().unwrap().to_owned(),
        )
    });
    rt.block_on(aws.kms.delete_alias().alias_name(&alias).send())
        .unwrap();

    recorder.deny(&["ListKeys"]);
    recorder.clear();
    let out = run(&["down", "--plan", &plan]).exited(1);
    assert!(
        text(&out).contains("discovery cannot see `aws.kms`")
            && text(&out).contains("AccessDenied"),
        "{}",
        text(&out)
    );
    let mutations: Vec<_> = recorder
        .ops()
        .into_iter()
        .filter(|o| moto::mutating(o))
        .collect();
    assert!(mutations.is_empty(), "{mutations:?}");
    assert!(env
        .objects()
        .iter()
        .any(|(k, _, _)| k == "WeightsAndBiases"));

    recorder.deny(&[]);
    let out = run(&["down", "--plan", &plan]).succeeded();
    assert!(
        text(&out).contains("continuing the discovery the last teardown began"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("found by its marks, not its name"),
        "{}",
        text(&out)
    );
    rt.block_on(async {
        let d = aws.kms.describe_key().key_id(&key_id).send().await.unwrap();
        let state = d
            .key_metadata()
            .unwrap()
            .key_state()
            .unwrap()
            .as_str()
            .to_owned();
        assert_eq!(state, "PendingDeletion");
        let buckets = aws.s3.list_buckets().send().await.unwrap();
        assert!(buckets.buckets().is_empty(), "{buckets:?}");
    });
    assert!(env
        .objects()
        .iter()
        .all(|(k, _, _)| k != "WeightsAndBiases"));
}

/// Day two on the production plan: size small, then medium, then large, then one reader fewer,
/// each shown by `plan` field by field and made in place by `up` (the same cluster, cache, bucket
/// and key); a change only a new database could have is shown as a replacement and refused.
/// ElastiCache's changes are answered by the proxy in front of moto (see
/// `crates/aws/tests/common/elasticache.rs`), RDS's by moto itself.
#[test]
fn resizing_production_changes_the_database_in_place_and_a_replacement_needs_replace() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let recorder = moto::Recorder::start(&moto);
    let base = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "")
        .replace("    backupRetentionDays: 14\n", "");
    let base = moto.production_plan(&base);
    let write = |size: &str, extra: &str| {
        let text = base
            .replace("  size: large\n", &format!("  size: {size}\n"))
            .replace(
                "    user: wandb\n  redis:",
                &format!("    user: wandb\n{extra}  redis:"),
            );
        env.plan_from("prod.yaml", &text)
    };
    let run = |args: &[&str]| via(&env, &recorder.url, args);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    let live = || {
        rt.block_on(async {
            let c = aws.rds.describe_db_clusters().send().await.unwrap();
            let c = c.db_clusters()[0].clone();
            let classes = member_classes(&aws, false).await;
            (
                c.db_cluster_arn().unwrap().to_owned(),
                c.backup_retention_period().unwrap(),
                classes,
            )
        })
    };
    let plan = write("small", "");
    run(&["up", "--plan", &plan]).succeeded();
    let (arn, retention, classes) = live();
    assert_eq!(
        (retention, classes.clone()),
        (7, vec!["wandb-prod-mysql-1=db.r6g.large".to_owned()])
    );
    let cache = || {
        rt.block_on(async {
            let g = aws
                .elasticache
                .describe_replication_groups()
                .send()
                .await
                .unwrap();
            let g = g.replication_groups()[0].clone();
            (
                g.arn().unwrap().to_owned(),
                g.cache_node_type().unwrap().to_owned(),
                g.member_clusters().len(),
                g.multi_az().map(|m| m.as_str().to_owned()),
            )
        })
    };
    let (cache_arn, node_type, nodes, _) = cache();
    assert_eq!((node_type.as_str(), nodes), ("cache.m6g.large", 1));
    let outputs = |out: &std::process::Output| {
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap())
                .unwrap();
        (
            v["steps"]["aws.bucket"].clone(),
            v["steps"]["aws.kms"].clone(),
        )
    };
    let before = outputs(&run(&["output", "--env", "wandb-prod", "--output", "json"]));

    let plan = write("medium", "");
    let out = run(&["plan", "--plan", &plan]).succeeded();
    let shown = text(&out);
    for line in [
        "~ instance_class: db.r6g.large -> db.r6g.xlarge",
        "~ instances: 1 -> 2",
        "~ backup_retention_days: 7 -> 14",
    ] {
        assert!(shown.contains(line), "{line} not in {shown}");
    }
    let out = run(&["plan", "--plan", &plan, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let mysql = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "aws.mysql")
        .unwrap();
    assert_eq!(mysql["action"], "update", "{mysql}");
    assert_eq!(mysql["changes"][0]["field"], "instance_class");
    assert_eq!(
        run(&["plan", "--plan", &plan, "--detailed-exitcode"])
            .status
            .code(),
        Some(2)
    );
    assert!(
        shown.contains("~ nodes: 1 -> 2") && shown.contains("~ multi_az: false -> true"),
        "{shown}"
    );
    recorder.clear();
    let out = run(&["up", "--plan", &plan]).succeeded();
    assert!(
        text(&out).contains("aws.mysql: changing instance_class: db.r6g.large -> db.r6g.xlarge"),
        "{}",
        text(&out)
    );
    let ops = recorder.ops();
    for op in [
        "IncreaseReplicaCount",
        "ModifyReplicationGroup",
        "ModifyDBCluster",
        "ModifyDBInstance",
        "CreateDBInstance",
    ] {
        assert!(ops.iter().any(|o| o == op), "{op} not in {ops:?}");
    }
    assert_eq!(
        cache(),
        (
            cache_arn.clone(),
            "cache.m6g.large".to_owned(),
            2,
            Some("enabled".to_owned())
        )
    );
    assert_eq!(
        live(),
        (
            arn.clone(),
            14,
            vec![
                "wandb-prod-mysql-1=db.r6g.xlarge".to_owned(),
                "wandb-prod-mysql-2=db.r6g.xlarge".to_owned()
            ]
        )
    );
    assert_eq!(
        run(&["plan", "--plan", &plan, "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );

    let plan = write("large", "");
    run(&["up", "--plan", &plan]).succeeded();
    let (a, r, c) = live();
    assert_eq!((a.as_str(), r), (arn.as_str(), 30));
    assert!(c.iter().all(|c| c.ends_with("=db.r6g.2xlarge")), "{c:?}");
    let (a, node_type, nodes, _) = cache();
    assert_eq!(
        (a, node_type.as_str(), nodes),
        (cache_arn.clone(), "cache.m6g.xlarge", 3)
    );

    // One reader fewer, in the maintenance window this time.
    let plan = write(
        "large",
        "    instances: 1\n  aws:\n    applyChanges: maintenance-window\n",
    );
    let plan_text = std::fs::read_to_string(&plan).unwrap();
    // Two `aws:` keys would be invalid: merge the setting into the plan's own.
    let merged = plan_text
        .replacen("  aws:\n    applyChanges: maintenance-window\n", "", 1)
        .replace(
            "  aws:\n    region: us-west-2\n",
            "  aws:\n    region: us-west-2\n    applyChanges: maintenance-window\n",
        );
    std::fs::write(&plan, merged).unwrap();
    let out = run(&["up", "--plan", &plan]).succeeded();
    assert!(
        text(&out).contains("in the maintenance window"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("removing reader wandb-prod-mysql-2"),
        "{}",
        text(&out)
    );
    let (a, _, c) = live();
    assert_eq!(
        (a, c),
        (
            arn.clone(),
            vec!["wandb-prod-mysql-1=db.r6g.2xlarge".to_owned()]
        )
    );
    assert_eq!(
        outputs(&run(&["output", "--env", "wandb-prod", "--output", "json"])),
        before
    );

    // Another database name needs another database: shown, and refused without a change.
    let plan = write("large", "");
    let text_now = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("database: wandb_prod", "database: wandb_other")
        .replace("  mysql:\n", "  mysql:\n    instances: 1\n");
    std::fs::write(&plan, text_now).unwrap();
    let out = run(&["plan", "--plan", &plan]);
    assert!(
        text(&out).contains("replace (refused by up)"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("-/+ database: wandb_prod -> wandb_other (needs a new resource)"),
        "{}",
        text(&out)
    );
    recorder.clear();
    let out = run(&["up", "--plan", &plan]).exited(1);
    assert!(
        text(&out)
            .contains("cannot take these changes in place: database: wandb_prod -> wandb_other"),
        "{}",
        text(&out)
    );
    let mutations: Vec<_> = recorder
        .ops()
        .into_iter()
        .filter(|o| moto::mutating(o))
        .collect();
    assert!(mutations.is_empty(), "{mutations:?}");
    assert_eq!(live().0, arn);

    // Told to, `up` replaces it: the old cluster is deleted and a new one made, with the new
    // name. A step the plan lacks is refused before any request.
    let out = run(&["up", "--plan", &plan, "--replace", "aws.mysqll"]).exited(2);
    assert!(
        text(&out).contains("--replace aws.mysqll: the plan has no such step"),
        "{}",
        text(&out)
    );
    assert!(recorder.ops().iter().all(|o| !moto::mutating(o)));
    // moto names the new cluster's automated snapshot by the minute (`rds:<id>-<yyyy-mm-dd-hh-mm>`)
    // and keeps the deleted cluster's: a cluster made again in the same minute would collide
    // in moto (AWS keeps a deleted cluster's backups apart). Let the minute turn.
    let made = rt.block_on(async {
        let c = aws.rds.describe_db_clusters().send().await.unwrap();
        c.db_clusters()[0].cluster_create_time().unwrap().secs()
    });
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    while now() / 60 == made / 60 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let out = run(&[
        "up",
        "--plan",
        &plan,
        "--replace",
        "aws.mysql",
        "--output",
        "json",
    ])
    .succeeded();
    let report = wbstack_test_support::last_json(&out);
    let mysql = wbstack_test_support::step_report(&report, "aws.mysql");
    assert_eq!(mysql["outcome"], "replaced", "{report}");
    let ops = recorder.ops();
    let at = |op: &str| {
        ops.iter()
            .position(|o| o == op)
            .unwrap_or_else(|| panic!("{op} in {ops:?}"))
    };
    assert!(at("DeleteDBCluster") < at("CreateDBCluster"), "{ops:?}");
    let name = rt.block_on(async {
        let c = aws.rds.describe_db_clusters().send().await.unwrap();
        assert_eq!(c.db_clusters().len(), 1, "one cluster");
        c.db_clusters()[0].database_name().unwrap().to_owned()
    });
    assert_eq!(name, "wandb_other");
    run(&["plan", "--plan", &plan, "--detailed-exitcode"]).succeeded();
}

/// The production plan through a front that fails a fifth of AWS requests (500s, 503s,
/// throttling, slow answers, answers cut after moto did the work): `up`, a re-run and `down`
/// complete, with exactly one of each resource and nothing owned left. At 10% and 30% the `up`
/// is run too and its figures printed.
#[test]
fn production_up_rerun_and_down_complete_while_a_fifth_of_aws_requests_fail() {
    for rate in [0.0, 0.1, 0.3] {
        let (env, moto, faults, prod) = faulted_production(rate);
        let out = faulted(&env, &faults, &["up", "--plan", &prod]);
        let retries = text(&out).matches("retrying").count();
        eprintln!(
            "at {:.0}%: up exit {:?}, {} requests, {} faults injected, {retries} engine retries (the SDK's own are the requests above the 0% count)",
            rate * 100.0,
            out.status.code(),
            faults.requests(),
            faults.injected().len()
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(assert_one_of_each(&moto));
    }
    let (env, moto, faults, prod) = faulted_production(0.2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut figures = Vec::new();
    for (what, args) in [
        ("up", vec!["up", "--plan", prod.as_str()]),
        (
            "re-run",
            vec!["up", "--plan", prod.as_str(), "--output", "json"],
        ),
    ] {
        faults.reset();
        let out = faulted(&env, &faults, &args);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out));
        figures.push(format!(
            "{what}: {} requests, {} faults, {} engine retries",
            faults.requests(),
            faults.injected().len(),
            text(&out).matches("retrying").count()
        ));
        if what == "re-run" {
            let last = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap()
                .to_owned();
            let v: serde_json::Value = serde_json::from_str(&last).unwrap();
            assert_eq!(v["report"]["stats"]["apply_calls"], 0, "{v}");
        }
        rt.block_on(assert_one_of_each(&moto));
    }
    faults.reset();
    let out = faulted(&env, &faults, &["down", "--env", "wandb-prod", "--force"]);
    assert_eq!(out.status.code(), Some(0), "down: {}", text(&out));
    let mut kinds: Vec<_> = faults.injected().into_iter().map(|(_, f)| f).collect();
    kinds.sort();
    kinds.dedup();
    assert!(kinds.len() >= 4, "every kind of fault was met: {kinds:?}");
    figures.push(format!(
        "down: {} requests, {} faults ({kinds:?}), {} engine retries",
        faults.requests(),
        faults.injected().len(),
        text(&out).matches("retrying").count()
    ));
    rt.block_on(assert_nothing_owned_on_aws(&moto));
    eprintln!("at 20%: {}", figures.join("; "));
}

/// Whatever share of AWS requests fails on the way, a permanent error stops the run: with the
/// caller not allowed to create the database cluster (AccessDenied, behind the fault front), `up`
/// ends with exit 1 at 10%, 20% and 30% faults, naming the step, the operation and the cluster,
/// and no database cluster is made.
#[test]
fn a_permanent_error_ends_the_run_naming_the_operation_and_resource_at_any_fault_rate() {
    for rate in [0.1, 0.2, 0.3] {
        let env = Env::new(50);
        let moto = moto::Moto::start();
        let recorder = moto::Recorder::start(&moto);
        recorder.deny(&["CreateDBCluster"]);
        let faults = moto::faults::Faults::start(&recorder.url, rate, 5);
        let prod = production_with_redis_in_cluster(&env, &moto);
        let out = faulted(&env, &faults, &["up", "--plan", &prod]);
        let t = text(&out);
        eprintln!(
            "at {:.0}%: exit {:?}, {} requests, {} faults injected; {}",
            rate * 100.0,
            out.status.code(),
            faults.requests(),
            faults.injected().len(),
            t.lines()
                .find(|l| l.contains("CreateDBCluster"))
                .unwrap_or("")
        );
        assert_eq!(out.status.code(), Some(1), "at {rate}: {t}");
        assert!(
            t.contains(
                "aws.mysql: FAILED: create: CreateDBCluster wandb-prod-mysql failed: AccessDenied"
            ),
            "at {rate}: {t}"
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let clusters = rt.block_on(async {
            let aws = moto.aws("wandb-prod").await;
            aws.rds.describe_db_clusters().send().await.unwrap()
        });
        assert!(clusters.db_clusters().is_empty(), "{clusters:?}");
    }
}

/// The production plan while the cluster misbehaves as kube-apiserver does under load: a fifth
/// of Kubernetes requests answered 500 or 429 (with `Retry-After` and `retryAfterSeconds`), a
/// fifth of updates answered 409 (the object changed meanwhile), every watch stream cut after
/// 300 ms. Then the same with a fifth of AWS requests failing too. Each time `up`, a re-run (no
/// apply call) and `down` complete, with one of each AWS resource after `up` and nothing owned
/// left after `down`, in the cluster or on AWS.
#[test]
fn production_completes_while_the_cluster_fails_and_while_both_fail() {
    let mut figures = Vec::new();
    for aws_rate in [0.0, 0.2] {
        let (env, moto, faults, prod) = faulted_production(aws_rate);
        env.running().set_faults(kube_emulator::Faults {
            error_rate: 0.2,
            conflict_rate: 0.2,
            drop_watches_after_ms: Some(300),
            retry_after_seconds: Some(1),
        });
        let rt = tokio::runtime::Runtime::new().unwrap();
        for (what, args) in [
            ("up", vec!["up", "--plan", prod.as_str()]),
            (
                "re-run",
                vec!["up", "--plan", prod.as_str(), "--output", "json"],
            ),
            ("down", vec!["down", "--env", "wandb-prod", "--force"]),
        ] {
            faults.reset();
            let stats = &env.running().cluster.stats;
            let k8s_before = (env.requests(), stats.injected.load(Ordering::Relaxed));
            let out = faulted(&env, &faults, &args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what} with AWS at {aws_rate}: {}",
                text(&out)
            );
            if what == "re-run" {
                let v = wbstack_test_support::last_json(&out);
                assert_eq!(v["report"]["stats"]["apply_calls"], 0, "{v}");
            }
            if what == "up" {
                rt.block_on(assert_one_of_each(&moto));
            }
            figures.push(format!(
                "AWS {:.0}% {what}: Kubernetes {} requests served and {} answered with a fault; AWS {} requests, {} faults; {} engine retries",
                aws_rate * 100.0,
                env.requests() - k8s_before.0,
                stats.injected.load(Ordering::Relaxed) - k8s_before.1,
                faults.requests(),
                faults.injected().len(),
                text(&out).matches("retrying").count()
            ));
        }
        let left: Vec<_> = env
            .objects()
            .into_iter()
            .filter(|(_, ns, _)| ns == "wandb")
            .collect();
        assert!(left.is_empty(), "left in the namespace: {left:?}");
        assert!(
            !env.objects()
                .iter()
                .any(|(k, _, n)| k == "Namespace" && n == "wandb"),
            "the namespace wbstack made is gone"
        );
        rt.block_on(assert_nothing_owned_on_aws(&moto));
    }
    eprintln!(
        "Kubernetes at 20% (and 20% of updates 409, watches cut at 300 ms):\n  {}",
        figures.join("\n  ")
    );
}

/// The production plan with Redis in the cluster (moto never finishes deleting a replication
/// group), moto behind a fault front at `rate`.
fn faulted_production(rate: f64) -> (Env, moto::Moto, moto::faults::Faults, String) {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let faults = moto::faults::Faults::start(&moto.url, rate, 11);
    let prod = production_with_redis_in_cluster(&env, &moto);
    (env, moto, faults, prod)
}

/// The production plan, unprotected, on `moto`: its file.
fn unprotected_production(env: &Env, moto: &moto::Moto) -> String {
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "");
    env.plan_from("prod.yaml", &moto.production_plan(&plan))
}

/// The production plan, unprotected, with Redis in the cluster, on `moto`: its file.
fn production_with_redis_in_cluster(env: &Env, moto: &moto::Moto) -> String {
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "")
        .replace(
            "  redis:\n    mode: elasticache\n",
            "  redis:\n    mode: in-cluster\n",
        );
    env.plan_from("prod.yaml", &moto.production_plan(&plan))
}

fn faulted(env: &Env, faults: &moto::faults::Faults, args: &[&str]) -> std::process::Output {
    via(env, &faults.url, args)
}

/// A command whose AWS calls go to `url` (moto, or a proxy in front of it).
fn via(env: &Env, url: &str, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd(args);
    moto::Moto::point(url, &mut c);
    c.output().unwrap()
}

/// Enabled KMS keys, listed independently.
async fn enabled_keys(aws: &wbstack_aws::Aws) -> usize {
    let mut n = 0;
    for k in aws.kms.list_keys().send().await.unwrap().keys() {
        let d = aws
            .kms
            .describe_key()
            .key_id(k.key_id().unwrap())
            .send()
            .await
            .unwrap();
        if d.key_metadata().unwrap().key_state().map(|s| s.as_str()) == Some("Enabled") {
            n += 1;
        }
    }
    n
}

/// No duplicate, whatever the faults did: at most one DB cluster, bucket and secret of each
/// name, and at most one enabled key.
/// After a teardown: no database, bucket or secret of the environment is left, and no enabled
/// key but the one that encrypts the final snapshot the teardown kept (one snapshot, one key).
async fn assert_nothing_owned_on_aws(moto: &moto::Moto) {
    let aws = moto.aws("wandb-prod").await;
    assert_no_rds_left(&aws).await;
    let buckets = aws.s3.list_buckets().send().await.unwrap();
    assert!(buckets.buckets().is_empty(), "{buckets:?}");
    let secrets = aws.secrets.list_secrets().send().await.unwrap();
    assert!(secrets.secret_list().is_empty(), "{secrets:?}");
    let kept = aws
        .rds
        .describe_db_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    let kept = kept.db_cluster_snapshots();
    assert_eq!(kept.len(), 1, "one final snapshot: {kept:?}");
    assert_eq!(enabled_keys(&aws).await, 1, "the key of {kept:?}");
}

async fn assert_one_of_each(moto: &moto::Moto) {
    let aws = moto.aws("wandb-prod").await;
    let clusters = aws.rds.describe_db_clusters().send().await.unwrap();
    assert!(clusters.db_clusters().len() <= 1, "{clusters:?}");
    let buckets = aws.s3.list_buckets().send().await.unwrap();
    assert!(buckets.buckets().len() <= 1, "{buckets:?}");
    let secrets = aws.secrets.list_secrets().send().await.unwrap();
    let mut names: Vec<_> = secrets
        .secret_list()
        .iter()
        .filter_map(|s| s.name())
        .collect();
    let all = names.len();
    names.dedup();
    assert_eq!(names.len(), all, "{names:?}");
    assert!(enabled_keys(&aws).await <= 1, "more than one key");
}

/// A database parameter set by hand on wbstack's parameter group is shown by `plan`, field by
/// field, and `up` sets it back (it takes effect at the next reboot, and says so).
#[test]
fn a_hand_edited_database_parameter_is_shown_and_set_back() {
    let (env, moto, faults, prod) = faulted_production(0.0);
    faulted(&env, &faults, &["up", "--plan", &prod]).succeeded();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    let set = |group: &str, name: &str, value: &str, cluster: bool| {
        rt.block_on(async {
            let p = aws_sdk_rds::types::Parameter::builder()
                .parameter_name(name)
                .parameter_value(value)
                .apply_method(aws_sdk_rds::types::ApplyMethod::Immediate)
                .build();
            if cluster {
                aws.rds
                    .modify_db_cluster_parameter_group()
                    .db_cluster_parameter_group_name(group)
                    .parameters(p)
                    .send()
                    .await
                    .unwrap();
            } else {
                aws.rds
                    .modify_db_parameter_group()
                    .db_parameter_group_name(group)
                    .parameters(p)
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let groups = rt.block_on(async {
        let g = aws.rds.describe_db_parameter_groups().send().await.unwrap();
        g.db_parameter_groups()
            .iter()
            .filter_map(|g| g.db_parameter_group_name().map(str::to_owned))
            .filter(|n| n.starts_with("wandb-prod"))
            .collect::<Vec<_>>()
    });
    assert_eq!(groups.len(), 1, "{groups:?}");
    let group = &groups[0];
    set(group, "max_execution_time", "0", false);
    set(&format!("{group}-cluster"), "binlog_format", "MIXED", true);
    let out = faulted(
        &env,
        &faults,
        &["plan", "--plan", &prod, "--detailed-exitcode"],
    )
    .exited(2);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!(
            "~ {group}.max_execution_time: 0 -> 60000 (at the next reboot)"
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "~ {group}-cluster.binlog_format: MIXED -> ROW (at the next reboot)"
        )),
        "{shown}"
    );
    faulted(&env, &faults, &["up", "--plan", &prod]).succeeded();
    faulted(
        &env,
        &faults,
        &["plan", "--plan", &prod, "--detailed-exitcode"],
    )
    .succeeded();
    faulted(&env, &faults, &["down", "--env", "wandb-prod"]).succeeded();
}

/// The bucket's and the key's security settings are drift like any other: opened by hand
/// (public-access block and encryption removed, the TLS-only policy replaced by a public one,
/// CORS for any origin; the key's rotation off and its policy open to anyone), `plan
/// --detailed-exitcode` shows each (exit 2), `up` restores them, and then nothing is pending.
#[test]
fn a_bucket_and_key_opened_by_hand_are_shown_by_plan_and_closed_by_up() {
    let (env, moto) = poc_with_a_bucket("");
    let run = |args: &[&str]| on_moto(&env, &moto, args);
    run(&["up", "--plan", "s3.yaml"]).succeeded();
    let detailed = ["plan", "--plan", "s3.yaml", "--detailed-exitcode"];
    let out = run(&detailed);
    assert_eq!(out.status.code(), Some(0), "converged: {}", text(&out));
    let bucket = "wandb-dev-wandb-artifacts";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-dev"));
    rt.block_on(async {
        let cors = aws_sdk_s3::types::CorsConfiguration::builder()
            .cors_rules(
                aws_sdk_s3::types::CorsRule::builder()
                    .allowed_methods("PUT")
                    .allowed_origins("*")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let public = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": "*", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}]});
        let s3 = &aws.s3;
        s3.delete_public_access_block().bucket(bucket).send().await.unwrap();
        s3.delete_bucket_encryption().bucket(bucket).send().await.unwrap();
        s3.put_bucket_policy().bucket(bucket).policy(public.to_string()).send().await.unwrap();
        s3.put_bucket_cors().bucket(bucket).cors_configuration(cors).send().await.unwrap();
        // And the key: rotation off, a policy that lets anyone use it.
        let aliases = aws.kms.list_aliases().send().await.unwrap();
        let key = aliases
            .aliases()
            .iter()
            .find(|a| a.alias_name().is_some_and(|n| n.contains("wandb-dev")))
            .and_then(|a| a.target_key_id())
            .unwrap()
            .to_owned();
        aws.kms.disable_key_rotation().key_id(&key).send().await.unwrap();
        let open = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]});
        aws.kms
            .put_key_policy()
            .key_id(&key)
            .policy_name("default")
            .policy(open.to_string())
            .send()
            .await
            .unwrap();
    });
    let out = run(&detailed).exited(2);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "~ public_access_block: ",
        "~ encryption: ",
        "~ policy: another policy -> TLS only",
        "~ cors: methods PUT from * -> methods GET,HEAD,PUT from https://wandb-dev.company.com",
        "~ rotation: disabled -> enabled",
        "~ policy: another policy -> the account's root, administrator arn:aws:",
    ] {
        assert!(shown.contains(line), "{line} in\n{shown}");
    }
    run(&["up", "--plan", "s3.yaml"]).succeeded();
    let out = run(&detailed);
    assert_eq!(out.status.code(), Some(0), "restored: {}", text(&out));
    rt.block_on(async {
        let p = aws
            .s3
            .get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
        let p: serde_json::Value = serde_json::from_str(p.policy().unwrap()).unwrap();
        assert_eq!(
            p["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"],
            "false"
        );
    });
    run(&["down", "--env", "wandb-dev"]).succeeded();
}

/// The IAM action(s) an operation the recorder saw may be (its service is told by its name).
fn iam_actions(op: &str) -> Vec<String> {
    let s3 = [
        ("s3:HEAD", "s3:ListBucket"),
        ("s3:PUT", "s3:CreateBucket"),
        ("s3:DELETE", "s3:DeleteBucket"),
        ("s3:GET?versions", "s3:ListBucketVersions"),
        ("s3:POST?delete", "s3:DeleteObjectVersion"),
        ("s3:GET?tagging", "s3:GetBucketTagging"),
        ("s3:PUT?tagging", "s3:PutBucketTagging"),
        ("s3:GET?encryption", "s3:GetEncryptionConfiguration"),
        ("s3:PUT?encryption", "s3:PutEncryptionConfiguration"),
        ("s3:GET?publicAccessBlock", "s3:GetBucketPublicAccessBlock"),
        ("s3:PUT?publicAccessBlock", "s3:PutBucketPublicAccessBlock"),
        ("s3:PUT?ownershipControls", "s3:PutBucketOwnershipControls"),
        ("s3:GET?cors", "s3:GetBucketCORS"),
        ("s3:PUT?cors", "s3:PutBucketCORS"),
        ("s3:GET?policy", "s3:GetBucketPolicy"),
        ("s3:PUT?policy", "s3:PutBucketPolicy"),
        ("s3:GET?versioning", "s3:GetBucketVersioning"),
        ("s3:PUT?versioning", "s3:PutBucketVersioning"),
    ];
    if op.starts_with("s3:") {
        return s3
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, a)| a.to_string())
            .collect();
    }
    let kms = [
        "CreateKey",
        "DescribeKey",
        "ListAliases",
        "ListKeys",
        "ListResourceTags",
        "EnableKeyRotation",
        "GetKeyRotationStatus",
        "GetKeyPolicy",
        "PutKeyPolicy",
        "CreateAlias",
        "DeleteAlias",
        "ScheduleKeyDeletion",
    ];
    let service = if kms.contains(&op) {
        vec!["kms"]
    } else if op.contains("Alarm") {
        vec!["cloudwatch"]
    } else if op.contains("Secret") {
        vec!["secretsmanager"]
    } else if op == "GetCallerIdentity" {
        vec!["sts"]
    } else if op.contains("Role") {
        vec!["iam"]
    } else if op.contains("SecurityGroup") || op == "DescribeSubnets" {
        vec!["ec2"]
    } else if op.contains("Cache") || op.contains("Replica") {
        vec!["elasticache"]
    } else if op.contains("DB") {
        vec!["rds"]
    } else {
        vec!["rds", "elasticache", "kms", "secretsmanager", "cloudwatch"]
    };
    service.iter().map(|s| format!("{s}:{op}")).collect()
}

/// The published IAM policy (`render --iam-policy`) is judged by parliament, the IAM policy
/// linter (every action a real one, each resource of the type the action takes), and covers
/// every call production's `up` and `down` make, as the recorder in front of moto saw them.
/// What parliament still says is argued here: managing the bucket's policy (the TLS-only one)
/// could grant object access (any tool that keeps a bucket policy can), and a key's tags are
/// written as it is made, before it has an ARN (the statement is held to this environment's
/// tag by its condition).
#[test]
fn the_published_iam_policy_passes_parliament_and_allows_every_call_up_and_down_make() {
    let env = Env::new(100);
    let moto = moto::Moto::start();
    let recorder = moto::Recorder::start(&moto);
    let prod = unprotected_production(&env, &moto);
    let out = env.ok(&["render", "--plan", &prod, "--iam-policy"]);
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = env.dir.path().join("policy.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    let py =
        wbstack_test_support::python::venv("parliament", &["parliament==1.6.4"]).join("python");
    let lint = std::process::Command::new(py)
        .arg("-c")
        .arg("import json,sys\nfrom parliament import analyze_policy_string\np=analyze_policy_string(open(sys.argv[1]).read())\nfor f in p.findings: print(json.dumps({'issue': f.issue, 'detail': str(f.detail)}))")
        .arg(&file)
        .output()
        .unwrap();
    assert!(lint.status.success(), "{}", text(&lint));
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&lint.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    eprintln!("parliament: {findings:?}");
    for f in &findings {
        let (issue, detail) = (f["issue"].as_str().unwrap(), f["detail"].as_str().unwrap());
        let argued = (issue == "RESOURCE_POLICY_PRIVILEGE_ESCALATION"
            && detail.contains("arn:aws:s3:::wandb-prod-artifacts")
            && detail.contains("s3:PutBucketPolicy"))
            || (issue == "RESOURCE_STAR" && detail == "['kms:TagResource']")
            // A security group is made in a VPC, and creating one is authorized on the VPC too
            // (the Amazon VPC User Guide's policy examples, "Manage security groups");
            // parliament 1.6.4 knows only the group as its resource.
            || (issue == "RESOURCE_MISMATCH"
                && detail.contains("ec2:CreateSecurityGroup")
                && detail.contains("security-group/*"));
        assert!(argued, "{f}");
    }
    let allowed = actions(&policy);
    assert!(allowed.iter().all(|a| !a.contains('*')), "{allowed:?}");
    let run = |args: &[&str]| via(&env, &recorder.url, args);
    run(&["up", "--plan", &prod]).succeeded();
    let out = run(&["down", "--env", "wandb-prod", "--timeout", "5"]);
    assert!(out.status.code().is_some(), "{}", text(&out));
    assert_allowed(&allowed, &recorder.ops());
}

/// The actions a policy document allows.
fn actions(policy: &serde_json::Value) -> std::collections::BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// Every call in `ops` is allowed by one of `allowed`.
fn assert_allowed(allowed: &std::collections::BTreeSet<String>, ops: &[String]) {
    let calls: std::collections::BTreeSet<&String> = ops.iter().collect();
    let missing: Vec<&&String> = calls
        .iter()
        .filter(|op| !iam_actions(op).iter().any(|a| allowed.contains(a)))
        .collect();
    assert!(missing.is_empty(), "not allowed by the policy: {missing:?}");
    eprintln!("{} distinct calls, each allowed: {calls:?}", calls.len());
}

/// A Secret mirroring a password kept in Secrets Manager, edited by hand, is drift: `plan`
/// says so (exit 2), `up` writes the source's value back, and then `plan` and `up` agree that
/// nothing is pending. Teardown keeps a final snapshot of the database unless told not to.
#[test]
fn a_hand_edited_mirrored_secret_is_repaired_and_teardown_keeps_a_final_snapshot() {
    let (env, _moto, faults, prod) = faulted_production(0.0);
    faulted(&env, &faults, &["up", "--plan", &prod]).succeeded();
    let value = || {
        env.kubectl(&[
            "get",
            "secret",
            "wbstack-mysql",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.data.MYSQL_PASSWORD}",
        ])
    };
    let good = value();
    assert!(!good.is_empty());
    env.kubectl(&[
        "patch",
        "secret",
        "wbstack-mysql",
        "-n",
        "wandb",
        "--type",
        "merge",
        "-p",
        r#"{"stringData":{"MYSQL_PASSWORD":"edited-by-hand"}}"#,
    ]);
    assert_ne!(value(), good);
    // The W&B pods' template carries when the Secret was last written.
    let written = || {
        env.kubectl(&[
            "get",
            "wandb",
            "wandb-prod",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.spec.values.global.pod.annotations.wbstack\\.dev/mysql-password-written}",
        ])
    };
    let before = written();
    assert!(!before.is_empty());
    let detailed = ["plan", "--plan", prod.as_str(), "--detailed-exitcode"];
    faulted(&env, &faults, &detailed).exited(2);
    faulted(&env, &faults, &["up", "--plan", &prod]).succeeded();
    assert_eq!(value(), good, "the source's value is written back");
    assert_ne!(
        written(),
        before,
        "the pods roll with the repaired password"
    );
    faulted(&env, &faults, &detailed).succeeded();
    // Data is protected by default: `down` keeps a final snapshot and says so;
    // `--skip-final-snapshot` is the way out.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(_moto.aws("wandb-prod"));
    let snapshots = || {
        rt.block_on(async {
            let s = aws
                .rds
                .describe_db_cluster_snapshots()
                .send()
                .await
                .unwrap();
            s.db_cluster_snapshots()
                .iter()
                .filter_map(|s| s.db_cluster_snapshot_identifier().map(str::to_owned))
                .filter(|id| id.contains("-final-"))
                .collect::<Vec<_>>()
        })
    };
    let out = faulted(&env, &faults, &["down", "--env", "wandb-prod"]).succeeded();
    let kept = snapshots();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with("wandb-prod-mysql-final-"), "{kept:?}");
    assert!(
        text(&out).contains(&format!("keeping a final snapshot {}", kept[0])),
        "{}",
        text(&out)
    );
    faulted(&env, &faults, &["up", "--plan", &prod]).succeeded();
    faulted(
        &env,
        &faults,
        &["down", "--env", "wandb-prod", "--skip-final-snapshot"],
    )
    .succeeded();
    assert_eq!(snapshots(), kept, "no second snapshot");
}

/// Without AWS credentials, a teardown fails at the first AWS call, saying so, instead of
/// retrying it: no credentials appear by waiting.
#[test]
fn missing_credentials_fail_at_once_naming_the_call() {
    let (env, _moto, faults, prod) = faulted_production(0.0);
    faulted(&env, &faults, &["up", "--plan", &prod]).succeeded();
    let nowhere = tempfile::tempdir().unwrap();
    let out = env
        .cmd(&["down", "--env", "wandb-prod"])
        .env("WBSTACK_AWS_ENDPOINT", &faults.url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("HOME", nowhere.path())
        .env("AWS_CONFIG_FILE", nowhere.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            nowhere.path().join("credentials"),
        )
        .output()
        .unwrap()
        .exited(1);
    assert!(text(&out).contains("no AWS credentials"), "{}", text(&out));
    assert!(!text(&out).contains("retrying"), "{}", text(&out));
    // With them back, the teardown completes.
    faulted(&env, &faults, &["down", "--env", "wandb-prod"]).succeeded();
}

/// An Aurora instance-class change rolls through the cluster: the readers first, one at a time,
/// each waited until available in the new class; then a failover to a changed reader; then the
/// old writer. `plan` says that order. Cut at the failover (refused once, as a policy without
/// it would), `resume` goes on from where the cluster stands: it neither changes a reader again
/// nor restarts the writer in place. Every call is observed at the proxy in front of moto.
#[test]
fn an_aurora_class_change_rolls_reader_by_reader_and_a_cut_roll_resumes_where_it_stands() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let recorder = moto::Recorder::start(&moto);
    let base = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "")
        .replace("  size: large\n", "  size: medium\n");
    let base = moto.production_plan(&base);
    let write = |class: &str| {
        let text = base.replace(
            "    backupRetentionDays: 14\n",
            &format!("    backupRetentionDays: 14\n    instances: 3\n    instanceClass: {class}\n"),
        );
        env.plan_from("prod.yaml", &text)
    };
    let run = |args: &[&str]| via(&env, &recorder.url, args);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    let members = || rt.block_on(member_classes(&aws, true));
    run(&["up", "--plan", &write("db.r6g.large")]).succeeded();
    assert_eq!(
        members(),
        [
            "wandb-prod-mysql-1*=db.r6g.large",
            "wandb-prod-mysql-2=db.r6g.large",
            "wandb-prod-mysql-3=db.r6g.large"
        ]
    );

    let plan = write("db.r6g.xlarge");
    let out = run(&["plan", "--plan", &plan]).succeeded();
    let order = "reader wandb-prod-mysql-2, then reader wandb-prod-mysql-3, then failover to \
                 wandb-prod-mysql-2, then reader wandb-prod-mysql-1";
    assert!(text(&out).contains(order), "{}", text(&out));

    recorder.deny(&["FailoverDBCluster"]);
    recorder.clear();
    let out = run(&["up", "--plan", &plan]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("FailoverDBCluster"), "{}", text(&out));
    assert_eq!(
        recorder.rds_changes(),
        [
            "ModifyDBInstance wandb-prod-mysql-2",
            "ModifyDBInstance wandb-prod-mysql-3",
            "FailoverDBCluster wandb-prod-mysql-2"
        ]
    );
    assert_eq!(
        members(),
        [
            "wandb-prod-mysql-1*=db.r6g.large",
            "wandb-prod-mysql-2=db.r6g.xlarge",
            "wandb-prod-mysql-3=db.r6g.xlarge"
        ]
    );

    let cut = recorder.ops();
    println!(
        "roll cut at the failover: {} AWS calls, {} of them RDS",
        cut.len(),
        cut.iter().filter(|o| o.contains("DB")).count()
    );
    recorder.deny(&[]);
    recorder.clear();
    run(&["resume", "--env", "wandb-prod"]).succeeded();
    assert_eq!(
        recorder.rds_changes(),
        [
            "FailoverDBCluster wandb-prod-mysql-2",
            "ModifyDBInstance wandb-prod-mysql-1"
        ]
    );
    assert_eq!(
        members(),
        [
            "wandb-prod-mysql-1=db.r6g.xlarge",
            "wandb-prod-mysql-2*=db.r6g.xlarge",
            "wandb-prod-mysql-3=db.r6g.xlarge"
        ]
    );
    let calls = recorder.ops();
    let out = run(&["render", "--plan", &plan, "--iam-policy"]).succeeded();
    assert_allowed(
        &actions(&serde_json::from_slice(&out.stdout).unwrap()),
        &calls,
    );
    println!(
        "rolling resume: {} AWS calls, {} of them RDS",
        calls.len(),
        calls.iter().filter(|o| o.contains("DB")).count()
    );
    assert_eq!(
        run(&["plan", "--plan", &plan, "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );
}

/// A secret scheduled for deletion under the name a plan uses: anyone else's stops `up` at once,
/// naming the call, the secret and the ways out (nothing is restored or replaced); once it is
/// gone, `up` succeeds, and this environment's own secret, deleted by its teardown and still in
/// its recovery window, is restored by the next `up` with a new value.
#[test]
fn a_secret_scheduled_for_deletion_fails_at_once_unless_it_is_this_environments_own() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let plan = std::fs::read_to_string(production_with_redis_in_cluster(&env, &moto))
        .unwrap()
        .replace("secretRecoveryDays: 0", "secretRecoveryDays: 7");
    let prod = env.plan_from("prod.yaml", &plan);
    let run = |args: &[&str]| via(&env, &moto.url, args);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    let name = "wbstack/wandb-prod/mysql-master";
    rt.block_on(async {
        aws.secrets
            .create_secret()
            .name(name)
            .secret_string("someone-elses")
            .send()
            .await
            .unwrap();
        aws.secrets
            .delete_secret()
            .secret_id(name)
            .recovery_window_in_days(7)
            .send()
            .await
            .unwrap();
    });
    let started = std::time::Instant::now();
    let out = run(&["up", "--plan", &prod, "--timeout", "1800"]);
    let took = started.elapsed();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    for part in [
        "DescribeSecret wbstack/wandb-prod/mysql-master",
        "scheduled for deletion",
        "aws secretsmanager restore-secret --secret-id wbstack/wandb-prod/mysql-master",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
    assert!(!said.contains("timed out"), "{said}");
    eprintln!("refused after {took:?}");
    rt.block_on(async {
        let d = aws.secrets.describe_secret().secret_id(name).send().await;
        assert!(d.unwrap().deleted_date().is_some(), "left scheduled");
        aws.secrets
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    });
    run(&["up", "--plan", &prod]).succeeded();
    run(&["down", "--env", "wandb-prod", "--skip-final-snapshot"]).succeeded();
    let scheduled = rt.block_on(async {
        let d = aws.secrets.describe_secret().secret_id(name).send().await;
        d.unwrap().deleted_date().is_some()
    });
    assert!(
        scheduled,
        "the teardown scheduled it, with a recovery window"
    );
    let out = run(&["up", "--plan", &prod]).succeeded();
    assert!(
        text(&out).contains("restoring wbstack/wandb-prod/mysql-master"),
        "{}",
        text(&out)
    );
}

/// `restore`: a new environment from production's data. Bad input changes nothing. From a point
/// in time, the database is RestoreDBClusterToPointInTime of production's cluster (moto's), into
/// the new environment's name, tags and key, with its own master password; Redis starts from
/// production's newest cache snapshot; the bucket is production's, used as it is. The new
/// environment is a plan like any other: `down --env` removes what it made and leaves
/// production's. Then production goes down, keeping its final snapshot (and the key that
/// encrypts it), and a second environment is restored from that snapshot.
#[test]
fn restore_brings_up_a_new_environment_from_a_point_in_time_or_the_final_snapshot() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let recorder = moto::Recorder::start(&moto);
    let prod = unprotected_production(&env, &moto);
    let run = |args: &[&str]| via(&env, &recorder.url, args);
    run(&["up", "--plan", &prod]).succeeded();

    recorder.clear();
    let restore = |new: &str, how: &[&str]| {
        let args = [&["restore", "--env", new, "--from", "wandb-prod"][..], how].concat();
        run(&args)
    };
    let out = restore("wandb-dr", &["--to-time", "yesterday"]).exited(2);
    assert!(text(&out).contains("spec.restore.toTime"), "{}", text(&out));
    let out = restore("wandb-dr", &["--to-time", "latest", "--from", "nobody"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(recorder.ops().is_empty(), "{:?}", recorder.ops());

    // A daily snapshot of production's cache, as ElastiCache takes in its window.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    rt.block_on(
        aws.elasticache
            .create_snapshot()
            .replication_group_id("wandb-prod-redis")
            .snapshot_name("wandb-prod-redis-daily")
            .send(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = restore("wandb-dr", &["--to-time", "latest"]).succeeded();
    eprintln!("restored to ready in {:?}", started.elapsed());
    let said = text(&out);
    assert!(
        said.contains(
            "seeding wandb-dr-redis from wandb-prod-redis's snapshot wandb-prod-redis-daily"
        ),
        "{said}"
    );
    let changes = recorder.rds_changes();
    assert!(
        changes.contains(&"RestoreDBClusterToPointInTime wandb-dr-mysql".to_owned())
            && changes.contains(&"ModifyDBCluster wandb-dr-mysql".to_owned()),
        "{changes:?}"
    );
    assert!(
        !changes
            .iter()
            .any(|c| c.ends_with(" wandb-prod-mysql") || c.contains("wandb-prod-mysql-")),
        "production's database is not touched: {changes:?}"
    );
    let tags_of = |id: &str| {
        rt.block_on(async {
            let c = aws
                .rds
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
                .unwrap();
            c.db_clusters()[0]
                .tag_list()
                .iter()
                .map(|t| format!("{}={}", t.key().unwrap(), t.value().unwrap()))
                .collect::<Vec<_>>()
        })
    };
    assert!(
        tags_of("wandb-dr-mysql").contains(&"wbstack:environment=wandb-dr".to_owned()),
        "{:?}",
        tags_of("wandb-dr-mysql")
    );
    // The restored W&B reads production's bucket, with the new environment's own role.
    let bucket = env.kubectl(&[
        "get",
        "wandb",
        "wandb-dr",
        "-n",
        "wandb-dr",
        "-o",
        "jsonpath={.spec.values.global.defaultBucket.name}",
    ]);
    assert_eq!(bucket, "wandb-prod-artifacts");
    run(&["status", "--env", "wandb-dr"]).succeeded();

    run(&["down", "--env", "wandb-dr", "--skip-final-snapshot"]).succeeded();
    rt.block_on(async {
        let c = aws.rds.describe_db_clusters().send().await.unwrap();
        let ids: Vec<&str> = c
            .db_clusters()
            .iter()
            .filter_map(|c| c.db_cluster_identifier())
            .collect();
        assert_eq!(ids, ["wandb-prod-mysql"]);
        let b = aws.s3.list_buckets().send().await.unwrap();
        assert_eq!(b.buckets().len(), 1, "production's bucket stays");
    });

    // Production goes; its final snapshot stays, and a new environment comes from it.
    run(&["down", "--env", "wandb-prod"]).succeeded();
    let snapshot = rt.block_on(async {
        let s = aws
            .rds
            .describe_db_cluster_snapshots()
            .snapshot_type("manual")
            .send()
            .await
            .unwrap();
        s.db_cluster_snapshots()[0]
            .db_cluster_snapshot_identifier()
            .unwrap()
            .to_owned()
    });
    recorder.clear();
    let out = restore("wandb-dr2", &["--snapshot", &snapshot]).succeeded();
    assert!(
        recorder
            .rds_changes()
            .contains(&"RestoreDBClusterFromSnapshot wandb-dr2-mysql".to_owned()),
        "{:?}",
        recorder.rds_changes()
    );
    assert!(
        text(&out).contains("gets a new, empty one"),
        "{}",
        text(&out)
    );
    run(&["down", "--env", "wandb-dr2", "--skip-final-snapshot"]).succeeded();
}

/// The first cluster's members as `id=class` (the writer marked `id*` when `writer`), sorted,
/// listed in moto directly.
async fn member_classes(aws: &wbstack_aws::Aws, writer: bool) -> Vec<String> {
    let c = aws.rds.describe_db_clusters().send().await.unwrap();
    let mut out = Vec::new();
    for m in c.db_clusters()[0].db_cluster_members() {
        let id = m.db_instance_identifier().unwrap();
        let i = aws
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .unwrap();
        let class = i.db_instances()[0].db_instance_class().unwrap();
        let w = if writer && m.is_cluster_writer() == Some(true) {
            "*"
        } else {
            ""
        };
        out.push(format!("{id}{w}={class}"));
    }
    out.sort();
    out
}
