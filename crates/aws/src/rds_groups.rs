//! What MySQL on RDS needs first: the DB subnet group and the parameter groups W&B runs with.

use crate::clients::answered;
use crate::clients::{classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::own::{accepted, not_owned, outputs, tags, Tolerate};
use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, Parameter, Tag};
use serde_json::json;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{DbParameterGroups, DbSubnetGroup, Kind};

/// The cluster-level settings of the official W&B Terraform module, and TLS required of every
/// client (the seeds' encryption in transit; the chart connects with TLS).
pub const CLUSTER_PARAMETERS: [(&str, &str); 4] = [
    ("binlog_format", "ROW"),
    ("binlog_row_image", "minimal"),
    ("innodb_online_alter_log_max_size", "268435456"),
    ("require_secure_transport", "ON"),
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

/// An RDS tag.
pub(crate) fn tag(k: String, v: String) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// RDS tags as pairs.
pub(crate) fn pairs(t: &[Tag]) -> Vec<(String, String)> {
    t.iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The tags of an RDS resource, as pairs.
pub(crate) async fn read_tags(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>, StepError> {
    let t = aws
        .rds
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| classify(e, "ListTagsForResource", arn))?;
    Ok(pairs(t.tag_list()))
}

const SUBNET_GROUP_ABSENT: [&str; 1] = ["DBSubnetGroupNotFoundFault"];
const PARAMETER_GROUP_ABSENT: [&str; 1] = ["DBParameterGroupNotFound"];
const PARAMETER_GROUP_EXISTS: [&str; 1] = ["DBParameterGroupAlreadyExists"];

/// The DB subnet group.
pub struct DbSubnetGroupStep {
    aws: Aws,
    step: String,
    spec: DbSubnetGroup,
}

impl DbSubnetGroupStep {
    pub fn new(aws: Aws, step: &str, spec: DbSubnetGroup) -> Self {
        DbSubnetGroupStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }
}

#[async_trait]
impl Step for DbSubnetGroupStep {
    fn kind(&self) -> &str {
        DbSubnetGroup::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("db-subnets", &self.spec.name, &self.spec.subnet_ids))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let name = &self.spec.name;
        let found = self
            .aws
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(name)
            .send()
            .await
            .tolerate(&SUBNET_GROUP_ABSENT, "DescribeDBSubnetGroups", name)?;
        let Some(g) = found.as_ref().and_then(|d| d.db_subnet_groups().first()) else {
            return Ok(Observation::Absent);
        };
        let arn = answered(
            g.db_subnet_group_arn(),
            "DescribeDBSubnetGroups",
            "ARN",
            name,
        )?
        .to_owned();
        if !ctx.attempted()
            && !accepted(&self.aws, &self.step, || read_tags(&self.aws, &arn)).await?
        {
            return Ok(not_owned("DB subnet group", name, &self.aws));
        }
        Ok(Observation::ready(outputs(&[
            ("name", json!(name)),
            ("arn", json!(arn)),
        ])))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        self.aws
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&self.spec.name)
            .db_subnet_group_description(format!("wbstack {}", self.aws.environment))
            .set_subnet_ids(Some(self.spec.subnet_ids.clone()))
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .send()
            .await
            .tolerate(
                &["DBSubnetGroupAlreadyExists"],
                "CreateDBSubnetGroup",
                &self.spec.name,
            )
            .map(|_| ())
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.aws
            .rds
            .delete_db_subnet_group()
            .db_subnet_group_name(&self.spec.name)
            .send()
            .await
            .tolerate(&SUBNET_GROUP_ABSENT, "DeleteDBSubnetGroup", &self.spec.name)
            .map(|_| ())
    }
}

/// A parameter's name and value.
fn pair(p: &Parameter) -> (String, String) {
    (
        p.parameter_name().unwrap_or("").to_owned(),
        p.parameter_value().unwrap_or("").to_owned(),
    )
}

