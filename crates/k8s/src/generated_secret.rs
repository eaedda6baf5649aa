//! A Secret holding a password wbstack generates, and its origin copy.
//!
//! The password's source of truth is the origin copy (`<name>-origin`, written first), which
//! the workloads never read: a Secret deleted or changed by hand is restored from it with the
//! value the workloads were started with, never silently regenerated. Only when both are gone is
//! a new password made; its `revision` output (a SHA-256 digest, never the value) then changes,
//! and the workloads that read it roll, because their pod template carries the revision.

use crate::client::Kube;
use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use crate::objects::{secret_manifest, secret_outputs};
use async_trait::async_trait;
use rand::{Rng, TryRngCore};
use serde_json::{json, Value};
use std::sync::Arc;
use wbstack_engine::{
    Action, Change, Fingerprint, Observation, Outputs, Secret, SecretRef, Step, StepCtx, StepError,
};
use wbstack_plan::{GeneratedSecret, Kind};

/// A random password from the operating system's CSPRNG, kept only in a Secret. An existing
/// one is never regenerated.
pub struct GeneratedSecretStep {
    kube: Kube,
    spec: GeneratedSecret,
}

impl GeneratedSecretStep {
    pub fn new(kube: Kube, spec: GeneratedSecret) -> Self {
        GeneratedSecretStep { kube, spec }
    }

    fn origin_name(&self) -> String {
        format!("{}-origin", self.spec.name)
    }

    /// The base64 value under the key of Secret `name`: `None` when the Secret is absent,
    /// `Some(None)` when it has no such key.
    async fn value_of(&self, name: &str) -> Result<Option<Option<String>>, StepError> {
        let live = self
            .kube
            .get("v1", "Secret", Some(&self.spec.namespace), name)
            .await?;
        if let Some(o) = &live {
            if name == self.spec.name {
                self.kube.secret_standing(o)?;
            } else {
                self.kube.refuse_foreign(o)?;
            }
        }
        Ok(live.map(|o| o["data"][&self.spec.key].as_str().map(str::to_owned)))
    }

    /// Whether the plan adopts the Secret: then it is read, never written.
    fn adopted(&self) -> bool {
        self.kube.adopted_secrets.contains(&self.spec.name)
    }

    /// Both values: the Secret's and its origin copy's.
    async fn both(&self) -> Result<(Option<Option<String>>, Option<String>), StepError> {
        let main = self.value_of(&self.spec.name).await?;
        let origin = self.value_of(&self.origin_name()).await?.flatten();
        Ok((main, origin))
    }

    fn outputs(&self, b64: &str) -> Outputs {
        let mut o = secret_outputs(&self.spec.namespace, &self.spec.name, &self.spec.key);
        o.insert("revision".into(), json!(revision(b64)));
        o
    }

    /// The Secret `name` holding `value`.
    fn manifest(&self, name: &str, value: &Secret) -> Value {
        secret_manifest(&self.spec.namespace, name, &self.spec.key, value)
    }

    /// A value read back (base64 in the Secret), registered for scrubbing like a new one.
    fn decoded(&self, b64: &str) -> Result<Secret, StepError> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                StepError::permanent(format!(
                    "Secret {}/{} key {} is not base64 text",
                    self.spec.namespace, self.spec.name, self.spec.key
                ))
            })?;
        Ok(self.secret(&raw))
    }

    fn secret(&self, value: &str) -> Secret {
        Secret::new(
            SecretRef::new(
                "kubernetes",
                format!("{}/{}", self.spec.namespace, self.spec.name),
            )
            .with_key(&self.spec.key),
            value,
        )
    }

    /// What differs from a Secret and its origin holding the same value (values never shown).
    fn drift(&self, main: &Option<Option<String>>, origin: &Option<String>) -> Vec<Change> {
        let name = format!("{}/{}", self.spec.namespace, self.spec.name);
        let restored = "(the value the workloads were started with)";
        match (main, origin) {
            (None, Some(_)) => vec![Change::in_place(&name, "(deleted)", restored)],
            (Some(Some(m)), Some(o)) if m != o => {
                vec![Change::in_place(&name, "(changed by hand)", restored)]
            }
            (Some(Some(_)), None) => vec![Change::in_place(
                &format!("{}/{}", self.spec.namespace, self.origin_name()),
                "(missing)",
                format!("a copy of {name}"),
            )],
            _ => Vec::new(),
        }
    }
}

