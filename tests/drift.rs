//! Day two: `plan --detailed-exitcode` tells CI whether `up` would change anything (0 no, 2 yes,
//! 1 an error), before the first `up`, after it, and after a hand deletion.

mod common;
use common::{text, Env};

// (`on_both!` is exported by the common module.)

#[test]
fn plan_detailed_exitcode_says_whether_up_would_change_anything() {
    let env = Env::new(50);
    let plan = env.plan("poc.yaml");
    let code = |args: &[&str]| {
        let out = env.run(args);
        (out.status.code(), text(&out))
    };
    let detailed = ["plan", "--plan", plan.as_str(), "--detailed-exitcode"];
    assert_eq!(code(&detailed).0, Some(2), "nothing is there yet");
    let (c, out) = code(&["up", "--plan", &plan]);
    assert_eq!(c, Some(0), "{out}");
    let (c, out) = code(&detailed);
    assert_eq!(c, Some(0), "converged: {out}");
    // Without the flag, `plan` succeeds whatever it finds.
    env.kubectl(&["delete", "secret", "wbstack-license", "-n", "wandb"]);
    assert_eq!(code(&["plan", "--plan", &plan]).0, Some(0));
    let (c, out) = code(&detailed);
    assert_eq!(c, Some(2), "{out}");
    assert!(
        out.contains("k8s.license") && out.contains("create"),
        "{out}"
    );
    // An error is 1 with the flag (not 2, which means changes).
    let bad = env.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {name: x}\nspec: {nope: 1}\n",
    )
    .unwrap();
    let (c, out) = code(&[
        "plan",
        "--plan",
        bad.to_str().unwrap(),
        "--detailed-exitcode",
    ]);
    assert_eq!(c, Some(1), "{out}");
}

/// A hand edit of the resource's values is drift: `plan` shows an update, `up` puts the plan's
/// value back, and then nothing is pending.
fn a_hand_edit_of_the_resource_is_seen_by_plan_and_repaired_by_up(back: common::Back) {
    let env = Env::on(back, 50);
    let plan = env.plan("poc.yaml");
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let host = || {
        env.kubectl(&[
            "get",
            "wandb",
            "wandb-dev",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.spec.values.global.host}",
        ])
    };
    let planned = host();
    env.kubectl(&[
        "patch",
        "wandb",
        "wandb-dev",
        "-n",
        "wandb",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"values":{"global":{"host":"https://edited.example.com"}}}}"#,
    ]);
    assert_eq!(host(), "https://edited.example.com");
    let detailed = ["plan", "--plan", plan.as_str(), "--detailed-exitcode"];
    let out = env.run(&detailed);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("k8s.wandb ") && l.contains("update")),
        "{shown}"
    );
    let out = env.run(&["up", "--plan", &plan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(host(), planned);
    let out = env.run(&detailed);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

on_both!(a_hand_edit_of_the_resource_is_seen_by_plan_and_repaired_by_up);
