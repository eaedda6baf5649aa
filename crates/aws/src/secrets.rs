//! Generated passwords kept in Secrets Manager: made from the operating system's CSPRNG,
//! read back from there on resume, never written anywhere else by wbstack.

use crate::clients::{classify, code_of, Aws};
use async_trait::async_trait;
use aws_sdk_secretsmanager::types::Tag;
use rand::{Rng, TryRngCore};
use serde_json::json;
use wbstack_engine::{
    Action, Fingerprint, Observation, Outputs, Secret, SecretRef, Step, StepCtx, StepError,
};

/// The store name in secret references.
pub const STORE: &str = "aws-secretsmanager";

/// A password in Secrets Manager.
pub struct AwsSecretStep {
    pub aws: Aws,
    pub step: String,
    pub name: String,
    /// 0 deletes at once; otherwise 7-30 days.
    pub recovery_days: u32,
    pub alphabet: String,
    pub length: usize,
}

/// A password drawn from `alphabet` with the operating system's generator.
pub fn generate(alphabet: &str, length: usize) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut rng = rand::rngs::OsRng.unwrap_err();
    (0..length)
        .map(|_| chars[rng.random_range(0..chars.len())])
        .collect()
}

/// Reads a secret's value by reference.
pub async fn read_secret(aws: &Aws, r: &SecretRef) -> Result<Secret, StepError> {
    let out = aws
        .secrets
        .get_secret_value()
        .secret_id(&r.id)
        .send()
        .await
        .map_err(|e| classify(e, "GetSecretValue", &r.id))?;
    let v = out
        .secret_string()
        .ok_or_else(|| StepError::permanent(format!("secret {} holds no string", r.id)))?;
    Ok(Secret::new(r.clone(), v))
}

impl AwsSecretStep {
    fn outputs(&self, arn: &str) -> Outputs {
        let r = SecretRef::new(STORE, arn);
        [
            ("arn", json!(arn)),
            ("name", json!(self.name)),
            ("secret", serde_json::to_value(r).unwrap_or_default()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn tags(&self) -> Vec<Tag> {
        self.aws
            .tags(&self.step)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }
}

#[async_trait]
impl Step for AwsSecretStep {
    fn kind(&self) -> &str {
        "aws.secretsmanager.secret"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("secret", &self.name, self.length, &self.alphabet))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let d = match self
            .aws
            .secrets
            .describe_secret()
            .secret_id(&self.name)
            .send()
            .await
        {
            Ok(d) => d,
            Err(e) if code_of(&e).as_deref() == Some("ResourceNotFoundException") => {
                return Ok(Observation::Absent)
            }
            Err(e) => return Err(classify(e, "DescribeSecret", &self.name)),
        };
        if d.deleted_date().is_some() {
            // Scheduled for deletion: gone as far as this environment is concerned.
            return Ok(Observation::Absent);
        }
        let tags: Vec<(String, String)> = d
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect();
        if !self.aws.accepts(&self.step, &tags) {
            return Ok(Observation::Failed {
                message: format!(
                    "secret {} exists and is not owned by environment {}",
                    self.name, self.aws.environment
                ),
            });
        }
        Ok(Observation::ready(
            self.outputs(d.arn().unwrap_or(&self.name)),
        ))
    }
    async fn apply(&self, _ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let value = Secret::new(
            SecretRef::new(STORE, &self.name),
            generate(&self.alphabet, self.length),
        );
        let created = self
            .aws
            .secrets
            .create_secret()
            .name(&self.name)
            .description(format!("wbstack {} ({})", self.aws.environment, self.step))
            .secret_string(value.expose())
            .set_tags(Some(self.tags()))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Made by an interrupted run: keep its value.
            Err(e) if code_of(&e).as_deref() == Some("ResourceExistsException") => Ok(()),
            // Scheduled for deletion by an earlier teardown: restore it with a fresh value.
            Err(e) if code_of(&e).as_deref() == Some("InvalidRequestException") => {
                self.aws
                    .secrets
                    .restore_secret()
                    .secret_id(&self.name)
                    .send()
                    .await
                    .map_err(|e| classify(e, "RestoreSecret", &self.name))?;
                self.aws
                    .secrets
                    .put_secret_value()
                    .secret_id(&self.name)
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map_err(|e| classify(e, "PutSecretValue", &self.name))?;
                Ok(())
            }
            Err(e) => Err(classify(e, "CreateSecret", &self.name)),
        }
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let mut req = self.aws.secrets.delete_secret().secret_id(&self.name);
        req = if self.recovery_days == 0 {
            req.force_delete_without_recovery(true)
        } else {
            req.recovery_window_in_days(self.recovery_days.clamp(7, 30) as i64)
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(classify(e, "DeleteSecret", &self.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_rds_and_elasticache_rules() {
        let alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        // RDS master passwords: 8-41 printable characters, none of / @ " or space.
        let pw = generate(alnum, 32);
        assert!((8..=41).contains(&pw.len()));
        assert!(!pw.contains(['/', '@', '"', ' ']));
        // ElastiCache AUTH tokens: 16-128 printable characters.
        let token = generate(alnum, 64);
        assert!((16..=128).contains(&token.len()));
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
        // Not the same twice.
        assert_ne!(generate(alnum, 32), generate(alnum, 32));
    }
}
