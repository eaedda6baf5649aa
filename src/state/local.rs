//! State in a local directory: `<root>/<env>/` (or `<root>/sandbox/<env>/`) holding the plan
//! copy, `journal.jsonl`, the lock and each run's events, private to the user.

use super::{lock_error, EnvState, EnvStore, Held, Lease, Opened, RootStore};
use crate::exit::CliError;
use std::path::{Path, PathBuf};
use wbstack_engine::{
    force_unlock, read_holder, CancellationToken, EnvLock, Journal, JournalState, LockInfo,
    LockOptions,
};

/// A local state root.
pub(super) struct LocalRoot(pub(super) PathBuf);

/// One environment's local state directory.
pub(super) struct LocalEnv(PathBuf);

#[async_trait::async_trait]
impl RootStore for LocalRoot {
    fn describe(&self) -> String {
        self.0.display().to_string()
    }

    fn env(&self, name: &str, sandbox: bool) -> Result<EnvState, CliError> {
        let root = &self.0;
        let dir = if sandbox {
            root.join("sandbox").join(name)
        } else {
            root.join(name)
        };
        private(root, &dir);
        Ok(EnvState::new(LocalEnv(dir)))
    }

    async fn environments(&self) -> Result<Vec<(String, bool, EnvState)>, CliError> {
        let root = &self.0;
        let mut out = Vec::new();
        for (dir, sandbox) in [(root.to_path_buf(), false), (root.join("sandbox"), true)] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut dirs: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            dirs.sort();
            for d in dirs {
                if d.join("journal.jsonl").is_file() {
                    let name = d.file_name().unwrap_or_default().to_string_lossy().into();
                    out.push((name, sandbox, EnvState::new(LocalEnv(d))));
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl EnvStore for LocalEnv {
    fn location(&self) -> String {
        self.0.display().to_string()
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.0)
    }

    async fn plan_copy(&self) -> Result<Option<String>, CliError> {
        Ok(std::fs::read_to_string(self.0.join("plan.yaml")).ok())
    }

    async fn save_plan(&self, text: &str) -> Result<(), CliError> {
        let p = &self.0;
        std::fs::create_dir_all(p)
            .and_then(|_| std::fs::write(p.join("plan.yaml"), text))
            .map_err(|e| {
                CliError::environment(format!("cannot save the plan in {}", p.display())).because(e)
            })
    }

    async fn read_events(&self, run: u64) -> Result<Option<String>, CliError> {
        Ok(std::fs::read_to_string(events_file(&self.0, run)).ok())
    }

    async fn save_events(&self, _run: u64, _lines: &str) -> Result<(), CliError> {
        // Local events are written as they come (`eventlog.rs`).
        Ok(())
    }

    async fn has_journal(&self) -> Result<bool, CliError> {
        Ok(self.0.join("journal.jsonl").exists())
    }

    async fn read_state(&self) -> Result<JournalState, CliError> {
        Ok(Journal::read_state(&self.0.join("journal.jsonl"))?)
    }

    async fn holder(&self) -> Result<Option<LockInfo>, CliError> {
        Ok(read_holder(&self.0))
    }

    async fn lock(&self) -> Result<Held, CliError> {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let lock = EnvLock::acquire(&self.0, LockOptions::new(command)).map_err(lock_error)?;
        Ok(Box::new(lock))
    }

    async fn unlock(&self, lock_id: &str) -> Result<Option<LockInfo>, CliError> {
        force_unlock(&self.0, lock_id).map_err(lock_error)
    }

    async fn open_journal(&self) -> Result<Opened, CliError> {
        let (journal, state) = Journal::open(&self.0.join("journal.jsonl"))?;
        Ok(Opened {
            journal,
            state,
            _tmp: None,
        })
    }
}

#[async_trait::async_trait]
impl Lease for EnvLock {
    fn start_heartbeat(&mut self) -> CancellationToken {
        EnvLock::start_heartbeat(self)
    }
    async fn release(self: Box<Self>) {
        EnvLock::release(*self)
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
                // Best effort: a file another user owns stays as it is, and the run goes on.
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
