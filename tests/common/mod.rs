//! Drives the built `wbstack` binary against an emulated cluster served from the test process.
#![allow(dead_code)]

pub mod python;

use kube_emulator::{Config, Emulator, Running};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub struct Env {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub const LICENSE: &str = "lic-3f9a2c7e-test-license-value";

impl Env {
    pub fn new(delay_ms: u64) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let d = Duration::from_millis(delay_ms);
        let running = rt
            .block_on(
                Emulator::new(Config {
                    workload_delay: d,
                    operator_delay: d,
                    clickhouse_delay: d,
                    ..Config::default()
                })
                .serve("127.0.0.1:0".parse().unwrap()),
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, running.kubeconfig()).unwrap();
        Env {
            rt,
            running: Some(running),
            dir,
            kubeconfig,
        }
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn plans() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wbstack"));
        c.args(args)
            .current_dir(self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env("WANDB_LICENSE", LICENSE)
            .env("NO_COLOR", "1")
            .env_remove("WBSTACK_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn mutations(&self) -> u64 {
        self.running()
            .cluster
            .stats
            .mutations
            .load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        let s = &self.running().cluster.stats;
        s.mutations.load(Ordering::Relaxed)
            + s.reads.load(Ordering::Relaxed)
            + s.watches.load(Ordering::Relaxed)
    }

    /// Every stored object as (kind, namespace, name).
    pub fn objects(&self) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = self
            .running()
            .cluster
            .snapshot()
            .objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or("").to_owned(),
                    o["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
                    o["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
