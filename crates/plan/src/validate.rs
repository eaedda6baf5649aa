//! Parsing and validation: every check runs before any API call, and every problem names its
//! file, line, column and field.

use crate::check::Checker;
use crate::diag::{Diagnostic, PlanError};
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
        Ok(plan)
    } else {
        c.out.sort_by_key(|d| (d.line, d.column));
        Err(PlanError(c.out))
    }
}
