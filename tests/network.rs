//! NetworkPolicies (`spec.kubernetes.networkPolicies`): made after the resource, judged by the
//! live ones (a policy deleted or loosened by hand is shown by `plan` and put back by `up`), and
//! removed by `down`. On the test bed the real API server takes them, and cyclonus's policy
//! matcher judges the flows they allow between the pods the real chart's objects made, against
//! what the live Ingress and Services say the front door needs.

use serde_json::{json, Value};
use wbstack_test_support::{on_both, testbed::Testbed, text, Back, Env, Exited};

const POLICIES: &str =
    "    networkPolicies:\n      ingressNamespaces: [ingress-nginx]\n      monitoringNamespaces: [monitoring]\n";

/// The PoC plan with the policies on.
fn plan(env: &Env) -> String {
    let poc = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap();
    let yaml = poc.replace(
        "    storageClass: gp2\n",
        &format!("    storageClass: gp2\n{POLICIES}"),
    );
    assert_ne!(yaml, poc);
    env.plan_from("netpol.yaml", &yaml)
}

fn json_of(env: &Env, args: &[&str]) -> Value {
    serde_json::from_str(&env.kubectl(args)).unwrap()
}

fn items(env: &Env, what: &str, ns: &str) -> Vec<Value> {
    let list = json_of(env, &["get", what, "-n", ns, "-o", "json"]);
    list["items"].as_array().cloned().unwrap_or_default()
}

fn policy_names(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = items(env, "networkpolicies", "wandb")
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .filter(|n| n.starts_with("wbstack-"))
        .collect();
    v.sort();
    v
}

