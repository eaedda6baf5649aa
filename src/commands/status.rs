//! `status`: what the journal says of an environment, and whether a run holds it.

use crate::cli::{OutputFormat, Target};
use crate::env::target_plan;
use crate::exit::{CliError, Exit};
use wbstack_engine::Phase;

pub(super) async fn status(
    flag: Option<&str>,
    t: &Target,
    fmt: OutputFormat,
) -> Result<Exit, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let state = at.read_state().await?;
    let now = wbstack_engine::now_ms();
    let mut rows = Vec::new();
    for sp in wbstack_plan::compile(&loaded.plan) {
        let st = state.steps.get(&wbstack_engine::StepId::new(sp.id.clone()));
        let phase = match st {
            None => "not created".to_string(),
            Some(s) => match s.phase {
                Phase::Ready => "ready".into(),
                Phase::Intent { action } => format!("{action} started"),
                Phase::Applied { action } => format!("{action} applied, not ready"),
                Phase::Failed => "failed".into(),
                Phase::Removed => "removed".into(),
            },
        };
        let owner = match st.and_then(|s| s.owner) {
            Some(wbstack_engine::Ownership::Created { .. }) => "owned",
            Some(wbstack_engine::Ownership::Adopted { .. }) => "adopted",
            None => "-",
        };
        let age = st
            .and_then(|s| s.created_at_ms.or(s.ready_at_ms))
            .map(|t| human_age(now.saturating_sub(t)))
            .unwrap_or_else(|| "-".into());
        let endpoint = st
            .and_then(|s| s.outputs.as_ref())
            .and_then(|o| {
                o.get("endpoint")
                    .or_else(|| o.get("host"))
                    .or_else(|| o.get("name"))
            })
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| "-".into());
        let error = st.and_then(|s| s.last_error.clone());
        rows.push((sp.id.clone(), phase, owner, age, endpoint, error));
    }
    let last = state.last_run().map(|r| {
        format!(
            "{} {:?} {}",
            r.run,
            r.operation,
            r.status
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|| "unfinished".into())
        )
    });
    if fmt == OutputFormat::Json {
        let steps: Vec<_> = rows
            .iter()
            .map(|(id, phase, owner, age, endpoint, error)| serde_json::json!({"step": id, "state": phase, "ownership": owner, "age": age, "endpoint": endpoint, "error": error}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"environment": loaded.plan.metadata.name, "last_run": last, "steps": steps})
        );
    } else {
        println!(
            "environment {} ({}), last run: {}",
            loaded.plan.metadata.name,
            at.location(),
            last.unwrap_or_else(|| "none".into())
        );
        println!(
            "{:<26} {:<26} {:<8} {:<6} ENDPOINT",
            "STEP", "STATE", "OWNER", "AGE"
        );
        for (id, phase, owner, age, endpoint, error) in rows {
            println!("{id:<26} {phase:<26} {owner:<8} {age:<6} {endpoint}");
            if let Some(e) = error {
                println!("  last error: {e}");
            }
        }
    }
    Ok(Exit::Ok)
}

fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
