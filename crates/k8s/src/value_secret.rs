//! A Secret holding a value wbstack was given or keeps elsewhere.

use crate::client::Kube;
use crate::objects::{secret_manifest, secret_outputs};
use crate::ownership::Standing;
use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;
use std::sync::Arc;
use wbstack_engine::{
    Action, Fingerprint, Observation, Outputs, Secret, SecretRef, Step, StepCtx, StepError,
};
use wbstack_plan::{Input, Kind, LicenseSecret, MirroredSecret};

use crate::generated_secret::revision;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};

/// When wbstack last wrote a mirrored Secret (milliseconds since the epoch).
const WRITTEN_ANNOTATION: &str = "wbstack.dev/written";

/// The output naming the source a copy was made of.
const SOURCE: &str = "source";
const REVISION: &str = wbstack_plan::ids::outputs::REVISION;
const WRITTEN: &str = wbstack_plan::ids::outputs::WRITTEN;

/// A Secret holding a value wbstack was given (the license) or keeps elsewhere (a password in
/// Secrets Manager). The value is compared, never recorded: a changed value is an update.
pub struct ValueSecretStep {
    kube: Kube,
    label: &'static str,
    namespace: String,
    name: String,
    key: String,
    value: ValueSource,
}

/// Where a [`ValueSecretStep`] gets its value.
#[derive(Clone)]
pub enum ValueSource {
    /// Known before the run (resolved and validated by the caller).
    Known(Secret),
    /// The secret another step's output refers to, fetched by a resolver.
    FromStep {
        from: Input,
        resolver: Arc<dyn SecretResolver>,
    },
}

/// Fetches secret values by reference (from Secrets Manager, say).
#[async_trait]
pub trait SecretResolver: Send + Sync {
    async fn resolve(&self, r: &SecretRef) -> Result<Secret, StepError>;
}

impl ValueSecretStep {
    /// The license Secret, with the value the caller read from where the plan says.
    pub fn license(kube: Kube, spec: LicenseSecret, value: Secret) -> Self {
        ValueSecretStep {
            kube,
            label: LicenseSecret::LABEL,
            namespace: spec.namespace,
            name: spec.name,
            key: spec.key,
            value: ValueSource::Known(value),
        }
    }

    /// A Secret mirroring the secret another step keeps (in Secrets Manager).
    pub fn mirrored(kube: Kube, spec: MirroredSecret, resolver: Arc<dyn SecretResolver>) -> Self {
        ValueSecretStep {
            kube,
            label: MirroredSecret::LABEL,
            namespace: spec.namespace,
            name: spec.name,
            key: spec.key,
            value: ValueSource::FromStep {
                from: spec.from,
                resolver,
            },
        }
    }

    async fn value(&self, ctx: &StepCtx) -> Result<Secret, StepError> {
        match &self.value {
            ValueSource::Known(s) => Ok(s.clone()),
            ValueSource::FromStep { from, resolver } => {
                let (step, output) = (from.step, from.output);
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

    /// The source reference this copy is of (a version of a secret kept elsewhere).
    fn source(&self, ctx: &StepCtx) -> Option<Value> {
        match &self.value {
            ValueSource::Known(_) => None,
            ValueSource::FromStep { from, .. } => ctx.dep_output(from.step, from.output).cloned(),
        }
    }

    /// Whether the recorded copy was made from the source this run reads.
    fn same_source(&self, ctx: &StepCtx, previous: Option<&Outputs>) -> bool {
        previous.is_some_and(|p| p.get(SOURCE) == self.source(ctx).as_ref())
    }

    /// The Secret's outputs, with a digest of the value it holds (never the value), when
    /// wbstack last wrote it and the source it copies.
    fn outputs(&self, ctx: &StepCtx, live: &Value) -> Outputs {
        let mut o = secret_outputs(&self.namespace, &self.name, &self.key);
        if let Some(b) = live["data"][&self.key].as_str() {
            o.insert(REVISION.into(), serde_json::json!(revision(b)));
        }
        let written = live["metadata"]["annotations"][WRITTEN_ANNOTATION]
            .as_str()
            .unwrap_or("");
        o.insert(WRITTEN.into(), serde_json::json!(written));
        if let Some(s) = self.source(ctx) {
            o.insert(SOURCE.into(), s);
        }
        o
    }

    /// The Secret as written now, stamped with the time.
    fn manifest(&self, value: &Secret) -> Value {
        let mut m = secret_manifest(&self.namespace, &self.name, &self.key, value);
        m["metadata"]["annotations"][WRITTEN_ANNOTATION] =
            serde_json::json!(wbstack_engine::now_ms().to_string());
        m
    }
}

#[async_trait]
impl Step for ValueSecretStep {
    fn kind(&self) -> &str {
        self.label
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        self.kube
            .marked("v1", "Secret", Some(&self.namespace), &self.name)
            .await
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
            if self.kube.adopted_secrets.contains(&self.name) {
                return Ok(Observation::Failed {
                    message: format!(
                        "the adopted Secret {}/{} does not exist",
                        self.namespace, self.name
                    ),
                });
            }
            return Ok(Observation::Absent);
        };
        let standing = self.kube.secret_standing(&o)?;
        let b64 = o["data"][&self.key].as_str();
        if standing == Standing::Adopted {
            // Used as it is: its value is the plan's business no more.
            return Ok(match b64 {
                Some(_) => Observation::Ready {
                    outputs: self.outputs(ctx, &o),
                    fingerprint: Some(self.fingerprint()),
                },
                None => Observation::Failed {
                    message: format!(
                        "the adopted Secret {}/{} has no key {}",
                        self.namespace, self.name, self.key
                    ),
                },
            });
        }
        let live = b64.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        // Compare with the value it should hold; only the outcome is reported.
        let matches = match &self.value {
            ValueSource::Known(s) => live.as_deref() == Some(s.expose().as_bytes()),
            // A copy wbstack made of the same source version, and recorded, is trusted without
            // reading the source again (one read per resource on a converged re-run) while it
            // still holds what was recorded (its revision, a digest); a copy edited by hand, or
            // anything else, is compared with the source.
            ValueSource::FromStep { .. }
                if ctx.attempted()
                    && self.same_source(ctx, ctx.previous())
                    && b64.map(revision).as_ref()
                        == ctx
                            .previous()
                            .and_then(|p| p.get(REVISION))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .as_ref() =>
            {
                true
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
            outputs: self.outputs(ctx, &o),
            fingerprint: Some(fp),
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let v = self.value(ctx).await?;
        self.kube.apply(&self.manifest(&v)).await.map(|_| ())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let o = self
            .kube
            .get("v1", "Secret", Some(&self.namespace), &self.name)
            .await?
            .unwrap_or_default();
        Ok(self.outputs(ctx, &o))
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube
            .delete_own("v1", "Secret", Some(&self.namespace), &self.name)
            .await
    }
}

impl K8sStepKind for LicenseSecret {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        let license = w.license.clone().ok_or(Unwired::License)?;
        let step = ValueSecretStep::license(w.kube.clone(), self.clone(), license);
        Ok(Arc::new(step))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.namespaces.insert(self.namespace.clone());
    }
}

impl K8sStepKind for MirroredSecret {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        let resolver = w.resolver.clone().ok_or(Unwired::Aws)?;
        let step = ValueSecretStep::mirrored(w.kube.clone(), self.clone(), resolver);
        Ok(Arc::new(step))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.namespaces.insert(self.namespace.clone());
    }
}
