//! The Development/PoC pattern end to end, driving the built binary against an emulated cluster.

use std::time::Duration;
use wbstack_test_support::on_both;
use wbstack_test_support::{text, Back, Env, LICENSE};

fn poc() -> String {
    Env::plans().join("poc.yaml").display().to_string()
}

fn poc_up_makes_every_workload_ready_and_keeps_secrets_out_of_the_resource(back: Back) {
    let env = Env::on(back, 300);
    let poc = env.plan("poc.yaml");
    // At the highest verbosity, so the logs can be scanned for the license too.
    let out = env.ok(&["up", "--plan", &poc, "-vvv"]);
    // What readiness awaited: the workloads of the release the operator installed.
    let awaited = env.release_workloads("wandb", "wandb-dev");
    assert!(
        awaited.contains(&"Deployment/wandb-dev-app-bc".to_owned()),
        "{awaited:?}"
    );
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        logs.contains("TRACE wbstack_engine::journal")
            && logs.contains("DEBUG wbstack_k8s::calls: apply Secret wbstack-license"),
        "trace logs are on"
    );
    // Every Deployment and StatefulSet of the release is ready, as kubectl sees it.
    let ready = env.kubectl(&[
        "get",
        "deploy,sts",
        "-n",
        "wandb",
        "-l",
        "app.kubernetes.io/instance=wandb-dev",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.readyReplicas}/{.spec.replicas} {end}",
    ]);
    let entries: Vec<&str> = ready.split_whitespace().collect();
    assert!(entries.len() >= 9, "{ready}");
    for e in &entries {
        let (_, r) = e.split_once('=').unwrap();
        let (a, b) = r.split_once('/').unwrap();
        assert_eq!(a, b, "{e} is not ready");
    }
    assert_eq!(
        env.kubectl(&[
            "get",
            "wandb",
            "wandb-dev",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.status.phase}"
        ]),
        "Completed"
    );
    let resource = env.kubectl(&["get", "wandb", "wandb-dev", "-n", "wandb", "-o", "json"]);
    assert!(
        !resource.contains(LICENSE),
        "the license must not be in the resource"
    );
    assert_eq!(
        env.kubectl(&[
            "get",
            "wandb",
            "wandb-dev",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.spec.values.global.licenseSecret.name}"
        ]),
        "wbstack-license"
    );
    let lic = env.kubectl(&[
        "get",
        "secret",
        "wbstack-license",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.data.license}",
    ]);
    assert_eq!(
        lic, "bGljLTNmOWEyYzdlLXRlc3QtbGljZW5zZS12YWx1ZQ==",
        "the Secret holds the license"
    );
    for form in [LICENSE, lic.as_str()] {
        assert!(
            !text(&out).contains(form),
            "the license is in the output or logs"
        );
    }
    // The journal and the output hold no secret value.
    let journal =
        std::fs::read_to_string(env.dir.path().join(".wbstack/wandb-dev/journal.jsonl")).unwrap();
    assert!(!journal.contains(LICENSE) && !journal.contains("bGljLTNmOWEy"));
    assert!(!text(&out).contains(LICENSE));
    // status reads the journal.
    let st = env.run(&["status", "--env", "wandb-dev", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "ready"),
        "{v}"
    );
}

fn a_converged_rerun_makes_zero_mutating_requests(back: Back) {
    let env = Env::on(back, 200);
    let poc = env.plan("poc.yaml");
    env.ok(&["up", "--plan", &poc]);
    let before = env.mutations();
    let out = env.ok(&["up", "--plan", &poc, "--output", "json"]);
    assert_eq!(
        env.mutations(),
        before,
        "no create, update, patch or delete on a converged environment"
    );
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["report"]["stats"]["apply_calls"], 0);
    assert_eq!(v["report"]["stats"]["unchanged"], 5);
}

