//! `render`: the manifests a plan applies, the Job that runs it in the cluster, and the IAM
//! policy wbstack needs.

use crate::cli::OutputFormat;
use crate::env;
use crate::exit::{CliError, Exit};
use std::path::Path;

/// The YAML documents `render` prints: the WeightsAndBiases resource and ClickHouse manifests.
pub fn render_documents(plan: &wbstack_plan::Plan) -> Vec<serde_json::Value> {
    let mut docs = Vec::new();
    for s in wbstack_plan::compile(plan) {
        if let wbstack_plan::Side::K8s(k) = s.kind.side() {
            docs.extend(wbstack_k8s::kind(k).documents());
        }
    }
    docs
}

/// YAML documents for people and GitOps repositories; one JSON object per line with
/// `--output json`.
pub(super) fn render(path: &Path, fmt: OutputFormat) -> Result<Exit, CliError> {
    let l = env::load(path)?;
    print_documents(&render_documents(&l.plan), fmt);
    Ok(Exit::Ok)
}

pub(super) fn render_job(
    l: &env::Loaded,
    namespace: &str,
    image: &str,
    role_arn: Option<&str>,
    state: &str,
    fmt: OutputFormat,
) -> Result<Exit, CliError> {
    let scope =
        wbstack_k8s::render::JobScope::of(&wbstack_plan::compile(&l.plan), l.plan.spec.verify);
    let spec = wbstack_k8s::render::JobSpec {
        scope: &scope,
        environment: &l.plan.metadata.name,
        namespace,
        plan: &l.text,
        image,
        license_env: l.plan.spec.wandb.license.env.as_deref(),
        role_arn,
        state: Some(state),
    };
    print_documents(&wbstack_k8s::render::job(&spec), fmt);
    Ok(Exit::Ok)
}

fn print_documents(docs: &[serde_json::Value], fmt: OutputFormat) {
    for d in docs {
        match fmt {
            OutputFormat::Json => println!("{d}"),
            OutputFormat::Text => println!(
                "---\n{}",
                serde_yaml_ng::to_string(&d).unwrap_or_default().trim_end()
            ),
        }
    }
}
