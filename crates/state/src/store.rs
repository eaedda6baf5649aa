//! The state bucket and one environment's place in it.
//!
//! Under `s3://BUCKET/PREFIX/ENV/` an environment keeps `plan.yaml` (the copy `up` saved),
//! `lock.json` (the lease, see [`crate::lock`]) and `journal/` (see [`crate::journal`]).

use crate::client::{call_error, is_not_found, StoreError};
use crate::inspect::{check_owner, inspect, Inspection};
use crate::location::S3Url;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

/// A bucket holding environments' state, checked to exist.
#[derive(Clone, Debug)]
pub struct StateBucket {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) url: S3Url,
    inspection: Inspection,
}

impl StateBucket {
    /// Connects and checks the bucket: it exists, this account owns it, and what it lacks
    /// (versions, public-access blocks, KMS by default) is in [`StateBucket::warnings`].
    pub async fn connect(url: S3Url) -> Result<StateBucket, StoreError> {
        let (client, sts) = crate::client::clients().await;
        let bucket = Self::with_client(client, url).await?;
        let who = sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| StoreError::Call {
                at: bucket.url.to_string(),
                what: "asking STS who is calling".into(),
                message: aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
            })?;
        if let Some(account) = who.account() {
            check_owner(&bucket.client, &bucket.url.bucket, account).await?;
        }
        Ok(bucket)
    }

    /// Uses this client (the owner is not checked).
    pub async fn with_client(
        client: aws_sdk_s3::Client,
        url: S3Url,
    ) -> Result<StateBucket, StoreError> {
        match client.head_bucket().bucket(&url.bucket).send().await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {
                return Err(StoreError::NoBucket {
                    bucket: url.bucket.clone(),
                })
            }
            Err(e) => return Err(call_error(&url.to_string(), "reading the state bucket", &e)),
        }
        let inspection = inspect(&client, &url.bucket).await?;
        Ok(StateBucket {
            client,
            url,
            inspection,
        })
    }

    /// What the bucket lacks, to be told to the user.
    pub fn warnings(&self) -> &[String] {
        &self.inspection.warnings
    }

    /// The store's location.
    pub fn url(&self) -> &S3Url {
        &self.url
    }

    /// One environment's state (`sandbox/NAME` for sandboxes).
    pub fn env(&self, name: &str) -> EnvStore {
        EnvStore {
            client: self.client.clone(),
            url: self.url.clone(),
            base: self.url.key(name),
            kms_key: self.inspection.kms_key.clone(),
        }
    }

    /// The names under the prefix that hold a journal or a plan copy, sorted.
    pub async fn environments(&self) -> Result<Vec<String>, StoreError> {
        let root = self.url.key("");
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.url.bucket)
            .prefix(&root)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| call_error(&self.url.to_string(), "listing environments", &e))?;
            for p in page.common_prefixes() {
                if let Some(name) = p
                    .prefix()
                    .and_then(|k| k.strip_prefix(&root))
                    .map(|k| k.trim_end_matches('/'))
                    .filter(|k| !k.is_empty())
                {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        let mut found = Vec::new();
        for n in names {
            let env = self.env(&n);
            if env.has_journal().await? || env.get_plan().await?.is_some() {
                found.push(n);
            }
        }
        Ok(found)
    }
}

/// One environment's keys in the state bucket.
#[derive(Clone, Debug)]
pub struct EnvStore {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) url: S3Url,
    /// The environment's key prefix, without the trailing slash.
    pub(crate) base: String,
    /// The KMS key objects are written with (the bucket's default; else the AWS managed key).
    pub(crate) kms_key: Option<String>,
}

impl EnvStore {
    /// `s3://BUCKET/PREFIX/ENV`.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.url.bucket, self.base)
    }

    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.base)
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.url.bucket
    }

    /// A write of `rest`, encrypted with SSE-KMS.
    pub(crate) fn put(&self, rest: &str) -> PutObjectFluentBuilder {
        self.client
            .put_object()
            .bucket(self.bucket())
            .key(self.key(rest))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(self.kms_key.clone())
    }

    /// An object's bytes, or `None` when the key is absent.
    pub(crate) async fn get(
        &self,
        rest: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let key = self.key(rest);
        let out = match self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(&key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(call_error(&self.location(), &format!("reading {rest}"), &e)),
        };
        let etag = out.e_tag().map(str::to_owned);
        let body = out.body.collect().await.map_err(|e| StoreError::Call {
            at: self.location(),
            what: format!("reading {rest}"),
            message: e.to_string(),
        })?;
        Ok(Some((body.into_bytes().to_vec(), etag)))
    }

    /// The plan copy `up` saved, if any.
    pub async fn get_plan(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .get("plan.yaml")
            .await?
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Saves the plan copy.
    pub async fn put_plan(&self, text: &str) -> Result<(), StoreError> {
        self.put("plan.yaml")
            .content_type("application/yaml")
            .body(ByteStream::from(text.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| call_error(&self.location(), "saving plan.yaml", &e))?;
        Ok(())
    }

    /// The events a run recorded (`runs/run-N.events.jsonl`), if any.
    pub async fn get_events(&self, run: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(&format!("runs/run-{run}.events.jsonl"))
            .await?
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Saves the events a run recorded, one JSON object per line.
    pub async fn put_events(&self, run: u64, lines: &str) -> Result<(), StoreError> {
        let rest = format!("runs/run-{run}.events.jsonl");
        self.put(&rest)
            .content_type("application/x-ndjson")
            .body(ByteStream::from(lines.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| call_error(&self.location(), &format!("saving {rest}"), &e))?;
        Ok(())
    }

    /// Whether any journal segment or snapshot exists.
    pub async fn has_journal(&self) -> Result<bool, StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(self.key("journal/"))
            .max_keys(1)
            .send()
            .await
            .map_err(|e| call_error(&self.location(), "listing the journal", &e))?;
        Ok(!out.contents().is_empty())
    }
}
