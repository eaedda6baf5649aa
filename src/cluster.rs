//! Connecting to the cluster: a kubeconfig context, or the embedded sandbox.

use crate::cli::Target;
use crate::exit::CliError;
use crate::state::EnvState;
use kube_emulator::{Config as EmuConfig, Emulator, Running};
use std::time::Duration;
use wbstack_k8s::Kube;
use wbstack_plan::Plan;

/// A connection, and the sandbox behind it if there is one.
pub struct Connected {
    pub kube: Kube,
    sandbox: Option<Running>,
    pub description: String,
}

impl Connected {
    /// Stops the sandbox (saving it) if there is one.
    pub fn close(self) {
        if let Some(r) = self.sandbox {
            r.stop();
        }
    }
}

/// The delay of the sandbox's simulated controllers (`WBSTACK_SANDBOX_DELAY_MS`, default 8 s),
/// so that a sandbox run takes realistic time.
fn sandbox_delay() -> Duration {
    Duration::from_millis(
        std::env::var("WBSTACK_SANDBOX_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8000),
    )
}

/// Connects as the target says.
pub async fn connect(t: &Target, plan: &Plan, at: &EnvState) -> Result<Connected, CliError> {
    if t.sandbox {
        let state = at
            .local_dir()
            .ok_or_else(|| CliError::invalid("a sandbox needs a local state directory"))?;
        std::fs::create_dir_all(state).map_err(|e| {
            CliError::environment(format!("cannot create {}: {e}", state.display()))
        })?;
        let d = sandbox_delay();
        // A credential of this run only: nothing else on this machine can use the sandbox's API.
        let token = wbstack_k8s::generate_password(43);
        let emu = Emulator::new(EmuConfig {
            workload_delay: d,
            operator_delay: d,
            clickhouse_delay: d,
            ..EmuConfig::default()
        })
        .with_token(&token)
        .persisted(&state.join("sandbox-cluster.json"))
        .map_err(|e| CliError::environment("the sandbox cluster cannot be loaded").because(e))?;
        let running = emu
            .serve("127.0.0.1:0".parse().expect("a literal address"))
            .await
            .map_err(|e| CliError::environment("the sandbox cannot start").because(e))?;
        let url = running.url();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&running.kubeconfig())
            .map_err(|e| CliError::environment("the sandbox's kubeconfig").because(e))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| CliError::environment("the sandbox's kubeconfig").because(e))?;
        let client = kube::Client::try_from(config).map_err(|e| {
            CliError::environment("cannot build a client for the sandbox").because(e)
        })?;
        return Ok(Connected {
            kube: Kube::new(client)
                .with_environment(&plan.metadata.name)
                .with_adopted_secrets(&plan.spec.kubernetes.adopt_secrets),
            sandbox: Some(running),
            description: format!("sandbox cluster at {url}"),
        });
    }
    let context = t
        .context
        .clone()
        .or_else(|| plan.spec.kubernetes.context.clone());
    let opts = kube::config::KubeConfigOptions {
        context: context.clone(),
        ..Default::default()
    };
    let config = match kube::config::Kubeconfig::read() {
        Ok(kc) => kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| CliError::environment("cannot use the kubeconfig").because(e))?,
        Err(_) => kube::Config::infer().await.map_err(|e| {
            CliError::environment(format!(
                "no kubeconfig and no in-cluster configuration: {e}"
            ))
        })?,
    };
    let description = format!(
        "cluster at {}{}",
        config.cluster_url,
        context
            .map(|c| format!(" (context {c})"))
            .unwrap_or_default()
    );
    let client = kube::Client::try_from(config)
        .map_err(|e| CliError::environment("cannot build a Kubernetes client").because(e))?;
    Ok(Connected {
        kube: Kube::new(client)
            .with_environment(&plan.metadata.name)
            .with_adopted_secrets(&plan.spec.kubernetes.adopt_secrets),
        sandbox: None,
        description,
    })
}
