//! The per-environment journal: append-only JSON lines, one record per line, each flushed and
//! fsync'd before the action it announces.
//!
//! Writes go through one writer thread that commits in groups: every record queued while the
//! previous `fsync` ran is written and synced together, and each caller is answered only once its
//! record is durable. A torn last line (a crash part-way through a write) is cut off when the
//! journal is opened. Compaction replaces the file by a snapshot through an atomic rename.

use crate::events::{Operation, RunStats, RunStatus};
use crate::id::{Fingerprint, RunId, StepId};
use crate::step::{Action, ErrorKind, Outputs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Names the file format in the header line.
pub const JOURNAL_FORMAT: &str = "wbstack-journal";
/// The format version this build writes and the newest it reads.
pub const JOURNAL_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Header {
        format: String,
        version: u32,
    },
    RunStarted {
        run: RunId,
        operation: Operation,
        resumed: bool,
        host: String,
        pid: u32,
        at_ms: u64,
    },
    /// Written and synced before a mutating call.
    Intent {
        run: RunId,
        step: StepId,
        action: Action,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<Fingerprint>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deps: Vec<StepId>,
        at_ms: u64,
    },
    /// The mutating call announced by the matching intent returned success.
    Applied {
        run: RunId,
        step: StepId,
        action: Action,
        ms: u64,
        at_ms: u64,
    },
    /// The mutating call returned an error.
    ApplyFailed {
        run: RunId,
        step: StepId,
        action: Action,
        kind: ErrorKind,
        error: String,
        at_ms: u64,
    },
    /// A resource found Ready that this environment did not create.
    Adopted {
        run: RunId,
        step: StepId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<Fingerprint>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deps: Vec<StepId>,
        at_ms: u64,
    },
    Ready {
        run: RunId,
        step: StepId,
        fingerprint: Fingerprint,
        outputs: Outputs,
        at_ms: u64,
    },
    /// A resource found, by a teardown without a journal, to carry this environment's mark:
    /// this environment's, as if it had created it.
    Discovered {
        run: RunId,
        step: StepId,
        fingerprint: Fingerprint,
        outputs: Outputs,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deps: Vec<StepId>,
        at_ms: u64,
    },
    StepFailed {
        run: RunId,
        step: StepId,
        error: String,
        at_ms: u64,
    },
    RunFinished {
        run: RunId,
        operation: Operation,
        status: RunStatus,
        stats: RunStats,
        at_ms: u64,
    },
    /// The whole state, written by compaction as the only record after the header.
    Snapshot {
        state: JournalState,
    },
}

/// Who made a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Ownership {
    /// This environment created it, in that run: rollback and teardown may delete it.
    Created { run: RunId },
    /// It existed before; it is only deleted by a forced teardown.
    Adopted { run: RunId },
}

/// Where a step's resource stands according to the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// An intent without a result: the call may or may not have happened.
    Intent {
        action: Action,
    },
    /// The call returned; the resource may not be Ready yet.
    Applied {
        action: Action,
    },
    Ready,
    Failed,
    /// Destroyed or rolled back.
    Removed,
}

/// One step's recorded state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Ownership>,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<StepId>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at_ms: Option<u64>,
    pub updated_at_ms: u64,
}

impl StepState {
    pub(crate) fn new(at_ms: u64) -> Self {
        StepState {
            owner: None,
            phase: Phase::Removed,
            fingerprint: None,
            outputs: None,
            deps: Vec::new(),
            attempts: 0,
            last_error: None,
            created_at_ms: None,
            ready_at_ms: None,
            updated_at_ms: at_ms,
        }
    }

    /// Whether the resource may exist (anything but removed, or never made).
    pub fn may_exist(&self) -> bool {
        self.phase != Phase::Removed
    }

    /// Whether this environment created it.
    pub fn is_owned(&self) -> bool {
        matches!(self.owner, Some(Ownership::Created { .. }))
    }