/// A digest naming a credential's value without revealing it (a SHA-256 of a random password).
pub(crate) fn revision(b64: &str) -> String {
    Fingerprint::of(&("credential", b64)).short().to_owned()
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
        GeneratedSecret::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        self.kube
            .marked("v1", "Secret", Some(&self.spec.namespace), &self.spec.name)
            .await
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "generated-secret",
            &self.spec.namespace,
            &self.spec.name,
            &self.spec.key,
            self.spec.length,
        ))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, _ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        let (main, origin) = self.both().await?;
        Ok(self.drift(&main, &origin))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        if self.adopted() {
            return Ok(match self.value_of(&self.spec.name).await? {
                Some(Some(v)) => Observation::Ready {
                    outputs: self.outputs(&v),
                    fingerprint: Some(self.fingerprint()),
                },
                Some(None) => Observation::Failed {
                    message: format!(
                        "the adopted Secret {}/{} has no key {}",
                        self.spec.namespace, self.spec.name, self.spec.key
                    ),
                },
                None => Observation::Failed {
                    message: format!(
                        "the adopted Secret {}/{} does not exist",
                        self.spec.namespace, self.spec.name
                    ),
                },
            });
        }
        let (main, origin) = self.both().await?;
        let drift = self.drift(&main, &origin);
        Ok(match (&main, &origin) {
            (Some(None), _) => Observation::Failed {
                message: format!(
                    "Secret {}/{} exists without key {}",
                    self.spec.namespace, self.spec.name, self.spec.key
                ),
            },
            (None, None) => Observation::Absent,
            (_, Some(v)) | (Some(Some(v)), None) => Observation::Ready {
                // The origin's value is the one the outputs name, restored or not.
                outputs: self.outputs(origin.as_deref().unwrap_or(v)),
                fingerprint: Some(if drift.is_empty() {
                    self.fingerprint()
                } else {
                    Fingerprint::of(&("generated-secret-drift", &drift))
                }),
            },
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let (main, origin) = self.both().await?;
        let value = match (&origin, &main) {
            (Some(o), _) => self.decoded(o)?,
            (None, Some(Some(m))) => self.decoded(m)?,
            // Neither: a new password, written to the origin first.
            _ => self.secret(&generate_password(self.spec.length)),
        };
        if origin.is_none() {
            // Create, never overwrite: a password made by an interrupted run is kept.
            self.kube
                .create(&self.manifest(&self.origin_name(), &value))
                .await?;
        }
        let same = match (&main, &origin) {
            (Some(Some(m)), Some(o)) => m == o,
            (Some(Some(_)), None) => true,
            _ => false,
        };
        match main {
            None => self
                .kube
                .create(&self.manifest(&self.spec.name, &value))
                .await
                .map(|_| ()),
            _ if same => Ok(()),
            _ => self
                .kube
                .apply(&self.manifest(&self.spec.name, &value))
                .await
                .map(|_| ()),
        }
    }
    async fn wait(&self, _ctx: &StepCtx) -> Result<Outputs, StepError> {
        match self.both().await? {
            (Some(Some(m)), _) => Ok(self.outputs(&m)),
            _ => Err(StepError::transient(format!(
                "Secret {}/{} is not there yet",
                self.spec.namespace, self.spec.name
            ))),
        }
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        for name in [self.spec.name.clone(), self.origin_name()] {
            self.kube
                .delete_own("v1", "Secret", Some(&self.spec.namespace), &name)
                .await?;
        }
        Ok(())
    }
}

impl K8sStepKind for GeneratedSecret {
    fn step(&self, w: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(GeneratedSecretStep::new(
            w.kube.clone(),
            self.clone(),
        )))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![]
    }
    fn scope(&self, s: &mut JobScope, _verify: bool) {
        s.namespaces.insert(self.namespace.clone());
    }
}
