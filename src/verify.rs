//! `verify`: the probes of a running environment, each with its verdict; a summary line; exit 0
//! when nothing failed, 7 when something did. The references are checked from here; the data
//! paths are probed from a Job inside the cluster as the W&B pods (`--from-here`: from here).
//! `up --verify` and `spec.verify` run the same probes at the end of a successful run.

use crate::cli::{OutputFormat, ProbeOpts, Target, JOB_IMAGE};
use crate::cluster::connect;
use crate::env::target_plan;
use crate::exit::{CliError, Exit};
use std::time::{Duration, Instant};
use wbstack_k8s::Kube;
use wbstack_plan::Plan;
use wbstack_verify::{
    choose, in_cluster, references, run_all, Finding, Options, Order, ProbeJob, Summary, Verdict,
    Wiring,
};

/// How long one probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(20);
/// How long the probe Job may take, from creation to its findings (its image pulled, its
/// probes run).
const JOB_LIMIT: Duration = Duration::from_secs(120);

/// What the probes found, and how long they took.
pub struct Probed {
    findings: Vec<Finding>,
    /// Where the data paths were probed from: `here`, or `Job <namespace>/<name>`.
    from: String,
    took: Duration,
}

pub async fn verify(
    flag: Option<&str>,
    t: &Target,
    opts: &ProbeOpts,
    fmt: OutputFormat,
) -> Result<Exit, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let plan = &loaded.plan;
    let conn = connect(t, plan, &at).await?;
    let probed = probe(&conn.kube, plan, t.sandbox, opts).await;
    conn.close();
    Ok(show(&plan.metadata.name, &probed, fmt))
}

/// Runs every probe the live resource's wiring allows: in a Job inside the cluster, or from
/// here (`--from-here`, and the sandbox, which runs no pods).
pub async fn probe(kube: &Kube, plan: &Plan, sandbox: bool, opts: &ProbeOpts) -> Probed {
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
                from: "here".into(),
                took: started.elapsed(),
            };
        }
    };
    let o = Options {
        in_cluster: false,
        sandbox,
        skip_certificate: opts.skip_certificate,
        clickhouse_replicas: clickhouse_replicas(plan),
    };
    let (from, findings) = if opts.from_here || sandbox {
        (
            "here".to_owned(),
            from_here(&wiring, &o, aws_endpoint(plan)).await,
        )
    } else {
        let mut findings = run_all(&Vec::from_iter(references(&wiring)), PROBE_LIMIT).await;
        let inside = Options {
            in_cluster: true,
            ..o
        };
        let order = Order::new(&wiring, inside, aws_endpoint(plan));
        let job = ProbeJob {
            image: opts.probe_image.clone().unwrap_or_else(|| JOB_IMAGE.into()),
            limit: JOB_LIMIT,
        };
        let (job, mut inside) = in_cluster(kube, &wiring, &order, &job, |m| {
            eprintln!("{}: {m}", plan.metadata.name)
        })
        .await;
        findings.append(&mut inside);
        (format!("Job {job}"), findings)
    };
    Probed {
        findings,
        from,
        took: started.elapsed(),
    }
}

/// The probes, run from this process.
async fn from_here(wiring: &Wiring, o: &Options, endpoint: Option<String>) -> Vec<Finding> {
    let mut chosen = choose(wiring, o).await;
    bucket(endpoint, o.sandbox, wiring, &mut chosen).await;
    let mut findings = run_all(&chosen.probes, PROBE_LIMIT).await;
    findings.append(&mut chosen.skipped);
    findings
}

/// `verify --in-pod`: the probe Job's side. Runs what the order in its environment asks, with
/// the Secrets its environment was given, and prints the findings as one JSON line.
pub async fn in_pod() -> Result<Exit, CliError> {
    let order = Order::from_env().map_err(CliError::invalid)?;
    let wiring = order.wiring();
    let findings = from_here(&wiring, &order.options, order.aws_endpoint.clone()).await;
    println!("{}", serde_json::json!({ "findings": findings }));
    Ok(Exit::Ok)
}

/// An AWS endpoint other than AWS's own, from the plan or the environment.
fn aws_endpoint(plan: &Plan) -> Option<String> {
    plan.spec
        .aws
        .as_ref()
        .and_then(|a| a.endpoint.clone())
        .or_else(|| {
            std::env::var("WBSTACK_AWS_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
        })
}

/// How many ClickHouse replicas the plan deploys (shards times replicas), if it deploys one.
fn clickhouse_replicas(plan: &Plan) -> Option<u32> {
    wbstack_plan::compile(plan).into_iter().find_map(|s| {
        let servers = s.kind.footprint(None).servers?;
        (servers.what == "clickhouse").then_some(servers.count)
    })
}

/// The bucket probe, as the pods' identity.
#[cfg(feature = "aws")]
async fn bucket(
    endpoint: Option<String>,
    sandbox: bool,
    w: &Wiring,
    chosen: &mut wbstack_verify::Chosen,
) {
    let Some(target) = w.bucket() else {
        let why = "the values name no S3 bucket (the chart keeps files itself)";
        chosen
            .skipped
            .push(Finding::skip("bucket", "the bucket", why));
        return;
    };
    let settings = wbstack_aws::AwsSettings {
        region: Some(target.region.clone()),
        endpoint: endpoint.clone(),
        static_credentials: crate::sandbox::credentials(sandbox),
    };
    let aws = match wbstack_aws::Aws::connect(&settings, &w.resource).await {
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
    match wbstack_verify::access(w, &aws.s3, &aws.sts).await {
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
async fn bucket(_: Option<String>, _: bool, w: &Wiring, chosen: &mut wbstack_verify::Chosen) {
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
    print(env, p, s, fmt);
    if s.fail > 0 {
        Exit::VerifyFailed
    } else {
        Exit::Ok
    }
}

fn print(env: &str, p: &Probed, s: Summary, fmt: OutputFormat) {
    let (findings, took) = (&p.findings, p.took);
    if fmt == OutputFormat::Json {
        println!(
            "{}",
            serde_json::json!({"environment": env, "from": p.from, "findings": findings, "summary": s, "ms": took.as_millis() as u64})
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
        "{env}: {} passed, {} warned, {} failed, {} skipped in {:.1} s (data paths probed from {})",
        s.pass,
        s.warn,
        s.fail,
        s.skip,
        took.as_secs_f64(),
        p.from
    );
}
