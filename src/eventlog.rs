//! Every event of a run kept with the environment's state (`runs/run-N.events.jsonl`), stamped
//! and redacted like `--output json` prints them, for `wbstack report`. In a local state
//! directory each line is written as it comes, so a run cut off keeps what it recorded; in S3
//! the lines are saved in one object when the run ends.

use crate::exit::CliError;
use crate::state::{events_file, EnvState};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wbstack_engine::EventSink;

#[derive(Default)]
struct Inner {
    dir: Option<PathBuf>,
    file: Option<File>,
    run: Option<u64>,
    /// Kept for a state store without a local directory.
    lines: String,
}

pub struct EventLog(Arc<Mutex<Inner>>);

impl EventLog {
    /// Records every event `sink` sends from now on.
    pub fn attach(sink: &EventSink, at: &EnvState) -> EventLog {
        let inner = Arc::new(Mutex::new(Inner {
            dir: at.local_dir().map(PathBuf::from),
            ..Inner::default()
        }));
        let i = inner.clone();
        let start = Instant::now();
        sink.subscribe(move |e| {
            let Ok(mut v) = serde_json::to_value(e) else {
                return;
            };
            v["at_ms"] = serde_json::json!(wbstack_engine::now_ms());
            v["elapsed_ms"] = serde_json::json!(start.elapsed().as_millis() as u64);
            let line = wbstack_engine::redact(&v.to_string());
            let mut g = i.lock().unwrap_or_else(|p| p.into_inner());
            if v["event"] == "run_started" {
                g.run = v["run"].as_u64();
                g.file = match (&g.dir, g.run) {
                    (Some(d), Some(run)) => open(events_file(d, run)),
                    _ => None,
                };
            }
            let g = &mut *g;
            if let Some(f) = &mut g.file {
                let _ = writeln!(f, "{line}");
            } else if g.dir.is_none() {
                g.lines.push_str(&line);
                g.lines.push('\n');
            }
        });
        EventLog(inner)
    }

    /// Saves the lines where they were not written as they came.
    pub async fn save(&self, at: &EnvState) -> Result<(), CliError> {
        let (run, lines) = {
            let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
            (g.run, g.lines.clone())
        };
        match run {
            Some(run) if !lines.is_empty() => at.save_events(run, &lines).await,
            _ => Ok(()),
        }
    }
}

fn open(path: PathBuf) -> Option<File> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).ok()?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()
}
