//! State in S3 (moto): two machines share one environment, one run at a time holds it, a dead
//! holder's lease is taken over, and nothing is kept on the machine that ran.

use std::process::{Command, Output};
use std::time::Duration;
use wbstack_test_support::moto;
use wbstack_test_support::{last_json, text, Env, Exited};

const STORE: &str = "s3://team-state/wbstack";

/// The emulated cluster, moto with the team's state bucket, and a second working directory
/// (another machine: nothing of the first one's files).
struct Team {
    env: Env,
    moto: moto::Moto,
    other: tempfile::TempDir,
}

impl Team {
    fn new(delay_ms: u64) -> Team {
        let moto = moto::Moto::start();
        moto.create_bucket("team-state");
        Team {
            env: Env::new(delay_ms),
            moto,
            other: tempfile::tempdir().unwrap(),
        }
    }

    /// A command on the first machine, state in the team's bucket.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.env.cmd(args);
        moto::Moto::point(&self.moto.url, &mut c);
        c.env("WBSTACK_STATE_DIR", STORE);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> Output {
        wbstack_test_support::ok(&mut self.cmd(args))
    }

    #[track_caller]
    fn expect(&self, args: &[&str], code: i32) -> Output {
        wbstack_test_support::expect_code(&mut self.cmd(args), code)
    }

    /// The same command on the second machine.
    fn run_elsewhere(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        c.current_dir(self.other.path())
            .env("HOME", self.other.path());
        c.output().unwrap()
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        self.moto.keys("team-state", prefix)
    }

    /// Nothing of any environment's state on either machine.
    fn assert_nothing_local(&self) {
        for d in [self.env.dir.path(), self.other.path()] {
            assert!(
                !d.join(".wbstack").exists(),
                "state kept in {}",
                d.display()
            );
        }
    }
}

#[test]
fn a_second_machine_resumes_what_the_first_was_killed_in_the_middle_of() {
    let team = Team::new(1500);
    let poc = team.env.plan("poc.yaml");
    let mut killed = 0;
    for i in 0..2u64 {
        let mut child = team.cmd(&["up", "--plan", &poc]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(1000 + i * 700));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(killed >= 2, "only {killed} runs were killed part-way");
    let keys = team.keys("wbstack/wandb-dev/");
    assert!(
        keys.contains(&"wbstack/wandb-dev/plan.yaml".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains("/journal/segment-")),
        "{keys:?}"
    );
    // The killed run's lease is still there; its holder is gone from this host, so the other
    // machine (here the same host) need not wait it out.
    assert!(
        keys.contains(&"wbstack/wandb-dev/lock.json".to_owned()),
        "{keys:?}"
    );
    let out = team.run_elsewhere(&["list", "--output", "json"]);
    let row = last_json(&out);
    assert_eq!(row["last_run"]["status"], "unfinished", "{row}");
    assert!(
        row["locked_by"].as_str().unwrap().contains("running `"),
        "{row}"
    );
    let out = team
        .run_elsewhere(&["resume", "--env", "wandb-dev", "--timeout", "120"])
        .succeeded();
    assert!(
        text(&out).contains("state in s3://team-state/wbstack/wandb-dev"),
        "{}",
        text(&out)
    );
    let objs = team.env.objects();
    let wandbs = objs
        .iter()
        .filter(|(k, _, _)| k == "WeightsAndBiases")
        .count();
    assert_eq!(wandbs, 1);
    let mut dedup = objs.clone();
    dedup.dedup();
    assert_eq!(objs, dedup);
    // The first machine sees the second one's work, and a re-run there changes nothing.
    let out = team.ok(&["up", "--plan", &poc, "--output", "json"]);
    assert_eq!(last_json(&out)["report"]["stats"]["apply_calls"], 0);
    let out = team.run(&["status", "--env", "wandb-dev", "--output", "json"]);
    let v = last_json(&out);
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "ready"),
        "{v}"
    );
    let out = team.run(&["output", "--env", "wandb-dev", "--output", "json"]);
    assert_eq!(
        last_json(&out)["state"],
        "s3://team-state/wbstack/wandb-dev"
    );
    // Released at the end of each run.
    assert!(!team
        .keys("wbstack/wandb-dev/")
        .contains(&"wbstack/wandb-dev/lock.json".to_owned()));
    team.run_elsewhere(&["down", "--env", "wandb-dev"])
        .succeeded();
    team.assert_nothing_local();
}

