//! `up`, `resume`, `restore` and `down`: one engine run, its reporter and its summary.

use crate::cli::{OnFailure, OutputFormat, RunOpts, Target, VerifyOpts};
use crate::cluster::connect;
use crate::env::{self, target_plan};
use crate::exit::{CliError, Exit};
use crate::reporter;
use crate::state::EnvState;
use std::io::Write;
use wbstack_engine::{
    CancellationToken, DownOptions, Engine, EngineConfig, EventSink, FailurePolicy, RunReport,
    RunStatus, StepOutcome,
};

/// `--rotate` names a secret this plan can rotate, and only `up` rotates.
fn check_rotate(run: &RunOpts, plan: &wbstack_plan::Plan, op: &Op) -> Result<(), CliError> {
    let Some(first) = run.rotate.first() else {
        return Ok(());
    };
    if matches!(op, Op::Down { .. }) {
        return Err(CliError::invalid(format!(
            "--rotate {first}: only `up` and `resume` rotate a secret"
        )));
    }
    let steps = wbstack_plan::compile(plan);
    let can = |id: &str| {
        id == wbstack_plan::ids::REDIS_AUTH
            && steps
                .iter()
                .any(|s| s.id == wbstack_plan::ids::REDIS_AUTH_COMMIT)
    };
    match run.rotate.iter().find(|r| !can(r)) {
        Some(bad) if steps.iter().any(|s| &s.id == bad) => Err(CliError::invalid(format!(
            "--rotate {bad}: this secret cannot be rotated (the one that can: {}, with spec.redis.mode elasticache)",
            wbstack_plan::ids::REDIS_AUTH
        ))),
        Some(bad) => Err(CliError::invalid(format!(
            "--rotate {bad}: the plan has no such step (the secret that can be rotated: {}, with spec.redis.mode elasticache)",
            wbstack_plan::ids::REDIS_AUTH
        ))),
        None => Ok(()),
    }
}

fn engine_config(run: &RunOpts) -> Result<EngineConfig, CliError> {
    if run.parallelism == 0 {
        return Err(CliError::invalid("--parallelism must be at least 1"));
    }
    Ok(EngineConfig {
        replace: run.replace.iter().cloned().collect(),
        parallelism: run.parallelism,
        failure_policy: match run.on_failure {
            OnFailure::Keep => FailurePolicy::Keep,
            OnFailure::Rollback => FailurePolicy::Rollback,
        },
        ..EngineConfig::default()
    })
}

fn signal_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupt: finishing calls in flight, then stopping (resume continues)");
            c.cancel();
        }
    });
    cancel
}

fn summarize(r: &RunReport, fmt: OutputFormat) {
    if fmt == OutputFormat::Json {
        // A reader that went away must not turn a finished run into a panic.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"event": "report", "report": r})
        );
        return;
    }
    eprintln!();
    for s in r.steps.iter().chain(r.rollback.iter()) {
        let extra = match &s.outcome {
            StepOutcome::Failed { error } => format!(": {error}"),
            StepOutcome::Skipped { because } => format!(" ({because} failed)"),
            StepOutcome::LeftTo { environment } => format!(" (to environment {environment})"),
            _ => String::new(),
        };
        eprintln!(
            "  {:<26} {:<12} {:>6.1}s{extra}",
            s.id.as_str(),
            s.outcome.label(),
            s.duration.as_secs_f64()
        );
    }
    let st = &r.stats;
    eprintln!(
        "{:?}: {} created, {} updated, {} unchanged, {} adopted, {} destroyed, {} failed, {} skipped in {:.1} s",
        r.status,
        st.created,
        st.updated,
        st.unchanged,
        st.adopted,
        st.destroyed,
        st.failed,
        st.skipped,
        st.elapsed_ms as f64 / 1000.0
    );
    match r.status {
        RunStatus::Failed => eprintln!("what was made is kept; fix the cause and run `wbstack resume` (or `down` to remove it)"),
        RunStatus::Cancelled => eprintln!("interrupted; `wbstack resume` completes the run"),
        _ => {}
    }
}

/// Which engine operation a run performs.
pub(super) enum Op {
    /// `check`: `verify` once the run succeeds.
    Up(VerifyOpts),
    /// `force` overrides protection; `remove_adopted` also removes adopted resources.
    Down {
        force: bool,
        remove_adopted: bool,
        discover: bool,
        skip_final_snapshot: bool,
    },
}

