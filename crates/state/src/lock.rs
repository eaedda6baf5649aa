//! The environment's lease in S3: `lock.json`, taken with `If-None-Match: *`, renewed and
//! taken over with `If-Match` on the ETag last seen, so two runs can never both believe they
//! hold it. The holder is named (host, pid, command, start, lock id). A lease is taken over
//! when it stayed unchanged for its whole length as the taker's own clock measures it (the
//! holder's timestamps, from another machine's clock, only ever make a taker refuse sooner),
//! and at once when its holder was a process on this machine that has gone. `unlock` needs the
//! holder's lock id and deletes only the lease it read.

use crate::client::{call_error, is_not_found, is_precondition_failed, StoreError};
use crate::store::EnvStore;
use aws_sdk_s3::primitives::ByteStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wbstack_engine::{Clock, LockError, LockInfo, LockOptions};

const KEY: &str = "lock.json";

/// A held lease. Release it with [`S3Lock::release`]; one dropped unreleased runs out.
pub struct S3Lock {
    store: EnvStore,
    info: Arc<Mutex<LockInfo>>,
    etag: Arc<Mutex<String>>,
    clock: Clock,
    heartbeat: Option<JoinHandle<()>>,
    lost: CancellationToken,
}

impl std::fmt::Debug for S3Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Lock")
            .field("at", &self.store.location())
            .finish()
    }
}

fn store_err(store: &EnvStore, e: StoreError) -> LockError {
    LockError::Store {
        location: store.location(),
        message: e.to_string(),
    }
}

/// What a conditional write of the lease came to.
enum Put {
    Written(String),
    Lost,
}

async fn put(store: &EnvStore, info: &LockInfo, cond: Cond<'_>) -> Result<Put, StoreError> {
    let body = serde_json::to_vec_pretty(info).unwrap_or_default();
    let mut req = store
        .put(KEY)
        .content_type("application/json")
        .body(ByteStream::from(body));
    req = match cond {
        Cond::Absent => req.if_none_match("*"),
        Cond::Is(etag) => req.if_match(etag),
    };
    match req.send().await {
        Ok(out) => Ok(Put::Written(out.e_tag().unwrap_or_default().to_owned())),
        Err(e) if is_precondition_failed(&e) || is_not_found(&e) => Ok(Put::Lost),
        Err(e) => Err(call_error(&store.location(), "writing lock.json", &e)),
    }
}

enum Cond<'a> {
    Absent,
    Is(&'a str),
}

/// The current holder and the lease's ETag, if anyone holds it.
async fn holder(store: &EnvStore) -> Result<Option<(LockInfo, String)>, StoreError> {
    let Some((bytes, etag)) = store.get(KEY).await? else {
        return Ok(None);
    };
    let info = serde_json::from_slice(&bytes).map_err(|e| StoreError::Call {
        at: store.location(),
        what: "reading lock.json".into(),
        message: format!("not a lease: {e}"),
    })?;
    Ok(Some((info, etag.unwrap_or_default())))
}

/// Who holds the environment now, if anyone (an expired lease included).
pub async fn read_holder(store: &EnvStore) -> Result<Option<LockInfo>, LockError> {
    Ok(holder(store)
        .await
        .map_err(|e| store_err(store, e))?
        .map(|(i, _)| i))
}

/// Removes the lease held with `lock_id` (and only the lease read: `If-Match`); returns who
/// held it.
pub async fn force_unlock(store: &EnvStore, lock_id: &str) -> Result<Option<LockInfo>, LockError> {
    let Some((held, etag)) = holder(store).await.map_err(|e| store_err(store, e))? else {
        return Ok(None);
    };
    if held.token != lock_id {
        return Err(LockError::OtherHolder {
            holder: Box::new(held),
            given: lock_id.to_owned(),
        });
    }
    match store
        .client
        .delete_object()
        .bucket(store.bucket())
        .key(store.key(KEY))
        .if_match(etag)
        .send()
        .await
    {
        Ok(_) => Ok(Some(held)),
        Err(e) if is_precondition_failed(&e) => Err(LockError::Store {
            location: store.location(),
            message: "the lease changed while it was being removed (its holder renewed it, or \
                      another took it): nothing was removed"
                .into(),
        }),
        Err(e) => Err(store_err(
            store,
            call_error(&store.location(), "deleting lock.json", &e),
        )),
    }
}

/// What watching a lease that looks run out came to.
enum Watched {
    /// Unchanged for its whole length on this machine's clock: its holder stopped.
    Stale(String),
    /// Renewed, taken or released meanwhile.
    Changed,
}

