//! What a compiled plan consists of: one payload type per kind of step, with its resolved
//! parameters, its typed inputs and its footprint in the cluster. Each kind is listed once, in
//! `kinds!` at the bottom, under the client crate that implements it; every dispatch over kinds
//! is generated from that list or is an exhaustive match over [`K8sKind`] or [`AwsKind`], so a
//! kind without its facts does not compile.

use crate::ids::{self, outputs, Input};
use crate::model::{ClickhouseS3, CpuMem, LicenseSource, OperatorInstall, Resources};
use serde::Serialize;

/// A kind of step: its label (shown in graphs, tables and reports), the outputs of other steps
/// it reads or waits for, and what it puts in the cluster. Every method is required.
pub trait Kind {
    /// `k8s.namespace`, `aws.s3.bucket`, ...; `aws.` kinds talk to AWS.
    const LABEL: &'static str;
    /// Other steps' outputs this step needs; each is an edge of the graph.
    fn inputs(&self) -> Vec<Input>;
    /// What the step puts in the cluster; `registry`: the plan's `spec.images.registry`.
    fn footprint(&self, registry: Option<&str>) -> Footprint<'_>;
}

/// What a step puts in the cluster, for the commands that read a plan without running it
/// (`images`, preflight, `verify`, validation).
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint<'a> {
    /// The namespace its objects live in.
    pub namespace: Option<&'a str>,
    /// The Secret it writes.
    pub secret: Option<&'a str>,
    /// The images its pods run.
    pub images: Vec<ImageUse>,
    /// The servers it runs that need room on the nodes.
    pub servers: Option<Servers<'a>>,
}

impl Footprint<'static> {
    /// Nothing in the cluster (an AWS resource, a check).
    pub const NONE: Footprint<'static> = Footprint {
        namespace: None,
        secret: None,
        images: Vec::new(),
        servers: None,
    };
}

impl<'a> Footprint<'a> {
    /// A Secret `name` in `namespace`.
    fn secret(namespace: &'a str, name: &'a str) -> Self {
        Footprint {
            namespace: Some(namespace),
            secret: Some(name),
            images: vec![],
            servers: None,
        }
    }
}

/// An image a step's pods run, the name `images` lists it under, and whether the plan can pin
/// it by digest.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageUse {
    pub image: String,
    pub used_by: String,
    pub pinnable: bool,
}

impl ImageUse {
    pub(crate) fn pinnable(image: &str, used_by: &str) -> Self {
        ImageUse {
            image: image.to_owned(),
            used_by: used_by.to_owned(),
            pinnable: true,
        }
    }
}

/// Servers a step runs: how many, what each asks of a node, and where their volumes live.
#[derive(Clone, Debug, PartialEq)]
pub struct Servers<'a> {
    /// `clickhouse`.
    pub what: &'static str,
    pub count: u32,
    pub requests: Option<&'a CpuMem>,
    pub storage_class: Option<&'a str>,
    /// The persistent volumes the step's pods claim.
    pub volumes: Vec<Volumes<'a>>,
}

/// `count` claims of `size` each (a Kubernetes quantity), made for `what`.
#[derive(Clone, Debug, PartialEq)]
pub struct Volumes<'a> {
    pub what: &'static str,
    pub count: u32,
    pub size: &'a str,
}

/// The volume each ClickHouse Keeper server claims.
pub const KEEPER_VOLUME: &str = "10Gi";

impl<'a> Servers<'a> {
    fn clickhouse(
        count: u32,
        r: &'a Option<Resources>,
        sc: &'a Option<String>,
        size: &'a str,
        keepers: u32,
    ) -> Self {
        let mut volumes = vec![Volumes {
            what: "ClickHouse",
            count,
            size,
        }];
        if keepers > 0 {
            volumes.push(Volumes {
                what: "ClickHouse Keeper",
                count: keepers,
                size: KEEPER_VOLUME,
            });
        }
        Servers {
            what: "clickhouse",
            count,
            requests: r.as_ref().and_then(|r| r.requests.as_ref()),
            storage_class: sc.as_deref(),
            volumes,
        }
    }
}

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
    #[serde(flatten)]
    pub input: Input,
}

/// The input every namespaced object has: its namespace exists.
const IN_NAMESPACE: Input = Input::new(ids::NAMESPACE, outputs::NAME);

/// A namespace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Namespace {
    pub name: String,
}

impl Kind for Namespace {
    const LABEL: &'static str = "k8s.namespace";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint {
            namespace: Some(&self.name),
            ..Footprint::NONE
        }
    }
}

