//! State in S3 (`s3://BUCKET/PREFIX`, shared by a team): the state crate's bucket, journal
//! segments and lease lock behind the same traits as a local directory.

use super::{lock_error, EnvState, EnvStore, Held, Lease, Opened, RootStore};
use crate::exit::CliError;
use std::path::Path;
use wbstack_engine::{CancellationToken, JournalState, LockInfo, LockOptions};
use wbstack_state::{EnvStore as Env, S3Lock, StateBucket, StoreError};

fn store_error(e: StoreError) -> CliError {
    CliError::environment("error").because(e)
}

/// A state bucket and prefix.
pub(super) struct S3Root(StateBucket);

impl S3Root {
    /// Connects to the bucket `location` names (it must exist: it is never created).
    pub(super) async fn connect(location: &str) -> Result<S3Root, CliError> {
        let url = wbstack_state::S3Url::parse(location)
            .map_err(|e| CliError::invalid("error").because(e))?;
        let bucket = StateBucket::connect(url).await.map_err(store_error)?;
        for w in bucket.warnings() {
            eprintln!("warning: {w}");
        }
        Ok(S3Root(bucket))
    }
}

/// One environment's state in the bucket.
struct S3Env(Env);

#[async_trait::async_trait]
impl RootStore for S3Root {
    fn describe(&self) -> String {
        self.0.url().to_string()
    }

    fn env(&self, name: &str, sandbox: bool) -> Result<EnvState, CliError> {
        if sandbox {
            return Err(CliError::invalid(format!(
                "a sandbox keeps its emulated cluster on this machine: its state cannot live in {}; use a local --state-dir",
                self.0.url()
            )));
        }
        Ok(EnvState::new(S3Env(self.0.env(name))))
    }

    async fn environments(&self) -> Result<Vec<(String, bool, EnvState)>, CliError> {
        let names = self.0.environments().await.map_err(store_error)?;
        Ok(names
            .into_iter()
            .map(|n| {
                let e = EnvState::new(S3Env(self.0.env(&n)));
                (n, false, e)
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl EnvStore for S3Env {
    fn location(&self) -> String {
        self.0.location()
    }

    fn local_dir(&self) -> Option<&Path> {
        None
    }

    async fn plan_copy(&self) -> Result<Option<String>, CliError> {
        self.0.get_plan().await.map_err(store_error)
    }

    async fn save_plan(&self, text: &str) -> Result<(), CliError> {
        self.0.put_plan(text).await.map_err(store_error)
    }

    async fn read_events(&self, run: u64) -> Result<Option<String>, CliError> {
        self.0.get_events(run).await.map_err(store_error)
    }

    async fn save_events(&self, run: u64, lines: &str) -> Result<(), CliError> {
        self.0.put_events(run, lines).await.map_err(store_error)
    }

    async fn has_journal(&self) -> Result<bool, CliError> {
        self.0.has_journal().await.map_err(store_error)
    }

    async fn read_state(&self) -> Result<JournalState, CliError> {
        self.0.read_state().await.map_err(store_error)
    }

    async fn holder(&self) -> Result<Option<LockInfo>, CliError> {
        wbstack_state::read_holder(&self.0)
            .await
            .map_err(lock_error)
    }

    async fn lock(&self) -> Result<Held, CliError> {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let lock = S3Lock::acquire(&self.0, LockOptions::new(command))
            .await
            .map_err(lock_error)?;
        Ok(Box::new(lock))
    }

    async fn unlock(&self, lock_id: &str) -> Result<Option<LockInfo>, CliError> {
        wbstack_state::force_unlock(&self.0, lock_id)
            .await
            .map_err(lock_error)
    }

    async fn open_journal(&self) -> Result<Opened, CliError> {
        let (journal, state, tmp) = self.0.open_journal().await.map_err(store_error)?;
        Ok(Opened {
            journal,
            state,
            _tmp: Some(tmp),
        })
    }
}

#[async_trait::async_trait]
impl Lease for S3Lock {
    fn start_heartbeat(&mut self) -> CancellationToken {
        S3Lock::start_heartbeat(self)
    }
    async fn release(self: Box<Self>) {
        S3Lock::release(*self).await
    }
}
