//! The IAM role W&B's and ClickHouse's pods assume through the cluster's OIDC provider (IRSA):
//! its trust policy names their service accounts, and one inline policy allows the bucket and
//! the key. Both are judged by their live documents, so a hand edit shows in `plan` and is
//! repaired by `up`.

use crate::clients::{classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::own::{not_owned, outputs, Tolerate};
use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::{json, Value};
use wbstack_engine::{Action, Change, Fingerprint, Observation, Step, StepCtx, StepError};
use wbstack_plan::{IamRole, Kind};

/// The name of the role's inline policy.
pub const POLICY: &str = "wbstack-access";
const NOT_FOUND: &[&str] = &["NoSuchEntity"];

/// The IRSA role.
pub struct IamRoleStep {
    aws: Aws,
    step: String,
    spec: IamRole,
}

/// The role as it is.
struct Live {
    arn: String,
    trust: Value,
    policy: Option<Value>,
}

/// A policy document as IAM returns it: URL-encoded JSON.
fn document(text: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::String(decoded.into_owned()))
}

/// A statement's resources and actions, for a diff line.
fn statement_summary(s: &Value) -> String {
    format!("{} on {}", s["Action"], s["Resource"])
}

impl IamRoleStep {
    pub fn new(aws: Aws, step: &str, spec: IamRole) -> Self {
        IamRoleStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }

    /// The key's ARN: the plan's, or the `kms` step's output.
    fn key_arn<'c>(&'c self, ctx: &'c StepCtx) -> Result<Option<&'c str>, StepError> {
        match (&self.spec.kms_key_arn, &self.spec.kms) {
            (Some(k), _) => Ok(Some(k.as_str())),
            (None, Some(i)) => ctx.need_str(i.step, i.output).map(Some),
            (None, None) => Ok(None),
        }
    }

    async fn look(&self) -> Result<Option<Live>, StepError> {
        let name = &self.spec.name;
        let Some(out) = self
            .aws
            .iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .tolerate(NOT_FOUND, "GetRole", name)?
        else {
            return Ok(None);
        };
        let role = out
            .role()
            .ok_or_else(|| StepError::permanent(format!("GetRole {name} returned no role")))?;
        let policy = self
            .aws
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(POLICY)
            .send()
            .await
            .tolerate(NOT_FOUND, "GetRolePolicy", name)?
            .map(|p| document(p.policy_document()));
        Ok(Some(Live {
            arn: role.arn().to_owned(),
            trust: role
                .assume_role_policy_document()
                .map(document)
                .unwrap_or(Value::Null),
            policy,
        }))
    }

    async fn tags(&self) -> Result<Vec<(String, String)>, StepError> {
        let out = self
            .aws
            .iam
            .list_role_tags()
            .role_name(&self.spec.name)
            .send()
            .await
            .map_err(|e| classify(e, "ListRoleTags", &self.spec.name))?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    /// Each document that is not what the plan wants, statement by statement.
    fn against_plan(&self, ctx: &StepCtx, live: &Live) -> Result<Vec<Change>, StepError> {
        let mut c = Vec::new();
        let trust = self.spec.trust();
        if live.trust != trust {
            let subjects = |t: &Value| {
                t["Statement"][0]["Condition"]["StringEquals"]
                    .as_object()
                    .and_then(|m| m.iter().find(|(k, _)| k.ends_with(":sub")))
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_else(|| t.to_string())
            };
            c.push(Change::in_place(
                "trust.subjects",
                subjects(&live.trust),
                subjects(&trust),
            ));
        }
        let wanted = self.spec.permissions(self.key_arn(ctx)?);
        let Some(policy) = &live.policy else {
            c.push(Change::in_place(POLICY, "(none)", "bucket and key access"));
            return Ok(c);
        };
        let by_sid = |p: &Value| -> Vec<(String, Value)> {
            p["Statement"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| (s["Sid"].as_str().unwrap_or("").to_owned(), s.clone()))
                .collect()
        };
        let (have, want) = (by_sid(policy), by_sid(&wanted));
        for (sid, w) in &want {
            match have.iter().find(|(s, _)| s == sid) {
                Some((_, h)) if h == w => {}
                Some((_, h)) => c.push(Change::in_place(
                    &format!("{POLICY}.{sid}"),
                    statement_summary(h),
                    statement_summary(w),
                )),
                None => c.push(Change::in_place(
                    &format!("{POLICY}.{sid}"),
                    "(none)",
                    statement_summary(w),
                )),
            }
        }
        for (sid, h) in &have {
            if !want.iter().any(|(s, _)| s == sid) {
                c.push(Change::in_place(
                    &format!("{POLICY}.{sid}"),
                    statement_summary(h),
                    "(none)",
                ));
            }
        }
        Ok(c)
    }

    async fn put_policy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let doc = self.spec.permissions(self.key_arn(ctx)?).to_string();
        self.aws
            .iam
            .put_role_policy()
            .role_name(&self.spec.name)
            .policy_name(POLICY)
            .policy_document(doc)
            .send()
            .await
            .map_err(|e| classify(e, "PutRolePolicy", &self.spec.name))?;
        Ok(())
    }

