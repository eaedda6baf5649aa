//! Turns compiled plan steps into engine steps.

use crate::exit::CliError;
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{Graph, Hook, HookWhen, Secret, Step, StepId, StepSpec};
use wbstack_k8s::{Kube, Unwired, Wiring};
use wbstack_plan::{Plan, Side, StepPlan};

/// The step implementation of a compiled step, from the crate that implements its kind.
fn step_for(
    sp: &StepPlan,
    w: &Wiring,
    aws: Option<&crate::aws::Aws>,
) -> Result<Arc<dyn Step>, CliError> {
    match sp.kind.side() {
        Side::K8s(k) => wbstack_k8s::kind(k).step(w).map_err(|e| match e {
            Unwired::License => CliError::invalid("").because(e),
            Unwired::Aws => crate::aws::not_configured(sp),
        }),
        Side::Aws(k) => crate::aws::step(sp, k, aws),
    }
}

fn hook_when(s: &str) -> HookWhen {
    match s {
        "before" => HookWhen::Before,
        "after" => HookWhen::After,
        "on_rollback" => HookWhen::OnRollback,
        _ => HookWhen::OnFailure,
    }
}

/// The engine graph of a plan.
pub fn graph(
    plan: &Plan,
    steps: &[StepPlan],
    kube: &Kube,
    aws: Option<&crate::aws::Aws>,
    license: &Option<Secret>,
    timeout: Option<u64>,
) -> Result<Graph, CliError> {
    let w = Wiring {
        kube: kube.clone(),
        license: license.clone(),
        resolver: aws.map(crate::aws::resolver),
    };
    let mut specs = Vec::new();
    for sp in steps {
        let hooks = plan
            .spec
            .hooks
            .get(&sp.id)
            .map(|hs| {
                hs.iter()
                    .map(|h| Hook {
                        when: hook_when(&h.when),
                        name: h.command.join(" "),
                        program: h.command[0].clone(),
                        args: h.command[1..].to_vec(),
                        env: Default::default(),
                        timeout: Duration::from_secs(h.timeout_seconds),
                    })
                    .collect()
            })
            .unwrap_or_default();
        specs.push(StepSpec {
            id: StepId::new(sp.id.clone()),
            deps: sp.deps.iter().map(|d| StepId::new(d.clone())).collect(),
            step: step_for(sp, &w, aws)?,
            hooks,
            timeout: Some(Duration::from_secs(timeout.unwrap_or(sp.timeout_seconds))),
        });
    }
    Graph::new(specs).map_err(|e| CliError::invalid("").because(e))
}
