//! The engine's settings and the errors that stop it.

use crate::id::StepId;
use crate::journal::JournalError;
use crate::retry::RetryPolicy;
use std::time::Duration;

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
    /// Steps whose resource `up` may replace (destroy, then make again) when the plan wants a
    /// setting only a new resource can have. Any other such change is refused; a resource this
    /// environment did not make is never replaced.
    pub replace: std::collections::BTreeSet<String>,
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
            replace: Default::default(),
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
    pub remove_adopted: bool,
    /// First find, by their marks, the resources of steps the journal does not know (a lost
    /// state): see [`Step::marked`](crate::Step::marked).
    pub discover: bool,
}
