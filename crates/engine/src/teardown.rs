//! Teardown and rollback: dependents before their dependencies, concurrently where independent,
//! every destroy journaled so an interrupted teardown resumes.

use crate::engine::{choose_run, new_ctx, DownOptions, Engine, EngineError, Halt, RunCtx};
use crate::events::{Event, Operation, RunStats, RunStatus};
use crate::hooks::{hook_env, run_hook, HookWhen};
use crate::id::StepId;
use crate::journal::{now_ms, Journal, JournalState, Ownership, Record};
use crate::report::{RunReport, StepOutcome, StepReport};
use crate::step::{Action, Outputs};
use crate::up::wait_until;
use futures::FutureExt;
use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which undo a walk performs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    Rollback,
    Destroy,
}

pub(crate) async fn run_down(
    engine: &Engine,
    graph: &crate::graph::Graph,
    journal: &Journal,
    state: JournalState,
    opts: DownOptions,
    cancel: CancellationToken,
) -> Result<RunReport, EngineError> {
    let started = Instant::now();
    // Everything recorded as possibly existing must be destroyable with this graph.
    let unknown: Vec<StepId> = state
        .steps
        .iter()
        .filter(|(id, s)| s.may_exist() && s.is_owned() && graph.index_of(id).is_none())
        .map(|(id, _)| id.clone())
        .collect();
    if !unknown.is_empty() {
        return Err(EngineError::UnknownSteps(unknown));
    }
    let (run, resumed) = choose_run(&state, Operation::Down);
    let cx = new_ctx(engine, graph, journal, state, run, cancel)?;
    cx.start_run(Operation::Down, resumed).await?;
    let snapshot = cx.rec.snapshot();
    let mut set = Vec::new();
    let mut reports = Vec::new();
    for i in 0..cx.graph.len() {
        let spec = cx.graph.spec(i);
        let st = snapshot.steps.get(&spec.id).filter(|s| s.may_exist());
        match st.and_then(|s| s.owner) {
            Some(Ownership::Created { .. }) => set.push(i),
            Some(Ownership::Adopted { .. }) if opts.force => set.push(i),
            Some(Ownership::Adopted { .. }) => {
                cx.events.emit(Event::StepKept {
                    step: spec.id.clone(),
                    reason: "adopted: it existed before this environment".into(),
                });
                reports.push(report(&cx, i, StepOutcome::Kept, Duration::ZERO, 0));
            }
            None => reports.push(report(&cx, i, StepOutcome::Absent, Duration::ZERO, 0)),
        }
    }
    let walked = reverse_walk(&cx, &set, Walk::Destroy).await?;
    reports.extend(walked);
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
    let mut stats = RunStats {
        steps: cx.graph.len(),
        apply_calls: cx.apply_calls.load(Ordering::Relaxed),
        elapsed_ms: started.elapsed().as_millis() as u64,
        ..RunStats::default()
    };
    for r in &reports {
        match r.outcome {
            StepOutcome::Destroyed => stats.destroyed += 1,
            StepOutcome::Kept => stats.kept += 1,
            StepOutcome::Failed { .. } => stats.failed += 1,
            StepOutcome::Skipped { .. } => stats.skipped += 1,
            StepOutcome::NotStarted => stats.not_started += 1,
            _ => stats.unchanged += 1,
        }
    }
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

type UndoResult = Result<(StepOutcome, Duration, u32), EngineError>;

/// Undoes the steps in `set`: a step goes once every dependent of it in `set` is gone.
/// A failed step blocks its dependencies (they are reported skipped); independent branches go on.
pub(crate) async fn reverse_walk(
    cx: &Arc<RunCtx>,
    set: &[usize],
    walk: Walk,
) -> Result<Vec<StepReport>, EngineError> {
    let in_set: HashSet<usize> = set.iter().copied().collect();
    let mut blockers: BTreeMap<usize, usize> = set
        .iter()
        .map(|&i| {
            let n = cx
                .graph
                .dependents_of(i)
                .iter()
                .filter(|d| in_set.contains(d))
                .count();
            (i, n)
        })
        .collect();
    let mut done: BTreeMap<usize, StepReport> = BTreeMap::new();
    let mut tasks: JoinSet<(usize, UndoResult)> = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, i: usize| {
        let cx = cx.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let r = AssertUnwindSafe(undo_one(&cx, i, walk))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Ok((
                        StepOutcome::Failed {
                            error: "the step panicked".into(),
                        },
                        0,
                    ))
                });
            (i, r.map(|(o, c)| (o, t0.elapsed(), c)))
        });
    };
    if !cx.cancel.is_cancelled() {
        for (&i, &n) in &blockers {
            if n == 0 {
                spawn(&mut tasks, i);
            }
        }
    }
    let mut journal_error = None;
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, r)) = joined else { continue };
        let (outcome, d, calls) = match r {
            Ok(v) => v,
            Err(e) => {
                journal_error.get_or_insert(e);
                continue;
            }
        };
        let gone = matches!(outcome, StepOutcome::Destroyed | StepOutcome::RolledBack);
        done.insert(i, report(cx, i, outcome, d, calls));
        if gone && journal_error.is_none() {
            for &dep in cx.graph.deps_of(i) {
                if let Some(b) = blockers.get_mut(&dep) {
                    *b -= 1;
                    if *b == 0 && !cx.cancel.is_cancelled() {
                        spawn(&mut tasks, dep);
                    }
                }
            }
        }
    }
    if let Some(e) = journal_error {
        return Err(e);
    }
    let mut out = Vec::with_capacity(set.len());
    for &i in set {
        match done.remove(&i) {
            Some(r) => out.push(r),
            None => {
                // Blocked by a dependent that failed, or never reached because of cancellation.
                let because = cx
                    .graph
                    .transitive_dependents(i)
                    .into_iter()
                    .find(|d| {
                        out.iter().chain(done.values()).any(|r| {
                            r.id == cx.graph.spec(*d).id
                                && matches!(r.outcome, StepOutcome::Failed { .. })
                        })
                    })
                    .map(|d| cx.graph.spec(d).id.clone());
                let outcome = match because {
                    Some(b) => StepOutcome::Skipped { because: b },
                    None => StepOutcome::NotStarted,
                };
                out.push(report(cx, i, outcome, Duration::ZERO, 0));
            }
        }
    }
    Ok(out)
}

