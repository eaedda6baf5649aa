//! What `up` does with a step, decided from what it observed, what the journal recorded and what
//! the plan wants. `decide` is pure; [`decision`] adds what only the step can tell (the changes an
//! update makes) and what the run allows (`--replace`). `up` executes that decision and `plan`
//! previews the very same one.

use crate::id::Fingerprint;
use crate::journal::{Phase, StepState};
use crate::step::{Action, Change, Observation, Step, StepCtx, StepError};

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
    /// The old resource of a replacement cut short is still going: wait until it is gone, then
    /// make the new one.
    FinishReplacement,
    /// A change only a new resource can take, which this run may not make: `up` stops here with
    /// `message` (how to allow it, or why it cannot be). `drift`: the inputs changed and the step
    /// cannot update at all (else some of its changes need a new resource).
    Refused { drift: bool, message: String },
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
        Observation::InProgress { .. } if known.is_some_and(destroying) => {
            Decision::FinishReplacement
        }
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

/// Whether the journal shows this environment's resource being destroyed (a replacement's first
/// half).
fn destroying(p: &StepState) -> bool {
    p.is_owned()
        && matches!(
            p.phase,
            Phase::Intent {
                action: Action::Destroy
            } | Phase::Applied {
                action: Action::Destroy
            }
        )
}

/// What the step and the run are like, beyond what `decide` reads.
#[derive(Clone, Copy, Debug)]
pub struct Allowed<'a> {
    /// The step's id and kind, for the messages.
    pub id: &'a str,
    pub kind: &'a str,
    /// `--replace` names this step.
    pub replace: bool,
}

/// The whole decision for a step, for `up` and `plan` alike: `decide`, then, for an update, the
/// changes the step would make (one that only a new resource can take makes it a replacement),
/// and a replacement is allowed only for this environment's own resource named by `--replace`.
/// Returns the decision and the changes.
pub async fn decision(
    step: &dyn Step,
    ctx: &StepCtx,
    observed: &Observation,
    recorded: Option<&StepState>,
    allowed: Allowed<'_>,
) -> Result<(Decision, Vec<Change>), StepError> {
    let desired = step.fingerprint();
    let base = decide(observed, recorded, &desired, step.supports_update());
    let changes = match &base {
        Decision::Update { .. } => step.changes(ctx).await?,
        _ => Vec::new(),
    };
    let owned = recorded.is_some_and(|p| p.is_owned());
    Ok((permit(base, &changes, owned, &desired, allowed), changes))
}

/// What `--replace` and ownership allow of a decision.
fn permit(
    d: Decision,
    changes: &[Change],
    owned: bool,
    desired: &Fingerprint,
    a: Allowed<'_>,
) -> Decision {
    let id = a.id;
    let may_replace = owned && a.replace;
    match d {
        Decision::Update { from } if changes.iter().any(|c| c.replaces) => {
            if may_replace {
                return Decision::Replace { from };
            }
            let replacing: Vec<String> = changes
                .iter()
                .filter(|c| c.replaces)
                .map(|c| c.to_string())
                .collect();
            Decision::Refused {
                drift: false,
                message: format!(
                "`{id}` cannot take these changes in place: {}; wbstack does not replace a {} unless told to (change the plan back, or allow it with --replace {id}{})",
                replacing.join("; "),
                a.kind,
                if owned { "" } else { ", which only a resource this environment made can be" }
            ),
            }
        }
        Decision::Replace { from } if !may_replace => Decision::Refused {
            drift: true,
            message: format!(
            "drift: the inputs of `{id}` changed since it was applied (fingerprint {} -> {}) and a {} cannot be updated in place; replace needed (allow it with --replace {id}, or destroy it and run up again)",
            from.short(),
            desired.short(),
            a.kind
        ),
        },
        d => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::RunId;
    use crate::journal::Ownership;

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
    fn a_replacement_cut_short_is_finished_not_waited_on() {
        // `plan` used to preview this as "wait" while `up` finished the replacement.
        for phase in [
            Phase::Intent {
                action: Action::Destroy,
            },
            Phase::Applied {
                action: Action::Destroy,
            },
        ] {
            let s = state(phase, OURS, Some("a"));
            let going = Observation::InProgress { detail: None };
            assert_eq!(
                decide(&going, Some(&s), &fp("a"), true),
                Decision::FinishReplacement
            );
        }
    }

    #[test]
    fn a_replacement_is_allowed_only_for_our_own_resource_named_by_replace() {
        let a = |replace| Allowed {
            id: "aws.mysql",
            kind: "aws.rds.mysql",
            replace,
        };
        let drift = Decision::Replace { from: fp("a") };
        assert_eq!(permit(drift.clone(), &[], true, &fp("b"), a(true)), drift);
        for (owned, replace) in [(true, false), (false, true), (false, false)] {
            let d = permit(drift.clone(), &[], owned, &fp("b"), a(replace));
            assert!(
                matches!(&d, Decision::Refused { drift: true, message } if message.contains("--replace aws.mysql")),
                "{d:?}"
            );
        }
        let engine = Change {
            field: "engine".into(),
            from: "mysql".into(),
            to: "aurora-mysql".into(),
            replaces: true,
        };
        let update = Decision::Update { from: fp("a") };
        let changes = std::slice::from_ref(&engine);
        assert_eq!(
            permit(update.clone(), changes, true, &fp("b"), a(true)),
            Decision::Replace { from: fp("a") }
        );
        let refused = permit(update.clone(), changes, false, &fp("b"), a(true));
        assert!(
            matches!(&refused, Decision::Refused { drift: false, message } if message.contains("only a resource this environment made")),
            "{refused:?}"
        );
        assert_eq!(
            permit(update.clone(), &[], false, &fp("b"), a(false)),
            update
        );
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
