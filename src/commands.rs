//! The commands.

use crate::cli::{Cli, Command, GraphFormat, OnFailure, OutputFormat, RunOpts, Target, VerifyOpts};
use crate::cluster::connect;
use crate::env::{self, target_plan};
use crate::exit::{CliError, Exit};
use crate::reporter;
use crate::state::EnvState;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use wbstack_engine::{
    decide, CancellationToken, Decision, DownOptions, Engine, EngineConfig, EventSink,
    FailurePolicy, Found, Observation, Phase, RunReport, RunStatus, StepCtx, StepOutcome,
};

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    let fmt = cli.output;
    let flag = cli.state_dir.as_deref();
    crate::endpoint::allow_insecure(cli.insecure_endpoint);
    crate::endpoint::check_env()?;
    match cli.command {
        Command::Validate { plans } => validate(&plans, fmt),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&wbstack_plan::schema()).unwrap_or_default()
            );
            Ok(Exit::Ok)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "wbstack", &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Graph { plan, format } => graph(&plan, format),
        Command::Render {
            plan,
            iam_policy: true,
            ..
        } => {
            let l = env::load(&plan)?;
            let state = env::location(flag, Some(&l.plan));
            let steps = wbstack_plan::compile(&l.plan);
            let policy = crate::aws::iam_policy(&steps, &l.plan.metadata.name, &state)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&policy).unwrap_or_default()
            );
            Ok(Exit::Ok)
        }
        Command::Render {
            plan,
            job: true,
            job_namespace,
            image,
            role_arn,
            ..
        } => {
            let l = env::load(&plan)?;
            let state = env::location(flag, Some(&l.plan));
            render_job(&l, &job_namespace, &image, role_arn.as_deref(), &state, fmt)
        }
        Command::Render { plan, .. } => render(&plan, fmt),
        Command::Images { plan } => crate::images::images(&plan, fmt),
        Command::Unlock { target, lock_id } => {
            let (loaded, state) = target_plan(flag, &target).await?;
            let holder = state.unlock(&lock_id).await?;
            match holder {
                Some(h) => eprintln!(
                    "removed the lock of {} held by {h}",
                    loaded.plan.metadata.name
                ),
                None => eprintln!("{} was not locked", loaded.plan.metadata.name),
            }
            Ok(Exit::Ok)
        }
        Command::Status { target } => status(flag, &target, fmt).await,
        Command::Verify { in_pod: true, .. } => crate::verify::in_pod().await,
        Command::Verify { target, probe, .. } => {
            crate::verify::verify(flag, &target, &probe, fmt).await
        }
        Command::List => crate::list::list(flag, fmt).await,
        Command::Output { target } => crate::output::output(flag, &target, fmt).await,
        Command::Report { target, run, html } => {
            crate::report::report(flag, &target, run, html.as_deref(), fmt).await
        }
        Command::Plan {
            target,
            detailed_exitcode,
        } => {
            let r = plan(flag, &target, fmt).await;
            if !detailed_exitcode {
                return r.map(|_| Exit::Ok);
            }
            Ok(match r {
                Ok(Pending::None) => Exit::Ok,
                Ok(Pending::Changes) => Exit::ChangesPending,
                Ok(Pending::Unknown) => Exit::Failed,
                Err(e) => {
                    eprintln!("{e}");
                    Exit::Failed
                }
            })
        }
        Command::Up { target, run, check } | Command::Resume { target, run, check } => {
            execute(flag, &target, &run, fmt, Op::Up(check)).await
        }
        Command::Restore {
            env,
            from,
            to_time,
            snapshot,
            redis_snapshot,
            namespace,
            context,
            run,
        } => {
            let ask = crate::restore::Ask {
                env,
                from,
                to_time,
                snapshot,
                redis_snapshot,
                namespace,
            };
            let target = crate::restore::prepare(flag, &ask, context).await?;
            execute(flag, &target, &run, fmt, Op::Up(VerifyOpts::default())).await
        }
        Command::Down {
            target,
            run,
            force,
            remove_adopted,
            discover,
            skip_final_snapshot,
        } => {
            let op = Op::Down {
                force,
                remove_adopted,
                discover,
                skip_final_snapshot,
            };
            execute(flag, &target, &run, fmt, op).await
        }
    }
}

