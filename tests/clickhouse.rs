//! The ClickHouse configuration wbstack writes, loaded by real ClickHouse engines: chdb from
//! PyPI at ClickHouse 24.8 (the release the Weave guide's plan runs) and at a current release.
//! Each replica's configuration and environment are taken from the rendered StatefulSet (the
//! environment expanded as the kubelet does), its S3 disk pointed at moto; rows written through
//! the `s3_main` policy must land under that replica's own folder of the bucket.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use wbstack_plan::{AltinityClickhouse, BundledClickhouse, StepKind};
use wbstack_test_support::moto;
use wbstack_test_support::python::{self, venv};
use wbstack_test_support::Env;

/// (ClickHouse release, the chdb packages that embed it).
const ENGINES: [(&str, &[&str]); 2] = [
    ("24.8", &["--no-deps", "chdb==2.1.1"]),
    ("26.9", &["--no-deps", "chdb==4.4.0", "chdb-core==26.9.0"]),
];

/// What the server image ships in `users.xml` (the default user, profile and quota) and
/// `users.d/` files merge into; the default user may manage access so the test can list users.
const IMAGE_USERS: &str = "<clickhouse><profiles><default></default></profiles><quotas><default></default></quotas><users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota><access_management>1</access_management></default></users></clickhouse>";

const PASSWORD: &str = "clickhouse-test-password";

