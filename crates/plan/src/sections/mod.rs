//! The plan by section. Each section checks its part of the plan (diagnostics at
//! file:line:column) and compiles it into steps and values, in the order the steps run.

mod alarms;
mod aws;
mod bucket;
mod clickhouse;
mod components;
mod ingress;
mod irsa;
mod mysql;
mod network;
mod redis;
mod references;
mod restore;
mod security_group;
mod state;
mod wandb;

#[cfg(test)]
pub(crate) mod testing;

pub use bucket::artifacts_bucket;
pub use irsa::{access_policy, grants, pod_access, trust_policy, ROLE_ANNOTATION};
pub(crate) use irsa::{clickhouse_uses_role, CLICKHOUSE_ACCOUNT};
pub(crate) use network::step as network_policies;
pub(crate) use security_group::input as security_group_input;
pub use state::state_bucket;
pub(crate) use wandb::chart;

/// The resource's values for a minimal plan with `extra` lines under `spec.wandb` (tests).
#[cfg(test)]
pub(crate) fn test_values(extra: &str) -> Result<serde_json::Value, crate::PlanError> {
    const PLAN: &str = "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {name: dev}\nspec:\n  wandb:\n    host: https://wandb.example.com\n    license: {env: WANDB_LICENSE}\n";
    let plan = crate::parse("p.yaml", &format!("{PLAN}{extra}"))?;
    let steps = crate::compile(&plan);
    let w = steps.iter().find(|s| s.id == crate::ids::WANDB).unwrap();
    let crate::StepKind::WandbResource(r) = &w.kind else {
        panic!("step {} is not the W&B resource", w.id)
    };
    Ok(r.values.clone())
}

use crate::build::Builder;
use crate::check::Checker;
use crate::resolve::Resolved;

/// Every section's checks, then the checks that need the compiled step ids.
pub(crate) fn check(c: &mut Checker, r: &Resolved) {
    wandb::check(c, r);
    ingress::check(c, r);
    components::check(c, r);
    mysql::check(c, r);
    redis::check(c, r);
    bucket::check(c, r);
    clickhouse::check(c, r);
    aws::check(c, r);
    security_group::check(c, r);
    alarms::check(c, r);
    irsa::check(c, r);
    network::check(c, r);
    references::check(c, r);
    state::check(c, r);
    restore::check(c, r);
}

/// Every section's steps and values, dependencies first.
pub(crate) fn compile(b: &mut Builder, r: &Resolved) {
    wandb::compile(b, r);
    ingress::compile(b, r);
    aws::compile(b, r);
    security_group::compile(b, r);
    mysql::compile(b, r);
    redis::compile(b, r);
    bucket::compile(b, r);
    irsa::compile(b, r);
    clickhouse::compile(b, r);
    alarms::compile(b, r);
    network::compile(b, r);
    components::compile(b, r);
}
