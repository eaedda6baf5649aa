//! What a compiled plan consists of: steps with explicit dependencies and fully resolved
//! parameters. The CLI maps each kind to a step implementation.

use crate::model::{ClickhouseS3, LicenseSource, OperatorInstall, Resources};
use serde::Serialize;

/// One step of a compiled plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepPlan {
    pub id: String,
    pub deps: Vec<String>,
    #[serde(flatten)]
    pub kind: StepKind,
    /// Wait timeout, seconds.
    pub timeout_seconds: u64,
}

/// A value of the WeightsAndBiases resource that comes from another step's outputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Binding {
    /// JSON pointer into `spec.values` (`/global/mysql/host`).
    pub pointer: String,
    pub step: String,
    pub output: String,
}

/// Native ClickHouse: a Keeper ensemble and shards x replicas of servers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundledClickhouse {
    pub namespace: String,
    /// Prefix of every object's name.
    pub name: String,
    pub cluster_name: String,
    pub shards: u32,
    pub replicas: u32,
    pub keeper_replicas: u32,
    pub image: String,
    pub keeper_image: String,
    pub user: String,
    pub database: String,
    pub password_secret: String,
    pub password_key: String,
    pub log_level: String,
    pub prometheus: bool,
    pub s3: Option<ClickhouseS3>,
    pub resources: Option<Resources>,
    pub storage_size: String,
    pub storage_class: Option<String>,
}

/// A ClickHouseInstallation for the Altinity operator.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AltinityClickhouse {
    pub namespace: String,
    pub name: String,
    pub cluster_name: String,
    pub shards: u32,
    pub replicas: u32,
    pub image: String,
    pub user: String,
    pub password_secret: String,
    pub password_key: String,
    pub zookeeper_host: Option<String>,
    pub resources: Option<Resources>,
    pub storage_size: String,
    pub storage_class: Option<String>,
}

/// Every kind of step.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepKind {
    Namespace {
        name: String,
    },
    /// The license, from the environment, a file or the plan, into a Secret.
    LicenseSecret {
        namespace: String,
        name: String,
        key: String,
        source: LicenseSource,
    },
    /// A random password (CSPRNG) kept only in a Kubernetes Secret.
    GeneratedSecret {
        namespace: String,
        name: String,
        key: String,
        length: usize,
    },
    /// A Kubernetes Secret holding a value that another step keeps elsewhere (Secrets
    /// Manager); the step's output names it by reference.
    MirroredSecret {
        namespace: String,
        name: String,
        key: String,
        from_step: String,
        output: String,
    },
    Operator {
        namespace: String,
        version: String,
        install: OperatorInstall,
    },
    ClickhouseBundled(BundledClickhouse),
    ClickhouseAltinity(AltinityClickhouse),
    WandbResource {
        namespace: String,
        name: String,
        values: serde_json::Value,
        bindings: Vec<Binding>,
    },
    KmsKey {
        alias: String,
        deletion_window_days: u32,
    },
    S3Bucket {
        name: String,
        versioning: bool,
        kms_key_arn: Option<String>,
    },
    DbSubnetGroup {
        name: String,
        subnet_ids: Vec<String>,
    },
    DbParameterGroups {
        name: String,
        aurora: bool,
    },
    /// A generated password kept in Secrets Manager.
    AwsSecret {
        name: String,
        recovery_days: u32,
        /// Characters RDS / ElastiCache accept.
        alphabet: String,
        length: usize,
    },
    MysqlDatabase {
        identifier: String,
        aurora: bool,
        instances: u32,
        instance_class: String,
        engine_version: String,
        database: String,
        user: String,
        storage_gb: u32,
        backup_retention_days: u32,
        deletion_protection: bool,
        final_snapshot: bool,
        security_group_ids: Vec<String>,
    },
    CacheSubnetGroup {
        name: String,
        subnet_ids: Vec<String>,
    },
    RedisCache {
        id: String,
        node_type: String,
        nodes: u32,
        multi_az: bool,
        security_group_ids: Vec<String>,
    },
}

impl StepKind {
    /// Whether the step talks to AWS.
    pub fn is_aws(&self) -> bool {
        matches!(
            self,
            StepKind::KmsKey { .. }
                | StepKind::S3Bucket { .. }
                | StepKind::DbSubnetGroup { .. }
                | StepKind::DbParameterGroups { .. }
                | StepKind::AwsSecret { .. }
                | StepKind::MysqlDatabase { .. }
                | StepKind::CacheSubnetGroup { .. }
                | StepKind::RedisCache { .. }
        )
    }

    /// A short label for graphs and tables.
    pub fn label(&self) -> &'static str {
        match self {
            StepKind::Namespace { .. } => "k8s.namespace",
            StepKind::LicenseSecret { .. } => "k8s.secret.license",
            StepKind::GeneratedSecret { .. } => "k8s.secret.generated",
            StepKind::MirroredSecret { .. } => "k8s.secret.mirrored",
            StepKind::Operator { .. } => "k8s.wandb-operator",
            StepKind::ClickhouseBundled(_) => "k8s.clickhouse",
            StepKind::ClickhouseAltinity(_) => "k8s.clickhouse-installation",
            StepKind::WandbResource { .. } => "k8s.weightsandbiases",
            StepKind::KmsKey { .. } => "aws.kms.key",
            StepKind::S3Bucket { .. } => "aws.s3.bucket",
            StepKind::DbSubnetGroup { .. } => "aws.rds.subnet-group",
            StepKind::DbParameterGroups { .. } => "aws.rds.parameter-groups",
            StepKind::AwsSecret { .. } => "aws.secretsmanager.secret",
            StepKind::MysqlDatabase { .. } => "aws.rds.mysql",
            StepKind::CacheSubnetGroup { .. } => "aws.elasticache.subnet-group",
            StepKind::RedisCache { .. } => "aws.elasticache.redis",
        }
    }
}
