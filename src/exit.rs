//! Exit codes and the CLI's errors, mapped in one place.

use wbstack_engine::{EngineError, JournalError, RunStatus};

/// How wbstack exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for is done.
    Ok,
    /// A step failed; what was made is kept and `resume` continues.
    Failed,
    /// The plan or the arguments are invalid; nothing was touched.
    Invalid,
    /// Another run holds the environment.
    Locked,
    /// A step failed and what the run made was rolled back.
    RolledBack,
    /// Refused: a protected environment without `--force`, or a capability this build lacks.
    Refused,
    /// wbstack's own state or the cluster could not be used (journal I/O, connection).
    Environment,
    /// Interrupted by a signal; `resume` completes the run.
    Interrupted,
    /// `plan --detailed-exitcode`: `up` would change something.
    ChangesPending,
    /// `verify`: a probe failed.
    VerifyFailed,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Invalid => 2,
            Exit::Locked => 3,
            Exit::RolledBack => 4,
            Exit::Refused => 5,
            Exit::Environment => 6,
            Exit::Interrupted => 130,
            Exit::ChangesPending => 2,
            Exit::VerifyFailed => 7,
        }
    }
}

impl From<RunStatus> for Exit {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Succeeded => Exit::Ok,
            RunStatus::Failed => Exit::Failed,
            RunStatus::RolledBack => Exit::RolledBack,
            RunStatus::Cancelled => Exit::Interrupted,
        }
    }
}

/// Why a command could not do what it was asked; the message says what and where, and the
/// error it came from is kept as its source.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub struct CliError {
    kind: Kind,
    message: String,
    #[source]
    source: Option<Cause>,
}

/// The error a `CliError` came from.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure: each maps to one exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Invalid,
    Locked,
    Refused,
    Environment,
}

impl CliError {
    fn of(kind: Kind, message: impl Into<String>) -> Self {
        CliError {
            kind,
            message: message.into(),
            source: None,
        }
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::of(Kind::Invalid, m)
    }
    pub fn refused(m: impl Into<String>) -> Self {
        Self::of(Kind::Refused, m)
    }
    pub fn environment(m: impl Into<String>) -> Self {
        Self::of(Kind::Environment, m)
    }
    pub fn locked(m: impl Into<String>) -> Self {
        Self::of(Kind::Locked, m)
    }

    /// The same error, caused by `source`: shown as `message: source: its causes`.
    pub fn because(mut self, source: impl Into<Cause>) -> Self {
        self.source = Some(source.into());
        self
    }

    fn text(&self) -> String {
        match &self.source {
            None => self.message.clone(),
            Some(s) if self.message.is_empty() => chain(s.as_ref()),
            Some(s) => format!("{}: {}", self.message, chain(s.as_ref())),
        }
    }

    /// The exit code this error maps to.
    pub fn exit(&self) -> Exit {
        match self.kind {
            Kind::Invalid => Exit::Invalid,
            Kind::Locked => Exit::Locked,
            Kind::Refused => Exit::Refused,
            Kind::Environment => Exit::Environment,
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError::environment("").because(e)
    }
}

impl From<JournalError> for CliError {
    fn from(e: JournalError) -> Self {
        CliError::environment("").because(e)
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut m = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        m.push_str(": ");
        m.push_str(&s.to_string());
        src = s.source();
    }
    m
}
