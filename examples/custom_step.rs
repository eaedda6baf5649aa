//! A step kind of your own, run by the wbstack engine: a file with given contents.
//!
//! The engine observes it, creates it when absent, records every change in a journal, does
//! nothing on a converged re-run, and removes it on teardown.
//!
//! ```sh
//! cargo run --example custom_step
//! ```

use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use wbstack_engine::{
    Action, CancellationToken, DownOptions, Engine, EngineConfig, EventSink, Fingerprint, Graph,
    Journal, Observation, Outputs, Step, StepCtx, StepError, StepSpec,
};

/// A file that should exist with these contents.
struct FileStep {
    path: PathBuf,
    contents: String,
}

impl FileStep {
    /// The contents with a dependency's output filled in, as any step reads one.
    fn text(&self, ctx: &StepCtx) -> String {
        let dir = ctx.dep_str("dir", "path").unwrap_or_default();
        self.contents.replace("{dir}", dir)
    }
}

fn io(e: std::io::Error) -> StepError {
    StepError::permanent(e.to_string())
}

#[async_trait]
impl Step for FileStep {
    fn kind(&self) -> &str {
        "example.file"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&(&self.path, &self.contents))
    }
    fn supports_update(&self) -> bool {
        true
    }
    async fn observe(&self, ctx: &StepCtx) -> Result<Observation, StepError> {
        Ok(match std::fs::read_to_string(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observation::Absent,
            Err(e) => return Err(io(e)),
            // The file carries no fingerprint of its own; a changed content is drift.
            Ok(c) => Observation::Ready {
                outputs: [("path".to_owned(), self.path.display().to_string().into())].into(),
                fingerprint: (c != self.text(ctx)).then(|| Fingerprint::from_hex("changed")),
            },
        })
    }
    async fn apply(&self, ctx: &StepCtx, _action: Action) -> Result<(), StepError> {
        std::fs::write(&self.path, self.text(ctx)).map_err(io)
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}

/// A directory, which the file depends on.
struct DirStep(PathBuf);

#[async_trait]
impl Step for DirStep {
    fn kind(&self) -> &str {
        "example.dir"
    }
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.0)
    }
    async fn observe(&self, _ctx: &StepCtx) -> Result<Observation, StepError> {
        let out: Outputs = [("path".to_owned(), self.0.display().to_string().into())].into();
        Ok(if self.0.is_dir() {
            Observation::ready(out)
        } else {
            Observation::Absent
        })
    }
    async fn apply(&self, _ctx: &StepCtx, _action: Action) -> Result<(), StepError> {
        std::fs::create_dir_all(&self.0).map_err(io)
    }
    async fn destroy(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        std::fs::remove_dir(&self.0).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(io(e)),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let dir = work.path().join("site");
    let graph = Graph::new(vec![
        StepSpec::new("dir", &[], Arc::new(DirStep(dir.clone()))),
        StepSpec::new(
            "index",
            &["dir"],
            Arc::new(FileStep {
                path: dir.join("index.txt"),
                contents: "hello from {dir}\n".into(),
            }),
        ),
    ])?;
    let journal_path = work.path().join("journal.jsonl");
    let engine = Engine::new(EngineConfig::default(), EventSink::new());
    for pass in ["first up", "second up (converged)"] {
        let (journal, state) = Journal::open(&journal_path)?;
        let r = engine
            .up(&graph, &journal, state, CancellationToken::new())
            .await?;
        println!(
            "{pass}: {:?}, {} created, {} unchanged, {} mutating calls",
            r.status, r.stats.created, r.stats.unchanged, r.stats.apply_calls
        );
    }
    println!("{}", std::fs::read_to_string(dir.join("index.txt"))?.trim());
    let (journal, state) = Journal::open(&journal_path)?;
    let r = engine
        .down(
            &graph,
            &journal,
            state,
            DownOptions::default(),
            CancellationToken::new(),
        )
        .await?;
    println!(
        "down: {:?}, {} destroyed; the directory is gone: {}",
        r.status,
        r.stats.destroyed,
        !dir.exists()
    );
    Ok(())
}
