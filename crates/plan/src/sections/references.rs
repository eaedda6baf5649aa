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

#[cfg(test)]
mod tests {
    use crate::sections::testing::{at, diagnostics, steps, AWS};

    #[test]
    fn hooks_and_timeouts_must_name_steps_of_this_plan() {
        let spec = "  hooks:\n    aws.redis:\n      - {when: after, command: [echo]}\n  timeouts:\n    steps: {k8s.nope: 60}\n";
        let (path, line, _) = at(spec, "no step `aws.redis` in this plan");
        assert_eq!((path.as_str(), line), ("spec.hooks.aws.redis", 9));
        let (path, line, _) = at(spec, "no step `k8s.nope` in this plan");
        assert_eq!((path.as_str(), line), ("spec.timeouts.steps.k8s.nope", 12));
        let ok = "  hooks:\n    k8s.wandb:\n      - {when: after, command: [echo, up]}\n";
        assert!(!steps(ok).is_empty());
    }

    #[test]
    fn a_hook_says_when_what_and_how_long() {
        let spec =
            "  hooks:\n    k8s.wandb:\n      - {when: later, command: [''], timeoutSeconds: 0}\n";
        let paths: Vec<String> = diagnostics(spec).into_iter().map(|d| d.path).collect();
        assert_eq!(
            paths,
            [
                "spec.hooks.k8s.wandb[0].when",
                "spec.hooks.k8s.wandb[0].command",
                "spec.hooks.k8s.wandb[0].timeoutSeconds"
            ]
        );
        let (path, _, _) = at("  timeouts: {readySeconds: 0}\n", "at least one second");
        assert_eq!(path, "spec.timeouts.readySeconds");
    }

    #[test]
    fn only_aws_steps_of_this_plan_can_be_adopted() {
        let spec =
            format!("  bucket: {{mode: s3}}\n{AWS}    adopt: [aws.bucket, aws.mysql, k8s.wandb]\n");
        let all = diagnostics(&spec);
        let refused: Vec<&str> = all.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            refused,
            ["spec.aws.adopt[1]", "spec.aws.adopt[2]"],
            "{all:#?}"
        );
        assert!(all[0].help.as_deref().unwrap().contains("aws.bucket"));
    }
}
