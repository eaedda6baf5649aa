//! Shipped plans validate and render (snapshots); malformed plans fail with their specific
//! error at file:line:column, exit code 2, and no request to the cluster.

use wbstack_test_support::{text, Env, Exited};

const PLANS: [&str; 4] = ["poc", "production", "weave-altinity", "weave-clickhouse-s3"];

#[test]
fn every_shipped_plan_validates() {
    let env = Env::new(100);
    for p in PLANS {
        let path = Env::plans().join(format!("{p}.yaml"));
        let out = env.run(&["validate", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{p}: {}", text(&out));
    }
}

#[test]
fn render_output_is_stable_for_every_plan() {
    let env = Env::new(100);
    for p in PLANS {
        let path = Env::plans().join(format!("{p}.yaml"));
        let out = env.run(&["render", "--plan", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{p}: {}", text(&out));
        let yaml = String::from_utf8(out.stdout).unwrap();
        assert!(!yaml.contains(wbstack_test_support::LICENSE));
        // The same documents, one JSON object per line, for machines.
        let out = env.run(&[
            "render",
            "--plan",
            path.to_str().unwrap(),
            "--output",
            "json",
        ]);
        let json: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(json, docs, "{p}");
        insta::assert_snapshot!(format!("render-{p}"), yaml);
    }
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let env = Env::new(100);
    let path = Env::plans().join("production.yaml");
    let dot =
        String::from_utf8(env.run(&["graph", "--plan", path.to_str().unwrap()]).stdout).unwrap();
    assert!(dot.starts_with("digraph \"wandb-prod\""));
    assert!(dot.contains("\"aws.mysql\" -> \"k8s.wandb\""));
    let mm = String::from_utf8(
        env.run(&[
            "graph",
            "--plan",
            path.to_str().unwrap(),
            "--format",
            "mermaid",
        ])
        .stdout,
    )
    .unwrap();
    assert!(mm.contains("aws_kms --> aws_bucket"));
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    // `wbstack render ... | head -1`: the reader is gone before the first write.
    let env = Env::new(100);
    let path = Env::plans().join("production.yaml");
    let mut child = env
        .cmd(&["render", "--plan", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "{err}");
}

const BASE: &str = "apiVersion: wbstack.dev/v1
kind: Plan
metadata:
  name: dev
spec:
  wandb:
    host: https://wandb.example.com
    license: {env: WANDB_LICENSE}
";

/// (name, plan text, expected message fragment, expected line).
fn malformed() -> Vec<(&'static str, String, &'static str, usize)> {
    let b = BASE;
    vec![
        ("unknown top-level key", format!("{b}  mysqll: {{mode: rds}}\n"), "unknown field `mysqll`", 9),
        ("unknown nested key", format!("{b}  mysql:\n    hots: db\n"), "unknown field `hots`", 10),
        ("wrong type", format!("{b}  mysql:\n    port: many\n"), "invalid type", 10),
        ("bad enum value", format!("{b}  mysql:\n    mode: postgres\n"), "unknown variant `postgres`", 10),
        ("bad size", b.replace("spec:\n", "spec:\n  size: huge\n"), "unknown variant `huge`", 6),
        ("yaml syntax", format!("{b}  redis: [\n"), "", 9),
        ("wrong apiVersion", b.replace("wbstack.dev/v1", "wbstack.dev/v9"), "unsupported apiVersion", 1),
        ("wrong kind", b.replace("kind: Plan", "kind: Deployment"), "expected kind `Plan`", 2),
        ("bad env name", b.replace("name: dev", "name: Dev_Env"), "not a valid environment name", 4),
        ("env name too long", b.replace("name: dev", &format!("name: {}", "a".repeat(41))), "not a valid environment name", 4),
        ("missing host", b.replace("    host: https://wandb.example.com\n", ""), "missing field `host`", 7),
        ("host not a URL", b.replace("https://wandb.example.com", "wandb.example.com"), "not an http(s) URL", 7),
        ("missing license", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {}\n"), "the license is missing", 8),
        ("two licenses", b.replace("{env: WANDB_LICENSE}", "{env: WANDB_LICENSE, value: x}"), "one way only", 8),
        ("bad namespace", format!("{b}  kubernetes:\n    namespace: Wandb.NS\n"), "not a valid namespace name", 10),
        ("external mysql without host", format!("{b}  mysql:\n    mode: external\n    passwordSecret: {{name: db, key: pw}}\n"), "external MySQL needs a host", 9),
        ("external mysql without secret", format!("{b}  mysql:\n    mode: external\n    host: db\n"), "needs a password Secret", 9),
        ("in-cluster mysql with host", format!("{b}  mysql:\n    host: db\n"), "not used with mode in-cluster", 10),
        ("rds without aws", format!("{b}  mysql:\n    mode: rds\n"), "`spec.aws` is missing", 5),
        ("rds with one subnet", format!("{b}  mysql:\n    mode: rds\n  aws:\n    region: us-west-2\n    subnetIds: [subnet-1]\n"), "at least two subnets", 13),
        ("bad subnet id", format!("{b}  mysql:\n    mode: rds\n  aws:\n    subnetIds: [subnet-1, net-2]\n"), "not a subnet id", 12),
        ("bad region", format!("{b}  aws:\n    region: uswest2\n"), "not an AWS region", 10),
        ("bad instance class", format!("{b}  mysql:\n    mode: aurora\n    instanceClass: r6g.large\n  aws:\n    subnetIds: [subnet-1, subnet-2]\n"), "not an RDS instance class", 11),
        ("reserved db user", format!("{b}  mysql:\n    mode: rds\n    user: admin\n  aws:\n    subnetIds: [subnet-1, subnet-2]\n"), "reserved by RDS", 11),
        ("bad db name", format!("{b}  mysql:\n    database: 1wandb\n"), "not a valid MySQL database name", 10),
        ("bad bucket name", format!("{b}  bucket:\n    mode: s3\n    name: My_Bucket\n  aws:\n    region: us-west-2\n"), "bucket name `My_Bucket` is not valid", 11),
        ("bucket as ip", format!("{b}  bucket:\n    mode: s3\n    name: 192.168.5.4\n  aws:\n    region: us-west-2\n"), "IP address", 11),
        ("existing bucket without name", format!("{b}  bucket:\n    mode: existing\n"), "needs its name", 9),
        ("kms window", format!("{b}  bucket:\n    mode: s3\n    kmsDeletionWindowDays: 3\n  aws:\n    region: us-west-2\n"), "7 to 30 days", 11),
        ("external redis without host", format!("{b}  redis:\n    mode: external\n"), "external Redis needs a host", 9),
        ("bad node type", format!("{b}  redis:\n    mode: elasticache\n    nodeType: m6g.large\n  aws:\n    subnetIds: [subnet-1, subnet-2]\n"), "not an ElastiCache node type", 11),
        ("bad redis version", format!("{b}  redis:\n    mode: elasticache\n    engineVersion: \"5.0\"\n  aws:\n    subnetIds: [subnet-1, subnet-2]\n"), "not a Redis version ElastiCache runs", 11),
        ("redis version not major.minor", format!("{b}  redis:\n    mode: elasticache\n    engineVersion: latest\n  aws:\n    subnetIds: [subnet-1, subnet-2]\n"), "not a Redis version ElastiCache runs", 11),
        ("replicated clickhouse with one replica", format!("{b}  clickhouse:\n    mode: bundled\n    replicas: 1\n    replicated: true\n"), "at least 2 replicas", 12),
        ("external clickhouse without host", format!("{b}  clickhouse:\n    mode: external\n"), "external ClickHouse needs a host", 9),
        ("weave without clickhouse", format!("{b}  clickhouse:\n    mode: none\n"), "Weave needs ClickHouse", 10),
        ("s3 disk outside bundled", format!("{b}  clickhouse:\n    mode: altinity\n    s3: {{endpoint: https://s3/b/}}\n"), "only for mode bundled", 11),
        ("bad log level", format!("{b}  clickhouse:\n    logLevel: verbose\n"), "unknown log level", 10),
        ("cache as large as its volume", format!("{b}  clickhouse:\n    mode: bundled\n    storageSize: 100Gi\n    s3:\n      endpoint: https://s3.us-east-1.amazonaws.com/b/f/\n      cacheSize: 100Gi\n"), "must be smaller than the volume", 14),
        ("external clickhouse with a hyphenated cluster", format!("{b}  clickhouse:\n    mode: external\n    host: ch.internal\n    replicas: 2\n    replicated: true\n    clusterName: weave-prod\n    passwordSecret: {{name: ch, key: pw}}\n"), "refuse the cluster name", 14),
        ("unknown component", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {env: WANDB_LICENSE}\n    components:\n      ap1: {replicas: 2}\n"), "unknown component `ap1`", 10),
        ("bad cpu quantity", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {env: WANDB_LICENSE}\n    components:\n      api:\n        resources:\n          requests: {cpu: lots, memory: 1Gi}\n"), "not a CPU quantity", 12),
        ("hook on a missing step", format!("{b}  hooks:\n    k8s.nope:\n    - when: after\n      command: [echo]\n"), "no step `k8s.nope`", 10),
        ("bad hook time", format!("{b}  hooks:\n    k8s.wandb:\n    - when: later\n      command: [echo]\n"), "unknown hook time", 11),
        ("empty hook command", format!("{b}  hooks:\n    k8s.wandb:\n    - when: after\n      command: []\n"), "the command is empty", 12),
        ("bad operator version", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {env: WANDB_LICENSE}\n    operator: {version: latest}\n"), "not a version", 9),
        ("values not a map", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {env: WANDB_LICENSE}\n    values: [1, 2]\n"), "values must be a mapping", 9),
        ("inline license", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {value: LIC-SECRET-1}\n"), "an inline license would be stored", 8),
        ("plaintext password in values", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {env: WANDB_LICENSE}\n    values:\n      global:\n        mysql: {password: hunter2}\n"), "a secret in plaintext", 11),
        ("values redirect the license secret", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {env: WANDB_LICENSE}\n    values:\n      global:\n        licenseSecret: {name: other, key: k}\n"), "`global.licenseSecret` is the Secret reference wbstack manages", 11),
        ("license file outside the plan", b.replace("    license: {env: WANDB_LICENSE}\n", "    license: {file: ../../etc/license}\n"), "outside the plan's directory", 8),
        ("wildcard bucket in an endpoint", format!("{b}  clickhouse:\n    mode: bundled\n    s3:\n      endpoint: https://s3.us-east-1.amazonaws.com/*/\n      useEnvironmentCredentials: true\n"), "is not a valid bucket name", 12),
        ("adopt a step the plan lacks", format!("{b}  bucket:\n    mode: s3\n  aws:\n    region: us-west-2\n    adopt: [aws.kms, aws.redis]\n"), "no AWS step `aws.redis`", 13),
        ("reserved tag prefix", format!("{b}  bucket:\n    mode: s3\n  aws:\n    region: us-west-2\n    tags:\n      wbstack:environment: other\n"), "is reserved", 14),
    ]
}

#[test]
fn malformed_plans_fail_with_their_own_error_exit_2_and_no_request() {
    let env = Env::new(100);
    let cases = malformed();
    assert!(cases.len() >= 30);
    for (name, yaml, fragment, line) in cases {
        let file = env.dir.path().join("bad.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let before = env.requests();
        let out = env.run(&["up", "--plan", "bad.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
        assert!(
            err.contains(fragment),
            "{name}: expected `{fragment}` in\n{err}"
        );
        assert!(
            err.contains(&format!("bad.yaml:{line}:")),
            "{name}: expected line {line} in\n{err}"
        );
        assert_eq!(
            env.requests(),
            before,
            "{name}: no request may reach the cluster"
        );
        let v = env.run(&["validate", "bad.yaml"]);
        assert_eq!(v.status.code(), Some(2), "{name}");
    }
    // A license variable that is not set is caught before any request too.
    std::fs::write(
        env.dir.path().join("nolic.yaml"),
        BASE.replace("WANDB_LICENSE", "WBSTACK_TEST_UNSET_LICENSE"),
    )
    .unwrap();
    let before = env.requests();
    let out = env.run(&["up", "--plan", "nolic.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nolic.yaml:8:")
            && String::from_utf8_lossy(&out.stderr).contains("WBSTACK_TEST_UNSET_LICENSE")
    );
    assert_eq!(env.requests(), before);
}

/// A refused plan's diagnostics, at any verbosity and in JSON, never show a secret it holds;
/// `spec.wandb.allowValues` is the named way to take a key on.
#[test]
fn diagnostics_never_echo_a_secret_and_allow_values_is_the_way_out() {
    let env = Env::new(100);
    let b = BASE;
    let secret = b.replace(
        "    license: {env: WANDB_LICENSE}\n",
        "    license:\n      value: LIC-SECRET-1\n    values:\n      global:\n        redis: {password: hunter2}\n        apiKey: \"k-999\"\n",
    );
    std::fs::write(env.dir.path().join("s.yaml"), &secret).unwrap();
    for args in [
        vec!["validate", "s.yaml"],
        vec!["validate", "s.yaml", "--output", "json"],
        vec!["-vvv", "up", "--plan", "s.yaml"],
        vec!["render", "--plan", "s.yaml"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let all = text(&out);
        for s in ["LIC-SECRET-1", "hunter2", "k-999"] {
            assert!(!all.contains(s), "{args:?} shows {s}:\n{all}");
        }
    }
    let allowed = b.replace(
        "    license: {env: WANDB_LICENSE}\n",
        "    license: {env: WANDB_LICENSE}\n    allowValues: [global.licenseSecret, global.redis.password]\n    values:\n      global:\n        licenseSecret: {name: mine, key: license}\n        redis: {password: hunter2}\n",
    );
    std::fs::write(env.dir.path().join("ok.yaml"), &allowed).unwrap();
    env.ok(&["validate", "ok.yaml"]);
}

#[test]
fn schema_describes_the_plan_format() {
    let env = Env::new(100);
    let out = env.run(&["schema"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "Plan");
    assert!(v["properties"]["spec"].is_object());
    let comp = env.run(&["completions", "bash"]);
    assert!(String::from_utf8_lossy(&comp.stdout).contains("wbstack"));
}

/// The image the operator's Deployment runs.
fn operator_image(env: &Env) -> String {
    env.kubectl(&[
        "get",
        "deploy",
        "-A",
        "-l",
        "control-plane=controller-manager",
        "-o",
        "jsonpath={.items[0].spec.template.spec.containers[0].image}",
    ])
}

/// `images --output json`, one row per image.
fn images_json(env: &Env, plan: &str) -> Vec<serde_json::Value> {
    let out = env.ok(&["images", "--plan", plan, "--output", "json"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `images` lists every image a plan deploys through `spec.images.registry`, and `up` pulls
/// wbstack's own workloads (the operator, ClickHouse) from there too, with the chart told the
/// same registry.
#[test]
fn images_come_from_the_plans_registry() {
    let env = Env::new(50);
    let yaml = std::fs::read_to_string(Env::plans().join("weave-clickhouse-s3.yaml"))
        .unwrap()
        .replacen(
            "spec:\n",
            "spec:\n  images:\n    registry: registry.corp.example/mirror/\n",
            1,
        );
    let plan = env.plan_from("mirror.yaml", &yaml);
    let rows = images_json(&env, &plan);
    let images: Vec<&str> = rows.iter().map(|r| r["image"].as_str().unwrap()).collect();
    for want in [
        "registry.corp.example/mirror/wandb/controller:1.22.0",
        "registry.corp.example/mirror/clickhouse/clickhouse-server:24.8",
        "registry.corp.example/mirror/clickhouse/clickhouse-keeper:24.8",
        "registry.corp.example/mirror/wandb/local:latest",
        "registry.corp.example/mirror/bitnamilegacy/redis:7.2.4-debian-12-r9",
    ] {
        assert!(images.contains(&want), "{want} not in {images:?}");
    }
    assert!(
        images
            .iter()
            .all(|i| i.starts_with("registry.corp.example/mirror/")),
        "{images:?}"
    );
    env.ok(&["up", "--plan", &plan]);
    let op = operator_image(&env);
    assert_eq!(op, "registry.corp.example/mirror/wandb/controller:1.22.0");
    let ch = env.kubectl(&[
        "get",
        "sts",
        "wbstack-clickhouse-shard0",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(
        ch,
        "registry.corp.example/mirror/clickhouse/clickhouse-server:24.8"
    );
    let reg = env.kubectl(&[
        "get",
        "wandb",
        "wandb",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.spec.values.global.imageRegistry}",
    ]);
    assert_eq!(reg, "registry.corp.example/mirror");
}

/// Plain HTTP to an AWS endpoint is for this machine only: another host is refused (the
/// plan's `spec.aws.endpoint` at its line, `WBSTACK_AWS_ENDPOINT` before anything is read)
/// unless `--insecure-endpoint` says so.
#[test]
fn plain_http_endpoints_off_this_machine_need_an_explicit_flag() {
    let env = Env::new(100);
    let plan = format!("{BASE}  bucket:\n    mode: s3\n  aws:\n    region: us-west-2\n    endpoint: http://10.0.0.5:4566\n");
    std::fs::write(env.dir.path().join("http.yaml"), plan).unwrap();
    let out = env.expect(&["validate", "http.yaml"], 2);
    assert!(text(&out).contains("http.yaml:13:"), "{}", text(&out));
    assert!(text(&out).contains("plain HTTP to another machine"));
    env.ok(&["validate", "http.yaml", "--insecure-endpoint"]);
    let before = env.requests();
    let out = env
        .cmd(&["up", "--plan", &env.plan("poc.yaml")])
        .env("WBSTACK_AWS_ENDPOINT", "http://s3.internal:9000")
        .output()
        .unwrap()
        .exited(2);
    assert!(
        text(&out).contains("WBSTACK_AWS_ENDPOINT"),
        "{}",
        text(&out)
    );
    assert_eq!(env.requests(), before);
}

/// Images pinned by digest (`spec.images.digests`, keyed as `images` lists them): `images`
/// prints the digests, the operator and ClickHouse run `image@digest`, and each W&B service of
/// that image gets the chart's `<service>.image.digest` (which the chart renders as
/// `repository@digest`: the chart's own `snap-image-digest-override` snapshot). A malformed
/// digest, an image the plan does not deploy and one the chart cannot pin are refused.
#[test]
fn images_are_pinned_by_digest() {
    let env = Env::new(50);
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let yaml = std::fs::read_to_string(Env::plans().join("weave-clickhouse-s3.yaml"))
        .unwrap()
        .replacen(
            "spec:\n",
            &format!(
                "spec:\n  images:\n    digests:\n      wandb/controller:1.22.0: {}\n      clickhouse/clickhouse-server:24.8: {}\n      wandb/local:latest: {}\n",
                d('a'),
                d('b'),
                d('c')
            ),
            1,
        );
    let plan = env.plan_from("pinned.yaml", &yaml);
    let rows = images_json(&env, &plan);
    let digest = |image: &str| {
        rows.iter()
            .find(|r| r["image"] == image)
            .map(|r| r["digest"].clone())
    };
    assert_eq!(
        digest("wandb/controller:1.22.0"),
        Some(serde_json::json!(d('a')))
    );
    assert_eq!(
        digest("wandb/local:latest"),
        Some(serde_json::json!(d('c')))
    );
    assert_eq!(
        digest("clickhouse/clickhouse-keeper:24.8"),
        Some(serde_json::Value::Null)
    );
    let out = env.run(&["images", "--plan", &plan]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(&format!("wandb/controller:1.22.0@{}", d('a'))));
    env.ok(&["up", "--plan", &plan]);
    let op = operator_image(&env);
    assert_eq!(op, format!("wandb/controller:1.22.0@{}", d('a')));
    let sts = env.kubectl(&[
        "get",
        "statefulset",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.items[*].spec.template.spec.containers[0].image}",
    ]);
    assert!(
        sts.contains(&format!("clickhouse/clickhouse-server:24.8@{}", d('b'))),
        "{sts}"
    );
    let values = env.kubectl(&[
        "get",
        "wandb",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.items[0].spec.values}",
    ]);
    let v: serde_json::Value = serde_json::from_str(&values).unwrap();
    let pinned: Vec<&str> = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["image"]["digest"] == d('c'))
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(!pinned.is_empty(), "{v}");
    let short = yaml.replace(&d('a'), "sha256:abc");
    let unknown = yaml.replacen(
        "    digests:\n",
        &format!("    digests:\n      wandb/nope:1: {}\n", d('e')),
        1,
    );
    let unpinnable = yaml.replacen(
        "    digests:\n",
        &format!(
            "    digests:\n      docker.io/bitnamilegacy/redis:7.2.4-debian-12-r9: {}\n",
            d('e')
        ),
        1,
    );
    for (wrong, said) in [
        (short, "is not a digest"),
        (unknown, "the plan deploys no image wandb/nope:1"),
        (unpinnable, "cannot be pinned by the plan"),
    ] {
        let wrong = env.plan_from("wrong.yaml", &wrong);
        let out = env.run(&["validate", &wrong]);
        assert_eq!(out.status.code(), Some(2), "{said}: {}", text(&out));
        assert!(text(&out).contains(said), "{said}: {}", text(&out));
    }
}
