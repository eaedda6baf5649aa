//! `report`: a run's timeline from the events it kept with the state, checked in headless
//! Chromium (Debian's `chromium`): the page renders every step with its segments, marks the
//! critical path (a chain of steps, each depending on the one before), and the JSON form agrees.

use serde_json::Value;
use std::process::Command;
use wbstack_test_support::{text, Env};

/// Chromium, from PATH (`.ci/run` installs Debian's).
fn chromium() -> String {
    for bin in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return bin.to_owned();
        }
    }
    panic!("headless Chromium is needed for this test: apt-get install chromium (.ci/run does)");
}

fn headless(args: &[&str]) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_html_report_renders_in_chromium_with_the_critical_path_marked() {
    let env = Env::new(50);
    let plan = env.plan("poc.yaml");
    env.ok(&["up", "--plan", &plan]);
    env.ok(&["up", "--plan", &plan]);

    // JSON: run 1 by number, every step, and a critical path along the graph.
    let out = env.ok(&[
        "report",
        "--env",
        "wandb-dev",
        "--run",
        "1",
        "--output",
        "json",
    ]);
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (t["run"].as_u64(), t["status"].as_str()),
        (Some(1), Some("succeeded"))
    );
    let steps = t["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["outcome"] == "created"), "{t}");
    assert!(steps
        .iter()
        .all(|s| !s["segments"].as_array().unwrap().is_empty()));
    let path: Vec<&str> = t["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(path.last(), Some(&"k8s.wandb"), "the last step to finish");
    for pair in path.windows(2) {
        let next = steps.iter().find(|s| s["id"] == pair[1]).unwrap();
        assert!(
            next["deps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d == pair[0]),
            "{} waits for {}",
            pair[1],
            pair[0]
        );
    }

    // The last run (the idle re-run) by default.
    let out = env.run(&["report", "--env", "wandb-dev", "--output", "json"]);
    let last: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(last["run"], 2);
    assert!(last["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["outcome"] == "unchanged"));

    // HTML, rendered by Chromium.
    let page = env.dir.path().join("report.html");
    let page_s = page.display().to_string();
    env.ok(&[
        "report",
        "--env",
        "wandb-dev",
        "--run",
        "1",
        "--html",
        &page_s,
    ]);
    let url = format!("file://{page_s}");
    let dom = headless(&["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    for s in steps {
        let id = s["id"].as_str().unwrap();
        assert!(dom.contains(&format!("data-step=\"{id}\"")), "row of {id}");
    }
    for id in &path {
        assert!(
            dom.contains(&format!("<tr class=\"critical\" data-step=\"{id}\">")),
            "{id} marked critical"
        );
    }
    assert!(dom.contains("data-kind=\"apply\"") && dom.contains("data-kind=\"wait\""));
    assert!(dom.contains(&path.join(" → ")), "the path in the header");
    let shot = env.dir.path().join("report.png");
    let out = headless(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,900",
        &url,
    ]);
    let png = std::fs::read(&shot).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a rendered page"
    );
    // Not the license (every secret value is scanned for in tests/secrets.rs, the report too).
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains(wbstack_test_support::LICENSE));
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("src=\"http"), "nothing fetched");
}
