//! The artifacts bucket: SSE-KMS with bucket keys, every public-access block, object ownership
//! enforced, a TLS-only policy, the CORS W&B needs (for the plan's host only), versioning per
//! plan, tags. Those settings are observed (`s3_security`): a hand edit is drift. Teardown
//! empties every version.

use crate::clients::{classify, Aws};
use crate::kind::{AwsStepKind, Grants};
use crate::own::{has_code, not_owned, Tolerate};
use crate::s3_security as security;
use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CorsConfiguration, CorsRule,
    CreateBucketConfiguration, Delete, ObjectIdentifier, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use serde_json::json;
use wbstack_engine::{Action, Change, Fingerprint, Observation, Outputs, Step, StepCtx, StepError};
use wbstack_plan::{Kind, S3Bucket};

const NO_SUCH_BUCKET: &str = "NoSuchBucket";

/// An S3 bucket encrypted with a KMS key.
pub struct S3BucketStep {
    aws: Aws,
    step: String,
    spec: S3Bucket,
}

fn err(e: impl std::fmt::Display) -> StepError {
    StepError::permanent(e.to_string())
}

impl S3BucketStep {
    pub fn new(aws: Aws, step: &str, spec: S3Bucket) -> Self {
        S3BucketStep {
            aws,
            step: step.to_owned(),
            spec,
        }
    }

    /// The given key, or the one the `kms` input names.
    fn kms(&self, ctx: &StepCtx) -> Result<String, StepError> {
        match (&self.spec.kms_key_arn, &self.spec.kms) {
            (Some(k), _) => Ok(k.clone()),
            (None, Some(i)) => ctx.need_str(i.step, i.output).map(str::to_owned),
            (None, None) => Err(StepError::permanent(format!(
                "bucket {} has no KMS key",
                self.spec.name
            ))),
        }
    }

