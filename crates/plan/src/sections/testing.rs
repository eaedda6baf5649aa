//! Plans for the sections' unit tests: a minimal plan with lines added under `spec`, checked and
//! compiled as the binary would, without it.

use crate::{Diagnostic, StepKind, StepPlan};

/// The smallest plan: W&B with its host and license, nothing else.
pub(crate) const BASE: &str = "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {name: dev}\nspec:\n  wandb:\n    host: https://wandb.example.com\n    license: {env: WANDB_LICENSE}\n";

/// `spec.aws` for plans with AWS resources.
pub(crate) const AWS: &str =
    "  aws:\n    region: us-west-2\n    subnetIds: [subnet-0a, subnet-0b]\n";

/// The steps of the base plan with `spec` lines added; panics with the diagnostics if it fails
/// its checks.
pub(crate) fn steps(spec: &str) -> Vec<StepPlan> {
    match crate::parse("p.yaml", &format!("{BASE}{spec}")) {
        Ok(plan) => crate::compile(&plan),
        Err(e) => panic!("the plan does not check: {:#?}", e.0),
    }
}

/// The diagnostics of the base plan with `spec` lines added; panics if it checks.
pub(crate) fn diagnostics(spec: &str) -> Vec<Diagnostic> {
    match crate::parse("p.yaml", &format!("{BASE}{spec}")) {
        Ok(_) => panic!("the plan checks, but should not:\n{spec}"),
        Err(e) => e.0,
    }
}

/// The one diagnostic that says `says`: its field and where it points (line, column).
pub(crate) fn at(spec: &str, says: &str) -> (String, usize, usize) {
    let all = diagnostics(spec);
    let found: Vec<&Diagnostic> = all.iter().filter(|d| d.message.contains(says)).collect();
    match found.as_slice() {
        [d] => (d.path.clone(), d.line, d.column),
        _ => panic!("not one diagnostic saying {says:?}: {all:#?}"),
    }
}

/// The step `id`'s payload; panics if the plan has no such step.
pub(crate) fn kind<'a>(steps: &'a [StepPlan], id: &str) -> &'a StepKind {
    &steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in {:?}", ids(steps)))
        .kind
}

/// The steps' ids, in order.
pub(crate) fn ids(steps: &[StepPlan]) -> Vec<&str> {
    steps.iter().map(|s| s.id.as_str()).collect()
}

/// The resource's values of the base plan with `spec` lines added.
pub(crate) fn values(spec: &str) -> serde_json::Value {
    match kind(&steps(spec), crate::ids::WANDB) {
        StepKind::WandbResource(r) => r.values.clone(),
        other => panic!("the W&B step is {other:?}"),
    }
}
