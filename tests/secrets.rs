//! One scan over every artefact a production run leaves, for every secret value the run knows
//! (the license, each generated password in the cluster and in Secrets Manager), raw and in
//! base64: the state directory (journal, plan copy, each run's events, the HTML report), the logs
//! at `-vvv` and the JSON output (`report`'s too), every
//! Kubernetes object other than a Secret (events included), the AWS resources' tags and
//! descriptions, and a sandbox run's persisted cluster apart from its Secrets' data.

use base64::Engine as _;
use serde_json::Value;
use wbstack_test_support::moto;
use wbstack_test_support::{text, Env, Exited, LICENSE};

/// Each value, raw and in base64 (standard and URL-safe).
fn forms(values: &[String]) -> Vec<String> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let url = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    values
        .iter()
        .filter(|v| v.len() >= 8)
        .flat_map(|v| [v.clone(), b64.encode(v), url.encode(v)])
        .collect()
}

/// The values of the Secrets wbstack made, decoded.
fn secret_values(objects: &[Value]) -> Vec<String> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    objects
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "wbstack")
        .flat_map(|o| {
            o["data"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_values()
        })
        .filter_map(|v| v.as_str().and_then(|s| b64.decode(s).ok()))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// Every object of every listable kind, as JSON.
fn all_objects(env: &Env) -> Vec<Value> {
    let kinds = env.kubectl(&["api-resources", "--verbs=list", "-o", "name"]);
    let kinds: Vec<&str> = kinds.lines().collect();
    let list: Value =
        serde_json::from_str(&env.kubectl(&["get", &kinds.join(","), "-A", "-o", "json"])).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The Secrets themselves, as artefacts: the scan must find the values there.
fn the_secrets(objects: &[Value]) -> Vec<(String, String)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Secret")
        .map(|o| ("Secret".to_owned(), o.to_string()))
        .collect()
}

/// Where each secret form was found, by artefact.
fn hits(artefacts: &[(String, String)], forms: &[String]) -> Vec<String> {
    artefacts
        .iter()
        .flat_map(|(name, body)| {
            forms
                .iter()
                .filter(|f| body.contains(f.as_str()))
                .map(move |_| name.clone())
        })
        .collect()
}

/// The text of every file under `dir`.
fn files(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        if let Ok(t) = std::fs::read(&e) {
            out.push((
                e.display().to_string(),
                String::from_utf8_lossy(&t).into_owned(),
            ));
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

async fn aws_descriptions(aws: &wbstack_aws::Aws) -> String {
    let mut s = String::new();
    let c = aws.rds.describe_db_clusters().send().await.unwrap();
    s += &format!(
        "{:?}",
        c.db_clusters()
            .iter()
            .map(|c| c.tag_list())
            .collect::<Vec<_>>()
    );
    let i = aws.rds.describe_db_instances().send().await.unwrap();
    s += &format!(
        "{:?}",
        i.db_instances()
            .iter()
            .map(|i| i.tag_list())
            .collect::<Vec<_>>()
    );
    let secrets = aws.secrets.list_secrets().send().await.unwrap();
    s += &format!("{:?}", secrets.secret_list());
    let keys = aws.kms.list_keys().send().await.unwrap();
    for k in keys.keys() {
        let id = k.key_id().unwrap();
        let d = aws.kms.describe_key().key_id(id).send().await.unwrap();
        s += &format!("{:?}", d.key_metadata().and_then(|m| m.description()));
        let t = aws
            .kms
            .list_resource_tags()
            .key_id(id)
            .send()
            .await
            .unwrap();
        s += &format!("{:?}", t.tags());
    }
    let buckets = aws.s3.list_buckets().send().await.unwrap();
    for b in buckets.buckets() {
        if let Ok(t) = aws
            .s3
            .get_bucket_tagging()
            .bucket(b.name().unwrap())
            .send()
            .await
        {
            s += &format!("{:?}", t.tag_set());
        }
    }
    let groups = aws
        .elasticache
        .describe_replication_groups()
        .send()
        .await
        .unwrap();
    for g in groups.replication_groups() {
        s += &format!("{:?}", g.description());
        if let Some(arn) = g.arn() {
            if let Ok(t) = aws
                .elasticache
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
            {
                s += &format!("{:?}", t.tag_list());
            }
        }
    }
    s
}

#[test]
fn no_secret_value_is_in_any_artefact_of_a_production_run() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml")).unwrap();
    let prod = env.plan_from(
        "prod.yaml",
        &moto.production_plan(&plan.replace("  protected: true\n", "")),
    );
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        moto::Moto::point(&moto.url, &mut c);
        c.output().unwrap()
    };
    let mut artefacts: Vec<(String, String)> = Vec::new();
    for args in [
        vec!["up", "--plan", prod.as_str(), "-vvv"],
        vec!["up", "--plan", prod.as_str(), "--output", "json", "-vvv"],
        vec!["status", "--env", "wandb-prod", "--output", "json"],
        vec!["output", "--env", "wandb-prod", "--output", "json"],
        vec!["plan", "--plan", prod.as_str(), "--output", "json"],
        vec![
            "report",
            "--env",
            "wandb-prod",
            "--run",
            "1",
            "--output",
            "json",
        ],
        vec![
            "report",
            "--env",
            "wandb-prod",
            "--html",
            ".wbstack/report.html",
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        artefacts.push((
            format!("{args:?} stdout"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        artefacts.push((
            format!("{args:?} stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    artefacts.extend(files(&env.dir.path().join(".wbstack")));
    for kept in ["report.html", "run-2.events.jsonl"] {
        assert!(
            artefacts.iter().any(|(name, _)| name.ends_with(kept)),
            "{kept} is among the artefacts scanned"
        );
    }
    let objects = all_objects(&env);
    for o in objects.iter().filter(|o| o["kind"] != "Secret") {
        artefacts.push((
            format!("{} {}", o["kind"], o["metadata"]["name"]),
            o.to_string(),
        ));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (aws_text, mut values) = rt.block_on(async {
        let aws = moto.aws("wandb-prod").await;
        let mut values = Vec::new();
        let list = aws.secrets.list_secrets().send().await.unwrap();
        for s in list.secret_list() {
            let v = aws
                .secrets
                .get_secret_value()
                .secret_id(s.arn().unwrap())
                .send()
                .await
                .unwrap();
            values.push(v.secret_string().unwrap().to_owned());
        }
        (aws_descriptions(&aws).await, values)
    });
    artefacts.push(("AWS tags and descriptions".into(), aws_text));
    values.extend(secret_values(&objects));
    values.push(LICENSE.to_owned());
    values.sort();
    values.dedup();
    assert!(
        values.len() >= 5,
        "the license, two Secrets Manager values, the copies and generated passwords: {}",
        values.len()
    );
    let forms = forms(&values);
    // The scan finds what is there: every value is in the Secrets themselves.
    assert!(
        !hits(&the_secrets(&objects), &forms).is_empty(),
        "the scan sees the Secrets' own values"
    );
    let found = hits(&artefacts, &forms);
    let bytes: usize = artefacts.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "secret scan: {} secret values ({} forms) over {} artefacts ({bytes} bytes): {} hits",
        values.len(),
        forms.len(),
        artefacts.len(),
        found.len()
    );
    assert!(found.is_empty(), "secret values found in: {found:?}");
}

#[test]
fn no_secret_value_is_in_the_persisted_sandbox_apart_from_its_secrets() {
    let env = Env::new(50);
    let out = env
        .cmd(&[
            "up",
            "--plan",
            &Env::plans().join("poc.yaml").display().to_string(),
            "--sandbox",
            "-vvv",
        ])
        .env("WBSTACK_SANDBOX_DELAY_MS", "200")
        .output()
        .unwrap()
        .succeeded();
    let path = env
        .dir
        .path()
        .join(".wbstack/sandbox/wandb-dev/sandbox-cluster.json");
    let snap: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let objects = snap["objects"].as_array().cloned().unwrap_or_default();
    let mut values = secret_values(&objects);
    values.push(LICENSE.to_owned());
    let forms = forms(&values);
    let mut artefacts: Vec<(String, String)> = objects
        .iter()
        .filter(|o| o["kind"] != "Secret")
        .map(|o| {
            (
                format!("{} {}", o["kind"], o["metadata"]["name"]),
                o.to_string(),
            )
        })
        .collect();
    artefacts.push(("up -vvv".into(), text(&out)));
    assert!(
        !hits(&the_secrets(&objects), &forms).is_empty(),
        "the scan sees the Secrets' own values"
    );
    let found = hits(&artefacts, &forms);
    eprintln!(
        "sandbox secret scan: {} values over {} objects and the logs: {} hits",
        values.len(),
        artefacts.len(),
        found.len()
    );
    assert!(found.is_empty(), "{found:?}");
}
