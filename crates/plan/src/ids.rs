//! Step ids and the typed inputs that join steps: every id is written here once, and the graph's
//! edges are derived from the inputs each step declares.

use serde::Serialize;

/// The namespace of W&B and its secrets.
pub const NAMESPACE: &str = "k8s.namespace";
/// The license Secret.
pub const LICENSE: &str = "k8s.license";
/// The `WeightsAndBiases` CRD.
pub const WANDB_CRD: &str = "k8s.wandb-crd";
/// The W&B operator.
pub const OPERATOR: &str = "k8s.operator";
/// The KMS key everything on AWS is encrypted with.
pub const KMS: &str = "aws.kms";
/// The security group of the database and the cache (`spec.aws.securityGroup`).
pub const SECURITY_GROUP: &str = "aws.security-group";
/// The RDS subnet group.
pub const DB_SUBNETS: &str = "aws.db-subnets";
/// The RDS parameter groups.
pub const DB_PARAMS: &str = "aws.db-params";
/// The database master password in Secrets Manager.
pub const DB_PASSWORD: &str = "aws.db-password";
/// MySQL on RDS or Aurora.
pub const MYSQL: &str = "aws.mysql";
/// The Kubernetes Secret mirroring the database password.
pub const MYSQL_PASSWORD: &str = "k8s.mysql-password";
/// The ElastiCache subnet group.
pub const CACHE_SUBNETS: &str = "aws.cache-subnets";
/// The Redis AUTH token in Secrets Manager.
pub const REDIS_AUTH: &str = "aws.redis-auth";
/// Redis on ElastiCache.
pub const REDIS: &str = "aws.redis";
/// The last stage of an AUTH token rotation (`up --rotate aws.redis-auth`).
pub const REDIS_AUTH_COMMIT: &str = "aws.redis-auth-commit";
/// The Kubernetes Secret mirroring the Redis AUTH token.
pub const REDIS_PASSWORD: &str = "k8s.redis-password";
/// The artifacts bucket.
pub const BUCKET: &str = "aws.bucket";
/// The generated ClickHouse password.
pub const CLICKHOUSE_PASSWORD: &str = "k8s.clickhouse-password";
/// The Altinity ClickHouse operator.
pub const ALTINITY_OPERATOR: &str = "k8s.altinity-operator";
/// ClickHouse run by wbstack (bundled or Altinity).
pub const CLICKHOUSE: &str = "k8s.clickhouse";
/// The weave-trace workers' shared key.
pub const WEAVE_WORKER_AUTH: &str = "k8s.weave-worker-auth";
/// The IAM role W&B's and ClickHouse's service accounts assume (IRSA).
pub const IAM_ROLE: &str = "aws.iam-role";
/// CloudWatch alarms on the database and the cache.
pub const ALARMS: &str = "aws.alarms";
/// The WeightsAndBiases resource.
pub const WANDB: &str = "k8s.wandb";
/// The namespace's NetworkPolicies (`spec.kubernetes.networkPolicies`).
pub const NETWORK_POLICIES: &str = "k8s.network-policies";
/// The host answering (`spec.wandb.waitForUrl`).
pub const WANDB_URL: &str = "http.wandb-url";

/// One output of another step that a step reads (or waits for). The graph has an edge from
/// `step` to every step with this input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Input {
    pub step: &'static str,
    pub output: &'static str,
}

impl Input {
    /// The output `output` of step `step`.
    pub const fn new(step: &'static str, output: &'static str) -> Self {
        Input { step, output }
    }
}

/// The outputs steps publish and others read.
pub mod outputs {
    /// A secret reference (never a value).
    pub const SECRET: &str = "secret";
    pub const NAME: &str = "name";
    pub const NAMESPACE: &str = "namespace";
    pub const ARN: &str = "arn";
    /// An AWS resource's id (`sg-...`).
    pub const ID: &str = "id";
    pub const ENDPOINT: &str = "endpoint";
    pub const PORT: &str = "port";
    pub const HOST: &str = "host";
    pub const REGION: &str = "region";
    pub const KMS_KEY_ARN: &str = "kms_key_arn";
    pub const INSTANCE_GROUP: &str = "instance_group";
    pub const CLUSTER_GROUP: &str = "cluster_group";
    /// The API version a CRD stores (`v1`, `v2`).
    pub const STORAGE: &str = "storage";
    /// A digest of a credential's value (never the value): workloads that read the credential
    /// carry it in their pod template, so they roll when it changes.
    pub const REVISION: &str = "revision";
    /// When wbstack last wrote a mirrored credential (from the Secret's own annotation): the
    /// workloads that read it carry it in their pod template, so a rewrite (a new value, or one
    /// edited by hand and set back) rolls them.
    pub const WRITTEN: &str = "written";
    /// The version of a credential its users are to be given now (a reference, never a value).
    pub const AUTH: &str = "auth";
}
