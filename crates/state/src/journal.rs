//! The journal in S3: numbered segment objects, one per group commit, each written with
//! `If-None-Match: *`, so an append is one request and a second writer that somehow believes it
//! holds the environment is fenced out at its first append. Compaction writes one snapshot
//! object (`journal/snapshot-N.jsonl`, the state up to segment N) in a single request and only
//! then deletes the segments it covers; a reader takes the newest snapshot and the segments
//! after it, so a compaction cut at any point loses nothing.
//!
//! The engine's journal runs unchanged on a local file rebuilt from the store when the
//! environment is opened; every group commit is mirrored to a new segment after the local write
//! and before any caller is told it is durable.

use crate::client::{call_error, is_not_found, is_precondition_failed, StoreError};
use crate::store::EnvStore;
use aws_sdk_s3::primitives::ByteStream;
use std::path::Path;
use wbstack_engine::{
    fold_records, header_line, snapshot_lines, Journal, JournalOptions, JournalState, MirrorFn,
};

const SEGMENT: &str = "journal/segment-";
const SNAPSHOT: &str = "journal/snapshot-";
const EXT: &str = ".jsonl";

/// Compact on open when more segments than this follow the last snapshot.
pub const COMPACT_AFTER_SEGMENTS: usize = 256;

fn segment_key(seq: u64) -> String {
    format!("{SEGMENT}{seq:012}{EXT}")
}

fn snapshot_key(seq: u64) -> String {
    format!("{SNAPSHOT}{seq:012}{EXT}")
}

/// What the journal prefix holds.
#[derive(Debug, Default)]
struct Listing {
    snapshots: Vec<u64>,
    segments: Vec<u64>,
}

impl Listing {
    fn snapshot(&self) -> Option<u64> {
        self.snapshots.iter().copied().max()
    }

    /// The segments after the newest snapshot, in order.
    fn live(&self) -> Vec<u64> {
        let after = self.snapshot().unwrap_or(0);
        self.segments
            .iter()
            .copied()
            .filter(|s| *s > after)
            .collect()
    }

    fn last(&self) -> u64 {
        self.live().last().copied().or(self.snapshot()).unwrap_or(0)
    }
}

fn seq_of(name: &str, kind: &str) -> Option<u64> {
    name.strip_prefix(kind)?.strip_suffix(EXT)?.parse().ok()
}

/// The journal's whole content as bytes, and what it was read from.
pub struct Read {
    pub bytes: Vec<u8>,
    pub state: JournalState,
    listing: Listing,
}