/// The cluster (Aurora) and instance parameter groups.
pub struct DbParameterGroupsStep {
    aws: Aws,
    step: String,
    spec: DbParameterGroups,
}

impl DbParameterGroupsStep {
    pub fn new(aws: Aws, step: &str, spec: DbParameterGroups) -> Self {
        DbParameterGroupsStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }
    fn cluster_group(&self) -> String {
        format!("{}-cluster", self.spec.name)
    }
    fn family(&self) -> &'static str {
        if self.spec.aurora {
            "aurora-mysql8.0"
        } else {
            "mysql8.0"
        }
    }
    fn instance_parameters(&self) -> Vec<(&'static str, &'static str)> {
        let mut p: Vec<_> = INSTANCE_PARAMETERS.to_vec();
        if !self.spec.aurora {
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
        let mut o = outputs(&[("instance_group", json!(self.spec.name))]);
        if self.spec.aurora {
            o.insert("cluster_group".into(), json!(self.cluster_group()));
        }
        o
    }

    /// The instance group's ARN, if it exists.
    async fn instance_group(&self) -> Result<Option<String>, StepError> {
        let name = &self.spec.name;
        let d = self
            .aws
            .rds
            .describe_db_parameter_groups()
            .db_parameter_group_name(name)
            .send()
            .await
            .tolerate(&PARAMETER_GROUP_ABSENT, "DescribeDBParameterGroups", name)?;
        Ok(d.and_then(|d| {
            d.db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_arn().map(str::to_owned))
        }))
    }

    /// Whether the cluster group exists (or is not needed).
    async fn cluster_group_exists(&self) -> Result<bool, StepError> {
        if !self.spec.aurora {
            return Ok(true);
        }
        let g = self.cluster_group();
        let d = self
            .aws
            .rds
            .describe_db_cluster_parameter_groups()
            .db_cluster_parameter_group_name(&g)
            .send()
            .await
            .tolerate(
                &PARAMETER_GROUP_ABSENT,
                "DescribeDBClusterParameterGroups",
                &g,
            )?;
        Ok(d.is_some_and(|d| !d.db_cluster_parameter_groups().is_empty()))
    }

    /// The values set on a group (`Source=user`), by name.
    async fn set_values(&self, cluster: bool) -> Result<Vec<(String, String)>, StepError> {
        let mut out = Vec::new();
        if cluster {
            let g = self.cluster_group();
            let mut pages = self
                .aws
                .rds
                .describe_db_cluster_parameters()
                .db_cluster_parameter_group_name(&g)
                .source("user")
                .into_paginator()
                .send();
            while let Some(p) = pages.next().await {
                let p = p.map_err(|e| classify(e, "DescribeDBClusterParameters", &g))?;
                out.extend(p.parameters().iter().map(pair));
            }
        } else {
            let g = &self.spec.name;
            let mut pages = self
                .aws
                .rds
                .describe_db_parameters()
                .db_parameter_group_name(g)
                .source("user")
                .into_paginator()
                .send();
            while let Some(p) = pages.next().await {
                let p = p.map_err(|e| classify(e, "DescribeDBParameters", g))?;
                out.extend(p.parameters().iter().map(pair));
            }
        }
        Ok(out)
    }

    /// Each parameter whose value on its group is not the one W&B runs with. They take effect
    /// at the databases' next reboot.
    async fn against_plan(&self) -> Result<Vec<Change>, StepError> {
        let mut c = Vec::new();
        let mut groups = vec![(false, self.spec.name.clone(), self.instance_parameters())];
        if self.spec.aurora {
            groups.push((true, self.cluster_group(), CLUSTER_PARAMETERS.to_vec()));
        }
        for (cluster, group, wanted) in groups {
            let live = self.set_values(cluster).await?;
            for (k, v) in wanted {
                let have = live.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                if have != Some(v) {
                    c.push(Change::in_place(
                        &format!("{group}.{k}"),
                        have.unwrap_or("(engine default)"),
                        format!("{v} (at the next reboot)"),
                    ));
                }
            }
        }
        Ok(c)
    }

    async fn apply_cluster_group(&self) -> Result<(), StepError> {
        let g = self.cluster_group();
        self.aws
            .rds
            .create_db_cluster_parameter_group()
            .db_cluster_parameter_group_name(&g)
            .db_parameter_group_family(self.family())
            .description(format!("wbstack {} cluster", self.aws.environment))
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .send()
            .await
            .tolerate(&PARAMETER_GROUP_EXISTS, "CreateDBClusterParameterGroup", &g)?;
        self.aws
            .rds
            .modify_db_cluster_parameter_group()
            .db_cluster_parameter_group_name(&g)
            .set_parameters(Some(Self::params(&CLUSTER_PARAMETERS)))
            .send()
            .await
            .map_err(|e| classify(e, "ModifyDBClusterParameterGroup", &g))?;
        Ok(())
    }
}

