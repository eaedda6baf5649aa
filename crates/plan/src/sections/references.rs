//! Hooks, timeouts and `spec.aws.adopt`: everything that names steps, checked against the steps
//! this plan compiles to.

use crate::check::Checker;
use crate::resolve::Resolved;

const HOOK_TIMES: [&str; 4] = ["before", "after", "on_failure", "on_rollback"];

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    check_hooks(c, r);
    if r.spec.timeouts.ready_seconds == 0 {
        c.value(
            "spec.timeouts.readySeconds",
            "the timeout must be at least one second",
        );
    }
    let steps = crate::compile::compile(r.plan);
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    let help = format!("steps: {}", ids.join(", "));
    for step in r.spec.hooks.keys() {
        if !ids.contains(&step.as_str()) {
            let path = format!("spec.hooks.{step}");
            c.at(
                &path,
                true,
                format!("no step `{step}` in this plan"),
                Some(&help),
            );
        }
    }
    let aws_ids: Vec<&str> = steps
        .iter()
        .filter(|s| s.kind.is_aws())
        .map(|s| s.id.as_str())
        .collect();
    check_adopt(c, r, &aws_ids);
    for step in r.spec.timeouts.steps.keys() {
        if !ids.contains(&step.as_str()) {
            let path = format!("spec.timeouts.steps.{step}");
            c.at(
                &path,
                true,
                format!("no step `{step}` in this plan"),
                Some(&help),
            );
        }
    }
}

fn check_hooks(c: &mut Checker, r: &Resolved) {
    for (step, hooks) in &r.spec.hooks {
        for (i, h) in hooks.iter().enumerate() {
            let path = format!("spec.hooks.{step}[{i}]");
            if !HOOK_TIMES.contains(&h.when.as_str()) {
                c.value(
                    &format!("{path}.when"),
                    format!(
                        "unknown hook time `{}`; expected before, after, on_failure or on_rollback",
                        h.when
                    ),
                );
            }
            if h.command.is_empty() || h.command[0].is_empty() {
                c.value(&format!("{path}.command"), "the command is empty");
            }
            if h.timeout_seconds == 0 {
                c.value(
                    &format!("{path}.timeoutSeconds"),
                    "the timeout must be at least one second",
                );
            }
        }
    }
}

fn check_adopt(c: &mut Checker, r: &Resolved, aws_ids: &[&str]) {
    for (i, step) in r.spec.aws.iter().flat_map(|a| a.adopt.iter()).enumerate() {
        if !aws_ids.contains(&step.as_str()) {
            c.at(
                &format!("spec.aws.adopt[{i}]"),
                false,
                format!("no AWS step `{step}` in this plan"),
                Some(&format!("AWS steps: {}", aws_ids.join(", "))),
            );
        }
    }
}
