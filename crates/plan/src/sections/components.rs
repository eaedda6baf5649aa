//! `spec.wandb.components`, Weave, monitoring and Kafka: which parts of W&B run, with how many
//! replicas and what resources (the size preset, overridden per component). Each is switched on
//! by the values path the chart's `Chart.yaml` names for it (`global.api.enabled` for the API,
//! `app.install` for the app), read from the chart table.

use crate::build::Builder;
use crate::check::{check_resources, check_secret_ref, Checker};
use crate::compile::names;
use crate::ids::{self, outputs, Input};
use crate::kinds::GeneratedSecret;
use crate::model::{ComponentSpec, Resources, Size};
use crate::resolve::Resolved;
use serde_json::{json, Value};
use wbstack_chart::operator_wandb;

/// Chart components a plan's own sections run: not set through `components`.
const BY_SECTION: [(&str, &str); 4] = [
    ("mysql", "spec.mysql"),
    ("redis", "spec.redis"),
    ("clickhouse", "spec.clickhouse"),
    ("kafka", "spec.kafka"),
];

/// Values a component needs besides its switch, read from the chart's templates: the executor's
/// task queue stays `noop://` unless `global.executor.enabled` is set.
const COMPANIONS: [(&str, &str); 1] = [("executor", "/global/executor/enabled")];

/// The JSON pointer of a dotted values path.
pub(crate) fn pointer(dotted: &str) -> String {
    format!("/{}", dotted.replace('.', "/"))
}

/// The names `components` accepts: the chart's, less those the plan's sections run.
fn known() -> Vec<&'static str> {
    operator_wandb()
        .components
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| BY_SECTION.iter().all(|(s, _)| s != n))
        .collect()
}

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let known = known();
    for (name, comp) in &r.spec.wandb.components {
        let path = format!("spec.wandb.components.{name}");
        if let Some((_, section)) = BY_SECTION.iter().find(|(s, _)| s == name) {
            c.at(
                &path,
                true,
                format!("`{name}` is not a component here"),
                Some(&format!("configure it in {section}")),
            );
        } else if !known.contains(&name.as_str()) {
            c.at(
                &path,
                true,
                format!("unknown component `{name}`"),
                Some(&format!(
                    "the operator-wandb chart's components: {}",
                    known.join(", ")
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
    if let Some(cache) = &r.spec.wandb.weave.cache {
        let at = "spec.wandb.weave.cache";
        if cache.interval_in_hours == Some(0) {
            c.value(&format!("{at}.intervalInHours"), "at least 1 hour");
        }
        if let Some(size) = &cache.size {
            if crate::check::quantity_bytes(size).is_none_or(|b| b == 0) {
                c.value_help(
                    &format!("{at}.size"),
                    format!("`{size}` is not a size"),
                    "a storage quantity, like 20Gi",
                );
            }
        }
    }
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    preset_components(b, r);
    other_components(b, r);
    let s = r.spec;
    b.set("/global/weave-trace/enabled", json!(s.wandb.weave.enabled));
    if let Some(cache) = s
        .wandb
        .weave
        .cache
        .as_ref()
        .filter(|_| s.wandb.weave.enabled)
    {
        if let Some(h) = cache.interval_in_hours {
            b.set("/weave/cache/intervalInHours", json!(h));
        }
        if let Some(size) = &cache.size {
            b.set("/weave/cache/size", json!(size));
        }
    }
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
    switch(b, "prometheus", s.wandb.monitoring.prometheus);
    switch(b, "otel", s.wandb.monitoring.otel);
    if let Some(k) = &s.kafka {
        b.set(
            "/global/kafka",
            json!({"brokerHost": k.broker_host, "brokerPort": k.broker_port, "user": k.user, "passwordSecret": {"name": k.password_secret.name, "passwordKey": k.password_secret.key}}),
        );
    }
    switch(b, "kafka", false);
}

/// Sets a component's switch (and what it needs besides).
pub(crate) fn switch(b: &mut Builder, component: &str, on: bool) {
    let c = operator_wandb()
        .component(component)
        .expect("only the chart's components are switched");
    b.set(&pointer(&c.switch), json!(on));
    for (_, companion) in COMPANIONS.iter().filter(|(n, _)| *n == component) {
        b.set(companion, json!(on));
    }
}

/// A component's replicas and resources, under its name.
fn size(b: &mut Builder, component: &str, replicas: u32, resources: Option<&Resources>) {
    b.set(&format!("/{component}/replicaCount"), json!(replicas));
    if let Some(res) = resources {
        let v: Value = serde_json::to_value(res).unwrap_or_default();
        b.set(&format!("/{component}/resources"), v);
    }
}

/// The components the size preset sets, with the plan's overrides.
fn preset_components(b: &mut Builder, r: &Resolved) {
    let s = r.spec;
    for (c, replicas, resources) in &r.preset.components {
        let o = s.wandb.components.get(*c).cloned().unwrap_or_default();
        let install = o.install.unwrap_or(match *c {
            "weave" | "weave-trace" => s.wandb.weave.enabled,
            "weave-trace-worker" => s.wandb.weave.trace_workers,
            "executor" | "filestream" => s.size != Size::Small,
            _ => true,
        });
        switch(b, c, install);
        if install || !c.starts_with("weave") {
            let res = o.resources.as_ref().or(resources.as_ref());
            size(b, c, o.replicas.unwrap_or(*replicas), res);
        }
    }
}

/// Components the plan names that the preset does not.
fn other_components(b: &mut Builder, r: &Resolved) {
    for (c, o) in &r.spec.wandb.components {
        let preset = r.preset.components.iter().any(|(p, _, _)| p == c);
        if preset || operator_wandb().component(c).is_none() {
            continue;
        }
        let ComponentSpec {
            install,
            replicas,
            resources,
        } = o;
        switch(b, c, install.unwrap_or(true));
        if let Some(n) = replicas {
            b.set(&format!("/{c}/replicaCount"), json!(n));
        }
        if let Some(res) = resources {
            b.set(
                &format!("/{c}/resources"),
                serde_json::to_value(res).unwrap_or_default(),
            );
        }
    }
}
