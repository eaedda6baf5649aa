//! `up`: observe, apply what is absent or changed, wait, record; dependencies first, concurrently.

use crate::engine::{choose_run, new_ctx, Engine, EngineError, FailurePolicy, Halt, RunCtx};
use crate::events::{Event, Operation, RunStats, RunStatus};
use crate::hooks::{hook_env, run_hook, HookWhen};
use crate::id::StepId;
use crate::journal::{now_ms, Journal, JournalState, Ownership, Phase, Record};
use crate::report::{RunReport, StepOutcome, StepReport};
use crate::step::{Action, Observation, Outputs, StepCtx, StepError};
use crate::teardown::{reverse_walk, Walk};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) struct StepResult {
    pub(crate) outcome: StepOutcome,
    pub(crate) outputs: Option<Outputs>,
    pub(crate) duration: Duration,
    pub(crate) apply_calls: u32,
    pub(crate) journal_error: Option<crate::journal::JournalError>,
}

pub(crate) async fn run_up(
    engine: &Engine,
    graph: &crate::graph::Graph,
    journal: &Journal,
    state: JournalState,
    cancel: CancellationToken,
) -> Result<RunReport, EngineError> {
    let started = Instant::now();
    let (run, resumed) = choose_run(&state, Operation::Up);
    let cx = new_ctx(engine, graph, journal, state, run, cancel)?;
    cx.start_run(Operation::Up, resumed).await?;

    let n = cx.graph.len();
    let mut waiting_on: Vec<usize> = (0..n).map(|i| cx.graph.deps_of(i).len()).collect();
    let mut outputs: Vec<Option<Outputs>> = vec![None; n];
    let mut results: Vec<Option<StepResult>> = (0..n).map(|_| None).collect();
    let mut tasks: JoinSet<(usize, StepResult)> = JoinSet::new();
    let mut stopped = false;
    let mut journal_error = None;

    let spawn =
        |tasks: &mut JoinSet<(usize, StepResult)>, i: usize, outputs: &[Option<Outputs>]| {
            let deps: BTreeMap<StepId, Outputs> = cx
                .graph
                .deps_of(i)
                .iter()
                .map(|&d| {
                    (
                        cx.graph.spec(d).id.clone(),
                        outputs[d].clone().unwrap_or_default(),
                    )
                })
                .collect();
            let cx = cx.clone();
            tasks.spawn(async move {
                let t0 = Instant::now();
                let res = AssertUnwindSafe(run_step(&cx, i, deps))
                    .catch_unwind()
                    .await;
                let res = res.unwrap_or_else(|_| StepResult {
                    outcome: StepOutcome::Failed {
                        error: "the step panicked".into(),
                    },
                    outputs: None,
                    duration: t0.elapsed(),
                    apply_calls: 0,
                    journal_error: None,
                });
                (i, res)
            });
        };

    if !cx.cancel.is_cancelled() {
        let roots: Vec<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
        for i in roots {
            spawn(&mut tasks, i, &outputs);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, mut res)) = joined else { continue };
        if let Some(e) = res.journal_error.take() {
            journal_error.get_or_insert(e);
            stopped = true;
        }
        if res.outcome.is_ready() {
            outputs[i] = res.outputs.clone();
            for &d in cx.graph.dependents_of(i) {
                waiting_on[d] -= 1;
                if waiting_on[d] == 0 && !stopped && !cx.cancel.is_cancelled() {
                    spawn(&mut tasks, d, &outputs);
                }
            }
        } else if matches!(res.outcome, StepOutcome::Failed { .. }) {
            // Stop scheduling before anything else is marked complete.
            stopped = true;
        }
        results[i] = Some(res);
    }
    if let Some(e) = journal_error {
        return Err(EngineError::Journal(e));
    }

    // Steps that never ran: skipped (a dependency failed) or not started (stopped/cancelled).
    let failed: Vec<bool> = results
        .iter()
        .map(|r| {
            matches!(
                r,
                Some(StepResult {
                    outcome: StepOutcome::Failed { .. },
                    ..
                })
            )
        })
        .collect();
    let mut reports = Vec::with_capacity(n);
    for i in cx.graph.topo_order() {
        let spec = cx.graph.spec(i);
        let r = match results[i].take() {
            Some(r) => r,
            None => {
                let because = failed_ancestor(&cx, i, &failed);
                let outcome = match because {
                    Some(b) => {
                        cx.events.emit(Event::StepSkipped {
                            step: spec.id.clone(),
                            because: b.clone(),
                        });
                        StepOutcome::Skipped { because: b }
                    }
                    None => StepOutcome::NotStarted,
                };
                StepResult {
                    outcome,
                    outputs: None,
                    duration: Duration::ZERO,
                    apply_calls: 0,
                    journal_error: None,
                }
            }
        };
        reports.push(StepReport {
            id: spec.id.clone(),
            kind: spec.step.kind().to_owned(),
            outcome: r.outcome,
            duration: r.duration,
            apply_calls: r.apply_calls,
        });
    }
    // Report in declaration order.
    reports.sort_by_key(|r| cx.graph.index_of(&r.id));

    let any_failed = failed.iter().any(|f| *f);
    let mut status = if any_failed {
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
        let snapshot = cx.rec.snapshot();
        let set: Vec<usize> = (0..n)
            .filter(|&i| {
                snapshot.steps.get(&cx.graph.spec(i).id).is_some_and(|s| {
                    s.may_exist() && s.owner == Some(Ownership::Created { run: cx.run })
                })
            })
            .collect();
        rollback = reverse_walk(&cx, &set, Walk::Rollback).await?;
        if rollback
            .iter()
            .all(|r| r.outcome == StepOutcome::RolledBack)
        {
            status = RunStatus::RolledBack;
        }
    }

    let mut stats = RunStats {
        steps: n,
        apply_calls: cx.apply_calls(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        ..RunStats::default()
    };
    for r in reports.iter().chain(rollback.iter()) {
        match &r.outcome {
            StepOutcome::Unchanged => stats.unchanged += 1,
            StepOutcome::Created => stats.created += 1,
            StepOutcome::Updated => stats.updated += 1,
            StepOutcome::Adopted => stats.adopted += 1,
            StepOutcome::Failed { .. } => stats.failed += 1,
            StepOutcome::Skipped { .. } => stats.skipped += 1,
            StepOutcome::NotStarted => stats.not_started += 1,
            StepOutcome::RolledBack => stats.rolled_back += 1,
            StepOutcome::Destroyed | StepOutcome::Absent => stats.destroyed += 1,
            StepOutcome::Kept => stats.kept += 1,
        }
    }
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
            run_hooks(cx, i, &ctx, HookWhen::OnFailure, None).await.ok();
            cx.events.emit(Event::StepFailed {
                step: id.clone(),
                error: error.clone(),
            });
            (StepOutcome::Failed { error }, None, journal_error)
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

/// One step from observation to Ready.
async fn converge(
    cx: &Arc<RunCtx>,
    i: usize,
    ctx: &StepCtx,
    calls: &mut u32,
) -> Result<(StepOutcome, Outputs), Halt> {
    let spec = cx.graph.spec(i);
    let id = &spec.id;
    let step = spec.step.clone();
    let desired = step.fingerprint();
    let prior = cx.rec.step(id);
    let deps: Vec<StepId> = spec.deps.clone();

    let observed = {
        let _read = cx.reads_permit().await;
        cx.with_retries(id, "observe", || step.observe(ctx)).await?
    };
    cx.events.emit(Event::StepObserved {
        step: id.clone(),
        state: observed.label().to_owned(),
    });
    let known = prior.as_ref().filter(|p| p.may_exist());
    let ours_in_flight = known.is_some_and(|p| {
        p.is_owned() && matches!(p.phase, Phase::Intent { .. } | Phase::Applied { .. })
    });

    match observed {
        Observation::Ready {
            outputs,
            fingerprint,
        } => {
            let current = fingerprint.or_else(|| known.and_then(|p| p.fingerprint.clone()));
            match current {
                Some(fp) if fp != desired => {
                    if !step.supports_update() {
                        return Err(Halt::Failed(format!(
                            "drift: the inputs of `{id}` changed since it was applied (fingerprint {} -> {}) and a {} cannot be updated in place; replace needed (destroy it, then run up again)",
                            fp.short(),
                            desired.short(),
                            step.kind()
                        )));
                    }
                    mutate(cx, i, ctx, Action::Update, &deps, calls).await?;
                    let outputs = wait_ready(cx, i, ctx).await?;
                    finish(cx, i, ctx, outputs, true)
                        .await
                        .map(|o| (StepOutcome::Updated, o))
                }
                _ => {
                    let adopt = known.is_none_or(|p| p.owner.is_none());
                    if adopt {
                        cx.rec
                            .record(Record::Adopted {
                                run: cx.run,
                                step: id.clone(),
                                fingerprint: Some(desired.clone()),
                                deps: deps.clone(),
                                at_ms: now_ms(),
                            })
                            .await?;
                    }
                    let unchanged_record = known.is_some_and(|p| {
                        p.phase == Phase::Ready
                            && p.fingerprint.as_ref() == Some(&desired)
                            && p.outputs.as_ref() == Some(&outputs)
                    });
                    if !unchanged_record {
                        cx.rec
                            .record(Record::Ready {
                                run: cx.run,
                                step: id.clone(),
                                fingerprint: desired.clone(),
                                outputs: outputs.clone(),
                                at_ms: now_ms(),
                            })
                            .await?;
                    }
                    let outcome = if adopt {
                        StepOutcome::Adopted
                    } else if ours_in_flight {
                        // A create that a crash interrupted, found finished.
                        StepOutcome::Created
                    } else {
                        StepOutcome::Unchanged
                    };
                    Ok((outcome, outputs))
                }
            }
        }
        Observation::InProgress { .. } => {
            let adopt = known.is_none_or(|p| p.owner.is_none());
            if adopt {
                cx.rec
                    .record(Record::Adopted {
                        run: cx.run,
                        step: id.clone(),
                        fingerprint: None,
                        deps: deps.clone(),
                        at_ms: now_ms(),
                    })
                    .await?;
            }
            let outputs = wait_ready(cx, i, ctx).await?;
            let outputs = finish(cx, i, ctx, outputs, !adopt && ours_in_flight).await?;
            let outcome = if adopt {
                StepOutcome::Adopted
            } else if ours_in_flight {
                // A create that a crash interrupted, waited for.
                StepOutcome::Created
            } else {
                // Ready before, busy now (someone changed it): waited for, nothing applied.
                StepOutcome::Unchanged
            };
            Ok((outcome, outputs))
        }
        Observation::Absent => {
            mutate(cx, i, ctx, Action::Create, &deps, calls).await?;
            let outputs = wait_ready(cx, i, ctx).await?;
            finish(cx, i, ctx, outputs, true)
                .await
                .map(|o| (StepOutcome::Created, o))
        }
        Observation::Failed { message } => Err(Halt::Failed(format!(
            "the resource exists in a failed state: {message}"
        ))),
    }
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

/// A mutating call with its intent and result journaled, holding a concurrency slot.
async fn mutate(
    cx: &Arc<RunCtx>,
    i: usize,
    ctx: &StepCtx,
    action: Action,
    deps: &[StepId],
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
                deps: deps.to_vec(),
                at_ms: now_ms(),
            })
            .await?;
        cx.events.emit(Event::StepApplying {
            step: id.clone(),
            action,
            attempt,
        });
        cx.apply_calls.fetch_add(1, Ordering::Relaxed);
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
        match res {
            Ok(()) => {
                cx.rec
                    .record(Record::Applied {
                        run: cx.run,
                        step: id.clone(),
                        action,
                        ms: t.elapsed().as_millis() as u64,
                        at_ms: now_ms(),
                    })
                    .await?;
                drop(permit);
                return Ok(());
            }
            Err(e) => {
                cx.rec
                    .record(Record::ApplyFailed {
                        run: cx.run,
                        step: id.clone(),
                        action,
                        kind: e.kind(),
                        error: e.full_message(),
                        at_ms: now_ms(),
                    })
                    .await?;
                drop(permit);
                match cx.next_delay(id, &e, &mut delays, &mut attempt) {
                    Some(d) => cx.pause(d).await?,
                    None => return Err(Halt::Failed(format!("{action}: {}", e.full_message()))),
                }
            }
        }
    }
}

