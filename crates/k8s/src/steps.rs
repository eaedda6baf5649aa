//! The Kubernetes steps.

use crate::client::{classify, Kube};
use crate::ready::{
    chi_ready, wait_for, wandb_phase, workload_progress, workload_ready, WandbPhase, Watch,
};
use crate::render;
use async_trait::async_trait;
use base64::Engine as _;
use rand::{Rng, TryRngCore};
use serde_json::{json, Value};
use std::sync::Arc;
use wbstack_engine::{
    Action, Fingerprint, Observation, Outputs, Secret, SecretRef, Step, StepCtx, StepError,
};
use wbstack_plan::{AltinityClickhouse, Binding, BundledClickhouse, OperatorInstall};

/// The annotation that records the fingerprint wbstack applied.
pub const FINGERPRINT_ANNOTATION: &str = "wbstack.dev/fingerprint";

fn annotated(mut obj: Value, fp: &Fingerprint) -> Value {
    obj["metadata"]["annotations"][FINGERPRINT_ANNOTATION] = json!(fp.as_str());
    obj
}

fn observed_fp(obj: &Value) -> Option<Fingerprint> {
    obj["metadata"]["annotations"][FINGERPRINT_ANNOTATION]
        .as_str()
        .map(Fingerprint::from_hex)
}

fn out(pairs: &[(&str, Value)]) -> Outputs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn secret_outputs(ns: &str, name: &str, key: &str) -> Outputs {
    let r = SecretRef::new("kubernetes", format!("{ns}/{name}")).with_key(key);
    out(&[
        ("name", json!(name)),
        ("key", json!(key)),
        ("secret", serde_json::to_value(r).unwrap_or_default()),
    ])
}

/// An Opaque Secret holding one key.
fn secret_manifest(namespace: &str, name: &str, key: &str, value: &Secret) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "wbstack"}},
        "data": {key: base64::engine::general_purpose::STANDARD.encode(value.expose())}})
}

fn terminating(o: &Value) -> bool {
    !o["metadata"]["deletionTimestamp"].is_null()
}

/// A namespace.
pub struct NamespaceStep {
    pub kube: Kube,
    pub name: String,
}

#[async_trait]
impl Step for NamespaceStep {
    fn kind(&self) -> &str {
        "k8s.namespace"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("namespace", &self.name))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(
            match self.kube.get("v1", "Namespace", None, &self.name).await? {
                None => Observation::Absent,
                Some(o) if terminating(&o) => Observation::InProgress {
                    detail: Some("terminating".into()),
                },
                Some(_) => Observation::ready(out(&[("name", json!(self.name))])),
            },
        )
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.name, "labels": {"app.kubernetes.io/managed-by": "wbstack"}}});
        self.kube.create(&obj).await.map(|_| ())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch {
            api_version: "v1",
            kind: "Namespace",
            namespace: None,
            labels: String::new(),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                Observation::InProgress { .. } => {
                    return Err(StepError::transient(format!(
                        "namespace {} is still being deleted",
                        self.name
                    )))
                }
                _ => None,
            })
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube.delete("v1", "Namespace", None, &self.name).await
    }
}

/// A Secret holding a value wbstack was given (the license) or keeps elsewhere (a password in
/// Secrets Manager). The value is compared, never recorded: a changed value is an update.
pub struct ValueSecretStep {
    pub kube: Kube,
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub value: ValueSource,
}

/// Where a [`ValueSecretStep`] gets its value.
#[derive(Clone)]
pub enum ValueSource {
    /// Known before the run (resolved and validated by the caller).
    Known(Secret),
    /// The secret another step's output refers to, fetched by a resolver.
    FromStep {
        step: String,
        output: String,
        resolver: Arc<dyn SecretResolver>,
    },
}

/// Fetches secret values by reference (from Secrets Manager, say).
#[async_trait]
pub trait SecretResolver: Send + Sync {
    async fn resolve(&self, r: &SecretRef) -> Result<Secret, StepError>;
}

