//! The bucket probe against moto (S3 and KMS), behind the proxy that answers CORS preflights and
//! unknown or disabled SSE-KMS keys as S3 does: a round trip with the values' key and a browser's
//! preflight from the W&B host pass; a missing CORS rule, another origin, a key that does not
//! exist and a disabled key each fail, named.

use wbstack_test_support::moto;

use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use wbstack_verify::{Bucket, BucketTarget, Finding, Probe, S3Access, Verdict};

const ORIGIN: &str = "https://wandb.example.com";

fn probe(m: &moto::Moto, s3: &aws_sdk_s3::Client, key: &str, origin: &str) -> Bucket {
    Bucket {
        target: BucketTarget {
            name: "verify-artifacts".into(),
            region: "us-west-2".into(),
            kms_key: Some(key.into()),
            path: None,
        },
        access: S3Access {
            client: s3.clone(),
            who: "the test's keys".into(),
            not_the_pods: None,
        },
        origin: Some(origin.into()),
        endpoint: Some(m.url.clone()),
    }
}

fn verdicts(f: &[Finding]) -> Vec<Verdict> {
    f.iter().map(|f| f.verdict).collect()
}

#[tokio::test]
async fn the_bucket_round_trip_and_cors_pass_and_each_break_fails_alone() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let m = moto::Moto::start();
    let aws = m.aws("verify").await;
    m.create_bucket("verify-artifacts");
    let key = aws.kms.create_key().send().await.unwrap();
    let id = key.key_metadata().unwrap().key_id().to_owned();
    let key = key.key_metadata().unwrap().arn().unwrap().to_owned();
    let rule = CorsRule::builder()
        .allowed_origins(ORIGIN)
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_methods("PUT")
        .allowed_headers("*")
        .build()
        .unwrap();
    let cors = CorsConfiguration::builder()
        .cors_rules(rule)
        .build()
        .unwrap();
    aws.s3
        .put_bucket_cors()
        .bucket("verify-artifacts")
        .cors_configuration(cors)
        .send()
        .await
        .unwrap();

    let f = probe(&m, &aws.s3, &key, ORIGIN).run().await;
    assert_eq!(verdicts(&f), [Verdict::Pass, Verdict::Pass], "{f:#?}");
    assert!(f[0].seen.contains("encrypted aws:kms"), "{:?}", f[0]);
    assert!(f[1].seen.contains("PUT"), "{:?}", f[1]);
    assert!(
        m.keys("verify-artifacts", "").is_empty(),
        "the probe left its object"
    );

    // Another origin than the W&B host.
    let f = probe(&m, &aws.s3, &key, "https://other.example.com")
        .run()
        .await;
    assert_eq!(verdicts(&f), [Verdict::Pass, Verdict::Fail], "{f:#?}");

    // A key that does not exist.
    let missing =
        key.rsplit_once('/').unwrap().0.to_owned() + "/00000000-0000-4000-8000-000000000000";
    let f = probe(&m, &aws.s3, &missing, ORIGIN).run().await;
    assert_eq!(verdicts(&f), [Verdict::Fail, Verdict::Pass], "{f:#?}");
    assert!(f[0].seen.contains("KMS.NotFoundException"), "{:?}", f[0]);

    // A disabled key.
    aws.kms.disable_key().key_id(&id).send().await.unwrap();
    let f = probe(&m, &aws.s3, &key, ORIGIN).run().await;
    assert_eq!(verdicts(&f), [Verdict::Fail, Verdict::Pass], "{f:#?}");
    assert!(f[0].seen.contains("KMS.DisabledException"), "{:?}", f[0]);
    aws.kms.enable_key().key_id(&id).send().await.unwrap();

    // No CORS rule at all.
    aws.s3
        .delete_bucket_cors()
        .bucket("verify-artifacts")
        .send()
        .await
        .unwrap();
    let f = probe(&m, &aws.s3, &key, ORIGIN).run().await;
    assert_eq!(verdicts(&f), [Verdict::Pass, Verdict::Fail], "{f:#?}");
    assert!(f[1].seen.starts_with("refused: 403"), "{:?}", f[1]);
}
