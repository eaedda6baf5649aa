//! `up`: observe, decide, apply what is absent or changed, wait, record; dependencies first,
//! concurrently; on failure, roll back what this run created if the policy says so.

use crate::config::{EngineError, FailurePolicy};
use crate::decide::{decide, decision, Allowed, Decision, Found};
use crate::events::{Event, Operation, RunStats, RunStatus};
use crate::hooks::{hook_env, run_hook, HookWhen};
use crate::id::StepId;
use crate::journal::{now_ms, JournalError, Phase, Record};
use crate::report::{RunReport, StepOutcome, StepReport};
use crate::run::{new_ctx, Halt, RunCtx, RunInput};
use crate::step::{Action, Outputs, StepCtx, StepError};
use crate::wait::wait_until;
use crate::walk::{walk, Direction, Walked};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What running one step came to.
pub(crate) struct StepResult {
    pub(crate) outcome: StepOutcome,
    pub(crate) outputs: Option<Outputs>,
    pub(crate) duration: Duration,
    pub(crate) apply_calls: u32,
    pub(crate) journal_error: Option<JournalError>,
}

impl StepResult {
    fn new(outcome: StepOutcome) -> Self {
        StepResult {
            outcome,
            outputs: None,
            duration: Duration::ZERO,
            apply_calls: 0,
            journal_error: None,
        }
    }
}

impl Walked for StepResult {
    fn advances(&self) -> bool {
        self.outcome.is_ready()
    }
    fn halts(&self) -> bool {
        // Stop scheduling before anything else is marked complete.
        self.journal_error.is_some() || matches!(self.outcome, StepOutcome::Failed { .. })
    }
    fn panicked(elapsed: Duration) -> Self {
        StepResult {
            duration: elapsed,
            ..StepResult::new(StepOutcome::Failed {
                error: "the step panicked".into(),
            })
        }
    }
}

