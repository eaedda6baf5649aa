//! kube-rs against the emulator: typed and dynamic clients, server-side apply, selectors,
//! deletion, conditions and watchers across dropped watches.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{watcher, WatchStreamExt};
use kube_emulator::Faults;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use wbstack_test_support::emulator::Server;

fn ns(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

#[test]
fn create_get_opt_apply_list_and_status_reasons() {
    let s = Server::start();
    let client = s.client();
    s.rt.block_on(async move {
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(&PostParams::default(), &ns("wandb")).await.unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "wandb");
        assert!(cms.get_opt("missing").await.unwrap().is_none());
        let err = cms.get("missing").await.unwrap_err();
        match err {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 404);
                assert_eq!(s.reason, "NotFound");
            }
            other => panic!("{other}"),
        }
        let pp = PatchParams::apply("wbstack").force();
        for (name, tier) in [("a", "front"), ("b", "back")] {
            let cm: ConfigMap = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"tier": tier}},
                "data": {"k": "v"}
            }))
            .unwrap();
            let made = cms.patch(name, &pp, &Patch::Apply(&cm)).await.unwrap();
            assert_eq!(made.data.unwrap()["k"], "v");
        }
        let again: ConfigMap = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"tier": "front"}}, "data": {"k": "w"}})).unwrap();
        let rv_before = cms.get("a").await.unwrap().metadata.resource_version;
        cms.patch("a", &pp, &Patch::Apply(&again)).await.unwrap();
        let a = cms.get("a").await.unwrap();
        assert_eq!(a.data.unwrap()["k"], "w");
        assert_ne!(a.metadata.resource_version, rv_before);
        // The same apply again changes nothing: the resourceVersion stays.
        let rv = cms.patch("a", &pp, &Patch::Apply(&again)).await.unwrap().metadata.resource_version;
        assert_eq!(rv, cms.get("a").await.unwrap().metadata.resource_version);
        let fronts = cms.list(&ListParams::default().labels("tier=front")).await.unwrap();
        assert_eq!(fronts.items.len(), 1);
        assert!(fronts.metadata.resource_version.is_some());
        let named = cms.list(&ListParams::default().fields("metadata.name=b")).await.unwrap();
        assert_eq!(named.items[0].metadata.name.as_deref(), Some("b"));
        let dup = cms.create(&PostParams::default(), &cms.get("b").await.unwrap()).await.unwrap_err();
        assert!(matches!(dup, kube::Error::Api(ref s) if s.reason == "AlreadyExists" && s.code == 409), "{dup}");
        let mut stale = cms.get("b").await.unwrap();
        cms.patch("b", &PatchParams::default(), &Patch::Merge(json!({"data": {"x": "1"}}))).await.unwrap();
        stale.data = Some(BTreeMap::from([("y".into(), "2".into())]));
        let conflict = cms.replace("b", &PostParams::default(), &stale).await.unwrap_err();
        assert!(matches!(conflict, kube::Error::Api(ref s) if s.reason == "Conflict" && s.code == 409), "{conflict}");
        let bad: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "Not_Valid"}})).unwrap();
        let invalid = cms.create(&PostParams::default(), &bad).await.unwrap_err();
        assert!(matches!(invalid, kube::Error::Api(ref s) if s.reason == "Invalid" && s.code == 422), "{invalid}");
        // stringData is folded into base64 data.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "wandb");
        let sec: Secret = serde_json::from_value(json!({"metadata": {"name": "pw"}, "stringData": {"password": "hunter2"}})).unwrap();
        let made = secrets.create(&PostParams::default(), &sec).await.unwrap();
        assert_eq!(made.data.unwrap()["password"].0, b"hunter2");
        assert!(made.string_data.is_none());
    });
}

