//! The IAM policy wbstack's own credentials need for a plan (`render --iam-policy`): every
//! action the AWS steps call, on the plan's own resources by name (the key by this
//! environment's tag, since a key's ARN is known only once it exists). Only what cannot be
//! scoped is on `*`: who is calling, creating a key (then only with this environment's tag),
//! and listing keys and aliases.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use wbstack_plan::{Side, StepPlan};

/// The environment tag wbstack puts on every AWS resource.
const ENV_TAG: &str = "wbstack:environment";

pub(crate) fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    let mut a: Vec<&str> = actions.to_vec();
    a.sort_unstable();
    a.dedup();
    json!({"Sid": sid, "Effect": "Allow", "Action": a, "Resource": resources})
}

fn with_condition(mut s: Value, c: Value) -> Value {
    s["Condition"] = c;
    s
}

/// The policy for a compiled plan of environment `env`, with its state in `state`
/// (`s3://BUCKET/PREFIX`), if there.
pub fn wbstack_policy(steps: &[StepPlan], env: &str, state: Option<&str>) -> Value {
    let mut st = vec![statement(
        "WhoIsCalling",
        &["sts:GetCallerIdentity"],
        vec!["*".into()],
    )];
    let mut service_roles = BTreeSet::new();
    for s in steps {
        if let Side::Aws(k) = s.kind.side() {
            let g = crate::kind(k).grants(env);
            st.extend(g.statements);
            service_roles.extend(g.service_role);
        }
    }
    if !service_roles.is_empty() {
        let names: Vec<&str> = service_roles.into_iter().collect();
        st.push(with_condition(
            statement(
                "ServiceLinkedRoles",
                &["iam:CreateServiceLinkedRole"],
                vec!["arn:aws:iam::*:role/aws-service-role/*".into()],
            ),
            json!({"StringEquals": {"iam:AWSServiceName": names}}),
        ));
    }
    if let Some(s) = state.and_then(|s| s.strip_prefix("s3://")) {
        st.extend(state_store(s));
    }
    json!({"Version": "2012-10-17", "Statement": dedup_sids(st)})
}

