//! The settings of a running database, field by field against the plan's, and the calls that
//! change them in place: ModifyDBCluster, ModifyDBInstance, and readers added or removed. What
//! RDS can only have on a new database (another engine major version, database name, master
//! user, less storage) is reported as needing a replacement, which wbstack never does itself.

use aws_sdk_rds::types::{DbCluster, DbInstance};
use wbstack_engine::Change;
use wbstack_plan::MysqlDatabase;

/// One database's settings, as the plan wants them or as RDS reports them (with pending values
/// when changes wait for the maintenance window: what the window will apply counts as done).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub instance_class: String,
    pub instances: u32,
    pub backup_retention_days: u32,
    pub deletion_protection: bool,
    pub engine_version: String,
    pub storage_gb: u32,
    pub database: String,
    pub user: String,
    pub security_group_ids: Vec<String>,
    /// The logs exported to CloudWatch Logs, sorted.
    pub log_exports: Vec<String>,
    /// Performance Insights on every instance.
    pub performance_insights: bool,
}

impl Settings {
    pub fn desired(s: &MysqlDatabase) -> Settings {
        Settings {
            instance_class: s.instance_class.clone(),
            instances: if s.aurora { s.instances.max(1) } else { 1 },
            backup_retention_days: s.backup_retention_days,
            deletion_protection: s.deletion_protection,
            engine_version: s.engine_version.clone(),
            storage_gb: if s.aurora { 0 } else { s.storage_gb },
            database: s.database.clone(),
            user: s.user.clone(),
            security_group_ids: sorted(&s.security_group_ids),
            log_exports: sorted(&s.log_exports),
            performance_insights: s.performance_insights,
        }
    }

