//! The operator-wandb Helm chart as data: every component (a `wandb-base` alias or a bundled
//! subchart), the values path that installs it (its `Chart.yaml` condition) with that path's
//! default, and the workloads it makes, named as the chart names them.
//!
//! Object names follow Helm's `fullname` rule ([`fullname`]): a release name that contains an
//! alias names that alias's objects alone. [`HelmRelease`] reads and writes a release as Helm's
//! `secrets` storage driver keeps it, so readiness can judge what was really installed.
//!
//! The table is generated from the chart's own files (its `Chart.yaml`, `values.yaml` and real
//! `helm template` renders) and checked against them by this crate's tests; the product's
//! readiness and the emulator's operator stand-in both read it, so neither keeps a list of its own.
//!
//! ```
//! let chart = wbstack_chart::operator_wandb();
//! let values = serde_json::json!({"global": {"api": {"enabled": true}}});
//! let names: Vec<String> = chart.workloads("wandb", &values).map(|w| w.name).collect();
//! assert!(names.contains(&"wandb-api".to_string()));
//! assert!(names.contains(&"wandb-app-bc".to_string()));
//! assert_eq!(chart.component("api").unwrap().switch, "global.api.enabled");
//! // Helm's rule: release `wandb-weave` contains the alias `weave`.
//! let weave = serde_json::json!({"weave": {"install": true}});
//! assert!(chart.workloads("wandb-weave", &weave).any(|w| w.name == "wandb-weave-bc"));
//! ```

mod naming;
mod release;
mod table;

pub use naming::{fullname, release_name_problem, trunc63, RELEASE_NAME_MAX};
pub use release::{
    ChartMetadata, ChartRef, HelmRelease, Hook, Info, LastRun, ManifestObject, ReleaseError,
    RELEASE_SECRET_TYPE,
};
pub use table::{
    operator_wandb, Account, Chart, Collision, Component, Container, Expected, Workload, RELEASE,
};
