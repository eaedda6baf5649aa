//! MySQL on RDS: an Aurora MySQL 8.0 cluster with its instances or a single MySQL 8 instance,
//! encrypted with the environment's KMS key, its master password read from Secrets Manager.

use crate::clients::Aws;
use crate::kind::{AwsStepKind, Grants};
use crate::own::{has_code, not_owned, outputs, tags, Tolerate};
use crate::poll::poll;
use crate::rds_changes::{changes, has, Settings};
use crate::rds_groups::{pairs, tag};
use crate::secrets::read_secret;
use async_trait::async_trait;
use aws_sdk_rds::operation::modify_db_instance::builders::ModifyDBInstanceFluentBuilder as ModifyInstance;
use aws_sdk_rds::types::{DbCluster, DbInstance};
use serde_json::json;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, MysqlDatabase};

/// Statuses after which waiting is pointless.
const TERMINAL: [&str; 8] = [
    "failed",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-restore",
    "incompatible-option-group",
    "storage-full",
    "inaccessible-encryption-credentials",
    "restore-error",
];

/// Days Performance Insights keeps: the free tier.
const INSIGHTS_DAYS: i32 = 7;
const INSTANCE_ABSENT: [&str; 2] = ["DBInstanceNotFound", "DBInstanceNotFoundFault"];
const CLUSTER_ABSENT: [&str; 1] = ["DBClusterNotFoundFault"];

/// An Aurora MySQL cluster with its instances, or a single RDS MySQL instance.
pub struct MysqlDatabaseStep {
    pub(crate) aws: Aws,
    pub(crate) step: String,
    pub(crate) spec: MysqlDatabase,
    /// Whether this process asked for a change: its wait then lasts until RDS shows it (a
    /// change just accepted may not show as pending yet).
    asked: std::sync::atomic::AtomicBool,
}

/// What the database looks like now.
enum Db {
    Absent,
    Status {
        status: String,
        ready: bool,
        outputs: Outputs,
        owned: bool,
        /// An Aurora cluster with instances still to be created.
        incomplete: bool,
        /// Its settings, to compare with the plan's.
        settings: Box<Settings>,
        /// A change RDS has accepted and not yet made (pending modified values).
        in_flight: bool,
    },
}

impl MysqlDatabaseStep {
    pub fn new(aws: Aws, step: &str, spec: MysqlDatabase) -> Self {
        MysqlDatabaseStep {
            aws,
            step: step.to_owned(),
            spec,
            asked: Default::default(),
        }
    }

    pub(crate) fn instance_ids(&self) -> Vec<String> {
        self.spec.instance_ids()
    }

    pub(crate) async fn instance(&self, id: &str) -> Result<Option<DbInstance>, StepError> {
        let d = self
            .aws
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .tolerate(&INSTANCE_ABSENT, "DescribeDBInstances", id)?;
        Ok(d.and_then(|d| d.db_instances().first().cloned()))
    }

    pub(crate) async fn cluster(&self) -> Result<Option<DbCluster>, StepError> {
        let id = &self.spec.identifier;
        let d = self
            .aws
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
            .tolerate(&CLUSTER_ABSENT, "DescribeDBClusters", id)?;
        Ok(d.and_then(|d| d.db_clusters().first().cloned()))
    }

    async fn look(&self) -> Result<Db, StepError> {
        if self.spec.aurora {
            self.look_cluster().await
        } else {
            self.look_instance().await
        }
    }

