//! Where environments keep their state: a local directory, or `s3://BUCKET/PREFIX` shared by a
//! team. The commands see one shape for both: the plan copy, the journal, the lock.

use crate::exit::CliError;
use std::path::{Path, PathBuf};
use wbstack_engine::{
    force_unlock, read_holder, CancellationToken, EnvLock, Journal, JournalState, LockError,
    LockInfo, LockOptions,
};

/// The default state location.
pub const DEFAULT: &str = ".wbstack";

/// A state store, opened.
pub enum Store {
    Local(PathBuf),
    #[cfg(feature = "aws")]
    S3(wbstack_state::StateBucket),
}

/// One environment's state in a store.
pub enum EnvState {
    Local(PathBuf),
    #[cfg(feature = "aws")]
    S3(wbstack_state::EnvStore),
}

/// A held lock, local or remote.
pub enum Held {
    Local(EnvLock),
    #[cfg(feature = "aws")]
    S3(wbstack_state::S3Lock),
}

/// An open journal, with the local directory it lives in while the command runs.
pub struct Opened {
    pub journal: Journal,
    pub state: JournalState,
    _tmp: Option<tempfile::TempDir>,
}

#[cfg(feature = "aws")]
fn store_error(e: wbstack_state::StoreError) -> CliError {
    CliError::environment("error").because(e)
}

fn lock_error(e: LockError) -> CliError {
    match e {
        LockError::Held { .. } | LockError::OtherHolder { .. } => CliError::locked("").because(e),
        other => CliError::environment("").because(other),
    }
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
            return Ok(Store::Local(PathBuf::from(location)));
        }
        #[cfg(feature = "aws")]
        {
            let url = wbstack_state::S3Url::parse(location)
                .map_err(|e| CliError::invalid("error").because(e))?;
            let bucket = wbstack_state::StateBucket::connect(url)
                .await
                .map_err(store_error)?;
            for w in bucket.warnings() {
                eprintln!("warning: {w}");
            }
            Ok(Store::S3(bucket))
        }
        #[cfg(not(feature = "aws"))]
        Err(CliError::invalid(format!(
            "state location `{location}`: this build has no AWS support (feature `aws`)"
        )))
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Store::Local(p) => p.display().to_string(),
            #[cfg(feature = "aws")]
            Store::S3(b) => b.url().to_string(),
        }
    }

    /// One environment's state (`sandbox/NAME` for a sandbox).
    pub fn env(&self, name: &str, sandbox: bool) -> Result<EnvState, CliError> {
        match self {
            Store::Local(root) => {
                let dir = if sandbox {
                    root.join("sandbox").join(name)
                } else {
                    root.join(name)
                };
                private(root, &dir);
                Ok(EnvState::Local(dir))
            }
            #[cfg(feature = "aws")]
            Store::S3(b) => {
                if sandbox {
                    return Err(CliError::invalid(format!(
                        "a sandbox keeps its emulated cluster on this machine: its state cannot live in {}; use a local --state-dir",
                        b.url()
                    )));
                }
                Ok(EnvState::S3(b.env(name)))
            }
        }
    }

    /// The environments the store holds, with whether each is a sandbox.
    pub async fn environments(&self) -> Result<Vec<(String, bool, EnvState)>, CliError> {
        match self {
            Store::Local(root) => {
                let mut out = Vec::new();
                for (dir, sandbox) in [(root.to_path_buf(), false), (root.join("sandbox"), true)] {
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    let mut dirs: Vec<_> =
                        entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
                    dirs.sort();
                    for d in dirs {
                        if d.join("journal.jsonl").is_file() {
                            let name = d.file_name().unwrap_or_default().to_string_lossy().into();
                            out.push((name, sandbox, EnvState::Local(d)));
                        }
                    }
                }
                Ok(out)
            }
            #[cfg(feature = "aws")]
            Store::S3(b) => Ok(b
                .environments()
                .await
                .map_err(store_error)?
                .into_iter()
                .map(|n| {
                    let e = EnvState::S3(b.env(&n));
                    (n, false, e)
                })
                .collect()),
        }
    }
}

impl EnvState {
    /// Where it is, for messages.
    pub fn location(&self) -> String {
        match self {
            EnvState::Local(p) => p.display().to_string(),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => s.location(),
        }
    }

