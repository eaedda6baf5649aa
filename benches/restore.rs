//! A restore drill: production's data brought back as a new environment, against the seeds'
//! recovery objectives (RPO 1 h, RTO 4 h). Prints figures, asserts nothing by time.
//!
//! `cargo test --bench restore [-- --scale 20 --cluster-min 20 --instance-min 10 --cache-min 15]`
//!
//! Production comes up on moto and the emulated cluster; then, with AWS's readiness paced by
//! the proxy in front of moto (a restored Aurora cluster, each instance and a replication group
//! are reported `creating` for the minutes given, one wall second standing for `--scale`
//! seconds), `wbstack restore` brings up `wandb-dr` from production's latest restorable time,
//! and after production's teardown `wandb-dr2` from the final snapshot it kept. For each: the
//! recovery point (what the source reports as restorable, against the moment of the
//! "failure") and the time to ready at AWS's pace. The waits poll as they do against AWS, so
//! the paced time is an upper bound: a poll interval is scaled up with everything else.

use wbstack_test_support::bench;
use wbstack_test_support::moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn arg(name: &str, default: f64) -> f64 {
    let v: Vec<String> = std::env::args().collect();
    v.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].parse().expect("a number"))
        .unwrap_or(default)
}

struct Drill {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    url: String,
}

impl Drill {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wbstack"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env("WANDB_LICENSE", "lic-restore-drill")
            .env("NO_COLOR", "1")
            .env_remove("WBSTACK_STATE_DIR")
            .stdin(Stdio::null());
        moto::Moto::point(&self.url, &mut c);
        c.output().unwrap()
    }

    fn must(&self, args: &[&str]) -> Duration {
        let t = Instant::now();
        let out = self.run(args);
        if out.status.code() != Some(0) {
            eprintln!(
                "{args:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            std::process::exit(1);
        }
        t.elapsed()
    }
}

fn minutes(d: Duration) -> f64 {
    d.as_secs_f64() / 60.0
}

fn main() {
    let scale = arg("--scale", 20.0);
    let at_pace = |min: f64| Duration::from_secs_f64(min * 60.0 / scale);
    let pace = moto::elasticache::Pace {
        cluster: at_pace(arg("--cluster-min", 20.0)),
        instance: at_pace(arg("--instance-min", 10.0)),
        cache: at_pace(arg("--cache-min", 15.0)),
    };
    let moto = moto::Moto::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = bench::emulator(&rt, 20);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kube_emulator::kubeconfig(&running.url())).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    let text = std::fs::read_to_string(root.join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "");
    std::fs::write(dir.path().join("prod.yaml"), moto.production_plan(&text)).unwrap();
    let drill = Drill {
        dir,
        kubeconfig,
        url: moto.url.clone(),
    };
    drill.must(&["up", "--plan", "prod.yaml"]);
    let aws = rt.block_on(moto.aws("wandb-prod"));
    // A daily cache snapshot, as ElastiCache takes in its window.
    rt.block_on(
        aws.elasticache
            .create_snapshot()
            .replication_group_id("wandb-prod-redis")
            .snapshot_name("wandb-prod-redis-daily")
            .send(),
    )
    .unwrap();
    moto.caches.pace(pace);
    println!(
        "AWS pace: restored cluster {:.0} min, instance {:.0} min, replication group {:.0} min (1 s = {scale} s)",
        arg("--cluster-min", 20.0),
        arg("--instance-min", 10.0),
        arg("--cache-min", 15.0)
    );

    // Point in time: the failure is now; the source says what it can restore.
    let failure = SystemTime::now();
    let latest = rt.block_on(async {
        let c = aws
            .rds
            .describe_db_clusters()
            .db_cluster_identifier("wandb-prod-mysql")
            .send()
            .await
            .unwrap();
        c.db_clusters()[0]
            .latest_restorable_time()
            .map(|t| t.secs())
    });
    let failed_at = failure
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let rpo = latest.map(|l| (failed_at - l).max(0));
    let took = drill.must(&[
        "restore",
        "--env",
        "wandb-dr",
        "--from",
        "wandb-prod",
        "--to-time",
        "latest",
    ]);
    report("point in time (latest)", rpo, took, scale);

    // Final snapshot: production torn down, its snapshot kept.
    drill.must(&["down", "--env", "wandb-dr", "--skip-final-snapshot"]);
    drill.must(&["down", "--env", "wandb-prod"]);
    let snapshot = rt.block_on(async {
        let s = aws
            .rds
            .describe_db_cluster_snapshots()
            .snapshot_type("manual")
            .send()
            .await
            .unwrap();
        s.db_cluster_snapshots()[0]
            .db_cluster_snapshot_identifier()
            .unwrap()
            .to_owned()
    });
    let took = drill.must(&[
        "restore",
        "--env",
        "wandb-dr2",
        "--from",
        "wandb-prod",
        "--snapshot",
        &snapshot,
    ]);
    // The snapshot is taken as the teardown starts: what is lost is what was written after.
    report("final snapshot", Some(0), took, scale);
    drill.must(&["down", "--env", "wandb-dr2", "--skip-final-snapshot"]);
    drop(running);
}

fn report(how: &str, rpo_s: Option<i64>, wall: Duration, scale: f64) {
    let paced = Duration::from_secs_f64(wall.as_secs_f64() * scale);
    println!(
        "restore from {how}: recovery point {} before the failure (RPO 60 min); time to ready {:.1} s wall, {:.0} min at AWS's pace (RTO 240 min)",
        rpo_s.map_or("unknown".into(), |s| format!("{:.1} min", s as f64 / 60.0)),
        wall.as_secs_f64(),
        minutes(paced)
    );
}
