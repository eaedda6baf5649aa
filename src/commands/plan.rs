//! `plan`: what `up` would do, step by step, decided as `up` decides (the engine's `decision`),
//! in typed rows that the text and JSON outputs render; `--detailed-exitcode` is read from them.

use crate::cli::{OutputFormat, Target};
use crate::cluster::connect;
use crate::env::{self, target_plan};
use crate::exit::CliError;
use std::collections::BTreeMap;
use wbstack_engine::{
    decision, Allowed, CancellationToken, Change, Decision, EventSink, Found, Observation, Outputs,
    StepCtx, StepId,
};

/// What `up` would do with one step: its decision, or why none could be made.
enum Action {
    Decided(Decision, Option<String>),
    /// The step could not be observed (or asked for its changes).
    Unknown(String),
}

/// One step of `plan`'s answer.
struct Row {
    step: String,
    kind: String,
    action: Action,
    changes: Vec<Change>,
}

/// What `plan` found `up` would do.
pub(super) enum Pending {
    None,
    Changes,
    /// A step could not be observed, or its resource is broken.
    Unknown,
}

impl Action {
    /// What `up` would do, in a word or two.
    fn preview(&self) -> String {
        let (d, detail) = match self {
            Action::Unknown(e) => return format!("unknown: {e}"),
            Action::Decided(d, detail) => (d, detail),
        };
        match d {
            Decision::Create => "create".into(),
            Decision::Update { .. } => "update".into(),
            Decision::Replace { .. } => "replace".into(),
            Decision::FinishReplacement => "replace (finishing one cut short)".into(),
            Decision::Refused { drift: true, .. } => "replace (drift)".into(),
            Decision::Refused { drift: false, .. } => "replace (refused by up)".into(),
            Decision::Keep(Found::Adopted) => "adopt (exists)".into(),
            Decision::Keep(_) => "unchanged".into(),
            Decision::Wait(_) => match detail {
                Some(d) => format!("wait ({d})"),
                None => "wait".into(),
            },
            Decision::Broken(message) => format!("fails: {message}"),
        }
    }

    fn pending(&self) -> Pending {
        match self {
            Action::Unknown(_) | Action::Decided(Decision::Broken(_), _) => Pending::Unknown,
            Action::Decided(Decision::Keep(_) | Decision::Wait(_), _) => Pending::None,
            Action::Decided(_, _) => Pending::Changes,
        }
    }
}

/// Without IRSA, the policy the nodes' role needs, with the key's ARN once the key exists.
fn node_role_policy(
    plan: &wbstack_plan::Plan,
    outputs: &BTreeMap<StepId, Outputs>,
) -> Option<serde_json::Value> {
    let policy = wbstack_plan::pod_access(plan)?;
    let key = outputs
        .iter()
        .find(|(id, _)| id.as_str() == wbstack_plan::ids::KMS)
        .and_then(|(_, o)| o.get(wbstack_plan::ids::outputs::ARN))
        .and_then(|v| v.as_str());
    let Some(key) = key else {
        return Some(policy);
    };
    let hole = format!(
        "<{}: {}>",
        wbstack_plan::ids::KMS,
        wbstack_plan::ids::outputs::ARN
    );
    serde_json::from_str(&policy.to_string().replace(&hole, key)).ok()
}

