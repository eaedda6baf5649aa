//! The local state protects itself: everything wbstack writes under `.wbstack` (journals, plan
//! copies, locks, event logs, the sandbox's cluster and kubeconfig) is its user's alone
//! (directories 0700, files 0600), state an earlier version left open is closed, and a plan file
//! too large to be one is refused before anything is read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use wbstack_test_support::{text, Env, Exited};

/// Every directory and file below `dir` whose mode is not 0700 / 0600, with its mode.
fn open_to_others(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    if mode(dir) != 0o700 {
        out.push(format!("{} {:o}", dir.display(), mode(dir)));
    }
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(open_to_others(&p));
        } else if mode(&p) != 0o600 {
            out.push(format!("{} {:o}", p.display(), mode(&p)));
        }
    }
    out
}

#[test]
fn state_files_are_private_after_up_and_down_and_old_ones_are_closed() {
    let env = Env::new(50);
    // State an earlier version made readable by everyone.
    let root = env.dir.path().join(".wbstack");
    let old = root.join("wandb-dev");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("notes.txt"), "left by an earlier version").unwrap();
    for (p, m) in [(&root, 0o755), (&old, 0o755)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    std::fs::set_permissions(
        old.join("notes.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let poc = env.plan("poc.yaml");
    env.ok(&["up", "--plan", &poc]);
    let open = open_to_others(&root);
    assert!(open.is_empty(), "after up: {open:?}");
    env.ok(&["down", "--env", "wandb-dev"]);
    let open = open_to_others(&root);
    assert!(open.is_empty(), "after down: {open:?}");
}

#[test]
fn the_sandboxs_cluster_and_state_are_private() {
    let env = Env::new(50);
    let poc = Env::plans().join("poc.yaml").display().to_string();
    let mut c = env.cmd(&["up", "--plan", &poc, "--sandbox"]);
    c.env("WBSTACK_SANDBOX_DELAY_MS", "100")
        .env_remove("KUBECONFIG");
    c.output().unwrap().succeeded();
    let sandbox = env.dir.path().join(".wbstack/sandbox");
    assert!(sandbox.join("wandb-dev/sandbox-cluster.json").is_file());
    let open = open_to_others(&env.dir.path().join(".wbstack"));
    assert!(open.is_empty(), "{open:?}");
}

#[test]
fn a_plan_file_too_large_to_be_one_is_refused_before_it_is_read() {
    let env = Env::new(50);
    let big = env.dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(5 * 1024 * 1024).unwrap();
    let out = env.expect(&["validate", big.to_str().unwrap()], 2);
    assert!(
        text(&out).contains("the plan is 5242880 bytes; a plan is at most 4 MiB"),
        "{}",
        text(&out)
    );
}
