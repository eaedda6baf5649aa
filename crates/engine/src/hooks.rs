//! User hooks: commands run without a shell around a step, with dependency outputs in their
//! environment, a timeout, and their output delivered as (redacted) events.

use crate::events::{Event, EventSink, Stream};
use crate::id::{RunId, StepId};
use crate::secret::redact;
use crate::step::{Outputs, StepError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookWhen {
    /// Before the step's mutating call (not when it is unchanged).
    Before,
    /// After the step became Ready through a mutating call.
    After,
    /// After the step failed.
    OnFailure,
    /// After the step was rolled back.
    OnRollback,
}

/// A command to run at a point of a step's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub when: HookWhen,
    /// A label for events; defaults to the program name.
    #[serde(default)]
    pub name: String,
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(with = "secs", default = "default_timeout")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

impl Hook {
    /// A hook running `program args...` at `when`, with a 5 minute timeout.
    pub fn new(when: HookWhen, program: impl Into<String>, args: &[&str]) -> Self {
        let program = program.into();
        Hook {
            when,
            name: program.clone(),
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: BTreeMap::new(),
            timeout: default_timeout(),
        }
    }

    fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.program
        } else {
            &self.name
        }
    }
}

/// `aws.rds-cluster` -> `AWS_RDS_CLUSTER`.
pub fn env_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn env_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The environment a hook gets: `WBSTACK_STEP`, `WBSTACK_RUN`, `WBSTACK_HOOK`, every dependency
/// output as `WBSTACK_DEP_<STEP>_<KEY>`, and the step's own outputs (when it has them) as
/// `WBSTACK_OUT_<KEY>`. Outputs hold secret references, never values.
pub fn hook_env(
    step: &StepId,
    run: RunId,
    when: HookWhen,
    deps: &BTreeMap<StepId, Outputs>,
    own: Option<&Outputs>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("WBSTACK_STEP".into(), step.to_string());
    env.insert("WBSTACK_RUN".into(), run.0.to_string());
    let when = serde_json::to_value(when)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    env.insert("WBSTACK_HOOK".into(), when);
    for (dep, outs) in deps {
        for (k, v) in outs {
            env.insert(
                format!("WBSTACK_DEP_{}_{}", env_name(dep.as_str()), env_name(k)),
                env_value(v),
            );
        }
    }
    if let Some(own) = own {
        for (k, v) in own {
            env.insert(format!("WBSTACK_OUT_{}", env_name(k)), env_value(v));
        }
    }
    env
}

/// Runs one hook to completion. A non-zero exit, a failure to start or a timeout is a permanent
/// error of the step.
pub(crate) async fn run_hook(
    hook: &Hook,
    step: &StepId,
    env: &BTreeMap<String, String>,
    events: &EventSink,
) -> Result<(), StepError> {
    let label = hook.label().to_owned();
    events.emit(Event::HookStarted {
        step: step.clone(),
        hook: label.clone(),
    });
    let mut cmd = tokio::process::Command::new(&hook.program);
    cmd.args(&hook.args)
        .envs(env)
        .envs(&hook.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        StepError::permanent(format!("failed to start hook `{label}` ({})", hook.program))
            .with_source(e)
    })?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    let pump = |r: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>, stream: Stream| {
        let events = events.clone();
        let step = step.clone();
        let label = label.clone();
        async move {
            let Some(r) = r else { return };
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                events.emit(Event::HookOutput {
                    step: step.clone(),
                    hook: label.clone(),
                    stream,
                    line: redact(&line),
                });
            }
        }
    };
    let pumps = futures::future::join(
        pump(out.map(|o| Box::new(o) as _), Stream::Stdout),
        pump(err.map(|e| Box::new(e) as _), Stream::Stderr),
    );
    let run = async {
        pumps.await;
        child.wait().await
    };
    let result = match tokio::time::timeout(hook.timeout, run).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(StepError::permanent(format!(
            "hook `{label}` exited with {status}"
        ))),
        Ok(Err(e)) => Err(StepError::permanent(format!("hook `{label}` failed")).with_source(e)),
        Err(_) => Err(StepError::permanent(format!(
            "hook `{label}` did not finish within {} s and was killed",
            hook.timeout.as_secs()
        ))),
    };
    events.emit(Event::HookFinished {
        step: step.clone(),
        hook: label,
        success: result.is_ok(),
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventLog;
    use crate::secret::{Secret, SecretRef};

    #[tokio::test]
    async fn a_hook_sees_dependency_outputs_and_its_output_is_redacted() {
        let secret = Secret::new(SecretRef::new("k8s", "ns/s"), "s3cr3t-value-123");
        let mut deps = BTreeMap::new();
        let mut o = Outputs::new();
        o.insert("endpoint".into(), serde_json::json!("db.example:3306"));
        o.insert("password".into(), serde_json::to_value(&secret).unwrap());
        deps.insert(StepId::new("aws.rds"), o);
        let env = hook_env(&StepId::new("x"), RunId(3), HookWhen::After, &deps, None);
        assert_eq!(env["WBSTACK_DEP_AWS_RDS_ENDPOINT"], "db.example:3306");
        assert!(!env["WBSTACK_DEP_AWS_RDS_PASSWORD"].contains("s3cr3t"));
        let sink = EventSink::new();
        let log = EventLog::attach(&sink);
        let hook = Hook::new(
            HookWhen::After,
            "sh",
            &[
                "-c",
                "echo endpoint=$WBSTACK_DEP_AWS_RDS_ENDPOINT; echo leaked s3cr3t-value-123 >&2",
            ],
        );
        run_hook(&hook, &StepId::new("x"), &env, &sink)
            .await
            .unwrap();
        let lines: Vec<String> = log
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::HookOutput { line, .. } => Some(line),
                _ => None,
            })
            .collect();
        assert!(
            lines.contains(&"endpoint=db.example:3306".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"leaked ***".to_string()), "{lines:?}");
    }

    #[tokio::test]
    async fn a_failing_or_slow_hook_is_a_permanent_error() {
        let sink = EventSink::new();
        let env = BTreeMap::new();
        let fail = Hook::new(HookWhen::Before, "false", &[]);
        let e = run_hook(&fail, &StepId::new("x"), &env, &sink)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::step::ErrorKind::Permanent);
        let mut slow = Hook::new(HookWhen::Before, "sleep", &["5"]);
        slow.timeout = Duration::from_millis(200);
        let e = run_hook(&slow, &StepId::new("x"), &env, &sink)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("did not finish"), "{e}");
        let missing = Hook::new(HookWhen::Before, "/nonexistent/hook", &[]);
        let e = run_hook(&missing, &StepId::new("x"), &env, &sink)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("failed to start"), "{e}");
    }
}
