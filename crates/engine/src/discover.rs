//! Teardown without a journal (`down --discover`): every step the journal knows nothing of is
//! observed, in dependency order, and those whose resource carries this environment's mark (its
//! tags in AWS, its label in Kubernetes: [`Step::marked`](crate::Step::marked)) are recorded as
//! this environment's, so that the ordinary teardown destroys them with the ordinary rules.
//! Nothing is changed here: only reads.
//!
//! The same mark decides whose a resource is wherever the journal does not say it is this
//! environment's: `up` and `resume` after the state was lost ([`reclaim`]) and `down` of steps a
//! journal recorded as adopted ([`reclaim_adopted`]) record a marked resource as this
//! environment's own, never as adopted, so that teardown removes it by the ordinary rules.

use crate::events::Event;
use crate::journal::{now_ms, Record};
use crate::run::{Halt, RunCtx};
use crate::step::{Observation, Outputs, StepCtx};
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
                            spec.step.fingerprint(),
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
        let fingerprint = spec.step.fingerprint();
        record(
            cx,
            spec,
            outputs.clone(),
            fingerprint,
            "found (this environment's)",
        )
        .await
        .map_err(fail)?;
        found.insert(spec.id.clone(), outputs);
        ids.push(spec.id.clone());
    }
    Ok(ids)
}

/// For `up` and `resume`: a resource found there that the journal does not record as this
/// environment's (the state was lost, or an older run adopted it) is recorded as its own when it
/// carries the environment's mark.
pub(crate) async fn reclaim(
    cx: &RunCtx,
    i: usize,
    ctx: &StepCtx,
    observed: &Observation,
) -> Result<(), Halt> {
    let spec = cx.graph.spec(i);
    let prior = cx.rec.step(&spec.id).filter(|p| p.may_exist());
    if prior.as_ref().is_some_and(|p| p.is_owned()) {
        return Ok(());
    }
    let (outputs, fingerprint) = match observed {
        Observation::Ready {
            outputs,
            fingerprint,
        } => (outputs.clone(), fingerprint.clone()),
        Observation::InProgress { .. } => (Outputs::new(), None),
        Observation::Absent | Observation::Failed { .. } => return Ok(()),
    };
    let marked = cx
        .with_retries(&spec.id, "observe", || spec.step.marked(ctx))
        .await?;
    if !marked {
        return Ok(());
    }
    let fingerprint = fingerprint
        .or_else(|| prior.and_then(|p| p.fingerprint))
        .unwrap_or_else(|| spec.step.fingerprint());
    record(cx, spec, outputs, fingerprint, "found (this environment's)").await
}

/// For `down`: steps recorded as adopted whose resource carries this environment's mark are
/// recorded as its own (an `up` after lost state once recorded them as adopted). Returns them.
pub(crate) async fn reclaim_adopted(cx: &RunCtx) -> Result<Vec<StepId>, (usize, Halt)> {
    let mut ids = Vec::new();
    for i in cx.graph.topo_order() {
        let spec = cx.graph.spec(i);
        let Some(st) = cx.rec.step(&spec.id).filter(|s| s.may_exist()) else {
            continue;
        };
        if st.owner.is_none() || st.is_owned() {
            continue;
        }
        let ctx = cx.ctx_for(i, crate::down::recorded_deps(cx, i));
        let marked = cx
            .with_retries(&spec.id, "observe", || spec.step.marked(&ctx))
            .await
            .map_err(|h| (i, h))?;
        if marked {
            let fingerprint = st.fingerprint.unwrap_or_else(|| spec.step.fingerprint());
            let outputs = st.outputs.unwrap_or_default();
            let how = "recorded as adopted, but it carries this environment's mark: its own";
            record(cx, spec, outputs, fingerprint, how)
                .await
                .map_err(|h| (i, h))?;
            ids.push(spec.id.clone());
        }
    }
    Ok(ids)
}

/// Says and records that the step's resource is this environment's.
async fn record(
    cx: &RunCtx,
    spec: &StepSpec,
    outputs: Outputs,
    fingerprint: crate::id::Fingerprint,
    how: &str,
) -> Result<(), Halt> {
    cx.events.emit(Event::StepObserved {
        step: spec.id.clone(),
        state: how.into(),
    });
    cx.rec
        .record(Record::Discovered {
            run: cx.run,
            step: spec.id.clone(),
            fingerprint,
            outputs,
            deps: spec.deps.clone(),
            at_ms: now_ms(),
        })
        .await
        .map_err(Halt::Journal)
}
