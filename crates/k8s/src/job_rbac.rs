//! The Job's RBAC, judged by what it grants: a Role in each namespace the plan writes in, and a
//! ClusterRole whose every write names its objects (`resourceNames`). No `escalate`, no `bind`
//! but on the operator's own ClusterRole, no Secret outside the plan's namespaces.
//!
//! The operator's ClusterRole grants what the operator needs cluster-wide (Secrets in every
//! namespace among it). Writing it needs those permissions held, or `escalate`; the Job has
//! neither, so that one object comes with the Job's manifests, applied by whoever applies them,
//! and the Job only reads it, binds it to the operator and deletes it on `down`.

use crate::job_scope::JobScope;
use crate::typed::{meta, value, Labels};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use serde_json::Value;

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 7] = [
    "get", "list", "watch", "create", "patch", "update", "delete",
];

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

fn named<S: AsRef<str>>(r: PolicyRule, names: impl IntoIterator<Item = S>) -> PolicyRule {
    let names = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
    PolicyRule {
        resource_names: Some(names),
        ..r
    }
}

/// Rules as the API takes them.
fn values(rules: Vec<PolicyRule>) -> Vec<Value> {
    rules.into_iter().map(value).collect()
}

/// The cluster-wide rules: reads of what `up`'s preflight checks (nodes, classes), of where an
/// operator and other environments' resources run (Deployments and WeightsAndBiases, read
/// only), and writes by name of the plan's namespaces, CRDs and the operator's binding.
pub fn cluster_rules(scope: &JobScope) -> Vec<Value> {
    values(cluster(scope))
}

fn cluster(scope: &JobScope) -> Vec<PolicyRule> {
    let mut rules = vec![
        rule(&[""], &["nodes"], &["list"]),
        rule(&["storage.k8s.io"], &["storageclasses"], &["get", "list"]),
        rule(&["storage.k8s.io"], &["csistoragecapacities"], &["list"]),
        rule(
            &["networking.k8s.io"],
            &["ingressclasses"],
            &["get", "list"],
        ),
        rule(&["apps"], &["deployments"], &["list", "watch"]),
        rule(
            &["apps.wandb.com"],
            &["weightsandbiases"],
            &["list", "watch"],
        ),
    ];
    if !scope.namespaces.is_empty() {
        rules.push(named(
            rule(&[""], &["namespaces"], &WRITE),
            &scope.namespaces,
        ));
    }
    if !scope.crds.is_empty() {
        rules.push(named(
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                &WRITE,
            ),
            &scope.crds,
        ));
    }
    if scope.crds.iter().any(|c| c.ends_with(".altinity.com")) {
        // Whether any installation is left anywhere, before the operator's CRDs go (deleting
        // them deletes every installation).
        rules.push(rule(
            &["clickhouse.altinity.com", "clickhouse-keeper.altinity.com"],
            &["clickhouseinstallations", "clickhousekeeperinstallations"],
            &["list", "watch"],
        ));
    }
    rules.extend(role_rules(&scope.cluster_roles(), "clusterroles"));
    rules
}

/// An operator's roles, by name: read, bound and deleted (never written: they come with the
/// Job's manifests), and their bindings, which have the roles' names, written.
fn role_rules(names: &[&str], plural: &str) -> Vec<PolicyRule> {
    if names.is_empty() {
        return vec![];
    }
    let rbac = "rbac.authorization.k8s.io";
    let bindings = format!("{}bindings", plural.trim_end_matches('s'));
    vec![
        named(
            rule(&[rbac], &[plural], &["get", "watch", "delete", "bind"]),
            names,
        ),
        named(
            rule(
                &[rbac],
                &[bindings.as_str()],
                &["get", "watch", "create", "patch", "update", "delete"],
            ),
            names,
        ),
    ]
}

/// The rules in each namespace the plan writes in: the objects wbstack applies there, and what
/// readiness reads (pods, events, ReplicaSets, Jobs, the release's Secrets). In the namespace
/// `verify` probes from: its probe Job made and removed, and its pod's log read (the probe pod
/// itself gets no API access).
pub fn namespace_rules(scope: &JobScope, ns: &str) -> Vec<Value> {
    values(in_namespace(scope, ns))
}