    async fn look_cluster(&self) -> Result<Db, StepError> {
        let Some(c) = self.cluster().await? else {
            return Ok(Db::Absent);
        };
        let owned = self.aws.owns(&self.step, &pairs(c.tag_list()));
        let mut status = c.status().unwrap_or("unknown").to_owned();
        let mut ready = status == "available";
        let mut incomplete = false;
        let mut instances = Vec::new();
        for id in self.instance_ids() {
            match self.instance(&id).await? {
                None => {
                    // Missing instances are a change to make (`instances`), not unreadiness.
                    incomplete = true;
                    status = format!("{status}; instance {id} missing");
                }
                Some(i) => {
                    let s = i.db_instance_status().unwrap_or("unknown");
                    if s != "available" {
                        ready = false;
                    }
                    if TERMINAL.contains(&s) {
                        status = s.to_owned();
                    }
                    instances.push(i);
                }
            }
        }
        let settings = Box::new(Settings::of_cluster(
            &c,
            &instances,
            &self.spec.instance_class,
            !self.spec.apply_immediately,
        ));
        let outputs = outputs(&[
            // Absent while the cluster is being made: published as null, which a reader refuses.
            ("endpoint", json!(c.endpoint())),
            ("reader_endpoint", json!(c.reader_endpoint())),
            ("port", json!(c.port().unwrap_or(3306))),
            ("arn", json!(c.db_cluster_arn())),
            ("database", json!(self.spec.database)),
        ]);
        let in_flight = cluster_pending(&c) || instances.iter().any(instance_pending);
        Ok(Db::Status {
            status,
            ready,
            outputs,
            owned,
            incomplete,
            settings,
            in_flight,
        })
    }

    async fn look_instance(&self) -> Result<Db, StepError> {
        let Some(i) = self.instance(&self.spec.identifier).await? else {
            return Ok(Db::Absent);
        };
        let owned = self.aws.owns(&self.step, &pairs(i.tag_list()));
        let status = i.db_instance_status().unwrap_or("unknown").to_owned();
        let outputs = outputs(&[
            ("endpoint", json!(i.endpoint().and_then(|e| e.address()))),
            (
                "port",
                json!(i.endpoint().and_then(|e| e.port()).unwrap_or(3306)),
            ),
            ("arn", json!(i.db_instance_arn())),
            ("database", json!(self.spec.database)),
        ]);
        Ok(Db::Status {
            ready: status == "available",
            status,
            outputs,
            owned,
            incomplete: false,
            settings: Box::new(Settings::of_instance(&i, !self.spec.apply_immediately)),
            in_flight: instance_pending(&i),
        })
    }

    async fn create_instance(
        &self,
        id: &str,
        ctx: &StepCtx,
        password: Option<&str>,
    ) -> Result<(), StepError> {
        // Made by an interrupted run: adopt it rather than ask again.
        if self.instance(id).await?.is_some() {
            return Ok(());
        }
        let s = &self.spec;
        let params = ctx.need_str(s.instance_params.step, s.instance_params.output)?;
        let mut req = self
            .aws
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class(&s.instance_class)
            .engine(if s.aurora { "aurora-mysql" } else { "mysql" })
            .db_parameter_group_name(params)
            // Said explicitly: the API's default depends on the subnets and can be public.
            .publicly_accessible(false)
            .enable_performance_insights(s.performance_insights)
            .set_tags(Some(tags(&self.aws, &self.step, tag)));
        if s.performance_insights {
            req = req
                .performance_insights_retention_period(INSIGHTS_DAYS)
                .performance_insights_kms_key_id(ctx.need_str(s.kms.step, s.kms.output)?);
        }
        if s.aurora {
            req = req.db_cluster_identifier(&s.identifier);
        } else {
            req = req
                .engine_version(&s.engine_version)
                .allocated_storage(s.storage_gb as i32)
                .storage_type("gp3")
                .storage_encrypted(true)
                .kms_key_id(ctx.need_str(s.kms.step, s.kms.output)?)
                .master_username(&s.user)
                .master_user_password(password.ok_or_else(|| {
                    StepError::permanent(format!("MySQL instance {id} needs its master password"))
                })?)
                .db_name(&s.database)
                .db_subnet_group_name(ctx.need_str(s.subnets.step, s.subnets.output)?)
                .set_vpc_security_group_ids(Some(s.security_group_ids.clone()))
                .set_enable_cloudwatch_logs_exports(Some(s.log_exports.clone()))
                .backup_retention_period(s.backup_retention_days as i32)
                .deletion_protection(s.deletion_protection)
                .multi_az(s.instances > 1);
        }
        req.send()
            .await
            .tolerate(
                &["DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"],
                "CreateDBInstance",
                id,
            )
            .map(|_| ())
    }