/// `up`, `resume` and `down`: everything checked before the first API call, then the lock, the
/// connection, the graph, the journal and the engine.
pub(super) async fn execute(
    flag: Option<&str>,
    t: &Target,
    run: &RunOpts,
    fmt: OutputFormat,
    op: Op,
) -> Result<Exit, CliError> {
    let (mut loaded, at) = target_plan(flag, t).await?;
    let config = engine_config(run)?;
    let ids: Vec<String> = wbstack_plan::compile(&loaded.plan)
        .into_iter()
        .map(|s| s.id)
        .collect();
    if let Some(unknown) = run.replace.iter().find(|r| !ids.contains(r)) {
        return Err(CliError::invalid(format!(
            "--replace {unknown}: the plan has no such step (its steps: {})",
            ids.join(", ")
        )));
    }
    check_rotate(run, &loaded.plan, &op)?;
    if let Op::Down { force: true, .. } = op {
        // A forced teardown of a protected environment lifts the database's deletion
        // protection on the way, as it does for an unprotected one.
        if loaded.plan.metadata.protected
            || loaded.plan.spec.mysql.deletion_protection == Some(true)
        {
            loaded.plan.spec.mysql.deletion_protection = Some(false);
        }
    }
    let name = loaded.plan.metadata.name.clone();
    let license = match op {
        Op::Up(_) => env::license(&loaded)?,
        Op::Down { force, .. } => {
            if loaded.plan.metadata.protected && !force {
                return Err(CliError::refused(format!("{name} is protected (metadata.protected: true); run `down --force` to tear it down anyway")));
            }
            // Teardown needs no license value; when it is not at hand a placeholder stands in,
            // which no teardown writes anywhere.
            env::license(&loaded).ok().flatten().or_else(|| {
                Some(wbstack_engine::Secret::new(
                    wbstack_engine::SecretRef::new("none", "unused"),
                    "",
                ))
            })
        }
    };
    let mut held = at.lock().await?;
    let cancel = signal_token();
    let lost = held.start_heartbeat();
    let c = cancel.clone();
    let watch = tokio::spawn(async move {
        lost.cancelled().await;
        eprintln!(
            "the environment's lock was removed or taken over: stopping after the calls in flight"
        );
        c.cancel();
    });
    let job = Job {
        at: &at,
        t,
        run,
        fmt,
        loaded: &loaded,
        license: &license,
    };
    let result = job.run(config, op, cancel).await;
    watch.abort();
    held.release().await;
    result
}

/// `up` or `down` of one environment, once its lock is held.
struct Job<'a> {
    at: &'a EnvState,
    t: &'a Target,
    run: &'a RunOpts,
    fmt: OutputFormat,
    loaded: &'a env::Loaded,
    license: &'a Option<wbstack_engine::Secret>,
}

