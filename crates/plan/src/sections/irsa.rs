//! `spec.aws.irsa`: an IAM role that W&B's and ClickHouse's service accounts assume through the
//! cluster's OIDC provider, allowed the bucket (objects under its path) and its KMS key only.
//! Without it, [`pod_access`] is what the nodes' role needs instead.

use crate::build::{placeholder, Builder};
use crate::check::Checker;
use crate::ids::{self, outputs, Input};
use crate::kinds::{BucketGrant, IamRole};
use crate::model::{BucketMode, ClickhouseMode, Plan};
use crate::resolve::Resolved;
use serde_json::{json, Value};

/// The annotation EKS reads a pod's role from.
pub const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let Some(irsa) = r.spec.aws.as_ref().and_then(|a| a.irsa.as_ref()) else {
        return;
    };
    if provider_issuer(&irsa.oidc_provider_arn).is_none() {
        c.value_help(
            "spec.aws.irsa.oidcProviderArn",
            format!("`{}` is not an IAM OIDC provider ARN", irsa.oidc_provider_arn),
            "like arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE (aws eks describe-cluster --query cluster.identity.oidc.issuer)",
        );
    }
    if let Some(n) = &irsa.role_name {
        let ok = (1..=64).contains(&n.len())
            && n.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "+=,.@_-".contains(ch));
        if !ok {
            c.value(
                "spec.aws.irsa.roleName",
                format!("`{n}` is not an IAM role name: 1 to 64 letters, digits and +=,.@_-"),
            );
        }
    }
    if grants(r.plan).is_empty() {
        c.value_help(
            "spec.aws.irsa",
            "IRSA gives the pods access to an S3 bucket, and the plan has none",
            "set spec.bucket.mode to s3 (or name an existing s3 bucket), or remove spec.aws.irsa",
        );
    }
    let keys = "with spec.aws.irsa the pods take the role's credentials, not access keys";
    if r.spec.bucket.credentials_secret.is_some() {
        c.at(
            "spec.bucket.credentialsSecret",
            true,
            keys,
            Some("remove credentialsSecret"),
        );
    }
    if let Some(s3) = &r.spec.clickhouse.s3 {
        if s3.credentials_secret.is_some() {
            c.at(
                "spec.clickhouse.s3.credentialsSecret",
                true,
                keys,
                Some("remove credentialsSecret"),
            );
        }
        if !s3.use_environment_credentials {
            c.value_help(
                "spec.clickhouse.s3.useEnvironmentCredentials",
                "with spec.aws.irsa ClickHouse reads the role's credentials from its environment",
                "set it to true (the default)",
            );
        }
    }
}

/// `oidc.eks.<region>.amazonaws.com/id/<id>` from the provider's ARN.
fn provider_issuer(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:aws")?;
    let (partition, rest) = rest.split_once(":iam::")?;
    let (account, issuer) = rest.split_once(":oidc-provider/")?;
    let ok = (partition.is_empty() || partition.starts_with('-'))
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !issuer.is_empty()
        && !issuer.contains("://");
    ok.then_some(issuer)
}

/// The partition (`aws`, `aws-cn`) of an ARN.
fn partition(arn: &str) -> &str {
    arn.split(':').nth(1).unwrap_or("aws")
}

/// The ServiceAccount bundled ClickHouse runs as under IRSA.
pub(crate) const CLICKHOUSE_ACCOUNT: &str = "wbstack-clickhouse";

/// Whether ClickHouse's pods need the role: bundled ClickHouse with an S3 disk, under IRSA.
pub(crate) fn clickhouse_uses_role(plan: &Plan) -> bool {
    let s = &plan.spec;
    s.aws.as_ref().is_some_and(|a| a.irsa.is_some())
        && s.clickhouse.mode == ClickhouseMode::Bundled
        && s.clickhouse.s3.is_some()
}