    /// An Aurora cluster's, with the classes of the instances the plan names (the first that
    /// differs from `want_class`, else that class).
    pub fn of_cluster(
        c: &DbCluster,
        instances: &[DbInstance],
        want_class: &str,
        with_pending: bool,
    ) -> Settings {
        let pending = c.pending_modified_values().filter(|_| with_pending);
        let classes: Vec<String> = instances
            .iter()
            .map(|i| instance_class(i, with_pending))
            .collect();
        // Settings AWS leaves out are compared as unset (`plan` shows them as empty).
        Settings {
            instance_class: classes
                .iter()
                .find(|c| c.as_str() != want_class)
                .or(classes.first())
                .cloned()
                .unwrap_or_default(),
            instances: c.db_cluster_members().len() as u32,
            backup_retention_days: pending
                .and_then(|p| p.backup_retention_period())
                .or(c.backup_retention_period())
                .unwrap_or(0) as u32,
            deletion_protection: c.deletion_protection().unwrap_or(false),
            engine_version: pending
                .and_then(|p| p.engine_version())
                .or(c.engine_version())
                .unwrap_or_default()
                .to_owned(),
            storage_gb: 0,
            database: c.database_name().unwrap_or_default().to_owned(),
            user: c.master_username().unwrap_or_default().to_owned(),
            security_group_ids: sorted(
                &c.vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            log_exports: sorted(c.enabled_cloudwatch_logs_exports()),
            // On only when every instance has it.
            performance_insights: !instances.is_empty()
                && instances
                    .iter()
                    .all(|i| i.performance_insights_enabled().unwrap_or(false)),
        }
    }

    /// A single instance's.
    pub fn of_instance(i: &DbInstance, with_pending: bool) -> Settings {
        let pending = i.pending_modified_values().filter(|_| with_pending);
        // Settings AWS leaves out are compared as unset (`plan` shows them as empty).
        Settings {
            instance_class: instance_class(i, with_pending),
            instances: 1,
            backup_retention_days: pending
                .and_then(|p| p.backup_retention_period())
                .or(i.backup_retention_period())
                .unwrap_or(0) as u32,
            deletion_protection: i.deletion_protection().unwrap_or(false),
            engine_version: pending
                .and_then(|p| p.engine_version())
                .or(i.engine_version())
                .unwrap_or_default()
                .to_owned(),
            storage_gb: pending
                .and_then(|p| p.allocated_storage())
                .or(i.allocated_storage())
                .unwrap_or(0) as u32,
            database: i.db_name().unwrap_or_default().to_owned(),
            user: i.master_username().unwrap_or_default().to_owned(),
            security_group_ids: sorted(
                &i.vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            log_exports: sorted(i.enabled_cloudwatch_logs_exports()),
            performance_insights: i.performance_insights_enabled().unwrap_or(false),
        }
    }
}

/// The class an instance has (or will have, with `with_pending`); unset when AWS leaves it out.
fn instance_class(i: &DbInstance, with_pending: bool) -> String {
    i.pending_modified_values()
        .filter(|_| with_pending)
        .and_then(|p| p.db_instance_class())
        .or(i.db_instance_class())
        .unwrap_or_default()
        .to_owned()
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// `8.0` of `8.0.39` or `8.0.mysql_aurora.3.05.2`.
fn major(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The fields that differ, live against desired. Security groups are compared only when the
/// plan names some.
pub fn changes(live: &Settings, want: &Settings) -> Vec<Change> {
    let mut out = Vec::new();
    let mut field = |name: &str, from: String, to: String, replaces: bool| {
        if from != to {
            out.push(if replaces {
                Change::replacing(name, from, to)
            } else {
                Change::in_place(name, from, to)
            });
        }
    };
    field(
        "instance_class",
        live.instance_class.clone(),
        want.instance_class.clone(),
        false,
    );
    field(
        "instances",
        live.instances.to_string(),
        want.instances.to_string(),
        false,
    );
    field(
        "backup_retention_days",
        live.backup_retention_days.to_string(),
        want.backup_retention_days.to_string(),
        false,
    );
    field(
        "deletion_protection",
        live.deletion_protection.to_string(),
        want.deletion_protection.to_string(),
        false,
    );
    field(
        "engine_version",
        live.engine_version.clone(),
        want.engine_version.clone(),
        major(&live.engine_version) != major(&want.engine_version),
    );
    if live.storage_gb != want.storage_gb {
        field(
            "storage_gb",
            live.storage_gb.to_string(),
            want.storage_gb.to_string(),
            want.storage_gb < live.storage_gb,
        );
    }
    field(
        "database",
        live.database.clone(),
        want.database.clone(),
        true,
    );
    field("user", live.user.clone(), want.user.clone(), true);
    field(
        "log_exports",
        live.log_exports.join(","),
        want.log_exports.join(","),
        false,
    );
    field(
        "performance_insights",
        live.performance_insights.to_string(),
        want.performance_insights.to_string(),
        false,
    );
    if !want.security_group_ids.is_empty() {
        field(
            "security_group_ids",
            live.security_group_ids.join(","),
            want.security_group_ids.join(","),
            false,
        );
    }
    out
}

/// Whether a field of `changes` is named `name`.
pub fn has(changes: &[Change], name: &str) -> bool {
    changes.iter().any(|c| c.field == name)
}

/// The CloudWatch Logs exports to turn on and off to go from `live` to `want`.
pub fn log_export_change(
    live: &Settings,
    want: &Settings,
) -> aws_sdk_rds::types::CloudwatchLogsExportConfiguration {
    let enable: Vec<String> = want
        .log_exports
        .iter()
        .filter(|l| !live.log_exports.contains(l))
        .cloned()
        .collect();
    let disable: Vec<String> = live
        .log_exports
        .iter()
        .filter(|l| !want.log_exports.contains(l))
        .cloned()
        .collect();
    aws_sdk_rds::types::CloudwatchLogsExportConfiguration::builder()
        .set_enable_log_types(Some(enable))
        .set_disable_log_types(Some(disable))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings {
            instance_class: "db.r6g.large".into(),
            instances: 2,
            backup_retention_days: 7,
            deletion_protection: true,
            engine_version: "8.0.mysql_aurora.3.05.2".into(),
            storage_gb: 0,
            database: "wandb_local".into(),
            user: "wandb".into(),
            security_group_ids: vec![],
            log_exports: vec![],
            performance_insights: true,
        }
    }

    #[test]
    fn log_exports_are_changed_in_place_by_turning_some_on_and_others_off() {
        let mut live = base();
        live.log_exports = vec!["error".into(), "general".into()];
        let mut want = base();
        want.log_exports = vec!["error".into(), "slowquery".into()];
        let c = changes(&live, &want);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            c[0].to_string(),
            "log_exports: error,general -> error,slowquery"
        );
        let conf = log_export_change(&live, &want);
        assert_eq!(conf.enable_log_types(), ["slowquery"]);
        assert_eq!(conf.disable_log_types(), ["general"]);
    }

    #[test]
    fn the_same_settings_are_no_change() {
        assert!(changes(&base(), &base()).is_empty());
    }

    #[test]
    fn size_retention_and_readers_change_in_place() {
        let want = Settings {
            instance_class: "db.r6g.xlarge".into(),
            instances: 3,
            backup_retention_days: 14,
            engine_version: "8.0.mysql_aurora.3.06.0".into(),
            ..base()
        };
        let c = changes(&base(), &want);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "instance_class",
                "instances",
                "backup_retention_days",
                "engine_version"
            ]
        );
        assert!(c.iter().all(|c| !c.replaces));
        assert_eq!(
            c[0].to_string(),
            "instance_class: db.r6g.large -> db.r6g.xlarge"
        );
    }

    #[test]
    fn what_only_a_new_database_can_have_is_marked_so() {
        let want = Settings {
            engine_version: "8.4.3".into(),
            database: "other".into(),
            ..base()
        };
        let c = changes(&base(), &want);
        assert!(c.iter().all(|c| c.replaces), "{c:?}");
        let shrink = changes(
            &Settings {
                storage_gb: 100,
                ..base()
            },
            &Settings {
                storage_gb: 50,
                ..base()
            },
        );
        assert!(shrink[0].replaces);
        let grow = changes(
            &Settings {
                storage_gb: 50,
                ..base()
            },
            &Settings {
                storage_gb: 100,
                ..base()
            },
        );
        assert!(!grow[0].replaces);
    }
}