/// Waits for Ready under the engine's timeout, holding no slot; transient errors restart the
/// wait with backoff; periodic `StepWaiting` events carry the elapsed time.
async fn wait_ready(cx: &RunCtx, i: usize, ctx: &StepCtx) -> Result<Outputs, Halt> {
    let spec = cx.graph.spec(i);
    let limit = spec.timeout.unwrap_or(cx.config.wait_timeout);
    wait_until(cx, &spec.id, limit, || spec.step.wait(ctx), "ready").await
}

pub(crate) async fn wait_until<T, F, Fut>(
    cx: &RunCtx,
    id: &StepId,
    limit: Duration,
    mut f: F,
    goal: &str,
) -> Result<T, Halt>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let start = Instant::now();
    let deadline = start + limit;
    let mut delays = cx.config.retry.delays();
    let mut attempt = 1u32;
    cx.events.emit(Event::StepWaiting {
        step: id.clone(),
        elapsed: Duration::ZERO,
    });
    loop {
        let fut = f();
        tokio::pin!(fut);
        let mut ticker = tokio::time::interval_at(
            Instant::now() + cx.config.waiting_every,
            cx.config.waiting_every,
        );
        let res = loop {
            tokio::select! {
                // In this order, so that a result, a signal or the deadline wins over a tick.
                biased;
                r = &mut fut => break r,
                // A wait is read-only: dropping it on cancellation or timeout loses no work.
                _ = cx.cancel.cancelled() => return Err(Halt::Cancelled),
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Halt::Failed(format!(
                        "not {goal} after {}", human(limit)
                    )))
                }
                _ = ticker.tick() => cx.events.emit(Event::StepWaiting {
                    step: id.clone(),
                    elapsed: start.elapsed(),
                }),
            }
        };
        match res {
            Ok(v) => return Ok(v),
            Err(e) => match cx.next_delay(id, &e, &mut delays, &mut attempt) {
                Some(d) if Instant::now() + d < deadline => cx.pause(d).await?,
                _ => return Err(Halt::Failed(format!("waiting: {}", e.full_message()))),
            },
        }
    }
}

pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else if s > 0 {
        format!("{s} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

impl RunCtx {
    /// Observations are read-only but still bounded (four per mutating slot), so that a
    /// 10,000-step graph does not fire 10,000 reads at one API at once.
    pub(crate) async fn reads_permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.reads
            .acquire()
            .await
            .expect("the read semaphore is never closed")
    }
}
