//! wbstack plan files: the model, size presets, validation with file:line:column diagnostics,
//! a JSON Schema, and compilation into steps with explicit dependencies. Pure: no I/O.
//!
//! A plan is checked and compiled section by section (`sections/`). Each kind of step is one
//! payload type ([`kinds`]) whose typed [`Input`]s name the outputs of other steps it reads; the
//! graph's edges are derived from them, and every step id is written once ([`ids`]).
//!
//! ```
//! let text = "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {name: dev}\nspec:\n  wandb:\n    host: https://wandb.example.com\n    license: {env: WANDB_LICENSE}\n";
//! let plan = wbstack_plan::parse("dev.yaml", text).unwrap();
//! let steps = wbstack_plan::compile(&plan);
//! assert!(steps.iter().any(|s| s.id == wbstack_plan::ids::WANDB));
//! let err = wbstack_plan::parse("bad.yaml", &text.replace("https://", "")).unwrap_err();
//! assert_eq!(err.0[0].line, 6);
//! ```

mod build;
mod check;
mod compile;
mod diag;
mod digests;
pub mod ids;
pub mod kinds;
mod locate;
mod model;
mod presets;
mod resolve;
mod secret_keys;
mod sections;
mod validate;
mod weave_env;

pub use build::deep_merge;
pub use check::{aws_identifier_problem, is_dns_label, is_dns_subdomain, s3_bucket_problem};
pub use compile::{compile, names};
pub use diag::{Diagnostic, PlanError};
pub use digests::{images, pinned};
pub use ids::Input;
pub use kinds::*;
pub use locate::{Locations, Pos};
pub use model::*;
pub use presets::{preset, Nodes, Preset};
pub use secret_keys::secret_like_key;
pub use sections::{
    access_policy, artifacts_bucket, grants, pod_access, state_bucket, trust_policy,
    ROLE_ANNOTATION,
};
pub use validate::parse;
pub use weave_env::{unknown_weave_variables, UnknownVariable, WEAVE_VARIABLES};

/// The JSON Schema of the plan format, for editors.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).unwrap_or_default()
}
