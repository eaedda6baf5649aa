//! The NetworkPolicies step: the policies applied, then judged by the live ones. A policy
//! deleted, loosened or added under wbstack's label shows as a change and is put back; the
//! front door follows the release the operator installed.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::network_manifests::{backends, planned, policies, FrontDoor, POLICY_SET};
use crate::objects::out;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::sync::Arc;
use wbstack_chart::HelmRelease;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, NetworkPolicies};

const API: &str = "networking.k8s.io/v1";
const KIND: &str = "NetworkPolicy";

/// The namespace's NetworkPolicies.
pub struct NetworkPoliciesStep {
    kube: Kube,
    spec: NetworkPolicies,
}

/// How the live policies differ from the wanted ones, by name.
#[derive(Debug, Default, PartialEq)]
struct Difference {
    missing: Vec<String>,
    edited: Vec<String>,
    extra: Vec<Value>,
}

impl Difference {
    fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.edited.is_empty() && self.extra.is_empty()
    }
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

/// Live against wanted: only `spec` is compared (the API server keeps it as written).
fn compare(want: &[Value], live: &[Value]) -> Difference {
    let mut d = Difference::default();
    for w in want {
        match live.iter().find(|l| name(l) == name(w)) {
            None => d.missing.push(name(w).to_owned()),
            Some(l) if l["spec"] != w["spec"] => d.edited.push(name(w).to_owned()),
            Some(_) => {}
        }
    }
    d.extra = live
        .iter()
        .filter(|l| !want.iter().any(|w| name(w) == name(l)))
        .cloned()
        .collect();
    d
}

impl NetworkPoliciesStep {
    pub fn new(kube: Kube, spec: NetworkPolicies) -> Self {
        NetworkPoliciesStep { kube, spec }
    }

    /// The live policies under this resource's label (another environment's refused).
    async fn live(&self) -> Result<Vec<Value>, StepError> {
        let sel = format!("{POLICY_SET}={}", self.spec.release);
        let found = self
            .kube
            .list(API, KIND, Some(&self.spec.namespace), &sel)
            .await?;
        for o in &found {
            self.kube.refuse_foreign(o)?;
        }
        Ok(found)
    }

    /// The front door, from the newest revision of the release.
    async fn front_door(&self) -> Result<FrontDoor, StepError> {
        let (ns, release) = (&self.spec.namespace, &self.spec.release);
        let secrets = self
            .kube
            .list_if_allowed("v1", "Secret", Some(ns), &HelmRelease::selector(release))
            .await?;
        let Some(secrets) = secrets else {
            return Ok(FrontDoor::Unknown(format!(
                "this identity may not list Secrets in {ns}, where the operator keeps the Helm release"
            )));
        };
        let docs = match HelmRelease::latest(&secrets) {
            None => {
                return Ok(FrontDoor::Unknown(format!(
                    "no Helm release {release} in {ns} to read the Ingress from"
                )))
            }
            Some(Err(e)) => return Ok(FrontDoor::Unknown(e.to_string())),
            Some(Ok(r)) => r
                .documents()
                .map_err(|e| StepError::permanent(e.to_string()))?,
        };
        Ok(FrontDoor::Backends(backends(&docs)))
    }

    /// Every policy wanted now, and what the front door was made from.
    async fn wanted(&self, ctx: &StepCtx) -> Result<(Vec<Value>, FrontDoor), StepError> {
        let operator = self
            .spec
            .altinity
            .as_ref()
            .and_then(|a| ctx.dep_str(a.operator.step, a.operator.output));
        let door = self.front_door().await?;
        Ok((policies(&self.spec, operator, &door), door))
    }

    fn outputs(want: &[Value], door: &FrontDoor) -> Outputs {
        let names: Vec<&str> = want.iter().map(name).collect();
        let backends = match door {
            FrontDoor::Backends(b) => json!(b.iter().map(|b| &b.service).collect::<Vec<_>>()),
            FrontDoor::Unknown(why) => json!(format!("unknown: {why}")),
        };
        out(&[("policies", json!(names)), ("front_door", backends)])
    }
}

#[async_trait]
impl Step for NetworkPoliciesStep {
    fn kind(&self) -> &str {
        NetworkPolicies::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        Ok(self.live().await?.iter().any(|o| self.kube.is_mine(o)))
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&planned(&self.spec))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        let (want, _) = self.wanted(ctx).await?;
        let d = compare(&want, &self.live().await?);
        let field = |n: &str| format!("networkpolicy/{n}");
        let mut v: Vec<Change> = d
            .missing
            .iter()
            .map(|n| Change::in_place(&field(n), "(none)", "as planned"))
            .collect();
        v.extend(
            d.edited
                .iter()
                .map(|n| Change::in_place(&field(n), "edited", "as planned")),
        );
        v.extend(
            d.extra
                .iter()
                .map(|o| Change::in_place(&field(name(o)), "present", "(none)")),
        );
        Ok(v)
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let live = self.live().await?;
        if live.is_empty() {
            return Ok(Observation::Absent);
        }
        let (want, door) = self.wanted(ctx).await?;
        let d = compare(&want, &live);
        let fingerprint = if d.is_empty() {
            self.fingerprint()
        } else {
            // Deleted, edited or added by hand, or a release with another Ingress: put back.
            let extra: Vec<&str> = d.extra.iter().map(name).collect();
            Fingerprint::of(&("live", &d.missing, &d.edited, extra))
        };
        Ok(Observation::Ready {
            outputs: Self::outputs(&want, &door),
            fingerprint: Some(fingerprint),
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let (want, door) = self.wanted(ctx).await?;
        if let FrontDoor::Unknown(why) = &door {
            ctx.progress(format!(
                "the front door's backends are unknown ({why}): its sources may reach every pod"
            ));
        }
        for p in &want {
            self.kube.apply(p).await?;
        }
        for o in compare(&want, &self.live().await?).extra {
            self.kube.delete_own_manifest(&o).await?;
        }
        Ok(())
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        for o in self.live().await? {
            self.kube.delete_own_manifest(&o).await?;
        }
        Ok(())
    }
}

impl K8sStepKind for NetworkPolicies {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(NetworkPoliciesStep::new(
            w.kube.clone(),
            self.clone(),
        )))
    }
    fn documents(&self) -> Vec<Value> {
        planned(self)
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.namespaces.insert(self.namespace.clone());
        s.network_policies = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn live_policies_are_judged_by_name_and_spec() {
        let want = [p("a", json!({"x": 1})), p("b", json!({"x": 2}))];
        assert!(compare(&want, &want).is_empty());
        let live = [p("a", json!({"x": 9})), p("c", json!({}))];
        let d = compare(&want, &live);
        assert_eq!(d.missing, ["b"]);
        assert_eq!(d.edited, ["a"]);
        assert_eq!(d.extra, [p("c", json!({}))]);
    }
}