/// Loads `config` (and `users`) in one engine with `env` and runs `queries`.
fn load(
    engine: usize,
    config: &[String],
    users: &[String],
    env: &BTreeMap<String, String>,
    queries: &[&str],
) -> Value {
    let (release, packages) = ENGINES[engine];
    let bin = venv(&format!("chdb-{release}"), packages);
    let input = json!({"config": config, "users": users, "env": env, "queries": queries});
    let (text, _) = python::run(&bin, "clickhouse_load.py", &input);
    let v: Value = serde_json::from_str(text.lines().last().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{release}: {e}: {text}"));
    if let Some(engine) = v["engine"].as_str() {
        assert!(engine.starts_with(release), "{engine} is not {release}");
    }
    v
}

fn bundled(plan_text: &str) -> BundledClickhouse {
    let plan = wbstack_plan::parse("plan", plan_text).unwrap();
    wbstack_plan::compile(&plan)
        .into_iter()
        .find_map(|s| match s.kind {
            StepKind::ClickhouseBundled(c) => Some(c),
            _ => None,
        })
        .unwrap()
}

/// The environment of pod `ordinal` of a shard's StatefulSet, as the kubelet builds it:
/// `fieldRef: metadata.name` is the pod's name, secrets are read, `$(VAR)` refers to a variable
/// defined before it.
fn pod_env(sts: &Value, ordinal: u32, secrets: &BTreeMap<&str, &str>) -> BTreeMap<String, String> {
    let pod = format!("{}-{ordinal}", sts["metadata"]["name"].as_str().unwrap());
    let mut env = BTreeMap::new();
    for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
    {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            env.iter()
                .fold(v.to_owned(), |v, (k, x): (&String, &String)| {
                    v.replace(&format!("$({k})"), x)
                })
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            pod.clone()
        } else {
            let key = e["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
            secrets[key].to_owned()
        };
        env.insert(name, value);
    }
    env
}

/// A plan's ClickHouse objects: the server configuration, its users and the shard StatefulSets.
fn rendered(c: &BundledClickhouse) -> (String, String, Vec<Value>) {
    let objects = wbstack_k8s::render::clickhouse_bundled(c);
    let config = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let server = config["data"]["wbstack.xml"].as_str().unwrap().to_owned();
    let users = config["data"]["users.xml"].as_str().unwrap().to_owned();
    let shards = objects
        .into_iter()
        .filter(|o| {
            o["kind"] == "StatefulSet"
                && o["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
        })
        .collect();
    (server, users, shards)
}

const INFO: &str = "SELECT (SELECT groupArray([name, toString(type)]) FROM system.disks), \
    (SELECT groupArray([policy_name, arrayStringConcat(disks, ',')]) FROM system.storage_policies), \
    (SELECT groupArray([cluster, toString(shard_num), toString(replica_num), host_name]) FROM system.clusters), \
    (SELECT groupArray([macro, substitution]) FROM system.macros), \
    (SELECT groupArray([name, toString(auth_type)]) FROM system.users)";

const WRITE: &str = "CREATE TABLE t (x UInt64) ENGINE = MergeTree ORDER BY x; \
    INSERT INTO t SELECT number FROM numbers(1000); \
    SELECT count(), sum(x), (SELECT storage_policy FROM system.tables WHERE name = 't'), \
    (SELECT groupArray([cache_name, toString(max_size)]) FROM system.filesystem_cache_settings) FROM t";

fn pairs(v: &Value) -> BTreeMap<String, String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The hosts of `cluster` in `system.clusters`, by (shard, replica).
fn hosts(info: &Value, cluster: &str) -> Vec<(String, String, String)> {
    info[2]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[0] == cluster)
        .map(|r| {
            (
                r[1].as_str().unwrap().into(),
                r[2].as_str().unwrap().into(),
                r[3].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Checks one loaded replica: macros, both cluster names with every replica's DNS name, the
/// Weave user, and (with S3) the disks and the policy.
fn check_info(
    c: &BundledClickhouse,
    sts: &[Value],
    pod: &str,
    shard: u32,
    info: &Value,
    what: &str,
) {
    let macros = pairs(&info[3]);
    assert_eq!(macros["shard"], shard.to_string(), "{what}");
    assert_eq!(macros["replica"], pod, "{what}");
    assert_eq!(macros["cluster"], c.cluster_name, "{what}");
    let expected: Vec<(String, String, String)> = sts
        .iter()
        .enumerate()
        .flat_map(|(s, o)| {
            let name = o["metadata"]["name"].as_str().unwrap().to_owned();
            let service = o["spec"]["serviceName"].as_str().unwrap().to_owned();
            (0..c.replicas).map(move |r| {
                let host = format!(
                    "{name}-{r}.{service}.{}.svc.cluster.local",
                    o["metadata"]["namespace"].as_str().unwrap()
                );
                ((s + 1).to_string(), (r + 1).to_string(), host)
            })
        })
        .collect();
    assert_eq!(
        hosts(info, &c.cluster_name),
        expected,
        "{what}: {}",
        c.cluster_name
    );
    assert_eq!(
        hosts(info, &c.weave_cluster),
        expected,
        "{what}: {}",
        c.weave_cluster
    );
    let users = pairs(&info[4]);
    // The password is the one from the environment (24.8 names one method, 26.9 a list).
    assert!(
        users
            .get(&c.user)
            .is_some_and(|a| a.contains("plaintext_password")),
        "{what}: {users:?}"
    );
    if c.s3.is_some() {
        let disks = pairs(&info[0]);
        assert_eq!(disks["s3_disk"], "ObjectStorage", "{what}");
        let policies = pairs(&info[1]);
        for d in policies["s3_main"].split(',') {
            assert_eq!(
                disks[d], "ObjectStorage",
                "{what}: s3_main keeps parts on {d}"
            );
        }
    }
}

/// Where a plan's S3 disk points in moto: the bucket and the folder of the endpoint.
struct Bucket<'a> {
    moto: &'a moto::Moto,
    name: &'a str,
    folder: String,
    cache_bytes: u64,
}

/// Loads the first two replicas of each shard of `c` in `engine`. With S3, rows are written
/// through `s3_main` and must land under the replica's own folder, and nowhere else.
fn check_plan(engine: usize, bucket: Option<&Bucket>, c: &BundledClickhouse, what: &str) -> usize {
    let (server, users, sts) = rendered(c);
    let secrets = BTreeMap::from([
        (c.password_key.as_str(), PASSWORD),
        ("ACCESS_KEY", "testing"),
        ("SECRET_KEY", "testing"),
    ]);
    let release = ENGINES[engine].0;
    let (mut loaded, mut written) = (0, 0);
    for (shard, s) in sts.iter().enumerate() {
        for ordinal in 0..c.replicas.min(2) {
            let mut env = pod_env(s, ordinal, &secrets);
            let pod = env["CLICKHOUSE_REPLICA_ID"].clone();
            if c.s3.as_ref().is_some_and(|s| s.use_environment_credentials) {
                // What the pod's identity (IRSA, an instance profile) provides.
                env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
                env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
            }
            let what = format!("{what} on ClickHouse {release}, {pod}");
            let queries: &[&str] = if bucket.is_some() {
                &[INFO, WRITE]
            } else {
                &[INFO]
            };
            let out = load(
                engine,
                std::slice::from_ref(&server),
                &[IMAGE_USERS.into(), users.clone()],
                &env,
                queries,
            );
            assert!(out["engine"].is_string(), "{what}: {out}");
            check_info(c, &sts, &pod, shard as u32, &out["results"][0][0], &what);
            if let Some(b) = bucket {
                let row = &out["results"][1][0];
                assert_eq!(
                    (&row[0], &row[1], &row[2]),
                    (&json!(1000), &json!(499500), &json!("s3_main")),
                    "{what}: {out}"
                );
                // The cache as the engine sized it, once a write has used it.
                assert_eq!(
                    row[3],
                    json!([["s3_disk_cache", b.cache_bytes.to_string()]]),
                    "{what}"
                );
                let mine = count(b.moto, b.name, &format!("{}{pod}/", b.folder));
                assert!(mine > 0, "{what}: nothing under {}{pod}/", b.folder);
                written += mine;
            }
            loaded += 1;
        }
    }
    if let Some(b) = bucket {
        assert_eq!(
            count(b.moto, b.name, &b.folder),
            written,
            "{what}: objects outside the replicas' folders"
        );
    }
    loaded
}

/// Objects under `prefix` in moto's `bucket`.
fn count(moto: &moto::Moto, bucket: &str, prefix: &str) -> usize {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let aws = moto.aws("clickhouse-test").await;
        let out = aws
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        out.key_count().unwrap_or(0) as usize
    })
}

fn make_bucket(moto: &moto::Moto, bucket: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let aws = moto.aws("clickhouse-test").await;
        let cfg = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
            .build();
        aws.s3
            .create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(cfg)
            .send()
            .await
            .unwrap();
    });
}

