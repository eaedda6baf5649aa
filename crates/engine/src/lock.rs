//! One holder per environment: a lease with a heartbeat, backed by an OS file lock.
//!
//! The holder keeps an exclusive `flock` on `<dir>/lock` for as long as it lives and describes
//! itself in `<dir>/lock.json` (host, pid, command, start time, last renewal, lease). Another
//! process on the same host that can take the `flock` knows the holder is dead (the kernel drops
//! the lock with the process) and takes over. A holder on another host (a shared state directory)
//! is respected until its lease expires without renewal. `force_unlock` removes both files, given
//! the holder's lock id.

use crate::journal::now_ms;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Who holds an environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started_at_ms: u64,
    pub renewed_at_ms: u64,
    pub lease_ms: u64,
    /// Distinguishes this holder from a later one with the same pid: the lock id `unlock`
    /// asks for.
    pub token: String,
    /// This machine's boot and process namespace: two hosts, or two containers, with one name
    /// and a pid in common are not taken for one.
    #[serde(default)]
    pub host_id: String,
}

impl LockInfo {
    /// Whether the lease ran out at `now_ms` without renewal.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms > self.renewed_at_ms.saturating_add(self.lease_ms)
    }
}

impl LockInfo {
    /// A new holder on this host: this process, running `command`, from `now_ms`.
    pub fn this_process(command: &str, lease: Duration, now_ms: u64) -> LockInfo {
        LockInfo {
            host: this_host(),
            pid: std::process::id(),
            command: command.to_owned(),
            started_at_ms: now_ms,
            renewed_at_ms: now_ms,
            lease_ms: lease.as_millis() as u64,
            token: format!("{:016x}", rand::random::<u64>()),
            host_id: this_host_id(),
        }
    }

    /// Whether the holder was a process on this host that no longer runs: its lease need not be
    /// waited out. (Linux only; elsewhere a holder is waited out.)
    pub fn is_gone_from_this_host(&self) -> bool {
        cfg!(target_os = "linux")
            && self.host == this_host()
            && !self.host_id.is_empty()
            && self.host_id == this_host_id()
            && self.pid != 0
            && process_gone(self.pid)
    }
}

/// Whether a process of this machine has ended: no longer listed, or a zombie (ended, not yet
/// reaped by its parent, as under a container's PID 1 that does not reap).
pub(crate) fn process_gone(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
    else {
        return true;
    };
    // `pid (comm) state ...`: the state follows the last ')' (a command may hold parentheses).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z') | Some('X'))
}

/// This boot of this machine and this process namespace (Linux: the kernel's boot id and the
/// pid namespace), or empty where they cannot be read.
pub fn this_host_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
    if boot.trim().is_empty() || ns.as_os_str().is_empty() {
        return String::new();
    }
    format!("{}/{}", boot.trim(), ns.display())
}

/// This host's name, as holders record it.
pub fn this_host() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} running `{}` since {} (lock id {}, lease {} s, renewed {} ms after start)",
            self.pid,
            self.host,
            self.command,
            format_ms(self.started_at_ms),
            self.token,
            self.lease_ms / 1000,
            self.renewed_at_ms.saturating_sub(self.started_at_ms)
        )
    }
}

fn format_ms(ms: u64) -> String {
    // RFC 3339 in UTC without pulling a date crate into the engine.
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Wall-clock milliseconds that advance with tokio's clock, so lease logic can be tested with a
/// paused clock. Anchored to the system time when made.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    anchor_ms: u64,
    anchor: tokio::time::Instant,
}

