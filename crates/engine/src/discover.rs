//! Teardown without a journal (`down --discover`): every step the journal knows nothing of is
//! observed, in dependency order, and those whose resource carries this environment's mark (its
//! tags in AWS, its label in Kubernetes: [`Step::marked`](crate::Step::marked)) are recorded as
//! this environment's, so that the ordinary teardown destroys them with the ordinary rules.
//! Nothing is changed here: only reads.

use crate::events::Event;
use crate::journal::{now_ms, Record};
use crate::run::{Halt, RunCtx};
use crate::step::{Observation, Outputs};
use crate::StepId;
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
            Ok(Observation::Absent) => continue,
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
        cx.events.emit(Event::StepObserved {
            step: spec.id.clone(),
            state: if marked {
                "found (this environment's)"
            } else {
                "found (not this environment's)"
            }
            .into(),
        });
        if !marked {
            continue;
        }
        cx.rec
            .record(Record::Discovered {
                run: cx.run,
                step: spec.id.clone(),
                fingerprint: spec.step.fingerprint(),
                outputs: outputs.clone(),
                deps: spec.deps.clone(),
                at_ms: now_ms(),
            })
            .await
            .map_err(|e| fail(Halt::Journal(e)))?;
        found.insert(spec.id.clone(), outputs);
        ids.push(spec.id.clone());
    }
    Ok(ids)
}
