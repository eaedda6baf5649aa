//! A fault-injecting front for the AWS endpoint: in front of moto, it answers a given share of
//! requests, spread evenly by a seeded schedule, with what AWS does on a bad day: 500
//! `InternalError`, 503 `ServiceUnavailable` (S3: `SlowDown`), 400 throttling (`Throttling`,
//! `ThrottlingException`, `RequestLimitExceeded`), a slow answer, or a connection cut in the
//! middle of the answer (after moto has done the work: the client cannot tell whether it did).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wbstack_sandbox_aws::http::{forward, operation, read_request};

/// What was done to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Internal,
    Unavailable,
    Throttled,
    Slow,
    Cut,
}

const KINDS: [Fault; 5] = [
    Fault::Throttled,
    Fault::Internal,
    Fault::Cut,
    Fault::Unavailable,
    Fault::Slow,
];

pub struct Faults {
    pub url: String,
    requests: Arc<AtomicU64>,
    injected: Arc<Mutex<Vec<(String, Fault)>>>,
    rate: Arc<Mutex<f64>>,
    target: Target,
}

/// One operation to fault the next time it comes, whatever the rate.
type Target = Arc<Mutex<Option<(String, Fault)>>>;

impl Faults {
    /// A front for `upstream` (a URL on loopback) faulting `rate` of requests, seeded.
    pub fn start(upstream: &str, rate: f64, seed: u64) -> Faults {
        let port: u16 = upstream.rsplit(':').next().unwrap().parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let injected = Arc::new(Mutex::new(Vec::new()));
        let rate = Arc::new(Mutex::new(rate));
        let target: Target = Arc::default();
        let (r2, i2, rate2, t2) = (
            requests.clone(),
            injected.clone(),
            rate.clone(),
            target.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let n = r2.fetch_add(1, Ordering::SeqCst);
                let fault = schedule(n, *rate2.lock().unwrap(), seed);
                let (injected, target) = (i2.clone(), t2.clone());
                std::thread::spawn(move || serve(client, port, fault, &injected, &target));
            }
        });
        Faults {
            url,
            requests,
            injected,
            rate,
            target,
        }
    }

    /// Faults the next request of operation `op` this way.
    pub fn next(&self, op: &str, fault: Fault) {
        *self.target.lock().unwrap() = Some((op.to_owned(), fault));
    }

    /// From now on, fault this share of requests.
    pub fn set_rate(&self, rate: f64) {
        *self.rate.lock().unwrap() = rate;
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Each fault injected so far, with the operation it hit.
    pub fn injected(&self) -> Vec<(String, Fault)> {
        self.injected.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.injected.lock().unwrap().clear();
    }
}

/// Request `n` is faulted when the running count of `rate * n` crosses an integer: exactly that
/// share, spread evenly; the seed picks where the cycle of fault kinds starts.
fn schedule(n: u64, rate: f64, seed: u64) -> Option<Fault> {
    let before = (n as f64 * rate).floor();
    let after = ((n + 1) as f64 * rate).floor();
    (after > before).then(|| KINDS[((after as u64) + seed) as usize % KINDS.len()])
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    fault: Option<Fault>,
    log: &Mutex<Vec<(String, Fault)>>,
    target: &Target,
) {
    let Some((text, body)) = read_request(&mut client) else {
        return;
    };
    let op = operation(&text, &body);
    let fault = {
        let mut t = target.lock().unwrap();
        match t.as_ref() {
            Some((o, f)) if *o == op => {
                let f = *f;
                *t = None;
                Some(f)
            }
            _ => fault,
        }
    };
    if let Some(f) = fault {
        log.lock().unwrap().push((op.clone(), f));
    }
    let lower = text.to_ascii_lowercase();
    let protocol = if lower.contains("smithy-protocol: rpc-v2-cbor") {
        Protocol::Cbor
    } else if lower.contains("/ec2/aws4_request") {
        Protocol::Ec2
    } else if lower.contains("x-amz-target:") {
        Protocol::Json
    } else {
        Protocol::Xml
    };
    match fault {
        Some(f @ (Fault::Internal | Fault::Unavailable | Fault::Throttled)) => {
            let _ = client.write_all(&error(f, &op, protocol));
        }
        Some(Fault::Slow) => {
            std::thread::sleep(Duration::from_millis(1500));
            if let Some(resp) = forward(upstream, &text, &body) {
                let _ = client.write_all(&resp);
            }
        }
        Some(Fault::Cut) => {
            // moto does the work; the client gets half an answer.
            if let Some(resp) = forward(upstream, &text, &body) {
                let _ = client.write_all(&resp[..resp.len() / 2]);
            }
        }
        None => {
            if let Some(resp) = forward(upstream, &text, &body) {
                let _ = client.write_all(&resp);
            }
        }
    }
}

/// How a request is encoded, and so its error answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Xml,
    Json,
    /// Smithy RPC v2 CBOR (CloudWatch).
    Cbor,
    /// EC2's own query protocol, whose errors are `<Response><Errors><Error>`.
    Ec2,
}

/// AWS's error answer in the operation's protocol.
fn error(f: Fault, op: &str, protocol: Protocol) -> Vec<u8> {
    let s3 = op.starts_with("s3:");
    let json = !matches!(protocol, Protocol::Xml | Protocol::Ec2);
    let (status, code) = match (f, s3, json) {
        (Fault::Internal, true, _) => ("500 Internal Server Error", "InternalError"),
        (Fault::Internal, false, true) => ("500 Internal Server Error", "InternalFailure"),
        (Fault::Internal, false, false) => ("500 Internal Server Error", "InternalFailure"),
        (Fault::Unavailable, true, _) => ("503 Slow Down", "SlowDown"),
        (Fault::Unavailable, false, _) => ("503 Service Unavailable", "ServiceUnavailable"),
        (_, true, _) => ("503 Slow Down", "SlowDown"),
        (_, false, true) => ("400 Bad Request", "ThrottlingException"),
        (_, false, false) if op.starts_with("Describe") => {
            ("400 Bad Request", "RequestLimitExceeded")
        }
        (_, false, false) => ("400 Bad Request", "Throttling"),
    };
    if protocol == Protocol::Cbor {
        let mut body = Vec::new();
        let fields = std::collections::BTreeMap::from([("__type", code), ("message", "injected")]);
        ciborium::into_writer(&fields, &mut body).expect("a map of strings encodes");
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        return [head.into_bytes(), body].concat();
    }
    let (ctype, body) = if protocol == Protocol::Ec2 {
        ("text/xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>injected</Message></Error></Errors><RequestID>1</RequestID></Response>"))
    } else if s3 {
        ("application/xml", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"))
    } else if json {
        (
            "application/x-amz-json-1.1",
            format!("{{\"__type\":\"{code}\",\"message\":\"injected\"}}"),
        )
    } else {
        ("text/xml", format!("<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>injected</Message></Error><RequestId>1</RequestId></ErrorResponse>"))
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_faults_exactly_the_share_asked_for() {
        let n = (0..1000).filter(|i| schedule(*i, 0.2, 7).is_some()).count();
        assert_eq!(n, 200);
        let n = (0..1000).filter(|i| schedule(*i, 0.1, 7).is_some()).count();
        assert_eq!(n, 100);
    }
}
