//! The plan file format (`apiVersion: wbstack.dev/v1`, `kind: Plan`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version this build reads and writes.
pub const API_VERSION: &str = "wbstack.dev/v1";

/// A whole plan file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Plan {
    /// Always `wbstack.dev/v1`.
    pub api_version: String,
    /// Always `Plan`.
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

/// Names the environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The environment name: a DNS label (lowercase letters, digits, `-`; at most 40
    /// characters). Every resource name derives from it.
    pub name: String,
    /// `down` refuses a protected environment without `--force`; databases get deletion
    /// protection.
    #[serde(default)]
    pub protected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Everything the environment consists of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Sizing preset; every field it sets can be overridden below.
    #[serde(default)]
    pub size: Size,
    #[serde(default)]
    pub kubernetes: KubernetesSpec,
    pub wandb: WandbSpec,
    #[serde(default)]
    pub mysql: MysqlSpec,
    #[serde(default)]
    pub redis: RedisSpec,
    #[serde(default)]
    pub bucket: BucketSpec,
    #[serde(default)]
    pub clickhouse: ClickhouseSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSpec>,
    /// AWS settings; required when a data store is on AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSpec>,
    /// Bring this environment up from another's data (`wbstack restore` writes it): its
    /// database from a point in time or a snapshot, its Redis from a snapshot, and the
    /// source's bucket used as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,
    /// Commands run around steps, by step id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hooks: BTreeMap<String, Vec<HookSpec>>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Where the environment keeps its journal, lock and plan copy: a local directory, or
    /// `s3://BUCKET/PREFIX` shared by a team (the bucket must exist; wbstack never creates or
    /// deletes it). `--state-dir` and `WBSTACK_STATE_DIR` take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Where images come from, for clusters that pull only from a registry of their own.
    #[serde(default)]
    pub images: ImagesSpec,
    /// Run `wbstack verify` at the end of every `up` and `resume`: a probe per data path, with
    /// the credentials the W&B pods use; a failed probe fails the run (exit 7).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
}

/// Images from a registry of the plan's choosing (an air-gapped mirror).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImagesSpec {
    /// A registry (host and optional path, like `registry.corp.example/wandb`) put in front of
    /// every image wbstack and the chart deploy whose name names no registry of its own, as the
    /// chart's `global.imageRegistry` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Secrets of type `kubernetes.io/dockerconfigjson` the pods pull with: W&B's (the chart's
    /// `global.imagePullSecrets`) and ClickHouse's in the W&B namespace, the operator's in its
    /// own. wbstack does not make them; `up` checks they exist before its first change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
    /// Digests pinning images, keyed by the image as `wbstack images` lists it
    /// (`registry.corp.example/wandb/controller:1.22.0: sha256:...`): the operator and
    /// ClickHouse run `image@digest`, each W&B service gets the chart's `<service>.image.digest`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub digests: std::collections::BTreeMap<String, String>,
}

/// `image` as pulled through `registry`, as the chart's `global.imageRegistry` does it (read
/// from its renders): an image naming no registry is prefixed, one from `docker.io` has that
/// registry replaced (the Bitnami subcharts), one from another registry (`quay.io`) is left.
pub fn with_registry(registry: Option<&str>, image: &str) -> String {
    let Some(r) = registry
        .map(|r| r.trim_end_matches('/'))
        .filter(|r| !r.is_empty())
    else {
        return image.to_owned();
    };
    if let Some(rest) = image.strip_prefix("docker.io/") {
        return format!("{r}/{rest}");
    }
    let first = image.split('/').next().unwrap_or("");
    let has_host =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        image.to_owned()
    } else {
        format!("{r}/{image}")
    }
}

/// Sizing preset, from the reference architecture's sizing guidelines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// < 50 users.
    #[default]
    Small,
    /// 50-200 users.
    Medium,
    /// 200+ users.
    Large,
}

