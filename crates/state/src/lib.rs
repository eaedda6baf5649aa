//! wbstack's shared state store in S3 (`--state-dir s3://BUCKET/PREFIX`): a team's
//! environments, each under `PREFIX/ENV/` with its plan copy, its lease and its journal, with the
//! guarantees of the local journal: every intent durable (in S3) before its mutation, a crash at
//! any point resumable from any machine, one holder at a time. The bucket is the team's: wbstack
//! never creates or deletes it.

mod client;
mod inspect;
mod journal;
mod location;
mod lock;
mod store;

pub use client::{client, clients, StoreError};
pub use journal::{Read, COMPACT_AFTER_SEGMENTS};
pub use location::{BadUrl, S3Url};
pub use lock::{force_unlock, read_holder, S3Lock};
pub use store::{EnvStore, StateBucket};
