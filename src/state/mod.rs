//! Where environments keep their state: a local directory, or `s3://BUCKET/PREFIX` shared by a
//! team. The commands see one shape for both, the [`RootStore`] and [`EnvStore`] traits (the plan
//! copy, the journal, the lock, the run's events); `local.rs` and `s3.rs` implement them, and
//! [`Store::open`] is the one place that picks one.

mod local;
#[cfg(feature = "aws")]
mod s3;

use crate::exit::CliError;
use std::path::{Path, PathBuf};
use wbstack_engine::{CancellationToken, Journal, JournalState, LockError, LockInfo};

pub use local::events_file;

/// The default state location.
pub const DEFAULT: &str = ".wbstack";

/// A state store, opened: where every environment's state is.
#[async_trait::async_trait]
pub trait RootStore: Send + Sync {
    /// Where it is, for messages.
    fn describe(&self) -> String;
    /// One environment's state (`sandbox/NAME` for a sandbox).
    fn env(&self, name: &str, sandbox: bool) -> Result<EnvState, CliError>;
    /// The environments the store holds, with whether each is a sandbox.
    async fn environments(&self) -> Result<Vec<(String, bool, EnvState)>, CliError>;
}

/// One environment's state in a store.
#[async_trait::async_trait]
pub trait EnvStore: Send + Sync {
    /// Where it is, for messages.
    fn location(&self) -> String;
    /// A local directory for what a command keeps on this machine (the sandbox's cluster).
    fn local_dir(&self) -> Option<&Path>;
    /// The plan copy `up` saved, if any.
    async fn plan_copy(&self) -> Result<Option<String>, CliError>;
    /// Saves the plan copy.
    async fn save_plan(&self, text: &str) -> Result<(), CliError>;
    /// The events run `run` recorded, one JSON object per line.
    async fn read_events(&self, run: u64) -> Result<Option<String>, CliError>;
    /// Saves the events of run `run` where they are not written as they come.
    async fn save_events(&self, run: u64, lines: &str) -> Result<(), CliError>;
    /// Whether a journal exists.
    async fn has_journal(&self) -> Result<bool, CliError>;
    /// The state the journal holds, read-only; no journal is an empty state.
    async fn read_state(&self) -> Result<JournalState, CliError>;
    /// Who holds the environment, if anyone.
    async fn holder(&self) -> Result<Option<LockInfo>, CliError>;
    /// Takes the environment's lock for this command line, or fails at once naming the holder.
    async fn lock(&self) -> Result<Held, CliError>;
    /// Removes the lock held with `lock_id`; returns who held it.
    async fn unlock(&self, lock_id: &str) -> Result<Option<LockInfo>, CliError>;
    /// Opens the journal for writing (hold the lock).
    async fn open_journal(&self) -> Result<Opened, CliError>;

    /// The name plan copies are shown under in diagnostics.
    fn plan_copy_name(&self) -> String {
        format!("{}/plan.yaml", self.location())
    }
}

/// A held lock, local or remote.
#[async_trait::async_trait]
pub trait Lease: Send {
    /// Renews the lease while the command runs; the token fires if the lock is lost.
    fn start_heartbeat(&mut self) -> CancellationToken;
    /// Gives the lock up.
    async fn release(self: Box<Self>);
}

/// A held lock.
pub type Held = Box<dyn Lease>;

/// A state store.
pub struct Store(Box<dyn RootStore>);

/// One environment's state.
pub struct EnvState(Box<dyn EnvStore>);

impl std::ops::Deref for Store {
    type Target = dyn RootStore;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl std::ops::Deref for EnvState {
    type Target = dyn EnvStore;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl EnvState {
    pub(crate) fn new(s: impl EnvStore + 'static) -> Self {
        EnvState(Box::new(s))
    }
}

/// An open journal, with the local directory it lives in while the command runs.
pub struct Opened {
    pub journal: Journal,
    pub state: JournalState,
    pub(crate) _tmp: Option<tempfile::TempDir>,
}

impl Store {
    /// Opens the store at `location` (checking that a state bucket exists); nothing is created.
    pub async fn open(location: &str) -> Result<Store, CliError> {
        if !location.starts_with("s3://") {
            if location.contains("://") {
                return Err(CliError::invalid(format!(
                    "state location `{location}` is neither a local directory nor s3://BUCKET/PREFIX"
                )));
            }
            return Ok(Store(Box::new(local::LocalRoot(PathBuf::from(location)))));
        }
        #[cfg(feature = "aws")]
        return Ok(Store(Box::new(s3::S3Root::connect(location).await?)));
        #[cfg(not(feature = "aws"))]
        Err(CliError::invalid(format!(
            "state location `{location}`: this build has no AWS support (feature `aws`)"
        )))
    }
}

fn lock_error(e: LockError) -> CliError {
    match e {
        LockError::Held { .. } | LockError::OtherHolder { .. } => CliError::locked("").because(e),
        other => CliError::environment("").because(other),
    }
}