fn validate(plans: &[std::path::PathBuf], fmt: OutputFormat) -> Result<Exit, CliError> {
    let mut code = Exit::Ok;
    for p in plans {
        match env::load(p) {
            Ok(l) => {
                let steps = wbstack_plan::compile(&l.plan);
                if fmt == OutputFormat::Json {
                    println!(
                        "{}",
                        serde_json::json!({"file": l.file, "valid": true, "steps": steps.len()})
                    );
                } else {
                    println!("{}: valid ({} steps)", l.file, steps.len());
                }
            }
            Err(f) => {
                eprintln!("{f}");
                code = f.exit();
            }
        }
    }
    Ok(code)
}

fn graph(path: &Path, format: GraphFormat) -> Result<Exit, CliError> {
    let l = env::load(path)?;
    let steps = wbstack_plan::compile(&l.plan);
    match format {
        GraphFormat::Dot => {
            println!(
                "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];",
                l.plan.metadata.name
            );
            for s in &steps {
                println!("  \"{}\" [label=\"{}\\n{}\"];", s.id, s.id, s.kind.label());
            }
            for s in &steps {
                for d in &s.deps {
                    println!("  \"{d}\" -> \"{}\";", s.id);
                }
            }
            println!("}}");
        }
        GraphFormat::Mermaid => {
            println!("flowchart LR");
            let id = |s: &str| s.replace(['.', '-'], "_");
            for s in &steps {
                println!("  {}[\"{}<br/>{}\"]", id(&s.id), s.id, s.kind.label());
            }
            for s in &steps {
                for d in &s.deps {
                    println!("  {} --> {}", id(d), id(&s.id));
                }
            }
        }
    }
    Ok(Exit::Ok)
}

/// The YAML documents `render` prints: the WeightsAndBiases resource and ClickHouse manifests.
pub fn render_documents(plan: &wbstack_plan::Plan) -> Vec<serde_json::Value> {
    let mut docs = Vec::new();
    for s in wbstack_plan::compile(plan) {
        if let wbstack_plan::Side::K8s(k) = s.kind.side() {
            docs.extend(wbstack_k8s::kind(k).documents());
        }
    }
    docs
}

/// YAML documents for people and GitOps repositories; one JSON object per line with
/// `--output json`.
fn render(path: &Path, fmt: OutputFormat) -> Result<Exit, CliError> {
    let l = env::load(path)?;
    print_documents(&render_documents(&l.plan), fmt);
    Ok(Exit::Ok)
}

fn render_job(
    l: &env::Loaded,
    namespace: &str,
    image: &str,
    role_arn: Option<&str>,
    state: &str,
    fmt: OutputFormat,
) -> Result<Exit, CliError> {
    let scope =
        wbstack_k8s::render::JobScope::of(&wbstack_plan::compile(&l.plan), l.plan.spec.verify);
    let spec = wbstack_k8s::render::JobSpec {
        scope: &scope,
        environment: &l.plan.metadata.name,
        namespace,
        plan: &l.text,
        image,
        license_env: l.plan.spec.wandb.license.env.as_deref(),
        role_arn,
        state: Some(state),
    };
    print_documents(&wbstack_k8s::render::job(&spec), fmt);
    Ok(Exit::Ok)
}

fn print_documents(docs: &[serde_json::Value], fmt: OutputFormat) {
    for d in docs {
        match fmt {
            OutputFormat::Json => println!("{d}"),
            OutputFormat::Text => println!(
                "---\n{}",
                serde_yaml_ng::to_string(&d).unwrap_or_default().trim_end()
            ),
        }
    }
}

