//! Steps and their segments from a run's events.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What a step was doing during a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    Observe,
    Apply,
    Wait,
    Retry,
    Destroy,
    Rollback,
}

impl SegmentKind {
    pub fn name(self) -> &'static str {
        match self {
            SegmentKind::Observe => "observe",
            SegmentKind::Apply => "apply",
            SegmentKind::Wait => "wait",
            SegmentKind::Retry => "retry",
            SegmentKind::Destroy => "destroy",
            SegmentKind::Rollback => "rollback",
        }
    }
}

/// A span of a step's time, in milliseconds since the epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    pub kind: SegmentKind,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The error a retry follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A step of the plan: its id, kind and the steps it waits for.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepNode {
    pub id: String,
    pub kind: String,
    pub deps: Vec<String>,
}

/// One step's line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepLine {
    pub id: String,
    pub kind: String,
    pub deps: Vec<String>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub segments: Vec<Segment>,
    /// `created`, `unchanged`, `failed`, `skipped`, `destroyed`, ...
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub retries: u32,
    pub critical: bool,
    /// The journaled outputs (references and identifiers, never values).
    pub outputs: Value,
}

/// Where a run stopped and where it was taken up again (a run continued by `resume` records
/// its events after the ones it continues).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mark {
    /// `cut` (the process ended without finishing), `stopped` (it finished, failed or
    /// cancelled) or `resumed`.
    pub kind: String,
    pub at_ms: u64,
}

/// A run's timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timeline {
    pub environment: String,
    pub run: u64,
    pub operation: String,
    pub status: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub steps: Vec<StepLine>,
    /// Step ids of the critical path, first to last.
    pub critical_path: Vec<String>,
    /// Where the run was cut or stopped and resumed, in order.
    pub marks: Vec<Mark>,
    /// The time between each stop and its resume: no step ran then.
    pub paused_ms: u64,
    /// The events as recorded.
    pub events: Vec<Value>,
}

fn at(e: &Value) -> u64 {
    e["at_ms"].as_u64().unwrap_or(0)
}

fn ms(e: &Value, k: &str) -> u64 {
    e[k].as_u64().unwrap_or(0)
}

/// Segments of one step from its events, in order.
#[derive(Default)]
struct Builder {
    /// No segment of this step starts before it (the last resume).
    since: u64,
    first: Option<u64>,
    last: u64,
    start: Option<u64>,
    open: Option<(SegmentKind, u64)>,
    segments: Vec<Segment>,
    outcome: Option<String>,
    error: Option<String>,
    retries: u32,
}

impl Builder {
    fn close(&mut self, t: u64) {
        if let Some((kind, start)) = self.open.take() {
            self.segments.push(Segment {
                kind,
                start_ms: start,
                end_ms: t.max(start),
                note: None,
            });
        }
    }

    /// The run stopped at `cut` and was resumed at `resumed`: what was under way ends at the
    /// cut, and nothing counts the time between.
    fn cut(&mut self, cut: u64, resumed: u64) {
        self.close(cut);
        self.start = None;
        self.since = resumed;
    }

    fn open(&mut self, kind: SegmentKind, t: u64) {
        self.close(t);
        self.open = Some((kind, t));
    }

    fn on(&mut self, e: &Value) {
        let t = at(e);
        self.first.get_or_insert(t);
        self.last = self.last.max(t);
        match e["event"].as_str().unwrap_or("") {
            "step_observed" => {
                let start = self
                    .start
                    .unwrap_or_else(|| self.first.unwrap_or(t))
                    .max(self.since);
                self.segments.push(Segment {
                    kind: SegmentKind::Observe,
                    start_ms: start.min(t),
                    end_ms: t,
                    note: None,
                });
            }
            "step_applying" => self.open(SegmentKind::Apply, t),
            "step_waiting" if !matches!(self.open, Some((SegmentKind::Wait, _))) => {
                self.open(SegmentKind::Wait, t)
            }
            "step_retrying" => {
                self.close(t);
                self.retries += 1;
                let delay = ms(e, "delay");
                self.segments.push(Segment {
                    kind: SegmentKind::Retry,
                    start_ms: t,
                    end_ms: t + delay,
                    note: e["error"].as_str().map(str::to_owned),
                });
                self.last = self.last.max(t + delay);
            }
            "step_destroying" => self.open(SegmentKind::Destroy, t),
            "step_rolling_back" => self.open(SegmentKind::Rollback, t),
            "step_ready" => {
                self.close(t);
                self.outcome = e["outcome"].as_str().map(str::to_owned);
            }
            "step_destroyed" => {
                self.close(t);
                self.outcome = Some("destroyed".into());
            }
            "step_rolled_back" => {
                self.close(t);
                self.outcome = Some("rolled back".into());
            }
            "step_failed" => {
                self.close(t);
                self.outcome = Some("failed".into());
                self.error = e["error"].as_str().map(str::to_owned);
            }
            "step_skipped" => {
                self.outcome = Some(format!(
                    "skipped ({} failed)",
                    e["because"].as_str().unwrap_or("?")
                ));
            }
            "step_kept" => {
                self.close(t);
                self.outcome = Some("kept".into());
            }
            _ => {}
        }
    }
}

