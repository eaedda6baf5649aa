//! Kill trials of the production plan against moto and the emulated cluster; prints figures and
//! every failure's full record, asserts nothing by time.
//!
//! `cargo test --release --bench kill -- --trials 100` (or without `--release`; `--seed N`,
//! `--delay-ms N` for the emulator's readiness pace). A first run is not killed: it gives the
//! run's length and its journal records. Then trials kill `wbstack up` with SIGKILL once the
//! journal holds a given number of records (each record boundary once when the trials are at
//! least twice the records, else half the trials at boundaries spread evenly), and the others at
//! a random moment of the run. Each trial then runs `resume` and checks an independent inventory (every AWS
//! resource by listing, every object of the cluster) against the first run's, runs `up` again
//! (it must make no apply call), tears down with `down --force --skip-final-snapshot` (a kept
//! snapshot keeps the key that encrypts it), and checks that nothing the
//! environment owned is left.

use wbstack_test_support::bench;
use wbstack_test_support::moto;

use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Args {
    trials: usize,
    seed: u64,
    delay_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        trials: 10,
        seed: 7,
        delay_ms: 20,
    };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        let n = || {
            w[1].parse()
                .unwrap_or_else(|_| panic!("{} needs a number", w[0]))
        };
        match w[0].as_str() {
            "--trials" => a.trials = n() as usize,
            "--seed" => a.seed = n(),
            "--delay-ms" => a.delay_ms = n(),
            _ => {}
        }
    }
    a
}

/// Where a trial kills the run.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// Once the journal holds this many records.
    AtRecord(usize),
    /// This long after the start.
    AtTime(Duration),
}

/// What a trial saw.
struct Record {
    trial: usize,
    kill: Kill,
    /// Journal records when the kill landed (None: the run ended first).
    killed_at: Option<usize>,
    problems: Vec<String>,
    log: Vec<String>,
}

/// One environment's world: an emulated cluster and a state directory; moto is shared and
/// reset between trials.
struct World {
    rt: tokio::runtime::Runtime,
    running: kube_emulator::Running,
    dir: tempfile::TempDir,
    plan: PathBuf,
}

