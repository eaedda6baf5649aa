//! An environment: its plan, its state directory, its secrets resolved before any API call.

use crate::cli::Target;
use crate::exit::CliError;
use crate::state::{self, EnvState, Store};
use std::path::Path;
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
            s.push_str(&snippet(&redacted(&src), d));
        }
    }
    s.push_str(&format!(
        "{} problem{} found; nothing was touched",
        e.0.len(),
        if e.0.len() == 1 { "" } else { "s" }
    ));
    s
}

/// The largest plan file read (the shipped plans are under 4 KiB).
pub const MAX_PLAN_BYTES: u64 = 4 * 1024 * 1024;

/// Reads and validates a plan file.
pub fn load(path: &Path) -> Result<Loaded, CliError> {
    let file = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| CliError::invalid(format!("{file}: cannot read the plan: {e}")))?
        .len();
    if size > MAX_PLAN_BYTES {
        return Err(CliError::invalid(format!(
            "{file}: the plan is {size} bytes; a plan is at most {} MiB",
            MAX_PLAN_BYTES / 1024 / 1024
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid(format!("{file}: cannot read the plan: {e}")))?;
    parse(file, text)
}

pub fn parse(file: String, text: String) -> Result<Loaded, CliError> {
    let plan =
        wbstack_plan::parse(&file, &text).map_err(|e| CliError::invalid(diagnostics_text(&e)))?;
    let l = Loaded { plan, text, file };
    let endpoint = l.plan.spec.aws.as_ref().and_then(|a| a.endpoint.as_deref());
    if let Some(why) = endpoint.and_then(crate::endpoint::problem) {
        return Err(at(&l, "spec.aws.endpoint", why));
    }
    Ok(l)
}

/// An error about a field of the loaded plan, at its file:line:column.
fn at(l: &Loaded, path: &str, message: String) -> CliError {
    let pos = wbstack_plan::Locations::index(&l.text)
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
}

/// Where the state lives: `--state-dir` (or `WBSTACK_STATE_DIR`), else the plan's
/// `spec.state`, else `.wbstack`.
pub fn location(flag: Option<&str>, plan: Option<&Plan>) -> String {
    flag.map(str::to_owned)
        .or_else(|| plan.and_then(|p| p.spec.state.clone()))
        .unwrap_or_else(|| state::DEFAULT.to_owned())
}

/// The plan for a command (`--plan`, or the copy `up` saved for `--env`) and the environment's
/// state. Only the state store is read.
pub async fn target_plan(flag: Option<&str>, t: &Target) -> Result<(Loaded, EnvState), CliError> {
    let (loaded, store) = match (&t.plan, &t.env) {
        (Some(p), _) => {
            let loaded = load(p)?;
            let at = location(flag, Some(&loaded.plan));
            check_state_bucket(&at, &loaded.plan)?;
            (loaded, Store::open(&at).await?)
        }
        (None, Some(env)) => {
            let store = Store::open(&location(flag, None)).await?;
            let state = store.env(env, t.sandbox)?;
            let Some(text) = state.plan_copy().await? else {
                return Err(CliError::invalid(format!(
                    "no environment `{env}` in {} (give --plan)",
                    store.describe()
                )));
            };
            (parse(state.plan_copy_name(), text)?, store)
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
    let state = store.env(&loaded.plan.metadata.name, t.sandbox)?;
    let mut loaded = loaded;
    if t.sandbox {
        crate::sandbox::rehearse(&mut loaded.plan, &state).await?;
    }
    Ok((loaded, state))
}

/// The bucket holding the state is never one the plan creates (and `down` destroys).
fn check_state_bucket(at: &str, plan: &Plan) -> Result<(), CliError> {
    match wbstack_plan::state_bucket(at) {
        Some(b) if wbstack_plan::artifacts_bucket(plan).as_deref() == Some(b) => {
            Err(CliError::invalid(format!(
                "error: the state bucket `{b}` is the bucket this plan creates and `down` destroys; keep the state in a bucket of its own, which wbstack never creates or deletes"
            )))
        }
        _ => Ok(()),
    }
}

/// The license value, read from where the plan says; an error names the field.
pub fn license(l: &Loaded) -> Result<Option<Secret>, CliError> {
    let src = &l.plan.spec.wandb.license;
    let at = |path: &str, message: String| at(l, path, message);
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
/// The widest source line a snippet shows.
const SNIPPET_WIDTH: usize = 160;

/// The plan's text as a snippet may show it: the value of every secret-like key (and of
/// `value` under `license`) replaced, each line cut to [`SNIPPET_WIDTH`] characters. Line and
/// column numbers are kept for the lines that are not cut.
fn redacted(src: &str) -> String {
    let mut parents: Vec<(usize, String)> = Vec::new();
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start().trim_start_matches("- ");
        let mut shown = line.to_owned();
        if let Some((key, rest)) = body.split_once(':') {
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            parents.retain(|(i, _)| *i < indent);
            let under_license = parents.last().is_some_and(|(_, k)| k == "license");
            let secret = wbstack_plan::secret_like_key(key) || (under_license && key == "value");
            if secret && !rest.trim().is_empty() {
                shown = format!("{}: <redacted>", &line[..line.len() - rest.len() - 1]);
            }
            parents.push((indent, key.to_owned()));
        }
        let shown = redacted_flow(&shown);
        out.extend(shown.chars().take(SNIPPET_WIDTH));
        out.push('\n');
    }
    out
}

/// A line's flow mappings (`{user: u, password: p}`) with secret-like keys' values replaced.
fn redacted_flow(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(['{', ',']) {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        if let Some((k, v)) = rest[..end].split_once(':') {
            let key = k.trim().trim_matches(|c| c == '"' || c == '\'');
            if wbstack_plan::secret_like_key(key) && !v.trim().is_empty() {
                out.push_str(k);
                out.push_str(": <redacted>");
                rest = &rest[end..];
            }
        }
    }
    out.push_str(rest);
    out
}

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

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_snippet_never_shows_a_secret_and_keeps_its_lines() {
        let src = "spec:\n  wandb:\n    license:\n      value: LIC-123\n    values:\n      global:\n        mysql: {password: hunter2}\n        \"apiKey\": k-9\n        host: db\n";
        let shown = redacted(src);
        for secret in ["LIC-123", "hunter2", "k-9"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("host: db"));
        assert_eq!(shown.lines().count(), src.lines().count());
        assert!(redacted(&"x".repeat(1000)).len() <= 161);
    }
}