#[test]
fn delete_and_wait_until_gone_and_await_a_condition() {
    let s = Server::start();
    let client = s.client();
    s.rt.block_on(async move {
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns("wandb")).await.unwrap();
        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "wandb");
        let obj: StatefulSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "ch", "annotations": {"kube-emulator.wbstack.dev/ready-after-ms": "400"}},
            "spec": {"replicas": 3, "serviceName": "ch", "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        })).unwrap();
        sts.patch("ch", &PatchParams::apply("wbstack"), &Patch::Apply(&obj)).await.unwrap();
        let start = std::time::Instant::now();
        let ready = |o: Option<&StatefulSet>| {
            o.and_then(|s| s.status.as_ref()).is_some_and(|st| st.ready_replicas == Some(3) && st.observed_generation == Some(1))
        };
        let done = tokio::time::timeout(Duration::from_secs(10), await_condition(sts.clone(), "ch", ready)).await.unwrap().unwrap();
        assert!(ready(done.as_ref()));
        assert!(start.elapsed() >= Duration::from_millis(350), "ready after its delay, not before");
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "wandb");
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/x"]}})).unwrap();
        let made = cms.create(&PostParams::default(), &cm).await.unwrap();
        let uid = made.metadata.uid.clone().unwrap();
        let deleted = cms.delete("held", &DeleteParams::default()).await.unwrap();
        let marked = deleted.left().expect("an object with finalizers is returned, not a Status");
        assert!(marked.metadata.deletion_timestamp.is_some());
        assert!(cms.get_opt("held").await.unwrap().is_some(), "held by its finalizer");
        let cms2 = cms.clone();
        let waiter = tokio::spawn(async move { await_condition(cms2, "held", conditions::is_deleted(&uid)).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().unwrap();
        assert!(cms.get_opt("held").await.unwrap().is_none());
    });
}

#[test]
fn a_watcher_survives_dropped_watches_and_injected_errors() {
    let s = Server::start();
    s.running().set_faults(Faults {
        drop_watches_after_ms: Some(300),
        ..Faults::default()
    });
    let client = s.client();
    s.rt.block_on(async move {
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns("wandb"))
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "wandb");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen2 = seen.clone();
        let w = watcher(cms.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        let task = tokio::spawn(async move {
            let mut w = std::pin::pin!(w);
            while let Ok(Some(cm)) = w.try_next().await {
                seen2
                    .lock()
                    .unwrap()
                    .push(cm.metadata.name.unwrap_or_default());
            }
        });
        for i in 0..6 {
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
            cms.create(&PostParams::default(), &cm).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // Watches drop every 300 ms; wait (bounded) until the watcher has caught up.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let all_seen = || {
            let seen = seen.lock().unwrap();
            (0..6).all(|i| seen.contains(&format!("c{i}")))
        };
        while !all_seen() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
        let seen = seen.lock().unwrap().clone();
        for i in 0..6 {
            assert!(
                seen.contains(&format!("c{i}")),
                "c{i} missing from {seen:?}"
            );
        }
    });
    // With a share of requests failing, a client that retries still gets through.
    s.running().set_faults(Faults {
        error_rate: 0.3,
        ..Faults::default()
    });
    let client = s.client();
    let (first_failures, codes) = s.rt.block_on(async move {
        let cms: Api<ConfigMap> = Api::namespaced(client, "wandb");
        let (mut first_failures, mut codes) = (0, std::collections::BTreeSet::new());
        for _ in 0..60 {
            let mut attempt = 0;
            loop {
                match cms.list(&ListParams::default()).await {
                    Ok(list) => {
                        assert_eq!(list.items.len(), 6);
                        break;
                    }
                    Err(kube::Error::Api(s)) if s.code == 500 || s.code == 429 => {
                        codes.insert(s.code);
                        if attempt == 0 {
                            first_failures += 1;
                        }
                        attempt += 1;
                        assert!(attempt < 10, "still failing after {attempt} attempts");
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        (first_failures, codes)
    });
    assert!(
        first_failures > 5,
        "only {first_failures} of 60 lists failed at first"
    );
    // kube's client retries the 429s (they carry Retry-After) by itself; the 500s reach us.
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), vec![500]);
}

#[test]
fn injected_conflicts_hit_updates_only_and_say_to_reread() {
    let s = Server::start();
    let client = s.client();
    s.running().set_faults(Faults {
        conflict_rate: 0.5,
        ..Faults::default()
    });
    let (conflicts, reads_ok) = s.rt.block_on(async move {
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns("wandb"))
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client, "wandb");
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let mut conflicts = Vec::new();
        for i in 0..10 {
            let patch = json!({"data": {"n": i.to_string()}});
            match cms
                .patch("c", &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) => {
                    conflicts.push((s.code, s.reason.clone(), s.message.clone()))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let mut reads_ok = 0;
        for _ in 0..10 {
            if cms.get("c").await.is_ok() {
                reads_ok += 1;
            }
        }
        (conflicts, reads_ok)
    });
    assert_eq!(conflicts.len(), 5, "{conflicts:?}");
    assert!(conflicts
        .iter()
        .all(|(c, r, m)| *c == 409 && r == "Conflict" && m.contains("latest version")));
    assert_eq!(reads_ok, 10, "reads are never conflicted");
}

#[test]
fn watch_replays_history_after_a_resource_version_and_sends_bookmarks() {
    let s = Server::start();
    let client = s.client();
    s.rt.block_on(async move {
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns("wandb"))
            .await
            .unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "wandb");
        let first = cms
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap(),
            )
            .await
            .unwrap();
        let rv = first.metadata.resource_version.unwrap();
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap(),
        )
        .await
        .unwrap();
        cms.delete("a", &DeleteParams::default()).await.unwrap();
        let wp = kube::api::WatchParams::default().timeout(2);
        let events: Vec<_> = cms
            .watch(&wp, &rv)
            .await
            .unwrap()
            .take(2)
            .try_collect()
            .await
            .unwrap();
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e {
                kube::api::WatchEvent::Added(o) => {
                    format!("ADDED {}", o.metadata.name.clone().unwrap())
                }
                kube::api::WatchEvent::Deleted(o) => {
                    format!("DELETED {}", o.metadata.name.clone().unwrap())
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, vec!["ADDED b", "DELETED a"]);
        let wp = kube::api::WatchParams {
            bookmarks: true,
            ..kube::api::WatchParams::default().timeout(2)
        };
        let mut stream = std::pin::pin!(cms.watch(&wp, "0").await.unwrap());
        let mut saw_bookmark = false;
        while let Some(e) = stream.next().await {
            if matches!(e.unwrap(), kube::api::WatchEvent::Bookmark(_)) {
                saw_bookmark = true;
                break;
            }
        }
        assert!(saw_bookmark);
    });
}

