//! Parsing and validation: every check runs before any API call, and every problem names its
//! file, line, column and field.

use crate::check::Checker;
use crate::diag::{Diagnostic, PlanError};
use crate::kinds::StepKind;
use crate::locate::Locations;
use crate::model::Plan;
use crate::resolve::Resolved;

/// Parses and validates a plan. `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Plan, PlanError> {
    let plan: Plan = match serde_yaml_ng::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            let msg = e.to_string();
            // serde_yaml_ng appends " at line L column C"; the location is said once, up front.
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_owned(),
                None => msg,
            };
            let (path, message) = match msg.split_once(": ") {
                Some((p, m))
                    if p.starts_with("spec")
                        || p.starts_with("metadata")
                        || p.starts_with("apiVersion")
                        || p.starts_with("kind") =>
                {
                    (p.to_owned(), m.to_owned())
                }
                _ => (String::new(), msg),
            };
            return Err(PlanError(vec![Diagnostic {
                file: file.to_owned(),
                line,
                column,
                path,
                message,
                help: None,
            }]));
        }
    };
    let mut c = Checker {
        file,
        loc: Locations::index(text),
        out: Vec::new(),
    };
    crate::sections::check(&mut c, &Resolved::new(&plan));
    if c.out.is_empty() {
        check_release_names(&mut c, &plan);
        crate::secret_keys::check_values(&mut c, &plan);
        check_adopted_secrets(&mut c, &plan);
        crate::digests::check(&mut c, &plan);
    }
    if c.out.is_empty() {
        Ok(plan)
    } else {
        c.out.sort_by_key(|d| (d.line, d.column));
        Err(PlanError(c.out))
    }
}

/// The resource's name is the operator's Helm release name: Helm must accept it, and the chart
/// must not give two installed components one object name under it (a release name that
/// contains two aliases, `weave-app`, renders app's and weave's objects over each other).
fn check_release_names(c: &mut Checker, plan: &Plan) {
    const PATH: &str = "spec.wandb.name";
    let name = &plan.spec.wandb.name;
    if let Some(why) = wbstack_chart::release_name_problem(name) {
        c.value_help(
            PATH,
            format!("`{name}` cannot be a Helm release name: {why}"),
            "the operator installs the chart as a Helm release named after the resource",
        );
        return;
    }
    let chart = wbstack_chart::operator_wandb();
    for step in crate::compile(plan) {
        let StepKind::WandbResource(w) = &step.kind else {
            continue;
        };
        for col in chart.collisions(name, &w.values) {
            c.value_help(
                PATH,
                format!(
                    "under the release name `{name}` the chart gives components {} the same object name `{}` (the release name contains their aliases)",
                    col.components.join(" and "),
                    col.name
                ),
                "choose a name that contains at most one component alias, such as `wandb`",
            );
        }
    }
}

/// Every Secret the plan adopts is one of the plan's own.
fn check_adopted_secrets(c: &mut Checker, plan: &Plan) {
    let adopt = &plan.spec.kubernetes.adopt_secrets;
    if adopt.is_empty() {
        return;
    }
    let steps = crate::compile(plan);
    let names: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.kind.footprint(None).secret)
        .collect();
    for a in adopt {
        if !names.contains(&a.as_str()) {
            c.value_help(
                "spec.kubernetes.adoptSecrets",
                format!("the plan makes no Secret `{a}`"),
                &format!("its Secrets: {}", names.join(", ")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> String {
        format!(
            "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {{name: dev}}\nspec:\n  wandb:\n    name: {name}\n    host: https://wandb.example.com\n    license: {{env: WANDB_LICENSE}}\n    weave: {{enabled: true}}\n"
        )
    }

    #[test]
    fn a_name_that_contains_one_alias_is_fine() {
        assert!(parse("p.yaml", &plan("wandb-weave")).is_ok());
        assert!(parse("p.yaml", &plan("wandb")).is_ok());
    }

    #[test]
    fn a_name_under_which_two_components_collide_is_refused_where_it_is_written() {
        let e = parse("p.yaml", &plan("weave-app")).unwrap_err();
        let d = &e.0[0];
        assert_eq!((d.line, d.column), (6, 11), "{d:?}");
        assert_eq!(d.path, "spec.wandb.name");
        assert!(d.message.contains("app and weave"), "{}", d.message);
        assert!(e.0.iter().any(|d| d.message.contains("`weave-app-bc`")));
    }

    #[test]
    fn the_sandboxs_own_directory_is_no_environment_name() {
        let text = plan("wandb").replace("metadata: {name: dev}", "metadata: {name: sandbox}");
        let e = parse("p.yaml", &text).unwrap_err();
        assert_eq!(e.0[0].path, "metadata.name");
        assert!(e.0[0].message.contains("keeps for itself"), "{:?}", e.0);
    }

    #[test]
    fn a_name_helm_refuses_is_refused() {
        let long = "w".repeat(54);
        let e = parse("p.yaml", &plan(&long)).unwrap_err();
        assert!(e.0[0].message.contains("longer than 53"), "{:?}", e.0);
        assert_eq!(e.0[0].line, 6);
    }
}
