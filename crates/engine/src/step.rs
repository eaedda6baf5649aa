//! The Step contract: what the engine calls for every resource.

use crate::events::{Event, EventSink};
use crate::id::{Fingerprint, RunId, StepId};
use crate::secret::redact;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a step publishes once Ready: endpoints, names, ARNs, secret *references*. Journaled as is,
/// so it must never hold a secret value (put a [`crate::Secret`] in it: it serializes as a reference).
pub type Outputs = BTreeMap<String, serde_json::Value>;

/// The result of a read-only look at a resource.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// Nothing there: the step must be applied.
    Absent,
    /// Being created or changed (by us, or by whoever made it).
    InProgress { detail: Option<String> },
    /// Exists and is usable. `fingerprint` is the one recorded on the resource itself, if the
    /// resource can carry it (a tag, an annotation); otherwise the engine uses the journal's.
    Ready {
        outputs: Outputs,
        fingerprint: Option<Fingerprint>,
    },
    /// Exists in a terminal failed state.
    Failed { message: String },
}

/// One setting whose live value is not what the plan wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Change {
    /// The setting, as the plan or the provider names it (`instance_class`, `spec.values.host`).
    pub field: String,
    /// The live value (`(none)` when unset).
    pub from: String,
    /// The value the plan wants.
    pub to: String,
    /// Whether only a new resource can have it: `up` refuses such a change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaces: bool,
}

impl Change {
    /// A change made in place.
    pub fn in_place(field: &str, from: impl ToString, to: impl ToString) -> Change {
        Change {
            field: field.to_owned(),
            from: from.to_string(),
            to: to.to_string(),
            replaces: false,
        }
    }

    /// A change only a replacement makes.
    pub fn replacing(field: &str, from: impl ToString, to: impl ToString) -> Change {
        Change {
            replaces: true,
            ..Change::in_place(field, from, to)
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} -> {}", self.field, self.from, self.to)?;
        if self.replaces {
            write!(f, " (needs a new resource)")?;
        }
        Ok(())
    }
}

impl Observation {
    /// Ready with outputs and no fingerprint of its own.
    pub fn ready(outputs: Outputs) -> Self {
        Observation::Ready {
            outputs,
            fingerprint: None,
        }
    }

    /// A short word for events and reports.
    pub fn label(&self) -> &'static str {
        match self {
            Observation::Absent => "absent",
            Observation::InProgress { .. } => "in-progress",
            Observation::Ready { .. } => "ready",
            Observation::Failed { .. } => "failed",
        }
    }
}

/// Whether `apply` should create the resource or update it in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Rollback,
    Destroy,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Rollback => "rollback",
            Action::Destroy => "destroy",
        })
    }
}

/// How an error should be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Worth retrying: throttling, 5xx, a dropped connection.
    Transient,
    /// Retrying will not help: validation, access denied, a failed resource, drift.
    Permanent,
}

/// An error from a step. The message is redacted of registered secret values when it is made.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StepError {
    /// A transient error: the engine retries it with backoff.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// A permanent error: the step fails.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StepError {
            kind,
            message: redact(&message.into()),
            retry_after: None,
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Asks the engine to wait at least this long before retrying (a `Retry-After` header).
    pub fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The delay the remote side asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message followed by its chain of causes, redacted.
    pub fn full_message(&self) -> String {
        let mut s = self.message.clone();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = cur {
            let m = e.to_string();
            if !s.contains(&m) {
                s.push_str(": ");
                s.push_str(&m);
            }
            cur = e.source();
        }
        redact(&s)
    }
}

/// Everything a step gets when the engine calls it.
#[derive(Clone)]
pub struct StepCtx {
    step: StepId,
    run: RunId,
    deps: Arc<BTreeMap<StepId, Outputs>>,
    previous: Option<Outputs>,
    attempted: bool,
    cancel: CancellationToken,
    events: EventSink,
    /// Set by a `destroy` that left its resource in place: why, and the environment it was
    /// handed to, if one.
    left: Arc<std::sync::Mutex<Option<Left>>>,
}