/// A path as an object key prefix: `""`, or `path/`.
fn prefix(path: &str) -> String {
    let p = path.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

/// The bucket and folder of a ClickHouse S3 endpoint, path-style
/// (`https://s3.<region>.amazonaws.com/<bucket>/<folder>/`) or virtual-hosted
/// (`https://<bucket>.s3.<region>.amazonaws.com/<folder>/`).
pub(super) fn endpoint_grant(endpoint: &str) -> Option<BucketGrant> {
    let rest = endpoint.split_once("://")?.1;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next().unwrap_or(host);
    let hosted = host
        .find(".s3.")
        .or_else(|| host.find(".s3-"))
        .map(|i| &host[..i]);
    let (bucket, folder) = match hosted {
        Some(b) => (b, path),
        None => path.split_once('/').unwrap_or((path, "")),
    };
    (!bucket.is_empty()).then(|| BucketGrant {
        bucket: bucket.to_owned(),
        prefix: prefix(folder),
    })
}

/// The buckets (and prefixes) the pods use: the artifacts bucket on S3, and the bucket of
/// bundled ClickHouse's S3 disk.
pub fn grants(plan: &Plan) -> Vec<BucketGrant> {
    let b = &plan.spec.bucket;
    let artifacts = match b.mode {
        BucketMode::S3 => Some(super::bucket::name_of(&plan.spec, &plan.metadata.name)),
        BucketMode::Existing if b.provider.as_deref().unwrap_or("s3") == "s3" => b.name.clone(),
        _ => None,
    };
    let mut v: Vec<BucketGrant> = artifacts
        .map(|bucket| BucketGrant {
            bucket,
            prefix: prefix(b.path.as_deref().unwrap_or("")),
        })
        .into_iter()
        .collect();
    let ch = &plan.spec.clickhouse;
    if ch.mode == ClickhouseMode::Bundled {
        if let Some(g) = ch.s3.as_ref().and_then(|s| endpoint_grant(&s.endpoint)) {
            let covered = v
                .iter()
                .any(|a| a.bucket == g.bucket && g.prefix.starts_with(&a.prefix));
            if !covered {
                v.push(g);
            }
        }
    }
    v
}

/// The policy that lets the pods use the buckets and the key, and nothing else.
pub fn access_policy(partition: &str, grants: &[BucketGrant], key_arn: Option<&str>) -> Value {
    let mut statements = Vec::new();
    for (i, g) in grants.iter().enumerate() {
        let bucket = format!("arn:{partition}:s3:::{}", g.bucket);
        let mut list = json!({"Sid": format!("List{i}"), "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
            "Resource": bucket});
        if !g.prefix.is_empty() {
            list["Condition"] = json!({"StringLike": {"s3:prefix": [format!("{}*", g.prefix)]}});
        }
        statements.push(list);
        statements.push(json!({"Sid": format!("Objects{i}"), "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            "Resource": format!("{bucket}/{}*", g.prefix)}));
    }
    if let Some(k) = key_arn {
        statements.push(json!({"Sid": "Key", "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": k}));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Who may assume the role: these service accounts (`<namespace>:<name>`), through the
/// cluster's OIDC provider, for STS.
pub fn trust_policy(provider_arn: &str, service_accounts: &[String]) -> Value {
    let issuer = provider_issuer(provider_arn).unwrap_or(provider_arn);
    let subjects: Vec<String> = service_accounts
        .iter()
        .map(|s| format!("system:serviceaccount:{s}"))
        .collect();
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{issuer}:aud"): "sts.amazonaws.com",
            format!("{issuer}:sub"): subjects,
        }}
    }]})
}

