//! Drives the engine over a file-backed fake cloud, as a separate process that tests can kill.
//!
//! Exit codes: 0 succeeded, 1 a step failed (kept or rolled back), 3 the environment is locked,
//! 4 engine error, 130 interrupted.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{
    CancellationToken, DownOptions, Engine, EngineConfig, EnvLock, EventSink, FailurePolicy,
    Journal, JournalOptions, LockError, LockOptions, RetryPolicy, RunStatus,
};
use wbstack_engine_sim::{build_graph, FileCloud, Shape};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    #[arg(long)]
    state: PathBuf,
    #[arg(long)]
    cloud: PathBuf,
    #[arg(long, default_value_t = 40)]
    steps: usize,
    #[arg(long, default_value_t = 6)]
    width: usize,
    #[arg(long, default_value_t = 2)]
    fan_in: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value_t = 20)]
    delay_min: u64,
    #[arg(long, default_value_t = 120)]
    delay_max: u64,
    #[arg(long, default_value_t = 30)]
    destroy_ms: u64,
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Kill this process with SIGKILL half-way through the Nth journal write.
    #[arg(long)]
    tear_at: Option<u64>,
}

#[derive(Subcommand)]
enum Cmd {
    Up {
        #[command(flatten)]
        c: Common,
        #[arg(long)]
        rollback: bool,
    },
    Down {
        #[command(flatten)]
        c: Common,
        #[arg(long)]
        force: bool,
    },
    /// Takes the lock and holds it for `secs`.
    HoldLock {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        secs: u64,
    },
}

fn kill_self() -> ! {
    let pid = std::process::id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn journal_options(tear_at: Option<u64>) -> JournalOptions {
    let mut opts = JournalOptions::default();
    if let Some(k) = tear_at {
        let n = Arc::new(AtomicU64::new(0));
        opts.write_fn = Some(Box::new(move |file, buf| {
            use std::io::Write;
            if n.fetch_add(1, Ordering::SeqCst) + 1 == k {
                let half = buf.len() / 2;
                file.write_all(&buf[..half])?;
                file.sync_data()?;
                kill_self();
            }
            file.write_all(buf)
        }));
    }
    opts
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::HoldLock { state, secs } => {
            match EnvLock::acquire(&state, LockOptions::new("engine-sim hold-lock")) {
                Ok(mut lock) => {
                    lock.start_heartbeat();
                    println!("locked");
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    3
                }
            }
        }
        Cmd::Up { c, rollback } => run(c, true, rollback, false).await,
        Cmd::Down { c, force } => run(c, false, false, force).await,
    };
    std::process::exit(code);
}

async fn run(c: Common, up: bool, rollback: bool, force: bool) -> i32 {
    let what = if up {
        "engine-sim up"
    } else {
        "engine-sim down"
    };
    let mut lock = match EnvLock::acquire(&c.state, LockOptions::new(what)) {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => {
            eprintln!("{e}");
            return 3;
        }
        Err(e) => {
            eprintln!("{e}");
            return 4;
        }
    };
    lock.start_heartbeat();
    let cloud = Arc::new(FileCloud::new(&c.cloud));
    let nodes = Shape {
        steps: c.steps,
        width: c.width,
        fan_in: c.fan_in,
        seed: c.seed,
    }
    .nodes((c.delay_min, c.delay_max));
    let graph = build_graph(cloud, &nodes, c.destroy_ms);
    let (journal, state) =
        match Journal::open_with(&c.state.join("journal.jsonl"), journal_options(c.tear_at)) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("{e}");
                return 4;
            }
        };
    let config = EngineConfig {
        parallelism: c.parallelism,
        failure_policy: if rollback {
            FailurePolicy::Rollback
        } else {
            FailurePolicy::Keep
        },
        retry: RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            ..RetryPolicy::default()
        },
        wait_timeout: Duration::from_secs(60),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, EventSink::new());
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let report = if up {
        engine.up(&graph, &journal, state, cancel).await
    } else {
        engine
            .down(
                &graph,
                &journal,
                state,
                DownOptions {
                    remove_adopted: force,
                    discover: false,
                },
                cancel,
            )
            .await
    };
    match report {
        Ok(r) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            match r.status {
                RunStatus::Succeeded => 0,
                RunStatus::Failed | RunStatus::RolledBack => 1,
                RunStatus::Cancelled => 130,
            }
        }
        Err(e) => {
            eprintln!("{e}");
            4
        }
    }
}
