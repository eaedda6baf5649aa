//! Renders engine events: progress bars on a terminal, plain lines otherwise, JSON lines with
//! `--output json`.

use crate::cli::OutputFormat;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wbstack_engine::{Event, EventSink, StepId};

/// Subscribes the reporter for `format` to `sink`.
pub fn attach(sink: &EventSink, format: OutputFormat) {
    match format {
        OutputFormat::Json => {
            // Each event says when it happened: wall-clock milliseconds since the epoch, and
            // milliseconds since the command started reporting.
            let start = Instant::now();
            sink.subscribe(move |e| {
                let Ok(mut v) = serde_json::to_value(e) else {
                    return;
                };
                // Stamped while holding stdout, so the lines are in the order of their times.
                let mut out = std::io::stdout().lock();
                v["at_ms"] = serde_json::json!(wbstack_engine::now_ms());
                v["elapsed_ms"] = serde_json::json!(start.elapsed().as_millis() as u64);
                let _ = writeln!(out, "{v}");
            })
        }
        OutputFormat::Text if std::io::stderr().is_terminal() && !crate::logging::active() => {
            let bars = Arc::new(Mutex::new(Bars {
                multi: MultiProgress::new(),
                bars: HashMap::new(),
            }));
            sink.subscribe(move |e| bars.lock().unwrap_or_else(|p| p.into_inner()).on(e));
        }
        OutputFormat::Text => {
            let start = Instant::now();
            let last: Mutex<HashMap<StepId, String>> = Mutex::new(HashMap::new());
            sink.subscribe(move |e| {
                // A progress message repeated as-is says nothing new.
                if let Event::StepProgress { step, message } = e {
                    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                    if last.get(step) == Some(message) {
                        return;
                    }
                    last.insert(step.clone(), message.clone());
                }
                if let Some(line) = plain(e) {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{:>7.1}s  {line}", start.elapsed().as_secs_f64());
                }
            });
        }
    }
}

/// A line for an event, or None for events too chatty for logs.
fn plain(e: &Event) -> Option<String> {
    Some(match e {
        Event::RunStarted { run, operation, steps, resumed } => format!("{operation:?} {run} started: {steps} steps{}", if *resumed { " (resuming)" } else { "" }).to_lowercase(),
        Event::StepObserved { step, state } => format!("{step}: observed {state}"),
        Event::StepChanging { step, changes } => format!("{step}: changing {}", changes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")),
        Event::StepApplying { step, action, attempt } => format!("{step}: {action}{}", if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() }),
        Event::StepWaiting { step, elapsed, last } => match last {
            Some(l) => format!("{step}: waiting ({} s): {l}", elapsed.as_secs()),
            None => format!("{step}: waiting ({} s)", elapsed.as_secs()),
        },
        Event::StepProgress { step, message } => format!("{step}: {message}"),
        Event::StepReady { step, outcome, duration } => format!("{step}: ready, {outcome} in {:.1} s", duration.as_secs_f64()),
        Event::StepRetrying { step, attempt, delay, error } => format!("{step}: retrying (attempt {attempt}) in {:.1} s: {error}", delay.as_secs_f64()),
        Event::StepFailed { step, error } => format!("{step}: FAILED: {error}"),
        Event::StepSkipped { step, because } => format!("{step}: skipped ({because} failed)"),
        Event::StepRollingBack { step } => format!("{step}: rolling back"),
        Event::StepRolledBack { step } => format!("{step}: rolled back"),
        Event::StepDestroying { step } => format!("{step}: destroying"),
        Event::StepDestroyed { step } => format!("{step}: destroyed"),
        Event::StepKept { step, reason } => format!("{step}: kept ({reason})"),
        Event::HookStarted { step, hook } => format!("{step}: hook `{hook}` started"),
        Event::HookOutput { step, hook, line, .. } => format!("{step}: [{hook}] {line}"),
        Event::HookFinished { step, hook, success } => format!("{step}: hook `{hook}` {}", if *success { "succeeded" } else { "failed" }),
        Event::RunFinished { status, stats, .. } => format!(
            "finished: {status:?} ({} created, {} updated, {} unchanged, {} adopted, {} destroyed, {} failed) in {:.1} s",
            stats.created, stats.updated, stats.unchanged, stats.adopted, stats.destroyed, stats.failed, stats.elapsed_ms as f64 / 1000.0
        ),
    })
}

struct Bars {
    multi: MultiProgress,
    bars: HashMap<StepId, ProgressBar>,
}

impl Bars {
    fn bar(&mut self, step: &StepId) -> ProgressBar {
        self.bars
            .entry(step.clone())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(step.to_string());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            })
            .clone()
    }

    fn done(&mut self, step: &StepId, msg: String) {
        let b = self.bar(step);
        b.set_style(
            ProgressStyle::with_template("  {prefix:<24} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.finish_with_message(msg);
        self.bars.remove(step);
    }

    fn on(&mut self, e: &Event) {
        match e {
            Event::StepApplying { step, action, .. } => {
                self.bar(step).set_message(format!("{action}"))
            }
            Event::StepWaiting { step, last, .. } => self
                .bar(step)
                .set_message(last.clone().unwrap_or_else(|| "waiting".into())),
            Event::StepProgress { step, message } => self.bar(step).set_message(message.clone()),
            Event::StepRetrying { step, error, .. } => {
                self.bar(step).set_message(format!("retrying: {error}"))
            }
            Event::StepDestroying { step } | Event::StepRollingBack { step } => {
                self.bar(step).set_message("deleting")
            }
            Event::StepReady {
                step,
                outcome,
                duration,
            } => self.done(step, format!("{outcome} ({:.1}s)", duration.as_secs_f64())),
            Event::StepFailed { step, error } => self.done(step, format!("FAILED: {error}")),
            Event::StepDestroyed { step } => self.done(step, "destroyed".into()),
            Event::StepRolledBack { step } => self.done(step, "rolled back".into()),
            Event::StepKept { step, reason } => self.done(step, format!("kept ({reason})")),
            Event::StepSkipped { step, because } => {
                self.done(step, format!("skipped ({because} failed)"))
            }
            Event::HookOutput { step, line, .. } => self.bar(step).set_message(line.clone()),
            _ => {}
        }
    }
}
