//! Manifests, rendered without touching a cluster: the W&B operator and its CRD, bundled
//! ClickHouse (the Weave document's configuration as native objects), the Altinity
//! ClickHouseInstallation and the WeightsAndBiases resource. `wbstack render` prints these for
//! GitOps users.

pub use crate::clickhouse_manifests::*;
pub use crate::clickhouse_objects::clickhouse_bundled;
pub use crate::job_manifests::{job, JobSpec};
pub use crate::job_rbac::{cluster_rules, job_rbac, namespace_rules};
pub use crate::job_scope::JobScope;
pub use crate::objects::{namespace_manifest as namespace, secret_manifest as secret};
pub use crate::operator_manifests::*;

use serde_json::{json, Value};

/// The WeightsAndBiases resource: the chart the operator installs and the values it installs
/// it with.
pub fn wandb(namespace: &str, name: &str, chart: &Value, values: &Value) -> Value {
    json!({
        "apiVersion": "apps.wandb.com/v1", "kind": "WeightsAndBiases",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "weightsandbiases", "app.kubernetes.io/instance": name, MANAGED_BY.0: MANAGED_BY.1}},
        "spec": {"chart": chart, "values": values}
    })
}