    fn outputs(&self, kms: &str) -> Outputs {
        [
            ("name", json!(self.spec.name)),
            ("region", json!(self.aws.region)),
            ("arn", json!(format!("arn:aws:s3:::{}", self.spec.name))),
            ("kms_key_arn", json!(kms)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn tags(&self) -> Result<Option<Vec<(String, String)>>, StepError> {
        match self
            .aws
            .s3
            .get_bucket_tagging()
            .bucket(&self.spec.name)
            .send()
            .await
        {
            Ok(t) => Ok(Some(
                t.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
            )),
            Err(e) if has_code(&e, &["NoSuchTagSet"]) => Ok(Some(Vec::new())),
            Err(e) if has_code(&e, &[NO_SUCH_BUCKET]) => Ok(None),
            Err(e) => Err(classify(e, "GetBucketTagging", &self.spec.name)),
        }
    }

    async fn configure(&self, kms: &str) -> Result<(), StepError> {
        let b = &self.spec.name;
        let sse = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::AwsKms)
                            .kms_master_key_id(kms)
                            .build()
                            .map_err(err)?,
                    )
                    .bucket_key_enabled(true)
                    .build(),
            )
            .build()
            .map_err(err)?;
        self.aws
            .s3
            .put_bucket_encryption()
            .bucket(b)
            .server_side_encryption_configuration(sse)
            .send()
            .await
            .map_err(|e| classify(e, "PutBucketEncryption", b))?;
        let block = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        self.aws
            .s3
            .put_public_access_block()
            .bucket(b)
            .public_access_block_configuration(block)
            .send()
            .await
            .map_err(|e| classify(e, "PutPublicAccessBlock", b))?;
        let own = OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                    .build()
                    .map_err(err)?,
            )
            .build()
            .map_err(err)?;
        self.aws
            .s3
            .put_bucket_ownership_controls()
            .bucket(b)
            .ownership_controls(own)
            .send()
            .await
            .map_err(|e| classify(e, "PutBucketOwnershipControls", b))?;
        let cors = CorsConfiguration::builder()
            .cors_rules(
                CorsRule::builder()
                    .set_allowed_methods(Some(
                        security::CORS_METHODS
                            .iter()
                            .map(|m| m.to_string())
                            .collect(),
                    ))
                    .set_allowed_origins(Some(self.spec.cors_origins.clone()))
                    .allowed_headers("*")
                    .expose_headers("ETag")
                    .max_age_seconds(3000)
                    .build()
                    .map_err(err)?,
            )
            .build()
            .map_err(err)?;
        self.aws
            .s3
            .put_bucket_cors()
            .bucket(b)
            .cors_configuration(cors)
            .send()
            .await
            .map_err(|e| classify(e, "PutBucketCors", b))?;
        self.aws
            .s3
            .put_bucket_policy()
            .bucket(b)
            .policy(security::tls_only_policy(b).to_string())
            .send()
            .await
            .map_err(|e| classify(e, "PutBucketPolicy", b))?;
        let status = if self.spec.versioning {
            BucketVersioningStatus::Enabled
        } else {
            BucketVersioningStatus::Suspended
        };
        self.aws
            .s3
            .put_bucket_versioning()
            .bucket(b)
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .map_err(|e| classify(e, "PutBucketVersioning", b))?;
        let mut tagging = Tagging::builder();
        for (k, v) in self.aws.tags(&self.step) {
            tagging = tagging.tag_set(Tag::builder().key(k).value(v).build().map_err(err)?);
        }
        self.aws
            .s3
            .put_bucket_tagging()
            .bucket(b)
            .tagging(tagging.build().map_err(err)?)
            .send()
            .await
            .map_err(|e| classify(e, "PutBucketTagging", b))?;
        Ok(())
    }

    async fn security_changes(&self, kms: &str) -> Result<Vec<Change>, StepError> {
        let b = &self.spec.name;
        let want = security::desired(b, kms, &self.spec.cors_origins, self.spec.versioning);
        let live = security::observe(&self.aws, b).await?;
        Ok(security::changes(&live, &want))
    }

    /// Deletes every object version and delete marker, a page at a time.
    async fn empty(&self) -> Result<(), StepError> {
        loop {
            let page = self
                .aws
                .s3
                .list_object_versions()
                .bucket(&self.spec.name)
                .send()
                .await
                .tolerate(&[NO_SUCH_BUCKET], "ListObjectVersions", &self.spec.name)?;
            let Some(page) = page else {
                return Ok(());
            };
            let mut ids = Vec::new();
            for v in page.versions() {
                ids.push(
                    ObjectIdentifier::builder()
                        // Every version S3 lists has its key; an empty one is refused by S3.
                        .key(v.key().unwrap_or_default())
                        .set_version_id(v.version_id().map(str::to_owned))
                        .build()
                        .map_err(err)?,
                );
            }
            for m in page.delete_markers() {
                ids.push(
                    ObjectIdentifier::builder()
                        // Every delete marker S3 lists has its key; an empty one is refused by S3.
                        .key(m.key().unwrap_or_default())
                        .set_version_id(m.version_id().map(str::to_owned))
                        .build()
                        .map_err(err)?,
                );
            }
            if ids.is_empty() {
                return Ok(());
            }
            for chunk in ids.chunks(1000) {
                let del = Delete::builder()
                    .set_objects(Some(chunk.to_vec()))
                    .quiet(true)
                    .build()
                    .map_err(err)?;
                self.aws
                    .s3
                    .delete_objects()
                    .bucket(&self.spec.name)
                    .delete(del)
                    .send()
                    .await
                    .map_err(|e| classify(e, "DeleteObjects", &self.spec.name))?;
            }
        }
    }
}

