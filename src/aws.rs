//! The AWS side of the wiring. Built with the `aws` feature (the default); without it, a plan
//! with AWS steps is refused before anything is touched, and the sandbox build skips the SDK.

use crate::exit::CliError;
use std::sync::Arc;
use wbstack_engine::Step;
use wbstack_plan::{AwsKind, Plan, StepPlan};

#[cfg(feature = "aws")]
pub use wbstack_aws::Aws;

/// Stands in for the AWS clients in a build without AWS support.
#[cfg(not(feature = "aws"))]
#[derive(Clone, Debug)]
pub enum Aws {}

/// A step that needs AWS in a run without it.
pub fn not_configured(sp: &StepPlan) -> CliError {
    CliError::refused(format!("step {} needs AWS, which is not configured", sp.id))
}

/// AWS clients, when the plan has AWS steps.
#[cfg(feature = "aws")]
pub async fn connect(
    plan: &Plan,
    steps: &[StepPlan],
    rotate: &[String],
    skip_final_snapshot: bool,
    sandbox: bool,
) -> Result<Option<Aws>, CliError> {
    if !steps.iter().any(|s| s.kind.is_aws()) {
        return Ok(None);
    }
    let a = plan.spec.aws.clone().unwrap_or_default();
    let settings = wbstack_aws::AwsSettings {
        region: a.region,
        endpoint: a.endpoint,
        static_credentials: crate::sandbox::credentials(sandbox),
    };
    Aws::connect(&settings, &plan.metadata.name)
        .await
        .map(|aws| {
            let aws = aws.adopting(a.adopt).tagging(a.tags);
            Some(
                aws.rotating(rotate.iter().cloned())
                    .skipping_final_snapshot(skip_final_snapshot),
            )
        })
        .map_err(|e| CliError::environment("").because(e))
}

/// `up`'s check of who it calls AWS as, before its first change: an identity STS answers for,
/// in the region the plan names. Returns the account and the caller's ARN.
#[cfg(feature = "aws")]
pub async fn identity(aws: &Aws) -> Result<String, String> {
    let who = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| wbstack_aws::describe(&e))?;
    Ok(format!(
        "account {} as {} in {}",
        who.account().unwrap_or("?"),
        who.arn().unwrap_or("?"),
        aws.region
    ))
}

/// The IAM policy wbstack's own credentials need for a plan.
#[cfg(feature = "aws")]
pub fn iam_policy(
    steps: &[StepPlan],
    environment: &str,
    state: &str,
) -> Result<serde_json::Value, CliError> {
    Ok(wbstack_aws::wbstack_policy(
        steps,
        environment,
        state.starts_with("s3://").then_some(state),
    ))
}

/// Without AWS support, there is no policy to publish.
#[cfg(not(feature = "aws"))]
pub fn iam_policy(
    _steps: &[StepPlan],
    _environment: &str,
    _state: &str,
) -> Result<serde_json::Value, CliError> {
    Err(CliError::invalid(
        "this build has no AWS support (feature `aws`): it calls no AWS API",
    ))
}

/// Without AWS support there are no AWS calls to check.
#[cfg(not(feature = "aws"))]
pub async fn identity(aws: &Aws) -> Result<String, String> {
    match *aws {}
}

/// Without AWS support, a plan with AWS steps is refused.
#[cfg(not(feature = "aws"))]
pub async fn connect(
    _plan: &Plan,
    steps: &[StepPlan],
    _rotate: &[String],
    _skip_final_snapshot: bool,
    _sandbox: bool,
) -> Result<Option<Aws>, CliError> {
    let aws: Vec<&str> = steps
        .iter()
        .filter(|s| s.kind.is_aws())
        .map(|s| s.id.as_str())
        .collect();
    if aws.is_empty() {
        return Ok(None);
    }
    Err(CliError::refused(format!(
        "this wbstack was built without AWS support (the `aws` feature), and the plan has AWS steps: {}; build it with default features",
        aws.join(", ")
    )))
}

/// Reads secrets that AWS steps keep in Secrets Manager, for the Kubernetes Secrets mirroring
/// them.
#[cfg(feature = "aws")]
pub fn resolver(aws: &Aws) -> Arc<dyn wbstack_k8s::SecretResolver> {
    struct FromSecretsManager(Aws);
    #[async_trait::async_trait]
    impl wbstack_k8s::SecretResolver for FromSecretsManager {
        async fn resolve(
            &self,
            r: &wbstack_engine::SecretRef,
        ) -> Result<wbstack_engine::Secret, wbstack_engine::StepError> {
            wbstack_aws::read_secret(&self.0, r).await
        }
    }
    Arc::new(FromSecretsManager(aws.clone()))
}

#[cfg(not(feature = "aws"))]
pub fn resolver(aws: &Aws) -> Arc<dyn wbstack_k8s::SecretResolver> {
    match *aws {}
}

/// The implementation of an AWS step, from the AWS crate's one dispatch over its kinds.
#[cfg(feature = "aws")]
pub fn step(sp: &StepPlan, k: AwsKind<'_>, aws: Option<&Aws>) -> Result<Arc<dyn Step>, CliError> {
    let aws = aws.cloned().ok_or_else(|| not_configured(sp))?;
    Ok(wbstack_aws::kind(k).step(aws, &sp.id))
}

#[cfg(not(feature = "aws"))]
pub fn step(sp: &StepPlan, _: AwsKind<'_>, aws: Option<&Aws>) -> Result<Arc<dyn Step>, CliError> {
    match aws {
        Some(never) => match *never {},
        None => Err(not_configured(sp)),
    }
}
