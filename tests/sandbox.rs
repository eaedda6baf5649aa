//! The README's first command: the PoC on the embedded sandbox, then status, resume and down.

use wbstack_test_support::{Env, Exited};

#[test]
fn the_sandbox_runs_the_poc_and_keeps_its_cluster_between_commands() {
    let env = Env::new(50);
    let poc = Env::plans().join("poc.yaml").display().to_string();
    let sandbox = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("WBSTACK_SANDBOX_DELAY_MS", "200")
            .env_remove("KUBECONFIG");
        c.output().unwrap()
    };
    let out = sandbox(&["up", "--plan", &poc, "--sandbox"]).succeeded();
    assert!(String::from_utf8_lossy(&out.stderr).contains("sandbox cluster"));
    let cluster = env
        .dir
        .path()
        .join(".wbstack/sandbox/wandb-dev/sandbox-cluster.json");
    let saved = std::fs::read_to_string(&cluster).unwrap();
    assert!(
        saved.contains("\"WeightsAndBiases\""),
        "the sandbox cluster is persisted"
    );
    assert!(
        !saved.contains(wbstack_test_support::LICENSE),
        "the persisted cluster holds Secrets base64-encoded only"
    );
    let st = sandbox(&[
        "status",
        "--env",
        "wandb-dev",
        "--sandbox",
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "ready"),
        "{v}"
    );
    // The cluster survives between invocations: a second up finds everything converged.
    let again = sandbox(&[
        "resume",
        "--env",
        "wandb-dev",
        "--sandbox",
        "--output",
        "json",
    ]);
    let last = String::from_utf8_lossy(&again.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let r: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(r["report"]["stats"]["unchanged"], 5, "{r}");
    sandbox(&["down", "--env", "wandb-dev", "--sandbox"]).succeeded();
    let saved = std::fs::read_to_string(&cluster).unwrap();
    assert!(
        !saved.contains("\"WeightsAndBiases\"") && !saved.contains("\"name\":\"wandb\""),
        "nothing of the environment is left"
    );
}

#[test]
fn a_second_concurrent_run_is_refused_naming_the_holder() {
    let env = Env::new(2000);
    let poc = Env::plans().join("poc.yaml").display().to_string();
    let mut first = env.cmd(&["up", "--plan", &poc]).spawn().unwrap();
    // The lock is taken before the first change: once the cluster sees one, the run holds it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while env.mutations() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = env.expect(&["up", "--plan", &poc], 3);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("pid {}", first.id())) && err.contains("unlock"),
        "{err}"
    );
    let out = first.wait().unwrap();
    assert_eq!(out.code(), Some(0));
    // A protected plan is not torn down without --force.
    let prot = std::fs::read_to_string(Env::plans().join("poc.yaml"))
        .unwrap()
        .replacen(
            "  name: wandb-dev\n",
            "  name: wandb-dev\n  protected: true\n",
            1,
        );
    std::fs::write(env.dir.path().join("prot.yaml"), prot).unwrap();
    let refused = env.expect(&["down", "--plan", "prot.yaml"], 5);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
}

/// The sandbox's API answers only its own run: a request without the run's token (or with
/// another) is refused with a 401, as kube-apiserver refuses it.
#[test]
fn the_sandbox_api_refuses_a_request_without_the_runs_token() {
    use std::io::{BufRead, Read, Write};
    let env = Env::new(50);
    let poc = Env::plans().join("poc.yaml").display().to_string();
    let mut run = env
        .cmd(&["up", "--plan", &poc, "--sandbox"])
        .env("WBSTACK_SANDBOX_DELAY_MS", "3000")
        .env_remove("KUBECONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(run.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the run names its sandbox").unwrap();
        if let Some(at) = line.find("sandbox cluster at http://") {
            let rest = &line[at + "sandbox cluster at http://".len()..];
            break rest
                .split(|c: char| c.is_whitespace() || c == ',')
                .next()
                .unwrap()
                .to_owned();
        }
    };
    let ask = |auth: Option<&str>| {
        let mut s = std::net::TcpStream::connect(&url).unwrap();
        let header = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        write!(
            s,
            "GET /api/v1/namespaces HTTP/1.1\r\nHost: {url}\r\n{header}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    for auth in [None, Some("Bearer kube-emulator"), Some("Bearer guessed")] {
        let answer = ask(auth);
        assert!(answer.starts_with("HTTP/1.1 401"), "{auth:?}: {answer}");
    }
    for _ in lines.by_ref() {}
    assert_eq!(run.wait().unwrap().code(), Some(0));
}

/// The shipped Altinity plan comes up in the sandbox on its own: the operator from its bundle,
/// the Keeper ensemble and the installation; `down` takes all of it away again.
#[test]
fn the_sandbox_runs_the_altinity_plan_with_its_operator_and_keeper() {
    let env = Env::new(50);
    let plan = Env::plans()
        .join("weave-altinity.yaml")
        .display()
        .to_string();
    let sandbox = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("WBSTACK_SANDBOX_DELAY_MS", "100")
            .env_remove("KUBECONFIG");
        c.output().unwrap()
    };
    let out = sandbox(&["up", "--plan", &plan, "--sandbox", "--output", "json"]).succeeded();
    let report = wbstack_test_support::last_json(&out);
    for id in ["k8s.altinity-operator", "k8s.clickhouse", "k8s.wandb"] {
        let step = wbstack_test_support::step_report(&report, id);
        assert_eq!(step["outcome"], "created", "{id}: {step}");
    }
    let cluster = env
        .dir
        .path()
        .join(".wbstack/sandbox/wandb-weave/sandbox-cluster.json");
    let saved = std::fs::read_to_string(&cluster).unwrap();
    for kind in ["ClickHouseKeeperInstallation", "ClickHouseInstallation"] {
        assert!(
            saved.contains(&format!("\"{kind}\"")),
            "{kind} in the sandbox"
        );
    }
    sandbox(&["down", "--env", "wandb-weave", "--sandbox"]).succeeded();
    let saved = std::fs::read_to_string(&cluster).unwrap();
    assert!(
        !saved.contains("altinity.com") && !saved.contains("\"clickhouse-operator\""),
        "nothing of the operator is left"
    );
}
