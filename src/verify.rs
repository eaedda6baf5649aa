//! `verify`: the probes of a running environment, run from where wbstack runs, each with its
//! verdict; a summary line; exit 0 when nothing failed, 7 when something did.

use crate::cli::{OutputFormat, Target};
use crate::cluster::connect;
use crate::env::target_plan;
use crate::exit::{CliError, Exit};
use std::time::{Duration, Instant};
use wbstack_verify::{run_all, Finding, Probe, References, Summary, Verdict};

/// How long one probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(20);

pub async fn verify(flag: Option<&str>, t: &Target, fmt: OutputFormat) -> Result<Exit, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let plan = &loaded.plan;
    let conn = connect(t, plan, &at).await?;
    let namespace = plan.spec.kubernetes.namespace.clone();
    let resource = plan.spec.wandb.name.clone();
    let probes: Vec<Box<dyn Probe>> = vec![Box::new(References {
        kube: conn.kube.clone(),
        namespace,
        resource,
    })];
    let started = Instant::now();
    let findings = run_all(&probes, PROBE_LIMIT).await;
    let took = started.elapsed();
    conn.close();
    let summary = Summary::of(&findings);
    print(&plan.metadata.name, &findings, summary, took, fmt);
    Ok(if summary.fail > 0 {
        Exit::VerifyFailed
    } else {
        Exit::Ok
    })
}

fn print(env: &str, findings: &[Finding], s: Summary, took: Duration, fmt: OutputFormat) {
    if fmt == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({"environment": env, "findings": findings, "summary": s, "ms": took.as_millis() as u64})
        );
        return;
    }
    for f in findings {
        println!(
            "{:<5} {:<11} {}: {}",
            f.verdict.label(),
            f.probe,
            f.checked,
            f.seen
        );
        if let Some(todo) = f.todo.as_ref().filter(|_| f.verdict != Verdict::Pass) {
            println!("{:<17} -> {todo}", "");
        }
    }
    println!(
        "{env}: {} passed, {} warned, {} failed, {} skipped in {:.1} s",
        s.pass,
        s.warn,
        s.fail,
        s.skip,
        took.as_secs_f64()
    );
}