/// The license, from the environment, a file or the plan, into a Secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LicenseSecret {
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub source: LicenseSource,
}

impl Kind for LicenseSecret {
    const LABEL: &'static str = "k8s.secret.license";
    fn inputs(&self) -> Vec<Input> {
        vec![IN_NAMESPACE]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::secret(&self.namespace, &self.name)
    }
}

/// A random password (CSPRNG) kept only in a Kubernetes Secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeneratedSecret {
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub length: usize,
}

impl Kind for GeneratedSecret {
    const LABEL: &'static str = "k8s.secret.generated";
    fn inputs(&self) -> Vec<Input> {
        vec![IN_NAMESPACE]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::secret(&self.namespace, &self.name)
    }
}

/// A Kubernetes Secret holding a value that another step keeps elsewhere (Secrets Manager);
/// `from` names it by reference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MirroredSecret {
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub from: Input,
}

impl Kind for MirroredSecret {
    const LABEL: &'static str = "k8s.secret.mirrored";
    fn inputs(&self) -> Vec<Input> {
        vec![IN_NAMESPACE, self.from]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::secret(&self.namespace, &self.name)
    }
}

/// The `WeightsAndBiases` CustomResourceDefinition of an operator version: applied when absent
/// or when it is wbstack's own and older; any other (a newer one, or one an official operator
/// install made) is adopted as it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WandbCrd {
    /// The operator version whose CRD wbstack applies.
    pub version: String,
}

impl Kind for WandbCrd {
    const LABEL: &'static str = "k8s.crd";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// The W&B operator.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Operator {
    pub namespace: String,
    pub version: String,
    pub install: OperatorInstall,
    pub airgapped: bool,
    /// The controller's image (`wandb/controller:<version>`, through the plan's registry).
    pub image: String,
    /// Image pull secrets of its pod.
    pub pull_secrets: Vec<String>,
}

impl Kind for Operator {
    const LABEL: &'static str = "k8s.wandb-operator";
    fn inputs(&self) -> Vec<Input> {
        vec![Input::new(ids::WANDB_CRD, outputs::NAME)]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        let images = match self.install {
            OperatorInstall::Auto => vec![ImageUse::pinnable(&self.image, "operator")],
            OperatorInstall::Never => vec![],
        };
        Footprint {
            namespace: Some(&self.namespace),
            secret: None,
            images,
            servers: None,
        }
    }
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
    /// The cluster name Weave's migrations use (`ON CLUSTER`): the cluster's own when Weave
    /// accepts it, else `weave_cluster`, rendered as a second name for the same replicas.
    pub weave_cluster: String,
    /// See `spec.timeouts.stuckSeconds`.
    pub stuck_seconds: u64,
    /// With IRSA: the servers run as this ServiceAccount, annotated with the role's ARN, and
    /// the S3 disk takes the role's credentials from the environment.
    pub service_account: Option<String>,
    pub role: Option<Input>,
    /// Image pull secrets of its pods.
    pub pull_secrets: Vec<String>,
}

impl Kind for BundledClickhouse {
    const LABEL: &'static str = "k8s.clickhouse";
    fn inputs(&self) -> Vec<Input> {
        let mut v = vec![IN_NAMESPACE, CLICKHOUSE_SECRET];
        v.extend(self.role);
        v
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint {
            namespace: Some(&self.namespace),
            secret: None,
            images: vec![
                ImageUse::pinnable(&self.image, "clickhouse"),
                ImageUse::pinnable(&self.keeper_image, "clickhouse-keeper"),
            ],
            servers: Some(Servers::clickhouse(
                self.shards * self.replicas,
                &self.resources,
                &self.storage_class,
                &self.storage_size,
                self.keeper_replicas,
            )),
        }
    }
}

/// The generated ClickHouse password both ClickHouse and W&B read.
const CLICKHOUSE_SECRET: Input = Input::new(ids::CLICKHOUSE_PASSWORD, outputs::SECRET);

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
    /// A ZooKeeper / Keeper the plan names (`host` or `host:port`).
    pub zookeeper_host: Option<String>,
    /// The ClickHouse Keeper ensemble wbstack has the operator make, when the installation is
    /// replicated and the plan names no ZooKeeper.
    pub keeper: Option<AltinityKeeper>,
    pub resources: Option<Resources>,
    pub storage_size: String,
    pub storage_class: Option<String>,
    /// As for bundled ClickHouse: the name Weave uses, an alias of the cluster when needed.
    pub weave_cluster: String,
    /// Image pull secrets of its pods.
    pub pull_secrets: Vec<String>,
}

