//! MySQL on RDS: the subnet group, the parameter groups W&B runs with, and an Aurora MySQL 8.0
//! cluster with its instances or a single MySQL 8 instance, encrypted with the environment's KMS
//! key, its master password read from Secrets Manager.

use crate::clients::{classify, code_of, Aws};
use crate::poll::poll;
use crate::secrets::read_secret;
use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, Parameter, Tag};
use serde_json::json;
use wbstack_engine::{
    Action, Fingerprint, Observation, Outputs, SecretRef, Step, StepCtx, StepError,
};

/// The cluster-level settings of the official W&B Terraform module.
pub const CLUSTER_PARAMETERS: [(&str, &str); 3] = [
    ("binlog_format", "ROW"),
    ("binlog_row_image", "minimal"),
    ("innodb_online_alter_log_max_size", "268435456"),
];
/// The instance-level settings of the official W&B Terraform module.
pub const INSTANCE_PARAMETERS: [(&str, &str); 7] = [
    ("performance_schema", "1"),
    ("slow_query_log", "1"),
    ("long_query_time", "4"),
    ("max_prepared_stmt_count", "1048576"),
    ("max_execution_time", "60000"),
    ("sort_buffer_size", "67108864"),
    ("innodb_lru_scan_depth", "128"),
];

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

fn tags(aws: &Aws, step: &str) -> Vec<Tag> {
    aws.tags(step)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn pairs(t: &[Tag]) -> Vec<(String, String)> {
    t.iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Whether this step may use the resource: its tags say it is this step's, or the plan adopts it
/// (read only when the journal does not say so).
async fn rds_accepted(aws: &Aws, step: &str, arn: &str) -> Result<bool, StepError> {
    if aws.adopts(step) {
        return Ok(true);
    }
    let t = aws
        .rds
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| classify(e, "ListTagsForResource", arn))?;
    Ok(aws.owns(step, &pairs(t.tag_list())))
}

fn out(pairs: &[(&str, serde_json::Value)]) -> Outputs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn not_owned(what: &str, name: &str, aws: &Aws) -> Observation {
    Observation::Failed {
        message: format!(
            "{what} {name} exists and is not owned by environment {}",
            aws.environment
        ),
    }
}

/// The DB subnet group.
pub struct DbSubnetGroupStep {
    pub aws: Aws,
    pub step: String,
    pub name: String,
    pub subnet_ids: Vec<String>,
}

#[async_trait]
impl Step for DbSubnetGroupStep {
    fn kind(&self) -> &str {
        "aws.rds.subnet-group"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("db-subnets", &self.name, &self.subnet_ids))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let d = match self
            .aws
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(&self.name)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e) if code_of(&e).as_deref() == Some("DBSubnetGroupNotFoundFault") => {
                return Ok(Observation::Absent)
            }
            Err(e) => return Err(classify(e, "DescribeDBSubnetGroups", &self.name)),
        };
        let Some(g) = d.db_subnet_groups().first() else {
            return Ok(Observation::Absent);
        };
        let arn = g.db_subnet_group_arn().unwrap_or_default().to_owned();
        if !ctx.attempted() && !rds_accepted(&self.aws, &self.step, &arn).await? {
            return Ok(not_owned("DB subnet group", &self.name, &self.aws));
        }
        Ok(Observation::ready(out(&[
            ("name", json!(self.name)),
            ("arn", json!(arn)),
        ])))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let r = self
            .aws
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&self.name)
            .db_subnet_group_description(format!("wbstack {}", self.aws.environment))
            .set_subnet_ids(Some(self.subnet_ids.clone()))
            .set_tags(Some(tags(&self.aws, &self.step)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("DBSubnetGroupAlreadyExists") => Ok(()),
            Err(e) => Err(classify(e, "CreateDBSubnetGroup", &self.name)),
        }
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        match self
            .aws
            .rds
            .delete_db_subnet_group()
            .db_subnet_group_name(&self.name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("DBSubnetGroupNotFoundFault") => Ok(()),
            Err(e) => Err(classify(e, "DeleteDBSubnetGroup", &self.name)),
        }
    }
}

/// The cluster (Aurora) and instance parameter groups.
pub struct DbParameterGroupsStep {
    pub aws: Aws,
    pub step: String,
    pub name: String,
    pub aurora: bool,
}

