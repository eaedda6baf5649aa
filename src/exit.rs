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

/// Why a command could not do what it was asked; the message says what and where.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Environment(String),
    #[error("{}", chain(.0))]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Journal(#[from] JournalError),
}

impl CliError {
    pub fn invalid(m: impl Into<String>) -> Self {
        CliError::Invalid(m.into())
    }
    pub fn refused(m: impl Into<String>) -> Self {
        CliError::Refused(m.into())
    }
    pub fn environment(m: impl Into<String>) -> Self {
        CliError::Environment(m.into())
    }

    /// The exit code this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Invalid(_) => Exit::Invalid,
            CliError::Locked(_) => Exit::Locked,
            CliError::Refused(_) => Exit::Refused,
            CliError::Environment(_) | CliError::Engine(_) | CliError::Journal(_) => {
                Exit::Environment
            }
        }
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
