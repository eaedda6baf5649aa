//! A customer-managed KMS key with rotation, a policy naming its administrator (a role, never a
//! session), an alias, tags. Rotation and the policy are observed (`kms_guard`): a hand edit is
//! drift that `up` restores.

use crate::clients::answered;
use crate::clients::{classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::kms_guard::{self as guard, Admin};
use crate::own::{not_owned, Tolerate};
use async_trait::async_trait;
use aws_sdk_kms::types::{KeyState, Tag};
use serde_json::json;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, KmsKey};

/// The KMS key everything of an environment is encrypted with.
pub struct KmsKeyStep {
    aws: Aws,
    step: String,
    spec: KmsKey,
    /// A CreateKey was sent by this process: it may have made a key whatever its answer.
    sent: std::sync::atomic::AtomicBool,
}

struct Found {
    key_id: String,
    arn: String,
    state: Option<KeyState>,
}

impl KmsKeyStep {
    pub fn new(aws: Aws, step: &str, spec: KmsKey) -> Self {
        KmsKeyStep {
            aws,
            step: step.to_owned(),
            spec,
            sent: std::sync::atomic::AtomicBool::new(false),
        }
    }

    async fn by_alias(&self) -> Result<Option<String>, StepError> {
        let mut pages = self.aws.kms.list_aliases().into_paginator().items().send();
        while let Some(a) = pages.next().await {
            let a = a.map_err(|e| classify(e, "ListAliases", &self.spec.alias))?;
            if a.alias_name() == Some(self.spec.alias.as_str()) {
                return Ok(a.target_key_id().map(str::to_owned));
            }
        }
        Ok(None)
    }

