//! The Altinity ClickHouse operator, installed as its install bundle installs it (0.25.6, carried
//! unchanged in `assets/`): its four CRDs, ServiceAccount, ClusterRole and Role with their
//! bindings, nine ConfigMaps of configuration, its Secret and the Deployment with its metrics
//! Service. Only the namespace, the images and the Secret's password differ: the bundle ships a
//! well-known password, and wbstack writes one from the CSPRNG instead (kept once made).
//!
//! An operator already running anywhere (a Deployment labelled `app=clickhouse-operator`) is used
//! as it is. On `down`, only what this environment installed goes, and only once no
//! ClickHouseInstallation or ClickHouseKeeperInstallation is left in the cluster: deleting its
//! CRDs would delete them all.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::objects::{annotated, terminating};
use crate::operator::{apply_role, running_operator};
use crate::ownership::{ours_to_remove, remove_installed, ALTINITY_RESOURCES};
use crate::ready::{settled, wait_for, workload_progress, workload_ready, Watch};
use crate::render::{with_pull_secrets, MANAGED_BY};
use async_trait::async_trait;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{AltinityOperator, Kind, OperatorInstall};

/// The install bundle, as Altinity publishes it.
const BUNDLE: &str = include_str!("../assets/altinity-operator-0.25.6.yaml");
/// The namespace the bundle installs into.
const BUNDLE_NAMESPACE: &str = "kube-system";
/// The images the bundle names.
const BUNDLE_IMAGES: [&str; 2] = [
    "altinity/clickhouse-operator:0.25.6",
    "altinity/metrics-exporter:0.25.6",
];
/// The label of the operator's Deployment, however it was installed (bundle or Helm chart).
const APP_LABEL: (&str, &str) = ("app", "clickhouse-operator");
/// The CRDs the bundle installs.
pub(crate) const ALTINITY_CRDS: [&str; 4] = [
    "clickhouseinstallations.clickhouse.altinity.com",
    "clickhouseinstallationtemplates.clickhouse.altinity.com",
    "clickhouseoperatorconfigurations.clickhouse.altinity.com",
    "clickhousekeeperinstallations.clickhouse-keeper.altinity.com",
];

/// The bundle's objects, in its order, with YAML merge keys (`<<: *anchor`, which its CRDs use)
/// resolved as kubectl resolves them.
fn bundle() -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(BUNDLE)
        .filter_map(|d| {
            let mut v: serde_yaml_ng::Value = serde::Deserialize::deserialize(d).ok()?;
            v.apply_merge().ok()?;
            serde_json::to_value(v).ok()
        })
        .filter(Value::is_object)
        .collect()
}

/// The bundle's objects for `s`: in its namespace, with its images and pull secrets, labelled
/// wbstack's, the Secret without its password (written by `apply`).
pub(crate) fn manifests(s: &AltinityOperator) -> Vec<Value> {
    let ns = s.namespace.as_str();
    let renamed = |n: &str| n.replace(BUNDLE_NAMESPACE, ns);
    let mut docs = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})];
    for mut d in bundle() {
        if d["metadata"]["namespace"] == BUNDLE_NAMESPACE {
            d["metadata"]["namespace"] = json!(ns);
        }
        match d["kind"].as_str().unwrap_or("") {
            "ClusterRole" | "ClusterRoleBinding" => {
                let name = renamed(d["metadata"]["name"].as_str().unwrap_or(""));
                d["metadata"]["name"] = json!(name);
                if d["roleRef"].is_object() {
                    d["roleRef"]["name"] = json!(name);
                }
            }
            "Secret" => {
                if let Some(data) = d["stringData"].as_object_mut() {
                    data.remove("password");
                }
            }
            "Deployment" => {
                let images = [s.image.as_str(), s.metrics_image.as_str()];
                for c in d["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if let Some(i) = BUNDLE_IMAGES.iter().position(|b| c["image"] == *b) {
                        c["image"] = json!(images[i]);
                    }
                }
            }
            _ => {}
        }
        if let Some(subjects) = d.get_mut("subjects").and_then(Value::as_array_mut) {
            for sub in subjects {
                sub["namespace"] = json!(ns);
            }
        }
        docs.push(d);
    }
    let fp = Fingerprint::of(&(&docs, &s.pull_secrets));
    with_pull_secrets(docs, &s.pull_secrets)
        .into_iter()
        .map(|mut d| {
            d["metadata"]["labels"][MANAGED_BY.0] = json!(MANAGED_BY.1);
            annotated(d, &fp)
        })
        .collect()
}

