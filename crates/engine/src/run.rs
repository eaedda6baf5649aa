//! What every task of one run shares: the graph, the journal (with the state folded from it),
//! the concurrency slots, retries, cancellation and the run's start and end records.

use crate::config::{EngineConfig, EngineError};
use crate::events::{Event, EventSink, Operation, RunStats, RunStatus};
use crate::graph::Graph;
use crate::id::{RunId, StepId};
use crate::journal::{now_ms, Journal, JournalError, JournalState, Record, StepState};
use crate::step::{ErrorKind, Outputs, StepCtx, StepError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

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
            | Record::Discovered { .. }
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
fn choose_run(state: &JournalState, operation: Operation) -> (RunId, bool) {
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

/// Everything a run starts from.
pub(crate) struct RunInput<'a> {
    pub config: &'a EngineConfig,
    pub events: &'a EventSink,
    pub graph: &'a Graph,
    pub journal: &'a Journal,
    pub state: JournalState,
    pub cancel: CancellationToken,
}

/// The context of a new run of `operation`: continues an unsuccessful run of the same
/// operation, otherwise a new number. Returns whether it resumes.
pub(crate) fn new_ctx(
    input: RunInput<'_>,
    operation: Operation,
) -> Result<(Arc<RunCtx>, bool), EngineError> {
    let c = input.config;
    if c.parallelism == 0 {
        return Err(EngineError::BadConfig);
    }
    let (run, resumed) = choose_run(&input.state, operation);
    let cx = RunCtx {
        graph: input.graph.clone(),
        config: c.clone(),
        events: input.events.clone(),
        rec: Recorder::new(input.journal.clone(), input.state),
        run,
        cancel: input.cancel,
        slots: Semaphore::new(c.parallelism),
        reads: Semaphore::new(c.parallelism.saturating_mul(4)),
        apply_calls: AtomicUsize::new(0),
    };
    Ok((Arc::new(cx), resumed))
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

    /// Counts one mutating call.
    pub(crate) fn count_call(&self) {
        self.apply_calls.fetch_add(1, Ordering::Relaxed);
    }
}