impl Size {
    /// The word used in plans and `global.size`.
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

/// Where in Kubernetes the deployment goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesSpec {
    /// The namespace of W&B and its secrets.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Create the namespace (and delete it on teardown) when it does not exist.
    #[serde(default = "yes")]
    pub create_namespace: bool,
    /// The kubeconfig context; defaults to the current one (`--context` overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Secrets of the plan (`wbstack-license`, a password Secret) that already exist without
    /// wbstack's label and are to be used as they are: never written, never deleted. Any other
    /// existing Secret of those names is refused rather than overwritten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopt_secrets: Vec<String>,
    /// NetworkPolicies in the namespace (where wbstack's ClickHouse runs too): every pod's
    /// traffic denied, then exactly the flows W&B needs. Off unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policies: Option<NetworkPoliciesSpec>,
}

impl Default for KubernetesSpec {
    fn default() -> Self {
        KubernetesSpec {
            namespace: default_namespace(),
            create_namespace: true,
            context: None,
            storage_class: None,
            adopt_secrets: Vec::new(),
            network_policies: None,
        }
    }
}

/// `spec.kubernetes.networkPolicies`: a default deny in the namespace, then the flows W&B
/// needs: between its own pods, to DNS, to the data stores outside the cluster on their ports,
/// to HTTPS (S3, KMS, STS, the OIDC issuer, the Kubernetes API), into the pods the chart's
/// Ingress sends to (read from the installed release), from the Altinity operator to
/// ClickHouse, and from monitoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPoliciesSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The namespaces of the ingress controller (`ingress-nginx`): only their pods reach the
    /// Ingress's backends. With neither this nor `ingressCidrs`, the backends take traffic
    /// from anywhere (an ALB sends from its own addresses), on their ports only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_namespaces: Vec<String>,
    /// The addresses the front door's traffic comes from (an ALB's subnets, for IP targets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_cidrs: Vec<String>,
    /// Namespaces whose pods scrape metrics (Prometheus): they reach every pod, on any port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitoring_namespaces: Vec<String>,
    /// Where the data stores outside the cluster are (the VPC's CIDR): traffic to the
    /// database's, the cache's, Kafka's and an external ClickHouse's ports goes only there.
    /// Default: anywhere, on those ports only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_cidrs: Vec<String>,
}

fn default_namespace() -> String {
    "wandb".into()
}

fn yes() -> bool {
    true
}

/// The W&B deployment itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WandbSpec {
    /// The WeightsAndBiases resource's name.
    #[serde(default = "default_wandb_name")]
    pub name: String,
    /// The URL users reach W&B at (`https://...`).
    pub host: String,
    /// Readiness also waits until the host answers over HTTP(S) (any status below 500), once
    /// the resource is ready: for a load balancer and DNS that take their time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wait_for_url: bool,
    /// Where the license comes from. It is stored in a Kubernetes Secret, never in the resource.
    pub license: LicenseSource,
    #[serde(default)]
    pub operator: OperatorSpec,
    /// The operator-wandb chart the operator installs (the resource's `spec.chart`).
    #[serde(default)]
    pub chart: ChartSpec,
    /// Per-component overrides of the size preset, by the chart's component names (api, app,
    /// frontend, console, executor, filestream, parquet, weave, weave-trace,
    /// weave-trace-worker, glue, nginx, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, ComponentSpec>,
    #[serde(default)]
    pub weave: WeaveSpec,
    /// Monitoring components.
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    /// `global.cloudProvider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<String>,
    /// How the host URL is reached: the chart's Ingress, for the AWS Load Balancer Controller
    /// (`class: alb`, set up as terraform-aws-wandb does) or another ingress class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Anything the plan does not model, merged last into the resource's `spec.values`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub values: serde_json::Value,
    /// Keys of `values` (dotted, `global.licenseSecret`) that may carry a secret in plaintext
    /// or redirect a Secret reference wbstack manages: both are refused otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_values: Vec<String>,
    /// Single sign-on through OpenID Connect, as the chart reads it (`global.auth.oidc`): the
    /// client secret stays in a Secret, never in the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoSpec>,
}

/// Single sign-on with an OpenID Connect provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SsoSpec {
    /// The provider's issuer URL (https), as its discovery document names it.
    pub issuer: String,
    /// The client (application) id W&B is registered under.
    pub client_id: String,
    /// How W&B signs users in: `pkce` (authorization code with PKCE) or `implicit`.
    #[serde(default)]
    pub auth_method: SsoAuthMethod,
    /// The client secret, for a confidential client: a key of a Kubernetes Secret in the
    /// environment's namespace (made by you or by a secret operator from Secrets Manager).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretKeyRef>,
}