fn in_namespace(scope: &JobScope, ns: &str) -> Vec<PolicyRule> {
    let mut rules = vec![
        rule(
            &[""],
            &[
                "secrets",
                "configmaps",
                "services",
                "serviceaccounts",
                "persistentvolumeclaims",
            ],
            &WRITE,
        ),
        rule(&[""], &["pods", "events"], &READ),
        rule(
            &["apps"],
            &["deployments", "statefulsets", "daemonsets"],
            &WRITE,
        ),
        rule(&["apps"], &["replicasets"], &READ),
        rule(&["batch"], &["jobs", "cronjobs"], &READ),
        rule(&["apps.wandb.com"], &["weightsandbiases"], &WRITE),
    ];
    if scope.verify.as_deref() == Some(ns) {
        rules.push(rule(&["batch"], &["jobs"], &["create", "delete"]));
        rules.push(rule(&[""], &["pods/log"], &["get"]));
    }
    if scope.altinity {
        rules.push(rule(
            &["clickhouse.altinity.com"],
            &["clickhouseinstallations"],
            &WRITE,
        ));
        rules.push(rule(
            &["clickhouse-keeper.altinity.com"],
            &["clickhousekeeperinstallations"],
            &WRITE,
        ));
    }
    if scope.network_policies {
        rules.push(rule(&["networking.k8s.io"], &["networkpolicies"], &WRITE));
    }
    rules.extend(role_rules(&scope.roles_in(ns), "roles"));
    rules
}

