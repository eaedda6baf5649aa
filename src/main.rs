//! `wbstack`: bootstrap a self-managed W&B deployment with Weave on AWS and Kubernetes in one
//! command, resume it after any failure, and tear it down.

mod cli;
mod cluster;
mod commands;
mod env;
mod exit;
mod logging;
mod reporter;
mod wiring;

use clap::Parser;

fn main() {
    // One TLS crypto backend for the whole binary (kube and the AWS SDK share rustls).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = cli::Cli::parse();
    // Commands that only print end quietly when their reader goes away (`wbstack graph | head`).
    // Those that change things keep SIGPIPE ignored: a closed pipe must not kill a run mid-call.
    if cli.command.read_only() {
        sigpipe::reset();
    }
    if let Err(e) = logging::init(cli.verbose) {
        eprintln!("error: {e}");
        std::process::exit(exit::INVALID);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(exit::ENVIRONMENT);
        }
    };
    let code = runtime.block_on(commands::run(cli)).unwrap_or_else(|f| {
        eprintln!("{}", f.message);
        f.code
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}
