//! The bucket as the pods use it: put, get and delete an object with the values' SSE-KMS key,
//! as the pods' identity; and the CORS rule answers a browser's preflight from the W&B host.

use crate::run::Probe;
use crate::verdict::Finding;
use crate::wiring::BucketTarget;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const NAME: &str = "bucket";

/// Who the probe acts as, and how that was decided.
pub struct S3Access {
    pub client: aws_sdk_s3::Client,
    /// Said in the findings: `role arn:... as ServiceAccount wandb/wandb-app`, ...
    pub who: String,
    /// Set when this is not the pods' own identity: why, as a warning.
    pub not_the_pods: Option<String>,
}

/// The probe for the values' bucket.
pub struct Bucket {
    pub target: BucketTarget,
    pub access: S3Access,
    /// The W&B host's origin (`https://wandb.example.com`), for the CORS preflight.
    pub origin: Option<String>,
    /// The S3 endpoint, when not AWS's (moto, a gateway); it serves buckets by path.
    pub endpoint: Option<String>,
}

impl Bucket {
    fn key(&self) -> String {
        let prefix = self
            .target
            .path
            .as_deref()
            .map(|p| format!("{}/", p.trim_matches('/')))
            .unwrap_or_default();
        format!("{prefix}wbstack-verify/{}", std::process::id())
    }

    /// Put, get and delete one object with the values' key.
    async fn round_trip(&self) -> Finding {
        let (b, key, s3) = (&self.target.name, self.key(), &self.access.client);
        let kms = self.target.kms_key.as_deref();
        let checked = format!(
            "put, get and delete s3://{b}/{key}{} as {}",
            kms.map(|k| format!(" with SSE-KMS key {k}"))
                .unwrap_or_default(),
            self.access.who
        );
        let mut put = s3
            .put_object()
            .bucket(b)
            .key(&key)
            .body(ByteStream::from_static(b"wbstack verify"));
        if let Some(k) = kms {
            put = put
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        if let Err(e) = put.send().await {
            let todo = "grant the pods' role s3:PutObject on the bucket and kms:GenerateDataKey on the key (`wbstack up` writes that policy)";
            return Finding::fail(NAME, checked, format!("PutObject: {}", chain(&e)), todo);
        }
        let got = s3.get_object().bucket(b).key(&key).send().await;
        let deleted = s3.delete_object().bucket(b).key(&key).send().await;
        let got = match got {
            Ok(o) => o,
            Err(e) => {
                let todo = "grant the pods' role s3:GetObject and kms:Decrypt on the key";
                return Finding::fail(NAME, checked, format!("GetObject: {}", chain(&e)), todo);
            }
        };
        if let Err(e) = deleted {
            let todo = "grant the pods' role s3:DeleteObject on the bucket";
            return Finding::fail(NAME, checked, format!("DeleteObject: {}", chain(&e)), todo);
        }
        let used = got.ssekms_key_id().unwrap_or("");
        match kms {
            Some(k) if !same_key(used, k) => Finding::fail(
                NAME,
                checked,
                format!("the object was encrypted with `{used}`, not the values' key"),
                "set values.global.defaultBucket.kmsKey to the bucket's key (`wbstack up`)",
            ),
            _ => Finding::pass(
                NAME,
                checked,
                match got.server_side_encryption() {
                    Some(e) => format!("round trip done, encrypted {}", e.as_str()),
                    None => "round trip done".into(),
                },
            ),
        }
    }

    /// A browser's preflight for a PUT from the W&B host.
    async fn cors(&self) -> Finding {
        let Some(origin) = &self.origin else {
            return Finding::skip(NAME, "CORS preflight", "the values set no global.host");
        };
        // A new object's name, as a browser's upload would have.
        let key = format!("{}-upload", self.key());
        let url = match &self.endpoint {
            Some(e) => format!("{}/{}/{key}", e.trim_end_matches('/'), self.target.name),
            None => format!(
                "https://{}.s3.{}.amazonaws.com/{key}",
                self.target.name, self.target.region
            ),
        };
        let checked = format!("CORS preflight of a PUT from {origin}");
        let todo =
            "allow the W&B host in the bucket's CORS rule (GET, HEAD, PUT): `wbstack up` writes it";
        match preflight(&url, origin).await {
            Err(e) => Finding::fail(NAME, checked, e, todo),
            Ok((status, allow_origin, methods, said)) => {
                let origin_ok = allow_origin.as_deref() == Some(origin.as_str())
                    || allow_origin.as_deref() == Some("*");
                let put_ok = methods
                    .as_deref()
                    .is_some_and(|m| m.split(',').any(|x| x.trim() == "PUT"));
                if status == 200 && origin_ok && put_ok {
                    Finding::pass(
                        NAME,
                        checked,
                        format!("allowed ({})", methods.unwrap_or_default()),
                    )
                } else {
                    Finding::fail(
                        NAME,
                        checked,
                        format!(
                            "refused: {status} {said}, allowed origin {}",
                            allow_origin.unwrap_or_else(|| "none".into())
                        ),
                        todo,
                    )
                }
            }
        }
    }
}

/// Whether a key id S3 reports is the key the values name (an ARN, an id or an alias).
fn same_key(used: &str, named: &str) -> bool {
    used == named || used.ends_with(&format!("/{named}")) || named.ends_with(&format!("/{used}"))
}

fn chain(e: &dyn std::error::Error) -> String {
    wbstack_engine::redact(&wbstack_k8s::error_chain(e))
}

type Preflight = (u16, Option<String>, Option<String>, String);

/// The `Message` of an S3 error body, if it has one.
fn message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map(|(m, _)| m.to_owned())
        .unwrap_or_default()
}

async fn preflight(url: &str, origin: &str) -> Result<Preflight, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(wbstack_k8s::rustls_provider())
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let req = hyper::Request::options(url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-type")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let res = client.request(req).await.map_err(|e| chain(&e))?;
    let header = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, origin, methods) = (
        res.status().as_u16(),
        header("access-control-allow-origin"),
        header("access-control-allow-methods"),
    );
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| message(&b.to_bytes()))
        .unwrap_or_default();
    Ok((status, origin, methods, body))
}

#[async_trait]
impl Probe for Bucket {
    fn name(&self) -> &str {
        NAME
    }
    fn checks(&self) -> String {
        format!("s3://{} as {}", self.target.name, self.access.who)
    }
    async fn run(&self) -> Vec<Finding> {
        let (trip, cors) = tokio::join!(self.round_trip(), self.cors());
        let mut out = vec![trip, cors];
        if let Some(why) = &self.access.not_the_pods {
            out.push(Finding::warn(
                NAME,
                "the identity the probe used",
                format!("{}: {why}", self.access.who),
                "run verify in the cluster (the Job mode) to use the pods' own identity",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_the_same_by_arn_id_or_alias() {
        let arn = "arn:aws:kms:us-west-2:123456789012:key/1234";
        assert!(same_key(arn, arn));
        assert!(same_key(arn, "1234"));
        assert!(same_key("1234", arn));
        assert!(!same_key(
            arn,
            "arn:aws:kms:us-west-2:123456789012:key/9999"
        ));
    }
}
