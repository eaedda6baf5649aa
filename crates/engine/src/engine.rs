//! The engine: settings, an event sink, and the entry points `up` and `down`.

use crate::config::{DownOptions, EngineConfig, EngineError};
use crate::events::EventSink;
use crate::graph::Graph;
use crate::journal::{Journal, JournalState};
use crate::report::RunReport;
use crate::run::RunInput;
use tokio_util::sync::CancellationToken;

/// Runs step graphs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    config: EngineConfig,
    events: EventSink,
}

impl Engine {
    /// An engine with settings and an event sink.
    pub fn new(config: EngineConfig, events: EventSink) -> Self {
        Engine { config, events }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The event sink.
    pub fn events(&self) -> &EventSink {
        &self.events
    }

    fn input<'a>(
        &'a self,
        graph: &'a Graph,
        journal: &'a Journal,
        state: JournalState,
        cancel: CancellationToken,
    ) -> RunInput<'a> {
        RunInput {
            config: &self.config,
            events: &self.events,
            graph,
            journal,
            state,
            cancel,
        }
    }

    /// Brings every step of `graph` to Ready: observe, apply what is absent or changed, wait,
    /// record. Continues an unfinished run of the journal (that is what `resume` is).
    /// `cancel` is the signal token: when it fires no new step starts, in-flight mutating calls
    /// finish and are journaled, waits stop, and the run ends `Cancelled`.
    pub async fn up(
        &self,
        graph: &Graph,
        journal: &Journal,
        state: JournalState,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        crate::up::run(self.input(graph, journal, state, cancel)).await
    }

    /// Destroys what this environment owns (everything recorded, with `force`), dependents
    /// before their dependencies. Journaled, so an interrupted teardown resumes.
    pub async fn down(
        &self,
        graph: &Graph,
        journal: &Journal,
        state: JournalState,
        opts: DownOptions,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        crate::down::run(self.input(graph, journal, state, cancel), opts).await
    }
}
