//! `verify` on a running environment: the resource's references are checked in the live
//! cluster, and the data paths from a probe Job inside it (the emulator's kubelet runs the
//! Job's pod as this build's binary with the pod's environment), W&B's host over HTTPS (a real
//! HTTPS server with a test CA's certificate); the stores the chart runs itself are skipped,
//! with the reason. The Job is gone afterwards; `--from-here` gives the same verdicts. A deleted Secret fails alone,
//! named, with exit 7, and passes again once `up` writes it back. In the sandbox, `up --verify`
//! and `spec.verify` run the same probes and say which cannot run there and why.

use wbstack_test_support::servers;
use wbstack_test_support::{text, Env, Exited};

/// `verify` of the PoC from here, as JSON.
const FROM_HERE: [&str; 6] = [
    "verify",
    "--env",
    "wandb-dev",
    "--from-here",
    "--output",
    "json",
];

fn findings(out: &std::process::Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["findings"].as_array().unwrap().clone()
}

fn verdict_of(f: &[serde_json::Value], probe: &str) -> Vec<String> {
    f.iter()
        .filter(|x| x["probe"] == probe)
        .map(|x| x["verdict"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_healthy_poc_passes_what_can_be_probed_and_a_deleted_secret_fails_alone() {
    let env = Env::new(50);
    let dir = tempfile::tempdir().unwrap();
    let pki = servers::pki(dir.path(), &["localhost"]);
    let https = servers::Https::start(&pki, 200);
    let poc = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap();
    let host = format!("https://localhost:{}", https.port);
    let poc = poc.replace("https://wandb-dev.company.com", &host);
    assert!(poc.contains(&host), "the PoC plan names its host");
    let plan = env.plan_from("poc.yaml", &poc);
    let run = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("SSL_CERT_FILE", &pki.ca);
        c.output().unwrap()
    };
    // The image's own CA bundle, in the test: the test CA.
    env.run_wbstack_image(&[("SSL_CERT_FILE", pki.ca.to_str().unwrap())]);
    run(&["up", "--plan", &plan]).succeeded();

    let out = run(&["verify", "--env", "wandb-dev", "--output", "json"]).succeeded();
    let f = findings(&out);
    let from: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        from["from"]
            .as_str()
            .unwrap()
            .starts_with("Job wandb/wbstack-verify-"),
        "{from}"
    );
    let jobs = env.kubectl(&["get", "jobs", "-n", "wandb", "-o", "name"]);
    assert!(
        !jobs.contains("wbstack-verify"),
        "the probe Job is removed: {jobs}"
    );
    let here = run(&FROM_HERE).succeeded();
    let verdicts = |f: &[serde_json::Value]| {
        let mut v: Vec<(String, String)> = f
            .iter()
            .map(|x| (x["probe"].to_string(), x["verdict"].to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(verdicts(&f), verdicts(&findings(&here)), "{f:#?}");
    assert!(
        verdict_of(&f, "references").iter().all(|v| v == "pass"),
        "{f:#?}"
    );
    assert_eq!(verdict_of(&f, "host"), ["pass"], "{f:#?}");
    for store in ["mysql", "redis"] {
        let skipped: Vec<&serde_json::Value> = f.iter().filter(|x| x["probe"] == store).collect();
        assert_eq!(skipped.len(), 1, "{f:#?}");
        assert_eq!(skipped[0]["verdict"], "skip");
        assert!(
            skipped[0]["seen"]
                .as_str()
                .unwrap()
                .contains("the chart runs its own"),
            "{f:#?}"
        );
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains(wbstack_test_support::LICENSE));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "verify on a healthy PoC: {} ms, {} findings",
        v["ms"],
        f.len()
    );

    env.kubectl(&["delete", "secret", "wbstack-license", "-n", "wandb"]);
    let out = run(&["verify", "--env", "wandb-dev"]).exited(7);
    let said = text(&out);
    assert!(
        said.contains("wandb-dev: waiting for Job wandb/wbstack-verify-"),
        "the wait says what it waits for: {said}"
    );
    let failed: Vec<&str> = said.lines().filter(|l| l.starts_with("fail")).collect();
    assert_eq!(failed.len(), 1, "{said}");
    assert!(
        failed[0].contains("Secret wandb/wbstack-license") && failed[0].contains("does not exist"),
        "{said}"
    );

    // W&B answers 503 behind the same certificate: the host fails, alone.
    run(&["up", "--plan", &plan]).succeeded();
    drop(https);
    let out = run(&["verify", "--env", "wandb-dev", "--output", "json"]).exited(7);
    let f = findings(&out);
    let failing: Vec<&serde_json::Value> = f.iter().filter(|x| x["verdict"] == "fail").collect();
    assert_eq!(failing.len(), 1, "{f:#?}");
    assert_eq!(failing[0]["probe"], "host");
}

#[test]
fn in_the_sandbox_up_verify_and_spec_verify_say_what_cannot_be_probed_there() {
    let env = Env::new(50);
    let sandbox = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("WBSTACK_SANDBOX_DELAY_MS", "100")
            .env_remove("KUBECONFIG");
        c.output().unwrap()
    };
    let poc = Env::plans().join("poc.yaml").display().to_string();
    let out = sandbox(&["up", "--plan", &poc, "--sandbox", "--verify"]).succeeded();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "skip  mysql       MySQL: the chart runs its own MySQL, and the sandbox runs no pods",
        "skip  redis       Redis: the chart runs its own Redis, and the sandbox runs no pods",
        "skip  host        the W&B host: the sandbox has no ingress or load balancer: the host is not served",
    ] {
        assert!(said.lines().any(|l| l == line), "{line}\n{said}");
    }
    assert!(
        said.lines().any(|l| l.starts_with("pass  references")),
        "{said}"
    );
    assert!(
        said.contains("wandb-dev: ") && said.contains(" 0 failed, "),
        "{said}"
    );

    // `spec.verify: true` runs it at the end of every up, without the flag.
    let text_plan = std::fs::read_to_string(&poc).unwrap();
    let with = text_plan.replacen("spec:\n", "spec:\n  verify: true\n", 1);
    assert_ne!(with, text_plan);
    let path = env.dir.path().join("verified.yaml");
    std::fs::write(&path, with).unwrap();
    let out = sandbox(&["up", "--plan", path.to_str().unwrap(), "--sandbox"]).succeeded();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.lines().any(|l| l.starts_with("skip  host")), "{said}");
    sandbox(&["down", "--env", "wandb-dev", "--sandbox"]).succeeded();
}