/// The OIDC flows W&B supports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SsoAuthMethod {
    #[default]
    Pkce,
    Implicit,
}

impl SsoAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SsoAuthMethod::Pkce => "pkce",
            SsoAuthMethod::Implicit => "implicit",
        }
    }
}

/// The chart's Ingress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IngressSpec {
    /// The IngressClass (`alb` for the AWS Load Balancer Controller, `nginx`, ...).
    pub class: String,
    /// For `alb`: `internet-facing` (the default) or `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// For `alb`: the ACM certificate of the host, for HTTPS on 443.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
    /// For `alb`: also listen on 80 and redirect it to HTTPS (default true with a certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_redirect: Option<bool>,
    /// For `alb`: the CIDRs allowed in (default: anyone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_cidrs: Vec<String>,
    /// For `alb`: the subnets of the load balancer (default: the controller's discovery).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// More annotations on the Ingress, merged over wbstack's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_wandb_name() -> String {
    "wandb".into()
}

/// Where a secret value comes from. Exactly one field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LicenseSource {
    /// The name of an environment variable holding it (recommended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The value itself (discouraged outside sandboxes: plans are often committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// An existing Kubernetes Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretKeyRef>,
}

/// A key of a Kubernetes Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// The W&B Kubernetes operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperatorSpec {
    /// `auto` installs it when absent and adopts it when present.
    #[serde(default)]
    pub install: OperatorInstall,
    /// The operator version wbstack installs.
    #[serde(default = "default_operator_version")]
    pub version: String,
    #[serde(default = "default_operator_namespace")]
    pub namespace: String,
    /// Run the operator air-gapped (`AIRGAPPED=true`): it never calls W&B's release-channel
    /// service and installs only the chart the resource names.
    #[serde(default)]
    pub airgapped: bool,
}

/// Which operator-wandb chart the operator installs: from a chart repository (the default,
/// pinned to the chart version wbstack is built for) or a `.tgz` the operator can read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartSpec {
    #[serde(default = "default_chart_url")]
    pub url: String,
    #[serde(default = "default_chart_name")]
    pub name: String,
    #[serde(default = "default_chart_version")]
    pub version: String,
    /// A chart archive on the operator's file system (`/charts/operator-wandb-0.43.8.tgz`);
    /// used instead of the repository when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Default for ChartSpec {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

/// The chart version a plan gets unless it says otherwise: the one wbstack's chart table
/// describes.
pub const CHART_VERSION: &str = "0.43.8";

fn default_chart_url() -> String {
    "https://charts.wandb.ai".into()
}
fn default_chart_name() -> String {
    "operator-wandb".into()
}
fn default_chart_version() -> String {
    CHART_VERSION.into()
}

impl Default for OperatorSpec {
    fn default() -> Self {
        OperatorSpec {
            install: OperatorInstall::Auto,
            version: default_operator_version(),
            namespace: default_operator_namespace(),
            airgapped: false,
        }
    }
}

/// The operator version a plan gets unless it says otherwise.
pub const OPERATOR_VERSION: &str = "1.22.0";

fn default_operator_version() -> String {
    OPERATOR_VERSION.into()
}

fn default_operator_namespace() -> String {
    "wandb-cr".into()
}

/// How the operator is provided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperatorInstall {
    #[default]
    Auto,
    /// Require it to exist already; fail if it does not.
    Never,
}

/// One component's overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ComponentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// Requests and limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<CpuMem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CpuMem>,
}

/// CPU and memory quantities (`500m`, `2Gi`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CpuMem {
    pub cpu: String,
    pub memory: String,
}

/// Weave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WeaveSpec {
    /// Install weave and weave-trace (sets `global.weave-trace.enabled` and
    /// `weave-trace.install`). Needs ClickHouse.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Install the weave-trace workers (and their `weave-worker-auth` Secret).
    #[serde(default)]
    pub trace_workers: bool,
    /// The weave component's local cache (the chart's `weave.cache`; its defaults, 24 hours and
    /// 20Gi, are the seeds').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<WeaveCacheSpec>,
}

impl Default for WeaveSpec {
    fn default() -> Self {
        WeaveSpec {
            enabled: true,
            trace_workers: false,
            cache: None,
        }
    }
}

