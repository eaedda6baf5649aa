//! A run people can look at. [`Timeline::build`] turns the events a run recorded (each stamped
//! `at_ms`) and the plan's step graph into one line per step, made of segments (observe, apply,
//! wait, retry, destroy, rollback), and marks the critical path: the chain of steps, each
//! waiting on the one before, that ended last. [`html`] renders it as one self-contained page
//! (no script, no network), [`Timeline`] serializes as JSON.
//!
//! Everything shown comes from events and journaled outputs, which hold references, never
//! secret values.

mod html;
mod timeline;

pub use html::html;
pub use timeline::{Segment, SegmentKind, StepLine, StepNode, Timeline};