async fn undo_one(
    cx: &Arc<RunCtx>,
    i: usize,
    walk: Walk,
) -> Result<(StepOutcome, u32), EngineError> {
    let spec = cx.graph.spec(i);
    let id = spec.id.clone();
    let state = cx.rec.snapshot();
    // Dependencies' recorded outputs (still there: dependencies go after us).
    let deps: BTreeMap<StepId, Outputs> = spec
        .deps
        .iter()
        .filter_map(|d| {
            state
                .steps
                .get(d)
                .and_then(|s| s.outputs.clone())
                .map(|o| (d.clone(), o))
        })
        .collect();
    let ctx = cx.ctx_for(i, deps);
    let action = match walk {
        Walk::Rollback => Action::Rollback,
        Walk::Destroy => Action::Destroy,
    };
    cx.events.emit(match walk {
        Walk::Rollback => Event::StepRollingBack { step: id.clone() },
        Walk::Destroy => Event::StepDestroying { step: id.clone() },
    });
    let mut calls = 0u32;
    let res: Result<(), Halt> = async {
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
        cx.with_retries(&id, &action.to_string(), || {
            calls += 1;
            cx.apply_calls.fetch_add(1, Ordering::Relaxed);
            async {
                match walk {
                    Walk::Rollback => spec.step.rollback(&ctx).await,
                    Walk::Destroy => spec.step.destroy(&ctx).await,
                }
            }
        })
        .await?;
        drop(permit);
        let limit = spec.timeout.unwrap_or(cx.config.wait_timeout);
        wait_until(cx, &id, limit, || spec.step.wait_destroyed(&ctx), "gone").await?;
        cx.rec
            .record(Record::Applied {
                run: cx.run,
                step: id.clone(),
                action,
                ms: t.elapsed().as_millis() as u64,
                at_ms: now_ms(),
            })
            .await?;
        if walk == Walk::Rollback {
            for hook in spec.hooks.iter().filter(|h| h.when == HookWhen::OnRollback) {
                let env = hook_env(&id, cx.run, HookWhen::OnRollback, ctx.deps(), None);
                run_hook(hook, &id, &env, &cx.events)
                    .await
                    .map_err(|e| Halt::Failed(e.full_message()))?;
            }
        }
        Ok(())
    }
    .await;
    match res {
        Ok(()) => {
            cx.events.emit(match walk {
                Walk::Rollback => Event::StepRolledBack { step: id },
                Walk::Destroy => Event::StepDestroyed { step: id },
            });
            Ok((
                match walk {
                    Walk::Rollback => StepOutcome::RolledBack,
                    Walk::Destroy => StepOutcome::Destroyed,
                },
                calls,
            ))
        }
        Err(Halt::Cancelled) => Ok((StepOutcome::NotStarted, calls)),
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
            Ok((StepOutcome::Failed { error }, calls))
        }
    }
}
