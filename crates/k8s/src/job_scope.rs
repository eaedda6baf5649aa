//! What a plan's Kubernetes steps touch, by namespace and name: the scope `render --job` grants
//! the Job, and nothing outside it.

use crate::operator_manifests::OPERATOR_RELEASE;
use std::collections::BTreeSet;
use wbstack_plan::{Operator, Side, StepPlan};

/// The objects a plan's Kubernetes steps write, read and delete.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobScope {
    /// Every namespace a step writes in: created with the Job's manifests (a Role there needs
    /// it), deleted by name by `down`.
    pub namespaces: BTreeSet<String>,
    /// The CRDs wbstack applies, by name.
    pub crds: BTreeSet<String>,
    /// The W&B operator wbstack installs, if the plan may install one: its ClusterRole and
    /// binding are cluster-scoped writes by name.
    pub operator: Option<Operator>,
    /// Whether the plan writes a ClickHouseInstallation (Altinity).
    pub altinity: bool,
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

    /// The cluster-scoped RBAC objects the operator's install writes (its ClusterRole and
    /// ClusterRoleBinding share the release's name).
    pub fn operator_rbac(&self) -> Option<&'static str> {
        self.operator.as_ref().map(|_| OPERATOR_RELEASE)
    }
}
