//! `spec.wandb.components`, Weave, monitoring and Kafka: which parts of W&B run, with how many
//! replicas and what resources (the size preset, overridden per component).

use crate::build::Builder;
use crate::check::{check_resources, check_secret_ref, Checker};
use crate::compile::names;
use crate::ids::{self, outputs, Input};
use crate::kinds::GeneratedSecret;
use crate::model::Size;
use crate::resolve::Resolved;
use serde_json::json;

const KNOWN_COMPONENTS: [&str; 18] = [
    "api",
    "app",
    "frontend",
    "console",
    "executor",
    "filestream",
    "flat-run-fields-updater",
    "glue",
    "nginx",
    "parquet",
    "weave",
    "weave-trace",
    "weave-trace-worker",
    "prometheus",
    "otel",
    "anaconda2",
    "bufstream",
    "settings-migration-job",
];

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    for (name, comp) in &r.spec.wandb.components {
        let path = format!("spec.wandb.components.{name}");
        if !KNOWN_COMPONENTS.contains(&name.as_str()) {
            c.at(
                &path,
                true,
                format!("unknown component `{name}`"),
                Some(&format!(
                    "known components: {}",
                    KNOWN_COMPONENTS.join(", ")
                )),
            );
        }
        if comp.replicas.is_some_and(|r| r > 100) {
            c.value(&format!("{path}.replicas"), "at most 100 replicas");
        }
        check_resources(c, &format!("{path}.resources"), &comp.resources);
    }
    if let Some(k) = &r.spec.kafka {
        check_secret_ref(c, "spec.kafka.passwordSecret", &k.password_secret);
    }
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    preset_components(b, r);
    other_components(b, r);
    let s = r.spec;
    b.set("/global/weave-trace/enabled", json!(s.wandb.weave.enabled));
    if s.wandb.weave.trace_workers {
        b.step(
            ids::WEAVE_WORKER_AUTH,
            GeneratedSecret {
                namespace: r.ns.clone(),
                name: names::WEAVE_WORKER.into(),
                key: names::WEAVE_WORKER_KEY.into(),
                length: 32,
            },
        );
        b.need(Input::new(ids::WEAVE_WORKER_AUTH, outputs::SECRET));
    }
    b.set("/prometheus/install", json!(s.wandb.monitoring.prometheus));
    b.set("/otel/install", json!(s.wandb.monitoring.otel));
    if let Some(k) = &s.kafka {
        b.set(
            "/global/kafka",
            json!({"brokerHost": k.broker_host, "brokerPort": k.broker_port, "user": k.user, "passwordSecret": {"name": k.password_secret.name, "passwordKey": k.password_secret.key}}),
        );
    }
    b.set("/kafka/install", json!(false));
}

/// The components the size preset sets, with the plan's overrides.
fn preset_components(b: &mut Builder, r: &Resolved) {
    let s = r.spec;
    for (c, replicas, resources) in &r.preset.components {
        let o = s.wandb.components.get(*c).cloned().unwrap_or_default();
        let weave_part = c.starts_with("weave");
        let install = o.install.unwrap_or(match *c {
            "weave" | "weave-trace" => s.wandb.weave.enabled,
            "weave-trace-worker" => s.wandb.weave.trace_workers,
            "executor" | "filestream" => s.size != Size::Small,
            _ => true,
        });
        let key = if *c == "api" { "enabled" } else { "install" };
        let mut v = json!({key: install});
        if install || !weave_part {
            v["replicaCount"] = json!(o.replicas.unwrap_or(*replicas));
            if let Some(res) = o.resources.clone().or_else(|| resources.clone()) {
                v["resources"] = serde_json::to_value(res).unwrap_or_default();
            }
        }
        b.set(&format!("/{c}"), v);
    }
}

/// Components the plan names that the preset does not.
fn other_components(b: &mut Builder, r: &Resolved) {
    for (c, o) in &r.spec.wandb.components {
        if r.preset.components.iter().any(|(p, _, _)| p == c) {
            continue;
        }
        let mut v = json!({"install": o.install.unwrap_or(true)});
        if let Some(n) = o.replicas {
            v["replicaCount"] = json!(n);
        }
        if let Some(res) = &o.resources {
            v["resources"] = serde_json::to_value(res).unwrap_or_default();
        }
        b.set(&format!("/{c}"), v);
    }
}
