//! The key's security settings, observed: rotation on, and the policy wbstack wrote (the
//! account's root, and an administrator named as a role, never a temporary session). A hand edit
//! of either is drift, shown field by field and restored by `up`.

use crate::clients::answered;
use crate::clients::{classify, Aws};
use serde_json::{json, Value};
use wbstack_engine::{Change, StepError};

/// Who administers the key: the caller's partition, account and IAM principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    pub partition: String,
    pub account: String,
    pub principal: String,
}

impl Admin {
    /// The caller, with an assumed-role session named by its role (a session ends; a key
    /// policy naming it would name no one): the role's ARN as IAM has it (its path included),
    /// or, without `iam:GetRole`, built from the session's ARN.
    pub async fn of_caller(aws: &Aws) -> Result<Admin, StepError> {
        let who = aws
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(e, "GetCallerIdentity", "caller"))?;
        let arn = answered(who.arn(), "GetCallerIdentity", "ARN", "caller")?;
        let account = answered(who.account(), "GetCallerIdentity", "account", "caller")?.to_owned();
        let partition = arn.split(':').nth(1).unwrap_or("aws").to_owned();
        let principal = match session_role(arn) {
            Some(role) => match aws.iam.get_role().role_name(role).send().await {
                Ok(r) => r.role().map(|r| r.arn().to_owned()),
                Err(_) => None,
            }
            .unwrap_or_else(|| format!("arn:{partition}:iam::{account}:role/{role}")),
            None => arn.to_owned(),
        };
        Ok(Admin {
            partition,
            account,
            principal,
        })
    }

    /// The administrator recorded when the key was made.
    pub fn recorded(outputs: &wbstack_engine::Outputs) -> Option<Admin> {
        let s = |k: &str| outputs.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Admin {
            partition: s("admin_partition")?,
            account: s("admin_account")?,
            principal: s("admin")?,
        })
    }

    /// As outputs of the step.
    pub fn outputs(&self) -> [(&'static str, Value); 3] {
        [
            ("admin", json!(self.principal)),
            ("admin_account", json!(self.account)),
            ("admin_partition", json!(self.partition)),
        ]
    }

    /// The key policy: the account may use the key through IAM; the administrator manages it.
    pub fn policy(&self) -> Value {
        json!({
            "Version": "2012-10-17",
            "Id": "wbstack",
            "Statement": [
                {"Sid": "AccountUse", "Effect": "Allow",
                 "Principal": {"AWS": format!("arn:{}:iam::{}:root", self.partition, self.account)},
                 "Action": "kms:*", "Resource": "*"},
                {"Sid": "Administrator", "Effect": "Allow", "Principal": {"AWS": self.principal},
                 "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
                 "Resource": "*"}
            ]
        })
    }
}

/// The role of an assumed-role session ARN (`arn:aws:sts::1:assumed-role/ROLE/SESSION`).
fn session_role(arn: &str) -> Option<&str> {
    let rest = arn.split(":assumed-role/").nth(1)?;
    rest.split('/').next().filter(|r| !r.is_empty())
}

/// The key's rotation and policy as KMS has them.
pub async fn observe(aws: &Aws, key_id: &str) -> Result<(bool, Value), StepError> {
    let rotation = aws
        .kms
        .get_key_rotation_status()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| classify(e, "GetKeyRotationStatus", key_id))?
        .key_rotation_enabled();
    let policy = aws
        .kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .map_err(|e| classify(e, "GetKeyPolicy", key_id))?;
    let policy = policy
        .policy()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    Ok((rotation, policy))
}

/// Each setting whose live value is not the plan's.
pub fn changes(rotation: bool, policy: &Value, admin: &Admin) -> Vec<Change> {
    let mut c = Vec::new();
    if !rotation {
        c.push(Change::in_place("rotation", "disabled", "enabled"));
    }
    if *policy != admin.policy() {
        c.push(Change::in_place(
            "policy",
            "another policy",
            format!("the account's root, administrator {}", admin.principal),
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_named_by_its_role() {
        assert_eq!(
            session_role("arn:aws:sts::123456789012:assumed-role/platform-admin/alice"),
            Some("platform-admin")
        );
        assert_eq!(session_role("arn:aws:iam::123456789012:user/ci"), None);
        let a = Admin {
            partition: "aws-us-gov".into(),
            account: "1".into(),
            principal: "arn:aws-us-gov:iam::1:role/r".into(),
        };
        assert_eq!(
            a.policy()["Statement"][0]["Principal"]["AWS"],
            "arn:aws-us-gov:iam::1:root"
        );
        let mut rotated_off = changes(false, &a.policy(), &a);
        assert_eq!(rotated_off.remove(0).field, "rotation");
        assert!(rotated_off.is_empty());
    }
}
