//! `wbstack verify`: one probe per data path of a running environment. Probes read what the pods
//! read (the resource's values, the Secrets they name), never wbstack's memory of what it made,
//! and report a verdict each; values of secrets never reach a finding.

mod references;
mod run;
mod verdict;

pub use references::References;
pub use run::{run_all, Probe};
pub use verdict::{Finding, Summary, Verdict};
