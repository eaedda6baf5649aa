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

#[cfg(test)]
mod tests {
    use crate::sections::testing::{at, ids, kind, steps, AWS};
    use crate::{ids, StepKind};

    const CACHE: &str = "  redis:\n    mode: elasticache\n";

    #[test]
    fn aws_resources_without_spec_aws_are_refused_at_spec() {
        let (path, line, _) = at(CACHE, "`spec.aws` is missing");
        assert_eq!((path.as_str(), line), ("spec", 4));
    }

    #[test]
    fn a_region_subnets_and_security_groups_are_checked_where_they_are_written() {
        let spec = format!("{CACHE}  aws:\n    region: mars-1\n    subnetIds: [subnet-0a, net-0b]\n    securityGroupIds: [sg-1, group-2]\n");
        assert_eq!(
            at(&spec, "is not an AWS region"),
            ("spec.aws.region".into(), 11, 13)
        );
        let (path, line, _) = at(&spec, "`net-0b` is not a subnet id");
        assert_eq!((path.as_str(), line), ("spec.aws.subnetIds[1]", 12));
        let (path, line, _) = at(&spec, "`group-2` is not a security group id");
        assert_eq!((path.as_str(), line), ("spec.aws.securityGroupIds[1]", 13));
    }

    #[test]
    fn subnet_groups_need_two_subnets() {
        let spec = format!("{CACHE}  aws:\n    region: us-west-2\n    subnetIds: [subnet-0a]\n");
        let (path, line, _) = at(&spec, "need at least two subnets");
        assert_eq!((path.as_str(), line), ("spec.aws.subnetIds", 12));
    }

    #[test]
    fn reserved_tag_prefixes_and_recovery_windows_are_refused() {
        let spec = format!(
            "{CACHE}{AWS}    tags: {{\"wbstack:env\": x, team: ml}}\n    secretRecoveryDays: 3\n"
        );
        let (path, _, _) = at(&spec, "the tag key prefix of `wbstack:env` is reserved");
        assert_eq!(path, "spec.aws.tags.wbstack:env");
        let (path, line, col) = at(&spec, "0 (delete at once) or 7 to 30 days");
        assert_eq!(
            (path.as_str(), line, col),
            ("spec.aws.secretRecoveryDays", 14, 25)
        );
    }

    #[test]
    fn the_key_is_compiled_only_when_something_is_encrypted_with_it() {
        assert!(!ids(&steps("")).contains(&ids::KMS));
        let s = steps(&format!(
            "{CACHE}{AWS}  bucket:\n    mode: none\n    kmsDeletionWindowDays: 9\n"
        ));
        let StepKind::KmsKey(k) = kind(&s, ids::KMS) else {
            panic!("not a KMS key")
        };
        assert_eq!(k.alias, "alias/dev-wandb");
        assert_eq!(k.deletion_window_days, 9);
    }
}