    /// Applies one record about this step.
    fn apply(&mut self, rec: &Record) {
        match rec {
            Record::Intent {
                run,
                action,
                attempt,
                fingerprint,
                deps,
                at_ms,
                ..
            } => {
                if *action == Action::Create && self.owner != Some(Ownership::Created { run: *run })
                {
                    // Whatever was recorded before, this run is now making the resource.
                    self.owner = Some(Ownership::Created { run: *run });
                    self.created_at_ms = Some(*at_ms);
                }
                if !deps.is_empty() {
                    self.deps = deps.clone();
                }
                if fingerprint.is_some() && matches!(action, Action::Create | Action::Update) {
                    // The fingerprint being applied; confirmed by the Ready record.
                    self.fingerprint = fingerprint.clone();
                }
                self.phase = Phase::Intent { action: *action };
                self.attempts = *attempt;
                self.updated_at_ms = *at_ms;
            }
            Record::Applied { action, at_ms, .. } => self.applied(*action, *at_ms),
            Record::ApplyFailed { error, at_ms, .. } => {
                self.last_error = Some(error.clone());
                self.updated_at_ms = *at_ms;
                // The phase stays Intent: the call may have done part of its work.
            }
            Record::Adopted {
                run,
                fingerprint,
                deps,
                at_ms,
                ..
            } => {
                self.owner = Some(Ownership::Adopted { run: *run });
                if fingerprint.is_some() {
                    self.fingerprint = fingerprint.clone();
                }
                if !deps.is_empty() {
                    self.deps = deps.clone();
                }
                self.phase = Phase::Applied {
                    action: Action::Create,
                };
                self.updated_at_ms = *at_ms;
            }
            Record::Discovered {
                run,
                fingerprint,
                outputs,
                deps,
                at_ms,
                ..
            } => {
                self.owner = Some(Ownership::Created { run: *run });
                self.fingerprint = Some(fingerprint.clone());
                self.outputs = Some(outputs.clone());
                self.deps = deps.clone();
                self.phase = Phase::Ready;
                self.updated_at_ms = *at_ms;
            }
            Record::Ready {
                fingerprint,
                outputs,
                at_ms,
                ..
            } => {
                self.phase = Phase::Ready;
                self.fingerprint = Some(fingerprint.clone());
                self.outputs = Some(outputs.clone());
                self.ready_at_ms = Some(*at_ms);
                self.updated_at_ms = *at_ms;
                self.last_error = None;
            }
            Record::StepFailed { error, at_ms, .. } => {
                self.last_error = Some(error.clone());
                self.updated_at_ms = *at_ms;
                if matches!(self.phase, Phase::Applied { .. } | Phase::Ready) {
                    self.phase = Phase::Failed;
                }
            }
            _ => {}
        }
    }

    fn applied(&mut self, action: Action, at_ms: u64) {
        self.updated_at_ms = at_ms;
        self.last_error = None;
        match action {
            Action::Destroy | Action::Rollback => {
                self.phase = Phase::Removed;
                self.owner = None;
                self.outputs = None;
                self.fingerprint = None;
                self.ready_at_ms = None;
            }
            Action::Create | Action::Update => self.phase = Phase::Applied { action },
        }
    }
}

/// A run as the journal saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: RunId,
    pub operation: Operation,
    pub started_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<RunStats>,
}

/// The state folded from every record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalState {
    pub steps: BTreeMap<StepId, StepState>,
    pub runs: Vec<RunSummary>,
}

impl JournalState {
    /// Applies one record.
    pub fn apply(&mut self, rec: &Record) {
        match rec {
            Record::Header { .. } => {}
            Record::Snapshot { state } => *self = state.clone(),
            Record::RunStarted {
                run,
                operation,
                at_ms,
                ..
            } => self.run_started(*run, *operation, *at_ms),
            Record::RunFinished {
                run,
                status,
                stats,
                at_ms,
                ..
            } => {
                if let Some(r) = self.runs.iter_mut().find(|r| r.run == *run) {
                    r.status = Some(*status);
                    r.finished_at_ms = Some(*at_ms);
                    r.stats = Some(stats.clone());
                }
            }
            Record::Intent { step, at_ms, .. }
            | Record::Applied { step, at_ms, .. }
            | Record::ApplyFailed { step, at_ms, .. }
            | Record::Adopted { step, at_ms, .. }
            | Record::Ready { step, at_ms, .. }
            | Record::Discovered { step, at_ms, .. }
            | Record::StepFailed { step, at_ms, .. } => self
                .steps
                .entry(step.clone())
                .or_insert_with(|| StepState::new(*at_ms))
                .apply(rec),
        }
    }