fn made_after_the_resource_kept_as_planned_and_removed_by_down(back: Back) {
    let env = Env::on(back, 20);
    let plan = plan(&env);
    env.ok(&["up", "--plan", &plan]);
    let names = policy_names(&env);
    for n in ["deny-all", "within-namespace", "dns", "https", "monitoring"] {
        assert!(names.contains(&format!("wbstack-{n}")), "{n}: {names:?}");
    }
    let door: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("wbstack-ingress-"))
        .collect();
    match back {
        // The emulator's operator installs workloads only: no Ingress, no front door.
        Back::Emulator => assert!(door.is_empty(), "{door:?}"),
        // The real chart's Ingress sends to app, api, console and weave-trace (as installed).
        Back::Testbed => {
            assert!(
                !door.is_empty(),
                "{names:?}\n{}\n{}",
                env.kubectl(&["get", "ingress,svc", "-n", "wandb", "-o", "yaml"]),
                text(&env.run(&["status", "--plan", &plan, "--output", "json"]))
            );
            front_door_flows_judged_by_cyclonus(&env);
        }
    }
    let detailed = ["plan", "--plan", plan.as_str(), "--detailed-exitcode"];
    env.run(&detailed).succeeded();

    // One deleted, one loosened (egress no longer isolated): both shown, both put back.
    env.kubectl(&["delete", "networkpolicy", "wbstack-dns", "-n", "wandb"]);
    let loosen = r#"{"spec":{"policyTypes":["Ingress"]}}"#;
    let patch = ["patch", "networkpolicy", "wbstack-deny-all", "-n", "wandb"];
    env.kubectl(&[&patch[..], &["--type", "merge", "-p", loosen]].concat());
    let shown = text(&env.run(&detailed).exited(2));
    for n in ["wbstack-dns", "wbstack-deny-all"] {
        assert!(
            shown.contains(&format!("networkpolicy/{n}")),
            "{n}: {shown}"
        );
    }
    env.ok(&["up", "--plan", &plan]);
    env.run(&detailed).succeeded();
    let deny = json_of(
        &env,
        &[
            "get",
            "networkpolicy",
            "wbstack-deny-all",
            "-n",
            "wandb",
            "-o",
            "json",
        ],
    );
    assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy_names(&env), names);

    env.ok(&["down", "--plan", &plan]);
    let left: Vec<String> = json_of(&env, &["get", "networkpolicies", "-A", "-o", "json"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .filter(|n| n.starts_with("wbstack-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

on_both!(made_after_the_resource_kept_as_planned_and_removed_by_down);

/// A peer of a traffic case: a pod (namespace and labels) or an address outside the cluster.
fn pod(ns: &str, labels: &Value, ip: &str) -> Value {
    json!({"namespace": ns, "podLabels": labels, "ip": ip})
}

/// The container ports of a pod: (number, name).
fn container_ports(p: &Value) -> Vec<(i64, String)> {
    p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .map(|x| {
            let name = x["name"].as_str().unwrap_or("").to_owned();
            (x["containerPort"].as_i64().unwrap(), name)
        })
        .collect()
}

fn selects(selector: &Value, p: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &p["metadata"]["labels"][k] == v))
}

/// Whether the live Ingresses send to pod `p` on container port `(number, name)`: some backend
/// Service selects it and its target port (or port) is that one.
fn front_door_needs(
    ingresses: &[Value],
    services: &[Value],
    p: &Value,
    port: &(i64, String),
) -> bool {
    let backends = ingresses.iter().flat_map(|i| {
        i["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().cloned().unwrap_or_default())
            .map(|path| path["backend"]["service"].clone())
    });
    backends.into_iter().any(|b| {
        services.iter().any(|s| {
            s["metadata"]["name"] == b["name"]
                && selects(&s["spec"]["selector"], p)
                && s["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|sp| {
                        let sent_to =
                            sp["port"] == b["port"]["number"] || sp["name"] == b["port"]["name"];
                        let target = if sp["targetPort"].is_null() {
                            &sp["port"]
                        } else {
                            &sp["targetPort"]
                        };
                        sent_to && (target == &json!(port.0) || target == &json!(port.1))
                    })
        })
    })
}

/// Every container port of every W&B pod, from the ingress controller's namespace, from another
/// namespace and from outside; W&B's own pods to each other, to DNS, to HTTPS and to a port
/// nothing needs. The expectation comes from the live objects, the verdict from cyclonus.
fn front_door_flows_judged_by_cyclonus(env: &Env) {
    let policies = items(env, "networkpolicies", "wandb");
    let pods: Vec<Value> = items(env, "pods", "wandb")
        .into_iter()
        .filter(|p| !container_ports(p).is_empty())
        .collect();
    let (ingresses, services) = (
        items(env, "ingresses", "wandb"),
        items(env, "services", "wandb"),
    );
    assert!(!ingresses.is_empty() && !pods.is_empty());
    let controller = pod(
        "ingress-nginx",
        &json!({"app": "ingress-nginx"}),
        "10.244.9.1",
    );
    let stranger = pod("default", &json!({"app": "curl"}), "10.244.9.2");
    let outside = json!({"ip": "203.0.113.9"});
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let mut needed = 0;
    for (i, p) in pods.iter().enumerate() {
        let me = pod(
            "wandb",
            &p["metadata"]["labels"],
            &format!("10.244.1.{}", i + 1),
        );
        for port in container_ports(p) {
            let case = |from: &Value| json!({"from": from, "to": me, "port": port.0, "portName": port.1, "protocol": "TCP"});
            let need = front_door_needs(&ingresses, &services, p, &port);
            needed += usize::from(need);
            cases.push(case(&controller));
            expected.push((
                need,
                format!("ingress-nginx -> {} :{port:?}", p["metadata"]["name"]),
            ));
            cases.push(case(&stranger));
            expected.push((
                false,
                format!("default -> {} :{port:?}", p["metadata"]["name"]),
            ));
            cases.push(case(&outside));
            expected.push((
                false,
                format!("outside -> {} :{port:?}", p["metadata"]["name"]),
            ));
            let peer = pod("wandb", &pods[0]["metadata"]["labels"], "10.244.1.200");
            cases.push(case(&peer));
            expected.push((
                true,
                format!("wandb -> {} :{port:?}", p["metadata"]["name"]),
            ));
            let monitoring = pod("monitoring", &json!({"app": "prometheus"}), "10.244.9.3");
            cases.push(case(&monitoring));
            expected.push((
                true,
                format!("monitoring -> {} :{port:?}", p["metadata"]["name"]),
            ));
        }
    }
    assert!(needed > 0, "the front door needs no pod: {ingresses:?}");
    let me = pod("wandb", &pods[0]["metadata"]["labels"], "10.244.1.1");
    let dns = pod(
        "kube-system",
        &json!({"k8s-app": "kube-dns"}),
        "10.244.0.10",
    );
    let other = pod(
        "kube-system",
        &json!({"k8s-app": "metrics-server"}),
        "10.244.0.11",
    );
    for (to, port, protocol, allowed, what) in [
        (&dns, 53, "UDP", true, "DNS over UDP"),
        (&dns, 53, "TCP", true, "DNS over TCP"),
        (
            &other,
            53,
            "UDP",
            false,
            "port 53 of another kube-system pod",
        ),
        (
            &json!({"ip": "52.216.1.1"}),
            443,
            "TCP",
            true,
            "HTTPS out (S3)",
        ),
        (&json!({"ip": "52.216.1.1"}), 22, "TCP", false, "SSH out"),
        (
            &json!({"ip": "10.0.1.5"}),
            3306,
            "TCP",
            false,
            "MySQL out (the PoC's is in the cluster)",
        ),
    ] {
        cases.push(
            json!({"from": me, "to": to, "port": port, "portName": "", "protocol": protocol}),
        );
        expected.push((allowed, what.to_owned()));
    }
    let verdicts = Testbed::netpol(&json!({"policies": policies, "cases": cases}));
    assert_eq!(verdicts.len(), expected.len());
    let wrong: Vec<String> = verdicts
        .iter()
        .zip(&expected)
        .filter(|(v, (want, _))| v["allowed"] != json!(want))
        .map(|(v, (want, what))| format!("{what}: want {want}, cyclonus says {v}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    println!(
        "cyclonus judged {} flows over {} pods ({} front-door ports needed): all as expected",
        cases.len(),
        pods.len(),
        needed
    );
}