/// A resource a teardown left in place instead of destroying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Left {
    /// Why, for the run's output.
    pub reason: String,
    /// The environment that now owns it, when it was handed over.
    pub to: Option<String>,
}

impl StepCtx {
    /// Builds a context. The engine does this; tests of single steps may too.
    pub fn new(
        step: StepId,
        run: RunId,
        deps: BTreeMap<StepId, Outputs>,
        previous: Option<Outputs>,
        cancel: CancellationToken,
        events: EventSink,
    ) -> Self {
        StepCtx {
            step,
            run,
            deps: Arc::new(deps),
            previous,
            attempted: false,
            cancel,
            events,
            left: Default::default(),
        }
    }

    /// Marks that the journal records this environment creating the resource (an earlier
    /// `apply`, perhaps interrupted): a half-made resource found now is ours to finish.
    pub fn with_attempted(mut self, attempted: bool) -> Self {
        self.attempted = attempted;
        self
    }

    /// Whether this environment has tried to create the resource before (see
    /// [`StepCtx::with_attempted`]). Steps use it to tell their own half-made resource from
    /// someone else's.
    pub fn attempted(&self) -> bool {
        self.attempted
    }

    /// The step being run.
    pub fn step(&self) -> &StepId {
        &self.step
    }

    /// The run this call belongs to.
    pub fn run(&self) -> RunId {
        self.run
    }

    /// Outputs of every dependency, by id.
    pub fn deps(&self) -> &BTreeMap<StepId, Outputs> {
        &self.deps
    }

    /// One output of one dependency.
    pub fn dep_output(&self, dep: &str, key: &str) -> Option<&serde_json::Value> {
        // A null output is one the resource did not have when it was read: missing.
        self.deps
            .get(&StepId::new(dep))
            .and_then(|o| o.get(key))
            .filter(|v| !v.is_null())
    }

    /// One string output of one dependency.
    pub fn dep_str(&self, dep: &str, key: &str) -> Option<&str> {
        self.dep_output(dep, key).and_then(|v| v.as_str())
    }

    /// One string output of one dependency, or a permanent error naming it.
    pub fn need_str(&self, dep: &str, key: &str) -> Result<&str, StepError> {
        self.dep_str(dep, key)
            .ok_or_else(|| StepError::permanent(format!("step {dep} has no output {key}")))
    }

    /// A secret reference one dependency published, or a permanent error naming it.
    pub fn need_secret(&self, dep: &str, key: &str) -> Result<crate::SecretRef, StepError> {
        let v = self
            .dep_output(dep, key)
            .ok_or_else(|| StepError::permanent(format!("step {dep} has no output {key}")))?;
        crate::SecretRef::from_output(v).ok_or_else(|| {
            StepError::permanent(format!("output {key} of {dep} is not a secret reference"))
        })
    }

    /// The outputs this step recorded last time it was Ready (for destroy and update).
    pub fn previous(&self) -> Option<&Outputs> {
        self.previous.as_ref()
    }

    /// Cancelled when the run is interrupted. Waits must return promptly when it fires.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Says that `destroy` left the resource in place (`to`: the environment it was handed to),
    /// so that the teardown reports it as left, not destroyed.
    pub fn leave(&self, reason: impl Into<String>, to: Option<String>) {
        *self.left.lock().unwrap_or_else(|e| e.into_inner()) = Some(Left {
            reason: redact(&reason.into()),
            to,
        });
    }