#[async_trait]
impl Step for DbParameterGroupsStep {
    fn kind(&self) -> &str {
        DbParameterGroups::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "db-params",
            &self.spec.name,
            self.spec.aurora,
            CLUSTER_PARAMETERS,
            INSTANCE_PARAMETERS,
        ))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let inst = self.instance_group().await?;
        let cluster_ok = self.cluster_group_exists().await?;
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
        if !ctx.attempted()
            && !accepted(&self.aws, &self.step, || read_tags(&self.aws, &arn)).await?
        {
            return Ok(not_owned("DB parameter group", &self.spec.name, &self.aws));
        }
        if self.aws.adopts(&self.step) {
            return Ok(Observation::ready(self.outputs()));
        }
        // Ours is judged by the values set on it.
        let c = self.against_plan().await?;
        Ok(Observation::Ready {
            outputs: self.outputs(),
            fingerprint: Some(if c.is_empty() {
                self.fingerprint()
            } else {
                Fingerprint::of(&("db-params-live", &c))
            }),
        })
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, _ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        if self.aws.adopts(&self.step) {
            return Ok(Vec::new());
        }
        self.against_plan().await
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        if self.spec.aurora {
            self.apply_cluster_group().await?;
        }
        let name = &self.spec.name;
        self.aws
            .rds
            .create_db_parameter_group()
            .db_parameter_group_name(name)
            .db_parameter_group_family(self.family())
            .description(format!("wbstack {} instances", self.aws.environment))
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .send()
            .await
            .tolerate(&PARAMETER_GROUP_EXISTS, "CreateDBParameterGroup", name)?;
        self.aws
            .rds
            .modify_db_parameter_group()
            .db_parameter_group_name(name)
            .set_parameters(Some(Self::params(&self.instance_parameters())))
            .send()
            .await
            .map_err(|e| classify(e, "ModifyDBParameterGroup", name))?;
        Ok(())
    }
    async fn wait(&self, _ctx: &StepCtx) -> Result<Outputs, StepError> {
        // Parameter groups are usable as soon as the calls that made them return (and `observe`
        // reports a group this run has just made as still to be applied, so it is not used here).
        Ok(self.outputs())
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let name = &self.spec.name;
        self.aws
            .rds
            .delete_db_parameter_group()
            .db_parameter_group_name(name)
            .send()
            .await
            .tolerate(&PARAMETER_GROUP_ABSENT, "DeleteDBParameterGroup", name)?;
        if self.spec.aurora {
            let g = self.cluster_group();
            self.aws
                .rds
                .delete_db_cluster_parameter_group()
                .db_cluster_parameter_group_name(&g)
                .send()
                .await
                .tolerate(&PARAMETER_GROUP_ABSENT, "DeleteDBClusterParameterGroup", &g)?;
        }
        Ok(())
    }
}

impl AwsStepKind for DbSubnetGroup {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(DbSubnetGroupStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        Grants::only(crate::policy::db_subnet_group(&self.name))
    }
}

impl AwsStepKind for DbParameterGroups {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(DbParameterGroupsStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        Grants::only(crate::policy::db_parameter_groups(&self.name))
    }
}