impl ValueSecretStep {
    async fn value(&self, ctx: &StepCtx) -> Result<Secret, StepError> {
        match &self.value {
            ValueSource::Known(s) => Ok(s.clone()),
            ValueSource::FromStep {
                step,
                output,
                resolver,
            } => {
                let v = ctx.dep_output(step, output).ok_or_else(|| {
                    StepError::permanent(format!("step {step} has no output {output}"))
                })?;
                let r = SecretRef::from_output(v).ok_or_else(|| {
                    StepError::permanent(format!(
                        "output {output} of {step} is not a secret reference"
                    ))
                })?;
                resolver.resolve(&r).await
            }
        }
    }

    fn manifest(&self, value: &Secret) -> Value {
        secret_manifest(&self.namespace, &self.name, &self.key, value)
    }
}

#[async_trait]
impl Step for ValueSecretStep {
    fn kind(&self) -> &str {
        "k8s.secret"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("secret", &self.namespace, &self.name, &self.key))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(o) = self
            .kube
            .get("v1", "Secret", Some(&self.namespace), &self.name)
            .await?
        else {
            return Ok(Observation::Absent);
        };
        let live = o["data"][&self.key]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        // Compare with the value it should hold; only the outcome is reported.
        let matches = match &self.value {
            ValueSource::Known(s) => live.as_deref() == Some(s.expose().as_bytes()),
            // A copy wbstack made and recorded is trusted without reading the source again
            // (one read per resource on a converged re-run); otherwise it is compared.
            ValueSource::FromStep { .. } if ctx.attempted() && ctx.previous().is_some() => {
                live.is_some()
            }
            ValueSource::FromStep { .. } => match self.value(ctx).await {
                Ok(s) => live.as_deref() == Some(s.expose().as_bytes()),
                Err(_) => live.is_some(),
            },
        };
        let fp = if matches {
            self.fingerprint()
        } else {
            Fingerprint::from_hex("value-differs")
        };
        Ok(Observation::Ready {
            outputs: secret_outputs(&self.namespace, &self.name, &self.key),
            fingerprint: Some(fp),
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let v = self.value(ctx).await?;
        self.kube.apply(&self.manifest(&v)).await.map(|_| ())
    }
    async fn wait(&self, _ctx: &StepCtx) -> Result<Outputs, StepError> {
        Ok(secret_outputs(&self.namespace, &self.name, &self.key))
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube
            .delete("v1", "Secret", Some(&self.namespace), &self.name)
            .await
    }
}

/// A random password from the operating system's CSPRNG, kept only in a Secret. An existing
/// one is never regenerated.
pub struct GeneratedSecretStep {
    pub kube: Kube,
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub length: usize,
}

/// A password of `length` letters and digits from a CSPRNG.
pub fn generate_password(length: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    // The operating system's generator, directly.
    let mut rng = rand::rngs::OsRng.unwrap_err();
    (0..length)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[async_trait]
impl Step for GeneratedSecretStep {
    fn kind(&self) -> &str {
        "k8s.secret.generated"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "generated-secret",
            &self.namespace,
            &self.name,
            &self.key,
            self.length,
        ))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(
            match self
                .kube
                .get("v1", "Secret", Some(&self.namespace), &self.name)
                .await?
            {
                Some(o) if o["data"][&self.key].is_string() => {
                    Observation::ready(secret_outputs(&self.namespace, &self.name, &self.key))
                }
                Some(_) => Observation::Failed {
                    message: format!(
                        "Secret {}/{} exists without key {}",
                        self.namespace, self.name, self.key
                    ),
                },
                None => Observation::Absent,
            },
        )
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let value = Secret::new(
            SecretRef::new("kubernetes", format!("{}/{}", self.namespace, self.name))
                .with_key(&self.key),
            generate_password(self.length),
        );
        let obj = secret_manifest(&self.namespace, &self.name, &self.key, &value);
        // Create, never overwrite: a password made by an interrupted run is kept.
        self.kube.create(&obj).await.map(|_| ())
    }
    async fn wait(&self, _ctx: &StepCtx) -> Result<Outputs, StepError> {
        Ok(secret_outputs(&self.namespace, &self.name, &self.key))
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube
            .delete("v1", "Secret", Some(&self.namespace), &self.name)
            .await
    }
}

