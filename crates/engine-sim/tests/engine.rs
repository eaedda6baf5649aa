//! The engine's guarantees, proven in process over the in-memory fake cloud.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wbstack_engine::{
    Action, CancellationToken, DownOptions, Engine, EngineConfig, Event, EventLog, EventSink,
    FailurePolicy, Fingerprint, Graph, GraphError, Hook, HookWhen, Journal, JournalState,
    Observation, Outputs, RetryPolicy, RunStatus, Secret, SecretRef, Step, StepCtx, StepError,
    StepId, StepOutcome, StepSpec,
};
use wbstack_engine_sim::{build_graph, Cloud, Fault, MemCloud, Resource, Shape, SimStep};

fn engine(config: EngineConfig) -> (Engine, EventLog) {
    let sink = EventSink::new();
    let log = EventLog::attach(&sink);
    (Engine::new(config, sink), log)
}

fn fast_retries() -> EngineConfig {
    EngineConfig {
        retry: RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_attempts: 5,
            jitter: true,
        },
        ..EngineConfig::default()
    }
}

struct Env {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        Env { _dir: dir, path }
    }
    fn open(&self) -> (Journal, JournalState) {
        Journal::open(&self.path).unwrap()
    }
}

fn spec(
    cloud: &Arc<MemCloud>,
    name: &str,
    deps: &[&str],
    f: impl FnOnce(&mut SimStep),
) -> StepSpec {
    let mut s = SimStep::new(name, cloud.clone());
    f(&mut s);
    StepSpec::new(name, deps, Arc::new(s))
}

#[tokio::test]
async fn a_converged_graph_rerun_makes_zero_apply_calls() {
    let cloud = Arc::new(MemCloud::new());
    let nodes = Shape {
        steps: 60,
        width: 8,
        fan_in: 3,
        seed: 3,
    }
    .nodes((0, 5));
    let graph = build_graph(cloud.clone(), &nodes, 0);
    let env = Env::new();
    let (eng, _) = engine(EngineConfig::default());
    let (j, st) = env.open();
    let first = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(first.stats.created, 60);
    assert_eq!(cloud.count("apply"), 60);
    drop(j);
    let (j, st) = env.open();
    let bytes_before = j.bytes();
    let again = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(again.stats.apply_calls, 0);
    assert_eq!(again.stats.unchanged, 60);
    assert_eq!(cloud.count("apply"), 60, "the fake cloud saw no new apply");
    // Only the run's start and finish were journaled.
    let after = std::fs::read_to_string(&env.path).unwrap();
    let new_lines = after[bytes_before as usize..].lines().count();
    assert_eq!(new_lines, 2, "{}", &after[bytes_before as usize..]);
}

#[tokio::test]
async fn rollback_after_a_permanent_failure_removes_what_the_run_made_and_keeps_adopted() {
    let cloud = Arc::new(MemCloud::new());
    // A resource that existed before: adopted, never touched.
    cloud.create(&Resource {
        name: "vpc".into(),
        fingerprint: SimStep::new("vpc", cloud.clone())
            .fingerprint()
            .as_str()
            .into(),
        tag: "someone-else".into(),
        ready_at_us: 0,
        gone_at_us: None,
    });
    cloud.set_fault("app", Fault::Permanent);
    let graph = Graph::new(vec![
        spec(&cloud, "vpc", &[], |_| {}),
        spec(&cloud, "kms", &[], |s| s.ready_ms = 20),
        spec(&cloud, "bucket", &["kms"], |s| s.ready_ms = 10),
        spec(&cloud, "db", &["vpc", "kms"], |s| s.destroy_ms = 30),
        spec(&cloud, "app", &["bucket", "db"], |_| {}),
        spec(&cloud, "after-app", &["app"], |_| {}),
    ])
    .unwrap();
    let env = Env::new();
    let (eng, log) = engine(EngineConfig {
        failure_policy: FailurePolicy::Rollback,
        ..fast_retries()
    });
    let (j, st) = env.open();
    let r = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::RolledBack, "{:?}", r.steps);
    assert_eq!(r.step("vpc").unwrap().outcome, StepOutcome::Adopted);
    assert!(matches!(
        r.step("app").unwrap().outcome,
        StepOutcome::Failed { .. }
    ));
    assert_eq!(
        r.step("after-app").unwrap().outcome,
        StepOutcome::Skipped {
            because: StepId::new("app")
        }
    );
    assert_eq!(
        cloud.list(),
        vec!["vpc".to_string()],
        "only the adopted resource is left"
    );
    assert_eq!(cloud.get("vpc").unwrap().tag, "someone-else");
    assert_eq!(r.state.owned_steps().count(), 0);
    // Rolled back in reverse order: db and bucket before kms.
    let calls = cloud.calls();
    let pos = |op: &str, n: &str| calls.iter().position(|(o, x)| o == op && x == n).unwrap();
    assert!(pos("destroy", "bucket") < pos("destroy", "kms"));
    assert!(pos("destroy", "db") < pos("destroy", "kms"));
    assert!(!calls.iter().any(|(o, n)| o == "destroy" && n == "vpc"));
    let events = log.events();
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::StepRolledBack { step } if step.as_str() == "kms")));
}