/// The roles the operator is granted: applied with `render --job`'s manifests, since writing
/// them needs what they grant.
pub(crate) fn roles(s: &AltinityOperator) -> Vec<Value> {
    manifests(s)
        .into_iter()
        .filter(|m| m["kind"] == "ClusterRole" || m["kind"] == "Role")
        .collect()
}

/// The Altinity operator step.
pub struct AltinityOperatorStep {
    kube: Kube,
    spec: AltinityOperator,
}

impl AltinityOperatorStep {
    pub fn new(kube: Kube, spec: AltinityOperator) -> Self {
        AltinityOperatorStep { kube, spec }
    }

    /// The operator's Deployment running in the cluster, if any (in any namespace).
    async fn find(&self) -> Result<Option<Value>, StepError> {
        let selector = format!("{}={}", APP_LABEL.0, APP_LABEL.1);
        let found = self
            .kube
            .list("apps/v1", "Deployment", None, &selector)
            .await?;
        Ok(found.into_iter().find(|d| !terminating(d)))
    }

    fn watches(&self) -> Vec<Watch<'static>> {
        vec![Watch {
            api_version: "apps/v1",
            kind: "Deployment",
            namespace: None,
            labels: format!("{}={}", APP_LABEL.0, APP_LABEL.1),
            fields: String::new(),
        }]
    }

    /// The Secret as written: its password kept when it has one, else made.
    async fn secret(&self, m: &Value) -> Result<Value, StepError> {
        let live = self.kube.get_manifest(m).await?;
        let password = match live.as_ref().and_then(|l| l["data"]["password"].as_str()) {
            Some(p) => p.to_owned(),
            None => {
                let p = crate::generate_password(32);
                base64::engine::general_purpose::STANDARD.encode(p)
            }
        };
        let mut m = m.clone();
        let user = m["stringData"]["username"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        m.as_object_mut().map(|o| o.remove("stringData"));
        m["data"] = json!({
            "username": base64::engine::general_purpose::STANDARD.encode(user),
            "password": password,
        });
        Ok(m)
    }
}

#[async_trait]
impl Step for AltinityOperatorStep {
    fn kind(&self) -> &str {
        AltinityOperator::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        match manifests(&self.spec)
            .iter()
            .find(|m| m["kind"] == "Deployment")
        {
            Some(m) => self.kube.marked_manifest(m).await,
            None => Ok(false),
        }
    }
    fn shared(&self) -> bool {
        true
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(manifests(&self.spec), &self.spec.pull_secrets))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(d) = self.find().await? else {
            return Ok(match self.spec.install {
                OperatorInstall::Never => Observation::Failed {
                    message: "the Altinity ClickHouse operator is not installed (no Deployment \
                              labelled app=clickhouse-operator) and \
                              spec.clickhouse.altinityOperator.install is `never`"
                        .into(),
                },
                OperatorInstall::Auto => Observation::Absent,
            });
        };
        if !workload_ready(&d) {
            return Ok(Observation::InProgress {
                detail: Some(format!(
                    "Altinity operator starting ({})",
                    workload_progress(&d)
                )),
            });
        }
        Ok(running_operator(&d, self.fingerprint()))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        for m in manifests(&self.spec) {
            match m["kind"].as_str().unwrap_or("") {
                "ClusterRole" | "Role" => apply_role(&self.kube, &m).await?,
                // Made if missing; one that exists is used as it is and never removed.
                "Namespace" => {
                    if self.kube.get_manifest(&m).await?.is_none() {
                        self.kube.apply(&m).await?;
                    }
                }
                "Secret" => {
                    let m = self.secret(&m).await?;
                    self.kube.apply(&m).await?;
                }
                _ => {
                    self.kube.apply(&m).await?;
                }
            }
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        wait_for(&self.kube, self.watches(), ctx, || async {
            settled(self.observe(ctx).await?)
        })
        .await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let what = "the Altinity ClickHouse operator";
        let m = manifests(&self.spec);
        remove_installed(&self.kube, ctx, &m, what, ALTINITY_RESOURCES).await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let mut watches = self.watches();
        watches.push(Watch::named("v1", "Namespace", &self.spec.namespace));
        wait_for(&self.kube, watches, ctx, || async {
            for m in manifests(&self.spec) {
                if let Some(l) = self.kube.get_manifest(&m).await? {
                    if ours_to_remove(&self.kube, &l) && terminating(&l) {
                        return Ok(None);
                    }
                }
            }
            Ok(Some(()))
        })
        .await
    }
}

