//! A moto server for a test: installed into a virtual environment under the target directory on
//! first use, started on a free loopback port, stopped when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wbstack_aws::{Aws, AwsSettings};

pub struct Moto {
    child: Child,
    pub url: String,
}

fn moto_server() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("moto-venv");
    let bin = venv.join("bin/moto_server");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("moto-venv.lock"))
        .unwrap();
    lock.lock().unwrap();
    if !bin.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "moto[server]==5.2.5"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install moto[server] failed");
    }
    lock.unlock().unwrap();
    bin
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
        let bin = moto_server();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while get(port, "/moto-api/data.json")
            .is_none_or(|r| !r.starts_with("HTTP/1.1 200") && !r.starts_with("HTTP/1.0 200"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A raw, unsigned GET to moto (for responses the SDK cannot decode from moto).
    pub fn raw_get(&self, path: &str) -> String {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        get(port, path).unwrap_or_default()
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

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