#[tokio::test]
async fn teardown_destroys_dependents_first_and_keeps_adopted_unless_forced() {
    let cloud = Arc::new(MemCloud::new());
    cloud.create(&Resource {
        name: "shared".into(),
        fingerprint: SimStep::new("shared", cloud.clone())
            .fingerprint()
            .as_str()
            .into(),
        tag: "other".into(),
        ready_at_us: 0,
        gone_at_us: None,
    });
    let nodes = Shape {
        steps: 30,
        width: 5,
        fan_in: 2,
        seed: 11,
    }
    .nodes((0, 3));
    let mut specs: Vec<StepSpec> = build_graph(cloud.clone(), &nodes, 5).specs().to_vec();
    specs.push(spec(&cloud, "shared", &[], |_| {}));
    specs[0].deps.push(StepId::new("shared"));
    let graph = Graph::new(specs).unwrap();
    let env = Env::new();
    let (eng, _) = engine(EngineConfig::default());
    let (j, st) = env.open();
    assert_eq!(
        eng.up(&graph, &j, st, CancellationToken::new())
            .await
            .unwrap()
            .status,
        RunStatus::Succeeded
    );
    drop(j);
    let (j, st) = env.open();
    let r = eng
        .down(
            &graph,
            &j,
            st,
            DownOptions::default(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.stats.destroyed, 30);
    assert_eq!(r.step("shared").unwrap().outcome, StepOutcome::Kept);
    assert_eq!(cloud.list(), vec!["shared".to_string()]);
    // Every dependent is gone before any of its dependencies starts to go.
    let calls = cloud.calls();
    let gone = |n: &str| {
        calls
            .iter()
            .position(|(o, x)| o == "deleted" && x == n)
            .unwrap()
    };
    let start = |n: &str| {
        calls
            .iter()
            .position(|(o, x)| o == "destroy" && x == n)
            .unwrap()
    };
    for n in &nodes {
        for &d in &n.deps {
            assert!(
                gone(&n.name) < start(&nodes[d].name),
                "{} must go before {}",
                n.name,
                nodes[d].name
            );
        }
    }
    // A second teardown has nothing to do; a forced one removes the adopted resource too.
    drop(j);
    let (j, st) = env.open();
    let again = eng
        .down(
            &graph,
            &j,
            st,
            DownOptions {
                remove_adopted: true,
                discover: false,
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.stats.destroyed, 1);
    assert!(cloud.list().is_empty());
}

#[test]
fn cycles_and_dangling_dependencies_are_rejected_naming_the_steps() {
    let cloud = Arc::new(MemCloud::new());
    let err = Graph::new(vec![
        spec(&cloud, "a", &["c"], |_| {}),
        spec(&cloud, "b", &["a"], |_| {}),
        spec(&cloud, "c", &["b"], |_| {}),
        spec(&cloud, "d", &[], |_| {}),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "dependency cycle: a -> c -> b -> a (each step depends on the next)"
    );
    let err = Graph::new(vec![spec(&cloud, "a", &["nope"], |_| {})]).unwrap_err();
    assert_eq!(
        err,
        GraphError::Dangling {
            step: StepId::new("a"),
            missing: StepId::new("nope")
        }
    );
    assert!(err.to_string().contains("`a` depends on `nope`"));
    let err = Graph::new(vec![spec(&cloud, "a", &["a"], |_| {})]).unwrap_err();
    assert!(err.to_string().contains("a -> a"));
    let err = Graph::new(vec![
        spec(&cloud, "a", &[], |_| {}),
        spec(&cloud, "a", &[], |_| {}),
    ])
    .unwrap_err();
    assert_eq!(err, GraphError::Duplicate(StepId::new("a")));
    assert!(cloud.calls().is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_changed_fingerprint_updates_in_place_or_reports_drift() {
    let cloud = Arc::new(MemCloud::new());
    let env = Env::new();
    let (eng, _) = engine(fast_retries());
    let g1 = Graph::new(vec![
        spec(&cloud, "cfg", &[], |s| s.updatable = true),
        spec(&cloud, "db", &[], |_| {}),
    ])
    .unwrap();
    let (j, st) = env.open();
    eng.up(&g1, &j, st, CancellationToken::new()).await.unwrap();
    drop(j);
    let g2 = Graph::new(vec![
        spec(&cloud, "cfg", &[], |s| {
            s.updatable = true;
            s.input = "v2".into()
        }),
        spec(&cloud, "db", &[], |s| s.input = "bigger".into()),
    ])
    .unwrap();
    let (j, st) = env.open();
    let r = eng.up(&g2, &j, st, CancellationToken::new()).await.unwrap();
    assert_eq!(r.step("cfg").unwrap().outcome, StepOutcome::Updated);
    match &r.step("db").unwrap().outcome {
        StepOutcome::Failed { error } => {
            assert!(
                error.contains("drift") && error.contains("replace needed"),
                "{error}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cloud.count("apply-update"), 1);
    assert_eq!(r.status, RunStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_bounded_backoff() {
    let cloud = Arc::new(MemCloud::new());
    cloud.set_fault("flaky", Fault::Transient(3));
    cloud.set_fault("hopeless", Fault::Transient(100));
    let graph = Graph::new(vec![
        spec(&cloud, "flaky", &[], |_| {}),
        spec(&cloud, "hopeless", &[], |_| {}),
    ])
    .unwrap();
    let env = Env::new();
    let policy = RetryPolicy {
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(8),
        max_attempts: 5,
        jitter: true,
    };
    let (eng, log) = engine(EngineConfig {
        retry: policy,
        ..EngineConfig::default()
    });
    let (j, st) = env.open();
    let t0 = tokio::time::Instant::now();
    let r = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    let elapsed = t0.elapsed();
    assert_eq!(r.step("flaky").unwrap().outcome, StepOutcome::Created);
    assert_eq!(r.step("flaky").unwrap().apply_calls, 4);
    assert_eq!(
        r.step("hopeless").unwrap().apply_calls,
        5,
        "bounded: 5 attempts"
    );
    assert!(matches!(
        r.step("hopeless").unwrap().outcome,
        StepOutcome::Failed { .. }
    ));
    // Hopeless waited 1+2+4+8 s, each up to doubled by jitter.
    assert!(
        elapsed >= Duration::from_secs(15) && elapsed <= Duration::from_secs(31),
        "{elapsed:?}"
    );
    let delays: Vec<Duration> = log
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StepRetrying { step, delay, .. } if step.as_str() == "hopeless" => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 4);
    for (d, base) in delays.iter().zip([1u64, 2, 4, 8]) {
        assert!(
            *d >= Duration::from_secs(base) && *d <= Duration::from_secs(base * 2),
            "{d:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_engine_owns_the_wait_timeout() {
    let cloud = Arc::new(MemCloud::new());
    cloud.set_fault("stuck", Fault::NeverReady);
    let graph = Graph::new(vec![
        spec(&cloud, "stuck", &[], |_| {}).with_timeout(Duration::from_secs(20 * 60)),
        spec(&cloud, "later", &["stuck"], |_| {}),
    ])
    .unwrap();
    let env = Env::new();
    let (eng, log) = engine(EngineConfig {
        waiting_every: Duration::from_secs(60),
        ..EngineConfig::default()
    });
    let (j, st) = env.open();
    let t0 = tokio::time::Instant::now();
    let r = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    let elapsed = t0.elapsed();
    match &r.step("stuck").unwrap().outcome {
        StepOutcome::Failed { error } => assert_eq!(error, "not ready after 20 min"),
        other => panic!("{other:?}"),
    }
    assert!(
        elapsed >= Duration::from_secs(1200) && elapsed < Duration::from_secs(1201),
        "{elapsed:?}"
    );
    let waits = log
        .events()
        .iter()
        .filter(|e| matches!(e, Event::StepWaiting { .. }))
        .count();
    assert_eq!(
        waits, 20,
        "one at the start and one a minute, with elapsed time"
    );
}

#[tokio::test(start_paused = true)]
async fn parallelism_bounds_mutating_calls_and_waiting_holds_no_slot() {
    // Ten independent steps, each taking 1 s to apply (holding a slot) and 60 s to be ready.
    struct Slow {
        inner: SimStep,
        active: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
    }
    #[async_trait::async_trait]
    impl Step for Slow {
        fn kind(&self) -> &str {
            "slow"
        }
        fn fingerprint(&self) -> Fingerprint {
            self.inner.fingerprint()
        }
        async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
            self.inner.observe(ctx).await
        }
        async fn apply(&self, ctx: &StepCtx, a: Action) -> Result<(), StepError> {
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.inner.apply(ctx, a).await
        }
        async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
            self.inner.wait(ctx).await
        }
        async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
            self.inner.destroy(ctx).await
        }
    }
    let cloud = Arc::new(MemCloud::new());
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let specs = (0..10)
        .map(|i| {
            let mut s = SimStep::new(&format!("s{i}"), cloud.clone());
            s.ready_ms = 60_000;
            StepSpec::new(
                format!("s{i}"),
                &[],
                Arc::new(Slow {
                    inner: s,
                    active: active.clone(),
                    peak: peak.clone(),
                }),
            )
        })
        .collect();
    let graph = Graph::new(specs).unwrap();
    let env = Env::new();
    let (eng, _) = engine(EngineConfig {
        parallelism: 2,
        ..EngineConfig::default()
    });
    let (j, st) = env.open();
    let t0 = tokio::time::Instant::now();
    let r = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    // 5 s of applies two at a time, then the last wait of 60 s: not 10 x 61 s.
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_secs(65) && elapsed < Duration::from_secs(67),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn hooks_run_around_the_step_with_dependency_outputs() {
    let cloud = Arc::new(MemCloud::new());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.out");
    let script = format!(
        "echo \"$WBSTACK_HOOK $WBSTACK_STEP dep=$WBSTACK_DEP_DB_NAME own=$WBSTACK_OUT_NAME\" >> {}",
        out.display()
    );
    cloud.set_fault("broken", Fault::Permanent);
    let graph = Graph::new(vec![
        spec(&cloud, "db", &[], |_| {}),
        spec(&cloud, "app", &["db"], |_| {})
            .with_hook(Hook::new(HookWhen::Before, "sh", &["-c", &script]))
            .with_hook(Hook::new(HookWhen::After, "sh", &["-c", &script])),
        spec(&cloud, "broken", &["db"], |_| {}).with_hook(Hook::new(
            HookWhen::OnFailure,
            "sh",
            &["-c", &script],
        )),
    ])
    .unwrap();
    let env = Env::new();
    let (eng, log) = engine(fast_retries());
    let (j, st) = env.open();
    eng.up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "after app dep=db own=app",
            "before app dep=db own=",
            "on_failure broken dep=db own=",
        ]
    );
    assert!(log
        .events()
        .iter()
        .any(|e| matches!(e, Event::HookFinished { success: true, .. })));
    // A failing before-hook fails its step before any mutating call.
    let cloud2 = Arc::new(MemCloud::new());
    let graph = Graph::new(vec![spec(&cloud2, "x", &[], |_| {}).with_hook(Hook::new(
        HookWhen::Before,
        "false",
        &[],
    ))])
    .unwrap();
    let env = Env::new();
    let (j, st) = env.open();
    let r = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert!(matches!(
        r.step("x").unwrap().outcome,
        StepOutcome::Failed { .. }
    ));
    assert_eq!(cloud2.count("apply"), 0);
}

#[tokio::test]
async fn secret_values_never_reach_the_journal_or_events() {
    struct WithSecret(SimStep);
    #[async_trait::async_trait]
    impl Step for WithSecret {
        fn kind(&self) -> &str {
            "secretive"
        }
        fn fingerprint(&self) -> Fingerprint {
            self.0.fingerprint()
        }
        async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
            Ok(match self.0.observe(ctx).await? {
                Observation::Ready {
                    mut outputs,
                    fingerprint,
                } => {
                    let s = Secret::new(
                        SecretRef::new("aws-secretsmanager", "arn:db"),
                        "TopSecretValue-42",
                    );
                    outputs.insert("password".into(), serde_json::to_value(&s).unwrap());
                    Observation::Ready {
                        outputs,
                        fingerprint,
                    }
                }
                o => o,
            })
        }
        async fn apply(&self, ctx: &StepCtx, a: Action) -> Result<(), StepError> {
            self.0.apply(ctx, a).await
        }
        async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
            let mut o = self.0.wait(ctx).await?;
            let s = Secret::new(
                SecretRef::new("aws-secretsmanager", "arn:db"),
                "TopSecretValue-42",
            );
            o.insert("password".into(), serde_json::to_value(&s).unwrap());
            Ok(o)
        }
        async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
            Err(StepError::permanent(
                "cannot delete: password TopSecretValue-42 rejected",
            ))
        }
    }
    let cloud = Arc::new(MemCloud::new());
    let graph = Graph::new(vec![StepSpec::new(
        "db",
        &[],
        Arc::new(WithSecret(SimStep::new("db", cloud.clone()))),
    )])
    .unwrap();
    let env = Env::new();
    let (eng, log) = engine(fast_retries());
    let (j, st) = env.open();
    eng.up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    drop(j);
    let (j, st) = env.open();
    let r = eng
        .down(
            &graph,
            &j,
            st,
            DownOptions::default(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    drop(j);
    let journal = std::fs::read_to_string(&env.path).unwrap();
    assert!(journal.contains("arn:db"), "the reference is recorded");
    assert!(!journal.contains("TopSecretValue-42"), "{journal}");
    let events = serde_json::to_string(
        &log.events()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(events.contains("***"), "the error was redacted: {events}");
    assert!(!events.contains("TopSecretValue-42"));
    assert!(!format!("{:?}", r).contains("TopSecretValue-42"));
}

#[tokio::test]
async fn events_follow_dependency_order_and_report_stats() {
    let cloud = Arc::new(MemCloud::new());
    let graph = Graph::new(vec![
        spec(&cloud, "a", &[], |s| s.ready_ms = 5),
        spec(&cloud, "b", &["a"], |_| {}),
    ])
    .unwrap();
    let env = Env::new();
    let (eng, log) = engine(EngineConfig::default());
    let (j, st) = env.open();
    let r = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    let ev = log.events();
    let idx = |f: &dyn Fn(&Event) -> bool| ev.iter().position(f).unwrap();
    let a_ready = idx(&|e| matches!(e, Event::StepReady { step, .. } if step.as_str() == "a"));
    let b_apply = idx(&|e| matches!(e, Event::StepApplying { step, .. } if step.as_str() == "b"));
    assert!(a_ready < b_apply);
    assert!(matches!(
        ev.first(),
        Some(Event::RunStarted {
            steps: 2,
            resumed: false,
            ..
        })
    ));
    match ev.last() {
        Some(Event::RunFinished { status, stats, .. }) => {
            assert_eq!(*status, RunStatus::Succeeded);
            assert_eq!(stats.created, 2);
            assert_eq!(stats.apply_calls, 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.stats.created, 2);
}

#[tokio::test]
async fn cancellation_stops_scheduling_and_resume_completes() {
    let cloud = Arc::new(MemCloud::new());
    let graph = Graph::new(vec![
        spec(&cloud, "a", &[], |s| s.ready_ms = 200),
        spec(&cloud, "b", &["a"], |_| {}),
        spec(&cloud, "c", &[], |_| {}),
    ])
    .unwrap();
    let env = Env::new();
    let (eng, _) = engine(EngineConfig::default());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c2.cancel();
    });
    let (j, st) = env.open();
    let r = eng.up(&graph, &j, st, cancel).await.unwrap();
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(r.step("b").unwrap().outcome, StepOutcome::NotStarted);
    assert_eq!(r.step("c").unwrap().outcome, StepOutcome::Created);
    drop(j);
    let (j, st) = env.open();
    let r = eng
        .up(&graph, &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert!(r.resumed, "the cancelled run is continued");
    assert_eq!(r.step("a").unwrap().outcome, StepOutcome::Created);
    assert_eq!(r.step("c").unwrap().outcome, StepOutcome::Unchanged);
    assert_eq!(cloud.count("create"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_replacement_happens_only_when_allowed_and_a_cut_one_is_finished_by_resume() {
    let cloud = Arc::new(MemCloud::new());
    let graph = |input: &str| {
        Graph::new(vec![spec(&cloud, "db", &[], |s| {
            s.input = input.into();
            s.destroy_ms = 10_000;
        })])
        .unwrap()
    };
    let env = Env::new();
    let (eng, _) = engine(fast_retries());
    let (j, st) = env.open();
    let r = eng
        .up(&graph("a"), &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    drop(j);
    // Not allowed: refused, nothing destroyed.
    let (j, st) = env.open();
    let r = eng
        .up(&graph("b"), &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert!(
        format!("{:?}", r.steps).contains("--replace db"),
        "{:?}",
        r.steps
    );
    assert_eq!(cloud.count("destroy"), 0);
    drop(j);
    // Allowed, and interrupted while the old one is going.
    let allowed = EngineConfig {
        replace: ["db".to_owned()].into(),
        ..fast_retries()
    };
    let (eng, _) = engine(allowed);
    let (j, st) = env.open();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.cancel();
    });
    let r = eng.up(&graph("b"), &j, st, cancel).await.unwrap();
    assert_eq!(r.status, RunStatus::Cancelled, "{:?}", r.steps);
    assert_eq!((cloud.count("destroy"), cloud.count("apply")), (1, 1));
    drop(j);
    // `resume` (up again) waits for the old one to go, then makes the new one.
    let (j, st) = env.open();
    let r = eng
        .up(&graph("b"), &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.steps);
    assert_eq!(r.steps[0].outcome, StepOutcome::Replaced);
    assert_eq!((cloud.count("destroy"), cloud.count("apply")), (1, 2));
    drop(j);
    let (j, st) = env.open();
    let r = eng
        .up(&graph("b"), &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.steps[0].outcome, StepOutcome::Unchanged);
}

/// A step whose first update gets only halfway (as a roll cut between two instances would
/// leave a cluster): it writes an intermediate state that takes a while to settle.
struct Halfway {
    sim: SimStep,
    updates: AtomicUsize,
}

#[async_trait::async_trait]
impl Step for Halfway {
    fn kind(&self) -> &str {
        "sim.halfway"
    }
    fn fingerprint(&self) -> Fingerprint {
        self.sim.fingerprint()
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        self.sim.observe(ctx).await
    }
    async fn apply(&self, ctx: &StepCtx, action: Action) -> Result<(), StepError> {
        self.sim.apply(ctx, action).await?;
        if action == Action::Update && self.updates.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut r = self.sim.cloud.get(&self.sim.name).unwrap();
            r.fingerprint = Fingerprint::of(&"halfway").as_str().to_owned();
            self.sim.cloud.put(&r);
        }
        Ok(())
    }
    async fn wait(&self, ctx: &StepCtx) -> Result<Outputs, StepError> {
        self.sim.wait(ctx).await
    }
    async fn destroy(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.sim.destroy(ctx).await
    }
    async fn wait_destroyed(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.sim.wait_destroyed(ctx).await
    }
}

/// An update cut while the resource settles from a first, partial change: `resume` waits for it
/// to settle, sees what is still not as the plan wants, and applies the rest, instead of taking
/// the settled resource as done.
#[tokio::test(start_paused = true)]
async fn an_update_cut_halfway_is_finished_by_resume_not_taken_as_done() {
    let cloud = Arc::new(MemCloud::new());
    let halfway = Arc::new(Halfway {
        sim: SimStep {
            ready_ms: 200,
            updatable: true,
            ..SimStep::new("db", cloud.clone() as Arc<dyn Cloud>)
        },
        updates: AtomicUsize::new(0),
    });
    let graph = |input: &str| {
        let mut sim = halfway.sim.clone();
        sim.input = input.into();
        let step = Arc::new(Halfway {
            sim,
            updates: AtomicUsize::new(halfway.updates.load(Ordering::SeqCst)),
        });
        Graph::new(vec![StepSpec::new("db", &[], step)]).unwrap()
    };
    let env = Env::new();
    let (eng, _) = engine(fast_retries());
    let (j, st) = env.open();
    let r = eng
        .up(&graph("a"), &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    drop(j);
    // The change is cut while the partial state settles.
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c.cancel();
    });
    let (j, st) = env.open();
    let r = eng.up(&graph("b"), &j, st, cancel).await.unwrap();
    assert_eq!(r.status, RunStatus::Cancelled, "{:?}", r.steps);
    assert_eq!(cloud.count("apply-update"), 1);
    drop(j);
    // Resume: the first update is now behind the step (a new process); the rest is applied.
    halfway.updates.store(1, Ordering::SeqCst);
    let (j, st) = env.open();
    let r = eng
        .up(&graph("b"), &j, st, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.steps);
    assert_eq!(r.steps[0].outcome, StepOutcome::Updated);
    assert_eq!(cloud.count("apply-update"), 2);
    let live = cloud.get("db").unwrap().fingerprint;
    assert_eq!(live, graph("b").spec(0).step.fingerprint().as_str());
}
