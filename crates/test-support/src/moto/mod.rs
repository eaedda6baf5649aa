//! A moto server for a test: installed into a virtual environment under the target directory on
//! first use, started on a free loopback port behind the sandbox's proxy (which answers as AWS
//! does where moto falls short), stopped when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use wbstack_aws::{Aws, AwsSettings};

pub struct Moto {
    local: Local,
    pub url: String,
    /// What the ElastiCache proxy knows (tokens, versions).
    pub caches: elasticache::Caches,
}

use wbstack_sandbox_aws::http::{forward, operation, read_request};
/// The proxy in front of moto (named for the service it answers most for).
pub use wbstack_sandbox_aws::proxy as elasticache;
use wbstack_sandbox_aws::Local;

pub mod faults;

use crate::python;

/// The pinned moto server, installed on first use.
pub fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    python::venv(
        "moto",
        &[&format!(
            "moto[server]=={}",
            wbstack_sandbox_aws::MOTO_VERSION
        )],
    )
    .join("moto_server")
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

impl Moto {
    pub fn start() -> Moto {
        let local = Local::start(&moto_server()).expect("moto starts");
        let (url, caches) = (local.url.clone(), local.caches.clone());
        Moto { local, url, caches }
    }

    /// The moto server's process id (for its memory figures).
    pub fn pid(&self) -> u32 {
        self.local.pid()
    }

    /// The production plan's text for moto: its subnets instead of the plan's, no security
    /// group, and secrets deleted without a recovery window (so a teardown can finish).
    pub fn production_plan(&self, text: &str) -> String {
        let (vpc, subnets) = self.vpc();
        text.replace(
            "subnetIds: [subnet-0a1b2c3d4e5f60001, subnet-0a1b2c3d4e5f60002, subnet-0a1b2c3d4e5f60003]",
            &format!("subnetIds: [{}]\n    secretRecoveryDays: 0", subnets.join(", ")),
        )
        .replace("[sg-0a1b2c3d4e5f60001]", &format!("[{}]", self.cluster_group(&vpc)))
    }

    /// A security group standing for the cluster's (its nodes'), in `vpc`; its id.
    pub fn cluster_group(&self, vpc: &str) -> String {
        let r = self.ec2(&format!(
            "Action=CreateSecurityGroup&GroupName=eks-cluster-{}&GroupDescription=the+cluster&VpcId={vpc}",
            rand_suffix()
        ));
        between(&r, "<groupId>", "</groupId>")
    }

