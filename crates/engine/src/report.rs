//! What a run did, step by step.

use crate::events::{Operation, RunStats, RunStatus};
use crate::id::{RunId, StepId};
use crate::journal::JournalState;
use serde::Serialize;
use std::time::Duration;

/// What happened to one step in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// Ready with the same inputs: nothing done.
    Unchanged,
    Created,
    Updated,
    /// Destroyed and made again, because the plan wants what only a new resource can have
    /// (allowed for this step by [`crate::EngineConfig::replace`]).
    Replaced,
    /// Found Ready, made by someone else; recorded, never deleted unless forced.
    Adopted,
    Failed {
        error: String,
    },
    /// Not run because a dependency failed.
    Skipped {
        because: StepId,
    },
    /// Not run because the run was interrupted or stopped.
    NotStarted,
    RolledBack,
    Destroyed,
    /// Left alone by teardown or rollback (adopted or not ours).
    Kept,
    /// Left in place by teardown because another environment still needs it, and handed to
    /// that environment.
    LeftTo {
        environment: String,
    },
    /// Nothing to destroy.
    Absent,
}

impl StepOutcome {
    /// Whether the step ended Ready.
    pub fn is_ready(&self) -> bool {
        matches!(
            self,
            StepOutcome::Unchanged
                | StepOutcome::Created
                | StepOutcome::Updated
                | StepOutcome::Replaced
                | StepOutcome::Adopted
        )
    }

    /// A short word for tables.
    pub fn label(&self) -> &'static str {
        match self {
            StepOutcome::Unchanged => "unchanged",
            StepOutcome::Created => "created",
            StepOutcome::Updated => "updated",
            StepOutcome::Replaced => "replaced",
            StepOutcome::Adopted => "adopted",
            StepOutcome::Failed { .. } => "failed",
            StepOutcome::Skipped { .. } => "skipped",
            StepOutcome::NotStarted => "not-started",
            StepOutcome::RolledBack => "rolled-back",
            StepOutcome::Destroyed => "destroyed",
            StepOutcome::Kept => "kept",
            StepOutcome::LeftTo { .. } => "left",
            StepOutcome::Absent => "absent",
        }
    }
}

impl RunStats {
    /// Counts one step's outcome.
    pub fn count(&mut self, outcome: &StepOutcome) {
        match outcome {
            StepOutcome::Unchanged | StepOutcome::Absent => self.unchanged += 1,
            StepOutcome::Created => self.created += 1,
            StepOutcome::Updated | StepOutcome::Replaced => self.updated += 1,
            StepOutcome::Adopted => self.adopted += 1,
            StepOutcome::Failed { .. } => self.failed += 1,
            StepOutcome::Skipped { .. } => self.skipped += 1,
            StepOutcome::NotStarted => self.not_started += 1,
            StepOutcome::RolledBack => self.rolled_back += 1,
            StepOutcome::Destroyed => self.destroyed += 1,
            StepOutcome::Kept | StepOutcome::LeftTo { .. } => self.kept += 1,
        }
    }

    /// The statistics of a run's step outcomes.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a StepOutcome>) -> Self {
        let mut s = RunStats::default();
        for o in outcomes {
            s.count(o);
        }
        s
    }
}

/// One step's line in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    pub id: StepId,
    pub kind: String,
    #[serde(flatten)]
    pub outcome: StepOutcome,
    #[serde(serialize_with = "ser_ms")]
    pub duration: Duration,
    pub apply_calls: u32,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The result of `up` or `down`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run: RunId,
    pub operation: Operation,
    pub status: RunStatus,
    pub resumed: bool,
    pub stats: RunStats,
    pub steps: Vec<StepReport>,
    /// Rollback outcomes, when the failure policy rolled back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback: Vec<StepReport>,
    /// The journal's state at the end of the run.
    #[serde(skip)]
    pub state: JournalState,
}

impl RunReport {
    /// The first failure, if any.
    pub fn first_failure(&self) -> Option<(&StepId, &str)> {
        self.steps
            .iter()
            .chain(self.rollback.iter())
            .find_map(|s| match &s.outcome {
                StepOutcome::Failed { error } => Some((&s.id, error.as_str())),
                _ => None,
            })
    }

    /// The report for one step.
    pub fn step(&self, id: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.id.as_str() == id)
    }
}
