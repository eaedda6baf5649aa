//! What `up` does with a step, decided from what it observed, what the journal recorded and what
//! the plan wants. Pure: `up` executes the decision, `plan` previews it.

use crate::id::Fingerprint;
use crate::journal::{Phase, StepState};
use crate::step::Observation;

/// Whose a resource that is there is, as far as this environment knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Not recorded as ours: it existed before (or someone else made it); `up` records it as
    /// adopted, and teardown leaves it.
    Adopted,
    /// Ours, from a create that a crash or a signal interrupted.
    Resumed,
    /// Ours, recorded.
    Known,
}

/// What `up` does with one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing there: create it.
    Create,
    /// There with other inputs, and the step updates in place.
    Update { from: Fingerprint },
    /// There with other inputs, and the step cannot update in place: it must be replaced, which
    /// `up` refuses to do by itself.
    Replace { from: Fingerprint },
    /// Ready with the inputs the plan wants.
    Keep(Found),
    /// Being created or changed: wait for it, applying nothing.
    Wait(Found),
    /// There in a failed state.
    Broken(String),
}

/// Decides. `recorded` is the journal's state of the step; `desired` the fingerprint of the
/// plan's inputs; the observed fingerprint (a tag, an annotation) wins over the recorded one.
pub fn decide(
    observed: &Observation,
    recorded: Option<&StepState>,
    desired: &Fingerprint,
    supports_update: bool,
) -> Decision {
    let known = recorded.filter(|p| p.may_exist());
    let found = if known.is_none_or(|p| p.owner.is_none()) {
        Found::Adopted
    } else if known.is_some_and(|p| {
        p.is_owned() && matches!(p.phase, Phase::Intent { .. } | Phase::Applied { .. })
    }) {
        Found::Resumed
    } else {
        Found::Known
    };
    match observed {
        Observation::Absent => Decision::Create,
        Observation::Failed { message } => Decision::Broken(message.clone()),
        Observation::InProgress { .. } => Decision::Wait(found),
        Observation::Ready { fingerprint, .. } => {
            let current = fingerprint
                .clone()
                .or_else(|| known.and_then(|p| p.fingerprint.clone()));
            match current {
                Some(from) if &from != desired && supports_update => Decision::Update { from },
                Some(from) if &from != desired => Decision::Replace { from },
                _ => Decision::Keep(found),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::RunId;
    use crate::journal::Ownership;
    use crate::step::Action;

    fn fp(s: &str) -> Fingerprint {
        Fingerprint::from_hex(s)
    }

    fn state(phase: Phase, owner: Option<Ownership>, recorded: Option<&str>) -> StepState {
        StepState {
            phase,
            owner,
            fingerprint: recorded.map(fp),
            ..StepState::new(0)
        }
    }

    fn ready(observed: Option<&str>) -> Observation {
        Observation::Ready {
            outputs: Default::default(),
            fingerprint: observed.map(fp),
        }
    }

    const OURS: Option<Ownership> = Some(Ownership::Created { run: RunId(1) });

    #[test]
    fn absent_is_created_and_failed_is_broken_whatever_was_recorded() {
        let s = state(Phase::Ready, OURS, Some("a"));
        assert_eq!(
            decide(&Observation::Absent, Some(&s), &fp("a"), true),
            Decision::Create
        );
        let failed = Observation::Failed {
            message: "gone bad".into(),
        };
        assert_eq!(
            decide(&failed, None, &fp("a"), true),
            Decision::Broken("gone bad".into())
        );
    }

    #[test]
    fn ready_and_unrecorded_is_adopted() {
        assert_eq!(
            decide(&ready(None), None, &fp("a"), false),
            Decision::Keep(Found::Adopted)
        );
    }

    #[test]
    fn ready_with_the_recorded_fingerprint_is_kept() {
        let s = state(Phase::Ready, OURS, Some("a"));
        assert_eq!(
            decide(&ready(None), Some(&s), &fp("a"), false),
            Decision::Keep(Found::Known)
        );
    }

    #[test]
    fn an_observed_fingerprint_wins_over_the_recorded_one() {
        let s = state(Phase::Ready, OURS, Some("a"));
        assert_eq!(
            decide(&ready(Some("b")), Some(&s), &fp("a"), true),
            Decision::Update { from: fp("b") }
        );
        assert_eq!(
            decide(&ready(Some("a")), Some(&s), &fp("a"), true),
            Decision::Keep(Found::Known)
        );
    }

    #[test]
    fn changed_inputs_update_in_place_or_need_a_replacement() {
        let s = state(Phase::Ready, OURS, Some("a"));
        assert_eq!(
            decide(&ready(None), Some(&s), &fp("b"), true),
            Decision::Update { from: fp("a") }
        );
        assert_eq!(
            decide(&ready(None), Some(&s), &fp("b"), false),
            Decision::Replace { from: fp("a") }
        );
    }

    #[test]
    fn an_interrupted_create_is_resumed_not_adopted() {
        for phase in [
            Phase::Intent {
                action: Action::Create,
            },
            Phase::Applied {
                action: Action::Create,
            },
        ] {
            let s = state(phase, OURS, Some("a"));
            assert_eq!(
                decide(&ready(None), Some(&s), &fp("a"), false),
                Decision::Keep(Found::Resumed)
            );
            let busy = Observation::InProgress { detail: None };
            assert_eq!(
                decide(&busy, Some(&s), &fp("a"), false),
                Decision::Wait(Found::Resumed)
            );
        }
    }

    #[test]
    fn a_removed_step_is_forgotten() {
        let s = state(Phase::Removed, OURS, Some("a"));
        assert_eq!(
            decide(&ready(Some("a")), Some(&s), &fp("a"), false),
            Decision::Keep(Found::Adopted)
        );
    }
}