/// The weave component's cache.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WeaveCacheSpec {
    /// How often expired entries are cleared, in hours (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_in_hours: Option<u32>,
    /// Its size limit (a storage quantity: `20Gi`), shared by cleanup and its emptyDir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// Prometheus and OpenTelemetry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MonitoringSpec {
    #[serde(default)]
    pub prometheus: bool,
    #[serde(default)]
    pub otel: bool,
}

/// Where MySQL runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MysqlMode {
    /// The chart's in-cluster MySQL (not for production).
    #[default]
    InCluster,
    /// A single RDS MySQL 8 instance.
    Rds,
    /// An Aurora MySQL 8.0 cluster.
    Aurora,
    /// A MySQL you run; give host and password secret.
    External,
}

/// MySQL.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MysqlSpec {
    #[serde(default)]
    pub mode: MysqlMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// For `external`: the Secret holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,
    /// For `rds` / `aurora`: overrides the size preset (`db.r6g.large`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    /// For `aurora`: instances in the cluster (writer included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_gb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_retention_days: Option<u32>,
    /// Defaults to `metadata.protected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    /// Take a final snapshot on teardown (`<identifier>-final-<unix time>`), keeping the
    /// automated backups with it; `down --skip-final-snapshot` skips both.
    #[serde(default = "yes")]
    pub final_snapshot: bool,
    /// For `rds`, `aurora` and `external`: the CA certificates (PEM) the server's certificate is
    /// checked against, given to the chart as `global.mysql.caCert` (for RDS and Aurora, AWS's
    /// bundle: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem or the
    /// region's). Without it the services encrypt but do not check the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// For `rds` / `aurora`: the logs exported to CloudWatch Logs (`audit`, `error`,
    /// `general`, `slowquery`); defaults to `error` and `slowquery`, `[]` exports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_exports: Option<Vec<String>>,
    /// For `rds` / `aurora`: Performance Insights on every instance, kept 7 days (the free
    /// tier) and encrypted with the environment's KMS key. On by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_insights: Option<bool>,
}

/// Where an environment's data comes from when it is restored from another's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestoreSpec {
    /// The environment whose data is restored.
    pub from: String,
    /// The point in time of its database (RFC 3339, e.g. `2026-12-05T10:30:00Z`), or
    /// `latest` (the latest restorable time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_time: Option<String>,
    /// A snapshot of its database instead (a final snapshot `down` kept, or any other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The ElastiCache snapshot Redis starts from (default: the newest of the source's group;
    /// none found, Redis starts empty, as a cache may).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_snapshot: Option<String>,
}

/// Where Redis runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    #[default]
    InCluster,
    Elasticache,
    External,
}

/// Redis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisSpec {
    #[serde(default)]
    pub mode: RedisMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,
    /// For `elasticache`: overrides the size preset (`cache.m6g.large`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    /// For `external`: whether it speaks TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// For `elasticache`: the Redis engine version, major.minor (default 7.1). A newer one is
    /// an in-place upgrade; an older one needs a new group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// For `elasticache`: days of daily snapshots kept, taken in the 05:00-06:00 UTC window
    /// (by size: 1, 7 or 14); 0 keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_retention_days: Option<u32>,
    /// For `elasticache`: take a final snapshot on teardown (`<group>-final-<unix time>`;
    /// default true); `down --skip-final-snapshot` skips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_snapshot: Option<bool>,
}

/// Where artifacts go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BucketMode {
    /// No bucket (the chart's in-cluster storage).
    #[default]
    None,
    /// Create an S3 bucket encrypted with a KMS key.
    S3,
    /// Use an existing bucket.
    Existing,
}

/// The object store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BucketSpec {
    #[serde(default)]
    pub mode: BucketMode,
    /// Bucket name; defaults to `<environment>-wandb-artifacts` for `s3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `s3`, `gcs` or `az` for `existing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An existing KMS key ARN; `s3` creates one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(default)]
    pub versioning: bool,
    /// The prefix W&B keeps its objects under (`global.defaultBucket.path`); the whole bucket
    /// when absent. The pods' access (IRSA, or what `plan` says the node role needs) is limited
    /// to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A Secret with access keys (`ACCESS_KEY`, `SECRET_KEY`), when not using workload identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Days a deleted KMS key waits before it is gone (7-30).
    #[serde(default = "default_kms_window")]
    pub kms_deletion_window_days: u32,
}

