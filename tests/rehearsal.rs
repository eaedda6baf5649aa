//! Production rehearsed on a laptop: the shipped production plan, AWS steps and all, comes up
//! and goes down in the sandbox against a local moto (the pinned release from PyPI) behind the
//! proxy that answers as AWS does where moto falls short. The local AWS outlives each command
//! (a second `up` changes nothing), and a finished `down` stops it.

use std::path::Path;
use std::process::{Command, Output};
use wbstack_test_support::{last_json, moto, Env, Exited};

fn sandbox(env: &Env, moto: Option<&Path>, args: &[&str]) -> Output {
    let mut c: Command = env.cmd(args);
    c.env("WBSTACK_SANDBOX_DELAY_MS", "50")
        .env_remove("KUBECONFIG")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("WBSTACK_AWS_ENDPOINT");
    match moto {
        Some(bin) => c.env("WBSTACK_MOTO_SERVER", bin),
        None => c
            .env_remove("WBSTACK_MOTO_SERVER")
            .env("PATH", "/nonexistent"),
    };
    c.output().unwrap()
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .contains("State:\tZ")
}

/// Stops the sandbox's AWS if a failed assertion left it running.
struct Stop(std::path::PathBuf);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.0.join("aws.json")) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(pid) = v["pid"].as_u64() {
                let _ = Command::new("kill")
                    .arg("--")
                    .arg(format!("-{pid}"))
                    .status();
            }
        }
    }
}

#[test]
fn the_production_plan_comes_up_and_goes_down_in_the_sandbox_against_a_local_moto() {
    let env = Env::new(0);
    let bin = moto::moto_server();
    let prod = Env::plans().join("production.yaml").display().to_string();
    let run = |args: &[&str]| sandbox(&env, Some(&bin), args);

    let state = env.dir.path().join(".wbstack/sandbox/wandb-prod");
    let _stop = Stop(state.clone());
    let up = run(&["up", "--plan", &prod, "--sandbox", "--output", "json"]).succeeded();
    let said = String::from_utf8_lossy(&up.stderr);
    assert!(
        said.contains("starting the sandbox's AWS") && said.contains("waiting up to 90 s"),
        "the wait says what it waits for: {said}"
    );
    let stats = &last_json(&up)["report"]["stats"];
    assert_eq!(stats["failed"], 0, "{stats}");
    let local: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("aws.json")).unwrap()).unwrap();
    let pid = local["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid), "the sandbox's AWS runs between commands");
    assert!(local["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    // The saved plan is the user's: the sandbox's endpoint and subnets are never written into it.
    let saved = std::fs::read_to_string(state.join("plan.yaml")).unwrap();
    assert_eq!(saved, std::fs::read_to_string(&prod).unwrap());

    // Everything is still there for the next command: nothing to change.
    let again = run(&["up", "--plan", &prod, "--sandbox", "--output", "json"]).succeeded();
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("starting the sandbox's AWS"),
        "the running one is used"
    );
    let stats = &last_json(&again)["report"]["stats"];
    assert_eq!(
        (&stats["created"], &stats["updated"]),
        (&serde_json::json!(0), &serde_json::json!(0)),
        "{stats}"
    );
    let status = run(&[
        "status",
        "--env",
        "wandb-prod",
        "--sandbox",
        "--output",
        "json",
    ])
    .succeeded();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["step"] == "aws.mysql"), "{v}");
    assert!(steps.iter().all(|s| s["state"] == "ready"), "{v}");

    // Protected, as in production; with --force it goes, and its local AWS with it.
    run(&["down", "--env", "wandb-prod", "--sandbox"]).exited(5);
    assert!(alive(pid));
    run(&["down", "--env", "wandb-prod", "--sandbox", "--force"]).succeeded();
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(pid), "down stops the sandbox's AWS");
    assert!(!state.join("aws.json").exists());
}

#[test]
fn without_a_moto_server_the_sandbox_says_how_to_get_one_and_changes_nothing() {
    let env = Env::new(0);
    let prod = Env::plans().join("production.yaml").display().to_string();
    let out = sandbox(&env, None, &["up", "--plan", &prod, "--sandbox"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{said}");
    assert!(
        said.contains("pip install 'moto[server]==5.2.6'") && said.contains("WBSTACK_MOTO_SERVER"),
        "{said}"
    );
    let state = env.dir.path().join(".wbstack/sandbox/wandb-prod");
    assert!(!state.join("aws.json").exists());
    assert!(!state.join("journal.jsonl").exists(), "nothing was run");
}
