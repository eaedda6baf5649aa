//! Progress as a person sees it: on a terminal (a pseudo-terminal here), one live line per
//! running step with its elapsed time, redrawn in place and ending with the step's outcome;
//! anywhere else, plain timestamped lines with no terminal control codes.

use std::process::Command;
use wbstack_test_support::{Env, Exited};

/// Runs `cmd` with its standard streams on a new pseudo-terminal (Python's `pty`), returning
/// everything it wrote and its exit code.
fn on_a_terminal(env: &Env, args: &[&str], delay_ms: &str) -> (String, Option<i32>) {
    let script = r#"
import os, pty, subprocess, sys
master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
out = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.buffer.write(out)
sys.exit(p.wait())
"#;
    let mut argv = vec![env!("CARGO_BIN_EXE_wbstack").to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&argv)
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path())
        .env("WANDB_LICENSE", wbstack_test_support::LICENSE)
        .env("WBSTACK_SANDBOX_DELAY_MS", delay_ms)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn a_terminal_gets_a_live_line_per_step_and_a_pipe_gets_plain_lines() {
    let env = Env::new(0);
    let plan = Env::plans().join("poc.yaml").display().to_string();
    let (tty, code) = on_a_terminal(&env, &["up", "--plan", &plan, "--sandbox"], "2500");
    assert_eq!(code, Some(0), "{tty}");
    // Redrawn in place: cursor movements and line clears, not a scroll of lines.
    assert!(tty.contains("\x1b["), "terminal control codes: {tty}");
    // A running step's line: its name and its elapsed time, then its outcome.
    let elapsed = |l: &str| {
        l.split_whitespace().any(|w| {
            w.strip_suffix('s')
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
    };
    let live = tty
        .split(['\r', '\n'])
        .any(|l| l.contains("k8s.wandb ") && l.contains("waiting") && elapsed(l));
    assert!(live, "a live line for k8s.wandb: {tty}");
    assert!(
        tty.split(['\r', '\n'])
            .any(|l| l.contains("k8s.wandb") && l.contains("created (")),
        "its outcome: {tty}"
    );
    // Through a pipe (down here), plain lines with their time since the start, and no codes.
    let out = env
        .cmd(&["down", "--env", "wandb-dev", "--sandbox"])
        .env("WBSTACK_SANDBOX_DELAY_MS", "100")
        .output()
        .unwrap()
        .succeeded();
    let plain = String::from_utf8_lossy(&out.stderr);
    assert!(!plain.contains('\x1b'), "{plain}");
    assert!(
        plain
            .lines()
            .any(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())
                && l.contains("s  k8s.wandb: destroyed")),
        "{plain}"
    );
}

/// With `--output json` every event carries when it happened (`at_ms`, wall clock, and
/// `elapsed_ms` since the command began), in order; the last line is the report.
#[test]
fn json_events_carry_their_time() {
    let env = Env::new(100);
    let plan = env.plan("poc.yaml");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let out = env.ok(&["up", "--plan", &plan, "--output", "json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (report, events) = lines.split_last().unwrap();
    assert_eq!(report["event"], "report");
    assert!(events.len() > 10, "{} events", events.len());
    let mut last = (before, 0);
    for e in events {
        let at = (
            e["at_ms"].as_u64().unwrap(),
            e["elapsed_ms"].as_u64().unwrap(),
        );
        assert!(at.0 >= last.0 && at.1 >= last.1, "{e} after {last:?}");
        last = at;
    }
    assert!(events.iter().any(|e| e["event"] == "step_ready"));
}
