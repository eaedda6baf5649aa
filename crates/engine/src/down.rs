//! Teardown and rollback: the DAG walked backwards (dependents before their dependencies),
//! concurrently where independent, every destroy journaled so an interrupted teardown resumes.

use crate::config::{DownOptions, EngineError};
use crate::events::{Event, Operation, RunStats, RunStatus};
use crate::hooks::{hook_env, run_hook, HookWhen};
use crate::id::StepId;
use crate::journal::{now_ms, Ownership, Record};
use crate::report::{RunReport, StepOutcome, StepReport};
use crate::run::{new_ctx, Halt, RunCtx, RunInput};
use crate::step::{Action, Outputs, StepCtx};
use crate::wait::wait_until;
use crate::walk::{walk, Direction, Walked};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Which undo a walk performs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undo {
    Rollback,
    Destroy,
}

impl Undo {
    fn action(self) -> Action {
        match self {
            Undo::Rollback => Action::Rollback,
            Undo::Destroy => Action::Destroy,
        }
    }
    fn done(self) -> StepOutcome {
        match self {
            Undo::Rollback => StepOutcome::RolledBack,
            Undo::Destroy => StepOutcome::Destroyed,
        }
    }
}

/// What undoing one step came to.
struct Undone {
    outcome: StepOutcome,
    duration: Duration,
    calls: u32,
    error: Option<EngineError>,
}

impl Walked for Undone {
    fn advances(&self) -> bool {
        matches!(
            self.outcome,
            StepOutcome::Destroyed
                | StepOutcome::RolledBack
                | StepOutcome::Kept
                | StepOutcome::LeftTo { .. }
        ) && self.error.is_none()
    }
    fn halts(&self) -> bool {
        self.error.is_some()
    }
    fn panicked(elapsed: Duration) -> Self {
        Undone {
            outcome: StepOutcome::Failed {
                error: "the step panicked".into(),
            },
            duration: elapsed,
            calls: 0,
            error: None,
        }
    }
}

