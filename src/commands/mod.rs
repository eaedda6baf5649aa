//! The commands: this file maps each to its function, one file per command or family.

mod inspect;
mod plan;
mod render;
mod run;
mod status;

use crate::cli::{Cli, Command, VerifyOpts};
use crate::env::{self, target_plan};
use crate::exit::{CliError, Exit};
use inspect::{graph, validate};
use plan::{plan, Pending};
use render::{render, render_job};
use run::{execute, Op};
use status::status;

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
        } => iam_policy(flag, &plan),
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
        Command::SandboxAws { dir } => crate::sandbox::serve(&dir),
        Command::Output { target } => crate::output::output(flag, &target, fmt).await,
        Command::Report { target, run, html } => {
            crate::report::report(flag, &target, run, html.as_deref(), fmt).await
        }
        Command::Plan {
            target,
            detailed_exitcode,
            replace,
        } => {
            let r = plan(flag, &target, &replace, fmt).await;
            plan_exit(r, detailed_exitcode)
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

/// `render --iam-policy`: the policy wbstack's own credentials need for the plan.
fn iam_policy(flag: Option<&str>, plan: &std::path::Path) -> Result<Exit, CliError> {
    let l = env::load(plan)?;
    let state = env::location(flag, Some(&l.plan));
    let steps = wbstack_plan::compile(&l.plan);
    let policy = crate::aws::iam_policy(&steps, &l.plan.metadata.name, &state)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&policy).unwrap_or_default()
    );
    Ok(Exit::Ok)
}

/// `plan`'s exit: 0 unless it failed; with `--detailed-exitcode`, 0 nothing pending, 2 changes,
/// 1 unknown or failed (the error printed).
fn plan_exit(r: Result<Pending, CliError>, detailed: bool) -> Result<Exit, CliError> {
    if !detailed {
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
