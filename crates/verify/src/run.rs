//! Probes run concurrently, each bounded by a timeout: a probe that cannot reach its target
//! says so instead of hanging the command.

use crate::verdict::Finding;
use async_trait::async_trait;
use std::time::Duration;

/// One data path's check.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Its name in the findings (`references`, `mysql`, ...).
    fn name(&self) -> &str;
    /// What it checks, for a finding made on its behalf (a timeout).
    fn checks(&self) -> String;
    /// Runs it; one finding per thing checked.
    async fn run(&self) -> Vec<Finding>;
}

/// Runs every probe at once; each gets `limit`.
pub async fn run_all(probes: &[Box<dyn Probe>], limit: Duration) -> Vec<Finding> {
    let runs = probes.iter().map(|p| async move {
        match tokio::time::timeout(limit, p.run()).await {
            Ok(findings) => findings,
            Err(_) => vec![Finding::fail(
                p.name(),
                p.checks(),
                format!("no answer within {} s", limit.as_secs()),
                "check that the target is reachable from where verify runs",
            )],
        }
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    struct Slow;
    struct Quick;

    #[async_trait]
    impl Probe for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn checks(&self) -> String {
            "a target that never answers".into()
        }
        async fn run(&self) -> Vec<Finding> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Vec::new()
        }
    }

    #[async_trait]
    impl Probe for Quick {
        fn name(&self) -> &str {
            "quick"
        }
        fn checks(&self) -> String {
            "a target that answers".into()
        }
        async fn run(&self) -> Vec<Finding> {
            vec![Finding::pass("quick", "it", "answered")]
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_answers_fails_at_its_timeout_and_the_others_still_report() {
        let probes: Vec<Box<dyn Probe>> = vec![Box::new(Slow), Box::new(Quick)];
        let f = run_all(&probes, Duration::from_secs(20)).await;
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].probe.as_str(), f[0].verdict), ("slow", Verdict::Fail));
        assert!(f[0].seen.contains("no answer within 20 s"), "{:?}", f[0]);
        assert_eq!(
            (f[1].probe.as_str(), f[1].verdict),
            ("quick", Verdict::Pass)
        );
    }
}
