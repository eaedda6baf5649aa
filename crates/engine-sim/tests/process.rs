//! The engine as a separate process: killed at random moments (also half-way through a journal
//! write), interrupted by SIGINT, and contending for the environment lock.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use wbstack_engine::{Journal, Ownership, StepId};
use wbstack_engine_sim::{Cloud, FileCloud, Shape};

struct Env {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    cloud: PathBuf,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let cloud = tmp.path().join("cloud");
        Env {
            _tmp: tmp,
            state,
            cloud,
        }
    }

    fn cmd(&self, sub: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_engine-sim"));
        c.arg(sub)
            .arg("--state")
            .arg(&self.state)
            .arg("--cloud")
            .arg(&self.cloud)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, sub: &str, extra: &[&str]) -> Output {
        self.cmd(sub, extra).output().unwrap()
    }

    fn spawn(&self, sub: &str, extra: &[&str]) -> Child {
        self.cmd(sub, extra).spawn().unwrap()
    }

    fn cloud(&self) -> FileCloud {
        FileCloud::new(&self.cloud)
    }

    fn journal(&self) -> PathBuf {
        self.state.join("journal.jsonl")
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok || sig == "-9");
}

/// Every resource in the cloud is recorded as created by this environment, and none was
/// created twice since the call log's entry `since`.
fn assert_nothing_unrecorded(env: &Env, since: usize, context: &str) {
    let state = Journal::read_state(&env.journal()).unwrap();
    for name in env.cloud().list() {
        let st = state.steps.get(&StepId::new(name.clone()));
        assert!(
            st.is_some_and(|s| matches!(s.owner, Some(Ownership::Created { .. }))),
            "{context}: resource {name} exists but the journal does not own it: {st:?}"
        );
    }
    let mut created = std::collections::BTreeMap::new();
    for (op, name) in env.cloud().calls().into_iter().skip(since) {
        if op == "create" {
            *created.entry(name).or_insert(0) += 1;
        }
    }
    for (name, n) in created {
        assert_eq!(n, 1, "{context}: {name} was created {n} times");
    }
}

const SHAPE: [&str; 8] = [
    "--steps", "36", "--width", "6", "--fan-in", "2", "--seed", "7",
];