/// A ClickHouseKeeperInstallation: its name (its Service is `keeper-<name>`, port 2181), its
/// replicas and image.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AltinityKeeper {
    pub name: String,
    pub replicas: u32,
    pub image: String,
}

impl Kind for AltinityClickhouse {
    const LABEL: &'static str = "k8s.clickhouse-installation";
    fn inputs(&self) -> Vec<Input> {
        let operator = Input::new(ids::ALTINITY_OPERATOR, outputs::NAME);
        vec![IN_NAMESPACE, CLICKHOUSE_SECRET, operator]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        let mut images = vec![ImageUse::pinnable(&self.image, "clickhouse")];
        let keeper = self.keeper.as_ref();
        images.extend(keeper.map(|k| ImageUse::pinnable(&k.image, "clickhouse-keeper")));
        Footprint {
            namespace: Some(&self.namespace),
            secret: None,
            images,
            servers: Some(Servers::clickhouse(
                self.shards * self.replicas,
                &self.resources,
                &self.storage_class,
                &self.storage_size,
                keeper.map_or(0, |k| k.replicas),
            )),
        }
    }
}

/// The Altinity ClickHouse operator, as its install bundle installs it: four CRDs, RBAC, its
/// configuration, a Secret and the Deployment. One already running anywhere is used as it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AltinityOperator {
    pub namespace: String,
    pub install: OperatorInstall,
    /// The operator's image and its metrics exporter's, through the plan's registry.
    pub image: String,
    pub metrics_image: String,
    /// Image pull secrets of its pod.
    pub pull_secrets: Vec<String>,
}

impl Kind for AltinityOperator {
    const LABEL: &'static str = "k8s.altinity-operator";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        let images = match self.install {
            OperatorInstall::Auto => vec![
                ImageUse::pinnable(&self.image, "altinity-operator"),
                ImageUse::pinnable(&self.metrics_image, "altinity-operator"),
            ],
            OperatorInstall::Never => vec![],
        };
        Footprint {
            namespace: Some(&self.namespace),
            secret: None,
            images,
            servers: None,
        }
    }
}

/// The WeightsAndBiases resource: static values, values bound to other steps' outputs, and the
/// steps it waits for without reading them (the operator, the Secrets it names).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WandbResource {
    pub namespace: String,
    pub name: String,
    /// `spec.chart`: the chart the operator installs.
    pub chart: serde_json::Value,
    pub values: serde_json::Value,
    pub bindings: Vec<Binding>,
    /// The API version the CRD stores (`v2` is read through v2).
    pub crd: Input,
    /// See `spec.timeouts.stuckSeconds`.
    pub stuck_seconds: u64,
    #[serde(skip)]
    pub needs: Vec<Input>,
}

impl Kind for WandbResource {
    const LABEL: &'static str = "k8s.weightsandbiases";
    fn inputs(&self) -> Vec<Input> {
        let mut v = vec![IN_NAMESPACE, self.crd];
        v.extend(self.needs.iter().copied());
        v.extend(self.bindings.iter().map(|b| b.input));
        v
    }
    fn footprint(&self, registry: Option<&str>) -> Footprint<'_> {
        Footprint {
            namespace: Some(&self.namespace),
            secret: None,
            images: crate::digests::chart_images(registry, &self.values),
            servers: None,
        }
    }
}

/// The KMS key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KmsKey {
    pub alias: String,
    pub deletion_window_days: u32,
}