    fn run_started(&mut self, run: RunId, operation: Operation, at_ms: u64) {
        if let Some(r) = self.runs.iter_mut().find(|r| r.run == run) {
            // A resumed run: it is unfinished again.
            r.status = None;
            r.finished_at_ms = None;
        } else {
            self.runs.push(RunSummary {
                run,
                operation,
                started_at_ms: at_ms,
                status: None,
                finished_at_ms: None,
                stats: None,
            });
        }
    }

    /// The number a new run gets.
    pub fn next_run_id(&self) -> RunId {
        RunId(self.runs.iter().map(|r| r.run.0).max().unwrap_or(0) + 1)
    }

    /// The last run, if any.
    pub fn last_run(&self) -> Option<&RunSummary> {
        self.runs.last()
    }

    /// Steps this environment created and that may still exist.
    pub fn owned_steps(&self) -> impl Iterator<Item = (&StepId, &StepState)> {
        self.steps
            .iter()
            .filter(|(_, s)| s.is_owned() && s.may_exist())
    }
}

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("failed to open journal {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal {path} line {line} is not a valid record: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("journal {path} has format `{format}` version {version}; this build reads `{JOURNAL_FORMAT}` up to version {JOURNAL_VERSION}")]
    UnsupportedVersion {
        path: PathBuf,
        format: String,
        version: u32,
    },
    #[error("failed to write journal {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("failed to compact journal {path}")]
    Compact {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the journal writer has stopped")]
    Closed,
    #[error("a journal record could not be written as JSON: {message}")]
    Serialize { message: String },
}

/// Performs the write of one group commit. The default writes the bytes whole; tests use a custom
/// one to simulate a crash in the middle of a write.
pub type WriteFn = Box<dyn FnMut(&mut File, &[u8]) -> io::Result<()> + Send>;

/// Makes one group commit durable somewhere else too (a remote state store), after the local
/// write and before anyone is told the records are durable. Called with whole records, in order,
/// one group at a time; an error fails every record of the group.
pub type MirrorFn = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

/// Options for opening a journal.
pub struct JournalOptions {
    /// Compact on open when the file holds more records than this (default 50,000).
    pub compact_after_records: usize,
    /// Replaces the plain `write_all` of each group commit.
    pub write_fn: Option<WriteFn>,
    /// Where each group commit goes besides the file.
    pub mirror: Option<MirrorFn>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            compact_after_records: 50_000,
            write_fn: None,
            mirror: None,
        }
    }
}

impl std::fmt::Debug for JournalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalOptions")
            .field("compact_after_records", &self.compact_after_records)
            .field("write_fn", &self.write_fn.is_some())
            .field("mirror", &self.mirror.is_some())
            .finish()
    }
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// What the writer works on: records queued since the last group commit.
struct Writer {
    file: Option<File>,
    write_fn: Option<WriteFn>,
    mirror: Option<MirrorFn>,
    pending: Vec<u8>,
    pending_lines: u64,
    acks: Vec<Ack>,
    writing: bool,
}

struct Shared {
    path: PathBuf,
    writer: Mutex<Writer>,
    bytes: AtomicU64,
    records: AtomicU64,
}