    async fn create_cluster(&self, ctx: &StepCtx, password: &str) -> Result<(), StepError> {
        let s = &self.spec;
        let sent = self
            .aws
            .rds
            .create_db_cluster()
            .db_cluster_identifier(&s.identifier)
            .engine("aurora-mysql")
            .engine_version(&s.engine_version)
            .master_username(&s.user)
            .master_user_password(password)
            .database_name(&s.database)
            .db_subnet_group_name(ctx.need_str(s.subnets.step, s.subnets.output)?)
            .set_vpc_security_group_ids(Some(s.security_group_ids.clone()))
            .set_enable_cloudwatch_logs_exports(Some(s.log_exports.clone()))
            .storage_encrypted(true)
            .kms_key_id(ctx.need_str(s.kms.step, s.kms.output)?)
            .backup_retention_period(s.backup_retention_days as i32)
            .deletion_protection(s.deletion_protection)
            .db_cluster_parameter_group_name(
                ctx.need_str(s.cluster_params.step, s.cluster_params.output)?,
            )
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .send()
            .await;
        // moto names a cluster's automated snapshot by the minute and keeps it: a second
        // CreateDBCluster within the minute (the SDK re-sending one whose answer was lost, or
        // a replacement) is answered with this instead of DBClusterAlreadyExistsFault. It passes:
        // the engine looks again, and finds the cluster or creates it once the minute turns.
        if let Err(e) = &sent {
            if has_code(e, &["DBClusterSnapshotAlreadyExistsFault"]) {
                return Err(StepError::transient(format!(
                    "CreateDBCluster {}: {}",
                    s.identifier,
                    crate::clients::describe(e)
                )));
            }
        }
        sent.tolerate(
            &["DBClusterAlreadyExistsFault"],
            "CreateDBCluster",
            &s.identifier,
        )
        .map(|_| ())
    }

    /// The log exports to turn on and off, from what the database exports now.
    async fn log_export_change(
        &self,
    ) -> Result<aws_sdk_rds::types::CloudwatchLogsExportConfiguration, StepError> {
        let want = Settings::desired(&self.spec);
        let live = match self.look().await? {
            Db::Status { settings, .. } => *settings,
            Db::Absent => want.clone(),
        };
        Ok(crate::rds_changes::log_export_change(&live, &want))
    }

    async fn live_changes(&self) -> Result<Vec<Change>, StepError> {
        Ok(match self.look().await? {
            Db::Status { settings, .. } => self.against_plan(&settings),
            Db::Absent => Vec::new(),
        })
    }

    fn against_plan(&self, live: &Settings) -> Vec<Change> {
        changes(live, &Settings::desired(&self.spec))
    }

    /// How an instance-class change goes, as `plan` tells it.
    async fn class_order(&self) -> Result<String, StepError> {
        let s = &self.spec;
        if !s.aurora {
            return Ok(if s.instances > 1 {
                "Multi-AZ: RDS changes the standby, fails over to it, then changes the old primary"
            } else {
                "one instance: it restarts in the new class (no standby)"
            }
            .to_owned());
        }
        if !s.apply_immediately {
            return Ok("queued for each instance's maintenance window; set spec.aws.applyChanges: immediately to roll it reader by reader with a failover".to_owned());
        }
        let members = self.members().await?;
        let moves: Vec<String> = crate::rds_roll::order(&members, &s.instance_class)
            .iter()
            .map(|m| m.to_string())
            .collect();
        Ok(moves.join(", then "))
    }