impl Default for BucketSpec {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

fn default_kms_window() -> u32 {
    7
}

/// Where ClickHouse (Weave's trace store) runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClickhouseMode {
    /// The chart's in-cluster ClickHouse (`clickhouse.install: true`).
    #[default]
    InChart,
    /// Native manifests rendered by wbstack: shards x replicas with ClickHouse Keeper.
    Bundled,
    /// A ClickHouseInstallation for the Altinity operator.
    Altinity,
    /// A ClickHouse you run; give host.
    External,
    /// No ClickHouse (and no Weave).
    None,
}

/// ClickHouse.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClickhouseSpec {
    #[serde(default)]
    pub mode: ClickhouseMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Defaults to 8123 (the chart would otherwise assume 8443 for a host it does not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default = "default_ch_database")]
    pub database: String,
    #[serde(default = "default_ch_user")]
    pub user: String,
    /// For `external`: the Secret holding the password; otherwise one is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,
    /// The cluster name replicated Weave tables use.
    #[serde(default = "default_ch_cluster")]
    pub cluster_name: String,
    #[serde(default = "one")]
    pub shards: u32,
    /// Defaults to the size preset (1 for small, 3 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `global.clickhouse.replicated`; defaults to replicas > 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated: Option<bool>,
    /// ClickHouse server image.
    #[serde(default = "default_ch_image")]
    pub image: String,
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Expose `/metrics` for Prometheus.
    #[serde(default)]
    pub prometheus: bool,
    /// S3-backed storage with a local cache and the `s3_main` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<ClickhouseS3>,
    /// For `altinity`: a ZooKeeper / Keeper you run (`host` or `host:port`; an in-cluster
    /// Service name is checked to exist). Without one, a replicated installation gets a
    /// ClickHouse Keeper ensemble from the Altinity operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper_host: Option<String>,
    /// For `altinity`: the Altinity ClickHouse operator.
    #[serde(default)]
    pub altinity_operator: AltinityOperatorSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default = "default_ch_storage")]
    pub storage_size: String,
}

/// The Altinity ClickHouse operator: one found running in any namespace is used as it is;
/// otherwise wbstack installs it as its install bundle does (`install: auto`), or fails
/// (`install: never`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AltinityOperatorSpec {
    #[serde(default)]
    pub install: OperatorInstall,
    /// Where wbstack installs it (the bundle's own default is `kube-system`, where the Job
    /// `render --job` makes would need Secrets granted).
    #[serde(default = "default_altinity_namespace")]
    pub namespace: String,
}

impl Default for AltinityOperatorSpec {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

fn default_altinity_namespace() -> String {
    "clickhouse-operator".into()
}

impl Default for ClickhouseSpec {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

fn default_ch_database() -> String {
    "weave_trace_db".into()
}
fn default_ch_user() -> String {
    "wandb".into()
}
fn default_ch_cluster() -> String {
    "weave_cluster".into()
}
fn default_ch_image() -> String {
    "clickhouse/clickhouse-server:24.8".into()
}
fn default_log_level() -> String {
    "information".into()
}
fn default_ch_storage() -> String {
    "100Gi".into()
}
fn one() -> u32 {
    1
}

/// ClickHouse's S3 disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClickhouseS3 {
    /// `https://s3.<region>.amazonaws.com/<bucket>/<folder>/`.
    pub endpoint: String,
    /// Take credentials from the environment or instance metadata (recommended).
    #[serde(default = "yes")]
    pub use_environment_credentials: bool,
    /// Otherwise a Secret with `ACCESS_KEY` and `SECRET_KEY`, passed as environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// The local cache of the S3 disk; it lives on the data volume and must be smaller than
    /// it. Defaults to 80% of `storageSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<String>,
}

/// Kafka (large deployments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KafkaSpec {
    pub broker_host: String,
    #[serde(default = "default_kafka_port")]
    pub broker_port: u16,
    #[serde(default = "default_ch_user")]
    pub user: String,
    pub password_secret: SecretKeyRef,
}

