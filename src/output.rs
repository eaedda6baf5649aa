//! `output`: what an environment gives its users and scripts, from its journal: the URL, each
//! step's endpoints and identifiers, the Secret references (never values) and where the state
//! lives.

use crate::cli::{OutputFormat, Target};
use crate::env::target_plan;
use crate::exit::{CliError, Exit};
use serde_json::{json, Map, Value};
use wbstack_engine::{Phase, SecretRef, StepId};

pub async fn output(flag: Option<&str>, t: &Target, fmt: OutputFormat) -> Result<Exit, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    if !at.has_journal().await? {
        return Err(CliError::invalid(format!(
            "environment {} has not been brought up (no journal in {})",
            loaded.plan.metadata.name,
            at.location()
        )));
    }
    let state = at.read_state().await?;
    let mut steps = Map::new();
    let mut secrets = Vec::new();
    for sp in wbstack_plan::compile(&loaded.plan) {
        let Some(st) = state.steps.get(&StepId::new(sp.id.clone())) else {
            continue;
        };
        let (Phase::Ready, Some(outputs)) = (&st.phase, &st.outputs) else {
            continue;
        };
        let mut shown = Map::new();
        for (k, v) in outputs {
            match SecretRef::from_output(v).filter(|_| v.is_object()) {
                Some(r) => {
                    secrets.push(json!({"step": sp.id, "secret": r.to_string()}));
                    shown.insert(k.clone(), json!(r.to_string()));
                }
                None => {
                    shown.insert(k.clone(), v.clone());
                }
            }
        }
        steps.insert(sp.id.clone(), Value::Object(shown));
    }
    let doc = json!({
        "environment": loaded.plan.metadata.name,
        "url": loaded.plan.spec.wandb.host,
        "namespace": loaded.plan.spec.kubernetes.namespace,
        "state": at
            .local_dir()
            .map(|d| std::fs::canonicalize(d).unwrap_or(d.to_owned()).display().to_string())
            .unwrap_or_else(|| at.location()),
        "steps": steps,
        "secrets": secrets,
    });
    if fmt == OutputFormat::Json {
        println!("{doc}");
    } else {
        print_text(&doc);
    }
    Ok(Exit::Ok)
}

fn print_text(doc: &Value) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    println!("{}", s(&doc["environment"]));
    for k in ["url", "namespace", "state"] {
        println!("  {k:<10} {}", s(&doc[k]));
    }
    for (step, outs) in doc["steps"].as_object().into_iter().flatten() {
        let pairs: Vec<String> = outs
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", s(v)))
            .collect();
        println!("  {step}: {}", pairs.join(" "));
    }
}
