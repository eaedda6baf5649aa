//! The artifacts bucket's security settings, observed: every public-access block, SSE-KMS with
//! the plan's key, a policy refusing requests without TLS, CORS for the plan's host only, and
//! versioning as planned. A hand edit of any of them is drift, shown field by field and
//! restored by `up`.

use crate::clients::{classify, Aws};
use crate::own::has_code;
use aws_sdk_s3::types::{CorsRule, ServerSideEncryption};
use serde_json::{json, Value};
use wbstack_engine::{Change, StepError};

/// The settings, each as one comparable line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Security {
    pub public_access_block: String,
    pub encryption: String,
    pub policy: String,
    pub cors: String,
    pub versioning: String,
}

/// The CORS methods the W&B UI uses on the bucket (uploads and downloads from the browser).
pub const CORS_METHODS: [&str; 3] = ["GET", "HEAD", "PUT"];

/// A policy that refuses every request not made over TLS.
pub fn tls_only_policy(bucket: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
}

fn cors_line(methods: &[&str], origins: &[&str]) -> String {
    let mut m: Vec<&str> = methods.to_vec();
    m.sort_unstable();
    let mut o: Vec<&str> = origins.to_vec();
    o.sort_unstable();
    format!("methods {} from {}", m.join(","), o.join(","))
}

/// What the plan wants.
pub fn desired(bucket: &str, kms: &str, origins: &[String], versioning: bool) -> Security {
    let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
    Security {
        public_access_block: "all four blocks on".into(),
        encryption: format!("aws:kms {kms}, bucket key"),
        policy: tls_only_policy(bucket).to_string(),
        cors: cors_line(&CORS_METHODS, &origins),
        versioning: if versioning { "Enabled" } else { "Suspended" }.into(),
    }
}

/// What the bucket has.
pub async fn observe(aws: &Aws, bucket: &str) -> Result<Security, StepError> {
    Ok(Security {
        public_access_block: public_access_block(aws, bucket).await?,
        encryption: encryption(aws, bucket).await?,
        policy: policy(aws, bucket).await?,
        cors: cors(aws, bucket).await?,
        versioning: versioning(aws, bucket).await?,
    })
}

async fn public_access_block(aws: &Aws, b: &str) -> Result<String, StepError> {
    match aws.s3.get_public_access_block().bucket(b).send().await {
        Ok(r) => {
            let c = r.public_access_block_configuration();
            let on = c.is_some_and(|c| {
                c.block_public_acls() == Some(true)
                    && c.ignore_public_acls() == Some(true)
                    && c.block_public_policy() == Some(true)
                    && c.restrict_public_buckets() == Some(true)
            });
            Ok(if on {
                "all four blocks on".into()
            } else {
                format!("{c:?}")
            })
        }
        Err(e) if has_code(&e, &["NoSuchPublicAccessBlockConfiguration"]) => Ok("(none)".into()),
        Err(e) => Err(classify(e, "GetPublicAccessBlock", b)),
    }
}

async fn encryption(aws: &Aws, b: &str) -> Result<String, StepError> {
    match aws.s3.get_bucket_encryption().bucket(b).send().await {
        Ok(r) => {
            let rule = r
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first());
            let by_default = rule.and_then(|r| r.apply_server_side_encryption_by_default());
            Ok(match by_default {
                Some(d) if d.sse_algorithm() == &ServerSideEncryption::AwsKms => format!(
                    "aws:kms {}{}",
                    d.kms_master_key_id().unwrap_or("(the AWS managed key)"),
                    if rule.and_then(|r| r.bucket_key_enabled()) == Some(true) {
                        ", bucket key"
                    } else {
                        ""
                    }
                ),
                Some(d) => d.sse_algorithm().as_str().to_owned(),
                None => "(none)".into(),
            })
        }
        Err(e) if has_code(&e, &["ServerSideEncryptionConfigurationNotFoundError"]) => {
            Ok("(none)".into())
        }
        Err(e) => Err(classify(e, "GetBucketEncryption", b)),
    }
}

async fn policy(aws: &Aws, b: &str) -> Result<String, StepError> {
    match aws.s3.get_bucket_policy().bucket(b).send().await {
        // Compared as JSON, whatever spacing the service keeps.
        Ok(r) => Ok(r
            .policy()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .map_or_else(|| "(unreadable)".into(), |v| v.to_string())),
        Err(e) if has_code(&e, &["NoSuchBucketPolicy"]) => Ok("(none)".into()),
        Err(e) => Err(classify(e, "GetBucketPolicy", b)),
    }
}

async fn cors(aws: &Aws, b: &str) -> Result<String, StepError> {
    match aws.s3.get_bucket_cors().bucket(b).send().await {
        Ok(r) => {
            let rules: Vec<&CorsRule> = r.cors_rules().iter().collect();
            Ok(match rules.as_slice() {
                [one] => {
                    let m: Vec<&str> = one.allowed_methods().iter().map(String::as_str).collect();
                    let o: Vec<&str> = one.allowed_origins().iter().map(String::as_str).collect();
                    cors_line(&m, &o)
                }
                [] => "(none)".into(),
                more => format!("{} rules", more.len()),
            })
        }
        Err(e) if has_code(&e, &["NoSuchCORSConfiguration"]) => Ok("(none)".into()),
        Err(e) => Err(classify(e, "GetBucketCors", b)),
    }
}

async fn versioning(aws: &Aws, b: &str) -> Result<String, StepError> {
    let r = aws
        .s3
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .map_err(|e| classify(e, "GetBucketVersioning", b))?;
    Ok(r.status().map_or("Suspended", |s| s.as_str()).to_owned())
}

/// Each setting whose live value is not the plan's.
pub fn changes(live: &Security, want: &Security) -> Vec<Change> {
    let pairs = [
        (
            "public_access_block",
            &live.public_access_block,
            &want.public_access_block,
        ),
        ("encryption", &live.encryption, &want.encryption),
        ("policy", &live.policy, &want.policy),
        ("cors", &live.cors, &want.cors),
        ("versioning", &live.versioning, &want.versioning),
    ];
    pairs
        .into_iter()
        .filter(|(_, l, w)| l != w)
        .map(|(f, l, w)| {
            // A policy is long: the field says which, the values say whether it is ours.
            if f == "policy" {
                let shown = |p: &str| {
                    if p == want.policy {
                        "TLS only".to_owned()
                    } else if p == "(none)" {
                        p.to_owned()
                    } else {
                        "another policy".to_owned()
                    }
                };
                Change::in_place(f, shown(l), shown(w))
            } else {
                Change::in_place(f, l, w)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_opened_by_hand_differs_field_by_field() {
        let want = desired("b", "arn:k", &["https://w.example.com".into()], true);
        let mut live = want.clone();
        assert!(changes(&live, &want).is_empty());
        live.public_access_block = "(none)".into();
        live.policy = r#"{"Statement":[]}"#.into();
        live.cors = cors_line(&CORS_METHODS, &["*"]);
        let c = changes(&live, &want);
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["public_access_block", "policy", "cors"]);
        assert_eq!(c[1].from, "another policy");
        assert_eq!(c[1].to, "TLS only");
    }
}
