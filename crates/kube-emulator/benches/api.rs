//! Emulator benchmark: prints figures, asserts nothing.
//!
//! `cargo bench -p kube-emulator --bench api`: 10,000 ConfigMaps created through kube-rs
//! (16 at a time), listed, then the latency from a write to its watch event.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube_emulator::{Config, Emulator};
use serde_json::json;
use std::time::{Duration, Instant};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let n = 10_000usize;
    let running = Emulator::new(Config::default())
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = kube::Client::try_from(kube::Config::new(running.url().parse().unwrap())).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let t = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("cm-{i:05}"), "labels": {"bench": "yes", "shard": (i % 10).to_string()}}, "data": {"k": "v".repeat(64)}})).unwrap();
                cms.create(&PostParams::default(), &cm).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let create = t.elapsed();
    let t = Instant::now();
    let all = cms.list(&ListParams::default()).await.unwrap();
    let list = t.elapsed();
    let t = Instant::now();
    let shard = cms
        .list(&ListParams::default().labels("shard=3"))
        .await
        .unwrap();
    let list_sel = t.elapsed();
    println!(
        "create {n} ConfigMaps: {:.2} s ({:.0}/s); list all ({}): {:.1} ms; list with a label selector ({}): {:.1} ms; RSS {:.1} MiB",
        create.as_secs_f64(),
        n as f64 / create.as_secs_f64(),
        all.items.len(),
        list.as_secs_f64() * 1e3,
        shard.items.len(),
        list_sel.as_secs_f64() * 1e3,
        rss_kib() as f64 / 1024.0
    );
    // Watch latency: time from issuing a write to receiving its event.
    let rv = cms
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = Box::pin(
        cms.watch(&WatchParams::default().labels("probe=yes"), &rv)
            .await
            .unwrap(),
    );
    let mut samples = Vec::new();
    for i in 0..200 {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("probe-{i}"), "labels": {"probe": "yes"}}}),
        )
        .unwrap();
        let t = Instant::now();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        loop {
            match stream.try_next().await.unwrap() {
                Some(WatchEvent::Added(o))
                    if o.metadata.name.as_deref() == Some(&format!("probe-{i}")) =>
                {
                    break
                }
                Some(_) => continue,
                None => panic!("watch ended"),
            }
        }
        samples.push(t.elapsed());
    }
    // What the store holds: each change shares the version it names with the store, so the
    // history costs only the versions that were replaced.
    let updates = 2_000;
    for i in 0..updates {
        let patch = json!({"data": {"k": "w".repeat(64)}});
        cms.patch(
            &format!("cm-{i:05}"),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    }
    let f = running.cluster.footprint();
    println!(
        "store after {n} creates, {updates} updates and 200 probes: {} objects ({:.1} MiB serialized), {} changes in the history holding {:.1} MiB of replaced versions; RSS {:.1} MiB",
        f.objects,
        f.object_bytes as f64 / 1048576.0,
        f.changes,
        f.history_bytes as f64 / 1048576.0,
        rss_kib() as f64 / 1024.0
    );
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "write-to-watch-event latency over {} writes: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        samples.last().copied().unwrap_or(Duration::ZERO)
    );
    running.stop();
}
