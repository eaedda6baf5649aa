//! Redis on ElastiCache: the cache subnet group and a Redis 7 replication group, encrypted at
//! rest with the environment's KMS key and in transit, with an AUTH token from Secrets Manager;
//! Multi-AZ with automatic failover when it has more than one node.

use crate::clients::{classify, code_of, Aws};
use crate::poll::poll;
use crate::secrets::read_secret;
use async_trait::async_trait;
use aws_sdk_elasticache::types::Tag;
use serde_json::json;
use wbstack_engine::{
    Action, Fingerprint, Observation, Outputs, SecretRef, Step, StepCtx, StepError,
};

fn tags(aws: &Aws, step: &str) -> Vec<Tag> {
    aws.tags(step)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Whether this step may use the resource: its tags say it is ours, or the plan adopts it.
async fn accepted(aws: &Aws, step: &str, arn: &str) -> Result<bool, StepError> {
    if aws.adopts(step) {
        return Ok(true);
    }
    let t = aws
        .elasticache
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| classify(e, "ListTagsForResource", arn))?;
    let pairs: Vec<(String, String)> = t
        .tag_list()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect();
    Ok(aws.owns(step, &pairs))
}

/// The cache subnet group.
pub struct CacheSubnetGroupStep {
    pub aws: Aws,
    pub step: String,
    pub name: String,
    pub subnet_ids: Vec<String>,
}

#[async_trait]
impl Step for CacheSubnetGroupStep {
    fn kind(&self) -> &str {
        "aws.elasticache.subnet-group"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("cache-subnets", &self.name, &self.subnet_ids))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let d = match self
            .aws
            .elasticache
            .describe_cache_subnet_groups()
            .cache_subnet_group_name(&self.name)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e) if code_of(&e).as_deref() == Some("CacheSubnetGroupNotFoundFault") => {
                return Ok(Observation::Absent)
            }
            Err(e) => return Err(classify(e, "DescribeCacheSubnetGroups", &self.name)),
        };
        let Some(g) = d.cache_subnet_groups().first() else {
            return Ok(Observation::Absent);
        };
        let arn = g.arn().unwrap_or_default().to_owned();
        if !arn.is_empty() && !ctx.attempted() && !accepted(&self.aws, &self.step, &arn).await? {
            return Ok(Observation::Failed {
                message: format!(
                    "cache subnet group {} exists and is not owned by environment {}",
                    self.name, self.aws.environment
                ),
            });
        }
        Ok(Observation::ready(
            [
                ("name".to_owned(), json!(self.name)),
                ("arn".to_owned(), json!(arn)),
            ]
            .into_iter()
            .collect(),
        ))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let r = self
            .aws
            .elasticache
            .create_cache_subnet_group()
            .cache_subnet_group_name(&self.name)
            .cache_subnet_group_description(format!("wbstack {}", self.aws.environment))
            .set_subnet_ids(Some(self.subnet_ids.clone()))
            .set_tags(Some(tags(&self.aws, &self.step)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("CacheSubnetGroupAlreadyExists") => Ok(()),
            Err(e) => Err(classify(e, "CreateCacheSubnetGroup", &self.name)),
        }
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        match self
            .aws
            .elasticache
            .delete_cache_subnet_group()
            .cache_subnet_group_name(&self.name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("CacheSubnetGroupNotFoundFault") => Ok(()),
            Err(e) => Err(classify(e, "DeleteCacheSubnetGroup", &self.name)),
        }
    }
}

/// A Redis 7 replication group.
pub struct RedisCacheStep {
    pub aws: Aws,
    pub step: String,
    pub id: String,
    pub node_type: String,
    pub nodes: u32,
    pub multi_az: bool,
    pub security_group_ids: Vec<String>,
    pub kms_step: String,
    pub subnets_step: String,
    pub auth_step: String,
}

enum Group {
    Absent,
    Present {
        status: String,
        outputs: Outputs,
        arn: String,
    },
}

