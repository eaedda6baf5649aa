//! Each probe against a real server: Debian's Redis 7 (TLS and AUTH) and MariaDB (TLS), a real
//! HTTPS server (Python's), with certificates from a test CA. Each passes on a healthy server
//! and fails for the right reason on a broken one.

use wbstack_test_support::servers;

use servers::{pki, Https, Mariadb, Pki, RedisServer};
use wbstack_engine::{Secret, SecretRef};
use wbstack_verify::{
    Endpoint, Finding, Host, Mysql, MysqlTarget, Probe, Redis, RedisTarget, Verdict,
};

fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn secret(value: &str) -> Result<Secret, String> {
    let r = SecretRef::new("kubernetes", "wandb/wbstack-store").with_key("PASSWORD");
    Ok(Secret::new(r, value))
}

fn verdicts(f: &[Finding]) -> Vec<(Verdict, String)> {
    f.iter().map(|f| (f.verdict, f.checked.clone())).collect()
}

fn all_pass(f: &[Finding]) {
    assert!(f.iter().all(|f| f.verdict == Verdict::Pass), "{:#?}", f);
}

/// The one failing finding, which must exist.
fn failed(f: &[Finding]) -> &Finding {
    let failing: Vec<&Finding> = f.iter().filter(|f| f.verdict == Verdict::Fail).collect();
    assert_eq!(failing.len(), 1, "{:#?}", f);
    failing[0]
}

fn redis(port: u16, tls: bool, password: &str, ca: Option<&Pki>) -> Redis {
    Redis {
        target: RedisTarget {
            at: Endpoint {
                host: "localhost".into(),
                port,
                user: None,
                password: secret(password),
                ca: ca.map(|p| p.ca_pem.clone()),
            },
            tls,
        },
    }
}

const PW: &str = "s3cret-Pa55word-for-redis";

#[tokio::test]
async fn redis_with_tls_and_auth_passes_and_says_its_version() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), &["localhost"]);
    let server = RedisServer::start(Some(&p), Some(PW));
    let f = redis(server.port, true, PW, Some(&p)).run().await;
    all_pass(&f);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].seen.contains("PONG, Redis 7."), "{:?}", f[0]);
    assert!(
        f[0].checked
            .contains("over TLS with the password in kubernetes:wandb/wbstack-store"),
        "{:?}",
        f[0]
    );
    assert_eq!(
        f[1].checked,
        format!("localhost:{} refuses a wrong password", server.port)
    );
    let text = serde_json::to_string(&f).unwrap();
    assert!(!text.contains(PW), "a finding holds the password: {text}");
}

#[tokio::test]
async fn redis_fails_for_the_right_reason() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), &["localhost"]);
    let tls = RedisServer::start(Some(&p), Some(PW));

    // The Secret holds another password than the server's.
    let f = redis(tls.port, true, "an-old-password", Some(&p))
        .run()
        .await;
    let bad = failed(&f);
    assert!(bad.seen.contains("authentication failed"), "{bad:?}");
    assert!(
        bad.todo.as_deref().unwrap().contains("not the server's"),
        "{bad:?}"
    );

    // A certificate from a CA the values do not name.
    let other = tempfile::tempdir().unwrap();
    let stranger = pki(other.path(), &["localhost"]);
    let f = redis(tls.port, true, PW, Some(&stranger)).run().await;
    let bad = failed(&f);
    assert!(bad.seen.to_lowercase().contains("certificate"), "{bad:?}");

    // The values ask for TLS; the server speaks plain TCP.
    let plain = RedisServer::start(None, Some(PW));
    let f = redis(plain.port, true, PW, Some(&p)).run().await;
    failed(&f);

    // No AUTH: Redis 7 refuses the pods' password as it refuses any, which the probe names.
    let open = RedisServer::start(Some(&p), None);
    let f = redis(open.port, true, PW, Some(&p)).run().await;
    let bad = failed(&f);
    assert!(bad.seen.contains("the server has no AUTH"), "{bad:?}");
    assert!(
        bad.todo.as_deref().unwrap().contains("turn on AUTH"),
        "{bad:?}"
    );

    // Plain TCP, as configured: works, and warned.
    let f = redis(plain.port, false, PW, None).run().await;
    assert_eq!(
        f.iter().map(|f| f.verdict).collect::<Vec<_>>(),
        [Verdict::Pass, Verdict::Warn, Verdict::Pass],
        "{f:#?}"
    );
}

