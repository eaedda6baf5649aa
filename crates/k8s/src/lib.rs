//! wbstack's Kubernetes steps (kube + server-side apply with field manager `wbstack`):
//! namespace, secrets (given, generated from a CSPRNG, or mirrored from Secrets Manager), the
//! W&B operator, bundled or Altinity ClickHouse, and the WeightsAndBiases resource, with
//! watch-driven readiness. [`render`] produces the same manifests without a cluster.
//!
//! Each step is built from its plan payload: `NamespaceStep::new(kube, spec)`, or through
//! [`kind`], the one dispatch over the Kubernetes kinds.

mod altinity_operator;
mod clickhouse_altinity;
mod clickhouse_bundled;
mod clickhouse_manifests;
mod clickhouse_objects;
mod client;
pub mod conditions;
mod crd;
mod diff;
mod explain;
mod generated_secret;
mod job_manifests;
mod job_rbac;
mod job_scope;
mod kind;
mod leftovers;
mod namespace;
mod network_manifests;
mod network_policies;
mod objects;
mod operator;
mod operator_manifests;
mod ownership;
mod ready;
mod release_ready;
pub mod render;
mod retry;
mod typed;
mod url_ready;
mod value_secret;
mod wandb;
mod wandb_ready;

pub use clickhouse_altinity::ClickhouseAltinityStep;
pub use clickhouse_bundled::ClickhouseBundledStep;
pub use client::{classify, resource, Kube, FIELD_MANAGER};
pub use crd::WandbCrdStep;
pub use explain::{stuck_job, stuck_pod, Stuck, StuckClock};
pub use generated_secret::{generate_password, GeneratedSecretStep};
pub use kind::{K8sStepKind, Unwired, Wiring};
pub use namespace::NamespaceStep;
pub use network_manifests::POLICY_SET;
pub use network_policies::NetworkPoliciesStep;
pub use objects::FINGERPRINT_ANNOTATION;
pub use operator::OperatorStep;
pub use ownership::ENVIRONMENT_LABEL;
pub use ready::{
    chi_ready, wait_for, wandb_phase_v1, wandb_phase_v2, workload_ready, WandbPhase, Watch,
};
pub use url_ready::{chain as error_chain, rustls_provider, UrlReadyStep};
pub use value_secret::{SecretResolver, ValueSecretStep, ValueSource};
pub use wandb::WandbStep;

/// What this crate knows of a Kubernetes kind of step: one arm per kind.
pub fn kind(k: wbstack_plan::K8sKind<'_>) -> &dyn K8sStepKind {
    use wbstack_plan::K8sKind as K;
    match k {
        K::Namespace(x) => x,
        K::LicenseSecret(x) => x,
        K::GeneratedSecret(x) => x,
        K::MirroredSecret(x) => x,
        K::WandbCrd(x) => x,
        K::Operator(x) => x,
        K::ClickhouseBundled(x) => x,
        K::ClickhouseAltinity(x) => x,
        K::AltinityOperator(x) => x,
        K::WandbResource(x) => x,
        K::NetworkPolicies(x) => x,
        K::UrlReady(x) => x,
    }
}
