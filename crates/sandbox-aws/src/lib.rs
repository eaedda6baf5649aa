//! AWS for `--sandbox`: a local moto server (`moto_server`, from PyPI) behind a proxy that
//! answers as AWS does where moto falls short ([`proxy`]), so a plan with AWS steps (the
//! production pattern) comes up and goes down on a laptop. The pair runs as a process of its own
//! per sandbox environment ([`daemon`]), kept between commands as the sandbox's cluster is kept
//! in its file, and stopped when the environment is torn down.

pub mod bucket_policy;
pub mod daemon;
pub mod http;
mod local;
pub mod proxy;
mod rds_answers;
mod s3_answers;
mod sts_answers;

pub use daemon::{ensure, serve, stop, Running};
pub use local::{default_security_group, default_subnets, moto_server, Local, MOTO_VERSION};

/// What can go wrong bringing the sandbox's AWS up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No `moto_server` to run.
    #[error("no moto server: {0}")]
    NoMoto(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Started, and not answering in time.
    #[error("{0}")]
    NotReady(String),
    /// moto answered an EC2 call otherwise than expected.
    #[error("moto's EC2: {0}")]
    Ec2(String),
}

impl SandboxError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
        let what = what.into();
        move |source| SandboxError::Io { what, source }
    }
}
