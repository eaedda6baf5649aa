//! The engine: configuration, the shared context of a run, and the entry points `up` and `down`.

use crate::events::{Event, EventSink, Operation, RunStats, RunStatus};
use crate::graph::Graph;
use crate::id::{RunId, StepId};
use crate::journal::{now_ms, Journal, JournalError, JournalState, Record, StepState};
use crate::report::RunReport;
use crate::retry::RetryPolicy;
use crate::step::{ErrorKind, Outputs, StepCtx, StepError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What to do with what a failed run created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Leave it, so `resume` can continue (the default).
    #[default]
    Keep,
    /// Undo what this run created, in reverse dependency order.
    Rollback,
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Concurrent mutating calls (apply, rollback, destroy) at most. Waits hold no slot.
    pub parallelism: usize,
    /// How long a step may take to become Ready (or gone) after its mutating call.
    pub wait_timeout: Duration,
    /// How long one call (observe, apply, destroy) may take before it counts as a transient failure.
    pub call_timeout: Duration,
    pub retry: RetryPolicy,
    pub failure_policy: FailurePolicy,
    /// How often a `StepWaiting` event repeats while a step waits.
    pub waiting_every: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            parallelism: 16,
            wait_timeout: Duration::from_secs(30 * 60),
            call_timeout: Duration::from_secs(5 * 60),
            retry: RetryPolicy::default(),
            failure_policy: FailurePolicy::Keep,
            waiting_every: Duration::from_secs(10),
        }
    }
}

/// Errors that stop the engine itself (step failures are in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("failed to record progress in the journal")]
    Journal(#[from] JournalError),
    #[error("the journal records resources of steps that are not in this plan: {}; teardown cannot destroy them without their definitions", list(.0))]
    UnknownSteps(Vec<StepId>),
    #[error("parallelism must be at least 1")]
    BadConfig,
}

