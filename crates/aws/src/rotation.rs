//! A secret's new value, changed over in stages that Secrets Manager itself records, so a run
//! cut anywhere is finished by the next one: the new value is written as the `AWSPENDING`
//! version; its users take it one by one; once they all have it, it is promoted to
//! `AWSCURRENT`. The versions are named by id in outputs, never by value.

use crate::clients::{classify, Aws};
use crate::secrets::{generate, STORE};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wbstack_engine::{Secret, SecretRef, StepCtx, StepError};

pub const PENDING: &str = "AWSPENDING";
pub const CURRENT: &str = "AWSCURRENT";

/// The output of a secret step naming its pending version.
pub const PENDING_OUTPUT: &str = "pending";
/// The output of a secret step naming its current version.
pub const CURRENT_OUTPUT: &str = "current";

/// A new value on its way in: its version and when it was written (seconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub version: String,
    pub created: i64,
}

/// The current version's id and the pending one's, from the secret's stages (a pending stage on
/// the current version itself is none).
pub fn stages(d: &DescribeSecretOutput) -> (Option<String>, Option<String>) {
    let mut current = None;
    let mut pending = None;
    for (version, labels) in d.version_ids_to_stages().into_iter().flatten() {
        if labels.iter().any(|l| l == CURRENT) {
            current = Some(version.clone());
        } else if labels.iter().any(|l| l == PENDING) {
            pending = Some(version.clone());
        }
    }
    (current, pending)
}

/// When `version` of `secret` was written. Read from GetSecretValue of that version, which
/// every implementation dates by the write (moto 5.2.5's ListSecretVersionIds dates every
/// version by the time of the listing); the value itself is dropped unread.
pub async fn created(aws: &Aws, secret: &str, version: &str) -> Result<i64, StepError> {
    let v = aws
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .version_id(version)
        .send()
        .await
        .map_err(|e| classify(e, "GetSecretValue", secret))?;
    Ok(v.created_date().map(|d| d.secs()).unwrap_or(0))
}

/// Writes a new value as the pending version (the current one stays in use).
pub async fn put_pending(
    aws: &Aws,
    secret: &str,
    alphabet: &str,
    length: usize,
) -> Result<(), StepError> {
    let value = Secret::new(SecretRef::new(STORE, secret), generate(alphabet, length));
    aws.secrets
        .put_secret_value()
        .secret_id(secret)
        .secret_string(value.expose())
        .version_stages(PENDING)
        .send()
        .await
        .map_err(|e| classify(e, "PutSecretValue", secret))?;
    Ok(())
}

/// The pending version a secret step reported, if any.
pub fn pending_of(ctx: &StepCtx, step: &str) -> Option<Pending> {
    ctx.dep_output(step, PENDING_OUTPUT)
        .filter(|v| !v.is_null())
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The pending version as an output value.
pub fn pending_output(p: Option<&Pending>) -> Value {
    p.map(|p| serde_json::to_value(p).expect("a secret reference is two strings"))
        .unwrap_or(Value::Null)
}

/// Makes the pending version current: the new value is the one users are given from now on,
/// and the old one is kept as `AWSPREVIOUS`.
pub async fn promote(aws: &Aws, secret: &str, pending: &str) -> Result<(), StepError> {
    let d = aws
        .secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| classify(e, "DescribeSecret", secret))?;
    let (current, _) = stages(&d);
    let labelled = d
        .version_ids_to_stages()
        .and_then(|m| m.get(pending))
        .is_some_and(|l| l.iter().any(|l| l == PENDING));
    if current.as_deref() != Some(pending) {
        aws.secrets
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage(CURRENT)
            .move_to_version_id(pending)
            .set_remove_from_version_id(current)
            .send()
            .await
            .map_err(|e| classify(e, "UpdateSecretVersionStage", secret))?;
    }
    if labelled {
        aws.secrets
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage(PENDING)
            .remove_from_version_id(pending)
            .send()
            .await
            .map_err(|e| classify(e, "UpdateSecretVersionStage", secret))?;
    }
    Ok(())
}