impl EnvStore {
    async fn listing(&self) -> Result<Listing, StoreError> {
        let prefix = self.key("");
        let mut l = Listing::default();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(self.key("journal/"))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error(&self.location(), "listing the journal", &e))?;
            for o in page.contents() {
                let Some(name) = o.key().and_then(|k| k.strip_prefix(&prefix)) else {
                    continue;
                };
                if let Some(s) = seq_of(name, SEGMENT) {
                    l.segments.push(s);
                } else if let Some(s) = seq_of(name, SNAPSHOT) {
                    l.snapshots.push(s);
                }
            }
        }
        l.segments.sort_unstable();
        Ok(l)
    }

    /// Reads the journal: the newest snapshot (or a header) and every segment after it. A
    /// segment deleted under the reader by a compaction makes it read again.
    pub async fn read_journal(&self) -> Result<Read, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.read_once().await {
                Ok(Some(r)) => return Ok(r),
                Ok(None) if tries < 5 => continue,
                Ok(None) => {
                    return Err(StoreError::Call {
                        at: self.location(),
                        what: "reading the journal".into(),
                        message: "segments kept disappearing while being read".into(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn read_once(&self) -> Result<Option<Read>, StoreError> {
        let listing = self.listing().await?;
        let mut bytes = match listing.snapshot() {
            Some(s) => match self.get(&snapshot_key(s)).await? {
                Some((b, _)) => b,
                None => return Ok(None),
            },
            None => header_line(),
        };
        let first = listing.snapshot().unwrap_or(0) + 1;
        for (expected, seq) in (first..).zip(listing.live()) {
            if seq != expected {
                return Err(StoreError::Gap {
                    at: self.location(),
                    after: expected - 1,
                    found: seq,
                });
            }
            match self.get(&segment_key(seq)).await? {
                Some((b, _)) => bytes.extend(b),
                None => return Ok(None),
            }
        }
        let label = Path::new(&self.location()).join("journal");
        let (state, _, _) = fold_records(&label, &bytes)?;
        Ok(Some(Read {
            bytes,
            state,
            listing,
        }))
    }

    /// The state the journal holds; an absent journal is an empty state.
    pub async fn read_state(&self) -> Result<JournalState, StoreError> {
        Ok(self.read_journal().await?.state)
    }

    /// Opens the journal for writing (hold the environment's lock): rebuilds it in a local
    /// directory, compacts the remote one if it has grown long, and mirrors every later group
    /// commit to a new segment. Keep the returned directory for as long as the journal is used.
    pub async fn open_journal(
        &self,
    ) -> Result<(Journal, JournalState, tempfile::TempDir), StoreError> {
        let read = self.read_journal().await?;
        let last = read.listing.last();
        let local_bytes = if read.listing.live().len() > COMPACT_AFTER_SEGMENTS {
            self.compact(&read.state, last, &read.listing).await?;
            snapshot_lines(&read.state)?
        } else {
            read.bytes
        };
        let dir = tempfile::Builder::new()
            .prefix("wbstack-state-")
            .tempdir()
            .map_err(|e| self.local_error(e))?;
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, &local_bytes).map_err(|e| self.local_error(e))?;
        let opts = JournalOptions {
            mirror: Some(self.mirror(last + 1)),
            ..JournalOptions::default()
        };
        let (journal, state) = Journal::open_with(&path, opts)?;
        Ok((journal, state, dir))
    }

    fn local_error(&self, e: std::io::Error) -> StoreError {
        StoreError::Call {
            at: self.location(),
            what: "keeping a local copy of the journal".into(),
            message: e.to_string(),
        }
    }

    /// Replaces the segments up to `last` by one snapshot of `state`.
    async fn compact(
        &self,
        state: &JournalState,
        last: u64,
        listing: &Listing,
    ) -> Result<(), StoreError> {
        self.put_new(&snapshot_key(last), snapshot_lines(state)?, last)
            .await?;
        let old: Vec<String> = listing
            .segments
            .iter()
            .filter(|s| **s <= last)
            .map(|s| segment_key(*s))
            .chain(
                listing
                    .snapshots
                    .iter()
                    .filter(|s| **s < last)
                    .map(|s| snapshot_key(*s)),
            )
            .collect();
        for key in old {
            // Best effort: a segment left behind is covered by the snapshot and never read.
            if let Err(e) = self
                .client
                .delete_object()
                .bucket(self.bucket())
                .key(self.key(&key))
                .send()
                .await
            {
                tracing::debug!(key, error = %call_error(&self.location(), "deleting", &e), "compaction left a segment");
            }
        }
        tracing::debug!(at = %self.location(), upto = last, "journal compacted");
        Ok(())
    }

    /// Writes a key that must not exist yet. Finding it already there with the same bytes is
    /// success (a retried request whose first attempt landed); other bytes mean another writer.
    async fn put_new(&self, rest: &str, bytes: Vec<u8>, seq: u64) -> Result<(), StoreError> {
        let res = self
            .put(rest)
            .if_none_match("*")
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_precondition_failed(&e) => match self.get(rest).await? {
                Some((there, _)) if there == bytes => Ok(()),
                _ => Err(StoreError::Fenced {
                    at: self.location(),
                    seq,
                }),
            },
            Err(e) if is_not_found(&e) => Err(StoreError::NoBucket {
                bucket: self.bucket().to_owned(),
            }),
            Err(e) => Err(call_error(&self.location(), &format!("writing {rest}"), &e)),
        }
    }

    /// The engine's mirror: each group commit becomes segment `next`, then `next + 1`, ...
    /// It runs on the journal's writer thread (a blocking one), so it waits on the runtime.
    fn mirror(&self, next: u64) -> MirrorFn {
        let store = self.clone();
        let handle = tokio::runtime::Handle::current();
        let mut seq = next;
        Box::new(move |buf: &[u8]| {
            handle
                .block_on(store.put_new(&segment_key(seq), buf.to_vec(), seq))
                .map_err(std::io::Error::other)?;
            seq += 1;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_sequence_and_parse_back() {
        assert_eq!(segment_key(7), "journal/segment-000000000007.jsonl");
        assert_eq!(seq_of(&segment_key(123), SEGMENT), Some(123));
        assert_eq!(seq_of(&snapshot_key(5), SNAPSHOT), Some(5));
        assert_eq!(seq_of("journal/other.jsonl", SEGMENT), None);
        assert!(segment_key(9) < segment_key(10));
    }

    #[test]
    fn the_live_segments_follow_the_newest_snapshot() {
        let l = Listing {
            snapshots: vec![3, 8],
            segments: vec![1, 2, 3, 7, 8, 9, 10],
        };
        assert_eq!(l.snapshot(), Some(8));
        assert_eq!(l.live(), vec![9, 10]);
        assert_eq!(l.last(), 10);
        let only_snapshot = Listing {
            snapshots: vec![4],
            segments: vec![2],
        };
        assert_eq!(only_snapshot.last(), 4);
        assert_eq!(Listing::default().last(), 0);
    }
}
