//! `spec.aws.alarms`: CloudWatch alarms on the database and the cache wbstack makes, with
//! thresholds from what the plan compiled (instance class, storage, instances, cache nodes):
//! RDS CPU, free storage, replica lag and connections; ElastiCache memory, evictions and engine
//! CPU. Every alarm is named `wbstack-<environment>-<resource>-<what>`.

use crate::build::Builder;
use crate::check::Checker;
use crate::ids::{self, outputs, Input};
use crate::kinds::{Alarm, CloudwatchAlarms, MysqlDatabase, RedisCache, StepKind};
use crate::resolve::Resolved;

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    for (i, arn) in r.aws.alarms.actions.iter().enumerate() {
        if !arn.starts_with("arn:aws:sns:") && !arn.starts_with("arn:aws-") {
            c.value_help(
                &format!("spec.aws.alarms.actions[{i}]"),
                format!("`{arn}` is not an SNS topic ARN"),
                "like arn:aws:sns:us-west-2:123456789012:wandb-alerts",
            );
        }
    }
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    if !r.aws.alarms.enabled {
        return;
    }
    let mut alarms = Vec::new();
    let mut watched = Vec::new();
    let prefix = format!("wbstack-{}-", r.env);
    if let Some(StepKind::MysqlDatabase(db)) = b.planned(ids::MYSQL) {
        alarms.extend(database(&prefix, db));
        watched.push(Input::new(ids::MYSQL, outputs::ENDPOINT));
    }
    if let Some(StepKind::RedisCache(cache)) = b.planned(ids::REDIS) {
        alarms.extend(self::cache(&prefix, cache));
        watched.push(Input::new(ids::REDIS, outputs::ENDPOINT));
    }
    if alarms.is_empty() {
        return;
    }
    b.step(
        ids::ALARMS,
        CloudwatchAlarms {
            prefix,
            alarms,
            actions: r.aws.alarms.actions.clone(),
            watched,
        },
    );
}

/// Five-minute periods: what RDS and ElastiCache publish at basic monitoring.
const PERIOD: i32 = 300;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[allow(clippy::too_many_arguments)]
fn alarm(
    name: String,
    description: String,
    namespace: &str,
    metric: &str,
    dimension: (&str, &str),
    statistic: &str,
    comparison: &str,
    threshold: f64,
    periods: i32,
) -> Alarm {
    Alarm {
        name,
        description,
        namespace: namespace.into(),
        metric: metric.into(),
        dimensions: vec![(dimension.0.into(), dimension.1.into())],
        statistic: statistic.into(),
        comparison: comparison.into(),
        threshold,
        period_seconds: PERIOD,
        evaluation_periods: periods,
    }
}

/// An instance class's memory in GiB, from its family and size (`db.r6g.xlarge`: 32), for the
/// families RDS offers W&B (r: 8 GiB per vCPU, m and t: 4); `None` for others.
pub(crate) fn memory_gib(class: &str) -> Option<f64> {
    let mut parts = class.split('.');
    let (_, family, size) = (parts.next()?, parts.next()?, parts.next()?);
    let vcpus = match size {
        "small" => 0.5,
        "medium" => 1.0,
        "large" => 2.0,
        "xlarge" => 4.0,
        s => s.strip_suffix("xlarge")?.parse::<f64>().ok()? * 4.0,
    };
    let per_vcpu = match family.chars().next()? {
        'r' => 8.0,
        'm' | 't' => 4.0,
        _ => return None,
    };
    Some(vcpus * per_vcpu)
}

