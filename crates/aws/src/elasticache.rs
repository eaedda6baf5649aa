//! Redis on ElastiCache: the cache subnet group and a Redis 7 replication group, encrypted at
//! rest with the environment's KMS key and in transit, with an AUTH token from Secrets Manager;
//! Multi-AZ with automatic failover when it has more than one node.

use crate::clients::answered;
use crate::clients::{classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::own::{accepted, not_owned, outputs, tags, Tolerate};
use crate::poll::poll;
use crate::secrets::read_secret;
use async_trait::async_trait;
use aws_sdk_elasticache::types::Tag;
use serde_json::json;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{CacheSubnetGroup, Kind, RedisCache};

fn tag(k: String, v: String) -> Tag {
    Tag::builder().key(k).value(v).build()
}

/// The tags of an ElastiCache resource, as pairs.
async fn read_tags(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>, StepError> {
    let t = aws
        .elasticache
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| classify(e, "ListTagsForResource", arn))?;
    Ok(t.tag_list()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect())
}

/// The cache subnet group.
pub struct CacheSubnetGroupStep {
    aws: Aws,
    step: String,
    spec: CacheSubnetGroup,
}

impl CacheSubnetGroupStep {
    pub fn new(aws: Aws, step: &str, spec: CacheSubnetGroup) -> Self {
        CacheSubnetGroupStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }
}

const SUBNET_GROUP_ABSENT: [&str; 1] = ["CacheSubnetGroupNotFoundFault"];

#[async_trait]
impl Step for CacheSubnetGroupStep {
    fn kind(&self) -> &str {
        CacheSubnetGroup::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("cache-subnets", &self.spec.name, &self.spec.subnet_ids))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let name = &self.spec.name;
        let found = self
            .aws
            .elasticache
            .describe_cache_subnet_groups()
            .cache_subnet_group_name(name)
            .send()
            .await
            .tolerate(&SUBNET_GROUP_ABSENT, "DescribeCacheSubnetGroups", name)?;
        let Some(g) = found.as_ref().and_then(|d| d.cache_subnet_groups().first()) else {
            return Ok(Observation::Absent);
        };
        // moto answers a cache subnet group without its ARN: then its tags cannot be read, and
        // the group is judged by the journal alone.
        let arn = g.arn().unwrap_or_default().to_owned();
        if !arn.is_empty()
            && !ctx.attempted()
            && !accepted(&self.aws, &self.step, || read_tags(&self.aws, &arn)).await?
        {
            return Ok(not_owned("cache subnet group", name, &self.aws));
        }
        Ok(Observation::ready(outputs(&[
            ("name", json!(name)),
            ("arn", json!(arn)),
        ])))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        self.aws
            .elasticache
            .create_cache_subnet_group()
            .cache_subnet_group_name(&self.spec.name)
            .cache_subnet_group_description(format!("wbstack {}", self.aws.environment))
            .set_subnet_ids(Some(self.spec.subnet_ids.clone()))
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .send()
            .await
            .tolerate(
                &["CacheSubnetGroupAlreadyExists"],
                "CreateCacheSubnetGroup",
                &self.spec.name,
            )
            .map(|_| ())
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.aws
            .elasticache
            .delete_cache_subnet_group()
            .cache_subnet_group_name(&self.spec.name)
            .send()
            .await
            .tolerate(
                &SUBNET_GROUP_ABSENT,
                "DeleteCacheSubnetGroup",
                &self.spec.name,
            )
            .map(|_| ())
    }
}