impl DbParameterGroupsStep {
    fn cluster_group(&self) -> String {
        format!("{}-cluster", self.name)
    }
    fn family(&self) -> &'static str {
        if self.aurora {
            "aurora-mysql8.0"
        } else {
            "mysql8.0"
        }
    }
    fn instance_parameters(&self) -> Vec<(&'static str, &'static str)> {
        let mut p: Vec<_> = INSTANCE_PARAMETERS.to_vec();
        if !self.aurora {
            // A single instance has no cluster group: its settings go to the instance.
            p.extend(CLUSTER_PARAMETERS);
        }
        p
    }
    fn params(list: &[(&str, &str)]) -> Vec<Parameter> {
        list.iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_name(*k)
                    .parameter_value(*v)
                    .apply_method(ApplyMethod::PendingReboot)
                    .build()
            })
            .collect()
    }
    fn outputs(&self) -> Outputs {
        let mut o = out(&[("instance_group", json!(self.name))]);
        if self.aurora {
            o.insert("cluster_group".into(), json!(self.cluster_group()));
        }
        o
    }
}

#[async_trait]
impl Step for DbParameterGroupsStep {
    fn kind(&self) -> &str {
        "aws.rds.parameter-groups"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "db-params",
            &self.name,
            self.aurora,
            CLUSTER_PARAMETERS,
            INSTANCE_PARAMETERS,
        ))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let inst = match self
            .aws
            .rds
            .describe_db_parameter_groups()
            .db_parameter_group_name(&self.name)
            .send()
            .await
        {
            Ok(d) => d
                .db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_arn().map(str::to_owned)),
            Err(e) if code_of(&e).as_deref() == Some("DBParameterGroupNotFound") => None,
            Err(e) => return Err(classify(e, "DescribeDBParameterGroups", &self.name)),
        };
        let cluster_ok = if self.aurora {
            match self
                .aws
                .rds
                .describe_db_cluster_parameter_groups()
                .db_cluster_parameter_group_name(self.cluster_group())
                .send()
                .await
            {
                Ok(d) => !d.db_cluster_parameter_groups().is_empty(),
                Err(e) if code_of(&e).as_deref() == Some("DBParameterGroupNotFound") => false,
                Err(e) => {
                    return Err(classify(
                        e,
                        "DescribeDBClusterParameterGroups",
                        &self.cluster_group(),
                    ))
                }
            }
        } else {
            true
        };
        let Some(arn) = inst else {
            return Ok(Observation::Absent);
        };
        if !cluster_ok {
            return Ok(Observation::Absent);
        }
        if ctx.attempted() && ctx.previous().is_none() {
            // Created by a run that stopped before it was recorded ready: its parameters may
            // not be set yet, and apply (idempotent) sets them.
            return Ok(Observation::Absent);
        }
        if !ctx.attempted() && !rds_accepted(&self.aws, &self.step, &arn).await? {
            return Ok(not_owned("DB parameter group", &self.name, &self.aws));
        }
        Ok(Observation::ready(self.outputs()))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        if self.aurora {
            let g = self.cluster_group();
            match self
                .aws
                .rds
                .create_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(&g)
                .db_parameter_group_family(self.family())
                .description(format!("wbstack {} cluster", self.aws.environment))
                .set_tags(Some(tags(&self.aws, &self.step)))
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if code_of(&e).as_deref() == Some("DBParameterGroupAlreadyExists") => {}
                Err(e) => return Err(classify(e, "CreateDBClusterParameterGroup", &g)),
            }
            self.aws
                .rds
                .modify_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(&g)
                .set_parameters(Some(Self::params(&CLUSTER_PARAMETERS)))
                .send()
                .await
                .map_err(|e| classify(e, "ModifyDBClusterParameterGroup", &g))?;
        }
        match self
            .aws
            .rds
            .create_db_parameter_group()
            .db_parameter_group_name(&self.name)
            .db_parameter_group_family(self.family())
            .description(format!("wbstack {} instances", self.aws.environment))
            .set_tags(Some(tags(&self.aws, &self.step)))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if code_of(&e).as_deref() == Some("DBParameterGroupAlreadyExists") => {}
            Err(e) => return Err(classify(e, "CreateDBParameterGroup", &self.name)),
        }
        self.aws
            .rds
            .modify_db_parameter_group()
            .db_parameter_group_name(&self.name)
            .set_parameters(Some(Self::params(&self.instance_parameters())))
            .send()
            .await
            .map_err(|e| classify(e, "ModifyDBParameterGroup", &self.name))?;
        Ok(())
    }
    async fn wait(&self, _ctx: &StepCtx) -> Result<Outputs, StepError> {
        // Parameter groups are usable as soon as the calls that made them return (and `observe`
        // reports a group this run has just made as still to be applied, so it is not used here).
        Ok(self.outputs())
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        match self
            .aws
            .rds
            .delete_db_parameter_group()
            .db_parameter_group_name(&self.name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if code_of(&e).as_deref() == Some("DBParameterGroupNotFound") => {}
            Err(e) => return Err(classify(e, "DeleteDBParameterGroup", &self.name)),
        }
        if self.aurora {
            let g = self.cluster_group();
            match self
                .aws
                .rds
                .delete_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(&g)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if code_of(&e).as_deref() == Some("DBParameterGroupNotFound") => {}
                Err(e) => return Err(classify(e, "DeleteDBClusterParameterGroup", &g)),
            }
        }
        Ok(())
    }
}

