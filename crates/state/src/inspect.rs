//! What the state bucket is like, checked when wbstack connects: it must belong to the caller's
//! account (a bucket of another account is refused), and it should keep versions, block public
//! access and encrypt with KMS by default (a warning says what is missing). Whatever the bucket's
//! default, every object wbstack writes is encrypted with SSE-KMS: the bucket's default key when
//! it has one, else the AWS managed key.

use crate::client::{call_error, code, StoreError};
use aws_sdk_s3::types::ServerSideEncryption;

/// What connecting learned.
#[derive(Clone, Debug, Default)]
pub struct Inspection {
    /// The bucket's default KMS key, which state objects are written with.
    pub kms_key: Option<String>,
    /// What the bucket lacks, each said once.
    pub warnings: Vec<String>,
}

/// Refuses a bucket another account owns (S3 answers 403 to `ExpectedBucketOwner`).
pub async fn check_owner(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    account: &str,
) -> Result<(), StoreError> {
    match s3
        .head_bucket()
        .bucket(bucket)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if crate::client::status(&e) == Some(403) => Err(StoreError::ForeignBucket {
            bucket: bucket.to_owned(),
            account: account.to_owned(),
        }),
        Err(e) => Err(call_error(bucket, "checking the state bucket's owner", &e)),
    }
}

/// Reads the bucket's encryption, versioning and public-access block.
pub async fn inspect(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Inspection, StoreError> {
    let mut i = Inspection::default();
    match s3.get_bucket_encryption().bucket(bucket).send().await {
        Ok(r) => {
            let d = r
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default());
            match d {
                Some(d) if d.sse_algorithm() == &ServerSideEncryption::AwsKms => {
                    i.kms_key = d.kms_master_key_id().map(str::to_owned);
                }
                _ => i.warnings.push(format!(
                    "state bucket {bucket} does not encrypt with KMS by default; wbstack writes its state with SSE-KMS (the AWS managed key) anyway"
                )),
            }
        }
        Err(e) if code(&e).as_deref() == Some("ServerSideEncryptionConfigurationNotFoundError") => {
            i.warnings.push(format!(
                "state bucket {bucket} has no default encryption; wbstack writes its state with SSE-KMS (the AWS managed key) anyway"
            ));
        }
        Err(e) => {
            return Err(call_error(
                bucket,
                "reading the state bucket's encryption",
                &e,
            ))
        }
    }
    let v = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| call_error(bucket, "reading the state bucket's versioning", &e))?;
    if v.status().map(|s| s.as_str()) != Some("Enabled") {
        i.warnings.push(format!(
            "state bucket {bucket} keeps no versions: a journal overwritten or deleted by mistake cannot be recovered (turn versioning on)"
        ));
    }
    let blocked = match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(r) => r.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        }),
        Err(e) if code(&e).as_deref() == Some("NoSuchPublicAccessBlockConfiguration") => false,
        Err(e) => {
            return Err(call_error(
                bucket,
                "reading the state bucket's public access block",
                &e,
            ))
        }
    };
    if !blocked {
        i.warnings.push(format!(
            "state bucket {bucket} does not block public access (turn on all four public-access blocks)"
        ));
    }
    Ok(i)
}
