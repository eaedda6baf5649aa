//! `spec.aws.securityGroup`: a security group for the database and the cache that admits only
//! the cluster's security groups, on MySQL's and Redis's ports, and sends nothing out.

use crate::build::Builder;
use crate::check::Checker;
use crate::ids::{self, outputs, Input};
use crate::kinds::{DataPort, SecurityGroup};
use crate::model::RedisMode;
use crate::resolve::Resolved;

const FIELD: &str = "spec.aws.securityGroup";

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let Some(g) = &r.aws.security_group else {
        return;
    };
    if g.allow_from.is_empty() {
        c.value_help(
            &format!("{FIELD}.allowFrom"),
            "the group would admit no one",
            "name the cluster's security group (aws eks describe-cluster --query cluster.resourcesVpcConfig.clusterSecurityGroupId)",
        );
    }
    for (i, sg) in g.allow_from.iter().enumerate() {
        if !sg.starts_with("sg-") || sg.len() < 4 {
            c.value(
                &format!("{FIELD}.allowFrom[{i}]"),
                format!("`{sg}` is not a security group id (sg-...)"),
            );
        }
    }
    if ports(r).is_empty() {
        c.value_help(
            FIELD,
            "neither the database nor the cache is on AWS: the group would guard nothing",
            "remove it, or set mysql.mode: rds / aurora or redis.mode: elasticache",
        );
    }
}

/// The ports of what the group guards: the database's and the cache's, when wbstack makes them.
fn ports(r: &Resolved) -> Vec<DataPort> {
    let mut v = Vec::new();
    if r.mysql_on_aws() {
        v.push(DataPort {
            port: 3306,
            what: "MySQL".into(),
        });
    }
    if r.spec.redis.mode == RedisMode::Elasticache {
        v.push(DataPort {
            port: r.spec.redis.port.unwrap_or(6379),
            what: "Redis".into(),
        });
    }
    v
}

/// The group's output the database and the cache read, when the plan makes it.
pub(crate) fn input(r: &Resolved) -> Option<Input> {
    r.aws
        .security_group
        .as_ref()
        .map(|_| Input::new(ids::SECURITY_GROUP, outputs::ID))
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    let Some(g) = &r.aws.security_group else {
        return;
    };
    let Some(subnet) = r.aws.subnet_ids.first() else {
        return;
    };
    b.step(
        ids::SECURITY_GROUP,
        SecurityGroup {
            name: format!("wbstack-{}-data", r.env),
            description: format!(
                "wbstack {}: the database and the cache, from the cluster only",
                r.env
            ),
            subnet: subnet.clone(),
            allow_from: g.allow_from.clone(),
            ports: ports(r),
        },
    );
}

#[cfg(test)]
mod tests {
    use crate::ids;
    use crate::kinds::{DataPort, StepKind};
    use crate::sections::testing::{at, ids, kind, steps, AWS};

    const STORES: &str = "  mysql: {mode: aurora}\n  redis: {mode: elasticache}\n";

    #[test]
    fn the_group_guards_the_database_and_the_cache_and_both_wear_it() {
        let s = steps(&format!(
            "{STORES}{AWS}    securityGroup: {{allowFrom: [sg-0node]}}\n"
        ));
        let StepKind::SecurityGroup(g) = kind(&s, ids::SECURITY_GROUP) else {
            panic!("not a security group")
        };
        assert_eq!(g.name, "wbstack-dev-data");
        assert_eq!(g.subnet, "subnet-0a");
        assert_eq!(g.allow_from, ["sg-0node"]);
        let ports: Vec<u16> = g.ports.iter().map(|DataPort { port, .. }| *port).collect();
        assert_eq!(ports, [3306, 6379]);
        let StepKind::MysqlDatabase(db) = kind(&s, ids::MYSQL) else {
            panic!()
        };
        assert_eq!(db.security_group.map(|i| i.step), Some(ids::SECURITY_GROUP));
        let StepKind::RedisCache(c) = kind(&s, ids::REDIS) else {
            panic!()
        };
        assert_eq!(c.security_group.map(|i| i.step), Some(ids::SECURITY_GROUP));
        let order = ids(&s);
        let at_sg = order.iter().position(|i| *i == ids::SECURITY_GROUP);
        assert!(
            at_sg < order.iter().position(|i| *i == ids::MYSQL),
            "{order:?}"
        );
    }

    #[test]
    fn without_it_nothing_is_made_and_nothing_reads_it() {
        let s = steps(&format!("{STORES}{AWS}"));
        assert!(!ids(&s).contains(&ids::SECURITY_GROUP));
        let StepKind::MysqlDatabase(db) = kind(&s, ids::MYSQL) else {
            panic!()
        };
        assert!(db.security_group.is_none());
    }

    #[test]
    fn a_bad_source_and_a_group_with_nothing_to_guard_are_pointed_at() {
        let spec = format!("{STORES}{AWS}    securityGroup:\n      allowFrom: [node-group]\n");
        assert_eq!(
            at(&spec, "not a security group id"),
            ("spec.aws.securityGroup.allowFrom[0]".into(), 14, 19)
        );
        let nothing =
            format!("  bucket: {{mode: s3}}\n{AWS}    securityGroup: {{allowFrom: [sg-1]}}\n");
        assert_eq!(
            at(&nothing, "would guard nothing").0,
            "spec.aws.securityGroup"
        );
    }
}
