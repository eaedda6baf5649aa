//! `verify`: the probes of a running environment, run from where wbstack runs, each with its
//! verdict; a summary line; exit 0 when nothing failed, 7 when something did. `up --verify`
//! and `spec.verify` run the same probes at the end of a successful run.

use crate::cli::{OutputFormat, Target};
use crate::cluster::connect;
use crate::env::target_plan;
use crate::exit::{CliError, Exit};
use std::time::{Duration, Instant};
use wbstack_k8s::Kube;
use wbstack_plan::Plan;
use wbstack_verify::{choose, run_all, Finding, Options, Summary, Verdict, Wiring};

/// How long one probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// What the probes found, and how long they took.
pub struct Probed {
    findings: Vec<Finding>,
    took: Duration,
}

pub async fn verify(
    flag: Option<&str>,
    t: &Target,
    skip_certificate: bool,
    fmt: OutputFormat,
) -> Result<Exit, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let plan = &loaded.plan;
    let conn = connect(t, plan, &at).await?;
    let probed = probe(&conn.kube, plan, t.sandbox, skip_certificate).await;
    conn.close();
    Ok(show(&plan.metadata.name, &probed, fmt))
}

/// Runs every probe the live resource's wiring allows from here.
pub async fn probe(kube: &Kube, plan: &Plan, sandbox: bool, skip_certificate: bool) -> Probed {
    let started = Instant::now();
    let (ns, name) = (&plan.spec.kubernetes.namespace, &plan.spec.wandb.name);
    let wiring = match Wiring::read(kube, ns, name).await {
        Ok(w) => w,
        Err(seen) => {
            let f = Finding::fail(
                "references",
                format!("WeightsAndBiases {ns}/{name}"),
                seen,
                "check that the environment is up (`wbstack status`)",
            );
            return Probed {
                findings: vec![f],
                took: started.elapsed(),
            };
        }
    };
    let o = Options {
        sandbox,
        skip_certificate,
        clickhouse_replicas: clickhouse_replicas(plan),
    };
    let mut chosen = choose(kube, &wiring, &o).await;
    bucket(kube, plan, &wiring, &mut chosen).await;
    let mut findings = run_all(&chosen.probes, PROBE_LIMIT).await;
    findings.append(&mut chosen.skipped);
    Probed {
        findings,
        took: started.elapsed(),
    }
}

/// How many ClickHouse replicas the plan deploys (shards times replicas), if it deploys one.
fn clickhouse_replicas(plan: &Plan) -> Option<u32> {
    wbstack_plan::compile(plan)
        .into_iter()
        .find_map(|s| match s.kind {
            wbstack_plan::StepKind::ClickhouseBundled(c) => Some(c.shards * c.replicas),
            wbstack_plan::StepKind::ClickhouseAltinity(c) => Some(c.shards * c.replicas),
            _ => None,
        })
}

/// The bucket probe, as the pods' identity.
#[cfg(feature = "aws")]
async fn bucket(kube: &Kube, plan: &Plan, w: &Wiring, chosen: &mut wbstack_verify::Chosen) {
    let Some(target) = w.bucket() else {
        let why = "the values name no S3 bucket (the chart keeps files itself)";
        chosen
            .skipped
            .push(Finding::skip("bucket", "the bucket", why));
        return;
    };
    let endpoint = plan
        .spec
        .aws
        .as_ref()
        .and_then(|a| a.endpoint.clone())
        .or_else(|| {
            std::env::var("WBSTACK_AWS_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
        });
    let settings = wbstack_aws::AwsSettings {
        region: Some(target.region.clone()),
        endpoint: endpoint.clone(),
        static_credentials: None,
    };
    let aws = match wbstack_aws::Aws::connect(&settings, &plan.metadata.name).await {
        Ok(a) => a,
        Err(e) => {
            let checked = format!("s3://{}", target.name);
            let todo = "configure AWS credentials and a region for verify";
            chosen
                .skipped
                .push(Finding::fail("bucket", checked, e.to_string(), todo));
            return;
        }
    };
    match wbstack_verify::access(kube, w, &aws.s3, &aws.sts).await {
        Ok(access) => chosen.probes.push(Box::new(wbstack_verify::Bucket {
            target,
            access,
            origin: w.host(),
            endpoint,
        })),
        Err(r) => chosen.skipped.push(Finding::fail(
            "bucket",
            format!("take on {}", r.who),
            r.why,
            "the role's trust policy must name the cluster's OIDC provider and this ServiceAccount (`wbstack up` writes it)",
        )),
    }
}

#[cfg(not(feature = "aws"))]
async fn bucket(_: &Kube, _: &Plan, w: &Wiring, chosen: &mut wbstack_verify::Chosen) {
    if w.bucket().is_some() {
        let why = "this wbstack was built without AWS support (the `aws` feature)";
        chosen
            .skipped
            .push(Finding::skip("bucket", "the bucket", why));
    }
}

/// Prints the findings and the summary; the exit code they make.
pub fn show(env: &str, p: &Probed, fmt: OutputFormat) -> Exit {
    let s = Summary::of(&p.findings);
    print(env, &p.findings, s, p.took, fmt);
    if s.fail > 0 {
        Exit::VerifyFailed
    } else {
        Exit::Ok
    }
}

fn print(env: &str, findings: &[Finding], s: Summary, took: Duration, fmt: OutputFormat) {
    if fmt == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({"environment": env, "findings": findings, "summary": s, "ms": took.as_millis() as u64})
        );
        return;
    }
    for f in findings {
        println!(
            "{:<5} {:<11} {}: {}",
            f.verdict.label(),
            f.probe,
            f.checked,
            f.seen
        );
        if let Some(todo) = f.todo.as_ref().filter(|_| f.verdict != Verdict::Pass) {
            println!("{:<17} -> {todo}", "");
        }
    }
    println!(
        "{env}: {} passed, {} warned, {} failed, {} skipped in {:.1} s",
        s.pass,
        s.warn,
        s.fail,
        s.skip,
        took.as_secs_f64()
    );
}