/// An open journal. Cloning gives another handle to the same writer.
///
/// Group commits run on tokio's blocking pool (so a paused test clock does not jump while a
/// write is on its way); one runs at a time and takes everything queued before it started.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns it with the state it holds.
    pub fn open(path: &Path) -> Result<(Journal, JournalState), JournalError> {
        Self::open_with(path, JournalOptions::default())
    }

    /// Reads the state at `path` without opening it for writing. A missing file is an empty state.
    pub fn read_state(path: &Path) -> Result<JournalState, JournalError> {
        if !path.exists() {
            return Ok(JournalState::default());
        }
        let mut file = File::open(path).map_err(|source| JournalError::Open {
            path: path.to_owned(),
            source,
        })?;
        let (state, _, _) = read_records(path, &mut file)?;
        Ok(state)
    }

    /// Opens with options.
    pub fn open_with(
        path: &Path,
        opts: JournalOptions,
    ) -> Result<(Journal, JournalState), JournalError> {
        let open_err = |source| JournalError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(open_err)?;
        let (state, valid_len, count) = read_records(path, &mut file)?;
        let file_len = file.metadata().map_err(open_err)?.len();
        if valid_len < file_len {
            // A torn last line: cut it off so the next record starts on a fresh line.
            file.set_len(valid_len).map_err(open_err)?;
            file.sync_all().map_err(open_err)?;
        }
        let mut count = count;
        let mut file = if count > opts.compact_after_records {
            drop(file);
            compact_file(path, &state)?;
            count = 1;
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(open_err)?
        } else {
            file
        };
        let mut len = file.seek(SeekFrom::End(0)).map_err(open_err)?;
        if len == 0 {
            let header = header_line();
            file.write_all(&header).map_err(open_err)?;
            file.sync_all().map_err(open_err)?;
            sync_dir(path);
            len = header.len() as u64;
        }
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                file: Some(file),
                write_fn: opts.write_fn,
                mirror: opts.mirror,
                pending: Vec::with_capacity(64 * 1024),
                pending_lines: 0,
                acks: Vec::new(),
                writing: false,
            }),
            bytes: AtomicU64::new(len),
            records: AtomicU64::new(count as u64),
        });
        Ok((Journal { shared }, state))
    }

    fn enqueue(&self, line: Option<Vec<u8>>, ack: Option<Ack>) {
        let mut w = self.shared.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(line) = line {
            w.pending.extend_from_slice(&line);
            w.pending_lines += 1;
        }
        if let Some(ack) = ack {
            w.acks.push(ack);
        }
        if !w.writing {
            w.writing = true;
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || drain(&shared));
        }
    }

    async fn durable(&self, line: Option<Vec<u8>>) -> Result<(), JournalError> {
        let (ack_tx, ack_rx) = tokio::sync::oneshot::channel();
        self.enqueue(line, Some(ack_tx));
        match ack_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(JournalError::Write {
                path: self.shared.path.clone(),
                message,
            }),
            Err(_) => Err(JournalError::Closed),
        }
    }

    /// Appends a record and returns once it is on disk (written and fsync'd).
    pub async fn append(&self, rec: &Record) -> Result<(), JournalError> {
        self.durable(Some(line_of(rec)?)).await
    }

    /// Queues a record without waiting for it to reach the disk. Records are written in order,
    /// so it is durable once any later [`Journal::append`] returns. For records whose loss a
    /// resume repairs by observing (results, readiness), never for intents.
    pub fn append_queued(&self, rec: &Record) -> Result<(), JournalError> {
        self.enqueue(Some(line_of(rec)?), None);
        Ok(())
    }

    /// Waits until everything queued so far is on disk.
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.durable(None).await
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Bytes in the file.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Records in the file, header excluded.
    pub fn records(&self) -> u64 {
        self.shared.records.load(Ordering::Relaxed)
    }
}

/// Writes and syncs whatever is queued, until nothing is.
fn drain(shared: &Shared) {
    loop {
        let (buf, lines, acks, mut file, mut write_fn, mut mirror) = {
            let mut w = shared.writer.lock().unwrap_or_else(|e| e.into_inner());
            if w.pending.is_empty() && w.acks.is_empty() {
                w.writing = false;
                return;
            }
            let buf = std::mem::take(&mut w.pending);
            let lines = std::mem::take(&mut w.pending_lines);
            let acks = std::mem::take(&mut w.acks);
            (
                buf,
                lines,
                acks,
                w.file.take(),
                w.write_fn.take(),
                w.mirror.take(),
            )
        };
        let written = buf.len() as u64;
        let res = match file.as_mut() {
            None => Err(io::Error::other("the journal file is closed")),
            Some(f) if buf.is_empty() => f.sync_data(),
            Some(f) => match write_fn.as_mut() {
                Some(wf) => wf(f, &buf),
                None => f.write_all(&buf),
            }
            .and_then(|_| f.sync_data())
            .and_then(|_| match mirror.as_mut() {
                Some(m) => m(&buf),
                None => Ok(()),
            }),
        };
        {
            let mut w = shared.writer.lock().unwrap_or_else(|e| e.into_inner());
            w.file = file;
            w.write_fn = write_fn;
            w.mirror = mirror;
            if w.pending.capacity() == 0 {
                // Give the buffer back for reuse.
                let mut b = buf;
                b.clear();
                w.pending = b;
            }
        }
        let res = res.map_err(|e| e.to_string());
        if res.is_ok() {
            shared.bytes.fetch_add(written, Ordering::Relaxed);
            shared.records.fetch_add(lines, Ordering::Relaxed);
        }
        for ack in acks {
            let _ = ack.send(res.clone());
        }
    }
}

