//! The operator-wandb Helm chart as data: every component (a `wandb-base` alias or a bundled
//! subchart), the values path that installs it (its `Chart.yaml` condition) with that path's
//! default, and the workloads it makes, named as the chart names them.
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
//! ```

mod table;

pub use table::{
    operator_wandb, Account, Chart, Component, Container, Expected, Workload, RELEASE,
};
