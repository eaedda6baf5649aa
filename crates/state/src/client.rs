//! The S3 client of the state store, and what its errors mean.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Why the state store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state bucket `{bucket}` does not exist; wbstack never creates or deletes the bucket that holds its state: create it first")]
    NoBucket { bucket: String },
    #[error("state bucket `{bucket}` is not owned by this account ({account}): wbstack keeps no state in another account's bucket")]
    ForeignBucket { bucket: String, account: String },
    #[error("{at}: {what} failed: {message}")]
    Call {
        at: String,
        what: String,
        message: String,
    },
    #[error("{at}: journal segment {seq} was written by another run: this run no longer holds the environment")]
    Fenced { at: String, seq: u64 },
    #[error("{at}: journal segments are missing after {after} (found {found}): the remote journal is damaged")]
    Gap { at: String, after: u64, found: u64 },
    #[error(transparent)]
    Journal(#[from] wbstack_engine::JournalError),
}

impl StoreError {
    /// Whether S3 refused for want of permission.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, StoreError::Call { message, .. } if message.contains("AccessDenied") || message.contains("403"))
    }
}

/// A client from the standard configuration chain; `WBSTACK_AWS_ENDPOINT` points it elsewhere
/// (moto, LocalStack), which also serves buckets by path. Without a region from the chain the
/// store is taken to be in us-east-1.
pub async fn client() -> aws_sdk_s3::Client {
    clients().await.0
}

/// The S3 client, and an STS client of the same configuration (who is calling).
pub async fn clients() -> (aws_sdk_s3::Client, aws_sdk_sts::Client) {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    let endpoint = std::env::var("WBSTACK_AWS_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    if let Some(e) = &endpoint {
        loader = loader.endpoint_url(e.clone());
    }
    let conf = loader.load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&conf).force_path_style(endpoint.is_some());
    let mut sts = aws_sdk_sts::config::Builder::from(&conf);
    if conf.region().is_none() {
        b = b.region(aws_sdk_s3::config::Region::new("us-east-1"));
        sts = sts.region(aws_sdk_sts::config::Region::new("us-east-1"));
    }
    (
        aws_sdk_s3::Client::from_conf(b.build()),
        aws_sdk_sts::Client::from_conf(sts.build()),
    )
}

/// The error code S3 answered with, if it answered.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<String> {
    e.code().map(str::to_owned)
}

/// The HTTP status S3 answered with, if it answered.
pub fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// A conditional write lost: the key exists (`If-None-Match: *`) or changed (`If-Match`).
pub fn is_precondition_failed<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    // 409 ConditionalRequestConflict: a concurrent conditional write to the same key.
    code(e).is_some_and(|c| c == "PreconditionFailed" || c == "ConditionalRequestConflict")
        || matches!(status(e), Some(412) | Some(409))
}

/// The key (or bucket) is not there.
pub fn is_not_found<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    code(e).is_some_and(|c| c == "NoSuchKey" || c == "NotFound" || c == "NoSuchBucket")
        || status(e) == Some(404)
}

/// A [`StoreError::Call`] for a failed call.
pub fn call_error<E>(
    at: &str,
    what: &str,
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let message = match (code(e), status(e)) {
        (Some(c), _) => format!("{c}: {}", e.message().unwrap_or("")),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => DisplayErrorContext(e).to_string(),
    };
    StoreError::Call {
        at: at.to_owned(),
        what: what.to_owned(),
        message: message.trim_end_matches(": ").to_owned(),
    }
}
