//! What the benches share: an emulated cluster paced for them, and a process's peak memory.

use std::time::Duration;

/// An emulated cluster whose controllers make things ready after `delay_ms`.
pub fn emulator(rt: &tokio::runtime::Runtime, delay_ms: u64) -> kube_emulator::Running {
    let d = Duration::from_millis(delay_ms);
    rt.block_on(
        kube_emulator::Emulator::new(kube_emulator::Config {
            workload_delay: d,
            operator_delay: d,
            clickhouse_delay: d,
            ..kube_emulator::Config::default()
        })
        .serve("127.0.0.1:0".parse().unwrap()),
    )
    .unwrap()
}

/// Peak resident memory of a process so far (VmHWM), in KiB.
pub fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