/// SSO's client secret is named by reference in the resource, never given in it; verify's
/// references probe fails while the Secret is missing, naming it, and passes once it exists.
#[test]
fn the_sso_client_secret_is_a_reference_that_verify_checks() {
    let env = Env::new(50);
    let poc = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap();
    let sso = "    sso:\n      issuer: https://login.example.com/realms/wandb\n      clientId: wandb\n      clientSecret: {name: wandb-oidc, key: OIDC_SECRET}\n    components:\n";
    let with = poc.replacen("    components:\n", sso, 1);
    assert_ne!(with, poc);
    let plan = env.plan_from("sso.yaml", &with);
    env.ok(&["up", "--plan", &plan]);
    let cr = env.kubectl(&[
        "get",
        "weightsandbiases",
        "wandb-dev",
        "-n",
        "wandb",
        "-o",
        "json",
    ]);
    let cr: serde_json::Value = serde_json::from_str(&cr).unwrap();
    assert_eq!(
        cr["spec"]["values"]["global"]["auth"]["oidc"]["oidcSecret"],
        serde_json::json!({"name": "wandb-oidc", "secretKey": "OIDC_SECRET"})
    );
    let references = || {
        let out = env.run(&FROM_HERE);
        let f = findings(&out);
        let refs: Vec<(String, String)> = f
            .iter()
            .filter(|x| x["probe"] == "references")
            .map(|x| (x["checked"].to_string(), x["verdict"].to_string()))
            .collect();
        (out, refs)
    };
    let (_, refs) = references();
    let failed: Vec<&(String, String)> = refs.iter().filter(|r| r.1 == "\"fail\"").collect();
    assert_eq!(failed.len(), 1, "{refs:?}");
    assert!(
        failed[0]
            .0
            .contains("Secret wandb/wandb-oidc key OIDC_SECRET"),
        "{refs:?}"
    );
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "wandb-oidc",
        "-n",
        "wandb",
        "--from-literal=OIDC_SECRET=client-secret-value",
    ]);
    let (out, refs) = references();
    assert!(refs.iter().all(|r| r.1 == "\"pass\""), "{refs:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("client-secret-value"));
}
