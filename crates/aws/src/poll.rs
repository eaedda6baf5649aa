//! Adaptive polling for AWS resources that have no watch API.
//!
//! The first read comes within 2 s of the call that started the change; the interval then grows
//! with the time already waited (5% of it) up to 15 s, less a random 0-20% so that many waiters
//! do not poll in step. A resource that becomes ready at time T is therefore seen by
//! T + 2 s + 5% of T.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use wbstack_engine::{StepCtx, StepError};

/// The interval after `elapsed` of waiting, before jitter.
pub fn interval(elapsed: Duration) -> Duration {
    let grown = elapsed.mul_f64(0.05);
    grown.clamp(Duration::from_secs(2), Duration::from_secs(15))
}

/// Polls `check` until it yields a value or fails; returns promptly when the run is cancelled.
/// The engine owns the timeout.
pub async fn poll<T, F, Fut>(ctx: &StepCtx, mut check: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StepError>>,
{
    let start = Instant::now();
    loop {
        let jitter = 1.0 - rand::random::<f64>() * 0.2;
        let wait = interval(start.elapsed()).mul_f64(jitter);
        tokio::select! {
            _ = ctx.cancel().cancelled() => return Err(StepError::transient("wait cancelled")),
            _ = tokio::time::sleep(wait) => {}
        }
        if let Some(v) = check().await? {
            return Ok(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use wbstack_engine::{CancellationToken, EventSink, RunId, StepId};

    fn ctx() -> StepCtx {
        StepCtx::new(
            StepId::new("x"),
            RunId(1),
            Default::default(),
            None,
            CancellationToken::new(),
            EventSink::new(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_resource_ready_at_t_is_seen_by_t_plus_2s_plus_5_percent() {
        for t in [0u64, 1, 5, 20, 60, 180, 600, 1800, 3600] {
            let ready_at = Duration::from_secs(t);
            let start = Instant::now();
            let reads = AtomicU32::new(0);
            let c = ctx();
            poll(&c, || async {
                reads.fetch_add(1, Ordering::Relaxed);
                Ok((start.elapsed() >= ready_at).then_some(()))
            })
            .await
            .unwrap();
            let seen = start.elapsed();
            let bound = ready_at + Duration::from_secs(2) + ready_at.mul_f64(0.05);
            assert!(
                seen <= bound,
                "ready at {t} s, seen at {seen:?}, bound {bound:?}"
            );
            assert!(seen >= ready_at);
            // Not a busy loop: at most one read every 1.6 s.
            assert!(
                u64::from(reads.load(Ordering::Relaxed)) <= 1 + seen.as_secs() * 10 / 16,
                "{t}: {} reads",
                reads.load(Ordering::Relaxed)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_read_is_within_2s_and_the_interval_caps_at_15s() {
        assert!(interval(Duration::ZERO) <= Duration::from_secs(2));
        assert_eq!(
            interval(Duration::from_secs(10_000)),
            Duration::from_secs(15)
        );
        let start = Instant::now();
        let c = ctx();
        let first = std::sync::Mutex::new(None);
        poll(&c, || async {
            first.lock().unwrap().get_or_insert(start.elapsed());
            Ok(Some(()))
        })
        .await
        .unwrap();
        assert!(first.lock().unwrap().unwrap() <= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_ends_the_wait() {
        let c = ctx();
        let token = c.cancel().clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            token.cancel();
        });
        let r: Result<(), _> = poll(&c, || async { Ok(None) }).await;
        assert!(r.is_err());
    }
}
