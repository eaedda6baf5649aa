//! What a probe found.

use serde::{Deserialize, Serialize};

/// A probe's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Works, with something to look at.
    Warn,
    Fail,
    /// Cannot be checked from here; the finding says why.
    Skip,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// One verdict: the probe, what it checked, what it saw and, unless it passed, what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub probe: String,
    pub verdict: Verdict,
    pub checked: String,
    pub seen: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub todo: Option<String>,
}

impl Finding {
    pub fn pass(probe: &str, checked: impl Into<String>, seen: impl Into<String>) -> Finding {
        Finding {
            probe: probe.to_owned(),
            verdict: Verdict::Pass,
            checked: checked.into(),
            seen: seen.into(),
            todo: None,
        }
    }

    pub fn fail(
        probe: &str,
        checked: impl Into<String>,
        seen: impl Into<String>,
        todo: impl Into<String>,
    ) -> Finding {
        Finding {
            probe: probe.to_owned(),
            verdict: Verdict::Fail,
            checked: checked.into(),
            seen: seen.into(),
            todo: Some(todo.into()),
        }
    }

    pub fn warn(
        probe: &str,
        checked: impl Into<String>,
        seen: impl Into<String>,
        todo: impl Into<String>,
    ) -> Finding {
        Finding {
            verdict: Verdict::Warn,
            ..Finding::fail(probe, checked, seen, todo)
        }
    }

    pub fn skip(probe: &str, checked: impl Into<String>, why: impl Into<String>) -> Finding {
        Finding {
            probe: probe.to_owned(),
            verdict: Verdict::Skip,
            checked: checked.into(),
            seen: why.into(),
            todo: None,
        }
    }
}

/// The counts of each verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skip: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Summary {
        let mut s = Summary::default();
        for f in findings {
            match f.verdict {
                Verdict::Pass => s.pass += 1,
                Verdict::Warn => s.warn += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Skip => s.skip += 1,
            }
        }
        s
    }
}
