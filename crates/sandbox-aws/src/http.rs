//! One HTTP/1.x request at a time over loopback, as moto and the proxies in front of it speak:
//! read a request, forward it, name the AWS operation it calls.

use std::io::{Read, Write};
use std::net::TcpStream;

pub fn read_head(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    Some(buf)
}

/// One request off a connection: its head, as text, and its body.
pub fn read_request(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let head = String::from_utf8_lossy(&read_head(c)?).into_owned();
    let len: usize = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-length:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Sends a request to the server on loopback port `upstream` and reads its whole answer (moto
/// closes the connection after each).
pub fn forward(upstream: u16, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    let head = head.replace("Connection: keep-alive", "Connection: close");
    up.write_all(head.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp).ok()?;
    Some(resp)
}

/// The AWS operation a request calls: its `X-Amz-Target`, its query `Action`, its Smithy RPC v2
/// path, or for S3 its
/// method and sub-resource (`s3:PUT?policy`).
pub fn operation(head: &str, body: &[u8]) -> String {
    let lower = head.to_ascii_lowercase();
    if let Some(line) = lower.lines().find(|l| l.starts_with("x-amz-target:")) {
        let v = line.split(':').nth(1).unwrap_or("").trim();
        let op = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("x-amz-target:"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or(v)
            .trim();
        return op.rsplit('.').next().unwrap_or(op).to_owned();
    }
    let body = String::from_utf8_lossy(body);
    if let Some(i) = body.find("Action=") {
        return body[i + 7..].split('&').next().unwrap_or("").to_owned();
    }
    let first = head.lines().next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    // Smithy RPC v2 (CloudWatch's CBOR): POST /service/<service>/operation/<operation>.
    if let Some((_, op)) = path.split_once("/operation/") {
        if path.starts_with("/service/") {
            return op.split(['?', '/']).next().unwrap_or(op).to_owned();
        }
    }
    let sub = path
        .split_once('?')
        .map(|(_, q)| q.split(['=', '&']).next().unwrap_or(""))
        .unwrap_or("");
    format!(
        "s3:{method}{}",
        if sub.is_empty() {
            String::new()
        } else {
            format!("?{sub}")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::operation;

    #[test]
    fn each_protocol_names_its_operation() {
        let json = "POST / HTTP/1.1\r\nX-Amz-Target: TrentService.CreateKey\r\n\r\n";
        assert_eq!(operation(json, b"{}"), "CreateKey");
        let query = "POST / HTTP/1.1\r\n\r\n";
        assert_eq!(
            operation(query, b"Action=CreateDBCluster&Version=1"),
            "CreateDBCluster"
        );
        let cbor = "POST /service/GraniteServiceVersion20100801/operation/PutMetricAlarm HTTP/1.1\r\nsmithy-protocol: rpc-v2-cbor\r\n\r\n";
        assert_eq!(operation(cbor, &[0xbf, 0xff]), "PutMetricAlarm");
        assert_eq!(
            operation("GET /bucket?versioning HTTP/1.1\r\n\r\n", b""),
            "s3:GET?versioning"
        );
    }
}
