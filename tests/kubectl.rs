//! The kubectl commands the README suggests, run with the same kubectl (the test bed's, built
//! with its server) against the emulator and the test bed after the same PoC `up`: both answer
//! with the same columns and the same objects.
// Part of this file is the test bed tier (feature `testbed`); its helpers are unused without it.
#![cfg_attr(not(feature = "testbed"), allow(dead_code, unused_imports))]

use std::process::Command;
use wbstack_test_support::testbed::Testbed;
use wbstack_test_support::{Back, Env};

/// The `kubectl ...` lines of the README's "Looking at it with kubectl" block, comments cut.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Looking at it with kubectl")
        .nth(1)
        .expect("the README has a kubectl section");
    let block = section
        .split("```sh")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| l.starts_with("kubectl "))
        .map(|l| l.split_whitespace().skip(1).map(str::to_owned).collect())
        .collect()
}

/// One back end with the PoC up.
fn with_poc_up(back: Back) -> Env {
    let env = Env::on(back, 50);
    let plan = env.plan("poc.yaml");
    env.ok(&["up", "--plan", &plan]);
    env
}

fn kubectl(env: &Env, args: &[String]) -> String {
    let out = Command::new(Testbed::kubectl_bin())
        .args(args)
        .env("KUBECONFIG", &env.admin)
        .env("HOME", env.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} on {:?}: {}",
        env.back(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(feature = "testbed")]
mod testbed {
    /// Needs the test bed (feature `testbed`).
    #[test]
    fn the_readme_kubectl_commands_answer_alike_on_both_back_ends() {
        super::readme_kubectl_commands_answer_alike_on_both_back_ends();
    }
}

fn readme_kubectl_commands_answer_alike_on_both_back_ends() {
    let commands = readme_commands();
    assert!(commands.len() >= 4, "{commands:?}");
    let emulator = with_poc_up(Back::Emulator);
    let ours: Vec<String> = commands.iter().map(|c| kubectl(&emulator, c)).collect();
    drop(emulator);
    let testbed = with_poc_up(Back::Testbed);
    let theirs: Vec<String> = commands.iter().map(|c| kubectl(&testbed, c)).collect();
    for ((c, a), b) in commands.iter().zip(&ours).zip(&theirs) {
        let shown = format!(
            "$ kubectl {}\n--- emulator\n{a}--- test bed\n{b}",
            c.join(" ")
        );
        eprintln!("{shown}");
        assert!(!a.trim().is_empty() && !b.trim().is_empty(), "{shown}");
        assert_eq!(rows(a), rows(b), "{shown}");
    }
    // The chart's own Secrets are made by Helm on the test bed; the emulator's operator stand-in
    // makes the chart's workloads only (and `rows` compares the Secrets wbstack makes).
    let secrets = &theirs[commands.iter().position(|c| c[1] == "secrets").unwrap()];
    assert!(
        secrets.contains("sh.helm.release.v1.wandb-dev.v1"),
        "{secrets}"
    );
}

/// A kubectl table, normalised: columns split, ages and times dropped, the random suffixes of a
/// Deployment's pods cut, only the Secrets wbstack makes, rows sorted.
fn rows(out: &str) -> Vec<Vec<String>> {
    let split = |l: &str| -> Vec<String> {
        l.split("  ")
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut all = Vec::new();
    let mut header: Vec<String> = Vec::new();
    for l in out.lines().filter(|l| !l.trim().is_empty()) {
        let f = split(l);
        if f.first().is_some_and(|h| h == "NAME" || h == "LAST SEEN") {
            header = f.clone();
            all.push(f);
            continue;
        }
        let is = |i: usize, name: &str| header.get(i).is_some_and(|h| h == name);
        let mut row = Vec::new();
        for (h, v) in header.iter().zip(f) {
            match h.as_str() {
                "AGE" | "LAST SEEN" => {}
                "NAME" => row.push(pod_name(&v)),
                _ => row.push(v),
            }
        }
        if is(1, "TYPE") && is(2, "DATA") && !row[0].starts_with("wbstack-") {
            continue;
        }
        all.push(row);
    }
    all.sort();
    all
}

/// `wandb-dev-api-559d8d9655-mpjxr` as `wandb-dev-api-*`: a pod-template hash and a random
/// suffix, which no two clusters share.
fn pod_name(n: &str) -> String {
    let parts: Vec<&str> = n.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [rand, hash, base]
            if rand.len() == 5
                && (8..=10).contains(&hash.len())
                && hash.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            format!("{base}-*")
        }
        _ => n.to_owned(),
    }
}

#[test]
fn tables_are_compared_without_ages_pod_suffixes_or_chart_secrets() {
    let a = "NAME                             READY   STATUS    RESTARTS   AGE\nwandb-dev-api-559d8d9655-mpjxr   1/1     Running   0          1s\n";
    let b = "NAME                             READY   STATUS    RESTARTS   AGE\nwandb-dev-api-a8a31643e-f09c0    1/1     Running   0          9m\n";
    assert_eq!(rows(a), rows(b));
    let c = "NAME                             READY   STATUS    RESTARTS   AGE\nwandb-dev-app-559d8d9655-mpjxr   0/1     Pending   0          1s\n";
    assert_ne!(rows(a), rows(c));
    let s1 = "NAME              TYPE     DATA   AGE\nwbstack-license   Opaque   1      1s\nwandb-dev-mysql   Opaque   2      1s\n";
    let s2 = "NAME              TYPE     DATA   AGE\nwbstack-license   Opaque   1      5s\n";
    assert_eq!(rows(s1), rows(s2));
    assert_eq!(pod_name("wandb-dev-mysql-0"), "wandb-dev-mysql-0");
}