impl Job<'_> {
    async fn run(
        &self,
        config: EngineConfig,
        op: Op,
        cancel: CancellationToken,
    ) -> Result<Exit, CliError> {
        let (plan, fmt, name) = (&self.loaded.plan, self.fmt, &self.loaded.plan.metadata.name);
        let steps = wbstack_plan::compile(plan);
        if matches!(op, Op::Up(_)) {
            self.at.save_plan(&self.loaded.text).await?;
        }
        let conn = connect(self.t, plan, self.at).await?;
        if matches!(op, Op::Up(_)) {
            if let Err(e) =
                crate::preflight::run(&conn.kube, plan, &steps, &self.run.skip_preflight).await
            {
                conn.close();
                return Err(e);
            }
        }
        if fmt == OutputFormat::Text {
            eprintln!(
                "{name}: {} on the {}, state in {}",
                if matches!(op, Op::Up(_)) {
                    "up"
                } else {
                    "down"
                },
                conn.description,
                self.at.location()
            );
        }
        let skip_snapshot = matches!(
            op,
            Op::Down {
                skip_final_snapshot: true,
                ..
            }
        );
        let aws = crate::aws::connect(
            plan,
            &steps,
            &self.run.rotate,
            skip_snapshot,
            self.t.sandbox,
        )
        .await?;
        if let (Op::Up(_), Some(a)) = (&op, &aws) {
            if let Err(e) = self.check_identity(a).await {
                conn.close();
                return Err(e);
            }
        }
        let graph = crate::wiring::graph(
            plan,
            &steps,
            &conn.kube,
            aws.as_ref(),
            self.license,
            self.run.timeout,
        )?;
        let opened = self.at.open_journal().await?;
        let (journal, state) = (opened.journal.clone(), opened.state.clone());
        let op = self.with_discovery(op, &state);
        let sink = EventSink::new();
        reporter::attach(&sink, fmt);
        let log = crate::eventlog::EventLog::attach(&sink, self.at);
        let engine = Engine::new(config, sink);
        let report = match op {
            Op::Up(_) => engine.up(&graph, &journal, state, cancel).await,
            Op::Down {
                remove_adopted,
                discover,
                ..
            } => {
                let opts = DownOptions {
                    remove_adopted,
                    discover,
                };
                engine.down(&graph, &journal, state, opts, cancel).await
            }
        };
        let checked = match (&op, &report) {
            (Op::Up(check), Ok(r))
                if r.status == RunStatus::Succeeded && (check.verify || plan.spec.verify) =>
            {
                let probed =
                    crate::verify::probe(&conn.kube, plan, self.t.sandbox, &check.probe).await;
                Some(probed)
            }
            _ => None,
        };
        conn.close();
        if let Err(e) = log.save(self.at).await {
            eprintln!("{name}: the run's events were not saved for `report`: {e}");
        }
        let report = report?;
        summarize(&report, fmt);
        if self.t.sandbox && matches!(op, Op::Down { .. }) && report.status == RunStatus::Succeeded
        {
            crate::sandbox::stop(self.at);
        }
        let discovered = matches!(op, Op::Down { discover: true, .. });
        if discovered
            && fmt == OutputFormat::Text
            && report.status == RunStatus::Succeeded
            && report.stats.destroyed == 0
        {
            eprintln!(
                "{name}: nothing carrying its tags or labels was found: nothing to tear down"
            );
        }
        match checked {
            Some(probed) => Ok(crate::verify::show(name, &probed, fmt)),
            None => Ok(report.status.into()),
        }
    }
}

impl Job<'_> {
    /// `down` finds what the environment owns by its marks when there is no journal, when the
    /// journal records no resource, or when a discovery stopped short: it is not assumed absent.
    fn with_discovery(&self, op: Op, state: &wbstack_engine::JournalState) -> Op {
        let name = &self.loaded.plan.metadata.name;
        match op {
            Op::Down {
                force,
                remove_adopted,
                discover,
                skip_final_snapshot,
            } if discover || state.steps.is_empty() || discovery_unfinished(state) => {
                if self.fmt == OutputFormat::Text {
                    eprintln!(
                        "{name}: {}: finding what it owns by its AWS tags and Kubernetes labels",
                        if discover {
                            "--discover"
                        } else if state.runs.is_empty() {
                            "no journal"
                        } else if state.steps.is_empty() {
                            "the journal records no resource"
                        } else {
                            "continuing the discovery the last teardown began"
                        }
                    );
                }
                Op::Down {
                    force,
                    remove_adopted,
                    discover: true,
                    skip_final_snapshot,
                }
            }
            op => op,
        }
    }

    /// `up`'s check of who it calls AWS as, before its first change.
    async fn check_identity(&self, aws: &crate::aws::Aws) -> Result<(), CliError> {
        if self.run.skip_preflight.iter().any(|s| s == "aws-identity") {
            return Ok(());
        }
        match crate::aws::identity(aws).await {
            Ok(who) if self.fmt == OutputFormat::Text => {
                eprintln!("{}: AWS {who}", self.loaded.plan.metadata.name);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(CliError::environment(format!(
                "preflight aws-identity: AWS does not answer for any identity: {e} (nothing was changed; check the credentials and region, or skip this check with --skip-preflight aws-identity)"
            ))),
        }
    }
}

/// Whether the last run was a teardown that found resources by their marks (a down run is
/// recorded as their creator only by discovery) and did not finish.
fn discovery_unfinished(state: &wbstack_engine::JournalState) -> bool {
    let Some(last) = state.last_run() else {
        return false;
    };
    last.operation == wbstack_engine::Operation::Down
        && last.status != Some(RunStatus::Succeeded)
        && state
            .steps
            .values()
            .any(|s| s.owner == Some(wbstack_engine::Ownership::Created { run: last.run }))
}