fn default_kafka_port() -> u16 {
    9092
}

/// AWS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsSpec {
    /// Defaults to the standard AWS configuration chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An endpoint override (LocalStack, moto); `WBSTACK_AWS_ENDPOINT` also sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Subnets for the database and cache subnet groups (two or more, in different zones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// Extra tags on every resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Days a deleted secret can be recovered (0 deletes at once; otherwise 7-30).
    #[serde(default = "default_recovery")]
    pub secret_recovery_days: u32,
    /// AWS steps (like `aws.bucket`, `aws.kms`) that may adopt a resource that already has the
    /// step's name but not this environment's tags. It is used as it is, recorded as adopted,
    /// and left in place by `down` (unless `--force`). Without this, such a resource is an
    /// error: "exists and is not owned by this environment".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopt: Vec<String>,
    /// When changes to a running database or cache take effect: `immediately`, or in the
    /// resource's `maintenance-window`. Defaults to the window for a protected environment
    /// (`metadata.protected`), immediately otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_changes: Option<ApplyChanges>,
    /// IAM roles for service accounts (EKS): wbstack makes a role that W&B's and ClickHouse's
    /// service accounts assume through the cluster's OIDC provider, with access to the bucket
    /// (objects under its path) and its KMS key only, and annotates the accounts with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irsa: Option<IrsaSpec>,
    /// CloudWatch alarms on the database and the cache wbstack makes, with thresholds from the
    /// size (on by default).
    #[serde(default)]
    pub alarms: AlarmsSpec,
    /// A security group wbstack makes for the database and the cache (`wbstack-<environment>-data`,
    /// in the subnets' VPC), put on both besides `securityGroupIds`: it admits only the security
    /// groups named here on MySQL's and Redis's ports, and sends nothing out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<SecurityGroupSpec>,
}

/// `spec.aws.securityGroup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecurityGroupSpec {
    /// The security groups admitted: the cluster's nodes' (EKS: `aws eks describe-cluster
    /// --query cluster.resourcesVpcConfig.clusterSecurityGroupId`) or its pods'.
    pub allow_from: Vec<String>,
}

/// `spec.aws.alarms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlarmsSpec {
    /// RDS: CPU, free storage, replica lag, connections; ElastiCache: memory, evictions, engine
    /// CPU. Named `wbstack-<environment>-...`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// SNS topic ARNs told when an alarm fires and when it clears (none: the alarms show in
    /// CloudWatch only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

impl Default for AlarmsSpec {
    fn default() -> Self {
        AlarmsSpec {
            enabled: true,
            actions: Vec::new(),
        }
    }
}

/// `spec.aws.irsa`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IrsaSpec {
    /// The cluster's IAM OIDC provider:
    /// `arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>`.
    pub oidc_provider_arn: String,
    /// The role's name; defaults to `<environment>-wandb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
}

/// When in-place changes to RDS and ElastiCache take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyChanges {
    Immediately,
    MaintenanceWindow,
}

impl Default for AwsSpec {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

fn default_recovery() -> u32 {
    7
}

/// A user hook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HookSpec {
    /// `before`, `after`, `on_failure` or `on_rollback`.
    pub when: String,
    /// The program and its arguments; run without a shell.
    pub command: Vec<String>,
    #[serde(default = "default_hook_timeout")]
    pub timeout_seconds: u64,
}

fn default_hook_timeout() -> u64 {
    300
}

/// Timeouts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeouts {
    /// How long any step may take to become ready.
    #[serde(default = "default_ready_timeout")]
    pub ready_seconds: u64,
    /// Overrides by step id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub steps: BTreeMap<String, u64>,
    /// How long pods may sit in a state that does not heal by waiting (`CrashLoopBackOff`,
    /// `ImagePullBackOff`, a failed Job; and the operator's `Invalid Config`) before the wait
    /// for them fails, naming why.
    #[serde(default = "default_stuck")]
    pub stuck_seconds: u64,
}

fn default_stuck() -> u64 {
    60
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            ready_seconds: default_ready_timeout(),
            steps: BTreeMap::new(),
            stuck_seconds: default_stuck(),
        }
    }
}

fn default_ready_timeout() -> u64 {
    1800
}
