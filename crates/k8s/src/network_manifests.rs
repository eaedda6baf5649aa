//! The NetworkPolicies of `spec.kubernetes.networkPolicies`, built from k8s-openapi's types:
//! every pod of the namespace denied all traffic, then the flows W&B needs, each a policy of its
//! own named for it. The front door's come from the Ingress of the release the operator
//! installed: into the pods each backend Service selects, on the ports it sends to.

use crate::typed::{self, Labels};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeMap;
use wbstack_plan::NetworkPolicies;

/// The label naming the resource whose policies these are.
pub const POLICY_SET: &str = "wbstack.dev/network-policies";
/// Every namespace carries its name in this label (the API server sets it).
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";
/// Where the Altinity operator reads its servers (`clickhouse.access.port`).
const ALTINITY_PORT: i32 = 8123;

/// A Service the release's Ingress sends to: the pods it selects and their ports.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Backend {
    pub service: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<IntOrString>,
}

/// What the front door's policies are made from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FrontDoor {
    /// The backends of the release's Ingresses (none: the release has no Ingress).
    Backends(Vec<Backend>),
    /// No release could be read: the ingress sources reach every pod, and why.
    Unknown(String),
}

/// Every policy for these settings; `operator`: the Altinity operator's namespace, as found.
pub(crate) fn policies(
    spec: &NetworkPolicies,
    operator: Option<&str>,
    door: &FrontDoor,
) -> Vec<Value> {
    let mut v = vec![
        policy(spec, "deny-all", LabelSelector::default(), None, None),
        within_namespace(spec),
        dns(spec),
        egress_to(spec, "https", &[], &[(443, "TCP")]),
    ];
    if !spec.data_ports.is_empty() {
        let ports: Vec<(i32, &str)> = spec
            .data_ports
            .iter()
            .map(|p| (i32::from(p.port), "TCP"))
            .collect();
        v.push(egress_to(spec, "data-stores", &spec.data_cidrs, &ports));
    }
    if !spec.monitoring_namespaces.is_empty() {
        let from = spec
            .monitoring_namespaces
            .iter()
            .map(|n| namespace(n, None))
            .collect();
        v.push(ingress(
            spec,
            "monitoring",
            LabelSelector::default(),
            from,
            vec![],
        ));
    }
    if let (Some(a), Some(ns)) = (&spec.altinity, operator) {
        let servers = selector(&[("clickhouse.altinity.com/chi", &a.installation)]);
        let op = selector(&[("app", "clickhouse-operator")]);
        let from = vec![namespace(ns, Some(op))];
        let ports = vec![port(IntOrString::Int(ALTINITY_PORT), "TCP")];
        v.push(ingress(spec, "altinity-operator", servers, from, ports));
    }
    v.extend(front_door(spec, door));
    v
}

/// The policies the plan alone decides (`render` prints them): all but the front door's and
/// the Altinity operator's, which are read from the cluster.
pub(crate) fn planned(spec: &NetworkPolicies) -> Vec<Value> {
    policies(spec, None, &FrontDoor::Backends(vec![]))
}

fn front_door(spec: &NetworkPolicies, door: &FrontDoor) -> Vec<Value> {
    let from = sources(spec);
    match door {
        FrontDoor::Unknown(_) => vec![ingress(
            spec,
            "ingress",
            LabelSelector::default(),
            from,
            vec![],
        )],
        FrontDoor::Backends(bs) => bs
            .iter()
            .map(|b| {
                let pods = LabelSelector {
                    match_labels: Some(b.selector.clone()),
                    ..Default::default()
                };
                let ports = b.ports.iter().map(|p| port(p.clone(), "TCP")).collect();
                ingress(
                    spec,
                    &format!("ingress-{}", b.service),
                    pods,
                    from.clone(),
                    ports,
                )
            })
            .collect(),
    }
}

/// Where the front door's traffic may come from (none: anywhere).
fn sources(spec: &NetworkPolicies) -> Vec<NetworkPolicyPeer> {
    let mut v: Vec<NetworkPolicyPeer> = spec
        .ingress_namespaces
        .iter()
        .map(|n| namespace(n, None))
        .collect();
    v.extend(spec.ingress_cidrs.iter().map(|c| block(c)));
    v
}

fn within_namespace(spec: &NetworkPolicies) -> Value {
    let here = || NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    };
    let ingress = NetworkPolicyIngressRule {
        from: Some(vec![here()]),
        ports: None,
    };
    let egress = NetworkPolicyEgressRule {
        to: Some(vec![here()]),
        ports: None,
    };
    policy(
        spec,
        "within-namespace",
        LabelSelector::default(),
        Some(vec![ingress]),
        Some(vec![egress]),
    )
}

