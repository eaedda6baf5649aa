//! `list`: the environments a state directory holds, each with its last run and whether a run
//! holds it now. Read-only: nothing is locked or changed.

use crate::cli::OutputFormat;
use crate::exit::{CliError, Exit};
use crate::state::Store;
use serde_json::json;
use wbstack_engine::now_ms;

pub async fn list(flag: Option<&str>, fmt: OutputFormat) -> Result<Exit, CliError> {
    let store = Store::open(&crate::env::location(flag, None)).await?;
    let mut rows = Vec::new();
    for (name, sandbox, at) in store.environments().await? {
        let state = at.read_state().await?;
        let last = state.last_run().map(|r| {
            json!({"operation": format!("{:?}", r.operation).to_lowercase(),
                "status": r.status.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_else(|| "unfinished".into()),
                "finished_at_ms": r.finished_at_ms})
        });
        let holder = at
            .holder()
            .await?
            .filter(|h| !h.is_expired(now_ms()))
            .map(|h| h.to_string());
        rows.push(
            json!({"environment": name, "sandbox": sandbox, "state": at.location(),
            "resources": state.owned_steps().count(), "last_run": last, "locked_by": holder}),
        );
    }
    if fmt == OutputFormat::Json {
        for r in &rows {
            println!("{r}");
        }
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        println!("no environments in {}", store.describe());
        return Ok(Exit::Ok);
    }
    println!(
        "{:<28} {:<9} {:<24} LOCK",
        "ENVIRONMENT", "OWNED", "LAST RUN"
    );
    for r in &rows {
        let last = r["last_run"]
            .as_object()
            .map(|l| {
                format!(
                    "{} {}",
                    l["operation"].as_str().unwrap_or(""),
                    l["status"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_else(|| "-".into());
        let env = format!(
            "{}{}",
            r["environment"].as_str().unwrap_or(""),
            if r["sandbox"] == true {
                " (sandbox)"
            } else {
                ""
            }
        );
        println!(
            "{env:<28} {:<9} {last:<24} {}",
            r["resources"],
            r["locked_by"].as_str().unwrap_or("-")
        );
    }
    Ok(Exit::Ok)
}
