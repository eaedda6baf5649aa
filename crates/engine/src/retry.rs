//! Bounded exponential backoff with jitter for transient errors (built on `backon`).

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// How transient errors are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The first delay.
    pub min_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Spread delays randomly (up to double) so that many clients do not retry in step.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_attempts: 6,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delays before the second, third, ... attempt.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send {
        let mut b = ExponentialBuilder::default()
            .with_factor(2.0)
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            b = b.with_jitter();
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_bounded_in_number() {
        let p = RetryPolicy {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            max_attempts: 6,
            jitter: false,
        };
        let d: Vec<u128> = p.delays().map(|d| d.as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 700, 700]);
        let j = RetryPolicy { jitter: true, ..p };
        for (i, d) in j.delays().enumerate() {
            let base = [100u128, 200, 400, 700, 700][i];
            assert!(d.as_millis() >= base && d.as_millis() <= base * 2, "{d:?}");
        }
    }
}
