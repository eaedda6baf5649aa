//! The wbstack execution engine: a generic, crash-safe DAG executor.
//!
//! It knows nothing of AWS or Kubernetes. Every resource is a [`Step`] with an id, dependencies
//! and a [`Fingerprint`] of its inputs; the [`Engine`] observes, applies what is absent or
//! changed, waits, and records each mutation in a [`Journal`] before and after it happens. A
//! converged graph re-run makes no mutating call; an interrupted run resumes from the journal;
//! a failed one can be rolled back; teardown destroys only what the environment created. One
//! process at a time holds an environment ([`EnvLock`]). The engine emits [`Event`]s and never
//! prints.
//!
//! One walk over the DAG runs forwards for `up` and backwards for teardown and rollback; what
//! `up` does with each step is the pure [`decide`], which `plan` previews too.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wbstack_engine::{Engine, EngineConfig, EnvLock, EventSink, Graph, Journal, LockOptions, StepSpec};
//! # async fn demo(bucket: Arc<dyn wbstack_engine::Step>, db: Arc<dyn wbstack_engine::Step>) -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::path::Path::new(".wbstack/dev");
//! let _lock = EnvLock::acquire(dir, LockOptions::new("wbstack up"))?;
//! let graph = Graph::new(vec![
//!     StepSpec::new("bucket", &[], bucket),
//!     StepSpec::new("db", &["bucket"], db),
//! ])?;
//! let (journal, state) = Journal::open(&dir.join("journal.jsonl"))?;
//! let engine = Engine::new(EngineConfig::default(), EventSink::new());
//! let report = engine.up(&graph, &journal, state, Default::default()).await?;
//! println!("{:?}", report.status);
//! # Ok(()) }
//! ```

mod config;
mod decide;
mod discover;
mod down;
mod engine;
mod events;
mod graph;
mod hooks;
mod id;
mod journal;
mod lock;
mod report;
mod retry;
mod run;
mod secret;
mod step;
mod up;
mod wait;
mod walk;

pub use config::{DownOptions, EngineConfig, EngineError, FailurePolicy};
pub use decide::{decide, decision, Allowed, Decision, Found};
pub use engine::Engine;
pub use events::{Event, EventLog, EventSink, Operation, RunStats, RunStatus, Stream};
pub use graph::{Graph, GraphError, StepSpec};
pub use hooks::{env_name, hook_env, Hook, HookWhen};
pub use id::{Fingerprint, RunId, StepId};
pub use journal::{
    compact_file, fold_records, header_line, now_ms, snapshot_lines, Journal, JournalError,
    JournalOptions, JournalState, MirrorFn, Ownership, Phase, Record, RunSummary, StepState,
    WriteFn, JOURNAL_FORMAT, JOURNAL_VERSION,
};
pub use lock::{
    force_unlock, read_holder, this_host, this_host_id, Clock, EnvLock, LockError, LockInfo,
    LockOptions,
};
pub use report::{RunReport, StepOutcome, StepReport};
pub use retry::RetryPolicy;
pub use secret::{redact, register_redaction, Secret, SecretRef};
pub use step::{Action, Change, ErrorKind, Left, Observation, Outputs, Step, StepCtx, StepError};
pub use tokio_util::sync::CancellationToken;