    /// Points a wbstack command at `endpoint` (moto, or a recorder in front of it).
    pub fn point(endpoint: &str, c: &mut Command) {
        c.env("WBSTACK_AWS_ENDPOINT", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    }

    /// A bucket made outside wbstack (a team's state bucket, someone else's bucket), by a raw
    /// PUT to moto in us-east-1.
    pub fn create_bucket(&self, name: &str) {
        let out = self.raw("PUT", &format!("/{name}"), "");
        assert!(
            out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
            "{out}"
        );
    }

    /// A raw request to moto; returns the whole response.
    pub fn raw(&self, method: &str, path: &str, body: &str) -> String {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// Deletes every key under `prefix` in `bucket`; returns how many.
    pub async fn delete_keys(&self, bucket: &str, prefix: &str) -> usize {
        let s3 = self.aws("tests").await.s3;
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        for o in out.contents() {
            let key = o.key().unwrap();
            s3.delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
        }
        out.contents().len()
    }

    /// The keys under `prefix` in `bucket`, by a raw ListObjectsV2.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let xml = self.raw_get(&format!("/{bucket}?list-type=2&prefix={prefix}"));
        xml.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    /// A raw, unsigned GET to moto (for responses the SDK cannot decode from moto).
    pub fn raw_get(&self, path: &str) -> String {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        get(port, path).unwrap_or_default()
    }

    /// An EC2 query-API call to moto (a VPC and the cluster's security group for the tests).
    pub fn ec2(&self, params: &str) -> String {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let body = format!("{params}&Version=2016-11-15");
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-west-2/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// A VPC with two subnets in different zones; returns the subnet ids.
    pub fn subnets(&self) -> Vec<String> {
        self.vpc().1
    }

    /// A VPC with two subnets in different zones; returns the VPC's id and the subnets'.
    pub fn vpc(&self) -> (String, Vec<String>) {
        let vpc = self.ec2("Action=CreateVpc&CidrBlock=10.0.0.0%2F16");
        let vpc_id = between(&vpc, "<vpcId>", "</vpcId>");
        let subnets = ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let r = self.ec2(&format!("Action=CreateSubnet&VpcId={vpc_id}&CidrBlock=10.0.{i}.0%2F24&AvailabilityZone=us-west-2{z}"));
                between(&r, "<subnetId>", "</subnetId>")
            })
            .collect();
        (vpc_id, subnets)
    }

    pub fn settings(&self) -> AwsSettings {
        AwsSettings {
            region: Some("us-west-2".into()),
            endpoint: Some(self.url.clone()),
            static_credentials: Some(("testing".into(), "testing".into())),
        }
    }

    pub async fn aws(&self, env: &str) -> Aws {
        Aws::connect(&self.settings(), env).await.unwrap()
    }
}

fn between(s: &str, a: &str, b: &str) -> String {
    let i = s.find(a).unwrap_or_else(|| panic!("{a} not in {s}")) + a.len();
    let j = s[i..].find(b).unwrap() + i;
    s[i..j].to_owned()
}

/// A recording proxy in front of moto: counts every AWS operation a client makes, outside the
/// client (moto answers each request with `Connection: close`, so a request is a connection).
pub struct Recorder {
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Each RDS instance or cluster operation with the identifier it names (`op id`).
    targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    denied: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// The AccessDenied answer AWS gives to `op` in its protocol (JSON for KMS and Secrets
/// Manager, XML for the query APIs and S3).
fn access_denied(op: &str) -> Vec<u8> {
    let (status, ctype, body) = if op.starts_with("s3:") {
        ("403 Forbidden", "application/xml", "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>".to_owned())
    } else if [
        "DescribeKey",
        "ListAliases",
        "ListKeys",
        "ListResourceTags",
        "DescribeSecret",
        "ListSecrets",
        "GetSecretValue",
    ]
    .contains(&op)
    {
        ("400 Bad Request", "application/x-amz-json-1.1", format!("{{\"__type\":\"AccessDeniedException\",\"message\":\"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: {op}\"}}"))
    } else {
        ("403 Forbidden", "text/xml", format!("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ci is not authorized to perform: {op}</Message></Error><RequestId>1</RequestId></ErrorResponse>"))
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The instance an RDS query request names (a failover's target before its cluster), else the
/// cluster.
fn rds_target(body: &[u8]) -> Option<String> {
    let body = String::from_utf8_lossy(body);
    let param = |name: &str| {
        body.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    param("TargetDBInstanceIdentifier")
        .or_else(|| param("DBInstanceIdentifier"))
        .or_else(|| param("DBClusterIdentifier"))
}

/// Whether an operation changes anything.
pub fn mutating(op: &str) -> bool {
    if let Some(s3) = op.strip_prefix("s3:") {
        return s3.starts_with("PUT") || s3.starts_with("POST") || s3.starts_with("DELETE");
    }
    [
        "Create",
        "Modify",
        "Delete",
        "Put",
        "Enable",
        "Schedule",
        "Restore",
        "Tag",
        "Untag",
        "Update",
        "Disable",
        "Cancel",
        "Reboot",
        "Rotate",
        "Add",
        "Remove",
        "Apply",
        "Start",
        "Stop",
        "Reset",
        "Failover",
        "Authorize",
        "Revoke",
    ]
    .iter()
    .any(|p| op.starts_with(p))
}

impl Recorder {
    pub fn start(moto: &Moto) -> Recorder {
        let upstream: u16 = moto.url.rsplit(':').next().unwrap().parse().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let denied = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (l2, d2, t2) = (log.clone(), denied.clone(), targets.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                let log = l2.clone();
                let denied = d2.clone();
                let targets = t2.clone();
                std::thread::spawn(move || {
                    // moto closes after each response, so a connection carries one request.
                    let Some((head, body)) = read_request(&mut client) else {
                        return;
                    };
                    let op = operation(&head, &body);
                    log.lock().unwrap().push(op.clone());
                    if let Some(id) = rds_target(&body) {
                        targets.lock().unwrap().push(format!("{op} {id}"));
                    }
                    let resp = if denied.lock().unwrap().contains(&op) {
                        Some(access_denied(&op))
                    } else {
                        forward(upstream, &head, &body)
                    };
                    if let Some(resp) = resp {
                        let _ = client.write_all(&resp);
                    }
                });
            }
        });
        Recorder {
            url,
            log,
            targets,
            denied,
        }
    }

    /// Answers these operations with AccessDenied from now on, as AWS does for a caller whose
    /// policy lacks them.
    pub fn deny(&self, ops: &[&str]) {
        *self.denied.lock().unwrap() = ops.iter().map(|o| o.to_string()).collect();
    }

    /// Every operation so far, in order.
    pub fn ops(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
        self.targets.lock().unwrap().clear();
    }

    /// The mutating RDS instance and cluster operations so far, each with the identifier it
    /// names (`ModifyDBInstance db-2`, `FailoverDBCluster db-2` for the failover's target).
    pub fn rds_changes(&self) -> Vec<String> {
        self.targets
            .lock()
            .unwrap()
            .iter()
            .filter(|t| mutating(t.split(' ').next().unwrap_or("")))
            .cloned()
            .collect()
    }
}

/// Someone else's bucket (`someone-elses-bucket`) and KMS key, made before wbstack runs;
/// returns the key's id.
pub async fn someone_elses_bucket_and_key(aws: &Aws) -> String {
    aws.s3
        .create_bucket()
        .bucket("someone-elses-bucket")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    aws.kms
        .create_key()
        .description("not ours")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned()
}

/// Fills a versioned bucket with `keys` objects of three versions each, then a delete marker on
/// each: what teardown has to empty.
pub async fn versions_and_delete_markers(aws: &Aws, bucket: &str, keys: usize) {
    for i in 0..keys {
        for v in 0..3 {
            aws.s3
                .put_object()
                .bucket(bucket)
                .key(format!("run/{i}.bin"))
                .body(format!("v{v}").into_bytes().into())
                .send()
                .await
                .unwrap();
        }
        aws.s3
            .delete_object()
            .bucket(bucket)
            .key(format!("run/{i}.bin"))
            .send()
            .await
            .unwrap();
    }
}

/// A short suffix unique within this process and across processes (pid and a counter).
fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