/// The default `max_connections` of an instance class. Aurora MySQL: AWS's table for the class
/// (1,000 per step of size from `large`, at most 6,000 up to `16xlarge`); RDS MySQL:
/// `{DBInstanceClassMemory/12582880}`.
pub(crate) fn max_connections(class: &str, aurora: bool) -> Option<f64> {
    if !aurora {
        return memory_gib(class).map(|g| (g * GIB / 12_582_880.0).floor());
    }
    let size = class.rsplit('.').next()?;
    let family = class.split('.').nth(1)?;
    if family.starts_with('t') {
        return match size {
            "medium" => Some(90.0),
            "large" => Some(135.0),
            _ => None,
        };
    }
    match size {
        "large" => Some(1000.0),
        "xlarge" => Some(2000.0),
        "2xlarge" => Some(3000.0),
        "4xlarge" => Some(4000.0),
        "8xlarge" => Some(5000.0),
        "12xlarge" | "16xlarge" => Some(6000.0),
        "24xlarge" => Some(7000.0),
        _ => None,
    }
}

fn database(prefix: &str, db: &MysqlDatabase) -> Vec<Alarm> {
    let rds = "AWS/RDS";
    let mut out = Vec::new();
    for id in db.instance_ids() {
        let on = ("DBInstanceIdentifier", id.as_str());
        out.push(alarm(
            format!("{prefix}{id}-cpu"),
            format!("{id}: CPU above 80% for 15 minutes"),
            rds,
            "CPUUtilization",
            on,
            "Average",
            "GreaterThanThreshold",
            80.0,
            3,
        ));
        if let Some(max) = max_connections(&db.instance_class, db.aurora) {
            out.push(alarm(
                format!("{prefix}{id}-connections"),
                format!(
                    "{id}: more than 80% of the {} connections {} allows",
                    max, db.instance_class
                ),
                rds,
                "DatabaseConnections",
                on,
                "Maximum",
                "GreaterThanThreshold",
                (max * 0.8).floor(),
                2,
            ));
        }
        let storage = if db.aurora {
            // Aurora's local storage (temporary tables, logs) is twice the memory.
            memory_gib(&db.instance_class).map(|m| ("FreeLocalStorage", 2.0 * m, "local storage"))
        } else {
            Some(("FreeStorageSpace", f64::from(db.storage_gb), "storage"))
        };
        if let Some((metric, gib, what)) = storage {
            out.push(alarm(
                format!("{prefix}{id}-free-storage"),
                format!("{id}: less than 10% of its {gib} GiB of {what} free"),
                rds,
                metric,
                on,
                "Minimum",
                "LessThanThreshold",
                (gib * 0.1 * GIB).floor(),
                2,
            ));
        }
    }
    if db.aurora && db.instances > 1 {
        out.push(alarm(
            format!("{prefix}{}-replica-lag", db.identifier),
            format!(
                "{}: a reader more than 1 s behind the writer for 10 minutes",
                db.identifier
            ),
            rds,
            "AuroraReplicaLagMaximum",
            ("DBClusterIdentifier", &db.identifier),
            "Maximum",
            "GreaterThanThreshold",
            1000.0,
            2,
        ));
    }
    out
}

