//! AWS in the sandbox: a plan's AWS steps run against the environment's own local moto
//! (`wbstack_sandbox_aws`), which `--sandbox` commands start when it is not answering and a
//! finished `down` stops. The plan is pointed at it as it is loaded: its endpoint, two subnets
//! of moto's default VPC (the plan's subnets and security groups name resources of an AWS
//! account the local moto does not have), no security groups given (the one wbstack makes
//! admits the default VPC's default group), static credentials, and secrets
//! deleted without a recovery window so that `down` finishes. The plan file and its saved copy
//! stay as written: the same plan goes to AWS unchanged.

use crate::exit::{CliError, Exit};
use crate::state::EnvState;
use std::path::Path;
use wbstack_plan::Plan;

/// The hidden `sandbox-aws` command: serves until stopped.
#[cfg(feature = "aws")]
pub fn serve(dir: &Path) -> Result<Exit, CliError> {
    wbstack_sandbox_aws::serve(dir)
        .map(|()| Exit::Ok)
        .map_err(|e| CliError::environment("the sandbox's AWS").because(e))
}

#[cfg(not(feature = "aws"))]
pub fn serve(_dir: &Path) -> Result<Exit, CliError> {
    Err(CliError::refused("this build has no AWS support"))
}

/// Whether the plan has AWS steps.
#[cfg(feature = "aws")]
fn has_aws(plan: &Plan) -> bool {
    wbstack_plan::compile(plan).iter().any(|s| s.kind.is_aws())
}

/// The sandbox's own AWS directory for an environment.
#[cfg(feature = "aws")]
fn dir(at: &EnvState) -> Result<&Path, CliError> {
    at.local_dir()
        .ok_or_else(|| CliError::invalid("a sandbox needs a local state directory"))
}

/// The credentials of the sandbox's AWS (moto takes any); `None` outside the sandbox, where the
/// SDK's own chain finds them.
#[cfg(feature = "aws")]
pub fn credentials(sandbox: bool) -> Option<(String, String)> {
    sandbox.then(|| ("sandbox".to_owned(), "sandbox".to_owned()))
}

/// Points a sandbox plan's AWS steps at the environment's local moto, started if need be.
#[cfg(feature = "aws")]
pub async fn rehearse(plan: &mut Plan, at: &EnvState) -> Result<(), CliError> {
    if !has_aws(plan) {
        return Ok(());
    }
    let dir = std::path::absolute(dir(at)?)
        .map_err(|e| CliError::environment("the sandbox's directory").because(e))?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::environment("cannot find this program").because(e))?;
    let region = plan
        .spec
        .aws
        .as_ref()
        .and_then(|a| a.region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    let env = plan.metadata.name.clone();
    let (running, (subnets, group)) = tokio::task::spawn_blocking(move || {
        if wbstack_sandbox_aws::daemon::running(&dir).is_none() {
            // The wait below says what it waits for; a moto that cannot start ends it at once.
            let bin = wbstack_sandbox_aws::moto_server()?;
            eprintln!(
                "{env}: starting the sandbox's AWS: {} behind the proxy that answers as AWS does (its log: {}); waiting up to 90 s for it to answer",
                bin.display(),
                dir.join("aws.log").display()
            );
        }
        let r = wbstack_sandbox_aws::ensure(&dir, &exe)?;
        let subnets = wbstack_sandbox_aws::default_subnets(&r.endpoint, &region)?;
        let group = wbstack_sandbox_aws::default_security_group(&r.endpoint, &region)?;
        Ok::<_, wbstack_sandbox_aws::SandboxError>((r, (subnets, group)))
    })
    .await
    .map_err(|e| CliError::environment("the sandbox's AWS").because(e))?
    .map_err(|e| CliError::environment("the sandbox's AWS").because(e))?;
    let aws = plan.spec.aws.get_or_insert_with(Default::default);
    aws.endpoint = Some(running.endpoint.clone());
    aws.subnet_ids = subnets;
    aws.security_group_ids.clear();
    if let Some(g) = &mut aws.security_group {
        g.allow_from = vec![group];
    }
    aws.secret_recovery_days = 0;
    tracing::info!(endpoint = %running.endpoint, "the sandbox's AWS steps run against a local moto");
    Ok(())
}

#[cfg(not(feature = "aws"))]
pub async fn rehearse(_plan: &mut Plan, _at: &EnvState) -> Result<(), CliError> {
    Ok(())
}

/// After a finished `down`: stops the environment's local moto, if it runs one.
#[cfg(feature = "aws")]
pub fn stop(at: &EnvState) {
    let Some(dir) = at.local_dir() else {
        return;
    };
    match wbstack_sandbox_aws::stop(dir) {
        Ok(true) => tracing::info!("the sandbox's AWS is stopped"),
        Ok(false) => {}
        Err(e) => tracing::warn!("the sandbox's AWS: {e}"),
    }
}

#[cfg(not(feature = "aws"))]
pub fn stop(_at: &EnvState) {}