/// Runs `sub` and kills it with SIGKILL after a random delay, or lets it tear a journal write.
/// Returns whether it was killed before it finished.
fn run_and_kill(env: &Env, sub: &str, args: &[&str], rng: &mut StdRng, torn: bool) -> bool {
    if torn {
        let at = rng.random_range(1..25).to_string();
        let mut a = args.to_vec();
        a.extend(["--tear-at", &at]);
        return env.run(sub, &a).status.code().is_none();
    }
    let mut child = env.spawn(sub, args);
    std::thread::sleep(Duration::from_millis(rng.random_range(0..900)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap().code().is_none()
}

#[test]
fn killed_at_random_moments_resume_converges_with_each_resource_created_once() {
    let env = Env::new();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut args: Vec<&str> = SHAPE.to_vec();
    args.extend([
        "--delay-min",
        "40",
        "--delay-max",
        "250",
        "--destroy-ms",
        "60",
        "--parallelism",
        "3",
    ]);
    let (mut kills, mut torn, mut generations) = (0, 0, 0);
    let mut since = 0;
    let mut attempt = 0;
    // Keep killing until 50 runs died part-way and 15 died in the middle of a journal write.
    while kills < 50 || torn < 15 {
        attempt += 1;
        assert!(
            attempt < 400,
            "too many runs finished before they could be killed"
        );
        let tear = kills >= 50 || (torn < 15 && attempt % 4 == 0);
        let killed = run_and_kill(&env, "up", &args, &mut rng, tear);
        let what = if tear { "torn write" } else { "kill" };
        assert_nothing_unrecorded(&env, since, &format!("after {what} in run {attempt}"));
        if killed {
            if tear {
                torn += 1
            } else {
                kills += 1
            }
            continue;
        }
        // The run finished: the environment converged. Check it, tear it down (killing the
        // teardown too) and start another generation.
        generations += 1;
        assert_eq!(
            env.cloud().list().len(),
            36,
            "a finished up leaves every resource"
        );
        let mut downs = 0;
        loop {
            let killed = run_and_kill(&env, "down", &args, &mut rng, false);
            assert_nothing_unrecorded(&env, since, "after a killed teardown");
            if !killed {
                break;
            }
            downs += 1;
            assert!(downs < 50);
        }
        assert!(
            env.cloud().list().is_empty(),
            "a finished down leaves nothing"
        );
        since = env.cloud().calls().len();
    }
    let out = env.run("up", &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(env.cloud().list().len(), 36);
    assert_nothing_unrecorded(&env, since, "after the final resume");
    // A converged re-run applies nothing.
    let out = env.run("up", &args);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["stats"]["apply_calls"], 0);
    assert_eq!(report["stats"]["unchanged"], 36);
    let out = env.run("down", &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.cloud().list().is_empty());
    eprintln!("{kills} kills, {torn} torn writes, {generations} generations in {attempt} runs");
}

#[test]
fn an_interrupted_teardown_resumes_and_keeps_the_order() {
    let env = Env::new();
    let mut args: Vec<&str> = SHAPE.to_vec();
    args.extend([
        "--delay-min",
        "0",
        "--delay-max",
        "5",
        "--destroy-ms",
        "150",
        "--parallelism",
        "4",
    ]);
    assert_eq!(env.run("up", &args).status.code(), Some(0));
    let mut child = env.spawn("down", &args);
    // Kill it once the teardown has visibly started (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while env.cloud().list().len() == 36 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = env.cloud().list().len();
    assert!(
        left > 0 && left < 36,
        "the teardown was interrupted part-way ({left} left)"
    );
    let out = env.run("down", &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["resumed"], true);
    assert!(env.cloud().list().is_empty());
    let nodes = Shape {
        steps: 36,
        width: 6,
        fan_in: 2,
        seed: 7,
    }
    .nodes((0, 5));
    let calls = env.cloud().calls();
    let gone = |n: &str| {
        calls
            .iter()
            .position(|(o, x)| o == "deleted" && x == n)
            .unwrap()
    };
    let last_start = |n: &str| {
        calls
            .iter()
            .rposition(|(o, x)| o == "destroy" && x == n)
            .unwrap()
    };
    for n in &nodes {
        for &d in &n.deps {
            assert!(
                gone(&n.name) < last_start(&nodes[d].name),
                "{} was still there when {} started to go",
                n.name,
                nodes[d].name
            );
        }
    }
}

#[test]
fn one_run_at_a_time_and_a_dead_holder_is_recovered() {
    let env = Env::new();
    let mut holder = Command::new(env!("CARGO_BIN_EXE_engine-sim"))
        .args(["hold-lock", "--secs", "60", "--state"])
        .arg(&env.state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let started = std::time::Instant::now();
    let out = env.run("up", &SHAPE);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", holder.id())), "{err}");
    assert!(err.contains("engine-sim hold-lock"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once"
    );
    assert!(env.cloud().calls().is_empty(), "nothing ran");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = env.run("up", &SHAPE);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigint_stops_the_run_and_resume_completes_without_duplicates() {
    let env = Env::new();
    let mut args: Vec<&str> = SHAPE.to_vec();
    args.extend([
        "--delay-min",
        "150",
        "--delay-max",
        "300",
        "--parallelism",
        "4",
    ]);
    let child = env.spawn("up", &args);
    // Interrupt it once it has made something (bounded wait).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while env.cloud().list().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "cancelled");
    let made = env.cloud().list().len();
    assert!(made > 0 && made < 36, "{made}");
    assert_nothing_unrecorded(&env, 0, "after SIGINT");
    let out = env.run("up", &args);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["resumed"], true);
    assert_eq!(env.cloud().list().len(), 36);
    assert_nothing_unrecorded(&env, 0, "after resume");
}

#[test]
fn rollback_policy_in_a_separate_process_leaves_nothing_owned() {
    let env = Env::new();
    let cloud = env.cloud();
    cloud.set_fault("s00020", &wbstack_engine_sim::Fault::Permanent);
    let out = env.run(
        "up",
        &[
            &SHAPE[..],
            &["--delay-min", "0", "--delay-max", "5", "--rollback"],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "rolled_back");
    assert!(cloud.list().is_empty(), "{:?}", cloud.list());
}
