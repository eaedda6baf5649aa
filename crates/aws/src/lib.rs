//! wbstack's AWS steps (aws-sdk-rust): the KMS key, the artifacts bucket and generated
//! passwords in Secrets Manager. Every resource has a deterministic name from the environment,
//! carries the environment's tags, and is adopted when it is ours and refused when it is not.

mod clients;
mod kms;
mod s3;
mod secrets;

pub use clients::{classify, code_of, describe, Aws, AwsError, AwsSettings};
pub use kms::KmsKeyStep;
pub use s3::S3BucketStep;
pub use secrets::{generate, read_secret, AwsSecretStep, STORE};