/// The W&B operator: installed when absent, adopted when present.
pub struct OperatorStep {
    pub kube: Kube,
    pub namespace: String,
    pub version: String,
    pub install: OperatorInstall,
}

impl OperatorStep {
    async fn find(&self) -> Result<(Option<Value>, Option<Value>), StepError> {
        let crd = self
            .kube
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                render::WANDB_CRD,
            )
            .await?;
        let sel = format!("{}={}", render::OPERATOR_LABEL.0, render::OPERATOR_LABEL.1);
        let deploy = self
            .kube
            .list("apps/v1", "Deployment", None, &sel)
            .await?
            .into_iter()
            .find(|d| !terminating(d));
        Ok((crd, deploy))
    }
}

#[async_trait]
impl Step for OperatorStep {
    fn kind(&self) -> &str {
        "k8s.wandb-operator"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("operator", &self.namespace, &self.version))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let (crd, deploy) = self.find().await?;
        Ok(match (crd, deploy) {
            (Some(_), Some(d)) if workload_ready(&d) => Observation::ready(out(&[
                ("namespace", d["metadata"]["namespace"].clone()),
                (
                    "image",
                    d["spec"]["template"]["spec"]["containers"][0]["image"].clone(),
                ),
            ])),
            (Some(_), Some(_)) => Observation::InProgress {
                detail: Some("operator starting".into()),
            },
            _ if self.install == OperatorInstall::Never => Observation::Failed {
                message:
                    "the W&B operator is not installed and spec.wandb.operator.install is `never`"
                        .into(),
            },
            (None, None) => Observation::Absent,
            // Half there (an interrupted install): apply completes it.
            _ => Observation::Absent,
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        for m in render::operator(&self.namespace, &self.version) {
            self.kube.apply(&m).await?;
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch {
            api_version: "apps/v1",
            kind: "Deployment",
            namespace: None,
            labels: format!("{}={}", render::OPERATOR_LABEL.0, render::OPERATOR_LABEL.1),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                Observation::Failed { message } => return Err(StepError::permanent(message)),
                _ => None,
            })
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        // Dependents (the WeightsAndBiases resource) are gone by now: teardown runs in reverse.
        for m in render::operator(&self.namespace, &self.version)
            .iter()
            .rev()
        {
            self.kube.delete_manifest(m).await?;
        }
        Ok(())
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let watches = vec![Watch {
            api_version: "v1",
            kind: "Namespace",
            namespace: None,
            labels: String::new(),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            let ns = self
                .kube
                .get("v1", "Namespace", None, &self.namespace)
                .await?;
            let crd = self
                .kube
                .get(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    None,
                    render::WANDB_CRD,
                )
                .await?;
            Ok((ns.is_none() && crd.is_none()).then_some(()))
        })
        .await
    }
}

/// Bundled ClickHouse: native manifests, ready when Keeper and every shard are.
pub struct ClickhouseBundledStep {
    pub kube: Kube,
    pub spec: BundledClickhouse,
}

impl ClickhouseBundledStep {
    fn manifests(&self) -> Vec<Value> {
        let fp = self.fingerprint();
        render::clickhouse_bundled(&self.spec)
            .into_iter()
            .map(|m| annotated(m, &fp))
            .collect()
    }
    fn outputs(&self) -> Outputs {
        out(&[
            (
                "host",
                json!(format!(
                    "{}.{}.svc.cluster.local",
                    self.spec.name, self.spec.namespace
                )),
            ),
            ("port", json!(8123)),
            ("cluster", json!(self.spec.cluster_name)),
        ])
    }
    /// Keeper must not be older than the server it serves.
    fn check_versions(&self) -> Result<(), StepError> {
        let tag = |img: &str| {
            img.rsplit(':')
                .next()
                .unwrap_or("")
                .split('.')
                .map(|p| p.parse::<u32>().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        if tag(&self.spec.keeper_image) < tag(&self.spec.image) {
            return Err(StepError::permanent(format!(
                "ClickHouse Keeper ({}) is older than the server ({})",
                self.spec.keeper_image, self.spec.image
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Step for ClickhouseBundledStep {
    fn kind(&self) -> &str {
        "k8s.clickhouse"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&render::clickhouse_bundled(&self.spec))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let ms = self.manifests();
        let mut present = 0;
        let mut fp = None;
        let mut waiting = Vec::new();
        for m in &ms {
            if let Some(live) = self.kube.get_manifest(m).await? {
                present += 1;
                if m["kind"] == "StatefulSet" {
                    fp = fp.or_else(|| observed_fp(&live));
                    if !workload_ready(&live) {
                        waiting.push(workload_progress(&live));
                    }
                }
            }
        }
        Ok(if present == 0 {
            Observation::Absent
        } else if present < ms.len() {
            Observation::InProgress {
                detail: Some(format!("{present}/{} objects", ms.len())),
            }
        } else if !waiting.is_empty() {
            ctx.progress(format!("waiting for {}", waiting.join(", ")));
            Observation::InProgress {
                detail: Some(waiting.join(", ")),
            }
        } else {
            Observation::Ready {
                outputs: self.outputs(),
                fingerprint: fp,
            }
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        self.check_versions()?;
        for m in self.manifests() {
            self.kube.apply(&m).await?;
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch {
            api_version: "apps/v1",
            kind: "StatefulSet",
            namespace: Some(&self.spec.namespace),
            labels: format!("app.kubernetes.io/instance={}", self.spec.name),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                _ => None,
            })
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        for m in self.manifests().iter().rev() {
            self.kube.delete_manifest(m).await?;
        }
        // StatefulSets leave their volume claims behind; nothing is left behind here.
        let sel = format!("app.kubernetes.io/instance={}", self.spec.name);
        for pvc in self
            .kube
            .list(
                "v1",
                "PersistentVolumeClaim",
                Some(&self.spec.namespace),
                &sel,
            )
            .await?
        {
            self.kube.delete_manifest(&pvc).await?;
        }
        Ok(())
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let watches = vec![Watch {
            api_version: "apps/v1",
            kind: "StatefulSet",
            namespace: Some(&self.spec.namespace),
            labels: format!("app.kubernetes.io/instance={}", self.spec.name),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            for m in self.manifests() {
                if self.kube.get_manifest(&m).await?.is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }
}

/// A ClickHouseInstallation for the Altinity operator.
pub struct ClickhouseAltinityStep {
    pub kube: Kube,
    pub spec: AltinityClickhouse,
}

#[async_trait]
impl Step for ClickhouseAltinityStep {
    fn kind(&self) -> &str {
        "k8s.clickhouse-installation"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&render::clickhouse_altinity(&self.spec))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(o) = self
            .kube
            .get(
                "clickhouse.altinity.com/v1",
                "ClickHouseInstallation",
                Some(&self.spec.namespace),
                &self.spec.name,
            )
            .await?
        else {
            return Ok(Observation::Absent);
        };
        if chi_ready(&o) {
            Ok(Observation::Ready {
                outputs: out(&[
                    (
                        "host",
                        json!(format!(
                            "clickhouse-{}.{}.svc.cluster.local",
                            self.spec.name, self.spec.namespace
                        )),
                    ),
                    ("port", json!(8123)),
                    ("endpoint", o["status"]["endpoint"].clone()),
                ]),
                fingerprint: observed_fp(&o),
            })
        } else if o["status"]["hostsFailed"].as_i64().unwrap_or(0) > 0
            || o["status"]["status"] == "Aborted"
        {
            Ok(Observation::Failed {
                message: format!(
                    "ClickHouseInstallation {}: status {}, {} hosts failed",
                    self.spec.name, o["status"]["status"], o["status"]["hostsFailed"]
                ),
            })
        } else {
            Ok(Observation::InProgress {
                detail: o["status"]["status"].as_str().map(str::to_owned),
            })
        }
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let m = annotated(render::clickhouse_altinity(&self.spec), &self.fingerprint());
        self.kube.apply(&m).await.map(|_| ()).map_err(|e| {
            if e.message().contains("does not manage") || e.message().contains("404") {
                StepError::permanent(format!(
                    "{} (is the Altinity ClickHouse operator installed?)",
                    e.message()
                ))
            } else {
                e
            }
        })
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let watches = vec![Watch {
            api_version: "clickhouse.altinity.com/v1",
            kind: "ClickHouseInstallation",
            namespace: Some(&self.spec.namespace),
            labels: String::new(),
        }];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                Observation::Failed { message } => return Err(StepError::permanent(message)),
                _ => None,
            })
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube
            .delete(
                "clickhouse.altinity.com/v1",
                "ClickHouseInstallation",
                Some(&self.spec.namespace),
                &self.spec.name,
            )
            .await
    }
}

/// The WeightsAndBiases resource. Ready when the operator says so for this generation and
/// every Deployment and StatefulSet of the release is ready with the replicas asked for.
pub struct WandbStep {
    pub kube: Kube,
    pub namespace: String,
    pub name: String,
    pub values: Value,
    pub bindings: Vec<Binding>,
}

impl WandbStep {
    /// The values with every binding filled from dependency outputs.
    pub fn resolve(&self, ctx: &StepCtx) -> Result<Value, StepError> {
        let mut v = self.values.clone();
        for b in &self.bindings {
            let x = ctx.dep_output(&b.step, &b.output).ok_or_else(|| {
                StepError::permanent(format!("step {} has no output {}", b.step, b.output))
            })?;
            if let Some(slot) = v.pointer_mut(&b.pointer) {
                *slot = x.clone();
            }
        }
        Ok(v)
    }

    fn release_selector(&self) -> String {
        format!(
            "app.kubernetes.io/managed-by=Helm,app.kubernetes.io/instance={}",
            self.name
        )
    }

    async fn invalid_reason(&self) -> String {
        let events = self
            .kube
            .list("v1", "Event", Some(&self.namespace), "")
            .await
            .unwrap_or_default();
        let msgs: Vec<String> = events
            .iter()
            .filter(|e| {
                e["involvedObject"]["name"] == self.name.as_str()
                    && e["involvedObject"]["kind"] == "WeightsAndBiases"
            })
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .collect();
        if msgs.is_empty() {
            "no event from the operator says why".into()
        } else {
            msgs.join("; ")
        }
    }
}

#[async_trait]
impl Step for WandbStep {
    fn kind(&self) -> &str {
        "k8s.weightsandbiases"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(&self.namespace, &self.name, &self.values, &self.bindings))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(cr) = self
            .kube
            .get(
                "apps.wandb.com/v1",
                "WeightsAndBiases",
                Some(&self.namespace),
                &self.name,
            )
            .await?
        else {
            return Ok(Observation::Absent);
        };
        if terminating(&cr) {
            return Ok(Observation::InProgress {
                detail: Some("being deleted".into()),
            });
        }
        match wandb_phase(&cr) {
            WandbPhase::Invalid => {
                return Ok(Observation::Failed {
                    message: format!(
                        "the W&B operator rejected the configuration (Invalid Config): {}",
                        self.invalid_reason().await
                    ),
                })
            }
            WandbPhase::Pending(p) => return Ok(Observation::InProgress { detail: Some(p) }),
            WandbPhase::Completed => {}
        }
        let values = &cr["spec"]["values"];
        let sel = self.release_selector();
        let mut workloads = self
            .kube
            .list("apps/v1", "Deployment", Some(&self.namespace), &sel)
            .await?;
        workloads.extend(
            self.kube
                .list("apps/v1", "StatefulSet", Some(&self.namespace), &sel)
                .await?,
        );
        // The phase is not tied to a generation: also require the workloads this configuration
        // asks for, at the replicas it asks for.
        let mut waiting = Vec::new();
        for (name, replicas) in render::expected_workloads(&self.name, values) {
            match workloads
                .iter()
                .find(|w| w["metadata"]["name"] == name.as_str())
            {
                None => waiting.push(format!("{name} missing")),
                Some(w) if w["spec"]["replicas"].as_i64() != Some(replicas) => waiting.push(
                    format!("{name} at {} of {replicas} replicas", w["spec"]["replicas"]),
                ),
                Some(_) => {}
            }
        }
        for w in &workloads {
            if !workload_ready(w) {
                waiting.push(workload_progress(w));
            }
        }
        if !waiting.is_empty() {
            ctx.progress(format!("waiting for {}", waiting.join(", ")));
            return Ok(Observation::InProgress {
                detail: Some(waiting.join(", ")),
            });
        }
        Ok(Observation::Ready {
            outputs: out(&[
                ("name", json!(self.name)),
                ("namespace", json!(self.namespace)),
                ("host", values["global"]["host"].clone()),
                ("workloads", json!(workloads.len())),
            ]),
            fingerprint: observed_fp(&cr),
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let values = self.resolve(ctx)?;
        let obj = annotated(
            render::wandb(&self.namespace, &self.name, &values),
            &self.fingerprint(),
        );
        self.kube.apply(&obj).await.map(|_| ())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let sel = self.release_selector();
        let watches = vec![
            Watch {
                api_version: "apps.wandb.com/v1",
                kind: "WeightsAndBiases",
                namespace: Some(&self.namespace),
                labels: String::new(),
            },
            Watch {
                api_version: "apps/v1",
                kind: "Deployment",
                namespace: Some(&self.namespace),
                labels: sel.clone(),
            },
            Watch {
                api_version: "apps/v1",
                kind: "StatefulSet",
                namespace: Some(&self.namespace),
                labels: sel,
            },
        ];
        wait_for(&self.kube, watches, ctx, || async {
            Ok(match self.observe(ctx).await? {
                Observation::Ready { outputs, .. } => Some(outputs),
                Observation::Failed { message } => return Err(StepError::permanent(message)),
                _ => None,
            })
        })
        .await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube
            .delete(
                "apps.wandb.com/v1",
                "WeightsAndBiases",
                Some(&self.namespace),
                &self.name,
            )
            .await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        // The operator's finalizer removes the release first; wait for both.
        let sel = self.release_selector();
        let watches = vec![
            Watch {
                api_version: "apps.wandb.com/v1",
                kind: "WeightsAndBiases",
                namespace: Some(&self.namespace),
                labels: String::new(),
            },
            Watch {
                api_version: "apps/v1",
                kind: "Deployment",
                namespace: Some(&self.namespace),
                labels: sel.clone(),
            },
        ];
        wait_for(&self.kube, watches, ctx, || async {
            let cr = self
                .kube
                .get(
                    "apps.wandb.com/v1",
                    "WeightsAndBiases",
                    Some(&self.namespace),
                    &self.name,
                )
                .await?;
            if let Some(cr) = cr {
                ctx.progress(format!(
                    "waiting for the operator to remove its finalizer ({})",
                    cr["metadata"]["finalizers"]
                ));
                return Ok(None);
            }
            let left = self
                .kube
                .list("apps/v1", "Deployment", Some(&self.namespace), &sel)
                .await?
                .len()
                + self
                    .kube
                    .list("apps/v1", "StatefulSet", Some(&self.namespace), &sel)
                    .await?
                    .len();
            Ok((left == 0).then_some(()))
        })
        .await
    }
}

/// Reports a kube error with context; for callers outside steps.
pub fn kube_error(e: kube::Error, what: &str) -> StepError {
    classify(e, what)
}