async fn status(flag: Option<&str>, t: &Target, fmt: OutputFormat) -> Result<Exit, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let state = at.read_state().await?;
    let now = wbstack_engine::now_ms();
    let mut rows = Vec::new();
    for sp in wbstack_plan::compile(&loaded.plan) {
        let st = state.steps.get(&wbstack_engine::StepId::new(sp.id.clone()));
        let phase = match st {
            None => "not created".to_string(),
            Some(s) => match s.phase {
                Phase::Ready => "ready".into(),
                Phase::Intent { action } => format!("{action} started"),
                Phase::Applied { action } => format!("{action} applied, not ready"),
                Phase::Failed => "failed".into(),
                Phase::Removed => "removed".into(),
            },
        };
        let owner = match st.and_then(|s| s.owner) {
            Some(wbstack_engine::Ownership::Created { .. }) => "owned",
            Some(wbstack_engine::Ownership::Adopted { .. }) => "adopted",
            None => "-",
        };
        let age = st
            .and_then(|s| s.created_at_ms.or(s.ready_at_ms))
            .map(|t| human_age(now.saturating_sub(t)))
            .unwrap_or_else(|| "-".into());
        let endpoint = st
            .and_then(|s| s.outputs.as_ref())
            .and_then(|o| {
                o.get("endpoint")
                    .or_else(|| o.get("host"))
                    .or_else(|| o.get("name"))
            })
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_else(|| "-".into());
        let error = st.and_then(|s| s.last_error.clone());
        rows.push((sp.id.clone(), phase, owner, age, endpoint, error));
    }
    let last = state.last_run().map(|r| {
        format!(
            "{} {:?} {}",
            r.run,
            r.operation,
            r.status
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|| "unfinished".into())
        )
    });
    if fmt == OutputFormat::Json {
        let steps: Vec<_> = rows
            .iter()
            .map(|(id, phase, owner, age, endpoint, error)| serde_json::json!({"step": id, "state": phase, "ownership": owner, "age": age, "endpoint": endpoint, "error": error}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"environment": loaded.plan.metadata.name, "last_run": last, "steps": steps})
        );
    } else {
        println!(
            "environment {} ({}), last run: {}",
            loaded.plan.metadata.name,
            at.location(),
            last.unwrap_or_else(|| "none".into())
        );
        println!(
            "{:<26} {:<26} {:<8} {:<6} ENDPOINT",
            "STEP", "STATE", "OWNER", "AGE"
        );
        for (id, phase, owner, age, endpoint, error) in rows {
            println!("{id:<26} {phase:<26} {owner:<8} {age:<6} {endpoint}");
            if let Some(e) = error {
                println!("  last error: {e}");
            }
        }
    }
    Ok(Exit::Ok)
}

fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

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
enum Op {
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
async fn execute(
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
        let aws = crate::aws::connect(plan, &steps, &self.run.rotate, skip_snapshot).await?;
        if let (Op::Up(_), Some(a)) = (&op, &aws) {
            if !self.run.skip_preflight.iter().any(|s| s == "aws-identity") {
                match crate::aws::identity(a).await {
                    Ok(who) if fmt == OutputFormat::Text => eprintln!("{name}: AWS {who}"),
                    Ok(_) => {}
                    Err(e) => {
                        conn.close();
                        return Err(CliError::environment(format!(
                            "preflight aws-identity: AWS does not answer for any identity: {e} (nothing was changed; check the credentials and region, or skip this check with --skip-preflight aws-identity)"
                        )));
                    }
                }
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
        let op = match op {
            // No journal, one that records no resource, or a discovery that stopped short: what
            // the environment owns is found by its marks, not assumed absent.
            Op::Down {
                force,
                remove_adopted,
                discover,
                skip_final_snapshot,
            } if discover || state.steps.is_empty() || discovery_unfinished(&state) => {
                if fmt == OutputFormat::Text {
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
        };
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

/// What `up` would do, in a word or two.
fn preview(d: &Decision, observed: &Observation) -> String {
    match d {
        Decision::Create => "create".into(),
        Decision::Update { .. } => "update".into(),
        Decision::Replace { .. } => "replace (drift)".into(),
        Decision::Keep(Found::Adopted) => "adopt (exists)".into(),
        Decision::Keep(_) => "unchanged".into(),
        Decision::Wait(_) => match observed {
            Observation::InProgress { detail } => {
                format!("wait ({})", detail.clone().unwrap_or_default())
            }
            _ => "wait".into(),
        },
        Decision::Broken(message) => format!("fails: {message}"),
    }
}

/// One step of `plan`'s answer.
struct Row {
    step: String,
    kind: String,
    action: String,
    changes: Vec<wbstack_engine::Change>,
}

/// What `plan` found `up` would do.
enum Pending {
    None,
    Changes,
    /// A step could not be observed, or its resource is broken.
    Unknown,
}

/// `plan`: observe each step read-only and say what `up` would do.
/// Without IRSA, the policy the nodes' role needs, with the key's ARN once the key exists.
fn node_role_policy(
    plan: &wbstack_plan::Plan,
    outputs: &BTreeMap<wbstack_engine::StepId, wbstack_engine::Outputs>,
) -> Option<serde_json::Value> {
    let policy = wbstack_plan::pod_access(plan)?;
    let key = outputs
        .iter()
        .find(|(id, _)| id.as_str() == wbstack_plan::ids::KMS)
        .and_then(|(_, o)| o.get(wbstack_plan::ids::outputs::ARN))
        .and_then(|v| v.as_str());
    let Some(key) = key else {
        return Some(policy);
    };
    let hole = format!(
        "<{}: {}>",
        wbstack_plan::ids::KMS,
        wbstack_plan::ids::outputs::ARN
    );
    serde_json::from_str(&policy.to_string().replace(&hole, key)).ok()
}

async fn plan(flag: Option<&str>, t: &Target, fmt: OutputFormat) -> Result<Pending, CliError> {
    let (loaded, at) = target_plan(flag, t).await?;
    let license = env::license(&loaded)?;
    let steps = wbstack_plan::compile(&loaded.plan);
    let state = at.read_state().await?;
    let conn = connect(t, &loaded.plan, &at).await?;
    let aws = crate::aws::connect(&loaded.plan, &steps, &[], false).await?;
    let mut rows = Vec::new();
    let mut outputs: BTreeMap<wbstack_engine::StepId, wbstack_engine::Outputs> = BTreeMap::new();
    {
        let graph = crate::wiring::graph(
            &loaded.plan,
            &steps,
            &conn.kube,
            aws.as_ref(),
            &license,
            None,
        )?;
        for spec in graph.specs() {
            let deps = spec
                .deps
                .iter()
                .filter_map(|d| outputs.get(d).map(|o| (d.clone(), o.clone())))
                .collect();
            let prev = state.steps.get(&spec.id).and_then(|s| s.outputs.clone());
            let ctx = StepCtx::new(
                spec.id.clone(),
                wbstack_engine::RunId(0),
                deps,
                prev,
                CancellationToken::new(),
                EventSink::new(),
            );
            let mut changes = Vec::new();
            let action = match spec.step.observe(&ctx).await {
                Ok(observed) => {
                    let d = decide(
                        &observed,
                        state.steps.get(&spec.id),
                        &spec.step.fingerprint(),
                        spec.step.supports_update(),
                    );
                    let mut preview = preview(&d, &observed);
                    if matches!(d, Decision::Update { .. } | Decision::Replace { .. }) {
                        match spec.step.changes(&ctx).await {
                            Ok(c) => changes = c,
                            Err(e) => preview = format!("unknown: {}", e.full_message()),
                        }
                        if changes.iter().any(|c| c.replaces) {
                            preview = "replace (refused by up)".into();
                        }
                    }
                    if let Observation::Ready { outputs: o, .. } = observed {
                        outputs.insert(spec.id.clone(), o);
                    }
                    preview
                }
                Err(e) => format!("unknown: {}", e.full_message()),
            };
            rows.push(Row {
                step: spec.id.to_string(),
                kind: spec.step.kind().to_owned(),
                action,
                changes,
            });
        }
    }
    conn.close();
    let node_role = node_role_policy(&loaded.plan, &outputs);
    if fmt == OutputFormat::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"step": r.step, "kind": r.kind, "action": r.action, "changes": r.changes}))
            .collect();
        let mut out = serde_json::json!({"environment": loaded.plan.metadata.name, "steps": v});
        if let Some(p) = &node_role {
            out["nodeRolePolicy"] = p.clone();
        }
        println!("{out}");
    } else {
        println!("{:<26} {:<30} ACTION", "STEP", "KIND");
        for r in &rows {
            println!("{:<26} {:<30} {}", r.step, r.kind, r.action);
            for c in &r.changes {
                let sign = if c.replaces { "-/+" } else { "~" };
                println!("    {sign} {c}");
            }
        }
        if let Some(p) = &node_role {
            println!("\nWithout spec.aws.irsa, W&B and ClickHouse use the nodes' IAM role; it needs this policy:");
            println!(
                "{}",
                serde_json::to_string_pretty(p).unwrap_or_else(|_| p.to_string())
            );
        }
    }
    let actions = || rows.iter().map(|r| r.action.as_str());
    Ok(
        if actions().any(|a| a.starts_with("unknown") || a.starts_with("fails")) {
            Pending::Unknown
        } else if actions()
            .any(|a| a.starts_with("create") || a.starts_with("update") || a.starts_with("replace"))
        {
            Pending::Changes
        } else {
            Pending::None
        },
    )
}