/// An Aurora MySQL cluster with its instances, or a single RDS MySQL instance.
pub struct MysqlDatabaseStep {
    pub aws: Aws,
    pub step: String,
    pub identifier: String,
    pub aurora: bool,
    pub instances: u32,
    pub instance_class: String,
    pub engine_version: String,
    pub database: String,
    pub user: String,
    pub storage_gb: u32,
    pub backup_retention_days: u32,
    pub deletion_protection: bool,
    pub final_snapshot: bool,
    pub security_group_ids: Vec<String>,
    /// Steps whose outputs this one reads.
    pub kms_step: String,
    pub subnets_step: String,
    pub params_step: String,
    pub password_step: String,
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
    },
}

impl MysqlDatabaseStep {
    fn instance_ids(&self) -> Vec<String> {
        if self.aurora {
            (1..=self.instances.max(1))
                .map(|i| format!("{}-{i}", self.identifier))
                .collect()
        } else {
            vec![self.identifier.clone()]
        }
    }

    fn dep(&self, ctx: &StepCtx, step: &str, key: &str) -> Result<String, StepError> {
        ctx.dep_str(step, key)
            .map(str::to_owned)
            .ok_or_else(|| StepError::permanent(format!("step {step} has no output {key}")))
    }

    async fn instance(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_rds::types::DbInstance>, StepError> {
        match self
            .aws
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(d) => Ok(d.db_instances().first().cloned()),
            Err(e)
                if code_of(&e).as_deref() == Some("DBInstanceNotFound")
                    || code_of(&e).as_deref() == Some("DBInstanceNotFoundFault") =>
            {
                Ok(None)
            }
            Err(e) => Err(classify(e, "DescribeDBInstances", id)),
        }
    }