    /// A local directory for what a command keeps on this machine (the sandbox's cluster).
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            EnvState::Local(p) => Some(p),
            #[cfg(feature = "aws")]
            EnvState::S3(_) => None,
        }
    }

    /// The plan copy `up` saved, if any.
    pub async fn plan_copy(&self) -> Result<Option<String>, CliError> {
        match self {
            EnvState::Local(p) => {
                let copy = p.join("plan.yaml");
                Ok(std::fs::read_to_string(copy).ok())
            }
            #[cfg(feature = "aws")]
            EnvState::S3(s) => s.get_plan().await.map_err(store_error),
        }
    }

    /// The name plan copies are shown under in diagnostics.
    pub fn plan_copy_name(&self) -> String {
        format!("{}/plan.yaml", self.location())
    }

    /// Saves the plan copy.
    pub async fn save_plan(&self, text: &str) -> Result<(), CliError> {
        match self {
            EnvState::Local(p) => std::fs::create_dir_all(p)
                .and_then(|_| std::fs::write(p.join("plan.yaml"), text))
                .map_err(|e| {
                    CliError::environment(format!("cannot save the plan in {}: {e}", p.display()))
                }),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => s.put_plan(text).await.map_err(store_error),
        }
    }

    /// The events run `run` recorded, one JSON object per line.
    pub async fn read_events(&self, run: u64) -> Result<Option<String>, CliError> {
        match self {
            EnvState::Local(p) => Ok(std::fs::read_to_string(events_file(p, run)).ok()),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => s.get_events(run).await.map_err(store_error),
        }
    }

    /// Saves the events of run `run` where they are not written as they come (in S3).
    pub async fn save_events(&self, run: u64, lines: &str) -> Result<(), CliError> {
        // Local events are written as they come; only the S3 store saves them here.
        let _ = (run, lines);
        match self {
            EnvState::Local(_) => Ok(()),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => s.put_events(run, lines).await.map_err(store_error),
        }
    }

    /// Whether a journal exists.
    pub async fn has_journal(&self) -> Result<bool, CliError> {
        match self {
            EnvState::Local(p) => Ok(p.join("journal.jsonl").exists()),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => s.has_journal().await.map_err(store_error),
        }
    }

    /// The state the journal holds, read-only; no journal is an empty state.
    pub async fn read_state(&self) -> Result<JournalState, CliError> {
        match self {
            EnvState::Local(p) => Ok(Journal::read_state(&p.join("journal.jsonl"))?),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => s.read_state().await.map_err(store_error),
        }
    }

    /// Who holds the environment, if anyone.
    pub async fn holder(&self) -> Result<Option<LockInfo>, CliError> {
        match self {
            EnvState::Local(p) => Ok(read_holder(p)),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => wbstack_state::read_holder(s).await.map_err(lock_error),
        }
    }

    /// Takes the environment's lock for this command line, or fails at once naming the holder.
    pub async fn lock(&self) -> Result<Held, CliError> {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let opts = LockOptions::new(command);
        match self {
            EnvState::Local(p) => EnvLock::acquire(p, opts)
                .map(Held::Local)
                .map_err(lock_error),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => wbstack_state::S3Lock::acquire(s, opts)
                .await
                .map(Held::S3)
                .map_err(lock_error),
        }
    }

    /// Removes the lock held with `lock_id`; returns who held it.
    pub async fn unlock(&self, lock_id: &str) -> Result<Option<LockInfo>, CliError> {
        match self {
            EnvState::Local(p) => force_unlock(p, lock_id).map_err(lock_error),
            #[cfg(feature = "aws")]
            EnvState::S3(s) => wbstack_state::force_unlock(s, lock_id)
                .await
                .map_err(lock_error),
        }
    }

    /// Opens the journal for writing (hold the lock).
    pub async fn open_journal(&self) -> Result<Opened, CliError> {
        match self {
            EnvState::Local(p) => {
                let (journal, state) = Journal::open(&p.join("journal.jsonl"))?;
                Ok(Opened {
                    journal,
                    state,
                    _tmp: None,
                })
            }
            #[cfg(feature = "aws")]
            EnvState::S3(s) => {
                let (journal, state, tmp) = s.open_journal().await.map_err(store_error)?;
                Ok(Opened {
                    journal,
                    state,
                    _tmp: Some(tmp),
                })
            }
        }
    }
}

impl Held {
    /// Renews the lease while the command runs; the token fires if the lock is lost.
    pub fn start_heartbeat(&mut self) -> CancellationToken {
        match self {
            Held::Local(l) => l.start_heartbeat(),
            #[cfg(feature = "aws")]
            Held::S3(l) => l.start_heartbeat(),
        }
    }

    /// Gives the lock up.
    pub async fn release(self) {
        match self {
            Held::Local(l) => l.release(),
            #[cfg(feature = "aws")]
            Held::S3(l) => l.release().await,
        }
    }
}

/// Where a local state directory keeps the events of run `run`.
pub fn events_file(dir: &Path, run: u64) -> PathBuf {
    dir.join("runs").join(format!("run-{run}.events.jsonl"))
}

/// Makes state an earlier version left readable by others private: the state root, the
/// environment's directory (0700) and its files (0600). What is new is made so by the umask.
fn private(root: &Path, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode: u32| {
        if let Ok(m) = std::fs::symlink_metadata(p) {
            if !m.file_type().is_symlink() && m.permissions().mode() & 0o777 != mode {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
            }
        }
    };
    let mut dirs = vec![root.to_path_buf()];
    if let Some(parent) = dir.parent().filter(|p| *p != root) {
        dirs.push(parent.to_path_buf());
    }
    dirs.push(dir.to_path_buf());
    for d in &dirs {
        set(d, 0o700);
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_file() {
            set(&p, 0o600);
        }
    }
}