fn cache(prefix: &str, c: &RedisCache) -> Vec<Alarm> {
    let ec = "AWS/ElastiCache";
    let mut out = Vec::new();
    for id in c.member_ids() {
        let on = ("CacheClusterId", id.as_str());
        out.push(alarm(
            format!("{prefix}{id}-memory"),
            format!("{id}: more than 80% of its memory used"),
            ec,
            "DatabaseMemoryUsagePercentage",
            on,
            "Average",
            "GreaterThanThreshold",
            80.0,
            2,
        ));
        out.push(alarm(
            format!("{prefix}{id}-evictions"),
            format!("{id}: keys evicted (W&B keeps queues in Redis: an evicted key is lost work)"),
            ec,
            "Evictions",
            on,
            "Sum",
            "GreaterThanThreshold",
            0.0,
            1,
        ));
        out.push(alarm(
            format!("{prefix}{id}-engine-cpu"),
            format!("{id}: Redis's thread above 80% CPU for 15 minutes"),
            ec,
            "EngineCPUUtilization",
            on,
            "Average",
            "GreaterThanThreshold",
            80.0,
            3,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sections::testing::{at, kind, steps, AWS};
    use crate::{preset, Size};

    fn alarms(spec: &str) -> CloudwatchAlarms {
        match kind(&steps(spec), ids::ALARMS) {
            StepKind::CloudwatchAlarms(a) => a.clone(),
            other => panic!("not alarms: {other:?}"),
        }
    }

    fn names(a: &CloudwatchAlarms) -> Vec<&str> {
        a.alarms.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn classes_have_the_memory_and_connections_aws_gives_them() {
        assert_eq!(memory_gib("db.r6g.large"), Some(16.0));
        assert_eq!(memory_gib("db.r6g.2xlarge"), Some(64.0));
        assert_eq!(memory_gib("db.t4g.medium"), Some(4.0));
        assert_eq!(memory_gib("db.serverless"), None);
        assert_eq!(max_connections("db.r6g.xlarge", true), Some(2000.0));
        assert_eq!(max_connections("db.t4g.medium", true), Some(90.0));
        // 16 GiB / 12582880 bytes.
        assert_eq!(max_connections("db.r6g.large", false), Some(1365.0));
    }

    #[test]
    fn a_large_aurora_cluster_and_its_cache_get_every_alarm_with_the_sizes_thresholds() {
        let spec = format!(
            "  size: large\n  mysql: {{mode: aurora}}\n  redis: {{mode: elasticache}}\n{AWS}"
        );
        let a = alarms(&spec);
        let large = preset(Size::Large);
        assert_eq!(a.prefix, "wbstack-dev-");
        let n = names(&a);
        for i in 1..=large.db_instances {
            for what in ["cpu", "connections", "free-storage"] {
                assert!(
                    n.contains(&format!("wbstack-dev-dev-mysql-{i}-{what}").as_str()),
                    "{n:?}"
                );
            }
        }
        assert!(n.contains(&"wbstack-dev-dev-mysql-replica-lag"), "{n:?}");
        for m in 1..=large.cache_nodes {
            for what in ["memory", "evictions", "engine-cpu"] {
                assert!(
                    n.contains(&format!("wbstack-dev-dev-redis-{m:03}-{what}").as_str()),
                    "{n:?}"
                );
            }
        }
        let conns = a
            .alarms
            .iter()
            .find(|a| a.name.ends_with("-1-connections"))
            .unwrap();
        let max = max_connections(large.db_instance_class, true).unwrap();
        assert_eq!(conns.threshold, (max * 0.8).floor());
        assert_eq!(a.watched.len(), 2);
    }

    #[test]
    fn rds_mysql_alarms_on_its_allocated_storage_and_has_no_replica_to_lag() {
        let a = alarms(&format!("  mysql: {{mode: rds, storageGb: 200}}\n{AWS}"));
        let free = a
            .alarms
            .iter()
            .find(|a| a.name.ends_with("-free-storage"))
            .unwrap();
        assert_eq!(
            (free.metric.as_str(), free.threshold),
            ("FreeStorageSpace", 20.0 * GIB)
        );
        assert!(!names(&a).iter().any(|n| n.ends_with("replica-lag")));
    }

    #[test]
    fn alarms_can_be_turned_off_and_their_actions_must_be_topics() {
        let off = format!("  redis: {{mode: elasticache}}\n{AWS}    alarms: {{enabled: false}}\n");
        assert!(!crate::sections::testing::ids(&steps(&off)).contains(&ids::ALARMS));
        let bad = format!("  redis: {{mode: elasticache}}\n{AWS}    alarms: {{actions: [arn:aws:sqs:us-west-2:1:q]}}\n");
        let (path, _, _) = at(&bad, "is not an SNS topic ARN");
        assert_eq!(path, "spec.aws.alarms.actions[0]");
        let none = steps("  bucket: {mode: none}\n");
        assert!(!crate::sections::testing::ids(&none).contains(&ids::ALARMS));
    }
}
