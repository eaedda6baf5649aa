//! One walk over the DAG, used forwards (`up`: a step starts once its dependencies are ready)
//! and backwards (teardown and rollback: a step goes once its dependents are gone). Tasks run
//! concurrently; a panicking task is a failed step, not a dead engine; nothing new starts once
//! the run is cancelled or a result says to stop.

use crate::graph::Graph;
use crate::run::RunCtx;
use futures::FutureExt;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The neighbours of a step one way or the other.
type Edges = fn(&Graph, usize) -> &[usize];

/// Which way the walk goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Dependencies first.
    Forward,
    /// Dependents first.
    Backward,
}

/// What a walk needs to know of a task's result.
pub(crate) trait Walked: Send + 'static {
    /// Whether the steps waiting on this one may start.
    fn advances(&self) -> bool;
    /// Whether nothing new may start anywhere (a failure `up` stops at, a journal error).
    fn halts(&self) -> bool;
    /// The result of a task that panicked after `elapsed`.
    fn panicked(elapsed: Duration) -> Self;
}

/// Runs `start(i, done)` for each step `i` of `set` once every step of `set` it waits for has
/// finished and advanced; `done` holds the results so far. Returns every result, by step.
pub(crate) async fn walk<T, F, Fut>(
    cx: &Arc<RunCtx>,
    set: &[usize],
    dir: Direction,
    mut start: F,
) -> BTreeMap<usize, T>
where
    T: Walked,
    F: FnMut(usize, &BTreeMap<usize, T>) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let g = &cx.graph;
    let (waits_on, releases) = match dir {
        Direction::Forward => (Graph::deps_of as Edges, Graph::dependents_of as Edges),
        Direction::Backward => (Graph::dependents_of as Edges, Graph::deps_of as Edges),
    };
    let in_set: HashSet<usize> = set.iter().copied().collect();
    let mut blockers: BTreeMap<usize, usize> = set
        .iter()
        .map(|&i| {
            (
                i,
                waits_on(g, i).iter().filter(|d| in_set.contains(d)).count(),
            )
        })
        .collect();
    let mut done: BTreeMap<usize, T> = BTreeMap::new();
    let mut tasks: JoinSet<(usize, T)> = JoinSet::new();
    let mut spawn = |tasks: &mut JoinSet<(usize, T)>, i: usize, done: &BTreeMap<usize, T>| {
        let fut = start(i, done);
        tasks.spawn(async move {
            let t0 = Instant::now();
            let r = AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| T::panicked(t0.elapsed()));
            (i, r)
        });
    };
    if !cx.cancel.is_cancelled() {
        for (&i, _) in blockers.iter().filter(|(_, n)| **n == 0) {
            spawn(&mut tasks, i, &done);
        }
    }
    let mut halted = false;
    while let Some(joined) = tasks.join_next().await {
        let Ok((i, r)) = joined else { continue };
        halted |= r.halts();
        let advances = r.advances();
        done.insert(i, r);
        if !advances || halted {
            continue;
        }
        for &n in releases(g, i) {
            if let Some(b) = blockers.get_mut(&n) {
                *b -= 1;
                if *b == 0 && !cx.cancel.is_cancelled() {
                    spawn(&mut tasks, n, &done);
                }
            }
        }
    }
    done
}
