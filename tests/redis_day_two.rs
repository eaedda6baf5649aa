//! ElastiCache on day two, on the production plan against moto and the emulated cluster, with
//! moto's ElastiCache gaps answered by the proxy in front of it
//! (`crates/sandbox-aws/src/proxy.rs`: moto 5.2.6 answers ModifyReplicationGroup with a
//! 500 page and does not list a group's member clusters): the engine version is upgraded in
//! place and a downgrade is refused as a replacement; the AUTH token is rotated with `ROTATE`
//! then `SET`, W&B changed over in between, and a rotation cut off before `SET` is finished by
//! the next run. No token appears in the state, the output or the journal.

use base64::Engine as _;
use wbstack_test_support::moto;
use wbstack_test_support::{text, Env, Exited};

const GROUP: &str = "wandb-prod-redis";
const SECRET: &str = "wbstack/wandb-prod/redis-auth";

/// The production plan on moto (made once: moto's subnets are picked for it), Redis at `7.0`.
fn plan_text(moto: &moto::Moto) -> String {
    let plan = std::fs::read_to_string(Env::plans().join("production.yaml"))
        .unwrap()
        .replace("  protected: true\n", "")
        .replace(
            "  redis:\n    mode: elasticache\n",
            "  redis:\n    mode: elasticache\n    engineVersion: \"7.0\"\n",
        );
    assert!(plan.contains("engineVersion"));
    moto.production_plan(&plan)
}

/// A wbstack command against this cluster and moto.
fn on_moto(env: &Env, moto: &moto::Moto, args: &[&str]) -> std::process::Output {
    let mut c = env.cmd(args);
    moto::Moto::point(&moto.url, &mut c);
    c.output().unwrap()
}