#[test]
fn concurrent_ups_of_one_environment_exactly_one_runs() {
    let team = Team::new(200);
    let poc = team.env.plan("poc.yaml");
    let a = team.cmd(&["up", "--plan", &poc]).spawn().unwrap();
    let mut b = team.cmd(&["up", "--plan", &poc]);
    b.current_dir(team.other.path());
    let b = b.spawn().unwrap();
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let mut codes: Vec<_> = outs.iter().map(|o| o.status.code()).collect();
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(3)],
        "{}\n{}",
        text(&outs[0]),
        text(&outs[1])
    );
    let refused = outs.iter().find(|o| o.status.code() == Some(3)).unwrap();
    assert!(
        text(refused).contains("environment is locked by pid")
            && text(refused).contains("running `"),
        "{}",
        text(refused)
    );
}

#[test]
fn a_live_foreign_lease_refuses_an_expired_one_is_taken_over_and_unlock_works_remotely() {
    let team = Team::new(50);
    let poc = team.env.plan("poc.yaml");
    let now = wbstack_engine_now();
    let lease = |renewed_ago: u64| {
        serde_json::json!({"host": "ci-runner-7", "pid": 4242, "command": "wbstack up --plan poc.yaml",
            "started_at_ms": now - renewed_ago - 5000, "renewed_at_ms": now - renewed_ago,
            "lease_ms": 2000, "token": "theirs"})
        .to_string()
    };
    let put = |body: &str| {
        let out = team
            .moto
            .raw("PUT", "/team-state/wbstack/wandb-dev/lock.json", body);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    };
    put(&lease(500));
    let out = team.expect(&["up", "--plan", &poc], 3);
    assert!(
        text(&out).contains("pid 4242 on ci-runner-7 running `wbstack up --plan poc.yaml`"),
        "{}",
        text(&out)
    );
    assert!(team
        .env
        .objects()
        .iter()
        .all(|(k, _, _)| k != "WeightsAndBiases"));
    team.expect(&["unlock", "--plan", &poc, "--lock-id", "mine"], 3);
    let out = team.ok(&["unlock", "--plan", &poc, "--lock-id", "theirs"]);
    assert!(
        text(&out).contains("held by pid 4242 on ci-runner-7"),
        "{}",
        text(&out)
    );
    // Silent for ten minutes by its own clock: `up` watches it stay unrenewed for its length
    // (two seconds) on this machine's clock, then takes over.
    put(&lease(600_000));
    team.ok(&["up", "--plan", &poc]);
    team.ok(&["down", "--env", "wandb-dev"]);
}

fn wbstack_engine_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn list_shows_a_stores_environments_with_their_status() {
    let team = Team::new(50);
    let poc = team.env.plan("poc.yaml");
    let two = team.env.plan_from(
        "two.yaml",
        &std::fs::read_to_string(Env::plans().join("poc.yaml"))
            .unwrap()
            .replace("name: wandb-dev", "name: wandb-two")
            .replace("namespace: wandb", "namespace: wandb-two"),
    );
    for p in [&poc, &two] {
        team.ok(&["up", "--plan", p]);
    }
    team.ok(&["down", "--env", "wandb-two"]);
    let out = team
        .run_elsewhere(&["list", "--output", "json"])
        .succeeded();
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["environment"], "wandb-dev");
    assert_eq!(rows[0]["state"], "s3://team-state/wbstack/wandb-dev");
    assert_eq!(rows[0]["last_run"]["operation"], "up");
    assert_eq!(rows[0]["last_run"]["status"], "succeeded");
    assert!(rows[0]["resources"].as_u64().unwrap() > 3, "{rows:?}");
    assert_eq!(rows[1]["environment"], "wandb-two");
    assert_eq!(rows[1]["last_run"]["operation"], "down");
    assert_eq!(rows[1]["resources"], 0);
    let out = team.run_elsewhere(&["list"]);
    assert!(text(&out).contains("wandb-dev"), "{}", text(&out));
    team.assert_nothing_local();
}