impl K8sStepKind for AltinityOperator {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(AltinityOperatorStep::new(
            w.kube.clone(),
            self.clone(),
        )))
    }
    fn documents(&self) -> Vec<Value> {
        vec![]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        if self.install == OperatorInstall::Auto {
            s.namespaces.insert(self.namespace.clone());
            s.crds.extend(ALTINITY_CRDS.map(str::to_owned));
            s.roles.extend(roles(self));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AltinityOperator {
        AltinityOperator {
            namespace: "clickhouse-operator".into(),
            install: OperatorInstall::Auto,
            image: "registry.example.com/altinity/clickhouse-operator:0.25.6".into(),
            metrics_image: "registry.example.com/altinity/metrics-exporter:0.25.6".into(),
            pull_secrets: vec!["regcred".into()],
        }
    }

    #[test]
    fn the_bundle_is_installed_whole_in_the_plans_namespace() {
        let m = manifests(&spec());
        let kinds: Vec<&str> = m.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds.len(),
            22,
            "the namespace and the bundle's 21 objects: {kinds:?}"
        );
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == "CustomResourceDefinition")
                .count(),
            4
        );
        assert_eq!(kinds.iter().filter(|k| **k == "ConfigMap").count(), 9);
        let text = serde_json::to_string(&m).unwrap();
        assert!(!text.contains("kube-system"), "nothing left in kube-system");
        assert!(
            !text.contains("clickhouse_operator_password"),
            "no well-known password"
        );
        let crb = m
            .iter()
            .find(|d| d["kind"] == "ClusterRoleBinding")
            .unwrap();
        assert_eq!(
            crb["metadata"]["name"],
            "clickhouse-operator-clickhouse-operator"
        );
        assert_eq!(
            crb["roleRef"]["name"],
            "clickhouse-operator-clickhouse-operator"
        );
        assert_eq!(crb["subjects"][0]["namespace"], "clickhouse-operator");
        let d = m.iter().find(|d| d["kind"] == "Deployment").unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["image"], spec().image);
        assert_eq!(pod["containers"][1]["image"], spec().metrics_image);
        assert_eq!(pod["imagePullSecrets"][0]["name"], "regcred");
        assert!(m
            .iter()
            .all(|d| d["metadata"]["labels"][MANAGED_BY.0] == MANAGED_BY.1));
    }

    #[test]
    fn the_carried_bundle_is_altinitys_file_unchanged() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/altinity/install-bundle-0.25.6.yaml");
        let upstream = std::fs::read_to_string(path).unwrap();
        assert!(
            upstream == BUNDLE,
            "assets/altinity-operator-0.25.6.yaml must be upstream's file unchanged"
        );
    }

    #[test]
    fn the_job_is_given_the_operators_roles_to_apply_ahead() {
        let r = roles(&spec());
        let kinds: Vec<&str> = r.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ClusterRole", "Role"]);
    }
}