fn plan_text(name: &str) -> String {
    std::fs::read_to_string(Env::plans().join(format!("{name}.yaml"))).unwrap()
}

#[test]
fn the_weave_s3_plan_loads_in_clickhouse_and_each_replica_writes_to_its_own_folder() {
    let moto = moto::Moto::start();
    make_bucket(&moto, "weave");
    let shipped = plan_text("weave-clickhouse-s3");
    let endpoint = "https://s3.us-east-1.amazonaws.com/bucketname/foldername/";
    assert!(shipped.contains(endpoint));
    // As shipped (credentials from the pod's identity, a 100Gi cache), and with a credentials
    // Secret and the default cache (80% of the 200Gi volume).
    let secret = shipped
        .replace(
            "      useEnvironmentCredentials: true\n",
            "      useEnvironmentCredentials: false\n      credentialsSecret: weave-s3\n",
        )
        .replace("      cacheSize: 100Gi\n", "");
    let variants = [
        ("env-credentials", shipped.clone(), 100u64 << 30),
        ("secret-credentials", secret, 160 << 30),
    ];
    let mut loaded = 0;
    for (variant, text, cache_bytes) in variants {
        for (engine, (release, _)) in ENGINES.iter().enumerate() {
            let folder = format!("{variant}/{release}/");
            let c = bundled(&text.replace(endpoint, &format!("{}/weave/{folder}", moto.url)));
            let bucket = Bucket {
                moto: &moto,
                name: "weave",
                folder,
                cache_bytes,
            };
            loaded += check_plan(
                engine,
                Some(&bucket),
                &c,
                &format!("weave-clickhouse-s3 ({variant})"),
            );
        }
    }
    println!("{loaded} replica configurations loaded, each writing through S3 to its own folder");
}

