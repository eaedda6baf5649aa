//! `verify` on a running environment: each reference the resource and its workloads read is
//! checked in the live cluster; a deleted or emptied Secret fails alone, named, with exit 7, and
//! passes again once `up` writes it back.

mod common;
use common::{text, Env};

#[test]
fn references_pass_on_a_healthy_environment_and_a_deleted_secret_fails_alone() {
    let env = Env::new(50);
    let plan = env.plan("poc.yaml");
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = env.run(&["verify", "--env", "wandb-dev", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    let checked: Vec<&str> = findings
        .iter()
        .map(|f| f["checked"].as_str().unwrap())
        .collect();
    assert!(
        checked
            .iter()
            .any(|c| c.starts_with("Secret wandb/wbstack-license key")),
        "{checked:?}"
    );
    assert!(findings.iter().all(|f| f["verdict"] == "pass"), "{v}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(common::LICENSE));
    eprintln!(
        "verify on a healthy PoC: {} ms, {} findings",
        v["ms"],
        findings.len()
    );

    env.kubectl(&["delete", "secret", "wbstack-license", "-n", "wandb"]);
    let out = env.run(&["verify", "--env", "wandb-dev"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let said = text(&out);
    let failed: Vec<&str> = said.lines().filter(|l| l.starts_with("fail")).collect();
    assert_eq!(failed.len(), 1, "{said}");
    assert!(
        failed[0].contains("Secret wandb/wbstack-license") && failed[0].contains("does not exist"),
        "{said}"
    );

    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = env.run(&["verify", "--env", "wandb-dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