pub(crate) async fn run(input: RunInput<'_>) -> Result<RunReport, EngineError> {
    let started = Instant::now();
    let (cx, resumed) = new_ctx(input, Operation::Up)?;
    cx.start_run(Operation::Up, resumed).await?;
    let all: Vec<usize> = (0..cx.graph.len()).collect();
    let mut results = walk(&cx, &all, Direction::Forward, |i, done| {
        let deps = dep_outputs(&cx, i, done);
        let cx = cx.clone();
        async move { run_step(&cx, i, deps).await }
    })
    .await;
    if let Some(e) = results.values_mut().find_map(|r| r.journal_error.take()) {
        return Err(EngineError::Journal(e));
    }
    let reports = step_reports(&cx, results);
    let mut status = if reports
        .iter()
        .any(|r| matches!(r.outcome, StepOutcome::Failed { .. }))
    {
        RunStatus::Failed
    } else if reports.iter().all(|r| r.outcome.is_ready()) {
        RunStatus::Succeeded
    } else {
        RunStatus::Cancelled
    };
    let mut rollback = Vec::new();
    if status == RunStatus::Failed
        && cx.config.failure_policy == FailurePolicy::Rollback
        && !cx.cancel.is_cancelled()
    {
        rollback = crate::down::rollback(&cx).await?;
        if rollback
            .iter()
            .all(|r| r.outcome == StepOutcome::RolledBack)
        {
            status = RunStatus::RolledBack;
        }
    }
    let stats = RunStats {
        steps: cx.graph.len(),
        apply_calls: cx.apply_calls(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        ..RunStats::of(reports.iter().chain(rollback.iter()).map(|r| &r.outcome))
    };
    cx.finish_run(Operation::Up, status, &stats).await?;
    Ok(RunReport {
        run: cx.run,
        operation: Operation::Up,
        status,
        resumed,
        stats,
        steps: reports,
        rollback,
        state: cx.rec.snapshot(),
    })
}

/// The outputs of a step's dependencies, from the results so far.
fn dep_outputs(
    cx: &RunCtx,
    i: usize,
    done: &BTreeMap<usize, StepResult>,
) -> BTreeMap<StepId, Outputs> {
    cx.graph
        .deps_of(i)
        .iter()
        .map(|&d| {
            let o = done.get(&d).and_then(|r| r.outputs.clone());
            (cx.graph.spec(d).id.clone(), o.unwrap_or_default())
        })
        .collect()
}

/// Every step's report, in declaration order; a step that never ran is skipped (a dependency
/// failed) or not started (the run stopped or was cancelled).
fn step_reports(cx: &RunCtx, mut results: BTreeMap<usize, StepResult>) -> Vec<StepReport> {
    let failed: Vec<bool> = (0..cx.graph.len())
        .map(|i| {
            results
                .get(&i)
                .is_some_and(|r| matches!(r.outcome, StepOutcome::Failed { .. }))
        })
        .collect();
    let mut reports = Vec::with_capacity(cx.graph.len());
    for i in cx.graph.topo_order() {
        let spec = cx.graph.spec(i);
        let r = results.remove(&i).unwrap_or_else(|| {
            StepResult::new(match failed_ancestor(cx, i, &failed) {
                Some(b) => {
                    cx.events.emit(Event::StepSkipped {
                        step: spec.id.clone(),
                        because: b.clone(),
                    });
                    StepOutcome::Skipped { because: b }
                }
                None => StepOutcome::NotStarted,
            })
        });
        reports.push(StepReport {
            id: spec.id.clone(),
            kind: spec.step.kind().to_owned(),
            outcome: r.outcome,
            duration: r.duration,
            apply_calls: r.apply_calls,
        });
    }
    reports.sort_by_key(|r| cx.graph.index_of(&r.id));
    reports
}

fn failed_ancestor(cx: &RunCtx, i: usize, failed: &[bool]) -> Option<StepId> {
    let mut stack = vec![i];
    let mut seen = vec![false; failed.len()];
    while let Some(n) = stack.pop() {
        for &d in cx.graph.deps_of(n) {
            if failed[d] {
                return Some(cx.graph.spec(d).id.clone());
            }
            if !seen[d] {
                seen[d] = true;
                stack.push(d);
            }
        }
    }
    None
}

async fn run_step(cx: &Arc<RunCtx>, i: usize, deps: BTreeMap<StepId, Outputs>) -> StepResult {
    let t0 = Instant::now();
    let mut calls = 0u32;
    let ctx = cx.ctx_for(i, deps);
    let res = converge(cx, i, &ctx, &mut calls).await;
    let id = &cx.graph.spec(i).id;
    let (outcome, outputs, journal_error) = match res {
        Ok((outcome, outputs)) => {
            cx.events.emit(Event::StepReady {
                step: id.clone(),
                outcome: outcome.label().to_owned(),
                duration: t0.elapsed(),
            });
            (outcome, Some(outputs), None)
        }
        Err(Halt::Cancelled) => (StepOutcome::NotStarted, None, None),
        Err(Halt::Journal(e)) => (
            StepOutcome::Failed {
                error: e.to_string(),
            },
            None,
            Some(e),
        ),
        Err(Halt::Failed(error)) => {
            let (outcome, journal_error) = fail(cx, i, &ctx, error).await;
            (outcome, None, journal_error)
        }
    };
    StepResult {
        outcome,
        outputs,
        duration: t0.elapsed(),
        apply_calls: calls,
        journal_error,
    }
}

/// Records a step's failure, runs its `on_failure` hooks and says so.
async fn fail(
    cx: &RunCtx,
    i: usize,
    ctx: &StepCtx,
    error: String,
) -> (StepOutcome, Option<JournalError>) {
    let id = &cx.graph.spec(i).id;
    let error = crate::secret::redact(&error);
    let journal_error = cx
        .rec
        .record(Record::StepFailed {
            run: cx.run,
            step: id.clone(),
            error: error.clone(),
            at_ms: now_ms(),
        })
        .await
        .err();
    run_hooks(cx, i, ctx, HookWhen::OnFailure, None).await.ok();
    cx.events.emit(Event::StepFailed {
        step: id.clone(),
        error: error.clone(),
    });
    (StepOutcome::Failed { error }, journal_error)
}

async fn run_hooks(
    cx: &RunCtx,
    i: usize,
    ctx: &StepCtx,
    when: HookWhen,
    own: Option<&Outputs>,
) -> Result<(), Halt> {
    let spec = cx.graph.spec(i);
    for hook in spec.hooks.iter().filter(|h| h.when == when) {
        let env = hook_env(&spec.id, cx.run, when, ctx.deps(), own);
        run_hook(hook, &spec.id, &env, &cx.events)
            .await
            .map_err(|e| Halt::Failed(e.full_message()))?;
    }
    Ok(())
}

/// One step from observation to Ready: observe, decide, execute the decision.
async fn converge(
    cx: &Arc<RunCtx>,
    i: usize,
    ctx: &StepCtx,
    calls: &mut u32,
) -> Result<(StepOutcome, Outputs), Halt> {
    let spec = cx.graph.spec(i);
    let (id, step) = (&spec.id, spec.step.clone());
    let observed = {
        let _read = cx.reads_permit().await;
        cx.with_retries(id, "observe", || step.observe(ctx)).await?
    };
    cx.events.emit(Event::StepObserved {
        step: id.clone(),
        state: observed.label().to_owned(),
    });
    crate::discover::reclaim(cx, i, ctx, &observed).await?;
    let prior = cx.rec.step(id);
    let allowed = Allowed {
        id: id.as_str(),
        kind: step.kind(),
        replace: cx.config.replace.contains(id.as_str()),
    };
    let (decided, changes) = cx
        .with_retries(id, "observe", || {
            decision(step.as_ref(), ctx, &observed, prior.as_ref(), allowed)
        })
        .await?;
    match decided {
        Decision::Create => {
            mutate(cx, i, ctx, Action::Create, calls).await?;
            let outputs = wait_ready(cx, i, ctx).await?;
            let outputs = finish(cx, i, ctx, outputs, true).await?;
            Ok((StepOutcome::Created, outputs))
        }
        Decision::Update { .. } => {
            if !changes.is_empty() {
                cx.events.emit(Event::StepChanging {
                    step: id.clone(),
                    changes,
                });
            }
            mutate(cx, i, ctx, Action::Update, calls).await?;
            let outputs = wait_ready(cx, i, ctx).await?;
            let outputs = finish(cx, i, ctx, outputs, true).await?;
            Ok((StepOutcome::Updated, outputs))
        }
        Decision::Replace { .. } => replace(cx, i, ctx, changes, calls).await,
        Decision::Refused { message, .. } => Err(Halt::Failed(message)),
        Decision::Keep(found) => {
            let crate::step::Observation::Ready { outputs, .. } = observed else {
                return Err(Halt::Failed(format!("`{id}` was kept without being ready")));
            };
            keep(cx, i, found, outputs, prior.as_ref()).await
        }
        Decision::FinishReplacement => {
            // A replacement cut short while the old resource was going: it goes, then the new
            // one is made.
            let limit = spec.timeout.unwrap_or(cx.config.wait_timeout);
            wait_until(cx, id, limit, || step.wait_destroyed(ctx), "gone").await?;
            mutate(cx, i, ctx, Action::Create, calls).await?;
            let outputs = wait_ready(cx, i, ctx).await?;
            let outputs = finish(cx, i, ctx, outputs, true).await?;
            Ok((StepOutcome::Replaced, outputs))
        }
        Decision::Wait(found) => {
            if found == Found::Adopted {
                record_adopted(cx, i, None).await?;
            }
            let outputs = wait_ready(cx, i, ctx).await?;
            if interrupted_update(prior.as_ref()) {
                // An update a crash cut short (a roll half done): once the resource settles,
                // what the cut call did not reach is applied, not taken as done.
                if let Some(done) = finish_cut_update(cx, i, ctx, calls).await? {
                    return Ok(done);
                }
            }
            let outputs = finish(cx, i, ctx, outputs, found == Found::Resumed).await?;
            Ok((outcome_of(found), outputs))
        }
        Decision::Broken(message) => Err(Halt::Failed(format!(
            "the resource exists in a failed state: {message}"
        ))),
    }
}

/// Whether the journal shows an update of this environment's resource that did not finish.
fn interrupted_update(prior: Option<&crate::journal::StepState>) -> bool {
    prior.is_some_and(|p| {
        p.is_owned()
            && matches!(
                p.phase,
                Phase::Intent {
                    action: Action::Update
                } | Phase::Applied {
                    action: Action::Update
                }
            )
    })
}

/// After waiting out a cut update: observes again, and if the resource still differs from the
/// plan, updates it (`Some`); `None` when the wait finished it.
async fn finish_cut_update(
    cx: &Arc<RunCtx>,
    i: usize,
    ctx: &StepCtx,
    calls: &mut u32,
) -> Result<Option<(StepOutcome, Outputs)>, Halt> {
    let spec = cx.graph.spec(i);
    let (id, step) = (&spec.id, spec.step.clone());
    let observed = cx.with_retries(id, "observe", || step.observe(ctx)).await?;
    let prior = cx.rec.step(id);
    let decision = decide(
        &observed,
        prior.as_ref(),
        &step.fingerprint(),
        step.supports_update(),
    );
    if !matches!(decision, Decision::Update { .. }) {
        return Ok(None);
    }
    cx.events.emit(Event::StepObserved {
        step: id.clone(),
        state: "an interrupted change, not finished: applying the rest".into(),
    });
    mutate(cx, i, ctx, Action::Update, calls).await?;
    let outputs = wait_ready(cx, i, ctx).await?;
    let outputs = finish(cx, i, ctx, outputs, true).await?;
    Ok(Some((StepOutcome::Updated, outputs)))
}

/// The outcome of a step found there: adopted, a resumed create, or unchanged.
fn outcome_of(found: Found) -> StepOutcome {
    match found {
        Found::Adopted => StepOutcome::Adopted,
        // A create that a crash interrupted, found finished (or waited for).
        Found::Resumed => StepOutcome::Created,
        Found::Known => StepOutcome::Unchanged,
    }
}

/// A step found Ready as the plan wants it: recorded (adopted, if it was not ours), nothing
/// applied.
async fn keep(
    cx: &RunCtx,
    i: usize,
    found: Found,
    outputs: Outputs,
    prior: Option<&crate::journal::StepState>,
) -> Result<(StepOutcome, Outputs), Halt> {
    let spec = cx.graph.spec(i);
    let desired = spec.step.fingerprint();
    if found == Found::Adopted {
        record_adopted(cx, i, Some(desired.clone())).await?;
    }
    let unchanged_record = prior.filter(|p| p.may_exist()).is_some_and(|p| {
        p.phase == Phase::Ready
            && p.fingerprint.as_ref() == Some(&desired)
            && p.outputs.as_ref() == Some(&outputs)
    });
    if !unchanged_record {
        cx.rec
            .record(Record::Ready {
                run: cx.run,
                step: spec.id.clone(),
                fingerprint: desired,
                outputs: outputs.clone(),
                at_ms: now_ms(),
            })
            .await?;
    }
    Ok((outcome_of(found), outputs))
}

async fn record_adopted(
    cx: &RunCtx,
    i: usize,
    fingerprint: Option<crate::id::Fingerprint>,
) -> Result<(), Halt> {
    let spec = cx.graph.spec(i);
    cx.rec
        .record(Record::Adopted {
            run: cx.run,
            step: spec.id.clone(),
            fingerprint,
            deps: spec.deps.clone(),
            at_ms: now_ms(),
        })
        .await?;
    Ok(())
}

/// Records Ready and runs the `after` hooks (when the run changed something).
async fn finish(
    cx: &RunCtx,
    i: usize,
    ctx: &StepCtx,
    outputs: Outputs,
    changed: bool,
) -> Result<Outputs, Halt> {
    let spec = cx.graph.spec(i);
    cx.rec
        .record(Record::Ready {
            run: cx.run,
            step: spec.id.clone(),
            fingerprint: spec.step.fingerprint(),
            outputs: outputs.clone(),
            at_ms: now_ms(),
        })
        .await?;
    if changed {
        run_hooks(cx, i, ctx, HookWhen::After, Some(&outputs)).await?;
    }
    Ok(outputs)
}

/// Replaces a resource the plan allows to be replaced: the journaled destroy and its wait until
/// gone, then the journaled create. A crash in between leaves it absent, and `resume` creates
/// it.
async fn replace(
    cx: &Arc<RunCtx>,
    i: usize,
    ctx: &StepCtx,
    changes: Vec<crate::step::Change>,
    calls: &mut u32,
) -> Result<(StepOutcome, Outputs), Halt> {
    let id = cx.graph.spec(i).id.clone();
    if !changes.is_empty() {
        cx.events.emit(Event::StepChanging {
            step: id.clone(),
            changes,
        });
    }
    cx.events.emit(Event::StepDestroying { step: id.clone() });
    crate::down::undo_calls(cx, i, crate::down::Undo::Destroy, ctx, calls).await?;
    cx.events.emit(Event::StepDestroyed { step: id });
    mutate(cx, i, ctx, Action::Create, calls).await?;
    let outputs = wait_ready(cx, i, ctx).await?;
    let outputs = finish(cx, i, ctx, outputs, true).await?;
    Ok((StepOutcome::Replaced, outputs))
}

/// A mutating call with its intent and result journaled, holding a concurrency slot.
async fn mutate(
    cx: &Arc<RunCtx>,
    i: usize,
    ctx: &StepCtx,
    action: Action,
    calls: &mut u32,
) -> Result<(), Halt> {
    let spec = cx.graph.spec(i);
    let id = &spec.id;
    run_hooks(cx, i, ctx, HookWhen::Before, None).await?;
    let mut delays = cx.config.retry.delays();
    let mut attempt = 1u32;
    loop {
        let permit = tokio::select! {
            p = cx.slots.acquire() => p.map_err(|_| Halt::Cancelled)?,
            _ = cx.cancel.cancelled() => return Err(Halt::Cancelled),
        };
        if cx.cancel.is_cancelled() {
            return Err(Halt::Cancelled);
        }
        cx.rec
            .record(Record::Intent {
                run: cx.run,
                step: id.clone(),
                action,
                attempt,
                fingerprint: Some(spec.step.fingerprint()),
                deps: spec.deps.clone(),
                at_ms: now_ms(),
            })
            .await?;
        cx.events.emit(Event::StepApplying {
            step: id.clone(),
            action,
            attempt,
        });
        cx.count_call();
        *calls += 1;
        let t = Instant::now();
        // Not raced against cancellation: an in-flight mutating call finishes and is journaled.
        let res = match tokio::time::timeout(cx.config.call_timeout, spec.step.apply(ctx, action))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(StepError::transient(format!(
                "{action} did not answer within {} s",
                cx.config.call_timeout.as_secs()
            ))),
        };
        let rec = match &res {
            Ok(()) => Record::Applied {
                run: cx.run,
                step: id.clone(),
                action,
                ms: t.elapsed().as_millis() as u64,
                at_ms: now_ms(),
            },
            Err(e) => Record::ApplyFailed {
                run: cx.run,
                step: id.clone(),
                action,
                kind: e.kind(),
                error: e.full_message(),
                at_ms: now_ms(),
            },
        };
        cx.rec.record(rec).await?;
        drop(permit);
        let Err(e) = res else { return Ok(()) };
        match cx.next_delay(id, &e, &mut delays, &mut attempt) {
            Some(d) => cx.pause(d).await?,
            None => return Err(Halt::Failed(format!("{action}: {}", e.full_message()))),
        }
    }
}

/// Waits for Ready under the step's (or the engine's) timeout.
async fn wait_ready(cx: &RunCtx, i: usize, ctx: &StepCtx) -> Result<Outputs, Halt> {
    let spec = cx.graph.spec(i);
    let limit = spec.timeout.unwrap_or(cx.config.wait_timeout);
    wait_until(cx, &spec.id, limit, || spec.step.wait(ctx), "ready").await
}
