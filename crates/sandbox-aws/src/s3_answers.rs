//! S3 where moto 5.2.6 answers otherwise than AWS, answered as AWS does:
//! - a CORS preflight (`OPTIONS`) on a bucket with no CORS rule: moto allows every origin; S3
//!   refuses it with a 403 (`CORSResponse: CORS is not enabled for this bucket.`);
//! - an object written with an SSE-KMS key that does not exist or is disabled: moto stores it;
//!   S3 refuses it with a 400 (`KMS.NotFoundException`, `KMS.DisabledException`).

use crate::bucket_policy::response;
use crate::http::forward;

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn request(method: &str, path: &str, service: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=t/20260101/us-west-2/{service}/aws4_request, SignedHeaders=host, Signature=x\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
}

fn ok(resp: &[u8]) -> bool {
    resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200")
}

fn s3_error(status: &str, code: &str, message: &str) -> Vec<u8> {
    response(
        status,
        "application/xml",
        &format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>1</RequestId></Error>"),
    )
}

/// The answer AWS would give where moto's differs, if `head` is such a request.
pub fn answer(head: &str, upstream: u16) -> Option<Vec<u8>> {
    let mut first = head.lines().next()?.split_whitespace();
    let (method, path) = (first.next()?, first.next()?);
    if method == "OPTIONS" {
        let bucket = path.trim_start_matches('/').split(['/', '?']).next()?;
        let probe = request("GET", &format!("/{bucket}?cors"), "s3", "", "");
        let has_rule = forward(upstream, &probe, b"").is_some_and(|r| ok(&r));
        return (!has_rule).then(|| {
            s3_error(
                "403 Forbidden",
                "AccessForbidden",
                "CORSResponse: CORS is not enabled for this bucket.",
            )
        });
    }
    let key = header(head, "x-amz-server-side-encryption-aws-kms-key-id")?;
    if method != "PUT" {
        return None;
    }
    let body = format!("{{\"KeyId\": \"{key}\"}}");
    let extra =
        "X-Amz-Target: TrentService.DescribeKey\r\nContent-Type: application/x-amz-json-1.1\r\n";
    let described = forward(
        upstream,
        &request("POST", "/", "kms", extra, &body),
        body.as_bytes(),
    )?;
    if !ok(&described) {
        return Some(s3_error(
            "400 Bad Request",
            "KMS.NotFoundException",
            &format!("Invalid keyId {key}"),
        ));
    }
    let text = String::from_utf8_lossy(&described);
    (!text.contains("\"Enabled\": true") && !text.contains("\"Enabled\":true")).then(|| {
        s3_error(
            "400 Bad Request",
            "KMS.DisabledException",
            &format!("{key} is disabled."),
        )
    })
}
