//! Engine benchmark: prints figures, asserts nothing.
//!
//! 1. A 10,000-step layered DAG with zero-latency steps: wall time, peak RSS, journal bytes.
//! 2. The same shapes with simulated readiness delays: wall time over the critical path.
//!
//! Usage: `engine-bench [--steps N]`

use std::sync::Arc;
use std::time::{Duration, Instant};
use wbstack_engine::{CancellationToken, Engine, EngineConfig, EventSink, Journal};
use wbstack_engine_sim::{build_graph, critical_path_by, critical_path_ms, MemCloud, Shape};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

const SHAPES: [(&str, usize, usize); 3] = [
    ("wide (100 layers x 100, fan-in 3)", 100, 3),
    ("deep (1000 layers x 10, fan-in 2)", 10, 2),
    ("very wide (10 layers x 1000, fan-in 4)", 1000, 4),
];

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = arg(&args, "--steps").unwrap_or(10_000);
    if let (Some(shape), Some(delays)) =
        (arg::<usize>(&args, "--shape"), arg::<u8>(&args, "--delays"))
    {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(scenario(steps, shape, delays == 1));
        return;
    }
    // Each scenario runs in a fresh process so that its peak RSS is its own.
    let me = std::env::current_exe().expect("current exe");
    println!("== zero-latency steps: {steps} steps, parallelism 16 ==");
    for delays in [0u8, 1] {
        if delays == 1 {
            println!("== simulated readiness delays 10..200 ms (apply instant; a waiting step holds no slot) ==");
        }
        for shape in 0..SHAPES.len() {
            let status = std::process::Command::new(&me)
                .args([
                    "--steps",
                    &steps.to_string(),
                    "--shape",
                    &shape.to_string(),
                    "--delays",
                    &delays.to_string(),
                ])
                .status()
                .expect("run scenario");
            assert!(status.success(), "scenario failed");
        }
    }
}

async fn scenario(steps: usize, shape: usize, delays: bool) {
    let (label, width, fan_in) = SHAPES[shape];
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = Arc::new(MemCloud::new());
    let nodes = Shape {
        steps,
        width,
        fan_in,
        seed: 42,
    }
    .nodes(if delays { (10, 200) } else { (0, 0) });
    let graph = build_graph(cloud.clone(), &nodes, 0);
    let path = dir.path().join("journal.jsonl");
    let (journal, state) = Journal::open(&path).expect("journal");
    let engine = Engine::new(EngineConfig::default(), EventSink::new());
    let t = Instant::now();
    let report = engine
        .up(&graph, &journal, state, CancellationToken::new())
        .await
        .expect("up");
    let wall = t.elapsed();
    let rss_up = peak_rss_kib();
    if delays {
        let crit = Duration::from_millis(critical_path_ms(&nodes));
        println!(
            "{label}: wall {:.3} s, critical path {:.3} s, ratio {:.4}, overhead {:.3} s ({:?}), peak RSS {:.1} MiB",
            wall.as_secs_f64(),
            crit.as_secs_f64(),
            wall.as_secs_f64() / crit.as_secs_f64(),
            wall.as_secs_f64() - crit.as_secs_f64(),
            report.status,
            rss_up as f64 / 1024.0
        );
        // The same path weighted by how long each step really took from its create call to
        // seeing its resource ready (so it includes the 1 ms granularity of tokio's timer in
        // the simulated waits): what is left is the engine's own scheduling and journaling.
        let seen = cloud.seen_ready_after_us();
        let measured = Duration::from_micros(critical_path_by(&nodes, |i| {
            seen.get(&nodes[i].name).copied().unwrap_or(0)
        }));
        println!(
            "{label}: critical path by measured step durations {:.3} s, ratio {:.4}, engine overhead {:.3} s",
            measured.as_secs_f64(),
            wall.as_secs_f64() / measured.as_secs_f64(),
            wall.as_secs_f64() - measured.as_secs_f64(),
        );
        return;
    }
    let bytes = journal.bytes();
    let records = journal.records();
    drop(journal);
    let (journal2, state2) = Journal::open(&path).expect("journal");
    let t2 = Instant::now();
    let again = engine
        .up(&graph, &journal2, state2, CancellationToken::new())
        .await
        .expect("up");
    let rerun = t2.elapsed();
    println!(
        "{label}: up {:.3} s ({:?}, {} created), journal {} bytes / {} records, peak RSS {:.1} MiB; converged re-run {:.3} s with {} apply calls",
        wall.as_secs_f64(),
        report.status,
        report.stats.created,
        bytes,
        records,
        rss_up as f64 / 1024.0,
        rerun.as_secs_f64(),
        again.stats.apply_calls,
    );
}
