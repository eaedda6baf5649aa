//! `verify` on the production pattern: AWS is moto, the cluster the emulator, and the data paths
//! real servers. Debian's MariaDB (TLS) stands in for the Aurora cluster and Debian's Redis 7
//! (TLS and AUTH) for the replication group: the proxy in front of moto answers their endpoints
//! with the servers' loopback addresses, the database gets the user and password RDS would make
//! from wbstack's request, and Redis accepts exactly the AUTH tokens ElastiCache was given.
//! W&B's host is a real HTTPS server. The data paths are probed from the probe Job, whose pod
//! the emulator's kubelet runs as this build's binary with the pod's environment: the Secret
//! keys by reference, and the role and token file EKS's pod identity webhook adds for the
//! API's ServiceAccount, so the bucket is probed as the pods' IAM role; the proxy answers
//! `AssumeRoleWithWebIdentity` against the role's trust as STS does. Every probe passes but
//! MySQL's version (MariaDB is not MySQL 8.0.28+, as it must say) and ClickHouse's Service name,
//! which only a cluster's DNS answers; then one path at a time is broken by hand, `verify`
//! fails exactly that probe, named, and passes again once `up` repairs it.

use serde_json::Value;
use wbstack_test_support::moto;
use wbstack_test_support::servers;
use wbstack_test_support::{text, Env, Exited};

/// One loopback address per run (all of 127.0.0.0/8 is this machine), so the servers can listen
/// on the plan's own ports.
fn loopback(offset: u32) -> String {
    let n = std::process::id() % 120 * 2 + offset;
    format!("127.0.{}.{}", 10 + n / 250, 2 + n % 250)
}

fn findings(out: &std::process::Output) -> Vec<Value> {
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    eprintln!("verify: {} ms", v["ms"]);
    v["findings"].as_array().unwrap().clone()
}

/// `probe: checked` of each failed finding.
fn failures(f: &[Value]) -> Vec<String> {
    f.iter()
        .filter(|x| x["verdict"] == "fail")
        .map(|x| {
            format!(
                "{}: {}",
                x["probe"].as_str().unwrap(),
                x["checked"].as_str().unwrap()
            )
        })
        .collect()
}

const VERSION: &str = "mysql: the server's version";
/// The probe Job tries the bundled ClickHouse at its Service name, as it would in a cluster;
/// the emulator has no cluster DNS, so the name does not resolve for the pod run here.
const CLICKHOUSE: &str = "clickhouse: wbstack-clickhouse.wandb.svc.cluster.local:8123 as wandb";
/// The OIDC issuer of the cluster the production plan names (`spec.aws.irsa.oidcProviderArn`).
const ISSUER: &str = "oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