impl RedisCacheStep {
    /// The snapshot a restored group starts from: the one named, else the newest of the
    /// source's group (its final snapshot, or a daily one); none, and it starts empty.
    async fn seed(
        &self,
        ctx: &StepCtx,
        source: &str,
        named: Option<&str>,
    ) -> Result<Option<String>, StepError> {
        if let Some(n) = named {
            ctx.progress(format!("seeding {} from snapshot {n}", self.spec.id));
            return Ok(Some(n.to_owned()));
        }
        let all = self
            .aws
            .elasticache
            .describe_snapshots()
            .send()
            .await
            .map_err(|e| crate::clients::classify(e, "DescribeSnapshots", source))?;
        let newest = all
            .snapshots()
            .iter()
            .filter(|sn| {
                sn.replication_group_id() == Some(source)
                    || sn
                        .snapshot_name()
                        .is_some_and(|n| n.starts_with(&format!("{source}-final-")))
            })
            .filter(|sn| sn.snapshot_status() != Some("failed"))
            .max_by_key(|sn| {
                sn.node_snapshots()
                    .iter()
                    .filter_map(|n| n.snapshot_create_time().map(|t| t.secs()))
                    .max()
                    .unwrap_or(0)
            })
            .and_then(|sn| sn.snapshot_name())
            .map(str::to_owned);
        ctx.progress(match &newest {
            Some(n) => format!("seeding {} from {source}'s snapshot {n}", self.spec.id),
            None => format!(
                "no snapshot of {source} found: {} starts empty (W&B refills its cache)",
                self.spec.id
            ),
        });
        Ok(newest)
    }

    /// The final snapshot a teardown takes, named and told (`None` when the plan or
    /// `--skip-final-snapshot` says none).
    fn final_snapshot(&self, ctx: &StepCtx) -> Option<String> {
        if !self.spec.final_snapshot || self.aws.skip_final_snapshot {
            return None;
        }
        let name = format!("{}-final-{}", self.spec.id, wbstack_engine::now_ms() / 1000);
        ctx.progress(format!(
            "keeping a final snapshot {name} of {} (ElastiCache, region {})",
            self.spec.id, self.aws.region
        ));
        Some(name)
    }
}

/// A Redis 7 replication group.
pub struct RedisCacheStep {
    pub(crate) aws: Aws,
    pub(crate) step: String,
    pub(crate) spec: RedisCache,
}

impl RedisCacheStep {
    pub fn new(aws: Aws, step: &str, spec: RedisCache) -> Self {
        RedisCacheStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }
}

pub(crate) enum Group {
    Absent,
    Present {
        status: String,
        outputs: Outputs,
        arn: String,
        settings: crate::elasticache_changes::Settings,
        /// What the group says it has still to do (`PendingModifiedValues`), if anything.
        pending: Option<String>,
    },
}

/// The changes a group reports as pending, named (`automatic failover enabling`), or None.
fn pending_of(g: &aws_sdk_elasticache::types::ReplicationGroup) -> Option<String> {
    let p = g.pending_modified_values()?;
    let mut out = Vec::new();
    if let Some(id) = p.primary_cluster_id() {
        out.push(format!("primary {id}"));
    }
    if let Some(f) = p.automatic_failover_status() {
        out.push(format!("automatic failover {}", f.as_str()));
    }
    if p.resharding().is_some() {
        out.push("resharding".to_owned());
    }
    if let Some(a) = p.auth_token_status() {
        out.push(format!("AUTH token {}", a.as_str()));
    }
    if p.user_groups().is_some() {
        out.push("user groups".to_owned());
    }
    if !p.log_delivery_configurations().is_empty() {
        out.push("log delivery".to_owned());
    }
    if p.transit_encryption_enabled().is_some() || p.transit_encryption_mode().is_some() {
        out.push("transit encryption".to_owned());
    }
    if p.cluster_mode().is_some() {
        out.push("cluster mode".to_owned());
    }
    (!out.is_empty()).then(|| out.join(", "))
}

const GROUP_ABSENT: [&str; 1] = ["ReplicationGroupNotFoundFault"];

impl RedisCacheStep {
    pub(crate) async fn look(&self) -> Result<Group, StepError> {
        let id = &self.spec.id;
        let found = self
            .aws
            .elasticache
            .describe_replication_groups()
            .replication_group_id(id)
            .send()
            .await
            .tolerate(&GROUP_ABSENT, "DescribeReplicationGroups", id)?;
        let Some(g) = found.as_ref().and_then(|d| d.replication_groups().first()) else {
            return Ok(Group::Absent);
        };
        let primary = g.node_groups().first().and_then(|n| n.primary_endpoint());
        let endpoint = g.configuration_endpoint().or(primary);
        let outputs = outputs(&[
            (
                "endpoint",
                // Absent while the group is being made: published as null, which a reader refuses.
                json!(endpoint.and_then(|e| e.address())),
            ),
            (
                "port",
                json!(endpoint.and_then(|e| e.port()).unwrap_or(6379)),
            ),
            ("arn", json!(g.arn())),
            ("tls", json!(true)),
        ]);
        let version = match g.member_clusters().first() {
            Some(member) => self.engine_version(member).await?,
            None => None,
        };
        Ok(Group::Present {
            status: g.status().unwrap_or("unknown").to_owned(),
            outputs,
            arn: answered(g.arn(), "DescribeReplicationGroups", "ARN", id)?.to_owned(),
            settings: crate::elasticache_changes::Settings::of(g, version.as_deref()),
            pending: pending_of(g),
        })
    }

