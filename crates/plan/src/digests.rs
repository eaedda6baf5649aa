//! Images pinned by digest (`spec.images.digests`, keyed by the image as `images` lists it):
//! the operator and ClickHouse run `image@digest`, and each W&B service built on the chart's
//! `wandb-base` gets `<service>.image.digest`, which the chart renders as `repository@digest`.

use crate::check::Checker;
use crate::kinds::ImageUse;
use crate::model::{with_registry, Plan};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// `image` pinned to its digest, when the plan gives one.
pub fn pinned(image: &str, digests: &BTreeMap<String, String>) -> String {
    match digests.get(image) {
        Some(d) => format!("{image}@{d}"),
        None => image.to_owned(),
    }
}

/// The image an entry names, without a digest it was pinned to.
fn unpinned(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// Every image a plan deploys (through its registry), with what uses it, and whether the plan
/// can pin it by digest.
pub fn images(plan: &Plan) -> BTreeMap<String, (BTreeSet<String>, bool)> {
    let reg = plan.spec.images.registry.as_deref();
    let mut rows: BTreeMap<String, (BTreeSet<String>, bool)> = BTreeMap::new();
    for sp in crate::compile(plan) {
        for u in sp.kind.footprint(reg).images {
            let row = rows.entry(unpinned(&u.image).to_owned()).or_default();
            row.0.insert(u.used_by);
            row.1 |= u.pinnable;
        }
    }
    rows
}

/// The images of the chart's components the values install, through the registry; a service's
/// own image can be pinned.
pub(crate) fn chart_images(reg: Option<&str>, values: &Value) -> Vec<ImageUse> {
    let mut out = Vec::new();
    for comp in wbstack_chart::operator_wandb().installed(values) {
        let main = main_image(comp);
        for c in comp.workloads.iter().flat_map(|wl| &wl.containers) {
            out.push(ImageUse {
                image: with_registry(reg, &c.image),
                used_by: comp.name.clone(),
                pinnable: comp.chart == "wandb-base" && Some(&c.image) == main,
            });
        }
    }
    out
}

/// A W&B service's own image (`<service>.image`): its first workload's first container's.
fn main_image(comp: &wbstack_chart::Component) -> Option<&String> {
    comp.workloads
        .first()
        .and_then(|w| w.containers.first())
        .map(|c| &c.image)
}

/// `<service>.image.digest` for each installed W&B service whose image is pinned.
pub(crate) fn chart_digests(plan: &Plan, values: &mut Value) {
    let digests = &plan.spec.images.digests;
    if digests.is_empty() {
        return;
    }
    let reg = plan.spec.images.registry.as_deref();
    let mut set = Vec::new();
    for comp in wbstack_chart::operator_wandb().installed(values) {
        let Some(main) = main_image(comp).filter(|_| comp.chart == "wandb-base") else {
            continue;
        };
        if let Some(d) = digests.get(&with_registry(reg, main)) {
            set.push((comp.name.clone(), d.clone()));
        }
    }
    for (name, d) in set {
        if values[&name]["image"]["digest"].is_null() {
            values[&name]["image"]["digest"] = json!(d);
        }
    }
}

/// Every digest is `sha256:` and 64 hex digits, for an image the plan deploys and can pin.
pub(crate) fn check(c: &mut Checker, plan: &Plan) {
    let digests = &plan.spec.images.digests;
    if digests.is_empty() {
        return;
    }
    let listed = images(plan);
    for (image, d) in digests {
        let at = "spec.images.digests";
        let hex = d.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            c.value(
                at,
                format!("`{d}` (for {image}) is not a digest like sha256:<64 hex digits>"),
            );
            continue;
        }
        match listed.get(image) {
            Some((_, true)) => {}
            Some((by, false)) => c.value(
                at,
                format!(
                    "{image} ({}) cannot be pinned by the plan: the chart has no digest for it",
                    by.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            None => c.value_help(
                at,
                format!("the plan deploys no image {image}"),
                "key each digest by the image as `wbstack images` lists it",
            ),
        }
    }
}
