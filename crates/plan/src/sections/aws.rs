//! `spec.aws`: region, endpoint, subnets, security groups, tags; and the KMS key every AWS
//! resource is encrypted with.

use crate::build::Builder;
use crate::check::{is_region, Checker};
use crate::ids;
use crate::kinds::KmsKey;
use crate::model::AwsSpec;
use crate::resolve::Resolved;

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    match &r.spec.aws {
        None if r.needs_aws() => c.value_help(
            "spec",
            "AWS resources are planned but `spec.aws` is missing",
            "add spec.aws with region and subnetIds",
        ),
        None => {}
        Some(a) => check_aws(c, r, a),
    }
}

fn check_aws(c: &mut Checker, r: &Resolved, a: &AwsSpec) {
    if let Some(region) = &a.region {
        if !is_region(region) {
            c.value(
                "spec.aws.region",
                format!("`{region}` is not an AWS region (like us-west-2)"),
            );
        }
    }
    if let Some(ep) = &a.endpoint {
        if !(ep.starts_with("http://") || ep.starts_with("https://")) {
            c.value("spec.aws.endpoint", format!("`{ep}` is not an http(s) URL"));
        }
    }
    if r.needs_subnets() && a.subnet_ids.len() < 2 {
        c.value_help(
            "spec.aws.subnetIds",
            "RDS and ElastiCache subnet groups need at least two subnets",
            "list subnets in two or more availability zones",
        );
    }
    for (i, sn) in a.subnet_ids.iter().enumerate() {
        if !sn.starts_with("subnet-") {
            c.value(
                &format!("spec.aws.subnetIds[{i}]"),
                format!("`{sn}` is not a subnet id (subnet-...)"),
            );
        }
    }
    for (i, sg) in a.security_group_ids.iter().enumerate() {
        if !sg.starts_with("sg-") {
            c.value(
                &format!("spec.aws.securityGroupIds[{i}]"),
                format!("`{sg}` is not a security group id (sg-...)"),
            );
        }
    }
    check_tags(c, a);
    if a.secret_recovery_days != 0 && !(7..=30).contains(&a.secret_recovery_days) {
        c.value(
            "spec.aws.secretRecoveryDays",
            "0 (delete at once) or 7 to 30 days",
        );
    }
}

fn check_tags(c: &mut Checker, a: &AwsSpec) {
    for (k, v) in &a.tags {
        let path = format!("spec.aws.tags.{k}");
        if k.is_empty() || k.len() > 128 {
            c.value(&path, "a tag key has 1 to 128 characters");
        } else if k.starts_with("aws:") || k.starts_with("wbstack:") {
            c.at(
                &path,
                true,
                format!("the tag key prefix of `{k}` is reserved"),
                Some("aws: belongs to AWS and wbstack: to wbstack's own ownership tags"),
            );
        }
        if v.len() > 256 {
            c.value(&path, "a tag value has at most 256 characters");
        }
    }
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    if r.needs_kms() {
        b.step(
            ids::KMS,
            KmsKey {
                alias: format!("alias/{}-wandb", r.env),
                deletion_window_days: r.spec.bucket.kms_deletion_window_days,
            },
        );
    }
}