#[test]
fn production_on_real_servers_passes_and_each_broken_path_fails_alone_until_up_repairs_it() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let env = Env::new(50);
    // The cluster's ServiceAccount tokens name its OIDC issuer, as an EKS cluster's do: the one
    // whose provider the plan's IRSA role trusts.
    let running = env.running();
    running.set_config(kube_emulator::Config {
        service_account_issuer: Some(format!("https://{ISSUER}")),
        ..running.config()
    });
    let moto = moto::Moto::start();
    let (db_ip, redis_ip) = (loopback(0), loopback(1));
    let dir = tempfile::tempdir().unwrap();
    let pki = servers::pki(dir.path(), &[&db_ip, &redis_ip, "localhost"]);
    let db = servers::Mariadb::start_at(&db_ip, 3306, Some(&pki));
    let mut redis = servers::RedisServer::start_at(&redis_ip, 6379, Some(&pki), Some("unset"));
    let https = servers::Https::start(&pki, 200);
    moto.caches.serve_at("rds", &db_ip);
    moto.caches.serve_at("redis", &redis_ip);

    // The database's CA, as RDS's bundle would be given: the services and the probe check the
    // server's certificate against it.
    let ca: String = pki.ca_pem.lines().map(|l| format!("      {l}\n")).collect();
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "")
        .replace("  mysql:\n", &format!("  mysql:\n    caCert: |\n{ca}"))
        .replace(
            "https://wandb.company.com",
            &format!("https://localhost:{}", https.port),
        );
    let plan = env.plan_from("prod.yaml", &moto.production_plan(&plan));
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        moto::Moto::point(&moto.url, &mut c);
        c.env("AWS_REGION", "us-west-2")
            .env("SSL_CERT_FILE", &pki.ca);
        c.output().unwrap()
    };
    env.run_wbstack_image(&[("SSL_CERT_FILE", pki.ca.to_str().unwrap())]);
    run(&["up", "--plan", &plan]).succeeded();

    // What AWS makes from wbstack's requests: the master user with its password and database,
    // and the group's AUTH tokens.
    let secret = |name: &str, key: &str| {
        let b64 = env.kubectl(&[
            "get",
            "secret",
            name,
            "-n",
            "wandb",
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ]);
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap();
        String::from_utf8(raw).unwrap()
    };
    db.add(
        "wandb_prod",
        "wandb",
        &secret("wbstack-mysql", "MYSQL_PASSWORD"),
    );
    let tokens = moto.caches.tokens("wandb-prod-redis");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    redis.accept(&tokens);

    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]).exited(7);
    let f = findings(&out);
    assert_eq!(failures(&f), [VERSION, CLICKHOUSE], "{f:#?}");
    let probed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        probed["from"]
            .as_str()
            .unwrap()
            .starts_with("Job wandb/wbstack-verify-"),
        "{probed}"
    );
    // From here, the cluster-local ClickHouse is out of reach and said so; the rest alike.
    let here = run(&[
        "verify",
        "--env",
        "wandb-prod",
        "--from-here",
        "--output",
        "json",
    ]);
    let h = findings(&here);
    assert_eq!(failures(&h), [VERSION], "{h:#?}");
    assert!(
        h.iter()
            .any(|x| x["probe"] == "clickhouse" && x["verdict"] == "skip"),
        "{h:#?}"
    );
    let tls = f
        .iter()
        .find(|x| x["probe"] == "mysql" && x["checked"] == "TLS")
        .unwrap();
    assert!(
        tls["seen"]
            .as_str()
            .unwrap()
            .contains("checked against global.mysql.caCert"),
        "{tls}"
    );
    for probe in ["references", "mysql", "redis", "bucket", "host"] {
        assert!(
            f.iter()
                .any(|x| x["probe"] == probe && x["verdict"] == "pass"),
            "{probe}: {f:#?}"
        );
    }
    // The bucket, as the pods' own IAM role: taken on with a token the cluster issued for the
    // API's ServiceAccount, which the role trusts.
    assert!(f.iter().all(|x| x["verdict"] != "warn"), "{f:#?}");
    let trip = f.iter().find(|x| x["probe"] == "bucket").unwrap();
    assert!(
        trip["checked"]
            .as_str()
            .unwrap()
            .contains(" as ServiceAccount wandb/wandb-prod-api"),
        "{trip}"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !said.contains(&tokens[0]) && !said.contains(wbstack_test_support::LICENSE),
        "{said}"
    );
    // The text form, for the log.
    let out = run(&["verify", "--env", "wandb-prod"]);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));

    // 1. The Redis password rotated at its source (Secrets Manager) and on the server, as a
    // rotation does, while the pods' Secret still holds the old one.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    let rotated = "Rotated-by-hand-0123456789abcdefghij".to_owned();
    rt.block_on(
        aws.secrets
            .put_secret_value()
            .secret_id("wbstack/wandb-prod/redis-auth")
            .secret_string(&rotated)
            .send(),
    )
    .unwrap();
    redis.accept(std::slice::from_ref(&rotated));
    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]);
    let f = findings(&out);
    let failed = failures(&f);
    assert_eq!(failed.len(), 3, "{f:#?}");
    assert!(
        failed.iter().any(|x| x.starts_with("redis: ")),
        "{failed:?}"
    );
    run(&["up", "--plan", &plan]).succeeded();
    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]);
    assert_eq!(failures(&findings(&out)), [VERSION, CLICKHOUSE]);

    // 2. The bucket's CORS rule removed by hand.
    rt.block_on(
        aws.s3
            .delete_bucket_cors()
            .bucket("wandb-prod-artifacts")
            .send(),
    )
    .unwrap();
    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]);
    let f = findings(&out);
    assert_eq!(
        failures(&f),
        [
            VERSION.to_owned(),
            CLICKHOUSE.to_owned(),
            format!(
                "bucket: CORS preflight of a PUT from https://localhost:{}",
                https.port
            )
        ],
        "{f:#?}"
    );
    run(&["up", "--plan", &plan]).succeeded();
    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]);
    assert_eq!(failures(&findings(&out)), [VERSION, CLICKHOUSE]);

    // 3. The role's trust changed by hand to another ServiceAccount.
    let role = env.kubectl(&[
        "get",
        "sa",
        "wandb-prod-api",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.metadata.annotations.eks\\.amazonaws\\.com/role-arn}",
    ]);
    let role_name = role.trim().rsplit('/').next().unwrap().to_owned();
    let other = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{ISSUER}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{ISSUER}:sub"): "system:serviceaccount:other:someone"}}}]});
    rt.block_on(
        aws.iam
            .update_assume_role_policy()
            .role_name(&role_name)
            .policy_document(other.to_string())
            .send(),
    )
    .unwrap();
    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]);
    let f = findings(&out);
    let failed = failures(&f);
    assert_eq!(failed.len(), 3, "{f:#?}");
    assert!(
        failed
            .iter()
            .any(|x| x.starts_with("bucket: take on role ")),
        "{failed:?}"
    );
    run(&["up", "--plan", &plan]).succeeded();
    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]);
    assert_eq!(failures(&findings(&out)), [VERSION, CLICKHOUSE]);

    // 4. The database user's password changed on the server alone.
    db.sql("ALTER USER 'wandb'@'%' IDENTIFIED BY 'changed-by-hand'");
    let out = run(&["verify", "--env", "wandb-prod", "--output", "json"]);
    let f = findings(&out);
    let failed = failures(&f);
    assert_eq!(failed.len(), 2, "{f:#?}");
    assert!(
        failed[0].starts_with("mysql: ") && failed[0].ends_with("over TLS"),
        "{f:#?}"
    );
    assert_eq!(failed[1], CLICKHOUSE);

    run(&["down", "--env", "wandb-prod", "--skip-final-snapshot"]).succeeded();
}
