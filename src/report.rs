//! `report`: a run's timeline from the events it recorded, the journal's outputs and the plan's
//! step graph: text, `--output json`, or a self-contained HTML page (`--html FILE`).

use crate::cli::{OutputFormat, Target};
use crate::env::target_plan;
use crate::exit::{CliError, Exit};
use std::collections::BTreeMap;
use std::path::Path;
use wbstack_report::{StepNode, Timeline};

pub async fn report(
    flag: Option<&str>,
    t: &Target,
    run: Option<u64>,
    html: Option<&Path>,
    fmt: OutputFormat,
) -> Result<Exit, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let name = loaded.plan.metadata.name.clone();
    let state = at.read_state().await?;
    let Some(run) = run.or_else(|| state.last_run().map(|r| r.run.0)) else {
        return Err(CliError::invalid(format!(
            "environment {name} has no run recorded in {}",
            at.location()
        )));
    };
    let text = at.read_events(run).await?.ok_or_else(|| {
        CliError::invalid(format!(
            "no events recorded for run {run} of {name} in {} (its runs: {})",
            at.location(),
            state
                .runs
                .iter()
                .map(|r| r.run.0.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let nodes: Vec<StepNode> = wbstack_plan::compile(&loaded.plan)
        .into_iter()
        .map(|sp| StepNode {
            kind: sp.kind.label().to_owned(),
            id: sp.id,
            deps: sp.deps,
        })
        .collect();
    let outputs: BTreeMap<String, serde_json::Value> = state
        .steps
        .iter()
        .filter_map(|(id, s)| {
            Some((
                id.to_string(),
                serde_json::to_value(s.outputs.as_ref()?).ok()?,
            ))
        })
        .collect();
    let timeline = Timeline::build(&name, run, &events, &nodes, &outputs);
    if let Some(path) = html {
        std::fs::write(path, wbstack_report::html(&timeline))
            .map_err(|e| CliError::environment(format!("cannot write {}: {e}", path.display())))?;
        if fmt == OutputFormat::Text {
            eprintln!("{name}: run {run}'s report written to {}", path.display());
        }
    }
    match fmt {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string(&timeline).map_err(|e| CliError::environment("").because(e))?
        ),
        OutputFormat::Text => print_text(&timeline),
    }
    Ok(Exit::Ok)
}

fn print_text(t: &Timeline) {
    let secs = |ms: u64| format!("{:.1}s", ms as f64 / 1000.0);
    println!(
        "{} run {} ({}, {}), {}",
        t.environment,
        t.run,
        t.operation,
        t.status,
        secs(t.end_ms.saturating_sub(t.start_ms))
    );
    for s in &t.steps {
        let from = s.start_ms.saturating_sub(t.start_ms);
        println!(
            "  {} {:<26} {:<22} at {:>7} for {:>7}{}",
            if s.critical { "*" } else { " " },
            s.id,
            s.outcome,
            secs(from),
            secs(s.end_ms.saturating_sub(s.start_ms)),
            if s.retries > 0 {
                format!(", {} retries", s.retries)
            } else {
                String::new()
            }
        );
    }
    println!("critical path (*): {}", t.critical_path.join(" -> "));
    for pair in t.marks.chunks(2) {
        if let [stop, resumed] = pair {
            println!(
                "{} at {}, resumed at {} ({} with nothing running, counted in no step)",
                stop.kind,
                secs(stop.at_ms.saturating_sub(t.start_ms)),
                secs(resumed.at_ms.saturating_sub(t.start_ms)),
                secs(resumed.at_ms.saturating_sub(stop.at_ms))
            );
        }
    }
}
