//! `spec.wandb.waitForUrl`: the W&B host answers over HTTP(S). Nothing is made or removed; the
//! step is ready once a GET of the host gets any answer below 500 (a login page, a redirect,
//! a 401), and waits (within the engine's timeout) while it is refused, times out or answers
//! 5xx, as a load balancer does before its targets are healthy.

use crate::job_scope::JobScope;
use crate::kind::{K8sStepKind, Unwired, Wiring};
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{Action, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, UrlReady};

/// How long one request may take.
const REQUEST: Duration = Duration::from_secs(10);

/// Waits until the host answers.
pub struct UrlReadyStep {
    spec: UrlReady,
}

impl UrlReadyStep {
    pub fn new(spec: UrlReady) -> Self {
        UrlReadyStep { spec }
    }

    fn outputs(&self, status: u16) -> Outputs {
        [("url", json!(self.spec.url)), ("status", json!(status))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// The status the host answers with, or why it did not answer.
    async fn probe(&self) -> Result<u16, String> {
        let provider = rustls_provider();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("no TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let uri: hyper::Uri = self
            .spec
            .url
            .parse()
            .map_err(|e| format!("{} is not a URL: {e}", self.spec.url))?;
        match tokio::time::timeout(REQUEST, client.get(uri)).await {
            Err(_) => Err(format!("no answer within {} s", REQUEST.as_secs())),
            Ok(Err(e)) => Err(chain(&e)),
            Ok(Ok(res)) => Ok(res.status().as_u16()),
        }
    }
}

/// The process's TLS provider (the binary installs aws-lc-rs), else aws-lc-rs.
pub fn rustls_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// An error and its causes, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[async_trait]
impl Step for UrlReadyStep {
    fn kind(&self) -> &str {
        UrlReady::LABEL
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("url", &self.spec.url))
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        if ctx.previous().is_none() {
            // Never seen answering by this environment: `apply` (nothing) and `wait` check it,
            // so the first run reports it made, not found.
            return Ok(Observation::Absent);
        }
        Ok(match self.probe().await {
            Ok(status) if status < 500 => Observation::ready(self.outputs(status)),
            Ok(status) => {
                ctx.progress(format!("{} answers {status}", self.spec.url));
                Observation::Absent
            }
            Err(why) => {
                ctx.progress(format!("{} does not answer: {why}", self.spec.url));
                Observation::Absent
            }
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        // Nothing to make: the load balancer and DNS are someone else's; `wait` watches.
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let mut delay = Duration::from_millis(500);
        loop {
            match self.probe().await {
                Ok(status) if status < 500 => return Ok(self.outputs(status)),
                Ok(status) => ctx.progress(format!("{} answers {status}", self.spec.url)),
                Err(why) => ctx.progress(format!("{} does not answer: {why}", self.spec.url)),
            }
            tokio::select! {
                _ = ctx.cancel().cancelled() => return Err(StepError::transient("wait cancelled")),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        Ok(())
    }
    async fn wait_destroyed(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        // Nothing was made, so nothing is to go (the host answers as long as W&B runs).
        Ok(())
    }
}

impl K8sStepKind for UrlReady {
    fn step(&self, _: &Wiring) -> Result<Arc<dyn Step>, Unwired> {
        Ok(Arc::new(UrlReadyStep::new(self.clone())))
    }
    fn documents(&self) -> Vec<serde_json::Value> {
        vec![]
    }
    fn scope(&self, _: &mut JobScope, _verify: bool) {}
}