/// Watches a lease whose holder's own timestamps say it ran out: it counts as run out only if
/// it stays the same (its ETag) for the holder's lease length, measured on this clock.
async fn watch(
    store: &EnvStore,
    h: &LockInfo,
    etag: &str,
    clock: Clock,
) -> Result<Watched, StoreError> {
    let since = clock.now_ms();
    let step = Duration::from_millis((h.lease_ms / 10).clamp(50, 1000));
    tracing::info!(at = %store.location(), holder = %h, "waiting {} ms on this machine's clock for the lease to stay unrenewed", h.lease_ms);
    loop {
        match holder(store).await? {
            Some((_, now)) if now == etag => {
                if clock.now_ms().saturating_sub(since) >= h.lease_ms {
                    return Ok(Watched::Stale(now));
                }
            }
            _ => return Ok(Watched::Changed),
        }
        tokio::time::sleep(step).await;
    }
}

impl S3Lock {
    /// Takes the environment's lease, or fails at once naming the holder.
    pub async fn acquire(store: &EnvStore, opts: LockOptions) -> Result<S3Lock, LockError> {
        let now = opts.clock.now_ms();
        let info = LockInfo::this_process(&opts.command, opts.lease, now);
        let err = |e| store_err(store, e);
        let mut last_holder = None;
        for _ in 0..5 {
            if let Put::Written(etag) = put(store, &info, Cond::Absent).await.map_err(err)? {
                tracing::debug!(at = %store.location(), "lease taken");
                return Ok(Self::held(store, info, etag, opts.clock));
            }
            let Some((h, etag)) = holder(store).await.map_err(err)? else {
                continue; // released in between: try again
            };
            let etag = if h.is_gone_from_this_host() {
                etag
            } else if !h.is_expired(opts.clock.now_ms()) {
                return Err(LockError::Held {
                    holder: Box::new(h),
                });
            } else {
                match watch(store, &h, &etag, opts.clock).await.map_err(err)? {
                    Watched::Stale(etag) => etag,
                    Watched::Changed => {
                        last_holder = Some(h);
                        continue;
                    }
                }
            };
            tracing::info!(at = %store.location(), holder = %h, "taking over a lease its holder left");
            if let Put::Written(etag) = put(store, &info, Cond::Is(&etag)).await.map_err(err)? {
                return Ok(Self::held(store, info, etag, opts.clock));
            }
            last_holder = Some(h); // someone else took it over first
        }
        match holder(store).await.map_err(err)? {
            Some((h, _)) => Err(LockError::Held {
                holder: Box::new(h),
            }),
            None => Err(LockError::Held {
                holder: Box::new(last_holder.unwrap_or(info)),
            }),
        }
    }

    fn held(store: &EnvStore, info: LockInfo, etag: String, clock: Clock) -> S3Lock {
        S3Lock {
            store: store.clone(),
            info: Arc::new(Mutex::new(info)),
            etag: Arc::new(Mutex::new(etag)),
            clock,
            heartbeat: None,
            lost: CancellationToken::new(),
        }
    }

    /// Who we are, as others see us.
    pub fn info(&self) -> LockInfo {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Renews the lease every third of its length with `If-Match` on the last ETag. The token
    /// fires when the lease is lost (removed by `unlock`, or taken over after it ran out).
    pub fn start_heartbeat(&mut self) -> CancellationToken {
        let (store, info, etag, clock, lost) = (
            self.store.clone(),
            self.info.clone(),
            self.etag.clone(),
            self.clock,
            self.lost.clone(),
        );
        let lease = self.info().lease_ms;
        let period = Duration::from_millis((lease / 3).max(1));
        self.heartbeat = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let mut next = info.lock().unwrap_or_else(|e| e.into_inner()).clone();
                next.renewed_at_ms = clock.now_ms();
                let current = etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
                match put(&store, &next, Cond::Is(&current)).await {
                    Ok(Put::Written(t)) => {
                        *etag.lock().unwrap_or_else(|e| e.into_inner()) = t;
                        *info.lock().unwrap_or_else(|e| e.into_inner()) = next;
                    }
                    Ok(Put::Lost) => {
                        tracing::warn!(at = %store.location(), "the lease was removed or taken over");
                        lost.cancel();
                        return;
                    }
                    // A failed renewal is tried again on the next tick, well within the lease.
                    Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
                }
            }
        }));
        self.lost.clone()
    }

    /// Releases the lease if it is still ours.
    pub async fn release(mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let token = self.info().token;
        match holder(&self.store).await {
            Ok(Some((h, etag))) if h.token == token => {
                let res = self
                    .store
                    .client
                    .delete_object()
                    .bucket(self.store.bucket())
                    .key(self.store.key(KEY))
                    .if_match(etag)
                    .send()
                    .await;
                if let Err(e) = res {
                    tracing::warn!(error = %call_error(&self.store.location(), "releasing the lease", &e), "the lease is left to run out");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the lease is left to run out"),
        }
    }
}

impl Drop for S3Lock {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}