#[test]
fn bad_state_locations_are_refused_before_any_change() {
    let team = Team::new(50);
    let poc = team.env.plan("poc.yaml");
    // No such bucket: wbstack does not make one.
    let mut c = team
        .env
        .cmd(&["up", "--plan", &poc, "--state-dir", "s3://no-such-state/x"]);
    moto::Moto::point(&team.moto.url, &mut c);
    let out = c.output().unwrap().exited(6);
    assert!(
        text(&out).contains("state bucket `no-such-state` does not exist"),
        "{}",
        text(&out)
    );
    assert!(!team.moto.raw_get("/").contains("no-such-state"));
    // The plan's own artifacts bucket cannot hold its state.
    let own = team.env.plan_from(
        "own.yaml",
        &std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap().replace(
            "  mysql:\n    mode: in-cluster\n",
            "  mysql:\n    mode: in-cluster\n  bucket:\n    mode: s3\n    name: team-state\n  aws:\n    region: us-east-1\n",
        ),
    );
    let out = team.expect(&["up", "--plan", &own], 2);
    assert!(
        text(&out).contains("is the bucket this plan creates"),
        "{}",
        text(&out)
    );
    // A sandbox's cluster lives on this machine.
    let out = team.expect(&["up", "--plan", &poc, "--sandbox"], 2);
    assert!(
        text(&out).contains("cannot live in s3://"),
        "{}",
        text(&out)
    );
    assert!(team
        .env
        .objects()
        .iter()
        .all(|(k, _, _)| k != "WeightsAndBiases"));
    assert!(
        team.keys("wbstack/").is_empty(),
        "{:?}",
        team.keys("wbstack/")
    );
}

/// What a run costs in S3 requests, counted outside wbstack by a proxy in front of moto: one PUT
/// per group commit of the journal, plus the plan copy, the lease and the run's events.
#[test]
fn an_up_costs_one_put_per_group_commit() {
    let team = Team::new(50);
    let recorder = moto::Recorder::start(&team.moto);
    let poc = team.env.plan("poc.yaml");
    let timed = |state: &str| {
        let mut c = team.env.cmd(&["up", "--plan", &poc, "--state-dir", state]);
        moto::Moto::point(&recorder.url, &mut c);
        let start = std::time::Instant::now();
        c.output().unwrap().succeeded();
        start.elapsed()
    };
    recorder.clear();
    let remote = timed(STORE);
    let ops = recorder.ops();
    let count = |op: &str| ops.iter().filter(|o| o.starts_with(op)).count();
    let segments = team
        .keys("wbstack/wandb-dev/journal/")
        .iter()
        .filter(|k| k.contains("segment-"))
        .count();
    // The lease taken once (its release is a DELETE), the plan copy and the run's events (for
    // `report`): every other PUT is a segment.
    assert_eq!(count("s3:PUT"), segments + 3, "{ops:?}");
    assert!(team
        .keys("wbstack/wandb-dev/runs/")
        .iter()
        .any(|k| k.ends_with("run-1.events.jsonl")));
    assert_eq!(count("s3:DELETE"), 1, "{ops:?}");
    let again = {
        recorder.clear();
        timed(STORE)
    };
    let second = recorder.ops().len();
    team.env
        .run(&["down", "--env", "wandb-dev", "--state-dir", STORE]);
    let local = timed(".wbstack");
    eprintln!(
        "S3 state: first up {} requests ({} PUT: {segments} journal segments, plan, lease; {} GET/HEAD/list) in {:.2} s; converged re-run {second} requests in {:.2} s; local state: up in {:.2} s",
        ops.len(),
        count("s3:PUT"),
        ops.len() - count("s3:PUT") - count("s3:DELETE"),
        remote.as_secs_f64(),
        again.as_secs_f64(),
        local.as_secs_f64()
    );
}

/// The state bucket is checked at connect: what it lacks is said (no versions, no public-access
/// block, no default encryption), every state object is written with SSE-KMS whatever the
/// bucket's default, and a bucket another account owns is refused before anything is written.
#[test]
fn the_state_bucket_is_checked_and_state_is_written_with_sse_kms() {
    let team = Team::new(50);
    let poc = team.env.plan("poc.yaml");
    let out = team.ok(&["up", "--plan", &poc]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    for warning in [
        "keeps no versions",
        "does not block public access",
        "has no default encryption",
    ] {
        assert!(said.contains(warning), "{warning} in\n{said}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(team.moto.aws("wandb-dev"));
    let keys = team.keys("wbstack/wandb-dev/");
    assert!(keys.iter().any(|k| k.ends_with("plan.yaml")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("/journal/")), "{keys:?}");
    for key in &keys {
        let head = rt
            .block_on(aws.s3.head_object().bucket("team-state").key(key).send())
            .unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms),
            "{key}"
        );
    }
    // The bucket turns out to be another account's: refused, and nothing more is written.
    team.moto.caches.own_bucket("team-state", "999999999999");
    let before = team.keys("wbstack/");
    let out = team.run(&["down", "--env", "wandb-dev"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("is not owned by this account (123456789012)"),
        "{}",
        text(&out)
    );
    assert_eq!(team.keys("wbstack/"), before);
}
