//! Many environments at once against one emulated cluster and one moto: prints figures, asserts
//! nothing by time.
//!
//! `cargo test --release --bench scale -- --envs 1,10,50` (or without `--release`). For each
//! count, that many environments (four PoC to one production, each in its own namespace, the
//! production ones with their own AWS names) are brought up by separate `wbstack` processes at
//! once, sharing one state directory; each is then planned (it must show no change: no
//! environment disturbed another) and all are torn down at once. It prints the wall times, the
//! peak RSS of the processes, the requests per environment to the cluster and to AWS, the
//! emulator's and moto's load, and fails if any run failed or anything is left.

use bench::peak_kib;
use wbstack_test_support::bench;
use wbstack_test_support::moto;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn counts() -> Vec<usize> {
    let v: Vec<String> = std::env::args().collect();
    v.windows(2)
        .find(|w| w[0] == "--envs")
        .map(|w| {
            w[1].split(',')
                .map(|n| n.parse().expect("--envs 1,10,50"))
                .collect()
        })
        .unwrap_or_else(|| vec![1, 10])
}

struct Fleet {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    plans: Vec<(String, PathBuf)>,
}

fn plan_text(moto: &moto::Moto, i: usize) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans");
    if i % 5 == 4 {
        let name = format!("prod-{i}");
        let t = std::fs::read_to_string(root.join("production.yaml"))
            .unwrap()
            .replace("  protected: true\n", "")
            .replace("  name: wandb-prod\n", &format!("  name: {name}\n"))
            .replace(
                "    namespace: wandb\n",
                &format!("    namespace: {name}\n"),
            )
            .replace("wandb-prod-artifacts", &format!("{name}-artifacts"))
            .replace(
                "  redis:\n    mode: elasticache\n",
                "  redis:\n    mode: in-cluster\n",
            );
        (name, moto.production_plan(&t))
    } else {
        let name = format!("poc-{i}");
        let t = std::fs::read_to_string(root.join("poc.yaml"))
            .unwrap()
            .replace("  name: wandb-dev\n", &format!("  name: {name}\n"))
            .replace(
                "    namespace: wandb\n",
                &format!("    namespace: {name}\n"),
            );
        (name, t)
    }
}

