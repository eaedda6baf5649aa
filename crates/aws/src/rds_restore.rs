//! A database made from another's data: RestoreDBClusterToPointInTime (a time, or the latest
//! restorable one) or RestoreDBClusterFromSnapshot, into this environment's subnets, security
//! groups, parameters and KMS key, with its tags; then its master password is set to this
//! environment's own, so no credential of the source is used.

use crate::own::{tags, Tolerate};
use crate::rds_groups::tag;
use crate::rds_mysql::MysqlDatabaseStep;
use aws_sdk_rds::primitives::{DateTime, DateTimeFormat};
use wbstack_engine::{StepCtx, StepError};
use wbstack_plan::DbRestore;

const EXISTS: [&str; 1] = ["DBClusterAlreadyExistsFault"];

impl MysqlDatabaseStep {
    /// Restores the cluster (instances are made afterwards, as for a new one).
    pub(crate) async fn restore_cluster(
        &self,
        ctx: &StepCtx,
        r: &DbRestore,
        password: &str,
    ) -> Result<(), StepError> {
        let s = &self.spec;
        let subnets = ctx.need_str(s.subnets.step, s.subnets.output)?;
        let kms = ctx.need_str(s.kms.step, s.kms.output)?;
        let params = ctx.need_str(s.cluster_params.step, s.cluster_params.output)?;
        let tags = Some(tags(&self.aws, &self.step, tag));
        let sgs = Some(s.security_group_ids.clone());
        match &r.snapshot {
            Some(snapshot) => {
                ctx.progress(format!(
                    "restoring {} from snapshot {snapshot}",
                    s.identifier
                ));
                self.aws
                    .rds
                    .restore_db_cluster_from_snapshot()
                    .db_cluster_identifier(&s.identifier)
                    .snapshot_identifier(snapshot)
                    .engine("aurora-mysql")
                    .engine_version(&s.engine_version)
                    .db_subnet_group_name(subnets)
                    .set_vpc_security_group_ids(sgs)
                    .kms_key_id(kms)
                    .db_cluster_parameter_group_name(params)
                    .deletion_protection(s.deletion_protection)
                    .set_tags(tags)
                    .send()
                    .await
                    .tolerate(&EXISTS, "RestoreDBClusterFromSnapshot", &s.identifier)?;
            }
            None => {
                let at = match &r.to_time {
                    Some(t) => Some(
                        DateTime::from_str(t, DateTimeFormat::DateTime)
                            .map_err(|e| StepError::permanent(format!("restore time {t}: {e}")))?,
                    ),
                    None => None,
                };
                ctx.progress(format!(
                    "restoring {} from {} as of {}",
                    s.identifier,
                    r.source,
                    r.to_time.as_deref().unwrap_or("its latest restorable time")
                ));
                self.aws
                    .rds
                    .restore_db_cluster_to_point_in_time()
                    .db_cluster_identifier(&s.identifier)
                    .source_db_cluster_identifier(&r.source)
                    .set_restore_to_time(at)
                    .use_latest_restorable_time(r.to_time.is_none())
                    .db_subnet_group_name(subnets)
                    .set_vpc_security_group_ids(sgs)
                    .kms_key_id(kms)
                    .db_cluster_parameter_group_name(params)
                    .deletion_protection(s.deletion_protection)
                    .set_tags(tags)
                    .send()
                    .await
                    .tolerate(&EXISTS, "RestoreDBClusterToPointInTime", &s.identifier)?;
            }
        }
        // The source's master password came with its data: this environment's replaces it.
        self.aws
            .rds
            .modify_db_cluster()
            .db_cluster_identifier(&s.identifier)
            .master_user_password(password)
            .backup_retention_period(s.backup_retention_days as i32)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| crate::clients::classify(e, "ModifyDBCluster", &s.identifier))?;
        Ok(())
    }
}