pub(crate) async fn run(input: RunInput<'_>, opts: DownOptions) -> Result<RunReport, EngineError> {
    let started = Instant::now();
    // Everything recorded as possibly existing must be destroyable with this graph.
    let unknown: Vec<StepId> = input
        .state
        .steps
        .iter()
        .filter(|(id, s)| s.may_exist() && s.is_owned() && input.graph.index_of(id).is_none())
        .map(|(id, _)| id.clone())
        .collect();
    if !unknown.is_empty() {
        return Err(EngineError::UnknownSteps(unknown));
    }
    let (cx, resumed) = new_ctx(input, Operation::Down)?;
    cx.start_run(Operation::Down, resumed).await?;
    let (set, mut reports) = match discovered(&cx, opts).await? {
        Some(failed) => (Vec::new(), vec![failed]),
        None => to_destroy(&cx, opts),
    };
    reports.extend(reverse(&cx, &set, Undo::Destroy).await?);
    reports.sort_by_key(|r| cx.graph.index_of(&r.id));
    let status = if reports
        .iter()
        .any(|r| matches!(r.outcome, StepOutcome::Failed { .. }))
    {
        RunStatus::Failed
    } else if reports.iter().any(|r| {
        matches!(
            r.outcome,
            StepOutcome::NotStarted | StepOutcome::Skipped { .. }
        )
    }) {
        RunStatus::Cancelled
    } else {
        RunStatus::Succeeded
    };
    let stats = RunStats {
        steps: cx.graph.len(),
        apply_calls: cx.apply_calls(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        ..RunStats::of(reports.iter().map(|r| &r.outcome))
    };
    cx.finish_run(Operation::Down, status, &stats).await?;
    Ok(RunReport {
        run: cx.run,
        operation: Operation::Down,
        status,
        resumed,
        stats,
        steps: reports,
        rollback: Vec::new(),
        state: cx.rec.snapshot(),
    })
}

/// Discovery, when asked for: `Some(report)` of the step it could not look at (nothing is then
/// destroyed), `None` when the teardown can go on.
async fn discovered(cx: &RunCtx, opts: DownOptions) -> Result<Option<StepReport>, EngineError> {
    let found = if opts.discover {
        crate::discover::discover(cx).await
    } else {
        Ok(Vec::new())
    };
    let found = match found {
        Ok(_) if !opts.remove_adopted => crate::discover::reclaim_adopted(cx).await,
        other => other,
    };
    match found {
        Ok(_) => Ok(None),
        Err((_, Halt::Journal(e))) => Err(EngineError::Journal(e)),
        Err((i, Halt::Cancelled)) => Ok(Some(report(
            cx,
            i,
            StepOutcome::NotStarted,
            Duration::ZERO,
            0,
        ))),
        Err((i, Halt::Failed(error))) => {
            let error = crate::secret::redact(&error);
            cx.events.emit(Event::StepFailed {
                step: cx.graph.spec(i).id.clone(),
                error: error.clone(),
            });
            Ok(Some(report(
                cx,
                i,
                StepOutcome::Failed { error },
                Duration::ZERO,
                0,
            )))
        }
    }
}

/// The steps a teardown destroys (what the environment created; adopted ones too when forced),
/// and the reports of those it leaves.
fn to_destroy(cx: &RunCtx, opts: DownOptions) -> (Vec<usize>, Vec<StepReport>) {
    let snapshot = cx.rec.snapshot();
    let mut set = Vec::new();
    let mut reports = Vec::new();
    for i in 0..cx.graph.len() {
        let spec = cx.graph.spec(i);
        let st = snapshot.steps.get(&spec.id).filter(|s| s.may_exist());
        match st.and_then(|s| s.owner) {
            Some(Ownership::Created { .. }) => set.push(i),
            Some(Ownership::Adopted { .. }) if opts.remove_adopted || spec.step.shared() => {
                set.push(i)
            }
            Some(Ownership::Adopted { .. }) => {
                cx.events.emit(Event::StepKept {
                    step: spec.id.clone(),
                    reason: "adopted: it existed before this environment".into(),
                });
                reports.push(report(cx, i, StepOutcome::Kept, Duration::ZERO, 0));
            }
            None => reports.push(report(cx, i, StepOutcome::Absent, Duration::ZERO, 0)),
        }
    }
    (set, reports)
}

/// Undoes what this run created, in reverse dependency order; never adopted resources.
pub(crate) async fn rollback(cx: &Arc<RunCtx>) -> Result<Vec<StepReport>, EngineError> {
    let snapshot = cx.rec.snapshot();
    let set: Vec<usize> = (0..cx.graph.len())
        .filter(|&i| {
            snapshot.steps.get(&cx.graph.spec(i).id).is_some_and(|s| {
                s.may_exist() && s.owner == Some(Ownership::Created { run: cx.run })
            })
        })
        .collect();
    reverse(cx, &set, Undo::Rollback).await
}

fn report(cx: &RunCtx, i: usize, outcome: StepOutcome, d: Duration, calls: u32) -> StepReport {
    let spec = cx.graph.spec(i);
    StepReport {
        id: spec.id.clone(),
        kind: spec.step.kind().to_owned(),
        outcome,
        duration: d,
        apply_calls: calls,
    }
}

/// Undoes the steps in `set`: a step goes once every dependent of it in `set` is gone.
/// A failed step blocks its dependencies (they are reported skipped); independent branches go on.
async fn reverse(
    cx: &Arc<RunCtx>,
    set: &[usize],
    undo: Undo,
) -> Result<Vec<StepReport>, EngineError> {
    let mut done = walk(cx, set, Direction::Backward, |i, _| {
        let cx = cx.clone();
        async move {
            let t0 = Instant::now();
            let mut calls = 0u32;
            let r = undo_one(&cx, i, undo, &mut calls).await;
            let (outcome, error) = match r {
                Ok(o) => (o, None),
                Err(e) => (StepOutcome::NotStarted, Some(e)),
            };
            Undone {
                outcome,
                duration: t0.elapsed(),
                calls,
                error,
            }
        }
    })
    .await;
    if let Some(e) = done.values_mut().find_map(|u| u.error.take()) {
        return Err(e);
    }
    let mut out: Vec<StepReport> = Vec::with_capacity(set.len());
    for &i in set {
        if let Some(u) = done.remove(&i) {
            out.push(report(cx, i, u.outcome, u.duration, u.calls));
            continue;
        }
        // Blocked by a dependent that failed, or never reached because of cancellation.
        let because = cx
            .graph
            .transitive_dependents(i)
            .into_iter()
            .find(|d| {
                let failed = |r: &StepReport| {
                    r.id == cx.graph.spec(*d).id && matches!(r.outcome, StepOutcome::Failed { .. })
                };
                out.iter().any(failed)
                    || done
                        .get(d)
                        .is_some_and(|u| matches!(u.outcome, StepOutcome::Failed { .. }))
            })
            .map(|d| cx.graph.spec(d).id.clone());
        let outcome = match because {
            Some(b) => StepOutcome::Skipped { because: b },
            None => StepOutcome::NotStarted,
        };
        out.push(report(cx, i, outcome, Duration::ZERO, 0));
    }
    Ok(out)
}

/// The recorded outputs of a step's dependencies (still there: dependencies go after it).
pub(crate) fn recorded_deps(cx: &RunCtx, i: usize) -> BTreeMap<StepId, Outputs> {
    let state = cx.rec.snapshot();
    cx.graph
        .spec(i)
        .deps
        .iter()
        .filter_map(|d| {
            state
                .steps
                .get(d)
                .and_then(|s| s.outputs.clone())
                .map(|o| (d.clone(), o))
        })
        .collect()
}

async fn undo_one(
    cx: &Arc<RunCtx>,
    i: usize,
    undo: Undo,
    calls: &mut u32,
) -> Result<StepOutcome, EngineError> {
    let id = cx.graph.spec(i).id.clone();
    let ctx = cx.ctx_for(i, recorded_deps(cx, i));
    cx.events.emit(match undo {
        Undo::Rollback => Event::StepRollingBack { step: id.clone() },
        Undo::Destroy => Event::StepDestroying { step: id.clone() },
    });
    match undo_calls(cx, i, undo, &ctx, calls).await {
        Ok(()) => {
            if let Some(left) = ctx.left() {
                cx.events.emit(Event::StepKept {
                    step: id,
                    reason: left.reason,
                });
                return Ok(match left.to {
                    Some(environment) => StepOutcome::LeftTo { environment },
                    None => StepOutcome::Kept,
                });
            }
            cx.events.emit(match undo {
                Undo::Rollback => Event::StepRolledBack { step: id },
                Undo::Destroy => Event::StepDestroyed { step: id },
            });
            Ok(undo.done())
        }
        Err(Halt::Cancelled) => Ok(StepOutcome::NotStarted),
        Err(Halt::Journal(e)) => Err(EngineError::Journal(e)),
        Err(Halt::Failed(error)) => {
            let error = crate::secret::redact(&error);
            cx.rec
                .record(Record::StepFailed {
                    run: cx.run,
                    step: id.clone(),
                    error: error.clone(),
                    at_ms: now_ms(),
                })
                .await?;
            cx.events.emit(Event::StepFailed {
                step: id,
                error: error.clone(),
            });
            Ok(StepOutcome::Failed { error })
        }
    }
}

/// The journaled destroy (or rollback) call, the wait until the resource is gone, and the
/// `on_rollback` hooks.
pub(crate) async fn undo_calls(
    cx: &Arc<RunCtx>,
    i: usize,
    undo: Undo,
    ctx: &StepCtx,
    calls: &mut u32,
) -> Result<(), Halt> {
    let spec = cx.graph.spec(i);
    let id = &spec.id;
    let action = undo.action();
    let permit = tokio::select! {
        p = cx.slots.acquire() => p.map_err(|_| Halt::Cancelled)?,
        _ = cx.cancel.cancelled() => return Err(Halt::Cancelled),
    };
    cx.rec
        .record(Record::Intent {
            run: cx.run,
            step: id.clone(),
            action,
            attempt: 1,
            fingerprint: None,
            deps: Vec::new(),
            at_ms: now_ms(),
        })
        .await?;
    let t = Instant::now();
    cx.with_retries(id, &action.to_string(), || {
        *calls += 1;
        cx.count_call();
        async {
            match undo {
                Undo::Rollback => spec.step.rollback(ctx).await,
                Undo::Destroy => spec.step.destroy(ctx).await,
            }
        }
    })
    .await?;
    drop(permit);
    match ctx.left() {
        // Kept, and still this environment's: recorded as it was, so a later teardown tries
        // again and `up` finds it its own.
        Some(crate::step::Left { to: None, .. }) => return keep_recorded(cx, i).await,
        // Handed to another environment: no longer this one's, nothing to wait for.
        Some(_) => {}
        None => {
            let limit = spec.timeout.unwrap_or(cx.config.wait_timeout);
            wait_until(cx, id, limit, || spec.step.wait_destroyed(ctx), "gone").await?;
        }
    }
    cx.rec
        .record(Record::Applied {
            run: cx.run,
            step: id.clone(),
            action,
            ms: t.elapsed().as_millis() as u64,
            at_ms: now_ms(),
        })
        .await?;
    if undo == Undo::Rollback {
        for hook in spec.hooks.iter().filter(|h| h.when == HookWhen::OnRollback) {
            let env = hook_env(id, cx.run, HookWhen::OnRollback, ctx.deps(), None);
            run_hook(hook, id, &env, &cx.events)
                .await
                .map_err(|e| Halt::Failed(e.full_message()))?;
        }
    }
    Ok(())
}

/// Records a step that teardown left in place as Ready again, with what was recorded before.
async fn keep_recorded(cx: &RunCtx, i: usize) -> Result<(), Halt> {
    let spec = cx.graph.spec(i);
    let prior = cx.rec.step(&spec.id);
    cx.rec
        .record(Record::Ready {
            run: cx.run,
            step: spec.id.clone(),
            fingerprint: prior
                .as_ref()
                .and_then(|p| p.fingerprint.clone())
                .unwrap_or_else(|| spec.step.fingerprint()),
            outputs: prior.and_then(|p| p.outputs).unwrap_or_default(),
            at_ms: now_ms(),
        })
        .await?;
    Ok(())
}
