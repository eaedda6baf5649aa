//! The state store against moto's S3: segments, fencing, compaction and the lease, with S3's
//! own conditional writes (`If-None-Match`, `If-Match`) deciding every race.

use wbstack_test_support::moto;

use aws_sdk_s3::config::{Credentials, Region};
use std::time::Duration;
use wbstack_engine::{
    Action, Fingerprint, JournalState, LockError, LockInfo, LockOptions, Record, RunId, StepId,
};
use wbstack_state::{EnvStore, S3Lock, S3Url, StateBucket, StoreError};

fn client(url: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// moto, a state bucket in it, and the store of environment `dev` under `team/`.
async fn store(moto: &moto::Moto) -> (aws_sdk_s3::Client, EnvStore) {
    let c = client(&moto.url);
    c.create_bucket().bucket("team-state").send().await.unwrap();
    let url = S3Url::parse("s3://team-state/team").unwrap();
    let bucket = StateBucket::with_client(c.clone(), url).await.unwrap();
    (c, bucket.env("dev"))
}

async fn keys(c: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    let out = c
        .list_objects_v2()
        .bucket("team-state")
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

fn intent(step: &str, attempt: u32) -> Record {
    Record::Intent {
        run: RunId(1),
        step: StepId::new(step),
        action: Action::Create,
        attempt,
        fingerprint: Some(Fingerprint::of(step)),
        deps: vec![],
        at_ms: 1,
    }
}

fn steps(s: &JournalState) -> Vec<String> {
    s.steps.keys().map(|k| k.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_durable_append_is_one_new_segment_and_another_machine_reads_them() {
    let moto = moto::Moto::start();
    let (c, dev) = store(&moto).await;
    assert!(!dev.has_journal().await.unwrap());
    let (journal, state, _dir) = dev.open_journal().await.unwrap();
    assert!(state.steps.is_empty());
    for (i, s) in ["kms", "bucket", "mysql"].iter().enumerate() {
        journal.append(&intent(s, i as u32 + 1)).await.unwrap();
    }
    let segs = keys(&c, "team/dev/journal/").await;
    assert_eq!(
        segs,
        [
            "team/dev/journal/segment-000000000001.jsonl",
            "team/dev/journal/segment-000000000002.jsonl",
            "team/dev/journal/segment-000000000003.jsonl"
        ]
    );
    drop(journal);
    // Another machine: a fresh client, nothing local.
    let other = StateBucket::with_client(
        client(&moto.url),
        S3Url::parse("s3://team-state/team/").unwrap(),
    )
    .await
    .unwrap()
    .env("dev");
    let read = other.read_state().await.unwrap();
    assert_eq!(steps(&read), ["bucket", "kms", "mysql"]);
    let (j2, st2, _d2) = other.open_journal().await.unwrap();
    assert_eq!(st2, read);
    j2.append(&intent("redis", 1)).await.unwrap();
    assert_eq!(keys(&c, "team/dev/journal/").await.len(), 4);
    assert_eq!(steps(&dev.read_state().await.unwrap()).len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_is_fenced_out_at_its_first_append() {
    let moto = moto::Moto::start();
    let (_c, dev) = store(&moto).await;
    let (a, _, _da) = dev.open_journal().await.unwrap();
    let (b, _, _db) = dev.open_journal().await.unwrap();
    a.append(&intent("kms", 1)).await.unwrap();
    let err = b.append(&intent("bucket", 1)).await.unwrap_err();
    assert!(err.to_string().contains("written by another run"), "{err}");
    // The first writer's record stands alone.
    assert_eq!(steps(&dev.read_state().await.unwrap()), ["kms"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_journal_is_compacted_on_open_and_nothing_is_lost() {
    let moto = moto::Moto::start();
    let (c, dev) = store(&moto).await;
    let n = wbstack_state::COMPACT_AFTER_SEGMENTS + 20;
    {
        let (j, _, _d) = dev.open_journal().await.unwrap();
        for i in 0..n {
            j.append(&intent(&format!("s{}", i % 7), i as u32))
                .await
                .unwrap();
        }
    }
    let before = dev.read_state().await.unwrap();
    let first_segment = c
        .get_object()
        .bucket("team-state")
        .key("team/dev/journal/segment-000000000001.jsonl")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let (j, after, _d) = dev.open_journal().await.unwrap();
    assert_eq!(before, after);
    let snapshot = format!("team/dev/journal/snapshot-{n:012}.jsonl");
    assert_eq!(
        keys(&c, "team/dev/journal/").await,
        std::slice::from_ref(&snapshot)
    );
    j.append(&intent("late", 1)).await.unwrap();
    let listed = keys(&c, "team/dev/journal/").await;
    assert_eq!(
        listed,
        [
            format!("team/dev/journal/segment-{:012}.jsonl", n + 1),
            snapshot
        ]
    );
    // A compaction cut after its snapshot leaves old segments behind: they are never read again.
    c.put_object()
        .bucket("team-state")
        .key("team/dev/journal/segment-000000000001.jsonl")
        .body(first_segment.into())
        .send()
        .await
        .unwrap();
    let read = dev.read_state().await.unwrap();
    assert_eq!(read.steps.len(), 8);
    assert_eq!(
        read.steps[&StepId::new("s0")].attempts,
        after.steps[&StepId::new("s0")].attempts
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_segment_is_reported_not_skipped() {
    let moto = moto::Moto::start();
    let (c, dev) = store(&moto).await;
    {
        let (j, _, _d) = dev.open_journal().await.unwrap();
        for i in 0..3 {
            j.append(&intent("kms", i)).await.unwrap();
        }
    }
    c.delete_object()
        .bucket("team-state")
        .key("team/dev/journal/segment-000000000002.jsonl")
        .send()
        .await
        .unwrap();
    let err = dev.read_state().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Gap {
                after: 1,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_state_bucket_is_an_error_and_none_is_created() {
    let moto = moto::Moto::start();
    let c = client(&moto.url);
    let url = S3Url::parse("s3://not-made-yet/team").unwrap();
    let err = StateBucket::with_client(c.clone(), url).await.unwrap_err();
    assert!(matches!(err, StoreError::NoBucket { .. }), "{err}");
    assert!(err.to_string().contains("create it first"), "{err}");
    assert!(c.list_buckets().send().await.unwrap().buckets().is_empty());
}

fn opts(command: &str, lease: Duration) -> LockOptions {
    LockOptions {
        lease,
        ..LockOptions::new(command)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_holder_at_a_time_named_to_the_others_and_released() {
    let moto = moto::Moto::start();
    let (c, dev) = store(&moto).await;
    let a = S3Lock::acquire(
        &dev,
        opts("wbstack up --plan a.yaml", Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let err = S3Lock::acquire(&dev, opts("wbstack down", Duration::from_secs(60)))
        .await
        .unwrap_err();
    match &err {
        LockError::Held { holder } => {
            assert_eq!(holder.command, "wbstack up --plan a.yaml");
            assert_eq!(holder.pid, std::process::id());
        }
        other => panic!("{other}"),
    }
    a.release().await;
    assert!(keys(&c, "team/dev/lock.json").await.is_empty());
    let b = S3Lock::acquire(&dev, opts("wbstack down", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        wbstack_state::read_holder(&dev)
            .await
            .unwrap()
            .unwrap()
            .command,
        "wbstack down"
    );
    b.release().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_takers_get_exactly_one_lease() {
    let moto = moto::Moto::start();
    let (_c, dev) = store(&moto).await;
    let tries = (0..8).map(|i| {
        let dev = dev.clone();
        tokio::spawn(async move {
            S3Lock::acquire(&dev, opts(&format!("taker {i}"), Duration::from_secs(60))).await
        })
    });
    let mut held = Vec::new();
    let mut refused = 0;
    for t in tries {
        match t.await.unwrap() {
            Ok(l) => held.push(l),
            Err(LockError::Held { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((held.len(), refused), (1, 7));
}

async fn plant(c: &aws_sdk_s3::Client, holder: &LockInfo) {
    c.put_object()
        .bucket("team-state")
        .key("team/dev/lock.json")
        .body(serde_json::to_vec(holder).unwrap().into())
        .send()
        .await
        .unwrap();
}

/// A holder elsewhere (a lease of 1.5 s, renewed `renewed_ago_ms` ago by its clock).
fn foreign(host: &str, pid: u32, renewed_ago_ms: u64) -> LockInfo {
    let now = wbstack_engine::now_ms();
    LockInfo {
        host: host.into(),
        pid,
        command: "wbstack up --plan prod.yaml".into(),
        started_at_ms: now - renewed_ago_ms - 1000,
        renewed_at_ms: now - renewed_ago_ms,
        lease_ms: 1_500,
        token: "theirs".into(),
        host_id: "another-machine".into(),
    }
}

/// A holder that was a process of this machine.
fn here(pid: u32) -> LockInfo {
    LockInfo {
        host_id: wbstack_engine::this_host_id(),
        ..foreign(&wbstack_engine::this_host(), pid, 0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_of_dead_or_silent_holders_are_taken_over_live_ones_are_not() {
    let moto = moto::Moto::start();
    let (c, dev) = store(&moto).await;
    let o = || opts("wbstack resume", Duration::from_secs(60));
    // Another machine, renewed just now: respected.
    plant(&c, &foreign("ci-runner-7", 4242, 0)).await;
    let err = S3Lock::acquire(&dev, o()).await.unwrap_err();
    assert!(err.to_string().contains("ci-runner-7"), "{err}");
    assert!(err.to_string().contains("unlock --lock-id theirs"), "{err}");
    // Silent for two minutes by its own clock, and unchanged for its lease length on ours: its
    // lease ran out.
    plant(&c, &foreign("ci-runner-7", 4242, 120_000)).await;
    let started = std::time::Instant::now();
    let l = S3Lock::acquire(&dev, o()).await.unwrap();
    assert_eq!(l.info().command, "wbstack resume");
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    l.release().await;
    // Its clock is behind ours (its lease looks run out) but it renews while watched: it is
    // alive, and respected.
    plant(&c, &foreign("ci-runner-7", 4242, 120_000)).await;
    let renewing = {
        let c = c.clone();
        tokio::spawn(async move {
            // As a holder does: every third of its lease.
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                plant(&c, &foreign("ci-runner-7", 4242, 120_000)).await;
            }
        })
    };
    let err = S3Lock::acquire(&dev, o()).await.unwrap_err();
    assert!(matches!(err, LockError::Held { .. }), "{err}");
    renewing.abort();
    // A machine of this one's name whose pid 4242 is not running here: another machine (its
    // boot or pid namespace differs), so not taken at once.
    let mut twin = foreign(&wbstack_engine::this_host(), u32::MAX - 1, 0);
    twin.host_id = "another-boot".into();
    plant(&c, &twin).await;
    assert!(matches!(
        S3Lock::acquire(&dev, o()).await,
        Err(LockError::Held { .. })
    ));
    // A process on this host that has exited: no need to wait its lease out.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    plant(&c, &here(pid)).await;
    let l = S3Lock::acquire(&dev, o()).await.unwrap();
    l.release().await;
    // A live process on this host (this one) is respected.
    plant(&c, &here(std::process::id())).await;
    assert!(matches!(
        S3Lock::acquire(&dev, o()).await,
        Err(LockError::Held { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_heartbeat_renews_and_notices_a_takeover() {
    let moto = moto::Moto::start();
    let (c, dev) = store(&moto).await;
    let mut l = S3Lock::acquire(&dev, opts("wbstack up", Duration::from_millis(1500)))
        .await
        .unwrap();
    let first = wbstack_state::read_holder(&dev).await.unwrap().unwrap();
    let lost = l.start_heartbeat();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let renewed = wbstack_state::read_holder(&dev).await.unwrap().unwrap();
    assert!(renewed.renewed_at_ms > first.renewed_at_ms);
    assert_eq!(renewed.token, first.token);
    // Still held: the lease never ran out.
    assert!(
        S3Lock::acquire(&dev, opts("other", Duration::from_secs(60)))
            .await
            .is_err()
    );
    // Someone takes it over by hand (`unlock`, then another run): the next renewal's If-Match
    // on the old ETag fails, and the holder learns it lost the environment.
    plant(&c, &foreign("ci-runner-7", 4242, 0)).await;
    tokio::time::timeout(Duration::from_secs(5), lost.cancelled())
        .await
        .expect("the heartbeat notices the lease was taken");
    assert!(matches!(
        wbstack_state::force_unlock(&dev, "not-theirs").await,
        Err(LockError::OtherHolder { .. })
    ));
    let was = wbstack_state::force_unlock(&dev, "theirs")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(was.host, "ci-runner-7");
    assert!(wbstack_state::read_holder(&dev).await.unwrap().is_none());
}
