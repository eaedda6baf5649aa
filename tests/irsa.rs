//! IAM roles for service accounts, against moto's IAM and the emulated cluster: the production
//! plan with ClickHouse on an S3 disk gets one role whose trust names exactly the service
//! accounts of what the chart installs and ClickHouse's, whose policy allows the bucket's
//! prefixes and the key only; the accounts carry its ARN; a hand edit of the policy is shown by
//! `plan` and repaired by `up`; `down` removes it. Without IRSA, `plan` says what the nodes'
//! role needs.

use serde_json::Value;
use wbstack_test_support::moto;
use wbstack_test_support::{last_json, Env, Exited};

const PROVIDER: &str =
    "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const ISSUER: &str = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

/// A URL-encoded policy document, as IAM returns it.
fn doc(text: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap()
}

/// The production plan, its ClickHouse on an S3 disk in the artifacts bucket, W&B under a path;
/// Redis in the cluster (moto never finishes deleting a replication group).
fn plan_text(moto: &moto::Moto) -> String {
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "")
        .replace("  redis:\n    mode: elasticache\n", "  redis:\n    mode: in-cluster\n")
        .replace(
            "    versioning: true\n",
            "    versioning: true\n    path: wandb\n",
        )
        .replace(
            "    user: wandb\n  aws:",
            "    user: wandb\n    s3:\n      endpoint: https://s3.us-west-2.amazonaws.com/wandb-prod-artifacts/clickhouse/\n  aws:",
        );
    assert!(plan.contains("path: wandb") && plan.contains("/clickhouse/"));
    moto.production_plan(&plan)
}

#[test]
fn irsa_gives_the_pods_one_role_for_the_bucket_and_key_and_its_drift_is_repaired() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let prod = env.plan_from("prod.yaml", &plan_text(&moto));
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        moto::Moto::point(&moto.url, &mut c);
        c.output().unwrap()
    };
    run(&["up", "--plan", &prod]).succeeded();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    let role = |name: &str| {
        rt.block_on(async {
            let r = aws.iam.get_role().role_name(name).send().await.ok()?;
            let r = r.role().unwrap().clone();
            let p = aws
                .iam
                .get_role_policy()
                .role_name(name)
                .policy_name("wbstack-access")
                .send()
                .await
                .unwrap();
            Some((
                r.arn().to_owned(),
                doc(r.assume_role_policy_document().unwrap()),
                doc(p.policy_document()),
            ))
        })
    };
    let (arn, trust, policy) = role("wandb-prod-wandb").expect("the role wbstack made");

    // Trust: the cluster's provider, for STS, for exactly these service accounts.
    let s = &trust["Statement"][0];
    assert_eq!(s["Principal"]["Federated"], PROVIDER, "{trust}");
    assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
    let cond = &s["Condition"]["StringEquals"];
    assert_eq!(
        cond[format!("{ISSUER}:aud")],
        "sts.amazonaws.com",
        "{trust}"
    );
    let subjects: Vec<&str> = cond[format!("{ISSUER}:sub")]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for sa in [
        "wbstack-clickhouse",
        "wandb-prod-app",
        "wandb-prod-weave",
        "wandb-prod-parquet",
    ] {
        let subject = format!("system:serviceaccount:wandb:{sa}");
        assert!(
            subjects.contains(&subject.as_str()),
            "{subject} in {subjects:?}"
        );
    }
    assert!(
        subjects
            .iter()
            .all(|s| s.starts_with("system:serviceaccount:wandb:") && !s.contains('*')),
        "{subjects:?}"
    );

    // Permissions: W&B's prefix and ClickHouse's folder of the bucket, and the key.
    let key = rt.block_on(async {
        let k = aws
            .kms
            .describe_key()
            .key_id("alias/wandb-prod-wandb")
            .send()
            .await
            .unwrap();
        k.key_metadata().unwrap().arn().unwrap().to_owned()
    });
    let statements = policy["Statement"].as_array().unwrap();
    let resources: Vec<String> = statements
        .iter()
        .map(|s| s["Resource"].to_string())
        .collect();
    assert_eq!(
        resources,
        [
            "\"arn:aws:s3:::wandb-prod-artifacts\"",
            "\"arn:aws:s3:::wandb-prod-artifacts/wandb/*\"",
            "\"arn:aws:s3:::wandb-prod-artifacts\"",
            "\"arn:aws:s3:::wandb-prod-artifacts/clickhouse/*\"",
            &format!("\"{key}\""),
        ],
        "{policy}"
    );
    assert_eq!(
        statements[0]["Condition"]["StringLike"]["s3:prefix"][0],
        "wandb/*"
    );
    assert_eq!(
        statements[4]["Action"],
        serde_json::json!(["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"])
    );
    let tags = rt.block_on(async {
        let t = aws
            .iam
            .list_role_tags()
            .role_name("wandb-prod-wandb")
            .send()
            .await
            .unwrap();
        t.tags()
            .iter()
            .map(|t| format!("{}={}", t.key(), t.value()))
            .collect::<Vec<_>>()
    });
    assert!(
        tags.contains(&"wbstack:environment=wandb-prod".to_owned()),
        "{tags:?}"
    );

    // The accounts carry the role: W&B's through the chart's values, ClickHouse's directly.
    let v: Value = serde_json::from_str(&env.kubectl(&[
        "get",
        "wandb",
        "wandb-prod",
        "-n",
        "wandb",
        "-o",
        "json",
    ]))
    .unwrap();
    let values = &v["spec"]["values"];
    for c in ["app", "weave", "parquet", "console"] {
        assert_eq!(
            values[c]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"], arn,
            "{c}"
        );
    }
    assert_eq!(values["global"]["defaultBucket"]["path"], "wandb");
    let sa = env.kubectl(&[
        "get",
        "serviceaccount",
        "wbstack-clickhouse",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.metadata.annotations.eks\\.amazonaws\\.com/role-arn}",
    ]);
    assert_eq!(sa, arn);
    let runs_as = env.kubectl(&[
        "get",
        "statefulset",
        "wbstack-clickhouse-shard0",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.spec.template.spec.serviceAccountName}",
    ]);
    assert_eq!(runs_as, "wbstack-clickhouse");
    let config = env.kubectl(&[
        "get",
        "configmap",
        "wbstack-clickhouse-config",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.data.wbstack\\.xml}",
    ]);
    assert!(
        config.contains("<use_environment_credentials>true</use_environment_credentials>"),
        "{config}"
    );

    // A converged re-run changes nothing.
    let out = run(&["up", "--plan", &prod, "--output", "json"]);
    let report = last_json(&out);
    assert_eq!(report["report"]["stats"]["apply_calls"], 0, "{report}");

    // Someone widens the policy by hand: `plan` shows it, `up` puts it back.
    rt.block_on(async {
        aws.iam
            .put_role_policy()
            .role_name("wandb-prod-wandb")
            .policy_name("wbstack-access")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Sid":"Objects0","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
    });
    let out = run(&["plan", "--plan", &prod, "--detailed-exitcode"]).exited(2);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("~ wbstack-access.Objects0: \"s3:*\" on \"*\""),
        "{shown}"
    );
    assert!(shown.contains("~ wbstack-access.Key: (none) ->"), "{shown}");
    run(&["up", "--plan", &prod]).succeeded();
    assert_eq!(
        role("wandb-prod-wandb").unwrap().2,
        policy,
        "the policy is the plan's again"
    );
    let out = run(&["plan", "--plan", &prod, "--detailed-exitcode"]).succeeded();
    // Under IRSA `plan` has no node-role advice.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("nodes' IAM role"));

    run(&["down", "--env", "wandb-prod"]).succeeded();
    assert!(role("wandb-prod-wandb").is_none(), "the role is gone");
}

