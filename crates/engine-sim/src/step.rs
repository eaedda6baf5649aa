//! A synthetic step over a fake cloud, with configurable readiness and deletion delays.

use crate::cloud::{Cloud, Fault, Resource};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};

/// One resource in a fake cloud.
#[derive(Clone)]
pub struct SimStep {
    pub name: String,
    pub cloud: Arc<dyn Cloud>,
    /// How long after creation the resource becomes ready.
    pub ready_ms: u64,
    /// How long after deletion starts the resource is gone.
    pub destroy_ms: u64,
    /// Changes the fingerprint.
    pub input: String,
    pub updatable: bool,
    /// Written on resources this step creates.
    pub tag: String,
}

impl SimStep {
    /// A step for `name` that is ready at once.
    pub fn new(name: &str, cloud: Arc<dyn Cloud>) -> Self {
        SimStep {
            name: name.to_owned(),
            cloud,
            ready_ms: 0,
            destroy_ms: 0,
            input: String::new(),
            updatable: false,
            tag: "sim".into(),
        }
    }

    fn outputs(&self, r: &Resource) -> Outputs {
        let mut o = Outputs::new();
        o.insert("name".into(), r.name.clone().into());
        o.insert("tag".into(), r.tag.clone().into());
        o
    }

    async fn sleep_until_us(&self, at: u64) {
        let now = self.cloud.now_us();
        let d = at.saturating_sub(now).clamp(1, 1_000_000);
        tokio::time::sleep(Duration::from_micros(d)).await;
    }
}

#[async_trait]
impl Step for SimStep {
    fn kind(&self) -> &str {
        "sim.resource"
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(&self.name, &self.input))
    }

    fn supports_update(&self) -> bool {
        self.updatable
    }

    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(match self.cloud.get(&self.name) {
            None => Observation::Absent,
            Some(r) if r.gone_at_us.is_some() => Observation::InProgress {
                detail: Some("deleting".into()),
            },
            Some(r) if self.cloud.now_us() < r.ready_at_us => Observation::InProgress {
                detail: Some("creating".into()),
            },
            Some(r) => Observation::Ready {
                outputs: self.outputs(&r),
                fingerprint: Some(Fingerprint::from_hex(r.fingerprint.clone())),
            },
        })
    }

    async fn apply(&self, _ctx: &StepCtx, action: Action) -> Result<(), StepError> {
        self.cloud.log(&format!("apply-{action}"), &self.name);
        self.cloud.log("apply", &self.name);
        let mut ready_at = self.cloud.now_us() + self.ready_ms * 1000;
        match self.cloud.take_fault(&self.name) {
            Some(Fault::Permanent) => {
                return Err(StepError::permanent(format!(
                    "{} rejected: injected permanent fault",
                    self.name
                )))
            }
            Some(Fault::Transient(_)) => {
                return Err(StepError::transient(format!(
                    "{}: injected throttling",
                    self.name
                )))
            }
            Some(Fault::NeverReady) => ready_at = u64::MAX,
            None => {}
        }
        let r = Resource {
            name: self.name.clone(),
            fingerprint: self.fingerprint().as_str().to_owned(),
            tag: self.tag.clone(),
            ready_at_us: ready_at,
            gone_at_us: None,
        };
        match action {
            Action::Update => self.cloud.put(&r),
            _ => {
                // Idempotent: an existing resource of this name is adopted, not duplicated.
                self.cloud.create(&r);
            }
        }
        Ok(())
    }

    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        loop {
            match self.cloud.get(&self.name) {
                None => return Err(StepError::permanent(format!("{} vanished", self.name))),
                Some(r) if self.cloud.now_us() >= r.ready_at_us && r.gone_at_us.is_none() => {
                    self.cloud.note_ready(&self.name);
                    return Ok(self.outputs(&r));
                }
                Some(r) => {
                    tokio::select! {
                        _ = ctx.cancel().cancelled() => return Err(StepError::transient("cancelled")),
                        _ = self.sleep_until_us(r.ready_at_us) => {}
                    }
                }
            }
        }
    }

    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.cloud.log("destroy", &self.name);
        if let Some(mut r) = self.cloud.get(&self.name) {
            if r.gone_at_us.is_none() {
                r.gone_at_us = Some(self.cloud.now_us() + self.destroy_ms * 1000);
                self.cloud.put(&r);
            }
        }
        Ok(())
    }

    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        while let Some(r) = self.cloud.get(&self.name) {
            let at = r.gone_at_us.unwrap_or(self.cloud.now_us() + 50_000);
            tokio::select! {
                _ = ctx.cancel().cancelled() => return Err(StepError::transient("cancelled")),
                _ = self.sleep_until_us(at) => {}
            }
        }
        Ok(())
    }
}
