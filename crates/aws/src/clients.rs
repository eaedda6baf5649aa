//! AWS clients from the standard configuration chain, with region and endpoint overrides, and
//! the classification of SDK errors into transient and permanent.

use crate::calllog::CallLog;
use aws_config::BehaviorVersion;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::error::SdkError;
use wbstack_engine::StepError;

/// Where and as whom to call AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// The region; otherwise the standard chain's.
    pub region: Option<String>,
    /// An endpoint override (LocalStack, moto); `WBSTACK_AWS_ENDPOINT` also sets it.
    pub endpoint: Option<String>,
    /// Static credentials (tests); otherwise the standard chain (env, profiles, SSO, IRSA).
    pub static_credentials: Option<(String, String)>,
}

/// The clients wbstack uses, and the environment it tags resources with.
#[derive(Clone, Debug)]
pub struct Aws {
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub kms: aws_sdk_kms::Client,
    pub iam: aws_sdk_iam::Client,
    pub rds: aws_sdk_rds::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sts: aws_sdk_sts::Client,
    pub region: String,
    /// The environment name, written on every resource as `wbstack:environment`.
    pub environment: String,
    /// Steps the plan lets adopt a resource that has their name but not this environment's
    /// tags (`spec.aws.adopt`): such a resource is used as it is, and `down` leaves it.
    pub adopt: std::collections::BTreeSet<String>,
    /// The plan's own tags (`spec.aws.tags`), written on every resource besides wbstack's.
    pub extra_tags: std::collections::BTreeMap<String, String>,
    /// Secrets `up --rotate` asks a new value of (their users are changed over one by one).
    pub rotate: std::collections::BTreeSet<String>,
    /// `down --skip-final-snapshot`: no final snapshot, no automated backups kept.
    pub skip_final_snapshot: bool,
}

/// Why AWS cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: set spec.aws.region, AWS_REGION or a profile's region")]
    NoRegion,
}

impl Aws {
    /// Loads configuration and builds the clients.
    pub async fn connect(settings: &AwsSettings, environment: &str) -> Result<Aws, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &settings.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let endpoint = settings.endpoint.clone().or_else(|| {
            std::env::var("WBSTACK_AWS_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
        });
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e.clone());
        }
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "wbstack-static",
            ));
        }
        let conf = loader.load().await;
        let region = conf
            .region()
            .map(|r| r.to_string())
            .ok_or(AwsError::NoRegion)?;
        // Custom endpoints (moto, LocalStack) serve buckets by path, not by host name.
        let s3conf = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(endpoint.is_some())
            .interceptor(CallLog)
            .build();
        Ok(Aws {
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            rds: aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            elasticache: aws_sdk_elasticache::Client::from_conf(
                aws_sdk_elasticache::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(s3conf),
            secrets: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&conf)
                    .interceptor(CallLog)
                    .build(),
            ),
            region,
            environment: environment.to_owned(),
            adopt: Default::default(),
            extra_tags: Default::default(),
            rotate: Default::default(),
            skip_final_snapshot: false,
        })
    }

    /// The tags every resource of a step carries: wbstack's, then the plan's.
    pub fn tags(&self, step: &str) -> Vec<(String, String)> {
        let mut t = vec![
            ("wbstack:environment".into(), self.environment.clone()),
            ("wbstack:step".into(), step.into()),
            ("wbstack:managed-by".into(), "wbstack".into()),
        ];
        t.extend(
            self.extra_tags
                .iter()
                .filter(|(k, _)| !k.starts_with("wbstack:"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        t
    }

    /// Writes these tags on every resource too.
    pub fn tagging(mut self, tags: std::collections::BTreeMap<String, String>) -> Self {
        self.extra_tags = tags;
        self
    }

    /// Lets these steps adopt resources that are not tagged as this environment's.
    pub fn adopting<I: IntoIterator<Item = S>, S: Into<String>>(mut self, steps: I) -> Self {
        self.adopt = steps.into_iter().map(Into::into).collect();
        self
    }

    /// Deletes databases without their final snapshot and automated backups on this run
    /// (`down --skip-final-snapshot`).
    pub fn skipping_final_snapshot(mut self, skip: bool) -> Self {
        self.skip_final_snapshot = skip;
        self
    }

    /// Asks these secret steps for a new value on this run (`up --rotate`).
    pub fn rotating<I: IntoIterator<Item = S>, S: Into<String>>(mut self, steps: I) -> Self {
        self.rotate = steps.into_iter().map(Into::into).collect();
        self
    }

    /// Whether this run rotates `step`'s secret.
    pub fn rotates(&self, step: &str) -> bool {
        self.rotate.contains(step)
    }

    /// Whether the plan lets `step` adopt a resource that is not tagged as ours.
    pub fn adopts(&self, step: &str) -> bool {
        self.adopt.contains(step)
    }

    /// Whether `step` may use a resource with these tags: it is ours, or the plan adopts it.
    pub fn accepts(&self, step: &str, tags: &[(String, String)]) -> bool {
        self.owns(step, tags) || self.adopts(step)
    }

    /// Whether a resource's tags say it belongs to this environment's step.
    pub fn owns(&self, step: &str, tags: &[(String, String)]) -> bool {
        let has = |k: &str, v: &str| tags.iter().any(|(tk, tv)| tk == k && tv == v);
        has("wbstack:environment", &self.environment) && has("wbstack:step", step)
    }
}

const THROTTLING: [&str; 8] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
    "PriorRequestNotComplete",
];

/// Throttling, 5xx and connection problems are transient; access denied, validation and every
/// other service error are permanent. The message names the operation and the resource.
pub fn classify<E, R>(e: SdkError<E, R>, op: &str, resource: &str) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let ctx = format!("{op} {resource}");
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("Unknown").to_owned();
            let msg = err.message().unwrap_or("").to_owned();
            let status = format!("{:?}", se.raw());
            let server = status.contains("StatusCode(5") || status.contains("status: 5");
            let text = format!("{ctx} failed: {code}: {msg}");
            if THROTTLING.contains(&code.as_str())
                || server
                || code == "InternalError"
                || code == "ServiceUnavailable"
                || code == "InternalFailure"
            {
                StepError::transient(text)
            } else {
                StepError::permanent(text)
            }
        }
        // No credentials to sign with: nothing a retry changes.
        SdkError::DispatchFailure(d) if d.is_other() && lacks_credentials(&describe(&e)) => {
            StepError::permanent(format!(
                "{ctx} failed: no AWS credentials ({}); set them as the standard chain reads them (environment, profile, SSO, IRSA, instance role)",
                describe(&e)
            ))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StepError::transient(format!("{ctx} failed: {}", describe(&e)))
        }
        _ => StepError::permanent(format!("{ctx} failed: {}", describe(&e))),
    }
}

/// Whether a dispatch failure says there was nothing to sign the request with.
fn lacks_credentials(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("no matching auth scheme")
        || t.contains("failed to select an auth scheme")
        || t.contains("credentials")
}

/// The error and its causes on one line.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The service error code, if the call reached the service.
pub fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<String> {
    match e {
        SdkError::ServiceError(se) => se.err().code().map(str::to_owned),
        _ => None,
    }
}

/// A field AWS always returns with an answer (an ARN, an account), or a permanent error naming
/// the call, the field and the resource: never an empty string in its place.
pub(crate) fn answered<'a>(
    v: Option<&'a str>,
    call: &str,
    field: &str,
    id: &str,
) -> Result<&'a str, wbstack_engine::StepError> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| {
        wbstack_engine::StepError::permanent(format!("{call} answered without the {field} of {id}"))
    })
}