impl Timeline {
    /// The timeline of run `run` of `environment` from its events, the plan's steps (in plan
    /// order) and each step's journaled outputs.
    pub fn build(
        environment: &str,
        run: u64,
        events: &[Value],
        nodes: &[StepNode],
        outputs: &BTreeMap<String, Value>,
    ) -> Timeline {
        let mut by: BTreeMap<&str, Builder> = BTreeMap::new();
        let (mut marks, mut last_at, mut part_finished) = (Vec::new(), None::<u64>, false);
        for e in events {
            if e["event"] == "run_started" {
                if let Some(cut) = last_at {
                    let kind = if part_finished { "stopped" } else { "cut" };
                    marks.push(Mark {
                        kind: kind.into(),
                        at_ms: cut,
                    });
                    marks.push(Mark {
                        kind: "resumed".into(),
                        at_ms: at(e),
                    });
                    for b in by.values_mut() {
                        b.cut(cut, at(e));
                    }
                }
                part_finished = false;
            }
            part_finished |= e["event"] == "run_finished";
            last_at = Some(last_at.unwrap_or(0).max(at(e)));
            if let Some(step) = e["step"].as_str() {
                let b = by.entry(step).or_default();
                // A step's time starts when its ready event says it did (`duration`).
                if e["event"] == "step_ready" {
                    b.start = Some(at(e).saturating_sub(ms(e, "duration")));
                }
                b.on(e);
            }
        }
        let started = events.iter().find(|e| e["event"] == "run_started");
        // The run's status is its last part's: a part cut short has none.
        let finished = events
            .iter()
            .rev()
            .take_while(|e| e["event"] != "run_started")
            .find(|e| e["event"] == "run_finished");
        let start_ms = started
            .map(at)
            .unwrap_or_else(|| events.first().map(at).unwrap_or(0));
        let mut steps: Vec<StepLine> = nodes
            .iter()
            .map(|n| line(n, by.remove(n.id.as_str()), outputs))
            .collect();
        let end_ms = finished
            .map(at)
            .or_else(|| steps.iter().map(|s| s.end_ms).max())
            .unwrap_or(start_ms);
        let critical_path = critical_path(&steps);
        for s in &mut steps {
            s.critical = critical_path.contains(&s.id);
        }
        let status = finished
            .and_then(|f| f["status"].as_str())
            .unwrap_or("unfinished")
            .to_owned();
        Timeline {
            environment: environment.to_owned(),
            run,
            operation: started
                .and_then(|s| s["operation"].as_str())
                .unwrap_or("?")
                .to_owned(),
            status,
            start_ms,
            end_ms,
            steps,
            critical_path,
            paused_ms: marks
                .chunks(2)
                .map(|m| m[m.len() - 1].at_ms.saturating_sub(m[0].at_ms))
                .sum(),
            marks,
            events: events.to_vec(),
        }
    }
}

fn line(n: &StepNode, b: Option<Builder>, outputs: &BTreeMap<String, Value>) -> StepLine {
    let mut b = b.unwrap_or_default();
    let last = b.last;
    b.close(last);
    let start = b
        .start
        .or(b.first)
        .unwrap_or(0)
        .min(b.first.unwrap_or(u64::MAX));
    StepLine {
        id: n.id.clone(),
        kind: n.kind.clone(),
        deps: n.deps.clone(),
        start_ms: start,
        end_ms: b.last.max(start),
        segments: b.segments,
        outcome: b.outcome.unwrap_or_else(|| "not started".into()),
        error: b.error,
        retries: b.retries,
        critical: false,
        outputs: outputs.get(&n.id).cloned().unwrap_or(Value::Null),
    }
}