/// Without IRSA, the policy the nodes' IAM role needs for the pods to use the bucket and the
/// key (the key's ARN is `<aws.kms: arn>` until it exists); None under IRSA or without a bucket.
pub fn pod_access(plan: &Plan) -> Option<Value> {
    let aws = plan.spec.aws.as_ref()?;
    if aws.irsa.is_some() {
        return None;
    }
    let grants = grants(plan);
    if grants.is_empty() {
        return None;
    }
    let region = aws.region.as_deref().unwrap_or("");
    let partition = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    let b = &plan.spec.bucket;
    let key = match (&b.kms_key_arn, b.mode) {
        (Some(k), _) => Some(k.clone()),
        (None, BucketMode::S3) => Some(placeholder(Input::new(ids::KMS, outputs::ARN))),
        (None, _) => None,
    };
    Some(access_policy(partition, &grants, key.as_deref()))
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    if let Some(p) = &r.spec.bucket.path {
        if r.spec.bucket.mode != BucketMode::None {
            b.set("/global/defaultBucket/path", json!(p));
        }
    }
    let Some(irsa) = r.spec.aws.as_ref().and_then(|a| a.irsa.as_ref()) else {
        return;
    };
    let bucket = &r.spec.bucket;
    let mut accounts = Vec::new();
    if clickhouse_uses_role(r.plan) {
        accounts.push(format!("{}:{CLICKHOUSE_ACCOUNT}", r.ns));
    }
    let creates_key = bucket.mode == BucketMode::S3 && bucket.kms_key_arn.is_none();
    let role = IamRole {
        name: irsa
            .role_name
            .clone()
            .unwrap_or_else(|| format!("{}-wandb", r.env)),
        oidc_provider_arn: irsa.oidc_provider_arn.clone(),
        service_accounts: accounts,
        buckets: grants(r.plan),
        kms_key_arn: bucket.kms_key_arn.clone(),
        kms: creates_key.then_some(Input::new(ids::KMS, outputs::ARN)),
    };
    b.service_role(role, Input::new(ids::IAM_ROLE, outputs::ARN));
}

impl IamRole {
    /// Its trust policy: the service accounts it names, through the OIDC provider.
    pub fn trust(&self) -> Value {
        trust_policy(&self.oidc_provider_arn, &self.service_accounts)
    }

    /// Its permissions, with the key's ARN (the plan's, or the `kms` step's).
    pub fn permissions(&self, key_arn: Option<&str>) -> Value {
        access_policy(partition(&self.oidc_provider_arn), &self.buckets, key_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_their_bucket_and_folder() {
        let g = |e| endpoint_grant(e).map(|g| (g.bucket, g.prefix));
        assert_eq!(
            g("https://s3.us-west-2.amazonaws.com/b1/weave/"),
            Some(("b1".into(), "weave/".into()))
        );
        assert_eq!(
            g("https://b2.s3.us-west-2.amazonaws.com/ch"),
            Some(("b2".into(), "ch/".into()))
        );
        assert_eq!(
            g("http://127.0.0.1:9000/b3"),
            Some(("b3".into(), String::new()))
        );
        assert_eq!(g("https://s3.amazonaws.com/"), None);
    }

    #[test]
    fn provider_arns_are_read_for_their_issuer() {
        let arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/AB";
        assert_eq!(
            provider_issuer(arn),
            Some("oidc.eks.us-west-2.amazonaws.com/id/AB")
        );
        assert_eq!(partition(arn), "aws");
        assert!(provider_issuer("arn:aws:iam::1234:oidc-provider/x").is_none());
        assert!(provider_issuer("arn:aws:iam::123456789012:role/x").is_none());
        assert!(provider_issuer(
            "arn:aws-cn:iam::123456789012:oidc-provider/oidc.eks.cn-north-1.amazonaws.com.cn/id/A"
        )
        .is_some());
    }

    #[test]
    fn the_policy_allows_objects_under_the_prefix_and_the_key_only() {
        let g = [BucketGrant {
            bucket: "b".into(),
            prefix: "wandb/".into(),
        }];
        let p = access_policy("aws", &g, Some("arn:aws:kms:us-west-2:1:key/k"));
        let s = p["Statement"].as_array().unwrap();
        assert_eq!(s[0]["Resource"], "arn:aws:s3:::b");
        assert_eq!(s[0]["Condition"]["StringLike"]["s3:prefix"][0], "wandb/*");
        assert_eq!(s[1]["Resource"], "arn:aws:s3:::b/wandb/*");
        assert_eq!(s[2]["Resource"], "arn:aws:kms:us-west-2:1:key/k");
        assert!(!p.to_string().contains("\"*\""), "no wildcard resource");
    }
}
