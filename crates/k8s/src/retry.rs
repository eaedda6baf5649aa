//! Each Kubernetes call is retried on its own when the server answers with an error that passes
//! (a 5xx, a 429 after the wait it asks for, a 409 on an update whose object changed meanwhile),
//! as client-go's clients do: one failed call among the twenty a step makes does not start the
//! whole step over. What still fails after a few tries goes to the engine's step retry.

use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::time::Duration;
use wbstack_engine::{ErrorKind, StepError};

/// Four more tries, 100 ms to 2 s apart with jitter.
fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(4)
        .with_jitter()
}

/// Runs `call`, again after a transient error, waiting at least what the server asked.
pub(crate) async fn call<T, F, Fut>(call: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    call.retry(policy())
        .when(|e: &StepError| e.kind() == ErrorKind::Transient)
        .adjust(|e: &StepError, next: Option<Duration>| {
            next.map(|d| e.retry_after().map_or(d, |asked| asked.max(d)))
        })
        .notify(|e: &StepError, d: Duration| {
            tracing::debug!(target: "wbstack_k8s::calls", "retrying in {d:?}: {}", e.message());
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_passing_error_is_retried_and_a_lasting_one_is_not() {
        let tries = AtomicU32::new(0);
        let out = call(|| async {
            match tries.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err(StepError::transient("500")),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(tries.load(Ordering::Relaxed), 3);

        let tries = AtomicU32::new(0);
        let out: Result<(), _> = call(|| async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(StepError::permanent("403"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(
            tries.load(Ordering::Relaxed),
            1,
            "a permanent error is not retried"
        );

        let tries = AtomicU32::new(0);
        let out: Result<(), _> = call(|| async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(StepError::transient("500"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(
            tries.load(Ordering::Relaxed),
            5,
            "then the engine's retry takes over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_waits_what_the_server_asked() {
        let start = tokio::time::Instant::now();
        let tries = AtomicU32::new(0);
        call(|| async {
            if tries.fetch_add(1, Ordering::Relaxed) == 0 {
                Err(StepError::transient("429").with_retry_after(Duration::from_secs(7)))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );
    }
}