fn dns(spec: &NetworkPolicies) -> Value {
    let to = namespace("kube-system", Some(selector(&[("k8s-app", "kube-dns")])));
    let rule = NetworkPolicyEgressRule {
        to: Some(vec![to]),
        ports: Some(vec![
            port(IntOrString::Int(53), "UDP"),
            port(IntOrString::Int(53), "TCP"),
        ]),
    };
    policy(
        spec,
        "dns",
        LabelSelector::default(),
        None,
        Some(vec![rule]),
    )
}

/// Egress from every pod to `cidrs` (none: anywhere) on `ports`.
fn egress_to(spec: &NetworkPolicies, what: &str, cidrs: &[String], ports: &[(i32, &str)]) -> Value {
    let to = if cidrs.is_empty() {
        vec![block("0.0.0.0/0")]
    } else {
        cidrs.iter().map(|c| block(c)).collect()
    };
    let rule = NetworkPolicyEgressRule {
        to: Some(to),
        ports: Some(
            ports
                .iter()
                .map(|(p, proto)| port(IntOrString::Int(*p), proto))
                .collect(),
        ),
    };
    policy(spec, what, LabelSelector::default(), None, Some(vec![rule]))
}

/// Ingress into `pods` from `from` (none: anywhere) on `ports` (none: every port).
fn ingress(
    spec: &NetworkPolicies,
    what: &str,
    pods: LabelSelector,
    from: Vec<NetworkPolicyPeer>,
    ports: Vec<NetworkPolicyPort>,
) -> Value {
    let rule = NetworkPolicyIngressRule {
        from: (!from.is_empty()).then_some(from),
        ports: (!ports.is_empty()).then_some(ports),
    };
    policy(spec, what, pods, Some(vec![rule]), None)
}

/// A policy named `wbstack-<what>` over `pods`; it isolates the directions it has rules for
/// (both, for one with none: the default deny).
fn policy(
    spec: &NetworkPolicies,
    what: &str,
    pods: LabelSelector,
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) -> Value {
    let mut types = Vec::new();
    if ingress.is_some() || egress.is_none() {
        types.push("Ingress".to_owned());
    }
    if egress.is_some() || ingress.is_none() {
        types.push("Egress".to_owned());
    }
    let mut labels: Labels = typed::managed();
    labels.insert(POLICY_SET.into(), spec.release.clone());
    typed::value(NetworkPolicy {
        metadata: typed::meta(&format!("wbstack-{what}"), Some(&spec.namespace), labels),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods),
            policy_types: Some(types),
            ingress,
            egress,
        }),
    })
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(typed::labels(pairs)),
        ..Default::default()
    }
}

/// The pods of namespace `name` (those `pods` selects, or all).
fn namespace(name: &str, pods: Option<LabelSelector>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector(&[(NAMESPACE_NAME, name)])),
        pod_selector: pods,
        ..Default::default()
    }
}

fn block(cidr: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: None,
        }),
        ..Default::default()
    }
}

fn port(p: IntOrString, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(p),
        protocol: Some(protocol.to_owned()),
        end_port: None,
    }
}

