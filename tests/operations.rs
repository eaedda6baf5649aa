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

/// The stores' security group (`spec.aws.securityGroup`, as the production plan sets it): made
/// in the subnets' VPC, admitting only the cluster's group on MySQL's and Redis's ports and
/// sending nothing out, worn by the database; a port opened to anyone by hand shows in `plan`
/// and `up` closes it; `down` deletes the group.
#[test]
fn the_stores_security_group_admits_only_the_cluster_and_hand_opened_ports_are_closed() {
    let env = Env::new(0);
    let moto = moto::Moto::start();
    let plan = production(&env, &moto);
    let text = std::fs::read_to_string(&plan).unwrap();
    let cluster = text
        .split("allowFrom:")
        .nth(1)
        .and_then(|t| t.split(['[', ']']).nth(1))
        .unwrap()
        .trim()
        .to_owned();
    run(&env, &moto, &["up", "--plan", &plan]).succeeded();
    let aws = env.rt.block_on(moto.aws("tests"));
    let group = || {
        env.rt.block_on(async {
            let out = aws.ec2.describe_security_groups().send().await.unwrap();
            out.security_groups()
                .iter()
                .find(|g| g.group_name() == Some("wbstack-wandb-prod-data"))
                .cloned()
        })
    };
    let rules = |g: &aws_sdk_ec2::types::SecurityGroup| {
        let mut v: Vec<(i32, String)> = g
            .ip_permissions()
            .iter()
            .flat_map(|p| {
                let port = p.from_port().unwrap_or(-1);
                let groups = p.user_id_group_pairs().iter().filter_map(|u| u.group_id());
                let cidrs = p.ip_ranges().iter().filter_map(|r| r.cidr_ip());
                groups.chain(cidrs).map(move |s| (port, s.to_owned()))
            })
            .collect();
        v.sort();
        v
    };
    let g = group().expect("the stores' group is made");
    assert_eq!(
        rules(&g),
        [(3306, cluster.clone()), (6379, cluster.clone())]
    );
    assert!(g.ip_permissions_egress().is_empty(), "{g:?}");
    let id = g.group_id().unwrap().to_owned();
    let worn = env.rt.block_on(async {
        let out = aws.rds.describe_db_clusters().send().await.unwrap();
        out.db_clusters()[0]
            .vpc_security_groups()
            .iter()
            .filter_map(|m| m.vpc_security_group_id().map(str::to_owned))
            .collect::<Vec<_>>()
    });
    assert!(worn.contains(&id), "{worn:?}");

    // MySQL opened to anyone by hand: shown, then closed.
    env.rt.block_on(async {
        aws.ec2
            .authorize_security_group_ingress()
            .group_id(&id)
            .ip_protocol("tcp")
            .from_port(3306)
            .to_port(3306)
            .cidr_ip("0.0.0.0/0")
            .send()
            .await
            .unwrap();
    });
    let detailed = ["plan", "--plan", plan.as_str(), "--detailed-exitcode"];
    let shown = run(&env, &moto, &detailed).exited(2);
    let said = String::from_utf8_lossy(&shown.stdout);
    assert!(said.contains("tcp 3306 with 0.0.0.0/0"), "{said}");
    run(&env, &moto, &["up", "--plan", &plan]).succeeded();
    assert_eq!(
        rules(&group().unwrap()),
        [(3306, cluster.clone()), (6379, cluster)]
    );
    run(&env, &moto, &detailed).succeeded();

    run(
        &env,
        &moto,
        &["down", "--plan", &plan, "--skip-final-snapshot"],
    )
    .succeeded();
    assert!(group().is_none(), "the group is deleted");
}
