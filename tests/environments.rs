//! Several environments on one cluster: each one's objects carry its name; one environment
//! never adopts or changes another's, and `down` leaves the shared operator, its CRD and a
//! namespace in place while another environment's resource needs them.

use wbstack_test_support::on_both;
use wbstack_test_support::{text, Back, Env};

/// The PoC plan as environment `name` in namespace `ns`.
fn poc_as(env: &Env, name: &str, ns: &str) -> String {
    let text = std::fs::read_to_string(Env::plans().join("poc.yaml"))
        .unwrap()
        .replace("name: wandb-dev", &format!("name: {name}"))
        .replace("namespace: wandb", &format!("namespace: {ns}"));
    env.plan_from(&format!("{name}.yaml"), &text)
}

/// The PoC up as `wandb-dev` in `wandb` and as `wandb-two` in `wandb-two`; their plan files.
fn two_up(env: &Env) -> (String, String) {
    let (a, b) = (
        poc_as(env, "wandb-dev", "wandb"),
        poc_as(env, "wandb-two", "wandb-two"),
    );
    for plan in [&a, &b] {
        env.ok(&["up", "--plan", plan]);
    }
    (a, b)
}

fn two_environments_share_a_cluster_and_neither_down_breaks_the_other(back: Back) {
    let env = Env::on(back, 100);
    two_up(&env);
    let label = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend([
            "-o",
            "jsonpath={.metadata.labels.wbstack\\.dev/environment}",
        ]);
        env.kubectl(&a)
    };
    assert_eq!(
        label(&["get", "secret", "wbstack-license", "-n", "wandb-two"]),
        "wandb-two"
    );
    assert_eq!(
        label(&["get", "wandb", "wandb-dev", "-n", "wandb"]),
        "wandb-dev"
    );

    // A third environment in the first one's namespace would take over its Secrets: refused
    // before anything is changed.
    let c = poc_as(&env, "wandb-three", "wandb");
    let before = env.mutations();
    let out = env.expect(&["up", "--plan", &c], 1);
    assert!(
        text(&out).contains("belongs to environment wandb-dev"),
        "{}",
        text(&out)
    );
    assert_eq!(
        env.mutations(),
        before,
        "nothing of wandb-dev's was touched"
    );
    assert_eq!(
        label(&["get", "secret", "wbstack-license", "-n", "wandb"]),
        "wandb-dev"
    );

    // The first environment goes; the operator and its CRD stay for the second, now its own.
    let out = env.ok(&["down", "--env", "wandb-dev"]);
    assert!(text(&out).contains("left in place"), "{}", text(&out));
    let phase = env.kubectl(&[
        "get",
        "wandb",
        "wandb-two",
        "-n",
        "wandb-two",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Completed");
    assert_eq!(
        label(&[
            "get",
            "deploy",
            "wandb-operator-controller-manager",
            "-n",
            "wandb-cr"
        ]),
        "wandb-two"
    );
    assert_eq!(
        label(&["get", "crd", "weightsandbiases.apps.wandb.com"]),
        "wandb-two"
    );
    let ns = env.kubectl(&["get", "ns", "-o", "name"]);
    assert!(!ns.contains("namespace/wandb\n"), "{ns}");

    // The second goes, and with it the operator and the CRD.
    env.ok(&["down", "--env", "wandb-two"]);
    let left = env.kubectl(&["get", "crd,deploy", "-A", "-o", "name"]);
    assert!(
        !left.contains("weightsandbiases") && !left.contains("wandb-operator"),
        "{left}"
    );
}

/// The first environment's state directory is lost: `down --plan` finds its objects by their
/// label and removes them, leaves the namespace that existed before it (and what is in it), and
/// leaves the operator to the second environment.
fn with_its_state_lost_down_removes_only_what_carries_the_environments_label(back: Back) {
    let env = Env::on(back, 100);
    env.kubectl(&["create", "namespace", "wandb"]);
    env.kubectl(&[
        "create",
        "configmap",
        "theirs",
        "-n",
        "wandb",
        "--from-literal=a=b",
    ]);
    let (a, _b) = two_up(&env);
    std::fs::remove_dir_all(env.dir.path().join(".wbstack/wandb-dev")).unwrap();
    let out = env.ok(&["down", "--plan", &a]);
    assert!(
        text(&out).contains("no journal: finding what it owns"),
        "{}",
        text(&out)
    );
    let mine = env.kubectl(&[
        "get",
        "secrets,wandb",
        "-n",
        "wandb",
        "-l",
        "wbstack.dev/environment=wandb-dev",
        "-o",
        "name",
    ]);
    assert!(mine.trim().is_empty(), "{mine}");
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
    let phase = env.kubectl(&[
        "get",
        "wandb",
        "wandb-two",
        "-n",
        "wandb-two",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Completed");
    let op = env.kubectl(&["get", "deploy", "-n", "wandb-cr", "-o", "name"]);
    assert!(op.contains("wandb-operator-controller-manager"), "{op}");
    // Nothing of the environment is left: a second discovery finds nothing, says so, and
    // succeeds.
    std::fs::remove_dir_all(env.dir.path().join(".wbstack/wandb-dev")).unwrap();
    let out = env.ok(&["down", "--plan", &a]);
    assert!(
        text(&out).contains("nothing carrying its tags or labels was found"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(env.dir.path().join(".wbstack/wandb-dev")).unwrap();
    let out = env.ok(&["down", "--plan", &a, "--output", "json"]);
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["report"]["stats"]["destroyed"], 0, "{v}");
}

/// One environment goes down while another's resource is being deleted and still waits for the
/// operator to run its finalizer: the operator and its CRD stay for it (they are handed over),
/// and once that resource is gone, the second environment's `down` removes them.
fn down_leaves_the_operator_to_a_resource_being_deleted(back: Back) {
    let env = Env::on(back, 100);
    two_up(&env);
    // wandb-two's resource is being deleted; a second finalizer holds it there.
    let hold = r#"{"metadata":{"finalizers":["finalizer.app.wandb.com","example.com/hold"]}}"#;
    // kubectl VERB wandb wandb-two -n wandb-two REST...
    let on_wandb_two = |verb: &str, rest: &[&str]| {
        let args = [&[verb, "wandb", "wandb-two", "-n", "wandb-two"][..], rest].concat();
        env.kubectl(&args)
    };
    on_wandb_two("patch", &["--type", "merge", "-p", hold]);
    on_wandb_two("delete", &["--wait=false"]);

    let out = env.ok(&["down", "--env", "wandb-dev", "--timeout", "60"]);
    assert!(
        text(&out).contains("still needed by WeightsAndBiases wandb-two/wandb-two"),
        "{}",
        text(&out)
    );
    // Handed over, not destroyed: said so, and counted as kept.
    let said = text(&out);
    let operator_line = said
        .lines()
        .find(|l| l.trim_start().starts_with("k8s.operator ") && l.contains('s'))
        .unwrap_or("");
    assert!(
        operator_line.contains("left") && operator_line.contains("(to environment wandb-two)"),
        "{said}"
    );
    assert!(!said.contains("k8s.operator: destroyed"), "{said}");
    let owner = env.kubectl(&[
        "get",
        "deploy",
        "wandb-operator-controller-manager",
        "-n",
        "wandb-cr",
        "-o",
        "jsonpath={.metadata.labels.wbstack\\.dev/environment}",
    ]);
    assert_eq!(owner, "wandb-two");

    // The hold goes; the operator (still there) runs its finalizer, and the resource goes.
    let release = r#"{"metadata":{"finalizers":null}}"#;
    on_wandb_two("patch", &["--type", "merge", "-p", release]);
    env.ok(&["down", "--env", "wandb-two", "--timeout", "60"]);
    let left = env.kubectl(&["get", "crd,deploy", "-A", "-o", "name"]);
    assert!(
        !left.contains("weightsandbiases") && !left.contains("wandb-operator"),
        "{left}"
    );
}

/// The state is lost and `up` runs again: the environment's own objects (its label) are recorded
/// as its own, not adopted; `down` then removes them all, the resource's finalizer run by the
/// operator before the operator and its CRD go, and nothing is left holding a finalizer.
fn with_its_state_lost_up_then_down_removes_everything_in_order(back: Back) {
    let env = Env::on(back, 100);
    let plan = poc_as(&env, "wandb-dev", "wandb");
    env.ok(&["up", "--plan", &plan]);
    std::fs::remove_dir_all(env.dir.path().join(".wbstack/wandb-dev")).unwrap();
    let out = env.ok(&["up", "--plan", &plan, "--output", "json"]);
    let report = last_json(&out);
    assert_eq!(report["report"]["stats"]["adopted"], 0, "{report}");
    env.ok(&["down", "--env", "wandb-dev", "--timeout", "120"]);
    let left = env.kubectl(&["get", "crd,deploy", "-A", "-o", "name"]);
    assert!(
        !left.contains("weightsandbiases") && !left.contains("wandb-operator"),
        "{left}"
    );
    let ns = env.kubectl(&["get", "ns", "-o", "name"]);
    assert!(!ns.contains("namespace/wandb\n"), "{ns}");
}

/// The operator is removed by hand while the resource is still there: `down` asks for the
/// resource's deletion, sees that its finalizer has nobody left to run it, and stops at once
/// naming the finalizer and the way out, instead of waiting out its timeout; once the operator
/// is back (`up`), `down` finishes.
fn a_finalizer_with_no_operator_left_is_named_at_once(back: Back) {
    let env = Env::on(back, 100);
    let plan = poc_as(&env, "wandb-dev", "wandb");
    env.ok(&["up", "--plan", &plan]);
    env.kubectl(&[
        "delete",
        "deploy",
        "wandb-operator-controller-manager",
        "-n",
        "wandb-cr",
    ]);
    let out = env.run(&["down", "--env", "wandb-dev", "--timeout", "3600"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("WeightsAndBiases wandb/wandb-dev is held by its finalizers")
            && said.contains("finalizer.app.wandb.com")
            && said.contains("no W&B operator is left"),
        "{said}"
    );
    assert!(!said.contains("timed out"), "{said}");
    env.ok(&["up", "--plan", &plan]);
    env.ok(&["down", "--env", "wandb-dev", "--timeout", "120"]);
    let left = env.kubectl(&["get", "crd,deploy", "-A", "-o", "name"]);
    assert!(
        !left.contains("weightsandbiases") && !left.contains("wandb-operator"),
        "{left}"
    );
}

fn last_json(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

on_both!(
    with_its_state_lost_up_then_down_removes_everything_in_order,
    a_finalizer_with_no_operator_left_is_named_at_once,
    two_environments_share_a_cluster_and_neither_down_breaks_the_other,
    down_leaves_the_operator_to_a_resource_being_deleted,
    with_its_state_lost_down_removes_only_what_carries_the_environments_label,
);

/// `--force` overrides protection and nothing else; `--remove-adopted` also removes what the
/// environment adopted (here, a namespace that existed before it).
#[test]
fn force_does_not_remove_adopted_resources_and_remove_adopted_does() {
    let env = Env::new(50);
    env.kubectl(&["create", "namespace", "wandb"]);
    let plan = poc_as(&env, "wandb-dev", "wandb");
    env.ok(&["up", "--plan", &plan]);
    env.ok(&["down", "--env", "wandb-dev", "--force"]);
    assert!(env
        .kubectl(&["get", "ns", "-o", "name"])
        .contains("namespace/wandb\n"));
    env.ok(&["up", "--plan", &plan]);
    env.ok(&["down", "--env", "wandb-dev", "--remove-adopted"]);
    let mut gone = false;
    for _ in 0..100 {
        if !env
            .kubectl(&["get", "ns", "-o", "name"])
            .contains("namespace/wandb\n")
        {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(gone, "the adopted namespace is removed");
}

/// `output` prints the URL, each step's endpoints and the Secret references, never a value.
#[test]
fn output_names_the_url_endpoints_and_secret_references() {
    let env = Env::new(50);
    let plan = poc_as(&env, "wandb-dev", "wandb");
    env.ok(&["up", "--plan", &plan]);
    let out = env.ok(&["output", "--env", "wandb-dev", "--output", "json"]);
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["url"], "https://wandb-dev.company.com");
    assert_eq!(o["namespace"], "wandb");
    assert_eq!(
        o["steps"]["k8s.license"]["secret"],
        "kubernetes:wandb/wbstack-license#license"
    );
    assert!(o["state"].as_str().unwrap().ends_with("wandb-dev"), "{o}");
    let text_out = env.run(&["output", "--env", "wandb-dev"]);
    assert_eq!(text_out.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&text_out.stdout);
    assert!(
        shown.contains("url        https://wandb-dev.company.com"),
        "{shown}"
    );
    assert!(
        !shown.contains(wbstack_test_support::LICENSE)
            && !text(&out).contains(wbstack_test_support::LICENSE)
    );
    // Before any `up`: a clear error, exit 2.
    env.expect(&["output", "--env", "nowhere"], 2);
}

/// `list` shows each environment of the state directory with what it owns and its last run.
#[test]
fn list_shows_each_environment_its_resources_and_last_run() {
    let env = Env::new(50);
    let none = env.run(&["list"]);
    assert!(
        String::from_utf8_lossy(&none.stdout).contains("no environments"),
        "{}",
        text(&none)
    );
    two_up(&env);
    env.ok(&["down", "--env", "wandb-two"]);
    let out = env.ok(&["list", "--output", "json"]);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["environment"], "wandb-dev");
    assert!(rows[0]["resources"].as_u64().unwrap() >= 4, "{rows:?}");
    assert_eq!(rows[0]["last_run"]["operation"], "up");
    assert_eq!(rows[0]["last_run"]["status"], "succeeded");
    assert_eq!(rows[1]["environment"], "wandb-two");
    assert_eq!(rows[1]["resources"], 0);
    assert_eq!(rows[1]["last_run"]["operation"], "down");
    assert!(rows.iter().all(|r| r["locked_by"].is_null()));
    let shown = String::from_utf8_lossy(&env.run(&["list"]).stdout).into_owned();
    assert!(
        shown.contains("wandb-dev") && shown.contains("up succeeded"),
        "{shown}"
    );
}
