//! Turns compiled plan steps into engine steps.

use crate::exit::{Failure, REFUSED};
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{Graph, Hook, HookWhen, Secret, Step, StepId, StepSpec};
use wbstack_k8s::*;
use wbstack_plan::{Plan, StepKind, StepPlan};

/// The step implementation of a compiled step.
fn step_for(
    sp: &StepPlan,
    kube: &Kube,
    license: &Option<Secret>,
) -> Result<Arc<dyn Step>, Failure> {
    Ok(match &sp.kind {
        StepKind::Namespace { name } => Arc::new(NamespaceStep { kube: kube.clone(), name: name.clone() }),
        StepKind::LicenseSecret { namespace, name, key, .. } => {
            let value = license.clone().ok_or_else(|| Failure::new(crate::exit::INVALID, "the license is missing"))?;
            Arc::new(ValueSecretStep { kube: kube.clone(), namespace: namespace.clone(), name: name.clone(), key: key.clone(), value: ValueSource::Known(value) })
        }
        StepKind::GeneratedSecret { namespace, name, key, length } => {
            Arc::new(GeneratedSecretStep { kube: kube.clone(), namespace: namespace.clone(), name: name.clone(), key: key.clone(), length: *length })
        }
        StepKind::Operator { namespace, version, install } => {
            Arc::new(OperatorStep { kube: kube.clone(), namespace: namespace.clone(), version: version.clone(), install: *install })
        }
        StepKind::ClickhouseBundled(spec) => Arc::new(ClickhouseBundledStep { kube: kube.clone(), spec: spec.clone() }),
        StepKind::ClickhouseAltinity(spec) => Arc::new(ClickhouseAltinityStep { kube: kube.clone(), spec: spec.clone() }),
        StepKind::WandbResource { namespace, name, values, bindings } => {
            Arc::new(WandbStep { kube: kube.clone(), namespace: namespace.clone(), name: name.clone(), values: values.clone(), bindings: bindings.clone() })
        }
        other => {
            return Err(Failure::new(
                REFUSED,
                format!("step {} ({}) needs the AWS steps, which this build of wbstack does not include yet; the plan validates and renders, but cannot be brought up", sp.id, other.label()),
            ))
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
    license: &Option<Secret>,
    timeout: Option<u64>,
) -> Result<Graph, Failure> {
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
            step: step_for(sp, kube, license)?,
            hooks,
            timeout: Some(Duration::from_secs(timeout.unwrap_or(sp.timeout_seconds))),
        });
    }
    Graph::new(specs).map_err(|e| Failure::new(crate::exit::INVALID, e.to_string()))
}