impl RedisCacheStep {
    async fn look(&self) -> Result<Group, StepError> {
        let d = match self
            .aws
            .elasticache
            .describe_replication_groups()
            .replication_group_id(&self.id)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e) if code_of(&e).as_deref() == Some("ReplicationGroupNotFoundFault") => {
                return Ok(Group::Absent)
            }
            Err(e) => return Err(classify(e, "DescribeReplicationGroups", &self.id)),
        };
        let Some(g) = d.replication_groups().first() else {
            return Ok(Group::Absent);
        };
        let primary = g.node_groups().first().and_then(|n| n.primary_endpoint());
        let endpoint = g.configuration_endpoint().or(primary);
        let outputs = [
            (
                "endpoint",
                json!(endpoint.and_then(|e| e.address()).unwrap_or_default()),
            ),
            (
                "port",
                json!(endpoint.and_then(|e| e.port()).unwrap_or(6379)),
            ),
            ("arn", json!(g.arn().unwrap_or_default())),
            ("tls", json!(true)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Ok(Group::Present {
            status: g.status().unwrap_or("unknown").to_owned(),
            outputs,
            arn: g.arn().unwrap_or_default().to_owned(),
        })
    }

    fn dep(&self, ctx: &StepCtx, step: &str, key: &str) -> Result<String, StepError> {
        ctx.dep_str(step, key)
            .map(str::to_owned)
            .ok_or_else(|| StepError::permanent(format!("step {step} has no output {key}")))
    }
}

#[async_trait]
impl Step for RedisCacheStep {
    fn kind(&self) -> &str {
        "aws.elasticache.redis"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "redis",
            &self.id,
            &self.node_type,
            self.nodes,
            self.multi_az,
            &self.security_group_ids,
        ))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(match self.look().await? {
            Group::Absent => Observation::Absent,
            Group::Present { status, .. } if status == "deleting" => Observation::InProgress {
                detail: Some(status),
            },
            Group::Present { arn, .. }
                if !arn.is_empty()
                    && !ctx.attempted()
                    && !accepted(&self.aws, &self.step, &arn).await? =>
            {
                Observation::Failed {
                    message: format!(
                        "replication group {} exists and is not owned by environment {}",
                        self.id, self.aws.environment
                    ),
                }
            }
            Group::Present {
                status, outputs, ..
            } if status == "available" => Observation::ready(outputs),
            Group::Present { status, .. } if status == "create-failed" => Observation::Failed {
                message: format!("replication group {} is create-failed", self.id),
            },
            Group::Present { status, .. } => Observation::InProgress {
                detail: Some(status),
            },
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let auth_ref = ctx
            .dep_output(&self.auth_step, "secret")
            .and_then(SecretRef::from_output);
        let auth_ref = auth_ref.ok_or_else(|| {
            StepError::permanent(format!("step {} has no secret output", self.auth_step))
        })?;
        let token = read_secret(&self.aws, &auth_ref).await?;
        let r = self
            .aws
            .elasticache
            .create_replication_group()
            .replication_group_id(&self.id)
            .replication_group_description(format!("wbstack {}", self.aws.environment))
            .engine("redis")
            .engine_version("7.1")
            .cache_node_type(&self.node_type)
            .num_cache_clusters(self.nodes.max(1) as i32)
            .automatic_failover_enabled(self.multi_az)
            .multi_az_enabled(self.multi_az)
            .at_rest_encryption_enabled(true)
            .kms_key_id(self.dep(ctx, &self.kms_step, "arn")?)
            .transit_encryption_enabled(true)
            .auth_token(token.expose())
            .cache_subnet_group_name(self.dep(ctx, &self.subnets_step, "name")?)
            .set_security_group_ids(Some(self.security_group_ids.clone()))
            .set_tags(Some(tags(&self.aws, &self.step)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if code_of(&e).as_deref() == Some("ReplicationGroupAlreadyExistsFault")
                    || code_of(&e).as_deref() == Some("ReplicationGroupAlreadyExists") =>
            {
                Ok(())
            }
            Err(e) => Err(classify(e, "CreateReplicationGroup", &self.id)),
        }
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        poll(ctx, || async {
            Ok(match self.look().await? {
                Group::Present {
                    status, outputs, ..
                } if status == "available" => Some(outputs),
                Group::Present { status, .. } if status == "create-failed" => {
                    return Err(StepError::permanent(format!(
                        "replication group {} is create-failed",
                        self.id
                    )))
                }
                Group::Present { status, .. } => {
                    ctx.progress(status);
                    None
                }
                Group::Absent => None,
            })
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        match self
            .aws
            .elasticache
            .delete_replication_group()
            .replication_group_id(&self.id)
            .retain_primary_cluster(false)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("ReplicationGroupNotFoundFault") => Ok(()),
            // Already being deleted.
            Err(e) if code_of(&e).as_deref() == Some("InvalidReplicationGroupState") => Ok(()),
            Err(e) => Err(classify(e, "DeleteReplicationGroup", &self.id)),
        }
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        poll(ctx, || async {
            Ok(matches!(self.look().await?, Group::Absent).then_some(()))
        })
        .await
    }
}