    async fn look(&self) -> Result<Db, StepError> {
        if self.aurora {
            let c = match self
                .aws
                .rds
                .describe_db_clusters()
                .db_cluster_identifier(&self.identifier)
                .send()
                .await
            {
                Ok(d) => d.db_clusters().first().cloned(),
                Err(e) if code_of(&e).as_deref() == Some("DBClusterNotFoundFault") => None,
                Err(e) => return Err(classify(e, "DescribeDBClusters", &self.identifier)),
            };
            let Some(c) = c else { return Ok(Db::Absent) };
            let owned = self.aws.owns(&self.step, &pairs(c.tag_list()));
            let mut status = c.status().unwrap_or("unknown").to_owned();
            let mut ready = status == "available";
            let mut incomplete = false;
            for id in self.instance_ids() {
                match self.instance(&id).await? {
                    None => {
                        ready = false;
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
                    }
                }
            }
            let outputs = out(&[
                ("endpoint", json!(c.endpoint().unwrap_or_default())),
                (
                    "reader_endpoint",
                    json!(c.reader_endpoint().unwrap_or_default()),
                ),
                ("port", json!(c.port().unwrap_or(3306))),
                ("arn", json!(c.db_cluster_arn().unwrap_or_default())),
                ("database", json!(self.database)),
            ]);
            Ok(Db::Status {
                status,
                ready,
                outputs,
                owned,
                incomplete,
            })
        } else {
            let Some(i) = self.instance(&self.identifier).await? else {
                return Ok(Db::Absent);
            };
            let owned = self.aws.owns(&self.step, &pairs(i.tag_list()));
            let status = i.db_instance_status().unwrap_or("unknown").to_owned();
            let outputs = out(&[
                (
                    "endpoint",
                    json!(i.endpoint().and_then(|e| e.address()).unwrap_or_default()),
                ),
                (
                    "port",
                    json!(i.endpoint().and_then(|e| e.port()).unwrap_or(3306)),
                ),
                ("arn", json!(i.db_instance_arn().unwrap_or_default())),
                ("database", json!(self.database)),
            ]);
            Ok(Db::Status {
                ready: status == "available",
                status,
                outputs,
                owned,
                incomplete: false,
            })
        }
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
        let mut req = self
            .aws
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class(&self.instance_class)
            .engine(if self.aurora { "aurora-mysql" } else { "mysql" })
            .db_parameter_group_name(self.dep(ctx, &self.params_step, "instance_group")?)
            .set_tags(Some(tags(&self.aws, &self.step)));
        if self.aurora {
            req = req.db_cluster_identifier(&self.identifier);
        } else {
            req = req
                .engine_version(&self.engine_version)
                .allocated_storage(self.storage_gb as i32)
                .storage_type("gp3")
                .storage_encrypted(true)
                .kms_key_id(self.dep(ctx, &self.kms_step, "arn")?)
                .master_username(&self.user)
                .master_user_password(password.unwrap_or_default())
                .db_name(&self.database)
                .db_subnet_group_name(self.dep(ctx, &self.subnets_step, "name")?)
                .set_vpc_security_group_ids(Some(self.security_group_ids.clone()))
                .backup_retention_period(self.backup_retention_days as i32)
                .deletion_protection(self.deletion_protection)
                .multi_az(self.instances > 1);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if code_of(&e).as_deref() == Some("DBInstanceAlreadyExists")
                    || code_of(&e).as_deref() == Some("DBInstanceAlreadyExistsFault") =>
            {
                Ok(())
            }
            Err(e) => Err(classify(e, "CreateDBInstance", id)),
        }
    }
}

