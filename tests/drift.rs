//! Day two: `plan --detailed-exitcode` tells CI whether `up` would change anything (0 no, 2 yes,
//! 1 an error), before the first `up`, after it, and after a hand deletion.

use wbstack_test_support::on_both;
use wbstack_test_support::{text, Env, Exited};

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
fn a_hand_edit_of_the_resource_is_seen_by_plan_and_repaired_by_up(
    back: wbstack_test_support::Back,
) {
    let env = Env::on(back, 50);
    let plan = env.plan("poc.yaml");
    env.ok(&["up", "--plan", &plan]);
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
    let out = env.run(&detailed).exited(2);
    let shown = text(&out);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("k8s.wandb ") && l.contains("update")),
        "{shown}"
    );
    // Field by field: the one value edited, and nothing else.
    let field = format!("~ spec.values.global.host: https://edited.example.com -> {planned}");
    assert!(shown.contains(&field), "{field} not in {shown}");
    assert_eq!(shown.matches("    ~ ").count(), 1, "{shown}");
    env.ok(&["up", "--plan", &plan]);
    assert_eq!(host(), planned);
    env.run(&detailed).succeeded();
}

/// The generated ClickHouse password's Secret deleted, then changed by hand: `plan` shows it, `up`
/// restores the value the workloads were started with (so nothing restarts). Only when its
/// origin copy is gone too is a new one made, and then ClickHouse and W&B restart with it.
fn a_deleted_or_changed_password_secret_is_restored_and_a_new_one_rolls_the_workloads(
    back: wbstack_test_support::Back,
) {
    let env = Env::on(back, 100);
    let plan = env.plan("weave-clickhouse-s3.yaml");
    env.ok(&["up", "--plan", &plan]);
    let get = |kind: &str, name: &str, path: &str| {
        env.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            "wandb",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    let password = || {
        get(
            "secret",
            "wbstack-clickhouse",
            "{.data.CLICKHOUSE_PASSWORD}",
        )
    };
    let sts_rev = || {
        get(
            "sts",
            "wbstack-clickhouse-shard0",
            "{.spec.template.metadata.annotations.wbstack\\.dev/clickhouse-password-revision}",
        )
    };
    let wandb_rev = || {
        get(
            "wandb",
            "wandb",
            "{.spec.values.global.pod.annotations.wbstack\\.dev/clickhouse-password-revision}",
        )
    };
    let (first, rev) = (password(), sts_rev());
    assert!(!first.is_empty() && !rev.is_empty());
    assert_eq!(wandb_rev(), rev);
    let generation = || get("sts", "wbstack-clickhouse-shard0", "{.metadata.generation}");
    let gen = generation();
    let detailed = ["plan", "--plan", plan.as_str(), "--detailed-exitcode"];

    env.kubectl(&["delete", "secret", "wbstack-clickhouse", "-n", "wandb"]);
    let out = env.run(&detailed).exited(2);
    assert!(
        text(&out).contains(
            "~ wandb/wbstack-clickhouse: (deleted) -> (the value the workloads were started with)"
        ),
        "{}",
        text(&out)
    );
    env.ok(&["up", "--plan", &plan]);
    assert_eq!(password(), first);

    env.kubectl(&[
        "patch",
        "secret",
        "wbstack-clickhouse",
        "-n",
        "wandb",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"CLICKHOUSE_PASSWORD":"c29tZXRoaW5nLWVsc2U="}}"#,
    ]);
    let out = env.run(&detailed);
    assert!(text(&out).contains("(changed by hand)"), "{}", text(&out));
    env.ok(&["up", "--plan", &plan]);
    assert_eq!(password(), first);
    assert_eq!(
        (sts_rev(), generation()),
        (rev.clone(), gen.clone()),
        "nothing restarted"
    );
    env.ok(&detailed);

    // Both gone: a new password, and every workload that reads it is restarted with it.
    env.kubectl(&[
        "delete",
        "secret",
        "wbstack-clickhouse",
        "wbstack-clickhouse-origin",
        "-n",
        "wandb",
    ]);
    env.ok(&["up", "--plan", &plan]);
    let (second, new_rev) = (password(), sts_rev());
    assert_ne!(second, first);
    assert_ne!(new_rev, rev);
    assert_eq!(wandb_rev(), new_rev);
    assert_ne!(generation(), gen);
    // The digest is not the password, nor any form of it.
    assert!(!new_rev.contains(&second) && !second.contains(&new_rev));
}

on_both!(
    a_hand_edit_of_the_resource_is_seen_by_plan_and_repaired_by_up,
    a_deleted_or_changed_password_secret_is_restored_and_a_new_one_rolls_the_workloads,
);

/// A Secret of the plan's name that someone else made (no wbstack label) is refused, never
/// overwritten; adopted by name (`spec.kubernetes.adoptSecrets`), it is used as it is, and
/// `down` leaves it.
#[test]
fn an_unlabelled_secret_is_refused_unless_adopted_and_an_adopted_one_is_never_written() {
    let env = Env::new(50);
    env.kubectl(&["create", "namespace", "wandb"]);
    env.kubectl(&[
        "create",
        "secret",
        "generic",
        "wbstack-license",
        "-n",
        "wandb",
        "--from-literal=license=their-own-license",
    ]);
    let value = || {
        env.kubectl(&[
            "get",
            "secret",
            "wbstack-license",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.data.license} {.metadata.labels}",
        ])
    };
    let before = value();
    let plan = env.plan("poc.yaml");
    let out = env.expect(&["up", "--plan", &plan], 1);
    assert!(
        text(&out).contains("exists and is not wbstack's"),
        "{}",
        text(&out)
    );
    assert_eq!(value(), before, "refused, not overwritten");
    let adopting = std::fs::read_to_string(&plan).unwrap().replace(
        "    namespace: wandb\n",
        "    namespace: wandb\n    adoptSecrets: [wbstack-license]\n",
    );
    let adopting = env.plan_from("adopting.yaml", &adopting);
    env.ok(&["up", "--plan", &adopting]);
    assert_eq!(value(), before, "adopted: used as it is");
    env.ok(&["down", "--env", "wandb-dev"]);
    assert_eq!(value(), before, "adopted: never deleted");
    // A name the plan makes no Secret of is refused at validation.
    let wrong = env.plan_from(
        "wrong.yaml",
        &std::fs::read_to_string(&adopting)
            .unwrap()
            .replace("[wbstack-license]", "[not-a-secret-of-the-plan]"),
    );
    let out = env.expect(&["validate", &wrong], 2);
    assert!(text(&out).contains("the plan makes no Secret `not-a-secret-of-the-plan`"));
}
