//! Generated passwords kept in Secrets Manager: made from the operating system's CSPRNG,
//! read back from there on resume, never written anywhere else by wbstack.

use crate::clients::{classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::own::{has_code, not_owned, tags, Tolerate};
use crate::rotation::{self, Pending};
use async_trait::async_trait;
use aws_sdk_secretsmanager::types::Tag;
use rand::{Rng, TryRngCore};
use serde_json::json;
use wbstack_engine::{
    Action, Change, Fingerprint, Observation, Outputs, Secret, SecretRef, Step, StepCtx, StepError,
};
use wbstack_plan::{AwsSecret, Kind};

const NOT_FOUND: &str = "ResourceNotFoundException";

/// The store name in secret references.
pub const STORE: &str = "aws-secretsmanager";

/// A password in Secrets Manager.
pub struct AwsSecretStep {
    aws: Aws,
    step: String,
    spec: AwsSecret,
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
        .set_version_id(r.version.clone())
        .send()
        .await
        .map_err(|e| classify(e, "GetSecretValue", &r.id))?;
    let v = out
        .secret_string()
        .ok_or_else(|| StepError::permanent(format!("secret {} holds no string", r.id)))?;
    Ok(Secret::new(r.clone(), v))
}

impl AwsSecretStep {
    pub fn new(aws: Aws, step: &str, spec: AwsSecret) -> Self {
        AwsSecretStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }

    fn outputs(&self, arn: &str, current: Option<&str>, pending: Option<&Pending>) -> Outputs {
        let r = SecretRef::new(STORE, arn);
        [
            ("arn", json!(arn)),
            ("name", json!(self.spec.name)),
            (
                "secret",
                serde_json::to_value(r).expect("a secret reference is two strings"),
            ),
            (rotation::CURRENT_OUTPUT, json!(current)),
            (rotation::PENDING_OUTPUT, rotation::pending_output(pending)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Whether this run asks a new value that is not on its way yet (an adopted secret is never
    /// rotated: its users are not wbstack's to change over).
    fn rotation_asked(&self, pending: Option<&Pending>) -> bool {
        self.aws.rotates(&self.step) && !self.aws.adopts(&self.step) && pending.is_none()
    }

    fn tags(&self) -> Vec<Tag> {
        tags(&self.aws, &self.step, |k, v| {
            Tag::builder().key(k).value(v).build()
        })
    }
}

#[async_trait]
impl Step for AwsSecretStep {
    fn kind(&self) -> &str {
        AwsSecret::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "secret",
            &self.spec.name,
            self.spec.length,
            &self.spec.alphabet,
        ))
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let name = &self.spec.name;
        let Some(d) = self.describe().await? else {
            return Ok(Observation::Absent);
        };
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
        if let Some(when) = d.deleted_date() {
            // This environment's own, deleted by an earlier teardown: `apply` restores it.
            // Anyone else's is not touched: waiting cannot help, so it fails now, saying how.
            return Ok(if self.aws.owns(&self.step, &tags) {
                Observation::Absent
            } else {
                Observation::Failed {
                    message: scheduled_for_deletion(name, &when.to_string()),
                }
            });
        }
        if !self.aws.accepts(&self.step, &tags) {
            return Ok(not_owned("secret", name, &self.aws));
        }
        let (current, pending) = rotation::stages(&d);
        let pending = match pending {
            Some(version) => Some(Pending {
                created: rotation::created(&self.aws, name, &version).await?,
                version,
            }),
            None => None,
        };
        let outputs = self.outputs(
            d.arn().unwrap_or(&self.spec.name),
            current.as_deref(),
            pending.as_ref(),
        );
        // A rotation asked for and not begun yet is an update: a new pending value.
        Ok(if self.rotation_asked(pending.as_ref()) {
            Observation::Ready {
                outputs,
                fingerprint: Some(Fingerprint::of(&("rotation-asked", &self.step))),
            }
        } else {
            Observation::ready(outputs)
        })
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        Ok(match self.observe(ctx).await? {
            Observation::Ready {
                fingerprint: Some(_),
                ..
            } => vec![Change::in_place(
                "value",
                "(current)",
                "(a new one, current once every user has it)",
            )],
            _ => Vec::new(),
        })
    }
    async fn apply(&self, ctx: &StepCtx, a: Action) -> Result<(), StepError> {
        if a == Action::Update {
            let (name, s) = (&self.spec.name, &self.spec);
            return rotation::put_pending(&self.aws, name, &s.alphabet, s.length).await;
        }
        let value = Secret::new(
            SecretRef::new(STORE, &self.spec.name),
            generate(&self.spec.alphabet, self.spec.length),
        );
        let created = self
            .aws
            .secrets
            .create_secret()
            .name(&self.spec.name)
            .description(format!("wbstack {} ({})", self.aws.environment, self.step))
            .secret_string(value.expose())
            .set_tags(Some(self.tags()))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // There already: made by an interrupted run (its value is kept), or scheduled for
            // deletion by an earlier teardown of this environment (`observe` found it its own;
            // AWS answers InvalidRequestException, some emulations ResourceExistsException).
            Err(e) if has_code(&e, &["ResourceExistsException", "InvalidRequestException"]) => {
                if self.scheduled_for_deletion().await? {
                    self.restore(ctx, &value).await?;
                }
                Ok(())
            }
            Err(e) => Err(classify(e, "CreateSecret", &self.spec.name)),
        }
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let mut req = self.aws.secrets.delete_secret().secret_id(&self.spec.name);
        req = if self.spec.recovery_days == 0 {
            req.force_delete_without_recovery(true)
        } else {
            req.recovery_window_in_days(self.spec.recovery_days.clamp(7, 30) as i64)
        };
        req.send()
            .await
            .tolerate(&[NOT_FOUND], "DeleteSecret", &self.spec.name)
            .map(|_| ())
    }
}

impl AwsSecretStep {
    /// The secret as Secrets Manager describes it, if it exists (scheduled for deletion too).
    async fn describe(
        &self,
    ) -> Result<
        Option<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput>,
        StepError,
    > {
        let name = &self.spec.name;
        self.aws
            .secrets
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .tolerate(&[NOT_FOUND], "DescribeSecret", name)
    }

    /// Whether the secret exists and is scheduled for deletion.
    async fn scheduled_for_deletion(&self) -> Result<bool, StepError> {
        Ok(self
            .describe()
            .await?
            .is_some_and(|d| d.deleted_date().is_some()))
    }

    /// Restores this environment's secret that a teardown scheduled for deletion, with a new
    /// value.
    async fn restore(&self, ctx: &StepCtx, value: &Secret) -> Result<(), StepError> {
        let name = &self.spec.name;
        ctx.progress(format!(
            "restoring {name} (scheduled for deletion by an earlier teardown) with a new value"
        ));
        self.aws
            .secrets
            .restore_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| classify(e, "RestoreSecret", name))?;
        self.aws
            .secrets
            .put_secret_value()
            .secret_id(name)
            .secret_string(value.expose())
            .send()
            .await
            .map_err(|e| classify(e, "PutSecretValue", name))?;
        Ok(())
    }
}

/// Why a secret someone else scheduled for deletion stops the run, and the ways out.
fn scheduled_for_deletion(name: &str, when: &str) -> String {
    format!(
        "DescribeSecret {name}: the secret is scheduled for deletion (deleted {when}) and is not \
         this environment's, so wbstack neither restores nor replaces it: restore it \
         (aws secretsmanager restore-secret --secret-id {name}) and list its step in \
         spec.aws.adopt to use it, delete it for good (aws secretsmanager delete-secret --secret-id {name} \
         --force-delete-without-recovery), or give the environment another name"
    )
}

impl AwsStepKind for AwsSecret {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(AwsSecretStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        Grants::only(crate::policy::secret(&self.name))
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
