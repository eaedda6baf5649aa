//! A plan with its defaults resolved once: the size preset, the AWS settings, and the values
//! several sections share. Validation and compilation both read from here.

use crate::model::*;
use crate::presets::{preset, Preset};

/// The plan and everything derived from it that more than one section needs.
pub(crate) struct Resolved<'a> {
    pub plan: &'a Plan,
    pub spec: &'a Spec,
    /// The environment name.
    pub env: &'a str,
    /// The namespace of W&B.
    pub ns: String,
    pub preset: Preset,
    /// `spec.aws`, or its defaults.
    pub aws: AwsSpec,
    /// ClickHouse replicas (the plan's, or the preset's).
    pub ch_replicas: u32,
    /// `global.clickhouse.replicated` (the plan's, or replicas > 1).
    pub ch_replicated: bool,
}

impl<'a> Resolved<'a> {
    pub fn new(plan: &'a Plan) -> Self {
        let spec = &plan.spec;
        let preset = preset(spec.size);
        let ch_replicas = spec
            .clickhouse
            .replicas
            .unwrap_or(preset.clickhouse_replicas);
        Resolved {
            plan,
            spec,
            env: &plan.metadata.name,
            ns: spec.kubernetes.namespace.clone(),
            aws: spec.aws.clone().unwrap_or_default(),
            ch_replicated: spec.clickhouse.replicated.unwrap_or(ch_replicas > 1),
            ch_replicas,
            preset,
        }
    }

    /// The wait timeout of a step, seconds.
    pub fn timeout(&self, id: &str) -> u64 {
        let t = &self.spec.timeouts;
        t.steps.get(id).copied().unwrap_or(t.ready_seconds)
    }

    /// Whether MySQL is on RDS or Aurora.
    pub fn mysql_on_aws(&self) -> bool {
        matches!(self.spec.mysql.mode, MysqlMode::Rds | MysqlMode::Aurora)
    }

    /// Whether the plan makes a KMS key (for the bucket, the database or the cache).
    pub fn needs_kms(&self) -> bool {
        let s = self.spec;
        s.bucket.mode == BucketMode::S3 && s.bucket.kms_key_arn.is_none()
            || self.mysql_on_aws()
            || s.redis.mode == RedisMode::Elasticache
    }

    /// Whether any AWS resource is planned.
    pub fn needs_aws(&self) -> bool {
        self.mysql_on_aws()
            || self.spec.redis.mode == RedisMode::Elasticache
            || self.spec.bucket.mode == BucketMode::S3
    }

    /// Whether RDS or ElastiCache subnet groups are planned.
    pub fn needs_subnets(&self) -> bool {
        self.mysql_on_aws() || self.spec.redis.mode == RedisMode::Elasticache
    }
}

impl Resolved<'_> {
    /// Whether in-place changes to RDS and ElastiCache take effect now (`spec.aws.applyChanges`;
    /// by default in the maintenance window only for a protected environment).
    pub fn apply_immediately(&self) -> bool {
        match self.aws.apply_changes {
            Some(crate::model::ApplyChanges::Immediately) => true,
            Some(crate::model::ApplyChanges::MaintenanceWindow) => false,
            None => !self.plan.metadata.protected,
        }
    }
}