    async fn set_trust(&self) -> Result<(), StepError> {
        self.aws
            .iam
            .update_assume_role_policy()
            .role_name(&self.spec.name)
            .policy_document(self.spec.trust().to_string())
            .send()
            .await
            .map_err(|e| classify(e, "UpdateAssumeRolePolicy", &self.spec.name))?;
        Ok(())
    }

    async fn create(&self) -> Result<bool, StepError> {
        let mut req = self
            .aws
            .iam
            .create_role()
            .role_name(&self.spec.name)
            .description(format!(
                "wbstack {}: W&B and ClickHouse pods (IRSA)",
                self.aws.environment
            ))
            .assume_role_policy_document(self.spec.trust().to_string());
        for (k, v) in self.aws.tags(&self.step) {
            req = req.tags(
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| StepError::permanent(e.to_string()))?,
            );
        }
        Ok(req
            .send()
            .await
            .tolerate(&["EntityAlreadyExists"], "CreateRole", &self.spec.name)?
            .is_some())
    }
}

#[async_trait]
impl Step for IamRoleStep {
    fn kind(&self) -> &str {
        IamRole::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn supports_update(&self) -> bool {
        true
    }
    fn fingerprint(&self) -> Fingerprint {
        let s = &self.spec;
        Fingerprint::of(&(
            "iam-role",
            &s.name,
            &s.oidc_provider_arn,
            &s.service_accounts,
            &s.buckets,
            &s.kms_key_arn,
        ))
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        match self.look().await? {
            Some(live) if !self.aws.adopts(&self.step) => self.against_plan(ctx, &live),
            _ => Ok(Vec::new()),
        }
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        let Some(live) = self.look().await? else {
            return Ok(Observation::Absent);
        };
        if self.aws.adopts(&self.step) {
            return Ok(Observation::ready(self.outputs(&live)));
        }
        if !ctx.attempted() && !self.aws.owns(&self.step, &self.tags().await?) {
            return Ok(not_owned("IAM role", &self.spec.name, &self.aws));
        }
        let c = self.against_plan(ctx, &live)?;
        Ok(Observation::Ready {
            outputs: self.outputs(&live),
            fingerprint: Some(if c.is_empty() {
                self.fingerprint()
            } else {
                Fingerprint::of(&("iam-role-live", &c))
            }),
        })
    }
    async fn apply(&self, ctx: &StepCtx, a: Action) -> Result<(), StepError> {
        // A role that was there already (an update, or a create cut off after CreateRole) gets
        // the trust policy the plan wants; the inline policy is written either way.
        if a == Action::Update || !self.create().await? {
            self.set_trust().await?;
        }
        self.put_policy(ctx).await
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let name = &self.spec.name;
        let Some(list) = self
            .aws
            .iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .tolerate(NOT_FOUND, "ListRolePolicies", name)?
        else {
            return Ok(());
        };
        for p in list.policy_names() {
            self.aws
                .iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(p)
                .send()
                .await
                .tolerate(NOT_FOUND, "DeleteRolePolicy", name)?;
        }
        self.aws
            .iam
            .delete_role()
            .role_name(name)
            .send()
            .await
            .tolerate(NOT_FOUND, "DeleteRole", name)
            .map(|_| ())
    }
}

impl IamRoleStep {
    fn outputs(&self, live: &Live) -> wbstack_engine::Outputs {
        outputs(&[("arn", json!(live.arn)), ("name", json!(self.spec.name))])
    }
}

impl AwsStepKind for IamRole {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(IamRoleStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        Grants::only(crate::policy::pods_role(&self.name))
    }
}