fn mysql(port: u16, password: &str, ca: Option<&Pki>) -> Mysql {
    Mysql {
        target: MysqlTarget {
            at: Endpoint {
                host: "127.0.0.1".into(),
                port,
                user: Some("wandb".into()),
                password: secret(password),
                ca: ca.map(|p| p.ca_pem.clone()),
            },
            database: "wandb_local".into(),
        },
    }
}

const DBPW: &str = "Db-pa55word-of-wandb";

#[tokio::test]
async fn mariadb_passes_tls_and_tables_and_fails_the_version() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), &["127.0.0.1", "localhost"]);
    let db = Mariadb::start(Some(&p), "wandb_local", "wandb", DBPW);
    for ca in [None, Some(&p)] {
        let f = mysql(db.port, DBPW, ca).run().await;
        let v = verdicts(&f);
        assert_eq!(
            v.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            [Verdict::Pass, Verdict::Fail, Verdict::Pass, Verdict::Pass],
            "{f:#?}"
        );
        assert!(f[1].seen.contains("MariaDB, not MySQL"), "{:?}", f[1]);
        assert!(f[2].seen.starts_with("encrypted ("), "{:?}", f[2]);
        let checked = if ca.is_some() {
            "checked against"
        } else {
            "not checked"
        };
        assert!(f[2].seen.contains(checked), "{:?}", f[2]);
        assert_eq!(
            f[3].checked,
            "create, write and drop a table in wandb_local"
        );
    }

    // The Secret's password is not the server's.
    let f = mysql(db.port, "stale", None).run().await;
    let bad = failed(&f);
    assert!(bad.seen.contains("Access denied"), "{bad:?}");
    assert!(!serde_json::to_string(&f).unwrap().contains("stale"));

    // A certificate from a CA the values do not name (the RDS bundle of another region, say).
    let other = tempfile::tempdir().unwrap();
    let stranger = pki(other.path(), &["127.0.0.1", "localhost"]);
    let f = mysql(db.port, DBPW, Some(&stranger)).run().await;
    let bad = failed(&f);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(bad.seen.to_lowercase().contains("certificate"), "{bad:?}");

    // A read-only server (a reader endpoint): named, and no table is tried.
    db.sql("SET GLOBAL read_only = 1");
    let f = mysql(db.port, DBPW, None).run().await;
    assert_eq!(f.last().unwrap().checked, "the host is a writer", "{f:#?}");
    assert_eq!(f.last().unwrap().verdict, Verdict::Fail);
}

#[tokio::test]
async fn mariadb_without_tls_fails_at_once() {
    init();
    let db = Mariadb::start(None, "wandb_local", "wandb", DBPW);
    let f = mysql(db.port, DBPW, None).run().await;
    let bad = failed(&f);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(bad.todo.as_deref().unwrap().contains("TLS"), "{bad:?}");
}

fn host(port: u16, ca: &Pki, skip: bool) -> Host {
    Host {
        url: format!("https://localhost:{port}"),
        ca: Some(ca.ca_pem.clone()),
        skip_certificate: skip,
    }
}

#[tokio::test]
async fn the_host_answers_over_https_with_a_certificate_for_its_name() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let p = pki(dir.path(), &["localhost"]);
    let healthy = Https::start(&p, 200);
    let f = host(healthy.port, &p, false).run().await;
    all_pass(&f);
    assert_eq!(f[0].seen, "200: healthy");

    // A certificate for another name.
    let other = tempfile::tempdir().unwrap();
    let wrong = pki(other.path(), &["elsewhere.example.com"]);
    let mismatched = Https::start(&wrong, 200);
    let f = host(mismatched.port, &wrong, false).run().await;
    let bad = failed(&f);
    assert!(bad.seen.contains("certificate"), "{bad:?}");
    assert!(
        bad.todo.as_deref().unwrap().contains("does not match"),
        "{bad:?}"
    );

    // Skipped on purpose: said, and the health check still runs.
    let f = host(mismatched.port, &wrong, true).run().await;
    assert_eq!(
        f.iter().map(|f| f.verdict).collect::<Vec<_>>(),
        [Verdict::Warn, Verdict::Pass],
        "{f:#?}"
    );

    // Unhealthy behind a good certificate.
    let sick = Https::start(&p, 503);
    let f = host(sick.port, &p, false).run().await;
    assert_eq!(failed(&f).seen, "answered 503");
}
