//! A Secret holding a password wbstack generates.

use crate::client::Kube;
use crate::objects::{secret_manifest, secret_outputs};
use async_trait::async_trait;
use rand::{Rng, TryRngCore};
use wbstack_engine::{
    Action, Fingerprint, Observation, Outputs, Secret, SecretRef, Step, StepCtx, StepError,
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
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let live = self
            .kube
            .get("v1", "Secret", Some(&self.spec.namespace), &self.spec.name)
            .await?;
        if let Some(o) = &live {
            self.kube.refuse_foreign(o)?;
        }
        Ok(match live {
            Some(o) if o["data"][&self.spec.key].is_string() => Observation::ready(secret_outputs(
                &self.spec.namespace,
                &self.spec.name,
                &self.spec.key,
            )),
            Some(_) => Observation::Failed {
                message: format!(
                    "Secret {}/{} exists without key {}",
                    self.spec.namespace, self.spec.name, self.spec.key
                ),
            },
            None => Observation::Absent,
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let value = Secret::new(
            SecretRef::new(
                "kubernetes",
                format!("{}/{}", self.spec.namespace, self.spec.name),
            )
            .with_key(&self.spec.key),
            generate_password(self.spec.length),
        );
        let obj = secret_manifest(
            &self.spec.namespace,
            &self.spec.name,
            &self.spec.key,
            &value,
        );
        // Create, never overwrite: a password made by an interrupted run is kept.
        self.kube.create(&obj).await.map(|_| ())
    }
    async fn wait(&self, _ctx: &StepCtx) -> Result<Outputs, StepError> {
        Ok(secret_outputs(
            &self.spec.namespace,
            &self.spec.name,
            &self.spec.key,
        ))
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.kube
            .delete_own("v1", "Secret", Some(&self.spec.namespace), &self.spec.name)
            .await
    }
}