/// Rewrites the journal at `path` as a header and one snapshot, atomically (write to a temporary
/// file, fsync, rename over, fsync the directory). Call only while holding the environment lock
/// and with no open writer.
pub fn compact_file(path: &Path, state: &JournalState) -> Result<(), JournalError> {
    let err = |source| JournalError::Compact {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("compact.tmp");
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(&snapshot_lines(state)?).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    sync_dir(path);
    Ok(())
}

/// The header line alone: what an empty journal holds.
pub fn header_line() -> Vec<u8> {
    let header = Record::Header {
        format: JOURNAL_FORMAT.into(),
        version: JOURNAL_VERSION,
    };
    line_of(&header).expect("a header is a string and a number")
}

/// A header and one snapshot of `state`: a compacted journal's whole content.
pub fn snapshot_lines(state: &JournalState) -> Result<Vec<u8>, JournalError> {
    let mut v = header_line();
    v.extend(line_of(&Record::Snapshot {
        state: state.clone(),
    })?);
    Ok(v)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// A record as one line. Its types have string map keys only, so this does not fail today; if a
/// change ever made it fail, the record is refused rather than written empty.
fn line_of(rec: &Record) -> Result<Vec<u8>, JournalError> {
    let mut v = serde_json::to_vec(rec).map_err(|e| JournalError::Serialize {
        message: e.to_string(),
    })?;
    tracing::trace!(target: "wbstack_engine::journal", "append {}", String::from_utf8_lossy(&v));
    v.push(b'\n');
    Ok(v)
}

/// Reads every record; returns the state, the length of the valid prefix and the record count.
fn read_records(path: &Path, file: &mut File) -> Result<(JournalState, u64, usize), JournalError> {
    let mut data = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut data))
        .map_err(|source| JournalError::Open {
            path: path.to_owned(),
            source,
        })?;
    fold_records(path, &data)
}