    /// What [`StepCtx::leave`] said, if it was called.
    pub fn left(&self) -> Option<Left> {
        self.left.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reports progress ("3/5 replicas ready") as an event.
    pub fn progress(&self, message: impl Into<String>) {
        self.events.emit(Event::StepProgress {
            step: self.step.clone(),
            message: redact(&message.into()),
        });
    }
}

impl fmt::Debug for StepCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepCtx")
            .field("step", &self.step)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

/// One resource, as the engine sees it.
///
/// # Contract
/// - `observe` is read-only and cheap enough to call on every run.
/// - `apply` is idempotent: names and client tokens are deterministic, so a repeat after a crash
///   finds and adopts what the first call made instead of making a second one.
/// - `wait` returns once the resource is Ready, with its outputs. It must return (with any error)
///   soon after `ctx.cancel()` fires. The engine owns the timeout; steps set none of their own.
/// - `rollback` and `destroy` are idempotent, tolerate cancellation part-way, and treat an absent
///   resource as done, including one whose `apply` never ran.
/// - A resource this environment left half-made (an `apply` of several calls interrupted part-way,
///   see [`StepCtx::attempted`]) is observed as `Absent`, so that `apply` completes it; reporting
///   it `InProgress` would wait for something nobody is doing.
#[async_trait]
pub trait Step: Send + Sync + 'static {
    /// A short kind for display: `aws.s3.bucket`, `k8s.secret`.
    fn kind(&self) -> &str;

    /// A hash of the desired inputs.
    fn fingerprint(&self) -> Fingerprint;

    /// Whether the resource `observe` found carries this environment's mark (its tags, its
    /// label): a teardown without a journal (`down --discover`) destroys only those. The default,
    /// false, leaves a step's resource to a journaled teardown.
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        Ok(false)
    }

    /// For a teardown without a journal, when `observe` finds nothing by the resource's name:
    /// a resource of this step that carries the environment's mark but cannot be found by its
    /// name (a KMS key whose alias was never made, or already deleted), with the outputs its
    /// `destroy` needs to find it. The default finds nothing.
    async fn unnamed(&self, _ctx: &StepCtx) -> Result<Option<Outputs>, StepError> {
        Ok(None)
    }

    /// Whether the resource is shared by several environments (a cluster-wide operator, its
    /// CRD): teardown then calls `destroy` even where this environment adopted it, and `destroy`
    /// itself removes it only if it is now this environment's and nothing else needs it (an
    /// environment that leaves a shared resource for another hands it over).
    fn shared(&self) -> bool {
        false
    }

    /// Whether a changed fingerprint can be applied in place (`apply(Update)`); if not, a change
    /// is reported as drift that needs a replacement.
    fn supports_update(&self) -> bool {
        false
    }

    /// For a resource `observe` found Ready: each setting whose live value differs from what the
    /// plan wants, field by field (`plan` shows them; `up` refuses to go on when one of them
    /// needs a new resource). The default knows no fields: the fingerprint alone tells a change.
    async fn changes(&self, _ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        Ok(Vec::new())
    }

    /// Looks at the resource without changing anything.
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError>;

    /// Starts creating (`Action::Create`) or updating (`Action::Update`) the resource.
    async fn apply(&self, ctx: &StepCtx, action: Action) -> Result<(), StepError>;

    /// Waits until Ready. The default polls `observe` with a growing interval (50 ms to 2 s).
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => return Ok(outputs),
                Observation::Failed { message } => return Err(StepError::permanent(message)),
                Observation::Absent | Observation::InProgress { .. } => {}
            }
            tokio::select! {
                _ = ctx.cancel().cancelled() => return Err(StepError::transient("wait cancelled")),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 3 / 2).min(Duration::from_secs(2));
        }
    }

    /// Undoes what this run's `apply` made. Defaults to `destroy`.
    async fn rollback(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.destroy(ctx).await
    }

    /// Starts deleting the resource; absent counts as done.
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError>;

    /// Waits until the resource is gone after `destroy` or `rollback`. The default polls
    /// `observe` with a growing interval until Absent.
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let mut delay = Duration::from_millis(50);
        loop {
            if self.observe(ctx).await? == Observation::Absent {
                return Ok(());
            }
            tokio::select! {
                _ = ctx.cancel().cancelled() => return Err(StepError::transient("wait cancelled")),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 3 / 2).min(Duration::from_secs(2));
        }
    }
}
