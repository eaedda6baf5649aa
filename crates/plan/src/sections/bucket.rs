//! `spec.bucket`: none, an existing bucket, or an S3 bucket made by wbstack and encrypted with
//! the environment's KMS key (or a given one).

use crate::build::{placeholder, Builder};
use crate::check::{s3_bucket_problem, Checker};
use crate::ids::{self, outputs, Input};
use crate::kinds::S3Bucket;
use crate::model::BucketMode;
use crate::resolve::Resolved;
use serde_json::json;

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let b = &r.spec.bucket;
    match b.mode {
        BucketMode::S3 => check_s3(c, r),
        BucketMode::Existing => check_existing(c, r),
        BucketMode::None => {
            if b.name.is_some() {
                c.at(
                    "spec.bucket.name",
                    true,
                    "`name` is not used with mode none",
                    Some("set mode to s3 or existing"),
                );
            }
        }
    }
    if !(7..=30).contains(&b.kms_deletion_window_days) {
        c.value(
            "spec.bucket.kmsDeletionWindowDays",
            "a KMS key's deletion window is 7 to 30 days",
        );
    }
}

fn check_s3(c: &mut Checker, r: &Resolved) {
    let b = &r.spec.bucket;
    let name = bucket_name(r);
    if let Some(problem) = s3_bucket_problem(&name) {
        let path = if b.name.is_some() {
            "spec.bucket.name"
        } else {
            "metadata.name"
        };
        c.value(
            path,
            format!("the bucket name `{name}` is not valid: it {problem}"),
        );
    }
    if let Some(arn) = &b.kms_key_arn {
        if !arn.starts_with("arn:aws:kms:") && !arn.starts_with("arn:aws-") {
            c.value(
                "spec.bucket.kmsKeyArn",
                format!("`{arn}` is not a KMS key ARN"),
            );
        }
    }
}

fn check_existing(c: &mut Checker, r: &Resolved) {
    let b = &r.spec.bucket;
    match &b.name {
        None => c.value_help(
            "spec.bucket",
            "an existing bucket needs its name",
            "set spec.bucket.name",
        ),
        Some(n) if b.provider.as_deref().unwrap_or("s3") == "s3" => {
            if let Some(problem) = s3_bucket_problem(n) {
                c.value(
                    "spec.bucket.name",
                    format!("the bucket name `{n}` is not valid: it {problem}"),
                );
            }
        }
        _ => {}
    }
    if let Some(pv) = &b.provider {
        if !["s3", "gcs", "az"].contains(&pv.as_str()) {
            c.value(
                "spec.bucket.provider",
                format!("unknown provider `{pv}`; expected s3, gcs or az"),
            );
        }
    }
}

/// The bucket's name: the plan's, or `<environment>-wandb-artifacts`.
fn bucket_name(r: &Resolved) -> String {
    name_of(r.spec, r.env)
}

pub(super) fn name_of(spec: &crate::model::Spec, env: &str) -> String {
    spec.bucket
        .name
        .clone()
        .unwrap_or_else(|| format!("{env}-wandb-artifacts"))
}

/// The bucket the plan creates (and `down` destroys), if it creates one.
pub fn artifacts_bucket(plan: &crate::model::Plan) -> Option<String> {
    (plan.spec.bucket.mode == BucketMode::S3).then(|| name_of(&plan.spec, &plan.metadata.name))
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    let s = &r.spec.bucket;
    match s.mode {
        BucketMode::None => {}
        BucketMode::S3 => compile_s3(b, r),
        BucketMode::Existing => {
            b.set(
                "/global/defaultBucket",
                json!({"provider": s.provider.clone().unwrap_or_else(|| "s3".into()), "name": s.name, "region": s.region.clone().or_else(|| r.aws.region.clone())}),
            );
            if let Some(k) = &s.kms_key_arn {
                b.set("/global/defaultBucket/kmsKey", json!(k));
            }
        }
    }
    if let Some(cs) = &s.credentials_secret {
        b.set(
            "/global/bucket/secret",
            json!({"secretName": cs, "accessKeyName": "ACCESS_KEY", "secretKeyName": "SECRET_KEY"}),
        );
    }
}