impl World {
    fn new(moto: &moto::Moto, delay_ms: u64) -> World {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let running = bench::emulator(&rt, delay_ms);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kubeconfig"), running.kubeconfig()).unwrap();
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/production.yaml"),
        )
        .unwrap()
        .replace("  protected: true\n", "")
        // moto never finishes deleting a replication group.
        .replace(
            "  redis:\n    mode: elasticache\n",
            "  redis:\n    mode: in-cluster\n",
        );
        let plan = dir.path().join("prod.yaml");
        std::fs::write(&plan, moto.production_plan(&text)).unwrap();
        World {
            rt,
            running,
            dir,
            plan,
        }
    }

    fn cmd(&self, moto: &moto::Moto, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wbstack"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .env("WANDB_LICENSE", "lic-kill-bench")
            .env("NO_COLOR", "1")
            .env_remove("WBSTACK_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        moto::Moto::point(&moto.url, &mut c);
        c
    }

    fn run(&self, moto: &moto::Moto, args: &[&str]) -> Output {
        self.cmd(moto, args).output().unwrap()
    }

    fn journal_records(&self) -> usize {
        let p = self.dir.path().join(".wbstack/wandb-prod/journal.jsonl");
        std::fs::read_to_string(p)
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0)
    }

    /// Every object of the cluster as `kind namespace/name`, but events, leases and what
    /// controllers name at random (pods, replica sets, controller revisions).
    fn objects(&self) -> BTreeSet<String> {
        self.running
            .cluster
            .snapshot()
            .objects
            .iter()
            .filter(|o| {
                let random = ["Event", "Lease", "Pod", "ReplicaSet", "ControllerRevision"];
                !random.contains(&o["kind"].as_str().unwrap_or(""))
            })
            .map(|o| {
                format!(
                    "{} {}/{}",
                    o["kind"].as_str().unwrap_or(""),
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

/// Every AWS resource, listed independently: `kind name` (KMS keys by state).
fn aws_inventory(rt: &tokio::runtime::Runtime, moto: &moto::Moto) -> Vec<String> {
    rt.block_on(async {
        let aws = moto.aws("wandb-prod").await;
        let mut v = Vec::new();
        for k in aws.kms.list_keys().send().await.unwrap().keys() {
            let d = aws
                .kms
                .describe_key()
                .key_id(k.key_id().unwrap())
                .send()
                .await
                .unwrap();
            let state = d
                .key_metadata()
                .and_then(|m| m.key_state())
                .map(|s| s.as_str().to_owned());
            if state.as_deref() == Some("Enabled") {
                v.push("kms-key Enabled".to_owned());
            }
        }
        for b in aws.s3.list_buckets().send().await.unwrap().buckets() {
            v.push(format!("bucket {}", b.name().unwrap_or("")));
        }
        for s in aws
            .secrets
            .list_secrets()
            .send()
            .await
            .unwrap()
            .secret_list()
        {
            v.push(format!("secret {}", s.name().unwrap_or("")));
        }
        for c in aws
            .rds
            .describe_db_clusters()
            .send()
            .await
            .unwrap()
            .db_clusters()
        {
            v.push(format!(
                "db-cluster {}",
                c.db_cluster_identifier().unwrap_or("")
            ));
        }
        for i in aws
            .rds
            .describe_db_instances()
            .send()
            .await
            .unwrap()
            .db_instances()
        {
            v.push(format!(
                "db-instance {}",
                i.db_instance_identifier().unwrap_or("")
            ));
        }
        for g in aws
            .rds
            .describe_db_subnet_groups()
            .send()
            .await
            .unwrap()
            .db_subnet_groups()
        {
            v.push(format!(
                "db-subnet-group {}",
                g.db_subnet_group_name().unwrap_or("")
            ));
        }
        let groups = aws
            .rds
            .describe_db_cluster_parameter_groups()
            .send()
            .await
            .unwrap();
        for g in groups.db_cluster_parameter_groups() {
            let name = g.db_cluster_parameter_group_name().unwrap_or("");
            if !name.starts_with("default.") {
                v.push(format!("db-cluster-parameter-group {name}"));
            }
        }
        for r in aws.iam.list_roles().send().await.unwrap().roles() {
            v.push(format!("iam-role {}", r.role_name()));
        }
        v.sort();
        v
    })
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `up` and kills it where `kill` says; returns the journal records at the kill.
fn killed_up(w: &World, moto: &moto::Moto, kill: Kill) -> Option<usize> {
    let mut child = w
        .cmd(moto, &["up", "--plan", w.plan.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        let due = match kill {
            Kill::AtRecord(n) => w.journal_records() >= n,
            Kill::AtTime(t) => start.elapsed() >= t,
        };
        if due {
            child.kill().unwrap();
            child.wait().unwrap();
            return Some(w.journal_records());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The first run, not killed: its length, journal records, cluster objects and AWS resources.
struct Baseline {
    length: Duration,
    records: usize,
    objects: BTreeSet<String>,
    aws: Vec<String>,
}

fn baseline(moto: &moto::Moto, delay_ms: u64) -> Baseline {
    let w = World::new(moto, delay_ms);
    let start = Instant::now();
    let out = w.run(moto, &["up", "--plan", w.plan.to_str().unwrap()]);
    assert!(out.status.success(), "the first run: {}", text(&out));
    let b = Baseline {
        length: start.elapsed(),
        records: w.journal_records(),
        objects: w.objects(),
        aws: aws_inventory(&w.rt, moto),
    };
    let out = w.run(
        moto,
        &[
            "down",
            "--env",
            "wandb-prod",
            "--force",
            "--skip-final-snapshot",
        ],
    );
    assert!(out.status.success(), "the first teardown: {}", text(&out));
    b
}

fn trial(moto: &moto::Moto, base: &Baseline, i: usize, kill: Kill, delay_ms: u64) -> Record {
    let w = World::new(moto, delay_ms);
    let mut r = Record {
        trial: i,
        kill,
        killed_at: killed_up(&w, moto, kill),
        problems: Vec::new(),
        log: Vec::new(),
    };
    let step = |what: &str, args: &[&str], r: &mut Record| -> Option<Output> {
        let out = w.run(moto, args);
        r.log.push(format!("{what}: {}", text(&out)));
        if !out.status.success() {
            r.problems.push(format!("{what} failed"));
            return None;
        }
        Some(out)
    };
    if step(
        "resume",
        &["up", "--plan", w.plan.to_str().unwrap()],
        &mut r,
    )
    .is_some()
    {
        let objects = w.objects();
        if objects != base.objects {
            let extra: Vec<_> = objects.difference(&base.objects).collect();
            let missing: Vec<_> = base.objects.difference(&objects).collect();
            r.problems.push(format!(
                "cluster objects differ: extra {extra:?}, missing {missing:?}"
            ));
        }
        let aws = aws_inventory(&w.rt, moto);
        if aws != base.aws {
            r.problems.push(format!(
                "AWS resources differ: {aws:?} against {:?}",
                base.aws
            ));
        }
        let rerun = ["up", "--plan", w.plan.to_str().unwrap(), "--output", "json"];
        if let Some(out) = step("re-run", &rerun, &mut r) {
            let last = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .to_owned();
            let v: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
            if v["report"]["stats"]["apply_calls"] != 0 {
                r.problems
                    .push(format!("the re-run applied: {}", v["report"]["stats"]));
            }
        }
    }
    if step(
        "down",
        &[
            "down",
            "--env",
            "wandb-prod",
            "--force",
            "--skip-final-snapshot",
        ],
        &mut r,
    )
    .is_some()
    {
        let aws = aws_inventory(&w.rt, moto);
        if !aws.is_empty() {
            r.problems.push(format!("left on AWS: {aws:?}"));
        }
        let left: Vec<_> = w
            .objects()
            .into_iter()
            .filter(|o| o.contains("/wandb") || o.contains("wbstack"))
            .collect();
        if !left.is_empty() {
            r.problems.push(format!("left in the cluster: {left:?}"));
        }
    }
    moto.raw("POST", "/moto-api/reset", "");
    r
}

fn main() {
    let a = args();
    let moto = moto::Moto::start();
    let started = Instant::now();
    let base = baseline(&moto, a.delay_ms);
    moto.raw("POST", "/moto-api/reset", "");
    println!(
        "first run: {:.1} s, {} journal records, {} cluster objects, {} AWS resources",
        base.length.as_secs_f64(),
        base.records,
        base.objects.len(),
        base.aws.len()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let mut records = Vec::new();
    // Every record boundary once when there are trials enough (twice the records); otherwise
    // half the trials at boundaries spread evenly. The rest at random moments.
    let bounds = if a.trials >= 2 * base.records {
        base.records
    } else {
        a.trials.div_ceil(2)
    };
    for i in 0..a.trials {
        let kill = if i < bounds {
            Kill::AtRecord(i * base.records / bounds + 1)
        } else {
            Kill::AtTime(base.length.mul_f64(rng.random::<f64>()))
        };
        let r = trial(&moto, &base, i, kill, a.delay_ms);
        println!(
            "trial {i:3}: {kill:?}, killed at {}: {}",
            r.killed_at
                .map_or("- (the run ended first)".to_owned(), |n| format!(
                    "record {n}"
                )),
            if r.problems.is_empty() {
                "pass".to_owned()
            } else {
                r.problems.join("; ")
            }
        );
        records.push(r);
    }
    summary(&records, base.records, started.elapsed());
}

fn summary(records: &[Record], total: usize, took: Duration) {
    let passed = records.iter().filter(|r| r.problems.is_empty()).count();
    println!("\nkill points (journal records when killed, of {total} in a whole run):");
    let buckets = 10usize;
    let mut counts = vec![0usize; buckets + 1];
    for r in records {
        match r.killed_at {
            Some(n) => counts[(n * buckets / total.max(1)).min(buckets - 1)] += 1,
            None => counts[buckets] += 1,
        }
    }
    for (b, c) in counts.iter().enumerate() {
        let label = if b == buckets {
            "ended before the kill".to_owned()
        } else {
            format!("{:>3}-{:>3}%", b * 100 / buckets, (b + 1) * 100 / buckets)
        };
        println!("  {label:>22}: {c:3} {}", "#".repeat(*c));
    }
    println!(
        "\n{passed} of {} trials passed in {:.0} s",
        records.len(),
        took.as_secs_f64()
    );
    for r in records.iter().filter(|r| !r.problems.is_empty()) {
        println!(
            "\n--- trial {} ({:?}, killed at {:?}) ---",
            r.trial, r.kill, r.killed_at
        );
        for p in &r.problems {
            println!("problem: {p}");
        }
        for l in &r.log {
            println!("{l}");
        }
    }
    if passed != records.len() {
        std::process::exit(1);
    }
}
