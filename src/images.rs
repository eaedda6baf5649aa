//! `images`: every image a plan deploys (the operator, ClickHouse and Keeper, each chart
//! component the plan installs, read from the pinned chart's table), through the plan's
//! registry (`spec.images.registry`), for mirroring into an air-gapped registry. Nothing is
//! contacted.

use crate::cli::OutputFormat;
use crate::exit::{CliError, Exit};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wbstack_plan::{with_registry, OperatorInstall, StepKind};

/// Each image, with what uses it.
pub fn list(plan: &wbstack_plan::Plan) -> BTreeMap<String, BTreeSet<String>> {
    let reg = plan.spec.images.registry.as_deref();
    let mut rows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |image: &str, by: &str| {
        rows.entry(image.to_owned())
            .or_default()
            .insert(by.to_owned());
    };
    for sp in wbstack_plan::compile(plan) {
        match &sp.kind {
            StepKind::Operator(o) if o.install == OperatorInstall::Auto => {
                add(&o.image, "operator")
            }
            StepKind::ClickhouseBundled(c) => {
                add(&c.image, "clickhouse");
                add(&c.keeper_image, "clickhouse-keeper");
            }
            StepKind::ClickhouseAltinity(c) => add(&c.image, "clickhouse"),
            StepKind::WandbResource(w) => {
                for comp in wbstack_chart::operator_wandb().installed(&w.values) {
                    for c in comp.workloads.iter().flat_map(|wl| &wl.containers) {
                        add(&with_registry(reg, &c.image), &comp.name);
                    }
                }
            }
            _ => {}
        }
    }
    rows
}

pub fn images(path: &Path, fmt: OutputFormat) -> Result<Exit, CliError> {
    let l = crate::env::load(path)?;
    let rows = list(&l.plan);
    for (image, by) in &rows {
        let by: Vec<&str> = by.iter().map(String::as_str).collect();
        match fmt {
            OutputFormat::Json => {
                println!("{}", serde_json::json!({"image": image, "used_by": by}))
            }
            OutputFormat::Text => println!("{image:<72} {}", by.join(", ")),
        }
    }
    Ok(Exit::Ok)
}
