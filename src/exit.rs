//! Exit codes, mapped once.

/// Everything asked for is done.
pub const OK: i32 = 0;
/// A step failed; what was made is kept and `resume` continues.
pub const FAILED: i32 = 1;
/// The plan or the arguments are invalid; nothing was touched.
pub const INVALID: i32 = 2;
/// Another run holds the environment.
pub const LOCKED: i32 = 3;
/// A step failed and what the run made was rolled back.
pub const ROLLED_BACK: i32 = 4;
/// Refused: a protected environment without `--force`, or a capability this build lacks.
pub const REFUSED: i32 = 5;
/// wbstack's own state or the cluster could not be used (journal I/O, connection).
pub const ENVIRONMENT: i32 = 6;
/// Interrupted by a signal; `resume` completes the run.
pub const INTERRUPTED: i32 = 130;

/// A failure with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<wbstack_engine::EngineError> for Failure {
    fn from(e: wbstack_engine::EngineError) -> Self {
        let mut m = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            m.push_str(": ");
            m.push_str(&s.to_string());
            src = s.source();
        }
        Failure::new(ENVIRONMENT, m)
    }
}

impl From<wbstack_engine::JournalError> for Failure {
    fn from(e: wbstack_engine::JournalError) -> Self {
        Failure::new(ENVIRONMENT, e.to_string())
    }
}
