//! Real servers for the probes' tests: Debian's `redis-server` (Redis 7, with TLS and AUTH)
//! and Debian's MariaDB (the MySQL protocol, with TLS), each started on a free loopback port in
//! a temporary directory and stopped when dropped; Python's HTTPS server answering `/healthz`;
//! and a test CA that issues their certificates.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A CA and one server certificate it issued.
pub struct Pki {
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// A new CA issuing a certificate for `names` (DNS names or IP addresses), written into `dir`.
pub fn pki(dir: &Path, names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let p = Pki {
        ca_pem: ca_cert.pem(),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        ca: dir.join("ca.crt"),
    };
    std::fs::write(&p.cert, cert.pem()).unwrap();
    std::fs::write(&p.key, key.serialize_pem()).unwrap();
    std::fs::write(&p.ca, &p.ca_pem).unwrap();
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(ip: &str, port: u16, what: &str, child: &mut Child) {
    let start = Instant::now();
    while TcpStream::connect((ip, port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before it listened: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `redis-server`: TLS on `port` when given a certificate (plain TCP otherwise), AUTH when
/// given a password.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    ip: String,
    /// The CA file, when on TLS.
    ca: Option<PathBuf>,
    /// A password the server accepts now, if it has AUTH.
    password: Option<String>,
    _dir: TempDir,
}

impl RedisServer {
    pub fn start(tls: Option<&Pki>, password: Option<&str>) -> RedisServer {
        RedisServer::start_at("127.0.0.1", free_port(), tls, password)
    }

    /// On `ip:port` (any loopback address: 127.0.0.0/8 is all this machine's).
    pub fn start_at(ip: &str, port: u16, tls: Option<&Pki>, password: Option<&str>) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            ip.into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.path().display().to_string(),
        ];
        match tls {
            Some(p) => args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                p.cert.display().to_string(),
                "--tls-key-file".into(),
                p.key.display().to_string(),
                "--tls-ca-cert-file".into(),
                p.ca.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]),
            None => args.extend(["--port".into(), port.to_string()]),
        }
        if let Some(pw) = password {
            args.extend(["--requirepass".into(), pw.into()]);
        }
        let mut child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package)");
        wait_for(ip, port, "redis-server", &mut child);
        RedisServer {
            child,
            port,
            ip: ip.into(),
            ca: tls.map(|p| p.ca.clone()),
            password: password.map(str::to_owned),
            _dir: dir,
        }
    }

    /// From now on the default user's passwords are `tokens` exactly, as ElastiCache's AUTH
    /// tokens are (two while a rotation is in progress).
    pub fn accept(&mut self, tokens: &[String]) {
        let mut c = Command::new("redis-cli");
        c.args(["-h", &self.ip, "-p", &self.port.to_string()]);
        if let Some(ca) = &self.ca {
            // The test sets its own server up: no need to check the certificate here.
            c.arg("--tls").arg("--cacert").arg(ca).arg("--insecure");
        }
        if let Some(pw) = &self.password {
            c.env("REDISCLI_AUTH", pw);
        }
        c.args(["ACL", "SETUSER", "default", "on", "resetpass"]);
        c.args(tokens.iter().map(|t| format!(">{t}")));
        let out = c.output().expect("redis-cli (Debian's redis-tools)");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.trim() == "OK",
            "ACL SETUSER: {said} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.password = tokens.first().cloned();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A MariaDB server with database `db` and user `user` (all rights on it), TLS when given a
/// certificate.
pub struct Mariadb {
    child: Child,
    pub port: u16,
    socket: PathBuf,
    _dir: TempDir,
}

impl Mariadb {
    pub fn start(tls: Option<&Pki>, db: &str, user: &str, password: &str) -> Mariadb {
        let m = Mariadb::start_at("127.0.0.1", free_port(), tls);
        m.add(db, user, password);
        m
    }

    /// With database `db` and user `user` (all rights on it).
    pub fn add(&self, db: &str, user: &str, password: &str) {
        self.sql(&format!(
            "CREATE DATABASE IF NOT EXISTS {db}; CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL ON {db}.* TO '{user}'@'%';"
        ));
    }

    /// On `ip:port`, with no database or user of its own yet.
    pub fn start_at(ip: &str, port: u16, tls: Option<&Pki>) -> Mariadb {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--user={}", whoami()))
            .output()
            .expect("mariadb-install-db (Debian's mariadb-server package)");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let socket = dir.path().join("mysqld.sock");
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--bind-address={ip}"))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--user={}", whoami()))
            .arg("--skip-log-bin")
            .arg("--innodb-buffer-pool-size=16M");
        if let Some(p) = tls {
            cmd.arg(format!("--ssl-cert={}", p.cert.display()))
                .arg(format!("--ssl-key={}", p.key.display()))
                .arg(format!("--ssl-ca={}", p.ca.display()));
        } else {
            cmd.arg("--skip-ssl");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(ip, port, "mariadbd", &mut child);
        Mariadb {
            child,
            port,
            socket,
            _dir: dir,
        }
    }

    /// Runs `sql` as root over the socket.
    pub fn sql(&self, sql: &str) {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["-u", "root", "-e", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python's HTTPS server with the test certificate: `/healthz` answers `status`.
pub struct Https {
    child: Child,
    pub port: u16,
}

impl Https {
    pub fn start(p: &Pki, status: u16) -> Https {
        let port = free_port();
        let script = format!(
            r#"
import http.server, ssl
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response({status} if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", {port}), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain("{}", "{}")
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#,
            p.cert.display(),
            p.key.display()
        );
        let child = Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed().as_secs() < 30,
                "the HTTPS server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Https { child, port }
    }
}

impl Drop for Https {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
