//! Readiness that explains: why the pods of a workload are not coming up, as the kubelet, the
//! scheduler and the Job controller report it (`CrashLoopBackOff`, `ImagePullBackOff`, an
//! unschedulable `Pending`, a failed Job), with the latest events and the container's last
//! message. A wait ends on what cannot heal by itself once it has lasted a grace period; what an
//! autoscaler may still fix (no node fits) is reported and waited on.

use crate::client::Kube;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use wbstack_engine::StepError;

/// Waiting reasons of a container that do not heal by waiting.
const FATAL_WAITING: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// One thing keeping pods from being ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    /// `pod/<name>` or `job/<name>`.
    pub object: String,
    pub reason: String,
    /// The container's message, its last exit, and the latest events.
    pub detail: String,
    /// Whether it ends the wait once it has lasted the grace period.
    pub fatal: bool,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.reason)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Why a container is not running, if the kubelet says.
fn container(c: &Value) -> Option<(String, String, bool)> {
    let waiting = &c["state"]["waiting"];
    let reason = s(&waiting["reason"]);
    if reason.is_empty() || reason == "ContainerCreating" || reason == "PodInitializing" {
        return None;
    }
    let mut detail = vec![format!("container {}", s(&c["name"]))];
    if !s(&waiting["message"]).is_empty() {
        detail.push(s(&waiting["message"]).to_owned());
    }
    let last = &c["lastState"]["terminated"];
    if last.is_object() {
        detail.push(format!(
            "last exit {} {}{}",
            last["exitCode"].as_i64().unwrap_or(0),
            s(&last["reason"]),
            match s(&last["message"]) {
                "" => String::new(),
                m => format!(": {m}"),
            }
        ));
    }
    if let Some(n) = c["restartCount"].as_i64().filter(|n| *n > 0) {
        detail.push(format!("{n} restarts"));
    }
    Some((
        reason.to_owned(),
        detail.join("; "),
        FATAL_WAITING.contains(&reason),
    ))
}

/// What keeps one pod from being ready, if anything does.
pub fn stuck_pod(pod: &Value) -> Option<Stuck> {
    let object = format!("pod/{}", s(&pod["metadata"]["name"]));
    let st = &pod["status"];
    let statuses = st["initContainerStatuses"]
        .as_array()
        .into_iter()
        .chain(st["containerStatuses"].as_array())
        .flatten();
    for c in statuses {
        if let Some((reason, detail, fatal)) = container(c) {
            return Some(Stuck {
                object,
                reason,
                detail,
                fatal,
            });
        }
    }
    let unschedulable = st["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
    });
    unschedulable
        .filter(|c| c["reason"] == "Unschedulable")
        .map(|c| Stuck {
            object,
            reason: "Unschedulable".into(),
            detail: s(&c["message"]).to_owned(),
            fatal: false,
        })
}

/// A Job the Job controller has given up on (a failed migration or hook).
pub fn stuck_job(job: &Value) -> Option<Stuck> {
    let failed = job["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Failed" && c["status"] == "True")?;
    Some(Stuck {
        object: format!("job/{}", s(&job["metadata"]["name"])),
        reason: format!("Job failed: {}", s(&failed["reason"])),
        detail: s(&failed["message"]).to_owned(),
        fatal: true,
    })
}

/// The latest Warning events about an object, newest first, as `Reason: message`.
fn latest_events(events: &[Value], kind: &str, name: &str) -> Vec<String> {
    let mut about: Vec<&Value> = events
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .filter(|e| e["type"] == "Warning")
        .collect();
    let stamp = |e: &Value| {
        let t = &e["lastTimestamp"];
        s(if t.is_string() { t } else { &e["eventTime"] }).to_owned()
    };
    about.sort_by_key(|e| std::cmp::Reverse(stamp(e)));
    about
        .iter()
        .take(2)
        .map(|e| format!("{}: {}", s(&e["reason"]), s(&e["message"])))
        .collect()
}

