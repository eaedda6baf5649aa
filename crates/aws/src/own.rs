//! What every AWS step shares: which resources are this environment's (tags, adoption), the
//! tags it writes, and which error codes a call tolerates (not found, already exists).

use crate::clients::{classify, Aws};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use std::future::Future;
use wbstack_engine::{Observation, StepError};

/// Whether an SDK error carries one of these service error codes.
pub(crate) fn has_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>, codes: &[&str]) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code().is_some_and(|c| codes.contains(&c)))
}

/// An SDK result whose listed error codes mean "nothing to do" rather than failure.
pub(crate) trait Tolerate<T> {
    /// `Ok(Some(v))` on success, `Ok(None)` on one of `codes`, otherwise the classified error
    /// naming the operation and the resource.
    fn tolerate(self, codes: &[&str], op: &str, resource: &str) -> Result<Option<T>, StepError>;
}

impl<T, E, R> Tolerate<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn tolerate(self, codes: &[&str], op: &str, resource: &str) -> Result<Option<T>, StepError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if has_code(&e, codes) => Ok(None),
            Err(e) => Err(classify(e, op, resource)),
        }
    }
}

/// The tags a step writes on its resources, in the SDK's own tag type.
pub(crate) fn tags<T>(aws: &Aws, step: &str, make: impl Fn(String, String) -> T) -> Vec<T> {
    aws.tags(step)
        .into_iter()
        .map(|(k, v)| make(k, v))
        .collect()
}

/// Whether this step may use a resource: the plan adopts it, or its tags (fetched only then)
/// say it is this environment's step's.
pub(crate) async fn accepted<F, Fut>(aws: &Aws, step: &str, fetch: F) -> Result<bool, StepError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<(String, String)>, StepError>>,
{
    if aws.adopts(step) {
        return Ok(true);
    }
    Ok(aws.owns(step, &fetch().await?))
}

/// What a step reports about a resource with its name that belongs to someone else.
pub(crate) fn not_owned(what: &str, name: &str, aws: &Aws) -> Observation {
    Observation::Failed {
        message: format!(
            "{what} {name} exists and is not owned by environment {}",
            aws.environment
        ),
    }
}

/// Outputs from pairs.
pub(crate) fn outputs(pairs: &[(&str, serde_json::Value)]) -> wbstack_engine::Outputs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