/// Folds journal bytes (a header line, then records) into a state, as opening a file with them
/// would; `path` names them in errors. Returns the state, the length of the valid prefix and
/// the record count.
pub fn fold_records(path: &Path, data: &[u8]) -> Result<(JournalState, u64, usize), JournalError> {
    let mut state = JournalState::default();
    let mut valid = 0usize;
    let mut count = 0usize;
    let mut line_no = 0usize;
    let mut pos = 0usize;
    while pos < data.len() {
        let Some(nl) = data[pos..].iter().position(|b| *b == b'\n') else {
            break; // no newline: a torn last line
        };
        let line = &data[pos..pos + nl];
        let end = pos + nl + 1;
        line_no += 1;
        let parsed: Result<Record, _> = serde_json::from_slice(line);
        match parsed {
            Ok(rec) => {
                if line_no == 1 {
                    match &rec {
                        Record::Header { format, version }
                            if format == JOURNAL_FORMAT && *version <= JOURNAL_VERSION => {}
                        Record::Header { format, version } => {
                            return Err(JournalError::UnsupportedVersion {
                                path: path.to_owned(),
                                format: format.clone(),
                                version: *version,
                            })
                        }
                        _ => {
                            return Err(JournalError::Corrupt {
                                path: path.to_owned(),
                                line: 1,
                                message: "the first line is not a journal header".into(),
                            })
                        }
                    }
                } else {
                    count += 1;
                }
                state.apply(&rec);
                valid = end;
            }
            Err(e) => {
                if end >= data.len() {
                    break; // a damaged last line is a torn write
                }
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    line: line_no,
                    message: e.to_string(),
                });
            }
        }
        pos = end;
    }
    Ok((state, valid as u64, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(step: &str) -> Record {
        Record::Intent {
            run: RunId(1),
            step: StepId::new(step),
            action: Action::Create,
            attempt: 1,
            fingerprint: Some(Fingerprint::of("x")),
            deps: vec![],
            at_ms: 1,
        }
    }

    #[tokio::test]
    async fn records_survive_reopen_and_fold_into_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let (j, st) = Journal::open(&path).unwrap();
            assert!(st.steps.is_empty());
            j.append(&intent("a")).await.unwrap();
            j.append(&Record::Applied {
                run: RunId(1),
                step: StepId::new("a"),
                action: Action::Create,
                ms: 3,
                at_ms: 2,
            })
            .await
            .unwrap();
        }
        let (_, st) = Journal::open(&path).unwrap();
        let a = &st.steps[&StepId::new("a")];
        assert_eq!(a.owner, Some(Ownership::Created { run: RunId(1) }));
        assert_eq!(
            a.phase,
            Phase::Applied {
                action: Action::Create
            }
        );
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let (j, _) = Journal::open(&path).unwrap();
            j.append(&intent("a")).await.unwrap();
        }
        let good_len = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"type":"intent","run":1,"st"#).unwrap();
        drop(f);
        let (j, st) = Journal::open(&path).unwrap();
        assert_eq!(st.steps.len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        j.append(&intent("b")).await.unwrap();
        drop(j);
        let st = Journal::read_state(&path).unwrap();
        assert_eq!(st.steps.len(), 2);
    }

    #[tokio::test]
    async fn a_damaged_middle_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let (j, _) = Journal::open(&path).unwrap();
            j.append(&intent("a")).await.unwrap();
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("garbage\n");
        text.push_str(&String::from_utf8(line_of(&intent("b")).unwrap()).unwrap());
        std::fs::write(&path, text).unwrap();
        let err = Journal::open(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::Corrupt { line: 3, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_newer_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(
            &path,
            format!("{{\"type\":\"header\",\"format\":\"{JOURNAL_FORMAT}\",\"version\":99}}\n"),
        )
        .unwrap();
        let err = Journal::open(&path).unwrap_err();
        assert!(matches!(
            err,
            JournalError::UnsupportedVersion { version: 99, .. }
        ));
    }

    #[tokio::test]
    async fn each_group_commit_reaches_the_mirror_before_it_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, f2) = (seen.clone(), fail.clone());
        let opts = JournalOptions {
            mirror: Some(Box::new(move |buf: &[u8]| {
                if f2.load(Ordering::SeqCst) {
                    return Err(io::Error::other("the store refused"));
                }
                s2.lock().unwrap().push(buf.to_vec());
                Ok(())
            })),
            ..JournalOptions::default()
        };
        let (j, _) = Journal::open_with(&path, opts).unwrap();
        j.append(&intent("a")).await.unwrap();
        j.append(&intent("b")).await.unwrap();
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[0], line_of(&intent("a")).unwrap());
        }
        // What the mirror refuses is not durable: the append fails.
        fail.store(true, Ordering::SeqCst);
        let err = j.append(&intent("c")).await.unwrap_err();
        assert!(err.to_string().contains("the store refused"), "{err}");
        // The mirror's bytes, after a header, are the journal.
        let mut bytes = header_line();
        bytes.extend(seen.lock().unwrap().concat());
        let (st, _, n) = fold_records(&path, &bytes).unwrap();
        assert_eq!((st.steps.len(), n), (2, 2));
    }

    #[tokio::test]
    async fn compaction_keeps_the_state_and_shrinks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let (j, _) = Journal::open(&path).unwrap();
            for i in 0..200 {
                j.append(&intent(&format!("s{}", i % 10))).await.unwrap();
            }
        }
        let before = Journal::read_state(&path).unwrap();
        let len_before = std::fs::metadata(&path).unwrap().len();
        let (j, after) = Journal::open_with(
            &path,
            JournalOptions {
                compact_after_records: 100,
                ..JournalOptions::default()
            },
        )
        .unwrap();
        assert_eq!(before, after);
        assert!(j.bytes() < len_before / 4, "{} vs {len_before}", j.bytes());
        j.append(&intent("z")).await.unwrap();
        drop(j);
        assert_eq!(Journal::read_state(&path).unwrap().steps.len(), 11);
        assert!(!path.with_extension("compact.tmp").exists());
    }
}
