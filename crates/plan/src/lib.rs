//! wbstack plan files: the model, size presets, validation with file:line:column diagnostics,
//! a JSON Schema, and compilation into steps with explicit dependencies. Pure: no I/O.
//!
//! ```
//! let text = "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {name: dev}\nspec:\n  wandb:\n    host: https://wandb.example.com\n    license: {env: WANDB_LICENSE}\n";
//! let plan = wbstack_plan::parse("dev.yaml", text).unwrap();
//! let steps = wbstack_plan::compile(&plan);
//! assert!(steps.iter().any(|s| s.id == "k8s.wandb"));
//! let err = wbstack_plan::parse("bad.yaml", &text.replace("https://", "")).unwrap_err();
//! assert_eq!(err.0[0].line, 6);
//! ```

mod compile;
mod diag;
mod locate;
mod model;
mod presets;
mod steps;
mod validate;

pub use compile::{compile, deep_merge, names};
pub use diag::{Diagnostic, PlanError};
pub use locate::{Locations, Pos};
pub use model::*;
pub use presets::{preset, Preset};
pub use steps::{AltinityClickhouse, Binding, BundledClickhouse, StepKind, StepPlan};
pub use validate::{
    aws_identifier_problem, is_dns_label, is_dns_subdomain, parse, s3_bucket_problem,
};

/// The JSON Schema of the plan format, for editors.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).unwrap_or_default()
}