#[async_trait]
impl Step for MysqlDatabaseStep {
    fn kind(&self) -> &str {
        "aws.rds.mysql"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "mysql",
            &self.identifier,
            self.aurora,
            self.instances,
            &self.instance_class,
            &self.engine_version,
            &self.database,
            &self.user,
            self.storage_gb,
            self.backup_retention_days,
            self.deletion_protection,
            &self.security_group_ids,
        ))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(match self.look().await? {
            Db::Absent => Observation::Absent,
            Db::Status { owned: false, .. } if !self.aws.adopts(&self.step) => {
                not_owned("database", &self.identifier, &self.aws)
            }
            // Ours, half-made (a run stopped between the cluster and its instances): apply,
            // which is idempotent, completes it.
            Db::Status {
                incomplete: true,
                owned: true,
                ..
            } => Observation::Absent,
            // Adopted, but not all there: someone else's cluster is not completed by us.
            Db::Status {
                incomplete: true,
                status,
                ..
            } => Observation::Failed {
                message: format!(
                    "the adopted database {} is incomplete ({status})",
                    self.identifier
                ),
            },
            Db::Status { status, .. } if TERMINAL.contains(&status.as_str()) => {
                Observation::Failed {
                    message: format!("database {} is {status}", self.identifier),
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
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let pw_ref = ctx
            .dep_output(&self.password_step, "secret")
            .and_then(SecretRef::from_output);
        let pw_ref = pw_ref.ok_or_else(|| {
            StepError::permanent(format!("step {} has no secret output", self.password_step))
        })?;
        let password = read_secret(&self.aws, &pw_ref).await?;
        // A cluster an interrupted run made is completed, not created again.
        let exists = self.aurora && matches!(self.look().await?, Db::Status { .. });
        if self.aurora {
            if !exists {
                let r = self
                    .aws
                    .rds
                    .create_db_cluster()
                    .db_cluster_identifier(&self.identifier)
                    .engine("aurora-mysql")
                    .engine_version(&self.engine_version)
                    .master_username(&self.user)
                    .master_user_password(password.expose())
                    .database_name(&self.database)
                    .db_subnet_group_name(self.dep(ctx, &self.subnets_step, "name")?)
                    .set_vpc_security_group_ids(Some(self.security_group_ids.clone()))
                    .storage_encrypted(true)
                    .kms_key_id(self.dep(ctx, &self.kms_step, "arn")?)
                    .backup_retention_period(self.backup_retention_days as i32)
                    .deletion_protection(self.deletion_protection)
                    .db_cluster_parameter_group_name(self.dep(
                        ctx,
                        &self.params_step,
                        "cluster_group",
                    )?)
                    .set_tags(Some(tags(&self.aws, &self.step)))
                    .send()
                    .await;
                match r {
                    Ok(_) => {}
                    Err(e) if code_of(&e).as_deref() == Some("DBClusterAlreadyExistsFault") => {}
                    Err(e) => return Err(classify(e, "CreateDBCluster", &self.identifier)),
                }
            }
            for id in self.instance_ids() {
                self.create_instance(&id, ctx, None).await?;
            }
            Ok(())
        } else {
            self.create_instance(&self.identifier.clone(), ctx, Some(password.expose()))
                .await
        }
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        poll(ctx, || async {
            Ok(match self.look().await? {
                Db::Status { status, .. } if TERMINAL.contains(&status.as_str()) => {
                    return Err(StepError::permanent(format!(
                        "database {} is {status}",
                        self.identifier
                    )))
                }
                Db::Status {
                    ready: true,
                    outputs,
                    ..
                } => Some(outputs),
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
        let snapshot = format!(
            "{}-final-{}",
            self.identifier,
            wbstack_engine::now_ms() / 1000
        );
        if self.aurora {
            for id in self.instance_ids() {
                if self.instance(&id).await?.is_none() {
                    continue;
                }
                match self
                    .aws
                    .rds
                    .delete_db_instance()
                    .db_instance_identifier(&id)
                    .skip_final_snapshot(true)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            code_of(&e).as_deref(),
                            Some("DBInstanceNotFound")
                                | Some("DBInstanceNotFoundFault")
                                | Some("InvalidDBInstanceState")
                        ) => {}
                    Err(e) => return Err(classify(e, "DeleteDBInstance", &id)),
                }
            }
            // Instances go before their cluster: wait (cancellably) until they are gone.
            for id in self.instance_ids() {
                poll(ctx, || async {
                    Ok(self.instance(&id).await?.is_none().then_some(()))
                })
                .await?;
            }
            if !self.deletion_protection {
                let _ = self
                    .aws
                    .rds
                    .modify_db_cluster()
                    .db_cluster_identifier(&self.identifier)
                    .deletion_protection(false)
                    .apply_immediately(true)
                    .send()
                    .await;
            }
            let mut req = self
                .aws
                .rds
                .delete_db_cluster()
                .db_cluster_identifier(&self.identifier);
            req = if self.final_snapshot {
                req.final_db_snapshot_identifier(&snapshot)
            } else {
                req.skip_final_snapshot(true)
            };
            match req.send().await {
                Ok(_) => Ok(()),
                Err(e) if code_of(&e).as_deref() == Some("DBClusterNotFoundFault") => Ok(()),
                Err(e) => Err(classify(e, "DeleteDBCluster", &self.identifier)),
            }
        } else {
            if !self.deletion_protection {
                let _ = self
                    .aws
                    .rds
                    .modify_db_instance()
                    .db_instance_identifier(&self.identifier)
                    .deletion_protection(false)
                    .apply_immediately(true)
                    .send()
                    .await;
            }
            let mut req = self
                .aws
                .rds
                .delete_db_instance()
                .db_instance_identifier(&self.identifier)
                .delete_automated_backups(true);
            req = if self.final_snapshot {
                req.final_db_snapshot_identifier(&snapshot)
            } else {
                req.skip_final_snapshot(true)
            };
            match req.send().await {
                Ok(_) => Ok(()),
                Err(e)
                    if matches!(
                        code_of(&e).as_deref(),
                        Some("DBInstanceNotFound") | Some("DBInstanceNotFoundFault")
                    ) =>
                {
                    Ok(())
                }
                Err(e) => Err(classify(e, "DeleteDBInstance", &self.identifier)),
            }
        }
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        poll(ctx, || async {
            Ok(matches!(self.look().await?, Db::Absent).then_some(()))
        })
        .await
    }
}