    async fn describe(&self, key_id: &str) -> Result<Found, StepError> {
        let d = self
            .aws
            .kms
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| classify(e, "DescribeKey", key_id))?;
        let m = d.key_metadata().ok_or_else(|| {
            StepError::permanent(format!("DescribeKey {key_id} returned no metadata"))
        })?;
        Ok(Found {
            key_id: m.key_id().to_owned(),
            arn: answered(m.arn(), "DescribeKey", "ARN", key_id)?.to_owned(),
            state: m.key_state().cloned(),
        })
    }

    async fn tags(&self, key_id: &str) -> Result<Vec<(String, String)>, StepError> {
        let t = self
            .aws
            .kms
            .list_resource_tags()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| classify(e, "ListResourceTags", key_id))?;
        Ok(t.tags()
            .iter()
            .map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned()))
            .collect())
    }

    /// A key this step made earlier whose alias was never created (a crash in between).
    async fn orphan(&self) -> Result<Option<Found>, StepError> {
        let mut pages = self.aws.kms.list_keys().into_paginator().items().send();
        while let Some(k) = pages.next().await {
            let k = k.map_err(|e| classify(e, "ListKeys", &self.spec.alias))?;
            let Some(id) = k.key_id() else { continue };
            if self.aws.owns(&self.step, &self.tags(id).await?) {
                let f = self.describe(id).await?;
                if f.state == Some(KeyState::Enabled) {
                    return Ok(Some(f));
                }
            }
        }
        Ok(None)
    }

    /// The key an earlier, interrupted create made. KMS lists a new key only eventually, so
    /// after a cut-off create the list is read again for a few seconds before another key is
    /// made (a second key would be one more to pay for and to clean up).
    async fn interrupted(&self, ctx: &StepCtx) -> Result<Option<Found>, StepError> {
        let sent = self.sent.load(std::sync::atomic::Ordering::SeqCst);
        let reads = if ctx.attempted() || sent { 4 } else { 1 };
        for read in 0..reads {
            if read > 0 {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            if let Some(f) = self.orphan().await? {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    fn outputs(&self, f: &Found) -> Outputs {
        [
            ("arn", json!(f.arn)),
            ("key_id", json!(f.key_id)),
            ("alias", json!(self.spec.alias)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The administrator the key was made with, else the caller.
    async fn admin(&self, ctx: &StepCtx) -> Result<Admin, StepError> {
        match ctx.previous().and_then(Admin::recorded) {
            Some(a) => Ok(a),
            None => Admin::of_caller(&self.aws).await,
        }
    }

    /// The key's outputs, with its administrator.
    fn outputs_with(&self, f: &Found, admin: &Admin) -> Outputs {
        let mut o = self.outputs(f);
        for (k, v) in admin.outputs() {
            o.insert(k.to_owned(), v);
        }
        o
    }

    /// What differs from the plan in the key's rotation and policy.
    async fn drift(&self, key_id: &str, admin: &Admin) -> Result<Vec<Change>, StepError> {
        let (rotation, policy) = guard::observe(&self.aws, key_id).await?;
        Ok(guard::changes(rotation, &policy, admin))
    }

    /// Rotation on and the policy as wbstack writes it, on the existing key.
    async fn secure(&self, key_id: &str, admin: &Admin) -> Result<(), StepError> {
        self.aws
            .kms
            .enable_key_rotation()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| classify(e, "EnableKeyRotation", key_id))?;
        self.aws
            .kms
            .put_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .policy(admin.policy().to_string())
            .send()
            .await
            .map_err(|e| classify(e, "PutKeyPolicy", key_id))
            .map(|_| ())
    }
}

#[async_trait]
impl Step for KmsKeyStep {
    fn kind(&self) -> &str {
        KmsKey::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    async fn unnamed(&self, _ctx: &StepCtx) -> Result<Option<Outputs>, StepError> {
        // A key without its alias (a create cut off before it, a teardown after it) is found by
        // its tags; `destroy` then finds it by the recorded id.
        Ok(self.orphan().await?.map(|f| self.outputs(&f)))
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("kms", &self.spec.alias))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        if self.aws.adopts(&self.step) {
            return Ok(Vec::new());
        }
        let Some(key_id) = self.by_alias().await? else {
            return Ok(Vec::new());
        };
        let admin = self.admin(ctx).await?;
        self.drift(&key_id, &admin).await
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        // DescribeKey takes the alias: one read.
        let alias = &self.spec.alias;
        let d = self
            .aws
            .kms
            .describe_key()
            .key_id(alias)
            .send()
            .await
            .tolerate(&["NotFoundException"], "DescribeKey", alias)?;
        let Some(m) = d.as_ref().and_then(|d| d.key_metadata()) else {
            return Ok(Observation::Absent);
        };
        let f = Found {
            key_id: m.key_id().to_owned(),
            arn: answered(m.arn(), "DescribeKey", "ARN", alias)?.to_owned(),
            state: m.key_state().cloned(),
        };
        // Ownership is read from the tags unless the journal already says the key is ours.
        if !ctx.attempted()
            && !self.aws.adopts(&self.step)
            && !self.aws.owns(&self.step, &self.tags(&f.key_id).await?)
        {
            return Ok(not_owned("key", alias, &self.aws));
        }
        if f.state == Some(KeyState::Enabled) && !self.aws.adopts(&self.step) {
            let admin = self.admin(ctx).await?;
            let drifted = !self.drift(&f.key_id, &admin).await?.is_empty();
            return Ok(Observation::Ready {
                outputs: self.outputs_with(&f, &admin),
                fingerprint: Some(if drifted {
                    Fingerprint::of(&("kms drifted", &self.spec.alias))
                } else {
                    self.fingerprint()
                }),
            });
        }
        Ok(match f.state {
            Some(KeyState::Enabled) => Observation::ready(self.outputs(&f)),
            Some(KeyState::Creating) => Observation::InProgress { detail: Some("creating".into()) },
            Some(KeyState::PendingDeletion) => Observation::Failed { message: format!("{} points at key {} which is scheduled for deletion; cancel the deletion or delete the alias", self.spec.alias, f.key_id) },
            other => Observation::Failed { message: format!("key {} is {:?}", f.key_id, other) },
        })
    }
    async fn apply(&self, ctx: &StepCtx, a: Action) -> Result<(), StepError> {
        let admin = self.admin(ctx).await?;
        if a == Action::Update {
            let key_id = self.by_alias().await?.ok_or_else(|| {
                StepError::transient(format!("{} points at no key yet", self.spec.alias))
            })?;
            return self.secure(&key_id, &admin).await;
        }
        let f = match self.interrupted(ctx).await? {
            Some(f) => f,
            None => {
                let mut req = self
                    .aws
                    .kms
                    .create_key()
                    .description(format!("wbstack {} ({})", self.aws.environment, self.step))
                    .policy(admin.policy().to_string());
                for (k, v) in self.aws.tags(&self.step) {
                    req = req.tags(
                        Tag::builder()
                            .tag_key(k)
                            .tag_value(v)
                            .build()
                            .map_err(|e| StepError::permanent(e.to_string()))?,
                    );
                }
                // CreateKey has no idempotency token: the SDK must not send it again by itself
                // (an answer lost after KMS made the key would make a second one). A retry is
                // the engine's, which first looks for the key by its tags.
                self.sent.store(true, std::sync::atomic::Ordering::SeqCst);
                let out = req
                    .customize()
                    .config_override(
                        aws_sdk_kms::config::Builder::default()
                            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled()),
                    )
                    .send()
                    .await
                    .map_err(|e| classify(e, "CreateKey", &self.spec.alias))?;
                let m = out
                    .key_metadata()
                    .ok_or_else(|| StepError::permanent("CreateKey returned no metadata"))?;
                Found {
                    key_id: m.key_id().to_owned(),
                    arn: answered(m.arn(), "CreateKey", "ARN", &self.spec.alias)?.to_owned(),
                    state: m.key_state().cloned(),
                }
            }
        };
        self.secure(&f.key_id, &admin).await?;
        self.aws
            .kms
            .create_alias()
            .alias_name(&self.spec.alias)
            .target_key_id(&f.key_id)
            .send()
            .await
            .tolerate(&["AlreadyExistsException"], "CreateAlias", &self.spec.alias)
            .map(|_| ())
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        // The key is found by its alias; else, if a teardown was cut off after the alias went,
        // by the id this environment recorded, or by its tags: it is never left enabled.
        let recorded = ctx
            .previous()
            .and_then(|o| o.get("key_id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let key_id = match (self.by_alias().await?, recorded) {
            (Some(id), _) => Some(id),
            (None, Some(id)) if self.aws.owns(&self.step, &self.tags(&id).await?) => Some(id),
            (None, _) => self.orphan().await?.map(|f| f.key_id),
        };
        let Some(key_id) = key_id else {
            return Ok(());
        };
        let kept = crate::kms_keep::snapshots_under(&self.aws, &key_id).await?;
        if !kept.is_empty() {
            ctx.leave(
                format!(
                    "key {key_id} kept ({}): it encrypts the snapshots {}, which are readable only with it; once they are deleted, `wbstack down` again schedules its deletion",
                    self.spec.alias,
                    kept.join(", ")
                ),
                None,
            );
            return Ok(());
        }
        // Deletion is scheduled before the alias goes, so the alias finds the key until then.
        self.aws
            .kms
            .schedule_key_deletion()
            .key_id(&key_id)
            .pending_window_in_days(self.spec.deletion_window_days.clamp(7, 30) as i32)
            .send()
            .await
            // Already scheduled (an interrupted teardown): go on to the alias.
            .tolerate(
                &["KMSInvalidStateException"],
                "ScheduleKeyDeletion",
                &key_id,
            )?;
        self.aws
            .kms
            .delete_alias()
            .alias_name(&self.spec.alias)
            .send()
            .await
            .tolerate(&["NotFoundException"], "DeleteAlias", &self.spec.alias)
            .map(|_| ())
    }
}

impl AwsStepKind for KmsKey {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(KmsKeyStep::new(aws, id, self.clone()))
    }
    fn grants(&self, env: &str) -> Grants {
        Grants::only(crate::policy::kms(&self.alias, env))
    }
}
