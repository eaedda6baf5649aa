//! `spec.restore`: an environment brought up from another's data. The database comes from a
//! point in time of the source's Aurora cluster or from one of its snapshots, Redis from a
//! snapshot of the source's group; `wbstack restore` writes this section.

use crate::check::Checker;
use crate::model::{MysqlMode, RedisMode, RestoreSpec};
use crate::resolve::Resolved;
use crate::DbRestore;

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let Some(s) = &r.spec.restore else {
        return;
    };
    if s.from == r.plan.metadata.name {
        c.value_help(
            "spec.restore.from",
            "an environment cannot be restored from itself",
            "name the environment whose data is restored",
        );
    }
    match (&s.to_time, &s.snapshot) {
        (Some(_), Some(_)) => c.at(
            "spec.restore.snapshot",
            true,
            "give either toTime or snapshot, not both",
            Some("a point in time of the source database, or one of its snapshots"),
        ),
        (None, None) => c.at(
            "spec.restore",
            true,
            "a restore needs toTime (a point in time, or `latest`) or snapshot",
            Some("add toTime: latest"),
        ),
        (Some(t), None) if t != "latest" && to_time(t).is_none() => c.value_help(
            "spec.restore.toTime",
            format!("`{t}` is not an RFC 3339 time"),
            "e.g. 2026-12-05T10:30:00Z, or latest",
        ),
        _ => {}
    }
    if r.spec.mysql.mode != MysqlMode::Aurora {
        c.value_help(
            "spec.mysql.mode",
            "a restore brings the database back from an Aurora cluster's point in time or snapshot",
            "restore an environment whose mysql.mode is aurora",
        );
    }
    if s.redis_snapshot.is_some() && r.spec.redis.mode != RedisMode::Elasticache {
        c.value_help(
            "spec.restore.redisSnapshot",
            "a Redis snapshot seeds an ElastiCache group",
            "remove it, or set spec.redis.mode to elasticache",
        );
    }
}

/// The time in `t` (RFC 3339), as AWS takes it.
fn to_time(t: &str) -> Option<String> {
    let parsed =
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    (parsed.unix_timestamp() > 0).then(|| t.to_owned())
}

/// The database's restore, for the step that makes it.
pub(super) fn database(s: &RestoreSpec) -> DbRestore {
    DbRestore {
        source: format!("{}-mysql", s.from),
        to_time: s
            .to_time
            .as_deref()
            .filter(|t| *t != "latest")
            .and_then(to_time),
        snapshot: s.snapshot.clone(),
    }
}

/// The cache's seed: the source's group and the snapshot named, if one is.
pub(super) fn cache(s: &RestoreSpec) -> (String, Option<String>) {
    (format!("{}-redis", s.from), s.redis_snapshot.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339() {
        assert!(to_time("2026-12-05T10:30:00Z").is_some());
        assert!(to_time("2026-12-05T10:30:00+01:00").is_some());
        assert!(to_time("yesterday").is_none());
        assert!(to_time("2026-12-05").is_none());
    }
}

#[cfg(test)]
mod compiled {
    use crate::sections::testing::{at, kind, steps, AWS};
    use crate::{ids, StepKind};

    const AURORA: &str = "  mysql: {mode: aurora}\n  redis: {mode: elasticache}\n";

    #[test]
    fn a_restore_names_one_source_point_and_an_aurora_database() {
        let both =
            format!("{AURORA}{AWS}  restore: {{from: prod, toTime: latest, snapshot: s1}}\n");
        assert_eq!(at(&both, "not both").0, "spec.restore.snapshot");
        let neither = format!("{AURORA}{AWS}  restore: {{from: prod}}\n");
        assert_eq!(at(&neither, "a restore needs toTime").0, "spec.restore");
        let itself = format!("{AURORA}{AWS}  restore: {{from: dev, toTime: latest}}\n");
        assert_eq!(at(&itself, "from itself").0, "spec.restore.from");
        let rds =
            format!("  mysql: {{mode: rds}}\n{AWS}  restore: {{from: prod, toTime: latest}}\n");
        assert_eq!(
            at(&rds, "Aurora cluster's point in time").0,
            "spec.mysql.mode"
        );
        let bad_time = format!("{AURORA}{AWS}  restore: {{from: prod, toTime: yesterday}}\n");
        assert_eq!(
            at(&bad_time, "not an RFC 3339 time").0,
            "spec.restore.toTime"
        );
    }

    #[test]
    fn the_database_and_cache_are_made_from_the_sources() {
        let spec = format!("{AURORA}{AWS}  restore: {{from: prod, toTime: '2026-12-05T10:30:00Z', redisSnapshot: prod-daily}}\n");
        let s = steps(&spec);
        let StepKind::MysqlDatabase(db) = kind(&s, ids::MYSQL) else {
            panic!("not a database")
        };
        let r = db.restore.as_ref().unwrap();
        assert_eq!(r.source, "prod-mysql");
        assert_eq!(r.to_time.as_deref(), Some("2026-12-05T10:30:00Z"));
        let StepKind::RedisCache(c) = kind(&s, ids::REDIS) else {
            panic!("not a cache")
        };
        assert_eq!(
            c.restore,
            Some(("prod-redis".into(), Some("prod-daily".into())))
        );
        let latest = steps(&format!(
            "{AURORA}{AWS}  restore: {{from: prod, toTime: latest}}\n"
        ));
        let StepKind::MysqlDatabase(db) = kind(&latest, ids::MYSQL) else {
            panic!("not a database")
        };
        assert_eq!(db.restore.as_ref().unwrap().to_time, None);
    }
}
