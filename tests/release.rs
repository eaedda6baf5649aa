//! Readiness judged on what the operator really installed: the Helm release it wrote, under the
//! names Helm makes (a release name that contains a component's alias names its objects alone),
//! for any chart version a plan names.
// Part of this file is the test bed tier (feature `testbed`); its helpers are unused without it.
#![cfg_attr(not(feature = "testbed"), allow(dead_code, unused_imports))]

use serde_json::Value;
use wbstack_test_support::on_both;
use wbstack_test_support::{text, Back, Env};

/// The PoC plan with the resource named `name`.
fn poc_named(name: &str) -> String {
    let yaml = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap();
    let renamed = yaml.replace(
        "    name: wandb-dev\n    host",
        &format!("    name: {name}\n    host"),
    );
    assert_ne!(renamed, yaml, "the PoC plan names its resource wandb-dev");
    renamed
}

/// `wandb-console` contains the alias `console`: the chart names console's Deployment
/// `wandb-console-bc`, and that is what `up` waits for.
fn a_poc_named_after_a_component_waits_for_what_the_chart_names(back: Back) {
    let env = Env::on(back, 100);
    let plan = env.plan_from("poc-console.yaml", &poc_named("wandb-console"));
    env.ok(&["up", "--plan", &plan]);
    let awaited = env.release_workloads("wandb", "wandb-console");
    assert!(
        awaited.contains(&"Deployment/wandb-console-bc".to_owned()),
        "{awaited:?}"
    );
    assert!(!awaited.iter().any(|w| w.contains("console-console")));
    let ready = env.kubectl(&[
        "get",
        "deploy",
        "wandb-console-bc",
        "-n",
        "wandb",
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    assert_eq!(ready, "1");
    env.ok(&["down", "--env", "wandb-dev"]);
    let left = env.kubectl(&[
        "get",
        "secret",
        "-n",
        "wandb",
        "-l",
        "owner=helm",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "release Secrets left: {left}");
}

on_both!(a_poc_named_after_a_component_waits_for_what_the_chart_names);

/// A Deployment as a chart of another version might add it, in `ns` for release `release`;
/// `unschedulable` gives it a node selector no node has.
fn extra_deployment(release: &str, ns: &str, unschedulable: bool) -> String {
    let labels =
        format!("app.kubernetes.io/instance: {release}\n    app.kubernetes.io/name: extra");
    let selector = if unschedulable {
        "\n      nodeSelector:\n        wbstack.dev/no-such-node: \"true\""
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {release}-extra\n  namespace: {ns}\n  labels:\n    {labels}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/instance: {release}\n      app.kubernetes.io/name: extra\n  template:\n    metadata:\n      labels:\n        {}\n    spec:{selector}\n      containers:\n      - name: extra\n        image: registry.example/extra:1.0\n",
        labels.replace("\n    ", "\n        ")
    )
}

/// Test bed only (a chart of another version is installed by real Helm): feature `testbed`.
mod chart_versions {
    #[cfg(feature = "testbed")]
    mod testbed {
        use super::super::*;
        use wbstack_test_support::testbed::{pack_chart, scenario_objects};

        /// The resource's values as `render` makes them.
        fn values(env: &Env, plan: &str) -> Value {
            let out = env.run(&["render", "--plan", plan, "--output", "json"]);
            assert!(out.status.success(), "{}", text(&out));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|d| d["kind"] == "WeightsAndBiases")
                .unwrap()["spec"]["values"]
                .clone()
        }

        /// A chart of another version (console's Deployment renamed, one Deployment more) is
        /// awaited by what its release holds: `up` is ready without the table's
        /// `wandb-dev-console-bc`, and when the new Deployment can never be scheduled, `up` fails
        /// naming it.
        #[test]
        fn another_chart_version_is_awaited_by_its_release() {
            let env = Env::testbed();
            let dir = env.dir.path().join("plan-other-chart");
            std::fs::create_dir_all(&dir).unwrap();
            let plan_path = dir.join("poc.yaml");
            let base = std::fs::read_to_string(Env::plans().join("poc.yaml")).unwrap()
                + "  timeouts:\n    stuckSeconds: 20\n";
            std::fs::write(&plan_path, &base).unwrap();
            let plan = plan_path.to_str().unwrap().to_owned();
            let v = values(&env, &plan);
            let chart = |version: &str, unschedulable: bool| {
                let mut objects: Vec<String> = scenario_objects(&v, "wandb-dev", "wandb")
                    .into_iter()
                    .map(|o| o.replace("wandb-dev-console-bc", "wandb-dev-console-next"))
                    .collect();
                objects.push(extra_deployment("wandb-dev", "wandb", unschedulable));
                let sub = dir.join(version);
                pack_chart(&objects, version, &sub)
            };
            let with_chart = |tgz: &std::path::Path| {
                let mut p: Value = serde_yaml_ng::from_str(&base).unwrap();
                p["spec"]["wandb"]["chart"] = serde_json::json!({ "path": tgz });
                std::fs::write(&plan_path, serde_yaml_ng::to_string(&p).unwrap()).unwrap();
            };

            with_chart(&chart("0.44.0-next.1", false));
            env.ok(&["up", "--plan", &plan]);
            let awaited = env.release_workloads("wandb", "wandb-dev");
            assert!(awaited.contains(&"Deployment/wandb-dev-console-next".to_owned()));
            assert!(awaited.contains(&"Deployment/wandb-dev-extra".to_owned()));
            assert!(!awaited.contains(&"Deployment/wandb-dev-console-bc".to_owned()));

            // Unschedulable may heal (an autoscaler adds a node), so it does not end the wait:
            // the timeout does, and says what it was waiting for.
            with_chart(&chart("0.44.0-next.2", true));
            let start = std::time::Instant::now();
            let out = env.run(&["up", "--plan", &plan, "--timeout", "60"]);
            let t = text(&out);
            assert_eq!(out.status.code(), Some(1), "{t}");
            let failed = t
                .lines()
                .find(|l| l.contains("k8s.wandb: FAILED"))
                .unwrap_or_else(|| panic!("{t}"));
            assert!(failed.contains("not ready after 1 min"), "{failed}");
            assert!(failed.contains("wandb-dev-extra"), "{failed}");
            assert!(
                failed.contains("of Helm release wandb-dev revision"),
                "{failed}"
            );
            assert!(failed.contains("Unschedulable"), "{failed}");
            assert!(!failed.contains("console-bc"), "{failed}");
            println!(
                "the wait for an unschedulable workload ended in {:.0} s: {failed}",
                start.elapsed().as_secs_f64()
            );
            env.ok(&["down", "--env", "wandb-dev"]);
        }

        /// The control plane reports its release version, as release builds stamp it (charts read
        /// `.Capabilities.KubeVersion`).
        #[test]
        fn the_test_beds_server_reports_its_release_version() {
            let env = Env::testbed();
            let v: Value = serde_json::from_str(&env.kubectl(&["version", "-o", "json"])).unwrap();
            let server = v["serverVersion"]["gitVersion"].as_str().unwrap_or("");
            assert!(server.starts_with("v1.37."), "{v}");
            assert_eq!(v["serverVersion"]["minor"], "37");
        }
    }
}