fn compile_s3(b: &mut Builder, r: &Resolved) {
    let s = &r.spec.bucket;
    let name = bucket_name(r);
    let kms = Input::new(ids::KMS, outputs::ARN);
    b.step(
        ids::BUCKET,
        S3Bucket {
            name: name.clone(),
            versioning: s.versioning,
            kms_key_arn: s.kms_key_arn.clone(),
            kms: s.kms_key_arn.is_none().then_some(kms),
            cors_origins: vec![origin(&r.spec.wandb.host)],
        },
    );
    let region = Input::new(ids::BUCKET, outputs::REGION);
    let shown_region = s
        .region
        .clone()
        .or_else(|| r.aws.region.clone())
        .unwrap_or_else(|| placeholder(region));
    b.set(
        "/global/defaultBucket",
        json!({"provider": "s3", "name": name, "region": shown_region, "kmsKey": s.kms_key_arn.clone().unwrap_or_else(|| placeholder(kms))}),
    );
    b.bind("/global/defaultBucket/region", region);
    b.bind(
        "/global/defaultBucket/kmsKey",
        Input::new(ids::BUCKET, outputs::KMS_KEY_ARN),
    );
}

/// The origin of a URL (`https://host[:port]`), as a browser sends it.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use crate::sections::testing::{at, ids, kind, steps, values, AWS};
    use crate::{ids, Input, StepKind};
    use serde_json::json;

    #[test]
    fn a_name_without_a_bucket_and_a_bad_deletion_window_are_refused_where_written() {
        let spec = "  bucket:\n    mode: none\n    name: b\n    kmsDeletionWindowDays: 60\n";
        assert_eq!(
            at(spec, "`name` is not used with mode none"),
            ("spec.bucket.name".into(), 10, 5)
        );
        let (path, line, _) = at(spec, "deletion window is 7 to 30 days");
        assert_eq!(
            (path.as_str(), line),
            ("spec.bucket.kmsDeletionWindowDays", 11)
        );
    }

    #[test]
    fn bucket_names_are_checked_against_s3s_rules_where_they_come_from() {
        let named = format!("  bucket:\n    mode: s3\n    name: Bad_Name\n{AWS}");
        let (path, line, _) = at(&named, "the bucket name `Bad_Name` is not valid");
        assert_eq!((path.as_str(), line), ("spec.bucket.name", 10));
        let existing = "  bucket:\n    mode: existing\n";
        let (path, _, _) = at(existing, "an existing bucket needs its name");
        assert_eq!(path, "spec.bucket");
        let provider = "  bucket:\n    mode: existing\n    name: b1\n    provider: ftp\n";
        let (path, line, _) = at(provider, "unknown provider `ftp`");
        assert_eq!((path.as_str(), line), ("spec.bucket.provider", 11));
    }

    #[test]
    fn an_s3_bucket_is_encrypted_with_the_environments_key_and_admits_the_hosts_origin() {
        let s = steps(&format!(
            "  bucket:\n    mode: s3\n    versioning: true\n{AWS}"
        ));
        let StepKind::S3Bucket(b) = kind(&s, ids::BUCKET) else {
            panic!("not a bucket")
        };
        assert_eq!(b.name, "dev-wandb-artifacts");
        assert!(b.versioning);
        assert_eq!(b.kms, Some(Input::new(ids::KMS, crate::ids::outputs::ARN)));
        assert_eq!(b.cors_origins, ["https://wandb.example.com"]);
        let key = "arn:aws:kms:us-west-2:123456789012:key/k";
        let given = steps(&format!(
            "  bucket:\n    mode: s3\n    kmsKeyArn: {key}\n{AWS}"
        ));
        let StepKind::S3Bucket(b) = kind(&given, ids::BUCKET) else {
            panic!("not a bucket")
        };
        assert_eq!((b.kms, b.kms_key_arn.as_deref()), (None, Some(key)));
        assert!(!ids(&given).contains(&ids::KMS));
    }

    #[test]
    fn an_existing_bucket_and_its_credentials_go_to_the_chart() {
        let v = values("  bucket:\n    mode: existing\n    name: team-bucket\n    region: eu-west-1\n    credentialsSecret: keys\n");
        assert_eq!(
            v["global"]["defaultBucket"],
            json!({"provider": "s3", "name": "team-bucket", "region": "eu-west-1"})
        );
        assert_eq!(v["global"]["bucket"]["secret"]["secretName"], "keys");
    }

    #[test]
    fn the_origin_is_scheme_and_authority() {
        assert_eq!(
            super::origin("https://w.example.com:8443/a?b"),
            "https://w.example.com:8443"
        );
        assert_eq!(super::origin("w.example.com/x"), "https://w.example.com");
    }
}
