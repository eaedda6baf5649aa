//! Running a command and judging it: the exit status is asserted here, once, and a failure names
//! the test's own line (`#[track_caller]`) with everything the command printed.

use std::process::{Command, Output};

/// A command's stdout and stderr, for a failure message.
pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd` and asserts it exited with `code`; returns its output.
#[track_caller]
pub fn expect_code(cmd: &mut Command, code: i32) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start: {e}"));
    let caller = std::panic::Location::caller();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}, run at {caller}, exited {:?} where {code} was expected\n{}",
        out.status,
        text(&out)
    );
    out
}

/// Runs `cmd` and asserts it succeeded; returns its output.
#[track_caller]
pub fn ok(cmd: &mut Command) -> Output {
    expect_code(cmd, 0)
}

/// Judging an output already taken (a command built by a test's own helper).
pub trait Exited {
    /// Asserts the command succeeded; a failure names the caller's line and what was printed.
    fn succeeded(self) -> Output;
    /// Asserts the command exited with `code`.
    fn exited(self, code: i32) -> Output;
}

impl Exited for Output {
    #[track_caller]
    fn succeeded(self) -> Output {
        self.exited(0)
    }

    #[track_caller]
    fn exited(self, code: i32) -> Output {
        let caller = std::panic::Location::caller();
        assert_eq!(
            self.status.code(),
            Some(code),
            "the command run at {caller} exited {:?} where {code} was expected\n{}",
            self.status,
            text(&self)
        );
        self
    }
}

/// The last line of a command's output as JSON (the report of `--output json`).
pub fn last_json(out: &Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().unwrap_or("null")).unwrap()
}

/// One step's entry in a run report.
pub fn step_report(report: &serde_json::Value, id: &str) -> serde_json::Value {
    report["report"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no step {id} in {report}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_is_returned_with_what_it_printed() {
        let out = ok(Command::new("sh").args(["-c", "echo said"]));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "said\n");
    }

    #[test]
    fn a_failure_names_the_callers_line_and_what_was_printed() {
        let line = line!() + 2;
        let caught = std::panic::catch_unwind(|| {
            ok(Command::new("sh").args(["-c", "echo why >&2; exit 3"]));
        })
        .unwrap_err();
        let msg = caught.downcast_ref::<String>().unwrap();
        assert!(msg.contains(&format!("run.rs:{line}")), "{msg}");
        assert!(
            msg.contains("why") && msg.contains("where 0 was expected"),
            "{msg}"
        );
    }

    #[test]
    fn an_output_taken_elsewhere_is_judged_at_the_callers_line() {
        let out = Command::new("sh").args(["-c", "exit 2"]).output().unwrap();
        let line = line!() + 1;
        let caught = std::panic::catch_unwind(|| out.clone().succeeded()).unwrap_err();
        let msg = caught.downcast_ref::<String>().unwrap();
        assert!(msg.contains(&format!("run.rs:{line}")), "{msg}");
        assert_eq!(out.exited(2).status.code(), Some(2));
    }

    #[test]
    fn an_expected_code_other_than_zero_is_accepted() {
        let out = expect_code(Command::new("sh").args(["-c", "exit 4"]), 4);
        assert_eq!(out.status.code(), Some(4));
    }
}