    /// Applies in place what differs; what only a replacement could do was refused before.
    async fn modify(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let s = &self.spec;
        let c = self.live_changes().await?;
        if c.is_empty() {
            return Ok(());
        }
        let when = if s.apply_immediately {
            "now"
        } else {
            "in the maintenance window"
        };
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        ctx.progress(format!(
            "modifying {} ({}) {when}",
            s.identifier,
            fields.join(", ")
        ));
        if s.aurora {
            self.modify_cluster(ctx, &c).await
        } else {
            self.modify_instance(ctx, &s.identifier, &c, true).await
        }
    }

    async fn modify_cluster(&self, ctx: &StepCtx, c: &[Change]) -> Result<(), StepError> {
        let s = &self.spec;
        let cluster_fields = [
            "backup_retention_days",
            "deletion_protection",
            "engine_version",
            "security_group_ids",
            "log_exports",
        ];
        if cluster_fields.iter().any(|f| has(c, f)) {
            let mut req = self
                .aws
                .rds
                .modify_db_cluster()
                .db_cluster_identifier(&s.identifier)
                .apply_immediately(s.apply_immediately)
                .backup_retention_period(s.backup_retention_days as i32)
                .deletion_protection(s.deletion_protection);
            if has(c, "engine_version") {
                req = req.engine_version(&s.engine_version);
            }
            if has(c, "security_group_ids") {
                req = req.set_vpc_security_group_ids(Some(s.security_group_ids.clone()));
            }
            if has(c, "log_exports") {
                req = req.cloudwatch_logs_export_configuration(self.log_export_change().await?);
            }
            req.send()
                .await
                .map_err(|e| crate::clients::classify(e, "ModifyDBCluster", &s.identifier))?;
        }
        if has(c, "performance_insights") {
            for id in self.instance_ids() {
                if self.instance(&id).await?.is_some() {
                    self.modify_insights(ctx, &id).await?;
                }
            }
        }
        if has(c, "instance_class") && s.apply_immediately {
            self.roll(ctx).await?;
        } else if has(c, "instance_class") {
            // Queued for each instance's maintenance window, where RDS applies it.
            for id in self.instance_ids() {
                if self.instance(&id).await?.is_some() {
                    self.modify_instance(ctx, &id, c, false).await?;
                }
            }
        }
        // Readers: the missing ones are made (in `apply`), the ones past the plan's count go.
        for id in self.surplus_instances().await? {
            ctx.progress(format!("removing reader {id}"));
            self.delete_instance(&id, &INSTANCE_ABSENT).await?;
        }
        Ok(())
    }

    /// DeleteDBInstance of an Aurora member (no snapshot: the cluster keeps the data), the
    /// `gone` codes meaning it is already going or gone.
    async fn delete_instance(&self, id: &str, gone: &[&str]) -> Result<(), StepError> {
        self.aws
            .rds
            .delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .send()
            .await
            .tolerate(gone, "DeleteDBInstance", id)
            .map(|_| ())
    }

    /// Instances of the cluster named as this step names them, past the plan's count.
    async fn surplus_instances(&self) -> Result<Vec<String>, StepError> {
        let s = &self.spec;
        let Some(c) = self.cluster().await? else {
            return Ok(Vec::new());
        };
        let keep = self.instance_ids();
        let prefix = format!("{}-", s.identifier);
        Ok(c.db_cluster_members()
            .iter()
            .filter_map(|m| m.db_instance_identifier())
            .filter(|id| {
                id.strip_prefix(&prefix)
                    .is_some_and(|n| n.parse::<u32>().is_ok())
                    && !keep.iter().any(|k| k == id)
            })
            .map(str::to_owned)
            .collect())
    }

    /// A ModifyDBInstance with the plan's Performance Insights: kept the free tier's days and
    /// encrypted with the environment's key when on.
    fn with_insights(
        &self,
        ctx: &StepCtx,
        req: ModifyInstance,
    ) -> Result<ModifyInstance, StepError> {
        let s = &self.spec;
        let req = req.enable_performance_insights(s.performance_insights);
        Ok(if s.performance_insights {
            req.performance_insights_retention_period(INSIGHTS_DAYS)
                .performance_insights_kms_key_id(ctx.need_str(s.kms.step, s.kms.output)?)
        } else {
            req
        })
    }