/// Everything keeping the pods and Jobs that `selector` names in `namespace` from being ready,
/// each with its latest Warning events.
pub async fn diagnose(
    kube: &Kube,
    namespace: &str,
    selector: &str,
) -> Result<Vec<Stuck>, StepError> {
    let pods = kube.list("v1", "Pod", Some(namespace), selector).await?;
    let jobs = kube
        .list("batch/v1", "Job", Some(namespace), selector)
        .await?;
    let mut out: Vec<Stuck> = pods
        .iter()
        .filter_map(stuck_pod)
        .chain(jobs.iter().filter_map(stuck_job))
        .collect();
    if out.is_empty() {
        return Ok(out);
    }
    let events = kube
        .list("v1", "Event", Some(namespace), "")
        .await
        .unwrap_or_default();
    for st in &mut out {
        let (kind, name) = match st.object.split_once('/') {
            Some(("pod", n)) => ("Pod", n),
            Some((_, n)) => ("Job", n),
            None => continue,
        };
        let ev = latest_events(&events, kind, name);
        if !ev.is_empty() {
            let sep = if st.detail.is_empty() { "" } else { "; " };
            st.detail = format!("{}{sep}events: {}", st.detail, ev.join(" / "));
        }
    }
    Ok(out)
}

/// How long each stuck condition has lasted, from when a wait first saw it.
#[derive(Debug)]
pub struct StuckClock {
    grace: Duration,
    seen: Mutex<BTreeMap<String, Instant>>,
}

impl StuckClock {
    pub fn new(grace: Duration) -> Self {
        StuckClock {
            grace,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// The first fatal condition that has lasted the grace period, if any; forgets conditions
    /// that cleared.
    pub fn expired<'a>(&self, stuck: &'a [Stuck]) -> Option<&'a Stuck> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<String> = stuck
            .iter()
            .map(|s| format!("{}/{}", s.object, s.reason))
            .collect();
        seen.retain(|k, _| keys.contains(k));
        let mut found = None;
        for (st, key) in stuck.iter().zip(keys) {
            let since = *seen.entry(key).or_insert(now);
            if found.is_none() && st.fatal && now.duration_since(since) >= self.grace {
                found = Some(st);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crashing() -> Value {
        // The status the kubelet writes for a container in a crash loop.
        json!({"metadata": {"name": "wandb-app-bc-5d8f7-abcde"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=app pod=wandb-app-bc-5d8f7-abcde"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "cannot connect to mysql"}}}]}})
    }

    #[test]
    fn a_crash_loop_names_the_container_its_last_exit_and_restarts() {
        let s = stuck_pod(&crashing()).unwrap();
        assert_eq!(s.reason, "CrashLoopBackOff");
        assert!(s.fatal);
        assert!(s.detail.contains("container app"), "{}", s.detail);
        assert!(
            s.detail
                .contains("last exit 1 Error: cannot connect to mysql"),
            "{}",
            s.detail
        );
        assert!(s.detail.contains("4 restarts"), "{}", s.detail);
    }

    #[test]
    fn image_pulls_unschedulable_pods_and_failed_jobs_are_told_apart() {
        let pull = json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"wandb/local:nope\""}}}]}});
        assert!(stuck_pod(&pull).unwrap().fatal);
        let pending = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]}});
        let s = stuck_pod(&pending).unwrap();
        assert!(!s.fatal && s.detail.contains("Insufficient memory"));
        let creating = json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(stuck_pod(&creating), None);
        let job = json!({"metadata": {"name": "wandb-ch-migrate"}, "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            stuck_job(&job).unwrap().reason,
            "Job failed: BackoffLimitExceeded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_condition_ends_the_wait_once_it_lasted_the_grace_period() {
        let clock = StuckClock::new(Duration::from_secs(60));
        let stuck = vec![stuck_pod(&crashing()).unwrap()];
        assert_eq!(clock.expired(&stuck), None);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(clock.expired(&stuck), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(clock.expired(&stuck), Some(&stuck[0]));
        // Cleared, then back: the grace starts again.
        assert_eq!(clock.expired(&[]), None);
        assert_eq!(clock.expired(&stuck), None);
    }
}
