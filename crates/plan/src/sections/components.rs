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

/// Amazon MSK's listeners that are TLS only: TLS, SASL/SCRAM and IAM, from within AWS and public.
const MSK_TLS_PORTS: [u16; 6] = [9094, 9096, 9098, 9194, 9196, 9198];

/// The port the chart's flat-run-fields-updater dials whatever `global.kafka.brokerPort` says
/// (`$(KAFKA_BROKER_HOST):9092` in its renders).
const UPDATER_PORT: u16 = 9092;

/// The chart's Kafka clients speak without TLS (their URLs, `kafka://user:password@host:port/
/// topic`, carry no TLS or SASL setting, and `global.kafka` has none), and one of them dials
/// 9092: a broker port they cannot use is refused where it is written.
fn check_kafka_port(c: &mut Checker, r: &Resolved, port: u16) {
    let at = "spec.kafka.brokerPort";
    if MSK_TLS_PORTS.contains(&port) {
        c.value_help(
            at,
            format!(
                "{port} is one of Amazon MSK's TLS-only listeners (TLS, SASL/SCRAM, IAM); the \
                 chart's Kafka clients connect without TLS: its URLs carry no TLS or SASL setting \
                 and global.kafka has none"
            ),
            "serve Kafka on a listener without TLS, such as a broker you run on 9092",
        );
    }
    let updater = r.spec.wandb.components.get("flat-run-fields-updater");
    if port != UPDATER_PORT && updater.and_then(|u| u.install) == Some(true) {
        c.value_help(
            at,
            format!("flat-run-fields-updater dials the broker at port {UPDATER_PORT} whatever brokerPort says (the chart's URL for it is $(KAFKA_BROKER_HOST):{UPDATER_PORT})"),
            "serve the broker on 9092, or leave flat-run-fields-updater off",
        );
    }
}

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
        check_kafka_port(c, r, k.broker_port);
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

#[cfg(test)]
mod tests {
    use super::pointer;
    use crate::sections::testing::{at, diagnostics, ids, steps, values};
    use crate::{ids, preset, Size};
    use wbstack_chart::operator_wandb;

    /// The value at a component's switch, as the chart's table names it.
    fn switch(v: &serde_json::Value, component: &str) -> serde_json::Value {
        let c = operator_wandb().component(component).unwrap();
        v.pointer(&pointer(&c.switch)).cloned().unwrap_or_default()
    }

    // Lines indented four spaces continue the base plan's `spec.wandb`.

    #[test]
    fn components_are_the_charts_less_those_a_section_runs() {
        let spec = "    components:\n      mysql: {replicas: 1}\n      frobnicator: {replicas: 1}\n      api: {replicas: 101}\n";
        let e = diagnostics(spec);
        let said = |s: &str| {
            e.iter()
                .find(|d| d.message.contains(s))
                .unwrap_or_else(|| panic!("{e:#?}"))
        };
        let d = said("`mysql` is not a component here");
        assert_eq!(
            (d.path.as_str(), d.line),
            ("spec.wandb.components.mysql", 9)
        );
        assert_eq!(d.help.as_deref(), Some("configure it in spec.mysql"));
        let unknown = said("unknown component `frobnicator`");
        assert!(unknown.help.as_deref().unwrap().contains("api"));
        assert_eq!(
            at(spec, "at most 100 replicas").0,
            "spec.wandb.components.api.replicas"
        );
    }

    #[test]
    fn the_size_sets_each_components_replicas_and_a_plan_overrides_one() {
        let medium = preset(Size::Medium);
        let v = values("  size: medium\n");
        let mut sized = 0;
        for (c, replicas, _) in &medium.components {
            if switch(&v, c) == true {
                assert_eq!(v[*c]["replicaCount"], *replicas, "{c}");
                sized += 1;
            }
        }
        assert!(sized > 0, "no component of the medium size is on");
        let (c, replicas, _) = &medium.components[0];
        let more = replicas + 2;
        let v = values(&format!(
            "    components:\n      {c}: {{replicas: {more}}}\n  size: medium\n"
        ));
        assert_eq!(v[*c]["replicaCount"], more);
    }

    #[test]
    fn weave_monitoring_and_kafka_are_switched_as_the_plan_says() {
        let off = values("    weave: {enabled: false}\n");
        assert_eq!(off["global"]["weave-trace"]["enabled"], false);
        assert_eq!(switch(&off, "weave-trace"), false);
        assert_eq!(switch(&off, "kafka"), false);
        assert!(!ids(&steps("")).contains(&ids::WEAVE_WORKER_AUTH));
        let spec = "    weave: {traceWorkers: true, cache: {intervalInHours: 6, size: 5Gi}}\n    monitoring: {prometheus: true}\n";
        assert!(ids(&steps(spec)).contains(&ids::WEAVE_WORKER_AUTH));
        let v = values(spec);
        assert_eq!(
            v["weave"]["cache"],
            serde_json::json!({"intervalInHours": 6, "size": "5Gi"})
        );
        assert_eq!(switch(&v, "prometheus"), true);
        assert_eq!(switch(&v, "otel"), false);
    }

    #[test]
    fn a_weave_cache_of_no_size_or_no_interval_is_refused() {
        let e = diagnostics("    weave: {cache: {intervalInHours: 0, size: lots}}\n");
        let paths: Vec<&str> = e.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.wandb.weave.cache.intervalInHours",
                "spec.wandb.weave.cache.size"
            ]
        );
    }

    #[test]
    fn a_kafka_port_the_charts_clients_cannot_use_is_refused_where_it_is_written() {
        let kafka = |port: u16, updater: bool| {
            let mut spec = String::new();
            if updater {
                spec.push_str("    components:\n      flat-run-fields-updater: {install: true}\n");
            }
            spec.push_str(&format!(
                "  kafka:\n    brokerHost: kafka.example.com\n    brokerPort: {port}\n    passwordSecret: {{name: kafka, key: password}}\n"
            ));
            spec
        };
        let (path, line, column) = at(&kafka(9096, false), "Amazon MSK's TLS-only listeners");
        assert_eq!(
            (path.as_str(), line, column),
            ("spec.kafka.brokerPort", 10, 17)
        );
        let (path, ..) = at(
            &kafka(9093, true),
            "flat-run-fields-updater dials the broker at port 9092",
        );
        assert_eq!(path, "spec.kafka.brokerPort");
        // A broker on 9092, or on another port without the updater, is taken.
        let v = values(&kafka(9092, true));
        assert_eq!(v["global"]["kafka"]["brokerPort"], 9092);
        assert_eq!(
            values(&kafka(19092, false))["global"]["kafka"]["brokerPort"],
            19092
        );
    }
}
