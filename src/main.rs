//! `wbstack`: bootstrap a self-managed W&B deployment with Weave on AWS and Kubernetes in one
//! command, resume it after any failure, and tear it down.

mod aws;
mod capacity;
mod cli;
mod cluster;
mod commands;
mod endpoint;
mod env;
mod eventlog;
mod exit;
mod images;
mod list;
mod logging;
mod output;
mod preflight;
mod report;
mod reporter;
mod restore;
mod sandbox;
mod state;
mod storage;
mod verify;
mod wiring;

use clap::Parser;

fn main() {
    // What wbstack writes (state, journals, plan copies, the sandbox's cluster and kubeconfig,
    // reports) is for its user alone: directories 0700, files 0600.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // One TLS crypto backend for the whole binary (kube and the AWS SDK share rustls).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = cli::Cli::parse();
    // Commands that only print end quietly when their reader goes away (`wbstack graph | head`).
    // Those that change things keep SIGPIPE ignored: a closed pipe must not kill a run mid-call.
    if cli.command.read_only() {
        sigpipe::reset();
    }
    let exit = run(cli).unwrap_or_else(|e| {
        eprintln!("{e}");
        e.exit()
    });
    std::process::exit(exit.code());
}

/// Logging, the runtime, the command.
fn run(cli: cli::Cli) -> Result<exit::Exit, exit::CliError> {
    logging::init(cli.verbose).map_err(|e| exit::CliError::invalid("error").because(e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| exit::CliError::environment("error: cannot start the runtime").because(e))?;
    let result = runtime.block_on(commands::run(cli));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
