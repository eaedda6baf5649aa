//! wbstack's AWS steps (aws-sdk-rust): the KMS key, the artifacts bucket, generated passwords in
//! Secrets Manager, MySQL on RDS / Aurora, Redis on ElastiCache, the pods' IAM role (IRSA), CloudWatch alarms and the stores' security group. Every resource has a
//! deterministic name from the environment, carries the environment's tags, and is adopted when
//! it is ours and refused when it is not ([`own`](crate) holds those rules for every step).
//!
//! Each step is built from its plan payload: `KmsKeyStep::new(aws, step_id, spec)`, or through
//! [`kind`], the one dispatch over the AWS kinds.

mod alarms;
mod calllog;
mod clients;
mod elasticache;
mod elasticache_auth;
mod elasticache_changes;
mod iam;
mod kind;
mod kms;
mod kms_guard;
mod kms_keep;
mod own;
mod policy;
mod poll;
mod rds_changes;
mod rds_groups;
mod rds_mysql;
mod rds_restore;
mod rds_roll;
mod rotation;
mod s3;
mod s3_security;
mod secrets;
mod security_group;
mod with_group;

pub use alarms::CloudwatchAlarmsStep;
pub use clients::{classify, describe, error_code, Aws, AwsError, AwsSettings};
pub use elasticache::{CacheSubnetGroupStep, RedisCacheStep};
pub use elasticache_auth::RedisAuthCommitStep;
pub use iam::{IamRoleStep, POLICY as ROLE_POLICY};
pub use kind::{AwsStepKind, Grants};
pub use kms::KmsKeyStep;
pub use policy::wbstack_policy;
pub use poll::{interval as poll_interval, poll};
pub use rds_groups::{
    DbParameterGroupsStep, DbSubnetGroupStep, CLUSTER_PARAMETERS, INSTANCE_PARAMETERS,
};
pub use rds_mysql::MysqlDatabaseStep;
pub use s3::S3BucketStep;
pub use secrets::{generate, read_secret, AwsSecretStep, STORE};
pub use security_group::SecurityGroupStep;

/// What this crate knows of an AWS kind of step: one arm per kind.
pub fn kind(k: wbstack_plan::AwsKind<'_>) -> &dyn AwsStepKind {
    use wbstack_plan::AwsKind as K;
    match k {
        K::KmsKey(x) => x,
        K::SecurityGroup(x) => x,
        K::S3Bucket(x) => x,
        K::DbSubnetGroup(x) => x,
        K::DbParameterGroups(x) => x,
        K::AwsSecret(x) => x,
        K::MysqlDatabase(x) => x,
        K::CacheSubnetGroup(x) => x,
        K::RedisCache(x) => x,
        K::RedisAuthCommit(x) => x,
        K::IamRole(x) => x,
        K::CloudwatchAlarms(x) => x,
    }
}