/// The Services the release's Ingresses send to, with the pods they select and the ports they
/// send to (a Service's `targetPort`, or its port), from the release's rendered documents.
pub(crate) fn backends(docs: &[Value]) -> Vec<Backend> {
    let mut wanted: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for ing in docs.iter().filter(|d| d["kind"] == "Ingress") {
        let spec = &ing["spec"];
        let paths = spec["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
            .map(|p| &p["backend"]["service"]);
        for svc in std::iter::once(&spec["defaultBackend"]["service"]).chain(paths) {
            if let Some(name) = svc["name"].as_str() {
                wanted
                    .entry(name.to_owned())
                    .or_default()
                    .push(svc["port"].clone());
            }
        }
    }
    wanted
        .into_iter()
        .filter_map(|(name, ports)| backend(docs, &name, &ports))
        .collect()
}

fn backend(docs: &[Value], name: &str, ports: &[Value]) -> Option<Backend> {
    let svc = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == name)?;
    let selector: BTreeMap<String, String> =
        serde_json::from_value(svc["spec"]["selector"].clone()).ok()?;
    if selector.is_empty() {
        return None;
    }
    let mut targets = Vec::new();
    for want in ports {
        let found = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                (want["number"].is_number() && p["port"] == want["number"])
                    || (want["name"].is_string() && p["name"] == want["name"])
            });
        let Some(p) = found else { continue };
        let target = if p["targetPort"].is_null() {
            &p["port"]
        } else {
            &p["targetPort"]
        };
        let target = match target {
            Value::Number(n) => n
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .map(IntOrString::Int),
            Value::String(s) => Some(IntOrString::String(s.clone())),
            _ => None,
        };
        if let Some(t) = target.filter(|t| !targets.contains(t)) {
            targets.push(t);
        }
    }
    (!targets.is_empty()).then(|| Backend {
        service: name.to_owned(),
        selector,
        ports: targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use wbstack_plan::{AltinityFlow, DataPort, Input};

    /// The chart's real render under `release` (Helm v3.22.0, chart 0.43.8).
    fn render(release: &str) -> Vec<Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "../../../shared/fixtures/operator-wandb-chart/release-names/{release}.yaml"
        ));
        let text = std::fs::read_to_string(path).unwrap();
        serde_yaml_ng::Deserializer::from_str(&text)
            .filter_map(|d| Value::deserialize(d).ok())
            .filter(Value::is_object)
            .collect()
    }

    fn spec() -> NetworkPolicies {
        NetworkPolicies {
            namespace: "wandb".into(),
            release: "wandb".into(),
            ingress_namespaces: vec!["ingress-nginx".into()],
            ingress_cidrs: vec!["10.0.0.0/16".into()],
            monitoring_namespaces: vec!["monitoring".into()],
            data_cidrs: vec![],
            data_ports: vec![DataPort {
                port: 3306,
                what: "MySQL".into(),
            }],
            altinity: Some(AltinityFlow {
                installation: "weave-clickhouse".into(),
                operator: Input::new("k8s.altinity-operator", "namespace"),
            }),
            after: Input::new("k8s.wandb", "host"),
        }
    }

    /// Whether `port` is one of the workload's container ports (by number or by name).
    fn exposes(workload: &Value, port: &IntOrString) -> bool {
        let containers = workload["spec"]["template"]["spec"]["containers"].as_array();
        containers
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .any(|p| match port {
                IntOrString::Int(n) => p["containerPort"] == json!(n),
                IntOrString::String(s) => p["name"] == json!(s),
            })
    }

    #[test]
    fn the_front_door_is_the_pods_and_ports_the_real_ingress_reaches() {
        for release in ["chartsnap", "wandb-weave", "weave-app"] {
            let docs = render(release);
            let found = backends(&docs);
            assert!(!found.is_empty(), "{release}: no backends");
            for b in &found {
                // A workload of the render runs the pods the Service selects, and its containers
                // listen on every port the policy opens.
                let workload = docs.iter().find(|d| {
                    matches!(d["kind"].as_str(), Some("Deployment" | "StatefulSet"))
                        && b.selector.iter().all(|(k, v)| {
                            d["spec"]["template"]["metadata"]["labels"][k] == json!(v)
                        })
                });
                let w = workload.unwrap_or_else(|| panic!("{release}: no pods for {b:?}"));
                for p in &b.ports {
                    assert!(
                        exposes(w, p),
                        "{release}: {p:?} of {} not exposed",
                        b.service
                    );
                }
            }
        }
        let names: Vec<String> = backends(&render("chartsnap"))
            .into_iter()
            .map(|b| b.service)
            .collect();
        assert_eq!(
            names,
            [
                "chartsnap-api",
                "chartsnap-app",
                "chartsnap-console",
                "chartsnap-weave-trace"
            ]
        );
    }

    #[test]
    fn a_named_an_implicit_and_a_numbered_target_port_are_each_followed() {
        let found = backends(&render("chartsnap"));
        let ports = |s: &str| found.iter().find(|b| b.service == s).unwrap().ports.clone();
        assert_eq!(ports("chartsnap-api"), [IntOrString::String("api".into())]);
        assert_eq!(ports("chartsnap-app"), [IntOrString::Int(8080)]);
        assert_eq!(ports("chartsnap-weave-trace"), [IntOrString::Int(8080)]);
    }

    #[test]
    fn every_pod_is_denied_then_given_its_flows() {
        let door = FrontDoor::Backends(backends(&render("chartsnap")));
        let all = policies(&spec(), Some("clickhouse-operator"), &door);
        let names: Vec<&str> = all
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "wbstack-deny-all",
                "wbstack-within-namespace",
                "wbstack-dns",
                "wbstack-https",
                "wbstack-data-stores",
                "wbstack-monitoring",
                "wbstack-altinity-operator",
                "wbstack-ingress-chartsnap-api",
                "wbstack-ingress-chartsnap-app",
                "wbstack-ingress-chartsnap-console",
                "wbstack-ingress-chartsnap-weave-trace",
            ]
        );
        assert_eq!(
            all[0]["spec"],
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        );
        assert!(all
            .iter()
            .all(|p| p["metadata"]["labels"][POLICY_SET] == "wandb"));
        // The plan alone leaves out what is read from the cluster.
        assert_eq!(planned(&spec()).len(), 6);
    }

    #[test]
    fn without_a_release_the_sources_reach_every_pod_but_only_from_where_they_are() {
        let all = policies(&spec(), None, &FrontDoor::Unknown("no release".into()));
        let door = all.last().unwrap();
        assert_eq!(door["metadata"]["name"], "wbstack-ingress");
        assert_eq!(door["spec"]["podSelector"], json!({}));
        assert_eq!(
            door["spec"]["ingress"][0]["from"].as_array().unwrap().len(),
            2
        );
        assert!(door["spec"]["ingress"][0]["ports"].is_null());
    }
}
