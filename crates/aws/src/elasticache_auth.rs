//! The end of an AUTH token rotation. The token step wrote the new token as the pending
//! version, the group took it next to the old one (`ROTATE`), W&B was given it and rolled; now
//! the group is set to accept the new token only (`SET`) and the new token becomes the secret's
//! current version. Each stage is read back from AWS, so a run cut anywhere is finished by the
//! next `up` or `resume`.

use crate::clients::{classify, Aws};
use crate::elasticache_changes::change_token;
use crate::kind::{AwsStepKind, Grants};
use crate::rotation::{pending_of, promote, Pending};
use crate::secrets::read_secret;
use async_trait::async_trait;
use aws_sdk_elasticache::types::AuthTokenUpdateStrategyType;
use serde_json::json;
use wbstack_engine::{
    Action, Change, Fingerprint, Observation, Outputs, SecretRef, Step, StepCtx, StepError,
};
use wbstack_plan::{Kind, RedisAuthCommit};

pub struct RedisAuthCommitStep {
    aws: Aws,
    spec: RedisAuthCommit,
}

impl RedisAuthCommitStep {
    pub fn new(aws: Aws, _step: &str, spec: RedisAuthCommit) -> Self {
        RedisAuthCommitStep { aws, spec }
    }

    fn outputs(&self) -> Outputs {
        [("group".to_owned(), json!(self.spec.group))].into()
    }

    fn pending(&self, ctx: &StepCtx) -> Option<Pending> {
        pending_of(ctx, self.spec.auth.step)
    }

    /// The group's status, polled until `available`.
    async fn settled(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let id = &self.spec.group;
        crate::poll::poll(ctx, || async {
            let d = self
                .aws
                .elasticache
                .describe_replication_groups()
                .replication_group_id(id)
                .send()
                .await
                .map_err(|e| classify(e, "DescribeReplicationGroups", id))?;
            let g = d.replication_groups().first();
            let status = g.and_then(|g| g.status()).unwrap_or("missing");
            let auth = g
                .and_then(|g| g.pending_modified_values())
                .and_then(|p| p.auth_token_status());
            if status == "available" && auth.is_none() {
                return Ok(Some(()));
            }
            ctx.progress(format!("{id} is {status}"));
            Ok(None)
        })
        .await
    }

    async fn commit(&self, ctx: &StepCtx, p: &Pending) -> Result<(), StepError> {
        // The group must have taken the new token, and W&B been given it, before the old one
        // stops working.
        let given = ctx
            .dep_output(self.spec.cache.step, self.spec.cache.output)
            .and_then(SecretRef::from_output)
            .and_then(|r| r.version);
        if given.as_deref() != Some(p.version.as_str()) {
            return Err(StepError::transient(format!(
                "{} does not take the new AUTH token yet",
                self.spec.group
            )));
        }
        let r = ctx.need_secret(self.spec.auth.step, self.spec.auth.output)?;
        let secret = r.id.clone();
        let token = read_secret(&self.aws, &r.at_version(&p.version)).await?;
        ctx.progress(format!(
            "{}: accepting the new AUTH token only",
            self.spec.group
        ));
        let set = AuthTokenUpdateStrategyType::Set;
        change_token(&self.aws, &self.spec.group, &token, set).await?;
        self.settled(ctx).await?;
        promote(&self.aws, &secret, &p.version).await
    }
}

#[async_trait]
impl Step for RedisAuthCommitStep {
    fn kind(&self) -> &str {
        RedisAuthCommit::LABEL
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&("redis-auth-commit", &self.spec.group))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        Ok(match self.pending(ctx) {
            Some(_) => vec![Change::in_place(
                "auth_token",
                "the current and the new token",
                "the new token only (SET), then current in Secrets Manager",
            )],
            None => Vec::new(),
        })
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(match self.pending(ctx) {
            Some(p) => Observation::Ready {
                outputs: self.outputs(),
                fingerprint: Some(Fingerprint::of(&("rotation", &p.version))),
            },
            // Nothing made: the first run reports it made, later ones unchanged.
            None if ctx.previous().is_none() => Observation::Absent,
            None => Observation::Ready {
                outputs: self.outputs(),
                fingerprint: Some(self.fingerprint()),
            },
        })
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        match self.pending(ctx) {
            Some(p) => self.commit(ctx, &p).await,
            None => Ok(()),
        }
    }
    async fn wait(&self, _ctx: &StepCtx) -> Result<Outputs, StepError> {
        Ok(self.outputs())
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        // Nothing of its own: the group and the secret are their steps'.
        Ok(())
    }
    async fn wait_destroyed(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        Ok(())
    }
}

impl AwsStepKind for RedisAuthCommit {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(RedisAuthCommitStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        // Its calls are the group's, granted with the ElastiCache group's own step.
        Grants::default()
    }
}