    /// ModifyDBInstance of an Aurora member's Performance Insights alone (its class is rolled
    /// separately, reader by reader).
    async fn modify_insights(&self, ctx: &StepCtx, id: &str) -> Result<(), StepError> {
        let s = &self.spec;
        let req = self
            .aws
            .rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .apply_immediately(s.apply_immediately);
        self.with_insights(ctx, req)?
            .send()
            .await
            .map_err(|e| crate::clients::classify(e, "ModifyDBInstance", id))?;
        Ok(())
    }

    /// ModifyDBInstance with the instance-level fields (all of them for a single instance).
    async fn modify_instance(
        &self,
        ctx: &StepCtx,
        id: &str,
        c: &[Change],
        single: bool,
    ) -> Result<(), StepError> {
        let s = &self.spec;
        let mut req = self
            .aws
            .rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .apply_immediately(s.apply_immediately)
            .db_instance_class(&s.instance_class);
        if single && has(c, "performance_insights") {
            req = self.with_insights(ctx, req)?;
        }
        if single {
            req = req
                .backup_retention_period(s.backup_retention_days as i32)
                .deletion_protection(s.deletion_protection);
            if has(c, "engine_version") {
                req = req.engine_version(&s.engine_version);
            }
            if has(c, "storage_gb") {
                req = req.allocated_storage(s.storage_gb as i32);
            }
            if has(c, "security_group_ids") {
                req = req.set_vpc_security_group_ids(Some(s.security_group_ids.clone()));
            }
            if has(c, "log_exports") {
                req = req.cloudwatch_logs_export_configuration(self.log_export_change().await?);
            }
        }
        req.send()
            .await
            .map_err(|e| crate::clients::classify(e, "ModifyDBInstance", id))?;
        Ok(())
    }

    /// The identifier of a final snapshot taken now.
    /// The final snapshot a teardown takes, named and told (`None` when the plan or
    /// `--skip-final-snapshot` says none); the automated backups are kept with it.
    fn final_snapshot(&self, ctx: &StepCtx) -> Option<String> {
        if !self.spec.final_snapshot || self.aws.skip_final_snapshot {
            return None;
        }
        let name = self.snapshot_name();
        ctx.progress(format!(
            "keeping a final snapshot {name} and the automated backups of {} (region {})",
            self.spec.identifier, self.aws.region
        ));
        Some(name)
    }

    fn snapshot_name(&self) -> String {
        format!(
            "{}-final-{}",
            self.spec.identifier,
            wbstack_engine::now_ms() / 1000
        )
    }

    async fn destroy_cluster(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let s = &self.spec;
        for id in self.instance_ids() {
            if self.instance(&id).await?.is_none() {
                continue;
            }
            let mut gone = INSTANCE_ABSENT.to_vec();
            gone.push("InvalidDBInstanceState");
            self.delete_instance(&id, &gone).await?;
        }
        // Instances go before their cluster: wait (cancellably) until they are gone.
        for id in self.instance_ids() {
            poll(ctx, || async {
                Ok(self.instance(&id).await?.is_none().then_some(()))
            })
            .await?;
        }
        if !s.deletion_protection {
            // Lifted (it may have been set by hand); a refusal names this call, not the delete.
            self.aws
                .rds
                .modify_db_cluster()
                .db_cluster_identifier(&s.identifier)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                // Gone, or already changing (a teardown resumed): the delete says what it is.
                .tolerate(
                    &["DBClusterNotFoundFault", "InvalidDBClusterStateFault"],
                    "ModifyDBCluster",
                    &s.identifier,
                )?;
        }
        let mut req = self
            .aws
            .rds
            .delete_db_cluster()
            .db_cluster_identifier(&s.identifier);
        req = match self.final_snapshot(ctx) {
            Some(name) => req.final_db_snapshot_identifier(name),
            None => req.skip_final_snapshot(true).delete_automated_backups(true),
        };
        req.send()
            .await
            .tolerate(&CLUSTER_ABSENT, "DeleteDBCluster", &s.identifier)
            .map(|_| ())
    }