impl Kind for KmsKey {
    const LABEL: &'static str = "aws.kms.key";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// The artifacts bucket, encrypted with a given key or the `kms` step's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct S3Bucket {
    pub name: String,
    pub versioning: bool,
    pub kms_key_arn: Option<String>,
    /// The key's ARN when none is given.
    pub kms: Option<Input>,
    /// The origins the bucket's CORS allows: the plan's host.
    pub cors_origins: Vec<String>,
}

impl Kind for S3Bucket {
    const LABEL: &'static str = "aws.s3.bucket";
    fn inputs(&self) -> Vec<Input> {
        self.kms.iter().copied().collect()
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// The RDS subnet group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DbSubnetGroup {
    pub name: String,
    pub subnet_ids: Vec<String>,
}

impl Kind for DbSubnetGroup {
    const LABEL: &'static str = "aws.rds.subnet-group";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// The RDS cluster and instance parameter groups.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DbParameterGroups {
    pub name: String,
    pub aurora: bool,
}

impl Kind for DbParameterGroups {
    const LABEL: &'static str = "aws.rds.parameter-groups";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// A generated password kept in Secrets Manager.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AwsSecret {
    pub name: String,
    pub recovery_days: u32,
    /// Characters RDS / ElastiCache accept.
    pub alphabet: String,
    pub length: usize,
}

impl Kind for AwsSecret {
    const LABEL: &'static str = "aws.secretsmanager.secret";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// MySQL on RDS (one instance) or Aurora (a cluster and its instances).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MysqlDatabase {
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
    /// The security group wbstack makes for it (`spec.aws.securityGroup`), put on it besides
    /// those.
    pub security_group: Option<Input>,
    /// The logs exported to CloudWatch Logs, sorted.
    pub log_exports: Vec<String>,
    /// Performance Insights on every instance (7 days, the environment's key).
    pub performance_insights: bool,
    /// Changes to the running database take effect now, not in its maintenance window.
    pub apply_immediately: bool,
    /// Made from another database's data instead of empty.
    pub restore: Option<DbRestore>,
    pub kms: Input,
    pub subnets: Input,
    pub instance_params: Input,
    pub cluster_params: Input,
    pub password: Input,
}

impl Kind for MysqlDatabase {
    const LABEL: &'static str = "aws.rds.mysql";
    fn inputs(&self) -> Vec<Input> {
        let mut v = vec![
            self.kms,
            self.subnets,
            self.instance_params,
            self.cluster_params,
            self.password,
        ];
        v.extend(self.security_group);
        v
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// Where a restored database's data comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DbRestore {
    /// The source cluster's identifier.
    pub source: String,
    /// RFC 3339, or `None` for the latest restorable time (unless `snapshot`).
    pub to_time: Option<String>,
    /// A cluster snapshot instead of a point in time.
    pub snapshot: Option<String>,
}

/// The security group of the database and the cache: made in the VPC of `subnet`, it admits
/// only `allow_from` on `ports` and sends nothing out.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroup {
    pub name: String,
    pub description: String,
    /// A subnet of the plan: the group is made in its VPC.
    pub subnet: String,
    pub allow_from: Vec<String>,
    pub ports: Vec<DataPort>,
}

impl Kind for SecurityGroup {
    const LABEL: &'static str = "aws.ec2.security-group";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// The ElastiCache subnet group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CacheSubnetGroup {
    pub name: String,
    pub subnet_ids: Vec<String>,
}

impl Kind for CacheSubnetGroup {
    const LABEL: &'static str = "aws.elasticache.subnet-group";
    fn inputs(&self) -> Vec<Input> {
        vec![]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// A Redis replication group on ElastiCache.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RedisCache {
    pub id: String,
    pub node_type: String,
    pub nodes: u32,
    pub multi_az: bool,
    /// Redis major.minor (`7.1`).
    pub engine_version: String,
    pub security_group_ids: Vec<String>,
    /// The security group wbstack makes for it (`spec.aws.securityGroup`), put on it besides
    /// those.
    pub security_group: Option<Input>,
    /// Node type changes take effect now, not in the group's maintenance window.
    pub apply_immediately: bool,
    /// Days of daily snapshots kept (0: none).
    pub snapshot_retention_days: u32,
    /// The daily snapshot window (UTC, `hh:mm-hh:mm`).
    pub snapshot_window: String,
    /// A final snapshot on teardown.
    pub final_snapshot: bool,
    /// Seeded from a snapshot of another group: (source group, snapshot name if given).
    pub restore: Option<(String, Option<String>)>,
    pub kms: Input,
    pub subnets: Input,
    pub auth: Input,
}

impl Kind for RedisCache {
    const LABEL: &'static str = "aws.elasticache.redis";
    fn inputs(&self) -> Vec<Input> {
        let mut v = vec![self.kms, self.subnets, self.auth];
        v.extend(self.security_group);
        v
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// The last stage of an AUTH token rotation: once W&B runs with the new token, the group is set
/// to accept only it (`SET`), and the new token becomes the secret's current value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RedisAuthCommit {
    pub group: String,
    /// The secret step holding the token (its pending version is the new token).
    pub auth: Input,
    /// The group, once it accepts the new token next to the old.
    pub cache: Input,
    /// The W&B resource, ready with the new token.
    pub after: Input,
}

impl Kind for RedisAuthCommit {
    const LABEL: &'static str = "aws.elasticache.auth-commit";
    fn inputs(&self) -> Vec<Input> {
        vec![self.auth, self.cache, self.after]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// Access to one bucket's objects under a prefix (`""`: the whole bucket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BucketGrant {
    pub bucket: String,
    pub prefix: String,
}

impl MysqlDatabase {
    /// The DB instances: `<identifier>-1..n` in an Aurora cluster, else the one instance.
    pub fn instance_ids(&self) -> Vec<String> {
        if self.aurora {
            (1..=self.instances.max(1))
                .map(|i| format!("{}-{i}", self.identifier))
                .collect()
        } else {
            vec![self.identifier.clone()]
        }
    }
}

impl RedisCache {
    /// The replication group's member clusters, as ElastiCache names them: `<id>-001..n`.
    pub fn member_ids(&self) -> Vec<String> {
        (1..=self.nodes.max(1))
            .map(|n| format!("{}-{n:03}", self.id))
            .collect()
    }
}

/// One CloudWatch alarm on a metric of the environment's database or cache.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alarm {
    pub name: String,
    pub description: String,
    /// `AWS/RDS` or `AWS/ElastiCache`.
    pub namespace: String,
    pub metric: String,
    /// (name, value): `DBClusterIdentifier`, `DBInstanceIdentifier` or `CacheClusterId`.
    pub dimensions: Vec<(String, String)>,
    /// `Average`, `Maximum` or `Sum`.
    pub statistic: String,
    /// `GreaterThanThreshold` or `LessThanThreshold`.
    pub comparison: String,
    pub threshold: f64,
    pub period_seconds: i32,
    /// Periods in a row past the threshold before it fires.
    pub evaluation_periods: i32,
}

/// The environment's CloudWatch alarms, all named with `prefix`: the step makes the ones the
/// plan wants as it wants them and removes the others with the prefix.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CloudwatchAlarms {
    pub prefix: String,
    pub alarms: Vec<Alarm>,
    /// SNS topic ARNs told when an alarm fires and clears.
    pub actions: Vec<String>,
    /// The resources watched: made first, so the alarms start on live metrics.
    pub watched: Vec<Input>,
}

impl Kind for CloudwatchAlarms {
    const LABEL: &'static str = "aws.cloudwatch.alarms";
    fn inputs(&self) -> Vec<Input> {
        self.watched.clone()
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// An IAM role that pods assume through the cluster's OIDC provider (IRSA), with access to the
/// environment's bucket and key only.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IamRole {
    pub name: String,
    pub oidc_provider_arn: String,
    /// The service accounts that may assume it, as `<namespace>:<name>`.
    pub service_accounts: Vec<String>,
    pub buckets: Vec<BucketGrant>,
    /// A given key's ARN, or
    pub kms_key_arn: Option<String>,
    /// the `kms` step's.
    pub kms: Option<Input>,
}

impl Kind for IamRole {
    const LABEL: &'static str = "aws.iam.role";
    fn inputs(&self) -> Vec<Input> {
        self.kms.iter().copied().collect()
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

/// The namespace's NetworkPolicies: a default deny, then the flows W&B needs. The front door's
/// (into the pods the chart's Ingress sends to, on their ports) are read from the release the
/// operator installed, so the step runs after the resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicies {
    pub namespace: String,
    /// The WeightsAndBiases resource, whose Helm release holds the Ingress.
    pub release: String,
    pub ingress_namespaces: Vec<String>,
    pub ingress_cidrs: Vec<String>,
    pub monitoring_namespaces: Vec<String>,
    /// Where the data stores outside the cluster are (empty: anywhere).
    pub data_cidrs: Vec<String>,
    /// The ports of the data stores outside the cluster.
    pub data_ports: Vec<DataPort>,
    /// The ClickHouseInstallation the Altinity operator manages here: the operator queries
    /// each of its servers on 8123.
    pub altinity: Option<AltinityFlow>,
    /// The resource's host: the policies follow the resource.
    pub after: Input,
}

/// The Altinity operator's flow into the servers of an installation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AltinityFlow {
    /// The installation's name (its pods' `clickhouse.altinity.com/chi` label).
    pub installation: String,
    /// The namespace the operator runs in, as its step found it.
    pub operator: Input,
}

/// A port of a data store outside the cluster, and what listens on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DataPort {
    pub port: u16,
    pub what: String,
}

impl Kind for NetworkPolicies {
    const LABEL: &'static str = "k8s.network-policies";
    fn inputs(&self) -> Vec<Input> {
        let mut v = vec![IN_NAMESPACE, self.after];
        v.extend(self.altinity.as_ref().map(|a| a.operator));
        v
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint {
            namespace: Some(&self.namespace),
            ..Footprint::NONE
        }
    }
}

/// The W&B host answering over HTTP(S) (`spec.wandb.waitForUrl`): ready once a request to it
/// gets any answer below 500.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UrlReady {
    pub url: String,
    /// The resource's host output: the check runs after the resource is ready.
    pub after: Input,
}

impl Kind for UrlReady {
    const LABEL: &'static str = "http.url";
    fn inputs(&self) -> Vec<Input> {
        vec![self.after]
    }
    fn footprint(&self, _: Option<&str>) -> Footprint<'_> {
        Footprint::NONE
    }
}

macro_rules! kinds {
    (
        k8s { $($k:ident($kp:ident)),* $(,)? }
        aws { $($a:ident($ap:ident)),* $(,)? }
    ) => {
        /// Every kind of step.
        #[derive(Clone, Debug, PartialEq, Serialize)]
        #[serde(tag = "kind", rename_all = "kebab-case")]
        pub enum StepKind {
            $($k($kp),)*
            $($a($ap),)*
        }

        /// A kind the Kubernetes client crate implements (`wbstack_k8s::kind`).
        #[derive(Clone, Copy, Debug)]
        pub enum K8sKind<'a> {
            $($k(&'a $kp),)*
        }

        /// A kind the AWS client crate implements (`wbstack_aws::kind`).
        #[derive(Clone, Copy, Debug)]
        pub enum AwsKind<'a> {
            $($a(&'a $ap),)*
        }

        impl StepKind {
            /// A short label for graphs and tables.
            pub fn label(&self) -> &'static str {
                match self {
                    $(StepKind::$k(_) => <$kp as Kind>::LABEL,)*
                    $(StepKind::$a(_) => <$ap as Kind>::LABEL,)*
                }
            }

            /// The outputs of other steps this step needs.
            pub fn inputs(&self) -> Vec<Input> {
                match self {
                    $(StepKind::$k(x) => x.inputs(),)*
                    $(StepKind::$a(x) => x.inputs(),)*
                }
            }

            /// What the step puts in the cluster.
            pub fn footprint(&self, registry: Option<&str>) -> Footprint<'_> {
                match self {
                    $(StepKind::$k(x) => x.footprint(registry),)*
                    $(StepKind::$a(x) => x.footprint(registry),)*
                }
            }

            /// The client crate that implements it.
            pub fn side(&self) -> Side<'_> {
                match self {
                    $(StepKind::$k(x) => Side::K8s(K8sKind::$k(x)),)*
                    $(StepKind::$a(x) => Side::Aws(AwsKind::$a(x)),)*
                }
            }
        }

        $(impl From<$kp> for StepKind {
            fn from(k: $kp) -> Self {
                StepKind::$k(k)
            }
        })*
        $(impl From<$ap> for StepKind {
            fn from(k: $ap) -> Self {
                StepKind::$a(k)
            }
        })*
    };
}

