//! Bucket policies, answered as S3 answers requests made over TLS. Every request of the tests
//! reaches moto in plain HTTP, and moto ignores a policy's Conditions: the TLS-only policy
//! (Deny `s3:*` when `aws:SecureTransport` is false) would deny every object request, which
//! S3 never does to a client using HTTPS, as wbstack does. So the proxy keeps bucket policies
//! itself (PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy) and moto never sees them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Each bucket's policy, as given.
pub type Policies = Arc<Mutex<HashMap<String, String>>>;

/// The bucket of a `?policy` request, and its method, if the request is one.
pub fn policy_request(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, path) = (parts.next()?, parts.next()?);
    let (bucket, query) = path.trim_start_matches('/').split_once('?')?;
    let bucket = bucket.trim_end_matches('/');
    let is_policy = query.split('&').any(|q| q == "policy" || q == "policy=");
    (is_policy && !bucket.contains('/')).then_some((method, bucket))
}

/// An HTTP answer with `body`.
pub fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The answer to a bucket-policy request, if `head` is one.
pub fn answer(head: &str, body: &[u8], policies: &Policies) -> Option<Vec<u8>> {
    let (method, bucket) = policy_request(head)?;
    let mut p = policies.lock().unwrap();
    Some(match method {
        "PUT" => {
            p.insert(bucket.to_owned(), String::from_utf8_lossy(body).into_owned());
            response("204 No Content", "application/xml", "")
        }
        "DELETE" => {
            p.remove(bucket);
            response("204 No Content", "application/xml", "")
        }
        _ => match p.get(bucket) {
            Some(policy) => response("200 OK", "application/json", policy),
            None => response(
                "404 Not Found",
                "application/xml",
                &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchBucketPolicy</Code><Message>The bucket policy does not exist</Message><BucketName>{bucket}</BucketName></Error>"),
            ),
        },
    })
}
