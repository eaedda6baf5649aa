//! Teardown without a journal (`down --discover`): every step the journal knows nothing of is
//! observed, in dependency order, and those whose resource carries this environment's mark (its
//! tags in AWS, its label in Kubernetes: [`Step::marked`](crate::Step::marked)) are recorded as
//! this environment's, so that the ordinary teardown destroys them with the ordinary rules.
//! Nothing is changed here: only reads.

use crate::events::Event;
use crate::journal::{now_ms, Record};
use crate::run::{Halt, RunCtx};
use crate::step::{Observation, Outputs};
use crate::{StepId, StepSpec};
use std::collections::BTreeMap;

/// Records what was found as this environment's; returns the steps found, or the step that
/// could not be looked at and why.
pub(crate) async fn discover(cx: &RunCtx) -> Result<Vec<StepId>, (usize, Halt)> {
    let mut found: BTreeMap<StepId, Outputs> = BTreeMap::new();
    let mut ids = Vec::new();
    for i in cx.graph.topo_order() {
        let spec = cx.graph.spec(i);
        if cx.rec.step(&spec.id).is_some() {
            continue;
        }
        let deps: BTreeMap<StepId, Outputs> = cx
            .graph
            .deps_of(i)
            .iter()
            .filter_map(|d| {
                let id = &cx.graph.spec(*d).id;
                found
                    .get(id)
                    .cloned()
                    .or_else(|| cx.rec.step(id).and_then(|s| s.outputs))
                    .map(|o| (id.clone(), o))
            })
            .collect();
        let ctx = cx.ctx_for(i, deps);
        let observed = cx
            .with_retries(&spec.id, "observe", || spec.step.observe(&ctx))
            .await;
        let fail = |h: Halt| (i, h);
        let outputs = match observed {
            Ok(Observation::Ready { outputs, .. }) => outputs,
            Ok(Observation::InProgress { .. }) => Outputs::new(),
            Ok(Observation::Absent) => {
                match cx
                    .with_retries(&spec.id, "observe", || spec.step.unnamed(&ctx))
                    .await
                {
                    Ok(Some(outputs)) => {
                        record(
                            cx,
                            spec,
                            outputs.clone(),
                            "found by its marks, not its name",
                        )
                        .await
                        .map_err(fail)?;
                        found.insert(spec.id.clone(), outputs);
                        ids.push(spec.id.clone());
                    }
                    Ok(None) => {}
                    Err(Halt::Failed(m)) => {
                        return Err(fail(Halt::Failed(format!(
                            "discovery cannot see `{}`: {m}",
                            spec.id
                        ))))
                    }
                    Err(e) => return Err(fail(e)),
                }
                continue;
            }
            // Someone else's, or broken: left, and said.
            Ok(Observation::Failed { message }) => {
                cx.events.emit(Event::StepKept {
                    step: spec.id.clone(),
                    reason: message,
                });
                continue;
            }
            // What cannot be seen cannot be judged: the teardown stops, naming it.
            Err(Halt::Failed(m)) => {
                return Err(fail(Halt::Failed(format!(
                    "discovery cannot see `{}`: {m}",
                    spec.id
                ))))
            }
            Err(e) => return Err(fail(e)),
        };
        let marked = cx
            .with_retries(&spec.id, "observe", || spec.step.marked(&ctx))
            .await
            .map_err(fail)?;
        if !marked {
            cx.events.emit(Event::StepObserved {
                step: spec.id.clone(),
                state: "found (not this environment's)".into(),
            });
            continue;
        }
        record(cx, spec, outputs.clone(), "found (this environment's)")
            .await
            .map_err(fail)?;
        found.insert(spec.id.clone(), outputs);
        ids.push(spec.id.clone());
    }
    Ok(ids)
}

/// Says and records that the step's resource is this environment's.
async fn record(cx: &RunCtx, spec: &StepSpec, outputs: Outputs, how: &str) -> Result<(), Halt> {
    cx.events.emit(Event::StepObserved {
        step: spec.id.clone(),
        state: how.into(),
    });
    cx.rec
        .record(Record::Discovered {
            run: cx.run,
            step: spec.id.clone(),
            fingerprint: spec.step.fingerprint(),
            outputs,
            deps: spec.deps.clone(),
            at_ms: now_ms(),
        })
        .await
        .map_err(Halt::Journal)
}