    /// The Redis version a member cluster runs (the group itself does not say).
    async fn engine_version(&self, member: &str) -> Result<Option<String>, StepError> {
        let found = self
            .aws
            .elasticache
            .describe_cache_clusters()
            .cache_cluster_id(member)
            .send()
            .await
            .tolerate(&["CacheClusterNotFound"], "DescribeCacheClusters", member)?;
        Ok(found
            .as_ref()
            .and_then(|d| d.cache_clusters().first())
            .and_then(|c| c.engine_version())
            .map(str::to_owned))
    }

    /// The group's outputs with the token version W&B is to be given now.
    fn with_auth(
        &self,
        ctx: &StepCtx,
        mut outputs: Outputs,
        settings: &crate::elasticache_changes::Settings,
    ) -> Outputs {
        if let Some(r) = self.auth_ref(ctx, settings) {
            outputs.insert(
                wbstack_plan::ids::outputs::AUTH.into(),
                serde_json::to_value(r).expect("a secret reference is two strings"),
            );
        }
        outputs
    }
}

#[async_trait]
impl Step for RedisCacheStep {
    fn kind(&self) -> &str {
        RedisCache::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        Ok(match self.look().await? {
            Group::Present { settings, .. } if !self.aws.adopts(&self.step) => {
                self.against_plan(ctx, &settings)
            }
            _ => Vec::new(),
        })
    }
    fn fingerprint(&self) -> Fingerprint {
        let s = &self.spec;
        Fingerprint::of(&(
            "redis",
            &s.id,
            &s.node_type,
            s.nodes,
            s.multi_az,
            &s.engine_version,
            &s.security_group_ids,
            s.snapshot_retention_days,
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
                    && !accepted(&self.aws, &self.step, || read_tags(&self.aws, &arn)).await? =>
            {
                not_owned("replication group", &self.spec.id, &self.aws)
            }
            // Ours is judged by its live settings; an adopted one is used as it is.
            Group::Present {
                status,
                outputs,
                settings,
                ..
            } if status == "available" && !self.aws.adopts(&self.step) => {
                let c = self.against_plan(ctx, &settings);
                Observation::Ready {
                    outputs: self.with_auth(ctx, outputs, &settings),
                    fingerprint: Some(if c.is_empty() {
                        self.fingerprint()
                    } else {
                        Fingerprint::of(&("redis-live", &c))
                    }),
                }
            }
            Group::Present {
                status,
                outputs,
                settings,
                ..
            } if status == "available" => {
                Observation::ready(self.with_auth(ctx, outputs, &settings))
            }
            Group::Present { status, .. } if status == "create-failed" => Observation::Failed {
                message: format!("replication group {} is create-failed", self.spec.id),
            },
            Group::Present { status, .. } => Observation::InProgress {
                detail: Some(status),
            },
        })
    }
    async fn apply(&self, ctx: &StepCtx, a: Action) -> Result<(), StepError> {
        if a == Action::Update {
            return self.modify(ctx).await;
        }
        let s = &self.spec;
        let auth = ctx.need_secret(s.auth.step, s.auth.output)?;
        let token = read_secret(&self.aws, &auth).await?;
        let seed = match &s.restore {
            Some((source, named)) => self.seed(ctx, source, named.as_deref()).await?,
            None => None,
        };
        self.aws
            .elasticache
            .create_replication_group()
            .set_snapshot_name(seed)
            .replication_group_id(&s.id)
            .replication_group_description(format!("wbstack {}", self.aws.environment))
            .engine("redis")
            .engine_version(&s.engine_version)
            .cache_node_type(&s.node_type)
            .num_cache_clusters(s.nodes.max(1) as i32)
            .automatic_failover_enabled(s.multi_az)
            .multi_az_enabled(s.multi_az)
            .at_rest_encryption_enabled(true)
            .kms_key_id(ctx.need_str(s.kms.step, s.kms.output)?)
            .transit_encryption_enabled(true)
            .auth_token(token.expose())
            .snapshot_retention_limit(s.snapshot_retention_days as i32)
            .snapshot_window(&s.snapshot_window)
            .cache_subnet_group_name(ctx.need_str(s.subnets.step, s.subnets.output)?)
            .set_security_group_ids(Some(s.security_group_ids.clone()))
            .set_tags(Some(tags(&self.aws, &self.step, tag)))
            .send()
            .await
            .tolerate(
                &[
                    "ReplicationGroupAlreadyExistsFault",
                    "ReplicationGroupAlreadyExists",
                ],
                "CreateReplicationGroup",
                &s.id,
            )
            .map(|_| ())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        // How many polls in a row found the group available, still differing from the plan and
        // with nothing pending: twice means AWS did not take the change, and waiting cannot
        // help (once could be the moment before it starts).
        let idle = std::sync::atomic::AtomicU32::new(0);
        poll(ctx, || async {
            Ok(match self.look().await? {
                // A change is done when the group shows it, not when it is accepted.
                Group::Present {
                    status,
                    outputs,
                    settings,
                    pending,
                    ..
                } if status == "available" => {
                    let c = if self.aws.adopts(&self.step) {
                        Vec::new()
                    } else {
                        self.still_to_apply(ctx, &settings)
                    };
                    match (c.first(), pending) {
                        (Some(first), Some(p)) => {
                            idle.store(0, std::sync::atomic::Ordering::Relaxed);
                            ctx.progress(format!("applying {first} (pending: {p})"));
                            None
                        }
                        (Some(first), None) => {
                            if idle.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 1 {
                                return Err(StepError::permanent(format!(
                                    "replication group {} is available with {first} still to apply and nothing pending: AWS did not take the change (run `up` again to apply it)",
                                    self.spec.id
                                )));
                            }
                            ctx.progress(format!("applying {first}"));
                            None
                        }
                        (None, _) => Some(self.with_auth(ctx, outputs, &settings)),
                    }
                }
                Group::Present { status, .. } if status == "create-failed" => {
                    return Err(StepError::permanent(format!(
                        "replication group {} is create-failed",
                        self.spec.id
                    )))
                }
                Group::Present { status, .. } => {
                    idle.store(0, std::sync::atomic::Ordering::Relaxed);
                    ctx.progress(status);
                    None
                }
                Group::Absent => None,
            })
        })
        .await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.aws
            .elasticache
            .delete_replication_group()
            .replication_group_id(&self.spec.id)
            .retain_primary_cluster(false)
            .set_final_snapshot_identifier(self.final_snapshot(ctx))
            .send()
            .await
            // Absent, or already being deleted.
            .tolerate(
                &[
                    "ReplicationGroupNotFoundFault",
                    "InvalidReplicationGroupState",
                ],
                "DeleteReplicationGroup",
                &self.spec.id,
            )
            .map(|_| ())
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        poll(ctx, || async {
            Ok(matches!(self.look().await?, Group::Absent).then_some(()))
        })
        .await
    }
}

impl AwsStepKind for CacheSubnetGroup {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(CacheSubnetGroupStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        Grants::only(crate::policy::cache_subnet_group(&self.name))
    }
}

impl AwsStepKind for RedisCache {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        crate::with_group::wearing(
            aws,
            id,
            self,
            self.security_group,
            |aws, id, mut s, group| {
                s.security_group_ids.extend(group.map(str::to_owned));
                std::sync::Arc::new(RedisCacheStep::new(aws, id, s))
            },
        )
    }
    fn grants(&self, _env: &str) -> Grants {
        let mut statements = crate::policy::redis(&self.id);
        statements.extend(self.restore.as_ref().map(|_| crate::policy::cache_seed()));
        Grants {
            statements,
            service_role: Some("elasticache.amazonaws.com"),
        }
    }
}
