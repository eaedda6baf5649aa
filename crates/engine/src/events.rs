//! Typed lifecycle events. The engine emits them; reporters (progress bars, JSON lines, run
//! reports) subscribe. The engine itself never prints.

use crate::id::{RunId, StepId};
use crate::step::Action;
use serde::Serialize;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Which engine operation a run performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Up,
    Down,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Everything asked for is done.
    Succeeded,
    /// A step failed permanently; the rest was kept for `resume`.
    Failed,
    /// A step failed and what this run created was rolled back.
    RolledBack,
    /// Interrupted by a signal; `resume` completes it.
    Cancelled,
}

/// Counters for one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunStats {
    pub steps: usize,
    pub unchanged: usize,
    pub created: usize,
    pub updated: usize,
    pub adopted: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_started: usize,
    pub rolled_back: usize,
    pub destroyed: usize,
    pub kept: usize,
    /// Calls to `apply`, counting retries.
    pub apply_calls: usize,
    pub elapsed_ms: u64,
}

/// Where a hook's line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run: RunId,
        operation: Operation,
        steps: usize,
        resumed: bool,
    },
    StepObserved {
        step: StepId,
        state: String,
    },
    /// What an update changes, before it is applied.
    StepChanging {
        step: StepId,
        changes: Vec<crate::step::Change>,
    },
    StepApplying {
        step: StepId,
        action: Action,
        attempt: u32,
    },
    StepWaiting {
        step: StepId,
        #[serde(with = "millis")]
        elapsed: Duration,
        /// What was last seen of what the step waits for (its last progress report), or the
        /// last error of a call being retried.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<String>,
    },
    StepProgress {
        step: StepId,
        message: String,
    },
    StepReady {
        step: StepId,
        /// What the run did: unchanged, created, updated, adopted.
        outcome: String,
        #[serde(with = "millis")]
        duration: Duration,
    },
    StepRetrying {
        step: StepId,
        attempt: u32,
        #[serde(with = "millis")]
        delay: Duration,
        error: String,
    },
    StepFailed {
        step: StepId,
        error: String,
    },
    StepSkipped {
        step: StepId,
        because: StepId,
    },
    StepRollingBack {
        step: StepId,
    },
    StepRolledBack {
        step: StepId,
    },
    StepDestroying {
        step: StepId,
    },
    StepDestroyed {
        step: StepId,
    },
    /// A resource left alone by teardown or rollback (adopted, not ours).
    StepKept {
        step: StepId,
        reason: String,
    },
    HookStarted {
        step: StepId,
        hook: String,
    },
    HookOutput {
        step: StepId,
        hook: String,
        stream: Stream,
        line: String,
    },
    HookFinished {
        step: StepId,
        hook: String,
        success: bool,
    },
    RunFinished {
        run: RunId,
        operation: Operation,
        status: RunStatus,
        stats: RunStats,
    },
}

impl Event {
    /// The step an event is about, if any.
    pub fn step(&self) -> Option<&StepId> {
        match self {
            Event::RunStarted { .. } | Event::RunFinished { .. } => None,
            Event::StepObserved { step, .. }
            | Event::StepChanging { step, .. }
            | Event::StepApplying { step, .. }
            | Event::StepWaiting { step, .. }
            | Event::StepProgress { step, .. }
            | Event::StepReady { step, .. }
            | Event::StepRetrying { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepSkipped { step, .. }
            | Event::StepRollingBack { step }
            | Event::StepRolledBack { step }
            | Event::StepDestroying { step }
            | Event::StepDestroyed { step }
            | Event::StepKept { step, .. }
            | Event::HookStarted { step, .. }
            | Event::HookOutput { step, .. }
            | Event::HookFinished { step, .. } => Some(step),
        }
    }
}

mod millis {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

type Subscriber = Arc<dyn Fn(&Event) + Send + Sync>;

/// A cheap, cloneable fan-out of events to subscribers. Subscribers must be quick: they run on
/// the emitting task.
#[derive(Clone, Default)]
pub struct EventSink {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
    /// Per step, the last progress report or retried error: what a wait says it last saw.
    last: Arc<RwLock<std::collections::HashMap<StepId, String>>>,
}

impl EventSink {
    /// A sink with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber.
    pub fn subscribe(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        self.subscribers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(f));
    }

    /// What a step last reported (progress) or the last error it is retrying, if any.
    pub fn last_seen(&self, step: &StepId) -> Option<String> {
        self.last
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(step)
            .cloned()
    }

    fn remember(&self, event: &Event) {
        let (step, what) = match event {
            Event::StepProgress { step, message } => (step, Some(message.clone())),
            Event::StepRetrying {
                step,
                attempt,
                error,
                ..
            } => (step, Some(format!("retrying (attempt {attempt}): {error}"))),
            Event::StepApplying { step, .. } | Event::StepReady { step, .. } => (step, None),
            _ => return,
        };
        let mut last = self.last.write().unwrap_or_else(|e| e.into_inner());
        match what {
            Some(w) => last.insert(step.clone(), w),
            None => last.remove(step),
        };
    }

    /// Delivers an event to every subscriber.
    pub fn emit(&self, event: Event) {
        self.remember(&event);
        if tracing::enabled!(target: "wbstack_engine::events", tracing::Level::DEBUG) {
            let json = serde_json::to_string(&event).unwrap_or_default();
            tracing::debug!(target: "wbstack_engine::events", "{json}");
        }
        let subs = self.subscribers.read().unwrap_or_else(|e| e.into_inner());
        for s in subs.iter() {
            s(&event);
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.subscribers.read().map(|s| s.len()).unwrap_or(0);
        write!(f, "EventSink({n} subscribers)")
    }
}

/// A subscriber that keeps every event, for tests and run reports.
#[derive(Clone, Default, Debug)]
pub struct EventLog {
    events: Arc<std::sync::Mutex<Vec<Event>>>,
}

impl EventLog {
    /// Subscribes a new log to `sink`.
    pub fn attach(sink: &EventSink) -> Self {
        let log = EventLog::default();
        let inner = log.events.clone();
        sink.subscribe(move |e| {
            inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.clone())
        });
        log
    }

    /// Everything received so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_knows_what_its_step_last_reported_or_is_retrying() {
        let sink = EventSink::new();
        let step = StepId::new("aws.redis");
        assert_eq!(sink.last_seen(&step), None);
        sink.emit(Event::StepProgress {
            step: step.clone(),
            message: "modifying (nodes)".into(),
        });
        assert_eq!(sink.last_seen(&step).as_deref(), Some("modifying (nodes)"));
        sink.emit(Event::StepRetrying {
            step: step.clone(),
            attempt: 14,
            delay: Duration::from_secs(5),
            error: "failed to IncreaseReplicaCount: 500 InternalError".into(),
        });
        assert_eq!(
            sink.last_seen(&step).as_deref(),
            Some("retrying (attempt 14): failed to IncreaseReplicaCount: 500 InternalError")
        );
        // Another step's reports are its own; a step that is ready has nothing pending.
        assert_eq!(sink.last_seen(&StepId::new("k8s.wandb")), None);
        sink.emit(Event::StepReady {
            step: step.clone(),
            outcome: "updated".into(),
            duration: Duration::from_secs(1),
        });
        assert_eq!(sink.last_seen(&step), None);
    }
}