#[test]
fn without_irsa_plan_says_what_the_node_role_needs() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let text_without = plan_text(&moto).replace(
        &format!("    irsa:\n      oidcProviderArn: {PROVIDER}\n"),
        "",
    );
    assert!(!text_without.contains("irsa:"));
    let prod = env.plan_from("prod.yaml", &text_without);
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        moto::Moto::point(&moto.url, &mut c);
        c.output().unwrap()
    };
    let out = run(&["plan", "--plan", &prod]).succeeded();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Without spec.aws.irsa, W&B and ClickHouse use the nodes' IAM role"),
        "{shown}"
    );
    assert!(
        shown.contains("arn:aws:s3:::wandb-prod-artifacts/wandb/*"),
        "{shown}"
    );
    // The key does not exist yet: it is named by the step that makes it.
    assert!(shown.contains("<aws.kms: arn>"), "{shown}");
    let out = run(&["plan", "--plan", &prod, "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["nodeRolePolicy"]["Statement"];
    assert_eq!(
        p[3]["Resource"], "arn:aws:s3:::wandb-prod-artifacts/clickhouse/*",
        "{v}"
    );
    assert!(!v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["kind"] == "aws.iam.role"));
}

#[test]
fn irsa_settings_that_cannot_work_are_refused_at_their_line_before_any_request() {
    let env = Env::new(50);
    let recorder_moto = moto::Moto::start();
    let recorder = moto::Recorder::start(&recorder_moto);
    let base = plan_text(&recorder_moto);
    let cases = [
        (
            base.replace(PROVIDER, "arn:aws:iam::123456789012:role/not-a-provider"),
            "spec.aws.irsa.oidcProviderArn",
            "is not an IAM OIDC provider ARN",
        ),
        (
            base.replace(
                "    path: wandb\n",
                "    path: wandb\n    credentialsSecret: keys\n",
            ),
            "spec.bucket.credentialsSecret",
            "take the role's credentials, not access keys",
        ),
        (
            base.replace(
                "      oidcProviderArn:",
                "      roleName: \"no spaces allowed\"\n      oidcProviderArn:",
            ),
            "spec.aws.irsa.roleName",
            "is not an IAM role name",
        ),
    ];
    for (text_, path, message) in cases {
        let p = env.plan_from("bad.yaml", &text_);
        let mut c = env.cmd(&["up", "--plan", &p]);
        moto::Moto::point(&recorder.url, &mut c);
        let out = c.output().unwrap().exited(2);
        let err = String::from_utf8_lossy(&out.stderr);
        let line = text_
            .lines()
            .position(|l| l.contains(path.rsplit('.').next().unwrap()))
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!("bad.yaml:{line}:")),
            "{path} at line {line}: {err}"
        );
        assert!(err.contains(message), "{err}");
    }
    assert!(
        recorder.ops().is_empty(),
        "no request: {:?}",
        recorder.ops()
    );
}