/// The client crate a kind of step belongs to.
#[derive(Clone, Copy, Debug)]
pub enum Side<'a> {
    K8s(K8sKind<'a>),
    Aws(AwsKind<'a>),
}

kinds! {
    k8s {
        Namespace(Namespace),
        LicenseSecret(LicenseSecret),
        GeneratedSecret(GeneratedSecret),
        MirroredSecret(MirroredSecret),
        WandbCrd(WandbCrd),
        Operator(Operator),
        ClickhouseBundled(BundledClickhouse),
        ClickhouseAltinity(AltinityClickhouse),
        AltinityOperator(AltinityOperator),
        WandbResource(WandbResource),
        NetworkPolicies(NetworkPolicies),
        UrlReady(UrlReady),
    }
    aws {
        KmsKey(KmsKey),
        SecurityGroup(SecurityGroup),
        S3Bucket(S3Bucket),
        DbSubnetGroup(DbSubnetGroup),
        DbParameterGroups(DbParameterGroups),
        AwsSecret(AwsSecret),
        MysqlDatabase(MysqlDatabase),
        CacheSubnetGroup(CacheSubnetGroup),
        RedisCache(RedisCache),
        RedisAuthCommit(RedisAuthCommit),
        IamRole(IamRole),
        CloudwatchAlarms(CloudwatchAlarms),
    }
}

impl StepKind {
    /// Whether the step talks to AWS.
    pub fn is_aws(&self) -> bool {
        matches!(self.side(), Side::Aws(_))
    }
}
