//! Waiting for a goal (ready, gone) under the engine's timeout: no concurrency slot held,
//! cancellation wins, transient errors restart the wait with backoff, and periodic
//! `StepWaiting` events carry the elapsed time.

use crate::events::Event;
use crate::id::StepId;
use crate::run::{Halt, RunCtx};
use crate::step::StepError;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Runs `f` until it succeeds within `limit`; `goal` names what is awaited in the timeout error.
pub(crate) async fn wait_until<T, F, Fut>(
    cx: &RunCtx,
    id: &StepId,
    limit: Duration,
    mut f: F,
    goal: &str,
) -> Result<T, Halt>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
{
    let start = Instant::now();
    let deadline = start + limit;
    let mut delays = cx.config.retry.delays();
    let mut attempt = 1u32;
    cx.events.emit(Event::StepWaiting {
        step: id.clone(),
        elapsed: Duration::ZERO,
        last: cx.events.last_seen(id),
    });
    let last_seen = || match cx.events.last_seen(id) {
        Some(l) => format!("; last seen: {l}"),
        None => String::new(),
    };
    loop {
        let fut = f();
        tokio::pin!(fut);
        let mut ticker = tokio::time::interval_at(
            Instant::now() + cx.config.waiting_every,
            cx.config.waiting_every,
        );
        let res = loop {
            tokio::select! {
                // In this order, so that a result, a signal or the deadline wins over a tick.
                biased;
                r = &mut fut => break r,
                // A wait is read-only: dropping it on cancellation or timeout loses no work.
                _ = cx.cancel.cancelled() => return Err(Halt::Cancelled),
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Halt::Failed(format!(
                        "not {goal} after {}{}", human(limit), last_seen()
                    )))
                }
                _ = ticker.tick() => cx.events.emit(Event::StepWaiting {
                    step: id.clone(),
                    elapsed: start.elapsed(),
                    last: cx.events.last_seen(id),
                }),
            }
        };
        match res {
            Ok(v) => return Ok(v),
            Err(e) => match cx.next_delay(id, &e, &mut delays, &mut attempt) {
                Some(d) if Instant::now() + d < deadline => cx.pause(d).await?,
                _ => return Err(Halt::Failed(format!("waiting: {}", e.full_message()))),
            },
        }
    }
}

/// A duration for messages: `30 min`, `45 s`, `250 ms`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else if s > 0 {
        format!("{s} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}