impl Fleet {
    fn new(moto: &moto::Moto, url: &str, n: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kube_emulator::kubeconfig(url)).unwrap();
        let plans = (0..n)
            .map(|i| {
                let (name, text) = plan_text(moto, i);
                let p = dir.path().join(format!("{name}.yaml"));
                std::fs::write(&p, text).unwrap();
                (name, p)
            })
            .collect();
        Fleet {
            dir,
            kubeconfig,
            plans,
        }
    }

    fn spawn(&self, aws: &str, args: &[&str]) -> Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wbstack"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env("WANDB_LICENSE", "lic-scale-bench")
            .env("NO_COLOR", "1")
            .env_remove("WBSTACK_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        moto::Moto::point(aws, &mut c);
        c.spawn().unwrap()
    }

    /// Runs one command per environment at once; returns the wall time, each process's peak
    /// RSS (KiB), how long each one took, and the failures with their output.
    fn all(&self, aws: &str, args: impl Fn(&str, &Path) -> Vec<String>) -> Round {
        let start = Instant::now();
        let mut running: Vec<(String, Child, u64)> = self
            .plans
            .iter()
            .map(|(name, p)| {
                let a = args(name, p);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                (name.clone(), self.spawn(aws, &a), 0)
            })
            .collect();
        let mut peaks = Vec::new();
        let mut took = Vec::new();
        let mut failures = Vec::new();
        while !running.is_empty() {
            let mut i = 0;
            while i < running.len() {
                let (_, child, peak) = &mut running[i];
                *peak = (*peak).max(peak_kib(child.id()));
                if child.try_wait().unwrap().is_some() {
                    let (name, child, peak) = running.remove(i);
                    let out = child.wait_with_output().unwrap();
                    peaks.push(peak);
                    took.push((start.elapsed(), name.clone()));
                    let code = out.status.code();
                    if code != Some(0) {
                        failures.push(format!(
                            "{name}: exit {code:?}\n{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                } else {
                    i += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        took.sort();
        Round {
            wall: start.elapsed(),
            peaks,
            took,
            failures,
        }
    }
}

/// One command run for every environment at once.
struct Round {
    wall: Duration,
    peaks: Vec<u64>,
    /// When each process ended (from the round's start), fastest first.
    took: Vec<(Duration, String)>,
    failures: Vec<String>,
}

impl Round {
    /// The median and the slowest process, named.
    fn times(&self) -> String {
        let (mid, (last, name)) = (
            &self.took[self.took.len() / 2].0,
            &self.took[self.took.len() - 1],
        );
        format!(
            "p50 {:.1} s, slowest {name} {:.1} s",
            mid.as_secs_f64(),
            last.as_secs_f64()
        )
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn spread(v: &mut [u64]) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    format!("p50 {:.0} MiB, max {:.0} MiB", mib(at(0.5)), mib(at(1.0)))
}

fn main() {
    let moto = moto::Moto::start();
    let moto_pid = moto.pid();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut bad = 0;
    let mut rows = Vec::new();
    for n in counts() {
        let running = bench::emulator(&rt, 20);
        let recorder = moto::Recorder::start(&moto);
        let fleet = Fleet::new(&moto, &running.url(), n);
        let stats = &running.cluster.stats;
        let k8s = || {
            stats.reads.load(Ordering::Relaxed)
                + stats.mutations.load(Ordering::Relaxed)
                + stats.watches.load(Ordering::Relaxed)
        };
        let up = |_: &str, p: &Path| vec!["up".into(), "--plan".into(), p.display().to_string()];
        let up = fleet.all(&recorder.url, up);
        let (mut peaks, mut failed) = (up.peaks.clone(), up.failures.clone());
        let (k8s_up, aws_up) = (k8s(), recorder.ops().len());
        let plan = |_: &str, p: &Path| {
            let p = p.display().to_string();
            vec![
                "plan".into(),
                "--plan".into(),
                p,
                "--detailed-exitcode".into(),
            ]
        };
        let disturbed = fleet.all(&recorder.url, plan).failures;
        let down = |name: &str, _: &Path| {
            ["down", "--env", name, "--force", "--skip-final-snapshot"]
                .map(String::from)
                .to_vec()
        };
        let down = fleet.all(&recorder.url, down);
        failed.extend(
            disturbed
                .into_iter()
                .map(|f| format!("plan shows a change: {f}")),
        );
        failed.extend(down.failures.iter().cloned());
        let objects = running.cluster.snapshot().objects;
        let left: Vec<String> = objects
            .iter()
            .filter(|o| {
                let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
                let name = o["metadata"]["name"].as_str().unwrap_or("");
                ns.starts_with("poc-")
                    || ns.starts_with("prod-")
                    || name.starts_with("poc-")
                    || name.starts_with("prod-")
                    || name.contains("wandb-operator")
            })
            .map(|o| {
                format!(
                    "{} {}/{}",
                    o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]
                )
            })
            .collect();
        if !left.is_empty() {
            failed.push(format!("left in the cluster: {left:?}"));
        }
        peaks.extend(&down.peaks);
        let prod = n / 5;
        let row = format!(
            "{n:>3} environments ({prod} production): up {:.1} s wall ({}), down {:.1} s wall ({}); wbstack RSS {}; per environment {:.0} Kubernetes requests (up), {:.0} (all three commands); per production environment {:.1} AWS requests (up), {:.1} (all three); emulator {} requests in all, {:.0} MiB RSS with the bench; moto peak {:.0} MiB; {} failures",
            up.wall.as_secs_f64(),
            up.times(),
            down.wall.as_secs_f64(),
            down.times(),
            spread(&mut peaks),
            k8s_up as f64 / n as f64,
            k8s() as f64 / n as f64,
            aws_up as f64 / prod.max(1) as f64,
            recorder.ops().len() as f64 / prod.max(1) as f64,
            k8s(),
            mib(peak_kib(std::process::id())),
            mib(peak_kib(moto_pid)),
            failed.len()
        );
        println!("{row}");
        rows.push(row);
        for f in &failed {
            println!("--- {f}");
        }
        bad += failed.len();
        moto.raw("POST", "/moto-api/reset", "");
    }
    println!("\n{}", rows.join("\n"));
    if bad > 0 {
        std::process::exit(1);
    }
}