impl Clock {
    /// A clock anchored now.
    pub fn new() -> Self {
        Clock {
            anchor_ms: now_ms(),
            anchor: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.anchor_ms + (tokio::time::Instant::now() - self.anchor).as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("environment is locked by {holder}; if that process is gone for good, run `unlock --lock-id {}`", holder.token)]
    Held { holder: Box<LockInfo> },
    #[error("the lock is held by {holder}, not by lock id `{given}`: nothing was removed")]
    OtherHolder {
        holder: Box<LockInfo>,
        given: String,
    },
    #[error("failed to use the lock in {location}: {message}")]
    Store { location: String, message: String },
    #[error("failed to use lock files in {dir}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Options for taking the lock.
#[derive(Clone, Debug)]
pub struct LockOptions {
    /// The command line the holder runs, for the message others see.
    pub command: String,
    /// How long the lease lasts without renewal (default 60 s); renewed every third of it.
    pub lease: Duration,
    pub clock: Clock,
}

impl LockOptions {
    /// Default lease for a command.
    pub fn new(command: impl Into<String>) -> Self {
        LockOptions {
            command: command.into(),
            lease: Duration::from_secs(60),
            clock: Clock::new(),
        }
    }
}

/// A held lock. Dropping it releases the lock.
pub struct EnvLock {
    dir: PathBuf,
    file: Option<File>,
    info: LockInfo,
    clock: Clock,
    heartbeat: Option<JoinHandle<()>>,
    lost: CancellationToken,
}

impl std::fmt::Debug for EnvLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvLock")
            .field("dir", &self.dir)
            .field("info", &self.info)
            .finish()
    }
}

fn info_path(dir: &Path) -> PathBuf {
    dir.join("lock.json")
}

fn flock_path(dir: &Path) -> PathBuf {
    dir.join("lock")
}

/// Reads the current holder, if any.
pub fn read_holder(dir: &Path) -> Option<LockInfo> {
    let text = std::fs::read(info_path(dir)).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_info(dir: &Path, info: &LockInfo) -> io::Result<()> {
    let tmp = dir.join(format!("lock.json.{}.tmp", info.token));
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(info).unwrap_or_default())?;
    f.sync_all()?;
    std::fs::rename(&tmp, info_path(dir))
}

/// Removes the lock whoever holds it; returns who held it.
pub fn force_unlock(dir: &Path, lock_id: &str) -> Result<Option<LockInfo>, LockError> {
    let holder = read_holder(dir);
    if let Some(h) = holder.as_ref().filter(|h| h.token != lock_id) {
        return Err(LockError::OtherHolder {
            holder: Box::new(h.clone()),
            given: lock_id.to_owned(),
        });
    }
    for p in [info_path(dir), flock_path(dir)] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LockError::Io {
                    dir: dir.to_owned(),
                    source,
                })
            }
        }
    }
    Ok(holder)
}

