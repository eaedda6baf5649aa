//! The timeline as one self-contained HTML page: inline CSS, no script, nothing fetched.

use crate::timeline::{StepLine, Timeline};
use maud::{html as page, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: #556; margin-bottom: 16px; }
table { border-collapse: collapse; width: 100%; }
td, th { padding: 3px 6px; text-align: left; vertical-align: top; border-bottom: 1px solid #eef; }
.gantt td.bar { width: 60%; }
.track { position: relative; height: 16px; background: #f4f6fa; }
.seg { position: absolute; top: 2px; height: 12px; min-width: 2px; }
.seg.observe { background: #9aa7bd; } .seg.apply { background: #2f6fde; }
.seg.wait { background: #7fb3ff; } .seg.retry { background: #e8a33a; }
.seg.destroy { background: #b3475b; } .seg.rollback { background: #8e5bd4; }
tr.critical td.name { font-weight: 700; }
tr.critical .track { outline: 2px solid #d6336c; }
.badge { font-size: 11px; color: #fff; background: #d6336c; border-radius: 3px; padding: 0 4px; margin-left: 4px; }
.failed { color: #b3262e; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 12px; height: 10px; margin-right: 4px; }
pre { margin: 0; font-size: 12px; white-space: pre-wrap; }
"#;

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn bar(t: &Timeline, s: &StepLine) -> Markup {
    let span = t.end_ms.saturating_sub(t.start_ms).max(1) as f64;
    page! {
        div class="track" {
            @for seg in &s.segments {
                @let left = seg.start_ms.saturating_sub(t.start_ms) as f64 / span * 100.0;
                @let width = seg.end_ms.saturating_sub(seg.start_ms) as f64 / span * 100.0;
                @let title = format!("{} {}: {} from {}{}", s.id, seg.kind.name(),
                    secs(seg.end_ms.saturating_sub(seg.start_ms)),
                    secs(seg.start_ms.saturating_sub(t.start_ms)),
                    seg.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default());
                div class={ "seg " (seg.kind.name()) } data-kind=(seg.kind.name())
                    style=(format!("left:{left:.3}%;width:{width:.3}%")) title=(title) {}
            }
        }
    }
}

fn gantt(t: &Timeline) -> Markup {
    page! {
        table class="gantt" {
            tr { th { "step" } th { "outcome" } th { "time" } th { "retries" } th { "timeline" } }
            @for s in &t.steps {
                tr class=[s.critical.then_some("critical")] data-step=(s.id) {
                    td class="name" {
                        (s.id)
                        @if s.critical { span class="badge" { "critical path" } }
                    }
                    td class=[(s.outcome == "failed").then_some("failed")] { (s.outcome) }
                    td { (secs(s.end_ms.saturating_sub(s.start_ms))) }
                    td { (s.retries) }
                    td class="bar" { (bar(t, s)) }
                }
            }
        }
    }
}

fn legend() -> Markup {
    let colors = [
        ("observe", "#9aa7bd"),
        ("apply", "#2f6fde"),
        ("wait", "#7fb3ff"),
        ("retry", "#e8a33a"),
        ("destroy", "#b3475b"),
        ("rollback", "#8e5bd4"),
    ];
    page! {
        p class="legend" {
            @for (name, color) in colors {
                span { i style=(format!("background:{color}")) {} (name) }
            }
        }
    }
}

fn outputs(t: &Timeline) -> Markup {
    page! {
        table class="outputs" {
            tr { th { "step" } th { "kind" } th { "outputs (references, never values)" } th { "error" } }
            @for s in &t.steps {
                tr {
                    td { (s.id) } td { (s.kind) }
                    td { pre { (serde_json::to_string_pretty(&s.outputs).unwrap_or_default()) } }
                    td class="failed" { (s.error.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

fn events(t: &Timeline) -> Markup {
    page! {
        table class="events" {
            tr { th { "at" } th { "event" } th { "step" } th { "detail" } }
            @for e in &t.events {
                @let mut rest = e.clone();
                @let _ = rest.as_object_mut().map(|m| { for k in ["at_ms", "elapsed_ms", "event", "step"] { m.remove(k); } });
                tr {
                    td { (secs(e["at_ms"].as_u64().unwrap_or(t.start_ms).saturating_sub(t.start_ms))) }
                    td { (e["event"].as_str().unwrap_or("")) }
                    td { (e["step"].as_str().unwrap_or("")) }
                    td { pre { (rest.to_string()) } }
                }
            }
        }
    }
}

/// The page.
pub fn html(t: &Timeline) -> String {
    let title = format!("wbstack {} run {}", t.environment, t.run);
    page! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p class="meta" {
                    (t.operation) ", " (t.status) ", " (secs(t.end_ms.saturating_sub(t.start_ms)))
                    ", " (t.steps.len()) " steps; critical path: "
                    span id="critical-path" { (t.critical_path.join(" → ")) }
                }
                @for pair in t.marks.chunks(2) {
                    @if let [stop, resumed] = pair {
                        p class="mark" {
                            (stop.kind) " at " (secs(stop.at_ms.saturating_sub(t.start_ms)))
                            ", resumed at " (secs(resumed.at_ms.saturating_sub(t.start_ms)))
                            " (" (secs(resumed.at_ms.saturating_sub(stop.at_ms)))
                            " with nothing running, counted in no step)"
                        }
                    }
                }
                (legend())
                h2 { "Timeline" }
                (gantt(t))
                h2 { "Steps and outputs" }
                (outputs(t))
                h2 { "Events" }
                (events(t))
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::StepNode;
    use serde_json::json;

    #[test]
    fn the_page_marks_the_critical_path_and_escapes_what_it_shows() {
        let ev = [
            json!({"event": "run_started", "operation": "up", "at_ms": 0}),
            json!({"event": "step_observed", "step": "a", "at_ms": 10}),
            json!({"event": "step_progress", "step": "a", "message": "<script>x</script>", "at_ms": 20}),
            json!({"event": "step_ready", "step": "a", "outcome": "created", "duration": 30, "at_ms": 30}),
            json!({"event": "run_finished", "status": "succeeded", "at_ms": 31}),
        ];
        let nodes = [StepNode {
            id: "a".into(),
            kind: "k".into(),
            deps: vec![],
        }];
        let t = Timeline::build("e", 1, &ev, &nodes, &Default::default());
        let h = html(&t);
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains(r#"<tr class="critical" data-step="a">"#), "{h}");
        assert!(h.contains("critical path</span>"));
        assert!(!h.contains("<script>"), "escaped");
        assert!(h.contains("&lt;script&gt;"));
        assert!(
            !h.contains("http://") && !h.contains("https://"),
            "nothing fetched"
        );
    }
}
