//! What a plan's Kubernetes steps touch, by namespace and name: the scope `render --job` grants
//! the Job, and nothing outside it.

use serde_json::Value;
use std::collections::BTreeSet;
use wbstack_plan::{Side, StepPlan};

/// The objects a plan's Kubernetes steps write, read and delete.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobScope {
    /// Every namespace a step writes in: created with the Job's manifests (a Role there needs
    /// it), deleted by name by `down`.
    pub namespaces: BTreeSet<String>,
    /// The CRDs wbstack applies, by name.
    pub crds: BTreeSet<String>,
    /// The roles of the operators the plan may install (a ClusterRole, or a Role in the
    /// operator's namespace), as their steps write them: writing one needs what it grants, so
    /// they come with the Job's manifests, and the Job reads, binds and deletes them by name
    /// (each role's binding has the role's name).
    pub roles: Vec<Value>,
    /// Whether the plan writes Altinity installations (ClickHouse and ClickHouse Keeper).
    pub altinity: bool,
    /// Whether the plan writes NetworkPolicies (in its namespaces).
    pub network_policies: bool,
    /// The namespace `verify` runs its probe Job in (the W&B resource's), when the plan's
    /// `spec.verify` makes every `up` end with it.
    pub verify: Option<String>,
}

impl JobScope {
    /// The scope of a compiled plan; `verify`: the plan's `spec.verify`.
    pub fn of(steps: &[StepPlan], verify: bool) -> JobScope {
        let mut s = JobScope::default();
        for step in steps {
            if let Side::K8s(k) = step.kind.side() {
                crate::kind(k).scope(&mut s, verify);
            }
        }
        s
    }

    /// The names of the operators' ClusterRoles (and their bindings).
    pub fn cluster_roles(&self) -> Vec<&str> {
        self.role_names(None)
    }

    /// The names of the operators' Roles (and their bindings) in namespace `ns`.
    pub fn roles_in(&self, ns: &str) -> Vec<&str> {
        self.role_names(Some(ns))
    }

    fn role_names(&self, ns: Option<&str>) -> Vec<&str> {
        let kind = if ns.is_some() { "Role" } else { "ClusterRole" };
        self.roles
            .iter()
            .filter(|r| r["kind"] == kind && r["metadata"]["namespace"].as_str() == ns)
            .filter_map(|r| r["metadata"]["name"].as_str())
            .collect()
    }
}