/// The line that says why `aws.redis` failed, in a run that must have failed (exit 1).
#[track_caller]
fn redis_failed(out: &std::process::Output) -> String {
    let t = text(out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    t.lines()
        .find(|l| l.contains("aws.redis: FAILED"))
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned()
}

/// Every file under `dir`, read as text.
fn all_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push_str(&all_text(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
    out
}

#[test]
fn the_engine_is_upgraded_in_place_and_the_auth_token_rotates_without_a_gap() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let run = |args: &[&str]| on_moto(&env, &moto, args);
    let mut shown = String::new();
    let mut record = |out: &std::process::Output| shown.push_str(&text(out));
    let base = plan_text(&moto);
    let at = |v: &str| base.replace("engineVersion: \"7.0\"", &format!("engineVersion: \"{v}\""));
    let v70 = env.plan_from("prod.yaml", &base);
    let out = run(&["up", "--plan", &v70]).succeeded();
    record(&out);
    assert_eq!(moto.caches.engine_version(GROUP).as_deref(), Some("7.0"));

    // 7.0 -> 7.1: an upgrade in place, shown with the field.
    let v71 = env.plan_from("prod-71.yaml", &at("7.1"));
    let out = run(&["plan", "--plan", &v71, "--detailed-exitcode"]).exited(2);
    assert!(
        text(&out).contains("~ engine_version: 7.0 -> 7.1"),
        "{}",
        text(&out)
    );
    run(&["up", "--plan", &v71]).succeeded();
    assert_eq!(moto.caches.engine_version(GROUP).as_deref(), Some("7.1"));
    run(&["plan", "--plan", &v71, "--detailed-exitcode"]).succeeded();

    // 7.1 -> 6.2: only a new group can run an older engine; refused without --replace.
    let v62 = env.plan_from("prod-62.yaml", &at("6.2"));
    let out = run(&["plan", "--plan", &v62]);
    assert!(
        text(&out).contains("-/+ engine_version: 7.1 -> 6.2"),
        "{}",
        text(&out)
    );
    let out = run(&["up", "--plan", &v62]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("--replace aws.redis"), "{}", text(&out));
    assert_eq!(moto.caches.engine_version(GROUP).as_deref(), Some("7.1"));

    // The token before: Secrets Manager's current value is the group's only token and the
    // Kubernetes Secret's value.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(moto.aws("wandb-prod"));
    let sm = |stage: &str| {
        rt.block_on(async {
            let v = aws
                .secrets
                .get_secret_value()
                .secret_id(SECRET)
                .version_stage(stage)
                .send()
                .await
                .ok()?;
            v.secret_string().map(str::to_owned)
        })
    };
    let k8s = || {
        let b64 = env.kubectl(&[
            "get",
            "secret",
            "wbstack-redis",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.data.REDIS_PASSWORD}",
        ]);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap();
        String::from_utf8(raw).unwrap()
    };
    let revision = || {
        env.kubectl(&[
            "get",
            "wandb",
            "wandb-prod",
            "-n",
            "wandb",
            "-o",
            "jsonpath={.spec.values.global.pod.annotations.wbstack\\.dev/redis-auth-revision}",
        ])
    };
    let old = sm("AWSCURRENT").unwrap();
    assert_eq!(moto.caches.tokens(GROUP), vec![old.clone()]);
    assert_eq!(k8s(), old);
    let old_revision = revision();
    assert!(!old_revision.is_empty());

    // A rotation cut off before SET (the call is refused): the group takes both tokens, W&B
    // was given the new one and rolled with it, Secrets Manager still has it pending.
    moto.caches.refuse_set(1);
    let out = run(&["up", "--plan", &v71, "--rotate", "aws.redis-auth"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    record(&out);
    assert!(
        text(&out).contains("aws.redis-auth-commit"),
        "{}",
        text(&out)
    );
    let new = sm("AWSPENDING").expect("the new token, pending");
    assert_ne!(new, old);
    assert_eq!(sm("AWSCURRENT").unwrap(), old);
    assert_eq!(moto.caches.tokens(GROUP), [old.clone(), new.clone()]);
    assert_eq!(moto.caches.auth_log(), ["ROTATE"]);
    assert_eq!(k8s(), new);
    assert_ne!(
        revision(),
        old_revision,
        "W&B's pods roll with the new token"
    );
    let out = run(&["plan", "--plan", &v71, "--detailed-exitcode"]).exited(2);
    assert!(
        text(&out).contains("~ auth_token: the current and the new token -> the new token only"),
        "{}",
        text(&out)
    );
    record(&out);

    // The next run, without the flag, finishes it: SET, then the new token is current.
    let out = run(&["up", "--plan", &v71]).succeeded();
    record(&out);
    assert_eq!(moto.caches.auth_log(), ["ROTATE", "SET"]);
    assert_eq!(moto.caches.tokens(GROUP), vec![new.clone()]);
    assert_eq!(sm("AWSCURRENT").unwrap(), new);
    assert_eq!(sm("AWSPENDING"), None);
    assert_eq!(sm("AWSPREVIOUS").unwrap(), old);
    assert_eq!(k8s(), new);
    let out = run(&["plan", "--plan", &v71, "--detailed-exitcode"]).succeeded();
    record(&out);

    // A whole rotation in one run.
    let out = run(&["up", "--plan", &v71, "--rotate", "aws.redis-auth"]).succeeded();
    record(&out);
    let third = sm("AWSCURRENT").unwrap();
    assert_ne!(third, new);
    assert_eq!(moto.caches.auth_log(), ["ROTATE", "SET", "ROTATE", "SET"]);
    assert_eq!(moto.caches.tokens(GROUP), vec![third.clone()]);
    assert_eq!(k8s(), third);

    // `--rotate` of something else is refused before any request.
    let out = run(&["up", "--plan", &v71, "--rotate", "aws.db-password"]).exited(2);
    assert!(text(&out).contains("cannot be rotated"), "{}", text(&out));

    // No token in the state directory or anything printed.
    let state = all_text(env.dir.path());
    for t in [&old, &new, &third] {
        assert!(!state.contains(t.as_str()), "a token in the state files");
        assert!(!shown.contains(t.as_str()), "a token in the output");
    }
}

/// A wait that cannot converge ends at once, and one that is retrying says why at the default
/// verbosity: against the proxy, a ModifyReplicationGroup answered 500 every time shows in the
/// output with its error; a change AWS accepts and then drops (the group available, still
/// differing, nothing pending) ends the wait within a poll or two; a change AWS queues (pending)
/// keeps it waiting, and the timeout says what was pending.
#[test]
fn a_wait_that_cannot_converge_ends_and_a_retried_call_says_why() {
    let env = Env::new(50);
    let moto = moto::Moto::start();
    let run = |args: &[&str]| on_moto(&env, &moto, args);
    let base = plan_text(&moto).replace(
        "  aws:\n    region: us-west-2\n",
        "  aws:\n    region: us-west-2\n    applyChanges: immediately\n",
    );
    assert!(base.contains("applyChanges"));
    let plan = env.plan_from("prod.yaml", &base);
    run(&["up", "--plan", &plan]).succeeded();
    let bigger = env.plan_from(
        "bigger.yaml",
        &base.replace(
            "  redis:\n    mode: elasticache\n",
            "  redis:\n    mode: elasticache\n    nodeType: cache.m6g.2xlarge\n",
        ),
    );

    moto.caches.fail("ModifyReplicationGroup");
    let out = run(&["up", "--plan", &bigger, "--timeout", "20"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let retried = t
        .lines()
        .find(|l| l.contains("aws.redis: retrying") && l.contains("ModifyReplicationGroup"))
        .unwrap_or_else(|| panic!("no retry line at the default verbosity:\n{t}"));
    assert!(retried.contains("InternalFailure"), "{retried}");
    println!("{retried}");

    moto.caches.heal();
    moto.caches.stall_changes(false);
    let start = std::time::Instant::now();
    let failed = redis_failed(&run(&["up", "--plan", &bigger, "--timeout", "300"]));
    let took = start.elapsed();
    assert!(
        failed.contains("nothing pending") && failed.contains("cache.m6g.2xlarge"),
        "{failed}"
    );
    assert!(
        took < std::time::Duration::from_secs(60),
        "{took:?}: {failed}"
    );
    println!(
        "a dropped change ended the wait in {:.1} s: {failed}",
        took.as_secs_f64()
    );

    moto.caches.stall_changes(true);
    let failed = redis_failed(&run(&["up", "--plan", &bigger, "--timeout", "15"]));
    assert!(
        failed.contains("not ready after 15 s") && failed.contains("pending: automatic failover"),
        "{failed}"
    );

    moto.caches.heal();
    run(&["up", "--plan", &bigger]).succeeded();
}