#[test]
fn a_spec_change_to_a_ready_deployment_rolls_out_and_keeps_it_available() {
    // The order a slow client can produce: the first generation is ready (and Available)
    // before the second is applied.
    let s = Server::start();
    let client = s.client();
    s.rt.block_on(async move {
        use k8s_openapi::api::apps::v1::Deployment;
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns("wandb")).await.unwrap();
        let deps: Api<Deployment> = Api::namespaced(client.clone(), "wandb");
        let manifest = |image: &str| -> Deployment {
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
            }))
            .unwrap()
        };
        let available = |generation: i64| {
            move |o: Option<&Deployment>| {
                o.and_then(|d| d.status.as_ref()).is_some_and(|st| {
                    st.observed_generation == Some(generation)
                        && st.updated_replicas == Some(2)
                        && st.ready_replicas == Some(2)
                        && st.conditions.iter().flatten().any(|c| c.type_ == "Available" && c.status == "True")
                })
            }
        };
        deps.patch("web", &PatchParams::apply("t"), &Patch::Apply(&manifest("x:1"))).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), await_condition(deps.clone(), "web", available(1))).await.unwrap().unwrap();
        deps.patch("web", &PatchParams::apply("t"), &Patch::Apply(&manifest("x:2"))).await.unwrap();
        // Observed at once: rolling out, the old replicas still ready and Available kept.
        let observed = |o: Option<&Deployment>| {
            o.and_then(|d| d.status.as_ref()).is_some_and(|st| st.observed_generation == Some(2))
        };
        let d = tokio::time::timeout(Duration::from_secs(10), await_condition(deps.clone(), "web", observed)).await.unwrap().unwrap().unwrap();
        let st = d.status.unwrap();
        assert_eq!(st.updated_replicas, Some(0), "the new generation is not rolled out yet");
        assert_eq!(st.ready_replicas, Some(2));
        assert!(st.conditions.iter().flatten().any(|c| c.type_ == "Available"));
        // Then rolled out after its delay, Available again.
        tokio::time::timeout(Duration::from_secs(10), await_condition(deps.clone(), "web", available(2))).await.unwrap().unwrap();
    });
}
