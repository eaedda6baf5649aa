//! moto and the proxy in front of it, on loopback ports, for as long as a [`Local`] lives.

use crate::http::forward;
use crate::proxy::{self, Caches};
use crate::SandboxError;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto release the proxy's answers were checked against.
pub const MOTO_VERSION: &str = "5.2.6";

/// `WBSTACK_MOTO_SERVER`, else `moto_server` on the `PATH`; the error says how to get one.
pub fn moto_server() -> Result<PathBuf, SandboxError> {
    if let Some(p) = std::env::var_os("WBSTACK_MOTO_SERVER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(SandboxError::NoMoto(format!(
                "WBSTACK_MOTO_SERVER names {}, which is not a file",
                p.display()
            )))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("moto_server"))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        SandboxError::NoMoto(format!(
            "the sandbox runs AWS steps against a local moto server, and none is on the PATH; install it with `python3 -m venv ~/.wbstack-moto && ~/.wbstack-moto/bin/pip install 'moto[server]=={MOTO_VERSION}'` and set WBSTACK_MOTO_SERVER=~/.wbstack-moto/bin/moto_server (or put it on the PATH)"
        ))
    })
}

/// A free loopback port.
fn free_port() -> Result<u16, SandboxError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(SandboxError::io("no free loopback port"))
}

/// Whether moto (or the proxy, which passes the request on) answers on `port`: STS says who
/// the caller is.
pub(crate) fn answers(port: u16) -> bool {
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=sandbox/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok()
        && forward(port, &head, body.as_bytes()).is_some_and(|r| r.starts_with(b"HTTP/1.1 200"))
}

/// moto and the proxy in front of it; moto is stopped when this is dropped.
pub struct Local {
    child: Child,
    /// The proxy's URL: what clients call.
    pub url: String,
    /// moto's own port, behind the proxy.
    pub moto_port: u16,
    /// What the proxy knows of the caches and buckets.
    pub caches: Caches,
}

impl Local {
    /// Starts `moto_server` on a free loopback port and the proxy in front of it.
    pub fn start(bin: &Path) -> Result<Local, SandboxError> {
        let port = free_port()?;
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(SandboxError::io(format!("cannot start {}", bin.display())))?;
        let start = Instant::now();
        while !answers(port) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(SandboxError::NotReady(format!(
                    "{} exited ({status}) before answering",
                    bin.display()
                )));
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return Err(SandboxError::NotReady(format!(
                    "{} did not answer on 127.0.0.1:{port} within 60 s",
                    bin.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let (url, caches) = proxy::start(port).map_err(SandboxError::io("the proxy"))?;
        Ok(Local {
            child,
            url,
            moto_port: port,
            caches,
        })
    }

    /// moto's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Best effort: the process may have ended already; nothing else is left to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An EC2 query to the local moto at `endpoint` in `region`; the answer's text.
fn ec2(endpoint: &str, region: &str, action: &str, query: &str) -> Result<String, SandboxError> {
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| SandboxError::Ec2(format!("`{endpoint}` has no port")))?;
    let body = format!("Action={action}&{query}&Version=2016-11-15");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=sandbox/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let resp = forward(port, &head, body.as_bytes())
        .ok_or_else(|| SandboxError::Ec2(format!("{action} had no answer")))?;
    Ok(String::from_utf8_lossy(&resp).into_owned())
}

/// The default VPC's default security group in `region`: what the sandbox's stores admit in
/// place of the plan's cluster security group (`spec.aws.securityGroup.allowFrom`).
pub fn default_security_group(endpoint: &str, region: &str) -> Result<String, SandboxError> {
    let text = ec2(
        endpoint,
        region,
        "DescribeSecurityGroups",
        "GroupName.1=default",
    )?;
    let (_, rest) = text
        .split_once("<groupId>")
        .ok_or_else(|| SandboxError::Ec2(format!("no default security group in {region}")))?;
    Ok(rest.split('<').next().unwrap_or_default().to_owned())
}

/// Two of the default VPC's subnets in `region`, in different zones: what RDS and ElastiCache
/// subnet groups are made of in the sandbox (moto makes a default VPC in every region).
pub fn default_subnets(endpoint: &str, region: &str) -> Result<Vec<String>, SandboxError> {
    let query = "Filter.1.Name=default-for-az&Filter.1.Value.1=true";
    let text = ec2(endpoint, region, "DescribeSubnets", query)?;
    let mut by_zone: Vec<(String, String)> = text
        .split("<item>")
        .filter_map(|item| {
            let tag = |t: &str| {
                let (_, rest) = item.split_once(&format!("<{t}>"))?;
                rest.split_once(&format!("</{t}>"))
                    .map(|(v, _)| v.to_owned())
            };
            Some((tag("availabilityZone")?, tag("subnetId")?))
        })
        .collect();
    by_zone.sort();
    by_zone.dedup_by(|a, b| a.0 == b.0);
    if by_zone.len() < 2 {
        return Err(SandboxError::Ec2(format!(
            "the default VPC of {region} has {} subnets in distinct zones, not two",
            by_zone.len()
        )));
    }
    Ok(by_zone.into_iter().take(2).map(|(_, id)| id).collect())
}