#[async_trait]
impl Step for S3BucketStep {
    fn kind(&self) -> &str {
        S3Bucket::LABEL
    }
    async fn marked(&self, _ctx: &StepCtx) -> Result<bool, StepError> {
        // `observe` finds it Ready only when its tags are this step's, or the plan adopts it.
        Ok(!self.aws.adopts(&self.step))
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(
            "bucket",
            &self.spec.name,
            self.spec.versioning,
            &self.spec.kms_key_arn,
            &self.spec.cors_origins,
        ))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        match self
            .aws
            .s3
            .head_bucket()
            .bucket(&self.spec.name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => {
                let raw = format!("{e:?}");
                if has_code(&e, &["NotFound"]) || raw.contains("NotFound") || raw.contains("404") {
                    return Ok(Observation::Absent);
                }
                if raw.contains("403") || raw.contains("Forbidden") {
                    return Ok(Observation::Failed {
                        message: format!("bucket {} exists in another account", self.spec.name),
                    });
                }
                return Err(classify(e, "HeadBucket", &self.spec.name));
            }
        }
        // The journal saying the bucket is ours spares reading its tags; otherwise they decide.
        let recorded = ctx.previous().is_some_and(|p| p.get("name").is_some());
        if !(ctx.attempted() && recorded) {
            let Some(tags) = self.tags().await? else {
                return Ok(Observation::Absent);
            };
            if !self.aws.accepts(&self.step, &tags) {
                if ctx.attempted() {
                    // Ours, created by a run that died before tagging it: apply finishes it.
                    return Ok(Observation::Absent);
                }
                return Ok(not_owned("bucket", &self.spec.name, &self.aws));
            }
        }
        // Observed without its key step (a teardown, `plan` before the key exists): the bucket
        // is then judged without comparing its key.
        let kms = self.kms(ctx).unwrap_or_default();
        if self.aws.adopts(&self.step) || kms.is_empty() {
            return Ok(Observation::ready(self.outputs(&kms)));
        }
        // Its security settings as the plan has them, or drift that `up` restores.
        let drifted = !self.security_changes(&kms).await?.is_empty();
        Ok(Observation::Ready {
            outputs: self.outputs(&kms),
            fingerprint: Some(if drifted {
                Fingerprint::of(&("bucket drifted", &self.spec.name))
            } else {
                self.fingerprint()
            }),
        })
    }
    async fn changes(&self, ctx: &StepCtx) -> Result<Vec<Change>, StepError> {
        match self.kms(ctx) {
            Ok(kms) if !self.aws.adopts(&self.step) => self.security_changes(&kms).await,
            _ => Ok(Vec::new()),
        }
    }
    async fn apply(&self, ctx: &StepCtx, _a: Action) -> Result<(), StepError> {
        let kms = self.kms(ctx)?;
        let mut req = self.aws.s3.create_bucket().bucket(&self.spec.name);
        if self.aws.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.aws.region.as_str()))
                    .build(),
            );
        }
        req.send().await.tolerate(
            &["BucketAlreadyOwnedByYou"],
            "CreateBucket",
            &self.spec.name,
        )?;
        self.configure(&kms).await
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        let kms = self.kms(ctx)?;
        self.aws
            .s3
            .head_bucket()
            .bucket(&self.spec.name)
            .send()
            .await
            .map_err(|e| classify(e, "HeadBucket", &self.spec.name))?;
        Ok(self.outputs(&kms))
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        self.empty().await?;
        self.aws
            .s3
            .delete_bucket()
            .bucket(&self.spec.name)
            .send()
            .await
            .tolerate(&[NO_SUCH_BUCKET], "DeleteBucket", &self.spec.name)
            .map(|_| ())
    }
}

impl AwsStepKind for S3Bucket {
    fn step(&self, aws: Aws, id: &str) -> std::sync::Arc<dyn wbstack_engine::Step> {
        std::sync::Arc::new(S3BucketStep::new(aws, id, self.clone()))
    }
    fn grants(&self, _env: &str) -> Grants {
        Grants::only(crate::policy::bucket(&self.name))
    }
}
