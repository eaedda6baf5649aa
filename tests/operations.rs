//! The seeds' operations items against moto (5.2.6, which speaks CloudWatch's CBOR protocol)
//! behind the sandbox's proxy: CloudWatch alarms on the database and the cache with the size's
//! thresholds, put back when edited or deleted by hand and removed by `down`; Performance
//! Insights on every database instance, turned off and on in place.

use wbstack_test_support::{moto, Env, Exited};

/// The production plan, unprotected, on `moto`'s subnets: its file.
fn production(env: &Env, moto: &moto::Moto) -> String {
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "");
    env.plan_from("prod.yaml", &moto.production_plan(&plan))
}

fn run(env: &Env, moto: &moto::Moto, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd(args);
    moto::Moto::point(&moto.url, &mut c);
    c.output().unwrap()
}

async fn alarms(aws: &wbstack_aws::Aws) -> Vec<aws_sdk_cloudwatch::types::MetricAlarm> {
    let out = aws
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix("wbstack-wandb-prod-")
        .send()
        .await
        .unwrap();
    out.metric_alarms().to_vec()
}

async fn insights(aws: &wbstack_aws::Aws) -> Vec<(String, bool)> {
    let out = aws.rds.describe_db_instances().send().await.unwrap();
    let mut v: Vec<(String, bool)> = out
        .db_instances()
        .iter()
        .map(|i| {
            (
                i.db_instance_identifier().unwrap().to_owned(),
                i.performance_insights_enabled().unwrap_or(false),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn alarms_follow_the_plan_and_hand_edits_are_put_back() {
    let env = Env::new(0);
    let moto = moto::Moto::start();
    let plan = production(&env, &moto);
    run(&env, &moto, &["up", "--plan", &plan]).succeeded();
    let aws = env.rt.block_on(moto.aws("tests"));
    let found = env.rt.block_on(alarms(&aws));
    let names: Vec<&str> = found.iter().filter_map(|a| a.alarm_name()).collect();
    // Large: two Aurora instances (CPU, connections, local storage each), the cluster's replica
    // lag, and three cache members (memory, evictions, engine CPU each).
    assert_eq!(names.len(), 2 * 3 + 1 + 3 * 3, "{names:?}");
    let conns = found
        .iter()
        .find(|a| a.alarm_name() == Some("wbstack-wandb-prod-wandb-prod-mysql-1-connections"))
        .unwrap();
    // db.r6g.2xlarge allows 3,000 connections on Aurora: 80%.
    assert_eq!(conns.threshold(), Some(2400.0));
    assert_eq!(conns.dimensions()[0].value(), Some("wandb-prod-mysql-1"));

    // One loosened and one deleted by hand: `plan` names both, `up` puts them back.
    let cpu = "wbstack-wandb-prod-wandb-prod-redis-001-engine-cpu";
    env.rt.block_on(async {
        aws.cloudwatch
            .put_metric_alarm()
            .alarm_name(cpu)
            .namespace("AWS/ElastiCache")
            .metric_name("EngineCPUUtilization")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            )
            .threshold(99.0)
            .period(300)
            .evaluation_periods(3)
            .send()
            .await
            .unwrap();
        aws.cloudwatch
            .delete_alarms()
            .alarm_names("wbstack-wandb-prod-wandb-prod-mysql-replica-lag")
            .send()
            .await
            .unwrap();
    });
    let shown = run(
        &env,
        &moto,
        &["plan", "--plan", &plan, "--detailed-exitcode"],
    )
    .exited(2);
    let said = String::from_utf8_lossy(&shown.stdout);
    assert!(said.contains(cpu) && said.contains("99"), "{said}");
    assert!(said.contains("replica-lag: (none) ->"), "{said}");
    run(&env, &moto, &["up", "--plan", &plan]).succeeded();
    let found = env.rt.block_on(alarms(&aws));
    assert_eq!(found.len(), 16);
    let put_back = found.iter().find(|a| a.alarm_name() == Some(cpu)).unwrap();
    assert_eq!(put_back.threshold(), Some(80.0));
    run(
        &env,
        &moto,
        &["plan", "--plan", &plan, "--detailed-exitcode"],
    )
    .succeeded();

    run(
        &env,
        &moto,
        &["down", "--plan", &plan, "--skip-final-snapshot"],
    )
    .succeeded();
    assert!(env.rt.block_on(alarms(&aws)).is_empty());
}

#[test]
fn performance_insights_is_on_by_default_and_changed_in_place() {
    let env = Env::new(0);
    let moto = moto::Moto::start();
    let plan = production(&env, &moto);
    run(&env, &moto, &["up", "--plan", &plan]).succeeded();
    let aws = env.rt.block_on(moto.aws("tests"));
    let on = env.rt.block_on(insights(&aws));
    assert_eq!(on.len(), 2, "{on:?}");
    assert!(on.iter().all(|(_, pi)| *pi), "{on:?}");

    // The same plan (the same subnets), with Performance Insights off.
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "backupRetentionDays: 14\n",
        "backupRetentionDays: 14\n    performanceInsights: false\n",
    );
    assert!(text.contains("performanceInsights: false"));
    let off = env.plan_from("prod-off.yaml", &text);
    let shown = run(
        &env,
        &moto,
        &["plan", "--plan", &off, "--detailed-exitcode"],
    )
    .exited(2);
    let said = String::from_utf8_lossy(&shown.stdout);
    assert!(
        said.contains("performance_insights: true -> false"),
        "{said}"
    );
    run(&env, &moto, &["up", "--plan", &off]).succeeded();
    assert!(env.rt.block_on(insights(&aws)).iter().all(|(_, pi)| !*pi));
    run(
        &env,
        &moto,
        &["plan", "--plan", &off, "--detailed-exitcode"],
    )
    .succeeded();
    run(
        &env,
        &moto,
        &["down", "--plan", &off, "--skip-final-snapshot"],
    )
    .succeeded();
}
