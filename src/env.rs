//! An environment: its plan, its state directory, its secrets resolved before any API call.

use crate::cli::Target;
use crate::exit::CliError;
use std::path::{Path, PathBuf};
use wbstack_engine::{Secret, SecretRef};
use wbstack_plan::{Diagnostic, Plan, PlanError};

/// A plan read from a file, validated.
pub struct Loaded {
    pub plan: Plan,
    pub text: String,
    pub file: String,
}

/// Renders plan diagnostics for people: a `file:line:column: field: message` line each, and
/// the source lines around it when the file is at hand.
pub fn diagnostics_text(e: &PlanError) -> String {
    let mut s = String::new();
    for d in &e.0 {
        s.push_str(&format!("error: {d}\n"));
        if let Ok(src) = std::fs::read_to_string(&d.file) {
            s.push_str(&snippet(&src, d));
        }
    }
    s.push_str(&format!(
        "{} problem{} found; nothing was touched",
        e.0.len(),
        if e.0.len() == 1 { "" } else { "s" }
    ));
    s
}

/// Reads and validates a plan file.
pub fn load(path: &Path) -> Result<Loaded, CliError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid(format!("{file}: cannot read the plan: {e}")))?;
    let plan =
        wbstack_plan::parse(&file, &text).map_err(|e| CliError::invalid(diagnostics_text(&e)))?;
    Ok(Loaded { plan, text, file })
}

/// Where an environment's state lives.
pub fn state_dir(root: &Path, env: &str, sandbox: bool) -> PathBuf {
    if sandbox {
        root.join("sandbox").join(env)
    } else {
        root.join(env)
    }
}

/// The plan for a command: `--plan`, or the copy `up` saved for `--env`.
pub fn target_plan(root: &Path, t: &Target) -> Result<(Loaded, PathBuf), CliError> {
    let loaded = match (&t.plan, &t.env) {
        (Some(p), _) => load(p)?,
        (None, Some(env)) => {
            let copy = state_dir(root, env, t.sandbox).join("plan.yaml");
            if !copy.exists() {
                return Err(CliError::invalid(format!(
                    "no environment `{env}` in {} (give --plan)",
                    root.display()
                )));
            }
            load(&copy)?
        }
        (None, None) => return Err(CliError::invalid("give --plan FILE or --env NAME")),
    };
    if let Some(env) = &t.env {
        if env != &loaded.plan.metadata.name {
            return Err(CliError::invalid(format!(
                "--env {env} does not match the plan's metadata.name {}",
                loaded.plan.metadata.name
            )));
        }
    }
    let dir = state_dir(root, &loaded.plan.metadata.name, t.sandbox);
    Ok((loaded, dir))
}

/// The license value, read from where the plan says; an error names the field.
pub fn license(l: &Loaded) -> Result<Option<Secret>, CliError> {
    let src = &l.plan.spec.wandb.license;
    let loc = wbstack_plan::Locations::index(&l.text);
    let at = |path: &str, message: String| {
        let pos = loc
            .value(path)
            .unwrap_or(wbstack_plan::Pos { line: 1, column: 1 });
        let d = Diagnostic {
            file: l.file.clone(),
            line: pos.line,
            column: pos.column,
            path: path.into(),
            message,
            help: None,
        };
        CliError::invalid(diagnostics_text(&PlanError(vec![d])))
    };
    let r = SecretRef::new(
        "kubernetes",
        format!(
            "{}/{}",
            l.plan.spec.kubernetes.namespace,
            wbstack_plan::names::LICENSE
        ),
    )
    .with_key(wbstack_plan::names::LICENSE_KEY);
    let value = if let Some(var) = &src.env {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
            _ => {
                return Err(at(
                    "spec.wandb.license.env",
                    format!("the environment variable {var} holding the license is not set"),
                ))
            }
        }
    } else if let Some(f) = &src.file {
        let base = Path::new(&l.file).parent().unwrap_or(Path::new("."));
        match std::fs::read_to_string(base.join(f)) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
            Ok(_) => {
                return Err(at(
                    "spec.wandb.license.file",
                    format!("the license file {f} is empty"),
                ))
            }
            Err(e) => {
                return Err(at(
                    "spec.wandb.license.file",
                    format!("cannot read the license file {f}: {e}"),
                ))
            }
        }
    } else if let Some(v) = &src.value {
        v.clone()
    } else {
        return Ok(None);
    };
    Ok(Some(Secret::new(r, value)))
}

/// The source around a diagnostic, drawn by miette.
fn snippet(src: &str, d: &Diagnostic) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource, SourceSpan};
    #[derive(Debug, thiserror::Error, miette::Diagnostic)]
    #[error("{message}")]
    struct Shown {
        message: String,
        #[source_code]
        src: NamedSource<String>,
        #[label("here")]
        at: SourceSpan,
    }
    let offset: usize = src
        .split_inclusive('\n')
        .take(d.line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + d.column.saturating_sub(1);
    let shown = Shown {
        message: d.message.clone(),
        src: NamedSource::new(&d.file, src.to_owned()),
        at: (offset.min(src.len()), 1).into(),
    };
    let mut out = String::new();
    let handler =
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_context_lines(1);
    if handler.render_report(&mut out, &shown).is_err() {
        return String::new();
    }
    // The first line repeats the message; the snippet is what adds to it.
    out.lines().skip(1).map(|l| format!("{l}\n")).collect()
}