fn list(ids: &[StepId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Options for `down`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DownOptions {
    /// Also destroy adopted (pre-existing) resources.
    pub force: bool,
}

/// Runs step graphs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    config: EngineConfig,
    events: EventSink,
}

impl Engine {
    /// An engine with settings and an event sink.
    pub fn new(config: EngineConfig, events: EventSink) -> Self {
        Engine { config, events }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The event sink.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    /// Brings every step of `graph` to Ready: observe, apply what is absent or changed, wait,
    /// record. Continues an unfinished run of the journal (that is what `resume` is).
    /// `cancel` is the signal token: when it fires no new step starts, in-flight mutating calls
    /// finish and are journaled, waits stop, and the run ends `Cancelled`.
    pub async fn up(
        &self,
        graph: &Graph,
        journal: &Journal,
        state: JournalState,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        crate::up::run_up(self, graph, journal, state, cancel).await
    }

    /// Destroys what this environment owns (everything recorded, with `force`), dependents
    /// before their dependencies. Journaled, so an interrupted teardown resumes.
    pub async fn down(
        &self,
        graph: &Graph,
        journal: &Journal,
        state: JournalState,
        opts: DownOptions,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        crate::teardown::run_down(self, graph, journal, state, opts, cancel).await
    }
}

/// The journal plus the state folded from it, kept in step.
pub(crate) struct Recorder {
    journal: Journal,
    state: Mutex<JournalState>,
}

impl Recorder {
    pub(crate) fn new(journal: Journal, state: JournalState) -> Self {
        Recorder {
            journal,
            state: Mutex::new(state),
        }
    }

    /// Journals a record. Intents and run boundaries wait until they are on disk; results and
    /// readiness are queued behind them (a resume repairs their loss by observing), so a step on
    /// the critical path pays for one fsync, not three.
    pub(crate) async fn record(&self, rec: Record) -> Result<(), JournalError> {
        match rec {
            Record::Intent { .. }
            | Record::RunStarted { .. }
            | Record::RunFinished { .. }
            | Record::Header { .. }
            | Record::Snapshot { .. } => self.journal.append(&rec).await?,
            Record::Applied { .. }
            | Record::ApplyFailed { .. }
            | Record::Adopted { .. }
            | Record::Ready { .. }
            | Record::StepFailed { .. } => self.journal.append_queued(&rec)?,
        }
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(&rec);
        Ok(())
    }

    pub(crate) fn step(&self, id: &StepId) -> Option<StepState> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .steps
            .get(id)
            .cloned()
    }

    pub(crate) fn snapshot(&self) -> JournalState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why a step stopped short of its goal.
pub(crate) enum Halt {
    Failed(String),
    Cancelled,
    Journal(JournalError),
}

impl From<JournalError> for Halt {
    fn from(e: JournalError) -> Self {
        Halt::Journal(e)
    }
}

/// What every task of one run shares.
pub(crate) struct RunCtx {
    pub(crate) graph: Graph,
    pub(crate) config: EngineConfig,
    pub(crate) events: EventSink,
    pub(crate) rec: Recorder,
    pub(crate) run: RunId,
    pub(crate) cancel: CancellationToken,
    pub(crate) slots: Semaphore,
    pub(crate) reads: Semaphore,
    pub(crate) apply_calls: AtomicUsize,
}

impl RunCtx {
    pub(crate) fn ctx_for(&self, i: usize, deps: BTreeMap<StepId, Outputs>) -> StepCtx {
        let id = self.graph.spec(i).id.clone();
        let recorded = self.rec.step(&id);
        let attempted = recorded
            .as_ref()
            .is_some_and(|s| s.is_owned() && s.may_exist());
        let previous = recorded.and_then(|s| s.outputs);
        StepCtx::new(
            id,
            self.run,
            deps,
            previous,
            self.cancel.child_token(),
            self.events.clone(),
        )
        .with_attempted(attempted)
    }

    /// Calls `f` until it succeeds, fails permanently, runs out of attempts, or the run is
    /// cancelled. Each call is bounded by the call timeout.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        step: &StepId,
        what: &str,
        mut f: F,
    ) -> Result<T, Halt>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StepError>>,
    {
        let mut delays = self.config.retry.delays();
        let mut attempt = 1u32;
        loop {
            let res = match tokio::time::timeout(self.config.call_timeout, f()).await {
                Ok(r) => r,
                Err(_) => Err(StepError::transient(format!(
                    "{what} did not answer within {} s",
                    self.config.call_timeout.as_secs()
                ))),
            };
            match res {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if let Some(d) = self.next_delay(step, &e, &mut delays, &mut attempt) {
                        self.pause(d).await?;
                    } else {
                        return Err(Halt::Failed(format!("{what}: {}", e.full_message())));
                    }
                }
            }
        }
    }

    /// The delay before the next attempt, or None if the error must not be retried.
    pub(crate) fn next_delay(
        &self,
        step: &StepId,
        e: &StepError,
        delays: &mut impl Iterator<Item = Duration>,
        attempt: &mut u32,
    ) -> Option<Duration> {
        if e.kind() != ErrorKind::Transient {
            return None;
        }
        let d = delays.next()?;
        let d = e.retry_after().map_or(d, |r| r.max(d));
        *attempt += 1;
        self.events.emit(Event::StepRetrying {
            step: step.clone(),
            attempt: *attempt,
            delay: d,
            error: crate::secret::redact(&e.full_message()),
        });
        Some(d)
    }

    /// Sleeps unless cancelled.
    pub(crate) async fn pause(&self, d: Duration) -> Result<(), Halt> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Halt::Cancelled),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    pub(crate) async fn start_run(
        &self,
        operation: Operation,
        resumed: bool,
    ) -> Result<(), JournalError> {
        self.events.emit(Event::RunStarted {
            run: self.run,
            operation,
            steps: self.graph.len(),
            resumed,
        });
        self.rec
            .record(Record::RunStarted {
                run: self.run,
                operation,
                resumed,
                host: gethostname::gethostname().to_string_lossy().into_owned(),
                pid: std::process::id(),
                at_ms: now_ms(),
            })
            .await
    }

    pub(crate) async fn finish_run(
        &self,
        operation: Operation,
        status: RunStatus,
        stats: &RunStats,
    ) -> Result<(), JournalError> {
        self.rec
            .record(Record::RunFinished {
                run: self.run,
                operation,
                status,
                stats: stats.clone(),
                at_ms: now_ms(),
            })
            .await?;
        self.events.emit(Event::RunFinished {
            run: self.run,
            operation,
            status,
            stats: stats.clone(),
        });
        Ok(())
    }

    pub(crate) fn apply_calls(&self) -> usize {
        self.apply_calls.load(Ordering::Relaxed)
    }
}

/// The run number for a new invocation of `operation`: an unsuccessful run of the same operation
/// is continued (so rollback covers everything it created), otherwise a new number.
pub(crate) fn choose_run(state: &JournalState, operation: Operation) -> (RunId, bool) {
    match state.last_run() {
        Some(r)
            if r.operation == operation
                && matches!(
                    r.status,
                    None | Some(RunStatus::Failed) | Some(RunStatus::Cancelled)
                ) =>
        {
            (r.run, true)
        }
        _ => (state.next_run_id(), false),
    }
}

pub(crate) fn new_ctx(
    engine: &Engine,
    graph: &Graph,
    journal: &Journal,
    state: JournalState,
    run: RunId,
    cancel: CancellationToken,
) -> Result<Arc<RunCtx>, EngineError> {
    if engine.config.parallelism == 0 {
        return Err(EngineError::BadConfig);
    }
    Ok(Arc::new(RunCtx {
        graph: graph.clone(),
        config: engine.config.clone(),
        events: engine.events.clone(),
        rec: Recorder::new(journal.clone(), state),
        run,
        cancel,
        slots: Semaphore::new(engine.config.parallelism),
        reads: Semaphore::new(engine.config.parallelism.saturating_mul(4)),
        apply_calls: AtomicUsize::new(0),
    }))
}