/// `plan`: observes each step read-only and says what `up` (with `--replace` for `replace`)
/// would do.
pub(super) async fn plan(
    flag: Option<&str>,
    t: &Target,
    replace: &[String],
    fmt: OutputFormat,
) -> Result<Pending, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let license = env::license(&loaded)?;
    let steps = wbstack_plan::compile(&loaded.plan);
    let state = at.read_state().await?;
    let conn = connect(t, &loaded.plan, &at).await?;
    let aws = crate::aws::connect(&loaded.plan, &steps, &[], false, t.sandbox).await?;
    let graph = crate::wiring::graph(
        &loaded.plan,
        &steps,
        &conn.kube,
        aws.as_ref(),
        &license,
        None,
    )?;
    let mut rows = Vec::new();
    let mut outputs: BTreeMap<StepId, Outputs> = BTreeMap::new();
    for spec in graph.specs() {
        let deps = spec
            .deps
            .iter()
            .filter_map(|d| outputs.get(d).map(|o| (d.clone(), o.clone())))
            .collect();
        let recorded = state.steps.get(&spec.id);
        let prev = recorded.and_then(|s| s.outputs.clone());
        let ctx = StepCtx::new(
            spec.id.clone(),
            wbstack_engine::RunId(0),
            deps,
            prev,
            CancellationToken::new(),
            EventSink::new(),
        );
        let allowed = Allowed {
            id: spec.id.as_str(),
            kind: spec.step.kind(),
            replace: replace.iter().any(|r| r == spec.id.as_str()),
        };
        let (action, changes) = match spec.step.observe(&ctx).await {
            Err(e) => (Action::Unknown(e.full_message()), Vec::new()),
            Ok(observed) => {
                let decided =
                    decision(spec.step.as_ref(), &ctx, &observed, recorded, allowed).await;
                let detail = match &observed {
                    Observation::InProgress { detail } => detail.clone(),
                    _ => None,
                };
                if let Observation::Ready { outputs: o, .. } = observed {
                    outputs.insert(spec.id.clone(), o);
                }
                match decided {
                    Ok((d, changes)) => (Action::Decided(d, detail), changes),
                    Err(e) => (Action::Unknown(e.full_message()), Vec::new()),
                }
            }
        };
        rows.push(Row {
            step: spec.id.to_string(),
            kind: spec.step.kind().to_owned(),
            action,
            changes,
        });
    }
    drop(graph);
    conn.close();
    let node_role = node_role_policy(&loaded.plan, &outputs);
    print(&loaded.plan.metadata.name, &rows, node_role.as_ref(), fmt);
    let pending: Vec<Pending> = rows.iter().map(|r| r.action.pending()).collect();
    Ok(if pending.iter().any(|p| matches!(p, Pending::Unknown)) {
        Pending::Unknown
    } else if pending.iter().any(|p| matches!(p, Pending::Changes)) {
        Pending::Changes
    } else {
        Pending::None
    })
}

fn print(env: &str, rows: &[Row], node_role: Option<&serde_json::Value>, fmt: OutputFormat) {
    if fmt == OutputFormat::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"step": r.step, "kind": r.kind, "action": r.action.preview(), "changes": r.changes}))
            .collect();
        let mut out = serde_json::json!({"environment": env, "steps": v});
        if let Some(p) = node_role {
            out["nodeRolePolicy"] = p.clone();
        }
        println!("{out}");
        return;
    }
    println!("{:<26} {:<30} ACTION", "STEP", "KIND");
    for r in rows {
        println!("{:<26} {:<30} {}", r.step, r.kind, r.action.preview());
        for c in &r.changes {
            let sign = if c.replaces { "-/+" } else { "~" };
            println!("    {sign} {c}");
        }
    }
    if let Some(p) = node_role {
        println!("\nWithout spec.aws.irsa, W&B and ClickHouse use the nodes' IAM role; it needs this policy:");
        println!(
            "{}",
            serde_json::to_string_pretty(p).unwrap_or_else(|_| p.to_string())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_cut_short_is_previewed_as_the_replacement_up_finishes() {
        // `plan` once called this "wait" (nothing pending) while `up` destroyed and made it.
        let a = Action::Decided(Decision::FinishReplacement, None);
        assert_eq!(a.preview(), "replace (finishing one cut short)");
        assert!(matches!(a.pending(), Pending::Changes));
        let refused = Action::Decided(
            Decision::Refused {
                drift: false,
                message: "m".into(),
            },
            None,
        );
        assert_eq!(refused.preview(), "replace (refused by up)");
        let waiting = Action::Decided(Decision::Wait(Found::Known), Some("2/3".into()));
        assert_eq!(waiting.preview(), "wait (2/3)");
        assert!(matches!(waiting.pending(), Pending::None));
        assert!(matches!(
            Action::Unknown("x".into()).pending(),
            Pending::Unknown
        ));
    }
}
