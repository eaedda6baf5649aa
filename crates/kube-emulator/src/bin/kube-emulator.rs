//! Serves an emulated cluster on a loopback port and writes a kubeconfig for it.
//!
//! `kube-emulator [--port N] [--kubeconfig FILE] [--state FILE] [--delay-ms N]`

use std::time::Duration;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("kube-emulator [--port N] [--kubeconfig FILE] [--state FILE] [--delay-ms N]");
        return;
    }
    let port: u16 = arg(&args, "--port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut config = kube_emulator::Config::default();
    if let Some(d) = arg(&args, "--delay-ms").and_then(|d| d.parse().ok()) {
        config.workload_delay = Duration::from_millis(d);
        config.operator_delay = Duration::from_millis(d);
        config.clickhouse_delay = Duration::from_millis(d);
    }
    let mut emu = kube_emulator::Emulator::new(config);
    if let Some(state) = arg(&args, "--state") {
        emu = match emu.persisted(std::path::Path::new(&state)) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("kube-emulator: {e}");
                std::process::exit(2);
            }
        };
    }
    let running = match emu.serve(([127, 0, 0, 1], port).into()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kube-emulator: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = arg(&args, "--kubeconfig") {
        if let Err(e) = std::fs::write(&path, running.kubeconfig()) {
            eprintln!("kube-emulator: failed to write {path}: {e}");
            std::process::exit(2);
        }
    }
    println!("{}", running.url());
    let _ = tokio::signal::ctrl_c().await;
    running.stop();
}
