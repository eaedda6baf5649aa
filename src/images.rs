//! `images`: every image a plan deploys (the operator, ClickHouse and Keeper, each chart
//! component the plan installs, read from the pinned chart's table), through the plan's
//! registry (`spec.images.registry`), with the digest the plan pins it to
//! (`spec.images.digests`), for mirroring into an air-gapped registry. Nothing is contacted.

use crate::cli::OutputFormat;
use crate::exit::{CliError, Exit};
use std::path::Path;

pub fn images(path: &Path, fmt: OutputFormat) -> Result<Exit, CliError> {
    let l = crate::env::load(path)?;
    let digests = &l.plan.spec.images.digests;
    for (image, (by, _)) in wbstack_plan::images(&l.plan) {
        let by: Vec<&str> = by.iter().map(String::as_str).collect();
        let digest = digests.get(&image);
        match fmt {
            OutputFormat::Json => println!(
                "{}",
                serde_json::json!({"image": image, "digest": digest, "used_by": by})
            ),
            OutputFormat::Text => {
                let shown = wbstack_plan::pinned(&image, digests);
                println!("{shown:<72} {}", by.join(", "))
            }
        }
    }
    Ok(Exit::Ok)
}