    async fn destroy_instance(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let s = &self.spec;
        if !s.deletion_protection {
            self.aws
                .rds
                .modify_db_instance()
                .db_instance_identifier(&s.identifier)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .tolerate(
                    &[
                        "DBInstanceNotFound",
                        "DBInstanceNotFoundFault",
                        "InvalidDBInstanceState",
                        "InvalidDBInstanceStateFault",
                    ],
                    "ModifyDBInstance",
                    &s.identifier,
                )?;
        }
        let mut req = self
            .aws
            .rds
            .delete_db_instance()
            .db_instance_identifier(&s.identifier);
        req = match self.final_snapshot(ctx) {
            Some(name) => req
                .final_db_snapshot_identifier(name)
                .delete_automated_backups(false),
            None => req.skip_final_snapshot(true).delete_automated_backups(true),
        };
        req.send()
            .await
            .tolerate(&INSTANCE_ABSENT, "DeleteDBInstance", &s.identifier)
            .map(|_| ())
    }
}

#[async_trait]
impl Step for MysqlDatabaseStep {
    fn kind(&self) -> &str {
        MysqlDatabase::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, _ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        if self.aws.adopts(&self.step) {
            return Ok(Vec::new());
        }
        let mut c = self.live_changes().await?;
        if has(&c, "instance_class") {
            c.push(Change::in_place(
                "instance_class.order",
                "",
                self.class_order().await?,
            ));
        }
        Ok(c)
    }
    fn fingerprint(&self) -> Fingerprint {
        let s = &self.spec;
        Fingerprint::of(&(
            "mysql",
            &s.identifier,
            s.aurora,
            s.instances,
            &s.instance_class,
            &s.engine_version,
            &s.database,
            &s.user,
            s.storage_gb,
            s.backup_retention_days,
            s.deletion_protection,
            &s.security_group_ids,
        ))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let id = &self.spec.identifier;
        Ok(match self.look().await? {
            Db::Absent => Observation::Absent,
            Db::Status { owned: false, .. } if !self.aws.adopts(&self.step) => {
                not_owned("database", id, &self.aws)
            }
            // Ours, half-made (a run stopped between the cluster and its instances): apply,
            // which is idempotent, completes it.
            Db::Status {
                incomplete: true,
                owned: true,
                settings,
                ..
            } if settings.instances == 0 => Observation::Absent,
            // Adopted, but not all there: someone else's cluster is not completed by us.
            Db::Status {
                incomplete: true,
                owned: false,
                status,
                ..
            } => Observation::Failed {
                message: format!("the adopted database {id} is incomplete ({status})"),
            },
            Db::Status { status, .. } if TERMINAL.contains(&status.as_str()) => {
                Observation::Failed {
                    message: format!("database {id} is {status}"),
                }
            }
            // An adopted database is used as it is; ours is judged by its live settings.
            Db::Status {
                ready: true,
                outputs,
                owned,
                settings,
                ..
            } if owned && !self.aws.adopts(&self.step) => {
                let c = self.against_plan(&settings);
                Observation::Ready {
                    outputs,
                    fingerprint: Some(if c.is_empty() {
                        self.fingerprint()
                    } else {
                        Fingerprint::of(&("mysql-live", &c))
                    }),
                }
            }
            Db::Status {
                ready: true,
                outputs,
                ..
            } => Observation::ready(outputs),
            Db::Status { status, .. } => Observation::InProgress {
                detail: Some(status),
            },
        })
    }
    async fn apply(&self, ctx: &StepCtx, a: Action) -> Result<(), StepError> {
        let s = &self.spec;
        if a == Action::Update {
            self.asked.store(true, std::sync::atomic::Ordering::Relaxed);
            if s.aurora {
                // New readers first, in the plan's class: a class change then fails over to
                // one of them instead of restarting the writer.
                for id in self.instance_ids() {
                    self.create_instance(&id, ctx, None).await?;
                }
            }
            return self.modify(ctx).await;
        }
        let pw = ctx.need_secret(s.password.step, s.password.output)?;
        let password = read_secret(&self.aws, &pw).await?;
        if !s.aurora {
            return self
                .create_instance(&s.identifier, ctx, Some(password.expose()))
                .await;
        }
        // A cluster an interrupted run made is completed, not created again.
        if !matches!(self.look().await?, Db::Status { .. }) {
            match &s.restore {
                Some(r) => self.restore_cluster(ctx, r, password.expose()).await?,
                None => self.create_cluster(ctx, password.expose()).await?,
            }
        }
        for id in self.instance_ids() {
            self.create_instance(&id, ctx, None).await?;
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        poll(ctx, || async {
            Ok(match self.look().await? {
                Db::Status { status, .. } if TERMINAL.contains(&status.as_str()) => {
                    return Err(StepError::permanent(format!(
                        "database {} is {status}",
                        self.spec.identifier
                    )))
                }
                Db::Status {
                    ready: true,
                    outputs,
                    owned,
                    settings,
                    in_flight,
                    ..
                } => {
                    // A change asked for now is done when RDS shows it, not when it is accepted.
                    // Without one asked by this process (a resumed run), the wait ends once
                    // nothing is in flight: what is left is applied by the run, not waited for.
                    let asked = self.asked.load(std::sync::atomic::Ordering::Relaxed);
                    let pending =
                        owned && !self.aws.adopts(&self.step) && (asked || in_flight) && {
                            let c = self.against_plan(&settings);
                            if !c.is_empty() {
                                ctx.progress(format!("applying {}", c[0]));
                            }
                            !c.is_empty()
                        };
                    (!pending).then_some(outputs)
                }
                Db::Status { status, .. } => {
                    ctx.progress(status);
                    None
                }
                Db::Absent => None,
            })
        })
        .await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        if self.spec.aurora {
            self.destroy_cluster(ctx).await
        } else {
            self.destroy_instance(ctx).await
        }
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        poll(ctx, || async {
            Ok(matches!(self.look().await?, Db::Absent).then_some(()))
        })
        .await
    }
}

/// Whether an instance has a change RDS accepted and has not made yet.
fn instance_pending(i: &DbInstance) -> bool {
    i.pending_modified_values().is_some_and(|p| {
        p.db_instance_class().is_some()
            || p.allocated_storage().is_some()
            || p.engine_version().is_some()
            || p.backup_retention_period().is_some()
            || p.multi_az().is_some()
    })
}

/// Whether a cluster has a change RDS accepted and has not made yet.
fn cluster_pending(c: &DbCluster) -> bool {
    c.pending_modified_values().is_some_and(|p| {
        p.engine_version().is_some()
            || p.backup_retention_period().is_some()
            || p.allocated_storage().is_some()
    })
}

impl AwsStepKind for MysqlDatabase {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        crate::with_group::wearing(
            aws,
            id,
            self,
            self.security_group,
            |aws, id, mut s, group| {
                s.security_group_ids.extend(group.map(str::to_owned));
                std::sync::Arc::new(MysqlDatabaseStep::new(aws, id, s))
            },
        )
    }
    fn grants(&self, _env: &str) -> Grants {
        let mut statements = crate::policy::database(&self.identifier);
        let restore = self.restore.as_ref();
        statements.extend(restore.map(|r| crate::policy::db_restore(&self.identifier, r)));
        Grants {
            statements,
            service_role: Some("rds.amazonaws.com"),
        }
    }
}