impl EnvLock {
    /// Takes the lock for the environment whose state lives in `dir`, or fails at once naming
    /// the holder.
    pub fn acquire(dir: &Path, opts: LockOptions) -> Result<EnvLock, LockError> {
        let io_err = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(flock_path(dir))
            .map_err(io_err)?;
        let host = this_host();
        let now = opts.clock.now_ms();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(dir).unwrap_or(LockInfo {
                    host: host.clone(),
                    pid: 0,
                    command: "(starting)".into(),
                    started_at_ms: now,
                    renewed_at_ms: now,
                    lease_ms: opts.lease.as_millis() as u64,
                    token: String::new(),
                    host_id: String::new(),
                });
                tracing::debug!(dir = %dir.display(), pid = holder.pid, host = %holder.host, "lock held by another process");
                return Err(LockError::Held {
                    holder: Box::new(holder),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        if let Some(holder) = read_holder(dir) {
            // We hold the file lock, so a holder on this host is dead. One elsewhere is alive
            // until its lease runs out.
            if holder.host != host && !holder.is_expired(now) {
                return Err(LockError::Held {
                    holder: Box::new(holder),
                });
            }
        }
        let info = LockInfo::this_process(&opts.command, opts.lease, now);
        write_info(dir, &info).map_err(io_err)?;
        tracing::debug!(dir = %dir.display(), pid = info.pid, lease_ms = info.lease_ms, "lock taken");
        Ok(EnvLock {
            dir: dir.to_owned(),
            file: Some(file),
            info,
            clock: opts.clock,
            heartbeat: None,
            lost: CancellationToken::new(),
        })
    }

    /// Who we are, as others see us.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Starts renewing the lease every third of its length on the current tokio runtime.
    /// The returned token fires if the lock is lost (forcibly removed and taken by another).
    pub fn start_heartbeat(&mut self) -> CancellationToken {
        let dir = self.dir.clone();
        let mut info = self.info.clone();
        let clock = self.clock;
        let lost = self.lost.clone();
        let period = Duration::from_millis((info.lease_ms / 3).max(1));
        self.heartbeat = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                match read_holder(&dir) {
                    Some(h) if h.token == info.token => {
                        info.renewed_at_ms = clock.now_ms();
                        let d = dir.clone();
                        let i = info.clone();
                        let _ = tokio::task::spawn_blocking(move || write_info(&d, &i)).await;
                    }
                    _ => {
                        lost.cancel();
                        return;
                    }
                }
            }
        }));
        self.lost.clone()
    }

    /// Releases the lock now.
    pub fn release(mut self) {
        self.release_inner();
    }

    fn release_inner(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if let Some(file) = self.file.take() {
            if read_holder(&self.dir).is_some_and(|h| h.token == self.info.token) {
                let _ = std::fs::remove_file(info_path(&self.dir));
            }
            let _ = file.unlock();
        }
    }
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        self.release_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = EnvLock::acquire(dir.path(), LockOptions::new("wbstack up")).unwrap();
        let err = EnvLock::acquire(dir.path(), LockOptions::new("wbstack down")).unwrap_err();
        match err {
            LockError::Held { holder } => {
                assert_eq!(holder.pid, std::process::id());
                assert_eq!(holder.command, "wbstack up");
            }
            other => panic!("{other}"),
        }
        drop(a);
        let b = EnvLock::acquire(dir.path(), LockOptions::new("wbstack down")).unwrap();
        assert_eq!(read_holder(dir.path()).unwrap().command, "wbstack down");
        drop(b);
        assert!(read_holder(dir.path()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_foreign_lease_is_respected_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::new();
        let foreign = LockInfo {
            host: "some-other-host".into(),
            pid: 4242,
            command: "wbstack up".into(),
            started_at_ms: clock.now_ms(),
            renewed_at_ms: clock.now_ms(),
            lease_ms: 30_000,
            token: "t".into(),
            host_id: String::new(),
        };
        write_info(dir.path(), &foreign).unwrap();
        let opts = LockOptions {
            clock,
            ..LockOptions::new("wbstack up")
        };
        let err = EnvLock::acquire(dir.path(), opts.clone()).unwrap_err();
        assert!(err.to_string().contains("some-other-host"), "{err}");
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(EnvLock::acquire(dir.path(), opts.clone()).is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        let lock = EnvLock::acquire(dir.path(), opts).unwrap();
        assert_eq!(lock.info().pid, std::process::id());
    }

    #[tokio::test(start_paused = true)]
    async fn the_heartbeat_renews_the_lease_and_notices_a_forced_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::new();
        let mut lock = EnvLock::acquire(
            dir.path(),
            LockOptions {
                lease: Duration::from_secs(30),
                clock,
                command: "wbstack up".into(),
            },
        )
        .unwrap();
        let first = read_holder(dir.path()).unwrap().renewed_at_ms;
        let lost = lock.start_heartbeat();
        tokio::time::sleep(Duration::from_secs(25)).await;
        let renewed = read_holder(dir.path()).unwrap().renewed_at_ms;
        assert!(renewed >= first + 20_000, "{renewed} vs {first}");
        assert!(!lost.is_cancelled());
        let id = read_holder(dir.path()).unwrap().token;
        assert!(matches!(
            force_unlock(dir.path(), "not-its-id"),
            Err(LockError::OtherHolder { .. })
        ));
        let holder = force_unlock(dir.path(), &id).unwrap().unwrap();
        assert_eq!(holder.pid, std::process::id());
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(lost.is_cancelled());
    }

    #[test]
    fn a_zombie_or_a_reaped_process_is_gone_and_a_live_one_is_not() {
        assert!(!process_gone(std::process::id()));
        // A child that exited and is not reaped yet is a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !process_gone(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(process_gone(pid), "a zombie counts as gone");
        assert!(
            Path::new("/proc").join(pid.to_string()).exists(),
            "still listed"
        );
        child.wait().unwrap();
        assert!(process_gone(pid));
    }

    #[test]
    fn dates_render_as_rfc3339() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_798_761_600_000), "2027-01-01T00:00:00Z");
    }
}