fn killed_mid_run_resume_converges_without_duplicates(back: Back) {
    let env = Env::on(back, 400);
    let poc = env.plan("poc.yaml");
    let mut killed = 0;
    for i in 0..6u64 {
        let mut child = env.cmd(&["up", "--plan", &poc]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(150 + i * 130));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(killed >= 3, "only {killed} runs were killed part-way");
    env.ok(&["resume", "--env", "wandb-dev", "--timeout", "120"]);
    let objs = env.objects();
    let mut dedup = objs.clone();
    dedup.dedup();
    assert_eq!(objs, dedup);
    let wandbs = objs
        .iter()
        .filter(|(k, _, _)| k == "WeightsAndBiases")
        .count();
    assert_eq!(wandbs, 1);
    // wbstack's own Secrets (the chart's and Helm's are the operator's business).
    let secrets = objs
        .iter()
        .filter(|(k, _, n)| k == "Secret" && n.starts_with("wbstack-"))
        .count();
    assert_eq!(secrets, 1, "{objs:?}");
    let again = env.run(&["up", "--plan", &poc, "--output", "json"]);
    let last = String::from_utf8_lossy(&again.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["report"]["stats"]["apply_calls"], 0);
}

fn down_removes_everything_owned_and_leaves_what_others_made(back: Back) {
    let env = Env::on(back, 200);
    let poc = env.plan("poc.yaml");
    // Someone else's object, made before wbstack ran: the namespace is adopted and kept.
    env.kubectl(&["create", "namespace", "wandb"]);
    env.kubectl(&[
        "create",
        "configmap",
        "theirs",
        "-n",
        "wandb",
        "--from-literal=a=b",
    ]);
    env.settle_namespace("wandb");
    let baseline: Vec<_> = env.objects();
    env.ok(&["up", "--plan", &poc]);
    let st = env.run(&["status", "--env", "wandb-dev", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["steps"][0]["ownership"], "adopted", "{v}");
    env.ok(&["down", "--env", "wandb-dev"]);
    // Events are the controllers' records (Kubernetes expires them after an hour), not resources
    // of the environment.
    let no_events = |v: Vec<(String, String, String)>| -> Vec<_> {
        v.into_iter().filter(|(k, _, _)| k != "Event").collect()
    };
    let baseline = no_events(baseline);
    // A released volume is deleted by the cluster's provisioner after its claim: give it time.
    let mut after = no_events(env.objects());
    for _ in 0..60 {
        if after == baseline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        after = no_events(env.objects());
    }
    let gone: Vec<_> = baseline.iter().filter(|o| !after.contains(o)).collect();
    let left: Vec<_> = after.iter().filter(|o| !baseline.contains(o)).collect();
    assert!(
        gone.is_empty() && left.is_empty(),
        "exactly what existed before is left: gone {gone:?}, left {left:?}"
    );
    assert_eq!(
        env.kubectl(&[
            "get",
            "cm",
            "theirs",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
}

/// The PoC plan with a shorter grace for stuck pods and an Invalid Config.
fn impatient(env: &Env) -> &'static str {
    let plan = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap()
        + "  timeouts:\n    stuckSeconds: 2\n";
    std::fs::write(env.dir.path().join("impatient.yaml"), plan).unwrap();
    "impatient.yaml"
}

#[test]
fn an_invalid_config_is_retried_and_fails_only_once_it_lasts_with_the_operators_events() {
    let env = Env::new(100);
    let mut cfg = env.running().config();
    cfg.invalid_config = vec!["wandb-dev".into()];
    env.running().set_config(cfg);
    let plan = impatient(&env);
    let t = std::time::Instant::now();
    let out = env.expect(&["up", "--plan", plan, "--timeout", "60"], 1);
    let t1 = t.elapsed();
    for needle in [
        "Invalid Config for",
        "ApplyFailed: Invalid config for apply",
        "Reconciling: Reconciling",
    ] {
        assert!(text(&out).contains(needle), "{needle}: {}", text(&out));
    }
    assert!(
        t1 < Duration::from_secs(30),
        "a lasting Invalid Config does not wait out the timeout: {t1:?}"
    );
    // Retried by the operator: once it can apply, resume completes.
    let mut cfg = env.running().config();
    cfg.invalid_config.clear();
    env.running().set_config(cfg);
    env.ok(&["resume", "--env", "wandb-dev"]);
}

#[test]
fn pods_that_cannot_come_up_end_the_wait_naming_pod_reason_and_events() {
    use kube_emulator::{Fault, PodFault};
    for (fault, workload, needles) in [
        (
            Fault::CrashLoop,
            "wandb-dev-app-bc",
            vec![
                "CrashLoopBackOff",
                "last exit 1 Error",
                "Back-off restarting failed container",
            ],
        ),
        (
            Fault::ImagePull,
            "wandb-dev-console-bc",
            vec!["ImagePullBackOff", "Failed to pull image"],
        ),
    ] {
        let env = Env::new(100);
        let mut cfg = env.running().config();
        cfg.pod_faults = vec![PodFault {
            workload: workload.into(),
            fault,
        }];
        env.running().set_config(cfg);
        let plan = impatient(&env);
        let t = std::time::Instant::now();
        let out = env.expect(&["up", "--plan", plan, "--timeout", "120"], 1);
        assert!(
            text(&out).contains(&format!("pod/{workload}-")),
            "{}",
            text(&out)
        );
        for n in needles {
            assert!(text(&out).contains(n), "{n}: {}", text(&out));
        }
        assert!(t.elapsed() < Duration::from_secs(40), "{:?}", t.elapsed());
    }
}

#[test]
fn an_unschedulable_pod_is_reported_and_waited_on_until_the_timeout() {
    use kube_emulator::{Fault, PodFault};
    let env = Env::new(100);
    let mut cfg = env.running().config();
    cfg.pod_faults = vec![PodFault {
        workload: "wandb-dev-parquet-bc".into(),
        fault: Fault::Unschedulable,
    }];
    env.running().set_config(cfg);
    let plan = impatient(&env);
    let out = env.expect(&["up", "--plan", plan, "--timeout", "8"], 1);
    assert!(text(&out).contains("not ready after 8 s"), "{}", text(&out));
    assert!(
        text(&out).contains("Unschedulable") && text(&out).contains("Insufficient memory"),
        "{}",
        text(&out)
    );
}

#[test]
fn readiness_failures_end_with_a_clear_error_within_the_timeout() {
    // A workload that never becomes ready: the run fails when the timeout runs out.
    let env = Env::new(100);
    let mut cfg = env.running().config();
    cfg.never_ready = vec!["wandb-dev-app-bc".into()];
    env.running().set_config(cfg);
    let t = std::time::Instant::now();
    let out = env.expect(&["up", "--plan", &poc(), "--timeout", "4"], 1);
    assert!(
        text(&out).contains("k8s.wandb")
            && text(&out).contains("not ready after 4 s")
            && text(&out).contains("wandb-dev-app-bc 0/1"),
        "{}",
        text(&out)
    );
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[test]
fn plan_says_what_up_would_do_and_touches_nothing() {
    let env = Env::new(100);
    let before = env.mutations();
    let out = env.ok(&["plan", "--plan", &poc(), "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["create"; 5]);
    assert_eq!(env.mutations(), before, "plan is read-only");
    env.ok(&["up", "--plan", &poc()]);
    let out = env.run(&["plan", "--plan", &poc(), "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["unchanged"; 5]);
    // A changed plan shows the update.
    let changed = std::fs::read_to_string(Env::plans().join("poc.yaml"))
        .unwrap()
        .replace("api: {replicas: 1}", "api: {replicas: 2}");
    std::fs::write(env.dir.path().join("changed.yaml"), changed).unwrap();
    let out = env.run(&["plan", "--plan", "changed.yaml", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][4]["step"], "k8s.wandb");
    assert_eq!(v["steps"][4]["action"], "update");
    // And up applies it.
    env.ok(&["up", "--plan", "changed.yaml", "--output", "json"]);
    assert_eq!(
        env.kubectl(&[
            "get",
            "deploy",
            "wandb-dev-api",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
}

#[test]
fn unlock_removes_a_stale_lock() {
    let env = Env::new(100);
    env.ok(&["up", "--plan", &poc()]);
    let lock = env.dir.path().join(".wbstack/wandb-dev/lock.json");
    std::fs::write(&lock, r#"{"host":"another-host","pid":1,"command":"wbstack up","started_at_ms":1,"renewed_at_ms":99999999999999,"lease_ms":60000,"token":"x"}"#).unwrap();
    let out = env.expect(&["up", "--plan", &poc()], 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("another-host"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unlock --lock-id x"),
        "{}",
        text(&out)
    );
    // Another lock id removes nothing.
    env.expect(&["unlock", "--env", "wandb-dev", "--lock-id", "y"], 3);
    assert!(lock.exists());
    let out = env.run(&["unlock", "--env", "wandb-dev", "--lock-id", "x"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another-host"));
    env.ok(&["up", "--plan", &poc()]);
}

on_both!(
    poc_up_makes_every_workload_ready_and_keeps_secrets_out_of_the_resource,
    a_converged_rerun_makes_zero_mutating_requests,
    killed_mid_run_resume_converges_without_duplicates,
    down_removes_everything_owned_and_leaves_what_others_made,
);
