//! wbstack's Kubernetes steps (kube + server-side apply with field manager `wbstack`):
//! namespace, secrets (given, generated from a CSPRNG, or mirrored from Secrets Manager), the
//! W&B operator, bundled or Altinity ClickHouse, and the WeightsAndBiases resource, with
//! watch-driven readiness. [`render`] produces the same manifests without a cluster.

mod client;
mod ready;
pub mod render;
mod steps;

pub use client::{classify, resource, Kube, FIELD_MANAGER};
pub use ready::{chi_ready, wait_for, wandb_phase, workload_ready, WandbPhase, Watch};
pub use steps::{
    generate_password, kube_error, ClickhouseAltinityStep, ClickhouseBundledStep,
    GeneratedSecretStep, NamespaceStep, OperatorStep, SecretResolver, ValueSecretStep, ValueSource,
    WandbStep, FINGERPRINT_ANNOTATION,
};