/// A statement id's part made of a name's letters and digits.
fn st_id(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            // `p` is not empty (filtered above): there is a first character.
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Statement ids are unique: a repeated one gets a number.
fn dedup_sids(mut st: Vec<Value>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    for s in &mut st {
        let base = s["Sid"].as_str().unwrap_or("S").to_owned();
        let mut sid = base.clone();
        let mut n = 2;
        while !seen.insert(sid.clone()) {
            sid = format!("{base}{n}");
            n += 1;
        }
        s["Sid"] = json!(sid);
    }
    st
}

pub(crate) fn kms(alias: &str, env: &str) -> Vec<Value> {
    let tagged = json!({"StringEquals": {format!("aws:ResourceTag/{ENV_TAG}"): env}});
    vec![
        statement(
            "KmsList",
            &["kms:ListAliases", "kms:ListKeys"],
            vec!["*".into()],
        ),
        with_condition(
            statement(
                "KmsCreateTagged",
                &["kms:CreateKey", "kms:TagResource"],
                vec!["*".into()],
            ),
            json!({"StringEquals": {format!("aws:RequestTag/{ENV_TAG}"): env}}),
        ),
        with_condition(
            statement(
                "KmsKeyOfThisEnvironment",
                &[
                    "kms:DescribeKey",
                    "kms:ListResourceTags",
                    "kms:EnableKeyRotation",
                    "kms:GetKeyRotationStatus",
                    "kms:GetKeyPolicy",
                    "kms:PutKeyPolicy",
                    "kms:ScheduleKeyDeletion",
                    "kms:CreateGrant",
                ],
                vec!["arn:aws:kms:*:*:key/*".into()],
            ),
            tagged,
        ),
        // Teardown keeps the key while it encrypts a kept snapshot: it lists them.
        statement(
            "SnapshotsUnderTheKey",
            &[
                "rds:DescribeDBClusterSnapshots",
                "rds:DescribeDBSnapshots",
                "elasticache:DescribeSnapshots",
            ],
            vec![
                "arn:aws:rds:*:*:cluster-snapshot:*".into(),
                "arn:aws:rds:*:*:snapshot:*".into(),
                "arn:aws:elasticache:*:*:snapshot:*".into(),
            ],
        ),
        // An alias is made and removed with permission on it and on its key.
        statement(
            "KmsAlias",
            &["kms:CreateAlias", "kms:DeleteAlias"],
            vec![
                format!("arn:aws:kms:*:*:{alias}"),
                "arn:aws:kms:*:*:key/*".into(),
            ],
        ),
        // The key's administrator: the caller's role, as IAM names it (path included).
        statement(
            "KmsAdministratorRole",
            &["iam:GetRole"],
            vec!["arn:aws:iam::*:role/*".into()],
        ),
    ]
}

/// The security group of the database and the cache: made only with this environment's tag,
/// changed and deleted only while it carries it. Describing cannot be scoped.
pub(crate) fn security_group(env: &str) -> Vec<Value> {
    let group = "arn:aws:ec2:*:*:security-group/*".to_owned();
    vec![
        statement(
            "Ec2Describe",
            &["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets"],
            vec!["*".into()],
        ),
        statement(
            "Ec2GroupInVpc",
            &["ec2:CreateSecurityGroup"],
            vec!["arn:aws:ec2:*:*:vpc/*".into()],
        ),
        with_condition(
            statement(
                "Ec2GroupCreateTagged",
                &["ec2:CreateSecurityGroup"],
                vec![group.clone()],
            ),
            json!({"StringEquals": {format!("aws:RequestTag/{ENV_TAG}"): env}}),
        ),
        with_condition(
            statement(
                "Ec2GroupTagOnCreate",
                &["ec2:CreateTags"],
                vec![group.clone()],
            ),
            json!({"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}}),
        ),
        with_condition(
            statement(
                "Ec2GroupOfThisEnvironment",
                &[
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupEgress",
                    "ec2:DeleteSecurityGroup",
                ],
                vec![group],
            ),
            json!({"StringEquals": {format!("aws:ResourceTag/{ENV_TAG}"): env}}),
        ),
    ]
}

pub(crate) fn bucket(name: &str) -> Vec<Value> {
    vec![
        statement(
            "ArtifactsBucket",
            &[
                "s3:CreateBucket",
                "s3:DeleteBucket",
                "s3:ListBucket",
                "s3:ListBucketVersions",
                "s3:GetEncryptionConfiguration",
                "s3:PutEncryptionConfiguration",
                "s3:GetBucketPublicAccessBlock",
                "s3:PutBucketPublicAccessBlock",
                "s3:GetBucketOwnershipControls",
                "s3:PutBucketOwnershipControls",
                "s3:GetBucketCORS",
                "s3:PutBucketCORS",
                "s3:GetBucketPolicy",
                "s3:PutBucketPolicy",
                "s3:GetBucketVersioning",
                "s3:PutBucketVersioning",
                "s3:GetBucketTagging",
                "s3:PutBucketTagging",
            ],
            vec![format!("arn:aws:s3:::{name}")],
        ),
        // Teardown empties it, every version.
        statement(
            "ArtifactsBucketObjects",
            &["s3:DeleteObject", "s3:DeleteObjectVersion"],
            vec![format!("arn:aws:s3:::{name}/*")],
        ),
    ]
}

pub(crate) fn db_parameter_groups(name: &str) -> Vec<Value> {
    vec![statement(
        "DbParameterGroups",
        &[
            "rds:CreateDBParameterGroup",
            "rds:ModifyDBParameterGroup",
            "rds:DeleteDBParameterGroup",
            "rds:DescribeDBParameterGroups",
            "rds:DescribeDBParameters",
            "rds:CreateDBClusterParameterGroup",
            "rds:ModifyDBClusterParameterGroup",
            "rds:DeleteDBClusterParameterGroup",
            "rds:DescribeDBClusterParameterGroups",
            "rds:DescribeDBClusterParameters",
            "rds:AddTagsToResource",
            "rds:ListTagsForResource",
        ],
        vec![
            format!("arn:aws:rds:*:*:pg:{name}"),
            format!("arn:aws:rds:*:*:cluster-pg:{name}-cluster"),
        ],
    )]
}

pub(crate) fn database(id: &str) -> Vec<Value> {
    vec![statement(
        "Database",
        &[
            "rds:CreateDBCluster",
            "rds:ModifyDBCluster",
            "rds:FailoverDBCluster",
            "rds:DeleteDBCluster",
            "rds:DescribeDBClusters",
            "rds:CreateDBInstance",
            "rds:ModifyDBInstance",
            "rds:DeleteDBInstance",
            "rds:DescribeDBInstances",
            "rds:CreateDBClusterSnapshot",
            "rds:CreateDBSnapshot",
            "rds:AddTagsToResource",
            "rds:ListTagsForResource",
        ],
        vec![
            format!("arn:aws:rds:*:*:cluster:{id}"),
            format!("arn:aws:rds:*:*:db:{id}"),
            format!("arn:aws:rds:*:*:db:{id}-*"),
            format!("arn:aws:rds:*:*:cluster-snapshot:{id}-final-*"),
            format!("arn:aws:rds:*:*:snapshot:{id}-final-*"),
            // What a new database names: its subnet group, parameter and option groups.
            "arn:aws:rds:*:*:subgrp:*".into(),
            "arn:aws:rds:*:*:pg:*".into(),
            "arn:aws:rds:*:*:cluster-pg:*".into(),
            "arn:aws:rds:*:*:og:*".into(),
        ],
    )]
}

/// Restoring `id` from a point in time or a snapshot of another cluster.
pub(crate) fn db_restore(id: &str, r: &wbstack_plan::DbRestore) -> Value {
    let mut resources = vec![
        format!("arn:aws:rds:*:*:cluster:{id}"),
        format!("arn:aws:rds:*:*:cluster:{}", r.source),
        "arn:aws:rds:*:*:subgrp:*".into(),
        "arn:aws:rds:*:*:cluster-pg:*".into(),
    ];
    if let Some(snapshot) = &r.snapshot {
        resources.push(format!("arn:aws:rds:*:*:cluster-snapshot:{snapshot}"));
    }
    statement(
        "DatabaseRestore",
        &[
            "rds:RestoreDBClusterToPointInTime",
            "rds:RestoreDBClusterFromSnapshot",
            "rds:AddTagsToResource",
        ],
        resources,
    )
}

/// Seeding a group from a snapshot (of the source's group, or the one named).
pub(crate) fn cache_seed() -> Value {
    statement(
        "CacheSeed",
        &[
            "elasticache:DescribeSnapshots",
            "elasticache:CreateReplicationGroup",
        ],
        // DescribeSnapshots lists them all; the group is made from the one found.
        vec!["arn:aws:elasticache:*:*:snapshot:*".into()],
    )
}

pub(crate) fn redis(id: &str) -> Vec<Value> {
    vec![statement(
        "Redis",
        &[
            "elasticache:CreateReplicationGroup",
            "elasticache:ModifyReplicationGroup",
            "elasticache:DeleteReplicationGroup",
            "elasticache:DescribeReplicationGroups",
            "elasticache:IncreaseReplicaCount",
            "elasticache:DecreaseReplicaCount",
            "elasticache:DescribeCacheClusters",
            "elasticache:AddTagsToResource",
            "elasticache:ListTagsForResource",
            "elasticache:CreateSnapshot",
        ],
        vec![
            format!("arn:aws:elasticache:*:*:replicationgroup:{id}"),
            format!("arn:aws:elasticache:*:*:cluster:{id}-*"),
            // The final snapshot a teardown keeps.
            format!("arn:aws:elasticache:*:*:snapshot:{id}-final-*"),
            // What a new group names: its subnet group and the engine's default parameters.
            "arn:aws:elasticache:*:*:subnetgroup:*".into(),
            "arn:aws:elasticache:*:*:parametergroup:*".into(),
        ],
    )]
}

fn state_store(location: &str) -> Vec<Value> {
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    let objects = if prefix.is_empty() {
        format!("arn:aws:s3:::{bucket}/*")
    } else {
        format!("arn:aws:s3:::{bucket}/{}/*", prefix.trim_end_matches('/'))
    };
    vec![
        statement(
            "StateBucket",
            &[
                "s3:ListBucket",
                "s3:GetEncryptionConfiguration",
                "s3:GetBucketVersioning",
                "s3:GetBucketPublicAccessBlock",
            ],
            vec![format!("arn:aws:s3:::{bucket}")],
        ),
        statement(
            "StateObjects",
            &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            vec![objects],
        ),
        // State objects are written with SSE-KMS.
        with_condition(
            statement(
                "StateEncryption",
                &["kms:GenerateDataKey", "kms:Decrypt"],
                vec!["arn:aws:kms:*:*:key/*".into()],
            ),
            json!({"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}),
        ),
    ]
}

pub(crate) fn db_subnet_group(name: &str) -> Vec<Value> {
    vec![statement(
        "DbSubnetGroup",
        &[
            "rds:CreateDBSubnetGroup",
            "rds:DeleteDBSubnetGroup",
            "rds:DescribeDBSubnetGroups",
            "rds:AddTagsToResource",
            "rds:ListTagsForResource",
        ],
        vec![format!("arn:aws:rds:*:*:subgrp:{name}")],
    )]
}

pub(crate) fn secret(name: &str) -> Vec<Value> {
    vec![statement(
        &format!("Secret{}", st_id(name)),
        &[
            "secretsmanager:CreateSecret",
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:DeleteSecret",
            "secretsmanager:RestoreSecret",
            "secretsmanager:TagResource",
        ],
        vec![format!("arn:aws:secretsmanager:*:*:secret:{name}-??????")],
    )]
}

pub(crate) fn cache_subnet_group(name: &str) -> Vec<Value> {
    vec![statement(
        "CacheSubnetGroup",
        &[
            "elasticache:CreateCacheSubnetGroup",
            "elasticache:DeleteCacheSubnetGroup",
            "elasticache:DescribeCacheSubnetGroups",
            "elasticache:AddTagsToResource",
            "elasticache:ListTagsForResource",
        ],
        vec![format!("arn:aws:elasticache:*:*:subnetgroup:{name}")],
    )]
}

pub(crate) fn pods_role(name: &str) -> Vec<Value> {
    vec![statement(
        "PodsRole",
        &[
            "iam:CreateRole",
            "iam:GetRole",
            "iam:DeleteRole",
            "iam:TagRole",
            "iam:UpdateAssumeRolePolicy",
            "iam:PutRolePolicy",
            "iam:GetRolePolicy",
            "iam:DeleteRolePolicy",
            "iam:ListRolePolicies",
            "iam:ListRoleTags",
        ],
        vec![format!("arn:aws:iam::*:role/{name}")],
    )]
}
