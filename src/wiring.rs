//! Turns compiled plan steps into engine steps.

use crate::exit::CliError;
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{Graph, Hook, HookWhen, Secret, Step, StepId, StepSpec};
use wbstack_k8s::*;
use wbstack_plan::{Plan, StepKind, StepPlan};

/// The step implementation of a compiled step: one line per kind.
fn step_for(
    sp: &StepPlan,
    kube: &Kube,
    aws: Option<&crate::aws::Aws>,
    license: &Option<Secret>,
) -> Result<Arc<dyn Step>, CliError> {
    let license = || {
        license
            .clone()
            .ok_or_else(|| CliError::invalid("the license is missing"))
    };
    let k = kube.clone();
    Ok(match sp.kind.clone() {
        StepKind::Namespace(s) => Arc::new(NamespaceStep::new(k, s)),
        StepKind::LicenseSecret(s) => Arc::new(ValueSecretStep::license(k, s, license()?)),
        StepKind::GeneratedSecret(s) => Arc::new(GeneratedSecretStep::new(k, s)),
        StepKind::MirroredSecret(s) => Arc::new(ValueSecretStep::mirrored(
            k,
            s,
            crate::aws::resolver(sp, aws)?,
        )),
        StepKind::WandbCrd(s) => Arc::new(WandbCrdStep::new(k, s)),
        StepKind::Operator(s) => Arc::new(OperatorStep::new(k, s)),
        StepKind::ClickhouseBundled(s) => Arc::new(ClickhouseBundledStep::new(k, s)),
        StepKind::ClickhouseAltinity(s) => Arc::new(ClickhouseAltinityStep::new(k, s)),
        StepKind::WandbResource(s) => Arc::new(WandbStep::new(k, s)),
        StepKind::UrlReady(s) => Arc::new(wbstack_k8s::UrlReadyStep::new(s)),
        _ if sp.kind.is_aws() => crate::aws::step(sp, aws)?,
        _ => {
            return Err(CliError::invalid(format!(
                "no implementation of step {}",
                sp.id
            )))
        }
    })
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
            step: step_for(sp, kube, aws, license)?,
            hooks,
            timeout: Some(Duration::from_secs(timeout.unwrap_or(sp.timeout_seconds))),
        });
    }
    Graph::new(specs).map_err(|e| CliError::invalid(e.to_string()))
}