#[test]
fn the_production_clickhouse_loads_in_clickhouse_with_weaves_cluster_name() {
    let mut loaded = 0;
    let production = plan_text("production");
    // As shipped, and with a cluster name Weave's migrations refuse (its alias is loaded too).
    let hyphen = production.replace(
        "    mode: bundled\n    replicas: 3\n",
        "    mode: bundled\n    replicas: 3\n    shards: 2\n    clusterName: weave-prod\n",
    );
    assert_ne!(hyphen, production);
    for text in [production, hyphen] {
        let c = bundled(&text);
        for engine in 0..ENGINES.len() {
            loaded += check_plan(
                engine,
                None,
                &c,
                &format!("production ({})", c.cluster_name),
            );
        }
    }
    println!("{loaded} replica configurations loaded");
}

#[test]
fn the_altinity_plans_weave_cluster_loads_in_clickhouse() {
    let plan = wbstack_plan::parse("weave-altinity", &plan_text("weave-altinity")).unwrap();
    let c: AltinityClickhouse = wbstack_plan::compile(&plan)
        .into_iter()
        .find_map(|s| match s.kind {
            StepKind::ClickhouseAltinity(c) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_ne!(
        c.weave_cluster, c.cluster_name,
        "the shipped plan's cluster name has a hyphen"
    );
    let chi = wbstack_k8s::render::clickhouse_altinity(&c).pop().unwrap();
    let file = chi["spec"]["configuration"]["files"][wbstack_k8s::render::WEAVE_CLUSTER_FILE]
        .as_str()
        .unwrap()
        .to_owned();
    for (engine, (release, _)) in ENGINES.iter().enumerate() {
        let out = load(
            engine,
            std::slice::from_ref(&file),
            &[IMAGE_USERS.into()],
            &BTreeMap::new(),
            &[INFO],
        );
        let info = &out["results"][0][0];
        let mut expected = Vec::new();
        for s in 0..c.shards {
            for r in 0..c.replicas {
                let host = format!("chi-{}-{}-{s}-{r}", c.name, c.cluster_name);
                expected.push(((s + 1).to_string(), (r + 1).to_string(), host));
            }
        }
        assert_eq!(
            hosts(info, &c.weave_cluster),
            expected,
            "ClickHouse {release}: {out}"
        );
    }
}

#[test]
fn the_configuration_of_the_earlier_release_is_refused_by_current_clickhouse() {
    // The harness tells a configuration that does not load from one that does: the cache disk
    // as wbstack wrote it before (an absolute path outside the caches directory, a query setting
    // among the disk's) is refused by the current engine.
    let c = bundled(&plan_text("weave-clickhouse-s3"));
    let (server, _, sts) = rendered(&c);
    let old = server
        .replace("<path>s3_disk_cache/</path>", "<path>/var/lib/clickhouse/s3_disk_cache/cache/</path>")
        .replace("<cache_on_write_operations>1</cache_on_write_operations>", "<cache_on_write_operations>1</cache_on_write_operations>\n        <enable_filesystem_cache_on_write_operations>1</enable_filesystem_cache_on_write_operations>");
    assert_ne!(old, server);
    let mut env = pod_env(
        &sts[0],
        0,
        &BTreeMap::from([(c.password_key.as_str(), PASSWORD)]),
    );
    env.insert(
        wbstack_k8s::render::S3_ENDPOINT_ENV.into(),
        "http://127.0.0.1:9/weave-bucket/folder/".into(),
    );
    let out = load(1, &[old], &[], &env, &[]);
    let error = out["load_error"]
        .as_str()
        .unwrap_or_else(|| panic!("loaded: {out}"));
    assert!(
        error.contains("enable_filesystem_cache_on_write_operations")
            || error.contains("must lie inside"),
        "{error}"
    );
    println!("ClickHouse {} refuses it: {error}", ENGINES[1].0);
}

/// ClickHouse's HTTP interface served from a real engine (chdb at 26.9) that loaded one replica's
/// rendered configuration and environment; killed when dropped.
struct Served {
    child: std::process::Child,
    port: u16,
}

impl Served {
    fn start(server: &str, users: &str, env: &BTreeMap<String, String>) -> Served {
        use std::io::{BufRead, Write};
        let bin = venv("chdb-26.9", ENGINES[1].1);
        let mut child = std::process::Command::new(bin.join("python"))
            .arg(python::script("clickhouse_http.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let input = json!({"config": [server], "users": [IMAGE_USERS, users], "env": env});
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).unwrap();
        drop(stdin);
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("the harness did not start: {line:?}"))
            .parse()
            .unwrap();
        Served { child, port }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn probe(
    port: u16,
    user: &str,
    password: &str,
    cluster: Option<&str>,
    replicas: u32,
) -> Vec<wbstack_verify::Finding> {
    use wbstack_verify::Probe as _;
    let r = wbstack_engine::SecretRef::new("kubernetes", "wandb/wbstack-clickhouse")
        .with_key("CLICKHOUSE_PASSWORD");
    let probe = wbstack_verify::Clickhouse {
        target: wbstack_verify::ClickhouseTarget {
            at: wbstack_verify::Endpoint {
                host: "127.0.0.1".into(),
                port,
                user: Some(user.into()),
                password: Ok(wbstack_engine::Secret::new(r, password)),
                ca: None,
            },
            database: "weave_trace_db".into(),
            cluster: cluster.map(str::to_owned),
            expected_replicas: Some(replicas),
        },
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(probe.run())
}

fn verdict(f: &[wbstack_verify::Finding], checked: &str) -> wbstack_verify::Verdict {
    f.iter()
        .find(|x| x.checked.starts_with(checked))
        .unwrap_or_else(|| panic!("no {checked:?} in {f:#?}"))
        .verdict
}

/// The probe meets a real engine: a replica of the production plan (replicated, 3 replicas) and
/// a replica of the Weave S3 plan writing through `s3_main` to moto. The embedded engine reaches
/// no other replica and no Keeper, so those checks fail here, named; everything the one server
/// answers passes, and a replica removed from the cluster's configuration, a wrong password and
/// a wrong user each fail for their reason.
#[test]
fn the_clickhouse_probe_meets_a_replica_served_by_a_real_engine() {
    use wbstack_verify::Verdict::{Fail, Pass, Warn};
    let c = bundled(&plan_text("production"));
    let (server, users, sts) = rendered(&c);
    let secrets = BTreeMap::from([(c.password_key.as_str(), PASSWORD)]);
    let env = pod_env(&sts[0], 0, &secrets);
    let replicas = c.shards * c.replicas;
    let weave = "weave_cluster";
    {
        let served = Served::start(&server, &users, &env);
        let f = probe(served.port, &c.user, PASSWORD, Some(weave), replicas);
        assert!(f[0].seen.starts_with("ClickHouse 26.9"), "{f:#?}");
        assert_eq!(f[0].verdict, Pass);
        assert_eq!(verdict(&f, "a wrong password is refused"), Pass);
        assert_eq!(verdict(&f, "database weave_trace_db"), Warn);
        assert_eq!(
            verdict(&f, &format!("cluster {weave} in system.clusters")),
            Pass,
            "{f:#?}"
        );
        assert_eq!(verdict(&f, "each replica answers"), Fail, "{f:#?}");
        assert_eq!(verdict(&f, "Keeper answers"), Fail, "{f:#?}");

        let f = probe(
            served.port,
            &c.user,
            "not-the-password",
            Some(weave),
            replicas,
        );
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].seen.contains("516"), "{f:#?}");
        assert!(f[0].todo.as_deref().unwrap().contains("not the server's"));
    }
    // One replica removed from the cluster Weave uses, by hand.
    let last = format!("<host>{}-2.", sts[0]["metadata"]["name"].as_str().unwrap());
    let start = server
        .rfind(&last)
        .expect("the third replica is in remote_servers");
    let open = server[..start].rfind("<replica>").unwrap();
    let close = server[start..].find("</replica>").unwrap() + start + "</replica>".len();
    let mut fewer = server.clone();
    fewer.replace_range(open..close, "");
    let served = Served::start(&fewer, &users, &env);
    let f = probe(served.port, &c.user, PASSWORD, Some(weave), replicas);
    let members = f
        .iter()
        .find(|x| x.checked == format!("cluster {weave} in system.clusters"))
        .unwrap();
    assert_eq!(members.verdict, Fail, "{f:#?}");
    assert_eq!(
        members.seen,
        format!("{} of the plan's {replicas} replicas", replicas - 1)
    );
}

#[test]
fn the_clickhouse_probe_writes_through_s3_main_to_moto() {
    use wbstack_verify::Verdict::Pass;
    let moto = moto::Moto::start();
    make_bucket(&moto, "weave");
    let shipped = plan_text("weave-clickhouse-s3");
    let endpoint = "https://s3.us-east-1.amazonaws.com/bucketname/foldername/";
    let c = bundled(&shipped.replace(endpoint, &format!("{}/weave/probe/", moto.url)));
    let (server, users, sts) = rendered(&c);
    let secrets = BTreeMap::from([(c.password_key.as_str(), PASSWORD)]);
    let mut env = pod_env(&sts[0], 0, &secrets);
    env.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
    let served = Served::start(&server, &users, &env);
    let f = probe(served.port, &c.user, PASSWORD, None, c.shards * c.replicas);
    let s3 = f
        .iter()
        .find(|x| x.checked == "rows written through the s3_main policy read back")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert_eq!(s3.verdict, Pass, "{f:#?}");
    // Under the replica's own folder, and removed again.
    let pod = &env["CLICKHOUSE_REPLICA_ID"];
    assert!(s3.seen.contains(&format!("probe/{pod}/")), "{s3:?}");
    assert_eq!(
        count(&moto, "weave", "probe/"),
        0,
        "the probe left data behind"
    );
}

/// One live object, as the cluster holds it.
fn live(env: &Env, kind: &str, ns: &str, name: &str) -> Value {
    serde_json::from_str(&env.kubectl(&["get", kind, name, "-n", ns, "-o", "json"])).unwrap()
}

/// The live ClickHouse of an environment: its server configuration and users (the ConfigMap),
/// the first shard's StatefulSet, and the password its pods read.
fn live_clickhouse(env: &Env, c: &BundledClickhouse) -> (String, String, Value, String) {
    let objects = wbstack_k8s::render::clickhouse_bundled(c);
    let named = |kind: &str| {
        let o = objects
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && (kind != "StatefulSet"
                        || o["metadata"]["labels"]["app.kubernetes.io/component"] == "server")
            })
            .unwrap();
        live(
            env,
            kind,
            &c.namespace,
            o["metadata"]["name"].as_str().unwrap(),
        )
    };
    let config = named("ConfigMap");
    let sts = named("StatefulSet");
    let secret = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["valueFrom"]["secretKeyRef"]["key"] == c.password_key.as_str())
        .map(|e| {
            e["valueFrom"]["secretKeyRef"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .unwrap();
    let data = &live(env, "secret", &c.namespace, &secret)["data"][&c.password_key];
    use base64::Engine as _;
    let password = base64::engine::general_purpose::STANDARD
        .decode(data.as_str().unwrap())
        .unwrap();
    (
        config["data"]["wbstack.xml"].as_str().unwrap().to_owned(),
        config["data"]["users.xml"].as_str().unwrap().to_owned(),
        sts,
        String::from_utf8(password).unwrap(),
    )
}

/// The live configuration of a running Weave environment, served by a real engine: the probe
/// finds every replica of the plan in the cluster Weave uses. A replica deleted from the live
/// ConfigMap by hand fails that check alone, named; `up` writes the configuration back and the
/// check passes again.
#[test]
fn a_replica_deleted_from_the_live_cluster_config_fails_alone_until_up_restores_it() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    make_bucket(&moto, "weave");
    let endpoint = "https://s3.us-east-1.amazonaws.com/bucketname/foldername/";
    let text =
        plan_text("weave-clickhouse-s3").replace(endpoint, &format!("{}/weave/probe/", moto.url));
    let c = bundled(&text);
    let plan = env.plan_from("weave.yaml", &text);
    env.ok(&["up", "--plan", &plan]);
    let replicas = c.shards * c.replicas;
    // The cluster Weave is told to use, as the live resource tells it (verify reads it there).
    let cr: Value =
        serde_json::from_str(&env.kubectl(&["get", "weightsandbiases", "-A", "-o", "json"]))
            .unwrap();
    let told =
        &cr["items"][0]["spec"]["values"]["weave-trace"]["env"]["WF_CLICKHOUSE_REPLICATED_CLUSTER"];
    let cluster = told.as_str().unwrap_or("weave_cluster").to_owned();
    let verdicts = || {
        let (server, users, sts, password) = live_clickhouse(&env, &c);
        let secrets = BTreeMap::from([(c.password_key.as_str(), password.as_str())]);
        let mut pod = pod_env(&sts, 0, &secrets);
        pod.insert("AWS_ACCESS_KEY_ID".into(), "testing".into());
        pod.insert("AWS_SECRET_ACCESS_KEY".into(), "testing".into());
        let served = Served::start(&server, &users, &pod);
        let f = probe(served.port, &c.user, &password, Some(&cluster), replicas);
        f.into_iter()
            .map(|x| (x.checked, x.verdict, x.seen))
            .collect::<Vec<_>>()
    };
    let members = format!("cluster {cluster} in system.clusters");
    let healthy = verdicts();
    let seen = |v: &[(String, wbstack_verify::Verdict, String)]| {
        v.iter().find(|x| x.0 == members).cloned().unwrap()
    };
    assert_eq!(
        seen(&healthy).1,
        wbstack_verify::Verdict::Pass,
        "{healthy:#?}"
    );

    // By hand: the last replica out of the live ConfigMap's cluster.
    let objects = wbstack_k8s::render::clickhouse_bundled(&c);
    let cm = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let name = cm["metadata"]["name"].as_str().unwrap();
    let mut edited = live(&env, "configmap", &c.namespace, name);
    let server = edited["data"]["wbstack.xml"].as_str().unwrap().to_owned();
    let open = server.rfind("<replica>").unwrap();
    let close = server[open..].find("</replica>").unwrap() + open + "</replica>".len();
    let mut fewer = server.clone();
    fewer.replace_range(open..close, "");
    edited["data"]["wbstack.xml"] = json!(fewer);
    let path = env.dir.path().join("edited.json");
    std::fs::write(&path, edited.to_string()).unwrap();
    env.kubectl(&["replace", "-f", path.to_str().unwrap()]);
    let broken = verdicts();
    let differ: Vec<_> = healthy
        .iter()
        .zip(&broken)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(healthy.len(), broken.len(), "{broken:#?}");
    assert_eq!(
        differ,
        [(
            members.clone(),
            wbstack_verify::Verdict::Fail,
            format!("{} of the plan's {replicas} replicas", replicas - 1)
        )],
        "{broken:#?}"
    );

    env.ok(&["up", "--plan", &plan]);
    let restored = live(&env, "configmap", &c.namespace, name);
    assert_eq!(restored["data"]["wbstack.xml"], json!(server));
    assert_eq!(seen(&verdicts()).1, wbstack_verify::Verdict::Pass);
    env.ok(&["down", "--env", "wandb-weave-s3"]);
}