/// From the step that ended last, back through the dependency that ended last, to a step that
/// waited on nothing: the chain that set the run's length.
fn critical_path(steps: &[StepLine]) -> Vec<String> {
    let ran = |s: &&StepLine| !s.segments.is_empty();
    let by: BTreeMap<&str, &StepLine> = steps
        .iter()
        .filter(ran)
        .map(|s| (s.id.as_str(), s))
        .collect();
    let Some(mut at) = by.values().max_by_key(|s| s.end_ms).copied() else {
        return Vec::new();
    };
    let mut path = vec![at.id.clone()];
    while let Some(prev) = at
        .deps
        .iter()
        .filter_map(|d| by.get(d.as_str()))
        .max_by_key(|s| s.end_ms)
    {
        if path.contains(&prev.id) {
            break;
        }
        path.push(prev.id.clone());
        at = prev;
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, deps: &[&str]) -> StepNode {
        StepNode {
            id: id.into(),
            kind: "k".into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn segments_and_the_critical_path_come_from_the_events() {
        let ev = [
            json!({"event": "run_started", "operation": "up", "at_ms": 0}),
            json!({"event": "step_observed", "step": "a", "at_ms": 10}),
            json!({"event": "step_applying", "step": "a", "at_ms": 10}),
            json!({"event": "step_waiting", "step": "a", "at_ms": 20}),
            json!({"event": "step_waiting", "step": "a", "at_ms": 60}),
            json!({"event": "step_ready", "step": "a", "outcome": "created", "duration": 100, "at_ms": 100}),
            json!({"event": "step_observed", "step": "b", "at_ms": 5}),
            json!({"event": "step_ready", "step": "b", "outcome": "unchanged", "duration": 5, "at_ms": 5}),
            json!({"event": "step_observed", "step": "c", "at_ms": 110}),
            json!({"event": "step_applying", "step": "c", "at_ms": 110}),
            json!({"event": "step_retrying", "step": "c", "delay": 40, "error": "500", "at_ms": 120}),
            json!({"event": "step_applying", "step": "c", "at_ms": 160}),
            json!({"event": "step_failed", "step": "c", "error": "403", "at_ms": 170}),
            json!({"event": "step_skipped", "step": "d", "because": "c", "at_ms": 170}),
            json!({"event": "run_finished", "status": "failed", "at_ms": 171}),
        ];
        let nodes = [
            node("a", &[]),
            node("b", &[]),
            node("c", &["a", "b"]),
            node("d", &["c"]),
        ];
        let t = Timeline::build("e", 1, &ev, &nodes, &BTreeMap::new());
        let kinds = |id: &str| -> Vec<&str> {
            t.steps
                .iter()
                .find(|s| s.id == id)
                .unwrap()
                .segments
                .iter()
                .map(|s| s.kind.name())
                .collect()
        };
        assert_eq!(kinds("a"), ["observe", "apply", "wait"]);
        let a = &t.steps[0];
        assert_eq!((a.start_ms, a.end_ms, a.segments[2].start_ms), (0, 100, 20));
        assert_eq!(kinds("c"), ["observe", "apply", "retry", "apply"]);
        let c = &t.steps[2];
        assert_eq!(
            (c.retries, c.outcome.as_str(), c.error.as_deref()),
            (1, "failed", Some("403"))
        );
        assert_eq!(t.steps[3].outcome, "skipped (c failed)");
        assert_eq!(t.critical_path, ["a", "c"]);
        assert!(t.steps[0].critical && !t.steps[1].critical && t.steps[2].critical);
        assert_eq!((t.status.as_str(), t.end_ms), ("failed", 171));
    }

    #[test]
    fn a_cut_and_resumed_run_is_marked_and_its_dead_time_is_no_step_s_work() {
        let ev = [
            json!({"event": "run_started", "operation": "up", "resumed": false, "at_ms": 0}),
            json!({"event": "step_observed", "step": "a", "at_ms": 10}),
            json!({"event": "step_applying", "step": "a", "at_ms": 10}),
            json!({"event": "step_waiting", "step": "a", "at_ms": 20}),
            // Killed here; resumed 600 s later.
            json!({"event": "run_started", "operation": "up", "resumed": true, "at_ms": 600_020}),
            json!({"event": "step_observed", "step": "a", "at_ms": 600_030}),
            json!({"event": "step_waiting", "step": "a", "at_ms": 600_030}),
            json!({"event": "step_ready", "step": "a", "outcome": "created", "duration": 50, "at_ms": 600_080}),
            json!({"event": "run_finished", "status": "succeeded", "at_ms": 600_081}),
        ];
        let t = Timeline::build("e", 1, &ev, &[node("a", &[])], &BTreeMap::new());
        let marks: Vec<(&str, u64)> = t.marks.iter().map(|m| (m.kind.as_str(), m.at_ms)).collect();
        assert_eq!(marks, [("cut", 20), ("resumed", 600_020)]);
        assert_eq!(t.paused_ms, 600_000);
        let worked: u64 = t.steps[0]
            .segments
            .iter()
            .map(|s| s.end_ms - s.start_ms)
            .sum();
        assert!(worked < 200, "{:?}", t.steps[0].segments);
        assert!(t.steps[0]
            .segments
            .iter()
            .all(|s| s.end_ms <= 20 || s.start_ms >= 600_020));
        assert_eq!(t.status, "succeeded");
    }
}