/// The ClusterRole and its binding, then a Role and RoleBinding in each of the plan's
/// namespaces, all for the ServiceAccount `name` in `namespace`.
pub fn job_rbac(scope: &JobScope, name: &str, namespace: &str, labels: &Labels) -> Vec<Value> {
    let role_ref = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    };
    let subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    }]);
    let mut docs = vec![
        value(ClusterRole {
            metadata: meta(name, None, labels.clone()),
            rules: Some(cluster(scope)),
            ..Default::default()
        }),
        value(ClusterRoleBinding {
            metadata: meta(name, None, labels.clone()),
            role_ref: role_ref("ClusterRole"),
            subjects: subjects.clone(),
        }),
    ];
    for ns in &scope.namespaces {
        docs.push(value(Role {
            metadata: meta(name, Some(ns), labels.clone()),
            rules: Some(in_namespace(scope, ns)),
        }));
        docs.push(value(RoleBinding {
            metadata: meta(name, Some(ns), labels.clone()),
            role_ref: role_ref("Role"),
            subjects: subjects.clone(),
        }));
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> JobScope {
        JobScope {
            namespaces: ["wandb".to_owned(), "wandb-operator".to_owned()].into(),
            crds: ["weightsandbiases.apps.wandb.com".to_owned()].into(),
            roles: vec![],
            altinity: false,
            network_policies: false,
            verify: None,
        }
    }

    /// No `escalate` or `*`, every write (`bind` too) by name, no Secrets.
    fn assert_named_writes_only(rules: &[Value]) {
        for r in rules {
            let verbs: Vec<&str> = r["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(!verbs.contains(&"escalate") && !verbs.contains(&"*"), "{r}");
            let writes = verbs
                .iter()
                .any(|v| ["create", "patch", "update", "delete", "bind"].contains(v));
            assert!(!writes || r["resourceNames"].is_array(), "{r}");
            assert!(!r["resources"].to_string().contains("secrets"), "{r}");
        }
    }

    #[test]
    fn network_policies_are_granted_in_the_plans_namespaces_only_when_planned() {
        let grants = |s: &JobScope| {
            namespace_rules(s, "wandb")
                .iter()
                .any(|r| r["resources"] == json!(["networkpolicies"]))
        };
        assert!(!grants(&scope()));
        let with = JobScope {
            network_policies: true,
            ..scope()
        };
        assert!(grants(&with));
        assert!(!json!(cluster_rules(&with))
            .to_string()
            .contains("networkpolicies"));
    }

    /// What the Job may read across the cluster without names, as granted: what `up`'s
    /// preflight checks (nodes, storage and ingress classes, published storage capacity) and
    /// where operators and other environments run; nothing else, and no write.
    #[test]
    fn the_unnamed_cluster_wide_grants_are_the_preflights_reads_and_the_neighbours() {
        let unnamed: Vec<String> = cluster_rules(&scope())
            .iter()
            .filter(|r| r["resourceNames"].is_null())
            .map(|r| format!("{} {}", r["resources"], r["verbs"]))
            .collect();
        assert_eq!(
            unnamed,
            [
                r#"["nodes"] ["list"]"#,
                r#"["storageclasses"] ["get","list"]"#,
                r#"["csistoragecapacities"] ["list"]"#,
                r#"["ingressclasses"] ["get","list"]"#,
                r#"["deployments"] ["list","watch"]"#,
                r#"["weightsandbiases"] ["list","watch"]"#,
            ]
        );
    }

    #[test]
    fn every_cluster_scoped_write_names_its_objects() {
        assert_named_writes_only(&cluster_rules(&scope()));
    }

    #[test]
    fn secrets_are_granted_only_in_the_plans_namespaces() {
        let docs = job_rbac(&scope(), "wbstack-e", "wbstack", &Labels::new());
        let roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Role").collect();
        let namespaces: Vec<&str> = roles
            .iter()
            .map(|r| r["metadata"]["namespace"].as_str().unwrap())
            .collect();
        assert_eq!(namespaces, ["wandb", "wandb-operator"]);
        assert!(roles[0]["rules"].to_string().contains("secrets"));
        assert!(!roles[0]["rules"].to_string().contains("pods/log"));
    }

    #[test]
    fn an_altinity_install_is_granted_its_operators_roles_by_name_and_reads_of_installations() {
        // The scope of the shipped Altinity plan, as its steps give it.
        let plan = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../plans/weave-altinity.yaml"),
        )
        .unwrap();
        let plan = wbstack_plan::parse("weave-altinity.yaml", &plan).unwrap();
        let s = JobScope::of(&wbstack_plan::compile(&plan), false);
        let cluster = cluster_rules(&s);
        assert_named_writes_only(&cluster);
        let granted = serde_json::to_string(&cluster).unwrap();
        for name in crate::altinity_operator::ALTINITY_CRDS {
            assert!(granted.contains(name), "{name}: {granted}");
        }
        assert!(
            granted.contains("clickhouse-operator-clickhouse-operator"),
            "{granted}"
        );
        // Installations anywhere are read, never written, cluster-wide.
        let reads = cluster
            .iter()
            .find(|r| {
                r["resources"]
                    .to_string()
                    .contains("clickhousekeeperinstallations")
            })
            .unwrap();
        assert_eq!(reads["verbs"], json!(["list", "watch"]));
        // In the operator's namespace: its Role bound and deleted by name, never written.
        let ns = namespace_rules(&s, "clickhouse-operator");
        let roles = ns
            .iter()
            .find(|r| r["resources"] == json!(["roles"]))
            .unwrap();
        assert_eq!(roles["resourceNames"], json!(["clickhouse-operator"]));
        assert_eq!(roles["verbs"], json!(["get", "watch", "delete", "bind"]));
        assert!(s.namespaces.contains("clickhouse-operator"));
        assert_eq!(
            s.roles.len(),
            3,
            "the W&B operator's ClusterRole and Altinity's two roles"
        );
    }

    #[test]
    fn verify_may_make_its_probe_job_and_read_its_log_in_the_resources_namespace_only() {
        let s = JobScope {
            verify: Some("wandb".into()),
            ..scope()
        };
        let granted = |ns: &str, res: &str, verb: &str| {
            namespace_rules(&s, ns).iter().any(|r| {
                r["resources"].as_array().unwrap().iter().any(|x| x == res)
                    && r["verbs"].as_array().unwrap().iter().any(|v| v == verb)
            })
        };
        assert!(granted("wandb", "jobs", "create") && granted("wandb", "jobs", "delete"));
        assert!(granted("wandb", "pods/log", "get"));
        assert!(!granted("wandb-operator", "jobs", "create"));
        assert!(!granted("wandb-operator", "pods/log", "get"));
        assert!(!granted("wandb", "serviceaccounts/token", "create"));
    }
}
