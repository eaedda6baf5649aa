//! `spec.state`: a local directory or `s3://BUCKET/PREFIX`, in a bucket the plan does not make.

use crate::check::{s3_bucket_problem, Checker};
use crate::resolve::Resolved;

/// The bucket of an `s3://BUCKET/PREFIX` state location.
pub fn state_bucket(location: &str) -> Option<&str> {
    let rest = location.strip_prefix("s3://")?;
    Some(rest.split('/').next().unwrap_or(""))
}

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let Some(loc) = &r.spec.state else {
        return;
    };
    if loc.trim().is_empty() {
        c.value("spec.state", "the state location is empty");
        return;
    }
    let Some(bucket) = state_bucket(loc) else {
        if loc.contains("://") {
            c.value_help(
                "spec.state",
                format!("`{loc}` is neither a local directory nor an S3 location"),
                "use a directory or s3://BUCKET/PREFIX",
            );
        }
        return;
    };
    if let Some(problem) = s3_bucket_problem(bucket) {
        c.value(
            "spec.state",
            format!("the state bucket name `{bucket}` is not valid: it {problem}"),
        );
    } else if super::artifacts_bucket(r.plan).as_deref() == Some(bucket) {
        c.value_help(
            "spec.state",
            format!(
                "the state bucket `{bucket}` is the bucket this plan creates and `down` destroys"
            ),
            "keep the state in a bucket of its own, which wbstack never creates or deletes",
        );
    }
}

#[cfg(test)]
mod tests {
    const PLAN: &str = "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {name: dev}\nspec:\n  wandb:\n    host: https://wandb.example.com\n    license: {env: WANDB_LICENSE}\n";

    fn with(extra: &str) -> Result<crate::Plan, crate::PlanError> {
        crate::parse("p.yaml", &format!("{PLAN}{extra}"))
    }

    #[test]
    fn a_directory_or_an_s3_location_in_a_bucket_of_its_own() {
        assert_eq!(
            with("  state: s3://team-state/wbstack\n")
                .unwrap()
                .spec
                .state
                .as_deref(),
            Some("s3://team-state/wbstack")
        );
        assert!(with("  state: /var/lib/wbstack\n").is_ok());
        let e = with("  state: gs://team-state\n").unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].path.as_str()), (8, "spec.state"));
        let e = with("  state: s3://Team_State\n").unwrap_err();
        assert!(e.0[0].message.contains("not valid"), "{}", e.0[0].message);
        let e = with("  bucket: {mode: s3}\n  aws: {region: us-east-1}\n  state: s3://dev-wandb-artifacts/state\n")
            .unwrap_err();
        assert!(
            e.0[0].message.contains("the bucket this plan creates"),
            "{}",
            e.0[0].message
        );
    }
}
