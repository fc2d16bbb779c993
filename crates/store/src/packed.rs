//! Packed history: the old part of the log kept in blocks instead of sled keys per event.
//!
//! Why: sled 0.34 rebuilds its page table at every open, at a cost (time and memory) that grows
//! with the number of its pages, and a leaf page holds at most 16 keys. Three keys per event
//! (log entry, stream index, event id) made a 10M-event log take ~15 s and ~1.3 GB to open
//! (docs/performance.md). Packing moves every event older than the newest
//! `Options::unpacked_tail_events` into blocks, so the number of keys grows with the tail, not
//! with history:
//!
//! | prefix | key                                        | value                                  |
//! |--------|--------------------------------------------|----------------------------------------|
//! | `L`    | first position u64                         | [`LOG_BLOCK_EVENTS`] envelopes, in order |
//! | `S`    | its first entry: stream id, NUL, version   | sorted stream-index entries → position |
//! | `E`    | its first entry: event id (16 bytes)       | sorted event ids → position            |
//! | `m`    | `packed`                                   | the last packed position               |
//!
//! Nothing about an event changes: its position, stream, version, id and envelope bytes are the
//! same, and every read of the store answers as before. Log blocks are aligned (block `n` holds
//! positions `n·16+1 ..= n·16+16`), so the block of a position is one point read. An index block
//! map partitions its key space in order: a block's key is its first entry, and a key belongs to
//! the block with the greatest block key not above it (like the leaves of a B-tree whose leaves
//! are sled values: 16 stream-index entries, 128 event ids).
//!
//! A pack step moves whole log blocks in one sled batch: it inserts the log blocks, merges the
//! index entries into their blocks, removes the per-event keys and advances `packed`. sled
//! applies a batch whole or not at all, also across a crash, so a step lost in a crash leaves the
//! per-event keys and simply runs again. Steps run on the writer thread (when it has nothing
//! else to do), so the writer never races them.
//!
//! Readers on other threads can: a step may remove a per-event key between two reads of one
//! lookup. sled applies a batch atomically with respect to each single read, and a step only
//! ever moves entries from per-event keys into blocks, so every lookup reads the per-event keys
//! first and the blocks second: an entry moved in between is in the blocks by then. Results of
//! the two reads are merged by key.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope;
use crate::error::{from_sled, Result, StoreError};
use crate::keys;

pub(crate) const LOG_BLOCK: u8 = b'L';
pub(crate) const STREAM_BLOCK: u8 = b'S';
pub(crate) const EVENT_ID_BLOCK: u8 = b'E';
/// Meta key holding the last packed position (u64 big-endian); absent: nothing packed.
pub(crate) const META_PACKED: &[u8] = b"mpacked";

/// Events per log block. Every packed position is in a full block. Sizes are chosen so that a
/// sled leaf (up to 17 values before it splits) of blocks of events up to ~450 bytes stays
/// under sled's blob threshold (128 KiB, a quarter of a segment): a larger leaf is written as a
/// file of its own, which the store must fsync (`writer::Durability`), measured at 645 files
/// and over a second of fsyncs at open for 1M events with 64-event blocks.
pub const LOG_BLOCK_EVENTS: u64 = 16;
/// Most entries of a stream-index block; a fuller one is split evenly. Small, because stream
/// ids need not arrive in order (a contact's phone number, a provider's message id): an entry
/// landing inside an existing block rewrites that block, so this bounds the write
/// amplification of a pack step (measured on events whose streams are named at random: 8.5 KB
/// on disk per event with 128, 4.6 KB with 32, against 2.1 KB unpacked; docs/performance.md).
const STREAM_BLOCK_MAX_ENTRIES: usize = 16;
/// Most entries of an event-id block. Event ids are UUIDv7 (time-ordered), so new entries land
/// at the end of the map and a step rewrites about one block: larger blocks cost little.
const EVENT_ID_BLOCK_MAX_ENTRIES: usize = 128;
/// Format byte leading every block value (the blocks' own schema version).
const BLOCK_FORMAT: u8 = 1;

#[derive(Serialize, Deserialize)]
struct LogBlockV1 {
    envelopes: Vec<Vec<u8>>,
}

/// An index block's entries: key → value (a position, for the log's indexes), sorted by key.
pub(crate) type Entries<V = u64> = Vec<(Vec<u8>, V)>;

/// An index block. Generic over the entry's value so that `crate::packed_keys` keeps its key
/// records in the same kind of block; with `u64` values it encodes exactly as the blocks written
/// before it was generic.
#[derive(Serialize, Deserialize)]
struct IndexBlockV1<V> {
    entries: Vec<(Vec<u8>, V)>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![BLOCK_FORMAT];
    // Invariant: postcard cannot fail to serialize these plain structs into a Vec.
    out.extend(postcard::to_allocvec(value).expect("postcard encodes a block"));
    out
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&BLOCK_FORMAT, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

/// An index block's stored value.
pub(crate) fn encode_index_block<V: Serialize>(entries: Vec<(Vec<u8>, V)>) -> Vec<u8> {
    encode(&IndexBlockV1 { entries })
}

/// The first position of the log block holding `position` (≥ 1).
pub(crate) fn log_block_first(position: u64) -> u64 {
    (position - 1) / LOG_BLOCK_EVENTS * LOG_BLOCK_EVENTS + 1
}

pub(crate) fn log_block_key(first: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = LOG_BLOCK;
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

pub(crate) fn block_key(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(prefix);
    out.extend_from_slice(key);
    out
}

/// A stream-index entry's key inside an `S` block: the `s` key without its prefix byte.
fn stream_entry(stream: &str, version: u64) -> Vec<u8> {
    let mut key = keys::stream(stream, version);
    key.remove(0);
    key
}

/// Reads of the log and its indexes that see per-event keys and packed blocks alike.
pub(crate) struct History<'a> {
    pub db: &'a sled::Db,
    pub path: &'a Path,
}

impl<'a> History<'a> {
    pub(crate) fn new(db: &'a sled::Db, path: &'a Path) -> Self {
        History { db, path }
    }

    fn sled(&self, error: sled::Error) -> StoreError {
        from_sled(error, self.path)
    }

    pub(crate) fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.to_path_buf(),
            detail,
        }
    }

    /// The last packed position recorded on disk (0: nothing packed).
    pub(crate) fn packed_position(&self) -> Result<u64> {
        match self.db.get(META_PACKED).map_err(|e| self.sled(e))? {
            None => Ok(0),
            Some(value) => {
                keys::be_u64(&value).ok_or_else(|| self.corrupt("bad packed-position value".into()))
            }
        }
    }

    /// The envelopes of the log block holding `position`, with the block's first position.
    pub(crate) fn log_block(&self, position: u64) -> Result<Option<(u64, Vec<Vec<u8>>)>> {
        let first = log_block_first(position);
        let Some(value) = self
            .db
            .get(log_block_key(first))
            .map_err(|e| self.sled(e))?
        else {
            return Ok(None);
        };
        let block: LogBlockV1 = decode(&value)
            .ok_or_else(|| self.corrupt(format!("undecodable log block at {first}")))?;
        if block.envelopes.len() as u64 != LOG_BLOCK_EVENTS {
            return Err(self.corrupt(format!(
                "log block at {first} holds {} envelopes",
                block.envelopes.len()
            )));
        }
        Ok(Some((first, block.envelopes)))
    }

    /// The stored envelope at `position`: its per-event key, else its block.
    pub(crate) fn entry(&self, position: u64) -> Result<Option<Vec<u8>>> {
        self.entry_cached(position, &mut None)
    }

    /// [`History::entry`], keeping the last block it decoded in `cache`: a read of several
    /// positions (a stream's events) decodes each block once, not once per event.
    pub(crate) fn entry_cached(
        &self,
        position: u64,
        cache: &mut Option<(u64, Vec<Vec<u8>>)>,
    ) -> Result<Option<Vec<u8>>> {
        if let Some((first, envelopes)) = cache {
            if let Some(bytes) = position
                .checked_sub(*first)
                .and_then(|at| envelopes.get(at as usize))
            {
                return Ok(Some(bytes.clone()));
            }
        }
        if let Some(value) = self.db.get(keys::log(position)).map_err(|e| self.sled(e))? {
            return Ok(Some(value.to_vec()));
        }
        let Some((first, envelopes)) = self.log_block(position)? else {
            return Ok(None);
        };
        let bytes = envelopes[(position - first) as usize].clone();
        *cache = Some((first, envelopes));
        Ok(Some(bytes))
    }

    /// The position of `stream`'s event `version`, if there is one.
    pub(crate) fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>> {
        if let Some(value) = self
            .db
            .get(keys::stream(stream, version))
            .map_err(|e| self.sled(e))?
        {
            return keys::be_u64(&value)
                .map(Some)
                .ok_or_else(|| self.corrupt(format!("bad stream index value for {stream}")));
        }
        self.index_get(STREAM_BLOCK, &stream_entry(stream, version))
    }

    /// The position of the event with id `id`, if there is one.
    pub(crate) fn event_position(&self, id: Uuid) -> Result<Option<u64>> {
        if let Some(value) = self.db.get(keys::event_id(id)).map_err(|e| self.sled(e))? {
            return keys::be_u64(&value)
                .map(Some)
                .ok_or_else(|| self.corrupt(format!("bad event id index value for {id}")));
        }
        self.index_get(EVENT_ID_BLOCK, id.as_bytes())
    }

    /// `stream`'s newest (version, position) with a position ≤ `head`, if any.
    pub(crate) fn stream_head(&self, stream: &str, head: u64) -> Result<Option<(u64, u64)>> {
        for item in self.db.range(keys::stream_range(stream)).rev() {
            let (key, value) = item.map_err(|e| self.sled(e))?;
            let position = keys::be_u64(&value)
                .ok_or_else(|| self.corrupt(format!("bad stream index value for {stream}")))?;
            let version = keys::stream_key_version(&key)
                .ok_or_else(|| self.corrupt(format!("bad stream index key for {stream}")))?;
            if position <= head {
                return Ok(Some((version, position)));
            }
        }
        // Packed entries are older than every per-event one, and always durable.
        let last = self.index_last(
            STREAM_BLOCK,
            &stream_entry(stream, 0),
            &stream_entry(stream, u64::MAX),
        )?;
        last.map(|(key, position)| {
            keys::stream_key_version(&key)
                .map(|version| (version, position))
                .ok_or_else(|| self.corrupt(format!("bad packed stream entry for {stream}")))
        })
        .transpose()
    }

    /// `stream`'s versions `from..from + count` (fewer at its end) → positions, as stored (the
    /// caller checks contiguity and the head). `packing_began`: whether anything may be in
    /// blocks, asked after the per-event keys were read (the blocks are not read when nothing
    /// may be; asked before, a step landing in between would go unseen).
    pub(crate) fn stream_positions(
        &self,
        stream: &str,
        from: u64,
        count: usize,
        packing_began: impl Fn() -> bool,
    ) -> Result<BTreeMap<u64, u64>> {
        let mut found = BTreeMap::new();
        if count == 0 {
            return Ok(found);
        }
        let from = from.max(1);
        let to = from.saturating_add(count as u64 - 1);
        // Per-event keys first (see the module documentation), then the blocks.
        for item in self
            .db
            .range(keys::stream(stream, from)..=keys::stream(stream, to))
        {
            let (key, value) = item.map_err(|e| self.sled(e))?;
            let version = keys::stream_key_version(&key)
                .ok_or_else(|| self.corrupt(format!("bad stream index key for {stream}")))?;
            let position = keys::be_u64(&value)
                .ok_or_else(|| self.corrupt(format!("bad stream index value for {stream}")))?;
            found.insert(version, position);
        }
        // Fewer than asked: the stream ends, or older versions are packed, or a pack step moved
        // some of them while the scan ran (they are in the blocks now).
        if found.len() < count && packing_began() {
            let packed = self.index_range(
                STREAM_BLOCK,
                &stream_entry(stream, from),
                &stream_entry(stream, to),
                count,
            )?;
            for (key, position) in packed {
                let version = keys::stream_key_version(&key)
                    .ok_or_else(|| self.corrupt(format!("bad packed stream entry for {stream}")))?;
                found.entry(version).or_insert(position);
            }
        }
        Ok(found)
    }

    /// The block of index `prefix` that would hold `key`: the greatest block key ≤ it.
    pub(crate) fn index_block_at<V: DeserializeOwned>(
        &self,
        prefix: u8,
        key: &[u8],
    ) -> Result<Option<(sled::IVec, Entries<V>)>> {
        let bound = block_key(prefix, key);
        let Some(item) = self.db.range(..=bound).next_back() else {
            return Ok(None);
        };
        let (block_key, value) = item.map_err(|e| self.sled(e))?;
        if block_key.first() != Some(&prefix) {
            return Ok(None);
        }
        let entries = self.decode_index_block(&block_key, &value)?;
        Ok(Some((block_key, entries)))
    }

    pub(crate) fn decode_index_block<V: DeserializeOwned>(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<Entries<V>> {
        let block: IndexBlockV1<V> = decode(value).ok_or_else(|| {
            self.corrupt(format!(
                "undecodable index block {}",
                String::from_utf8_lossy(key)
            ))
        })?;
        match block.entries.first() {
            Some((first, _)) if first[..] == key[1..] => Ok(block.entries),
            _ => Err(self.corrupt(format!(
                "index block {} does not start with its key",
                String::from_utf8_lossy(key)
            ))),
        }
    }

    pub(crate) fn index_get<V: DeserializeOwned>(
        &self,
        prefix: u8,
        key: &[u8],
    ) -> Result<Option<V>> {
        let Some((_, mut entries)) = self.index_block_at::<V>(prefix, key)? else {
            return Ok(None);
        };
        Ok(entries
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()
            .map(|at| entries.swap_remove(at).1))
    }

    /// The greatest entry with a key in `lo..=hi`.
    fn index_last(&self, prefix: u8, lo: &[u8], hi: &[u8]) -> Result<Option<(Vec<u8>, u64)>> {
        // The block holding `hi` starts at or below it, so it holds the greatest entry ≤ `hi`.
        let Some((_, entries)) = self.index_block_at(prefix, hi)? else {
            return Ok(None);
        };
        Ok(entries
            .into_iter()
            .rev()
            .find(|(k, _)| k.as_slice() <= hi)
            .filter(|(k, _)| k.as_slice() >= lo))
    }

    /// Up to `limit` entries with a key in `lo..=hi`, in key order.
    fn index_range(
        &self,
        prefix: u8,
        lo: &[u8],
        hi: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut out = Vec::new();
        let take = |entries: Vec<(Vec<u8>, u64)>, out: &mut Vec<(Vec<u8>, u64)>| {
            for (key, position) in entries {
                if out.len() >= limit || key.as_slice() > hi {
                    return;
                }
                if key.as_slice() >= lo {
                    out.push((key, position));
                }
            }
        };
        let start = block_key(prefix, lo);
        if let Some((_, entries)) = self.index_block_at(prefix, lo)? {
            take(entries, &mut out);
        }
        let range = (
            Bound::Excluded(start),
            Bound::Included(block_key(prefix, hi)),
        );
        for item in self.db.range::<Vec<u8>, _>(range) {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(|e| self.sled(e))?;
            take(self.decode_index_block(&key, &value)?, &mut out);
        }
        Ok(out)
    }

    /// The key of the first block of index `prefix` above `after` (or the first at all).
    pub(crate) fn next_block_key(
        &self,
        prefix: u8,
        after: Option<&[u8]>,
    ) -> Result<Option<sled::IVec>> {
        let lower = match after {
            Some(key) => Bound::Excluded(key.to_vec()),
            None => Bound::Included(vec![prefix]),
        };
        let upper = Bound::Excluded(vec![prefix + 1]);
        match self.db.range::<Vec<u8>, _>((lower, upper)).next() {
            None => Ok(None),
            Some(item) => Ok(Some(item.map_err(|e| self.sled(e))?.0)),
        }
    }

    /// Writes into `batch` the blocks of index `prefix` with `new` (sorted by key, unique)
    /// merged in. Each block touched is read once and rewritten once, split evenly when it
    /// outgrows `max_entries`. `resolve` decides a key both in a block and in `new`: it returns
    /// the value to keep, or an error.
    pub(crate) fn index_merge<V: Serialize + DeserializeOwned + Clone>(
        &self,
        prefix: u8,
        new: &[(Vec<u8>, V)],
        max_entries: usize,
        batch: &mut sled::Batch,
        resolve: impl Fn(&[u8], V, &V) -> Result<V>,
    ) -> Result<()> {
        let mut at = 0;
        while at < new.len() {
            let (existing, next) = match self.index_block_at::<V>(prefix, &new[at].0)? {
                Some((key, entries)) => {
                    let next = self.next_block_key(prefix, Some(&key))?;
                    (entries, next)
                }
                None => (Vec::new(), self.next_block_key(prefix, None)?),
            };
            // This block takes the new entries below the next block's key.
            let end = match &next {
                None => new.len(),
                Some(next) => {
                    at + new[at..].partition_point(|(key, _)| key.as_slice() < &next[1..])
                }
            };
            // Invariant: the block holding new[at] starts at or below it, and the next block's
            // key is above it, so at least new[at] lands here.
            assert!(end > at, "an index merge makes progress");
            let merged = merge_sorted(existing, &new[at..end], &resolve)?;
            let pieces = merged.len().div_ceil(max_entries);
            let size = merged.len().div_ceil(pieces);
            for piece in merged.chunks(size) {
                batch.insert(
                    block_key(prefix, &piece[0].0),
                    encode_index_block(piece.to_vec()),
                );
            }
            at = end;
        }
        Ok(())
    }

    /// [`History::index_merge`]'s `resolve` for the log's indexes: an entry is written once, so
    /// the same key at two positions is corruption, never a silent overwrite.
    fn same_position(&self, key: &[u8], stored: u64, new: &u64) -> Result<u64> {
        if stored != *new {
            return Err(self.corrupt(format!(
                "packing: index entry {} is at {stored} and at {new}",
                String::from_utf8_lossy(key),
            )));
        }
        Ok(stored)
    }
}

/// `existing` and `new` (both sorted by key) as one sorted list; `resolve` decides a key in both.
fn merge_sorted<V: Clone>(
    existing: Vec<(Vec<u8>, V)>,
    new: &[(Vec<u8>, V)],
    resolve: &impl Fn(&[u8], V, &V) -> Result<V>,
) -> Result<Vec<(Vec<u8>, V)>> {
    let mut merged = Vec::with_capacity(existing.len() + new.len());
    let mut old = existing.into_iter().peekable();
    for (key, value) in new {
        while let Some(next) = old.next_if(|(stored, _)| stored < key) {
            merged.push(next);
        }
        let value = match old.next_if(|(stored, _)| stored == key) {
            Some((_, stored)) => resolve(key, stored, value)?,
            None => value.clone(),
        };
        merged.push((key.clone(), value));
    }
    merged.extend(old);
    Ok(merged)
}

/// One pack step, ready to apply.
pub(crate) struct PackStep {
    pub batch: sled::Batch,
    /// The last position it packs.
    pub upto: u64,
    /// Per-event keys it removes (three per event).
    pub removed_keys: u64,
}

/// Plans the packing of the blocks after `packed` up to `limit` (at most `max_blocks` of them):
/// `None` when no whole block fits. Checks every event it moves against its index entries.
pub(crate) fn plan_step(
    history: &History<'_>,
    packed: u64,
    limit: u64,
    max_blocks: u64,
) -> Result<Option<PackStep>> {
    let blocks = (limit.saturating_sub(packed) / LOG_BLOCK_EVENTS).min(max_blocks.max(1));
    if blocks == 0 {
        return Ok(None);
    }
    let from = packed + 1;
    let upto = packed + blocks * LOG_BLOCK_EVENTS;
    let mut batch = sled::Batch::default();
    let mut streams = Vec::with_capacity((upto - packed) as usize);
    let mut ids = Vec::with_capacity((upto - packed) as usize);
    let mut envelopes = Vec::with_capacity(LOG_BLOCK_EVENTS as usize);
    let mut expected = from;
    for item in history.db.range(keys::log(from)..=keys::log(upto)) {
        let (key, value) = item.map_err(|e| history.sled(e))?;
        let position = keys::log_position(&key)
            .filter(|position| *position == expected)
            .ok_or_else(|| history.corrupt(format!("packing: position {expected} is missing")))?;
        let event = envelope::decode(&value)
            .map_err(|e| history.corrupt(format!("packing: position {position}: {e}")))?;
        if event.position != position {
            return Err(history.corrupt(format!(
                "packing: log key {position} holds the envelope of {}",
                event.position
            )));
        }
        let stream_key = keys::stream(event.stream.as_str(), event.version);
        let id_key = keys::event_id(event.event_id);
        for (index_key, what) in [(&stream_key[..], "stream index"), (&id_key[..], "event id")] {
            let stored = history.db.get(index_key).map_err(|e| history.sled(e))?;
            if stored.as_deref().and_then(keys::be_u64) != Some(position) {
                return Err(history.corrupt(format!(
                    "packing: the {what} disagrees with position {position}"
                )));
            }
            batch.remove(index_key);
        }
        streams.push((stream_key[1..].to_vec(), position));
        ids.push((event.event_id.as_bytes().to_vec(), position));
        batch.remove(&key[..]);
        envelopes.push(value.to_vec());
        if envelopes.len() as u64 == LOG_BLOCK_EVENTS {
            let first = position + 1 - LOG_BLOCK_EVENTS;
            let block = LogBlockV1 {
                envelopes: std::mem::take(&mut envelopes),
            };
            batch.insert(&log_block_key(first)[..], encode(&block));
        }
        expected += 1;
    }
    if expected <= upto {
        return Err(history.corrupt(format!("packing: position {expected} is missing")));
    }
    streams.sort_unstable();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(history.corrupt(format!(
            "packing: event id {} at {} and {}",
            Uuid::from_slice(&pair[0].0).unwrap_or_default(),
            pair[0].1,
            pair[1].1
        )));
    }
    let same = |key: &[u8], stored, new: &u64| history.same_position(key, stored, new);
    history.index_merge(
        STREAM_BLOCK,
        &streams,
        STREAM_BLOCK_MAX_ENTRIES,
        &mut batch,
        same,
    )?;
    history.index_merge(
        EVENT_ID_BLOCK,
        &ids,
        EVENT_ID_BLOCK_MAX_ENTRIES,
        &mut batch,
        same,
    )?;
    batch.insert(META_PACKED, &upto.to_be_bytes()[..]);
    Ok(Some(PackStep {
        batch,
        upto,
        removed_keys: 3 * (upto - packed),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sled database in a temporary folder (also used by `crate::packed_keys`' tests).
    pub(crate) fn db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().expect("dir");
        let db = sled::Config::new()
            .path(dir.path())
            .temporary(true)
            .open()
            .expect("db");
        (dir, db)
    }

    fn entries(range: std::ops::Range<u32>, step: u32) -> Vec<(Vec<u8>, u64)> {
        range
            .step_by(step as usize)
            .map(|n| (n.to_be_bytes().to_vec(), u64::from(n) * 10))
            .collect()
    }

    fn merge(history: &History<'_>, new: &[(Vec<u8>, u64)]) {
        let mut batch = sled::Batch::default();
        history
            .index_merge(
                STREAM_BLOCK,
                new,
                STREAM_BLOCK_MAX_ENTRIES,
                &mut batch,
                |key, stored, new| history.same_position(key, stored, new),
            )
            .expect("merge");
        history.db.apply_batch(batch).expect("apply");
    }

    fn all(history: &History<'_>) -> Vec<(Vec<u8>, u64)> {
        history
            .index_range(STREAM_BLOCK, &[], &[0xff; 8], usize::MAX)
            .expect("range")
    }

    #[test]
    fn merges_interleaved_batches_into_sorted_bounded_blocks() {
        let (_dir, db) = db();
        let history = History::new(&db, Path::new("test"));
        // Every third key, then the rest in two rounds that fall inside existing blocks,
        // before the first one and after the last.
        merge(&history, &entries(100..2_000, 3));
        merge(
            &history,
            &entries(0..3_000, 3)
                .into_iter()
                .skip(1)
                .step_by(2)
                .collect::<Vec<_>>(),
        );
        let mut expected = entries(100..2_000, 3);
        for entry in entries(0..3_000, 3).into_iter().skip(1).step_by(2) {
            if !expected.contains(&entry) {
                expected.push(entry);
            }
        }
        expected.sort();
        merge(&history, &entries(101..2_000, 3));
        expected.extend(entries(101..2_000, 3));
        expected.sort();
        assert_eq!(all(&history), expected);
        for item in db.scan_prefix([STREAM_BLOCK]) {
            let (key, value) = item.expect("block");
            let block = history
                .decode_index_block::<u64>(&key, &value)
                .expect("decodes");
            assert!(block.len() <= STREAM_BLOCK_MAX_ENTRIES);
            assert!(block.windows(2).all(|pair| pair[0].0 < pair[1].0));
        }
        for (key, position) in &expected {
            assert_eq!(
                history.index_get(STREAM_BLOCK, key).expect("get"),
                Some(*position)
            );
        }
        assert_eq!(
            history
                .index_get::<u64>(STREAM_BLOCK, &2u32.to_be_bytes())
                .expect("get"),
            None
        );
        let lo = 500u32.to_be_bytes();
        let hi = 600u32.to_be_bytes();
        let last = history
            .index_last(STREAM_BLOCK, &lo, &hi)
            .expect("last")
            .expect("some");
        let want = expected
            .iter()
            .rev()
            .find(|(k, _)| k.as_slice() <= &hi[..])
            .expect("present");
        assert_eq!(&last, want);
        let some = history
            .index_range(STREAM_BLOCK, &lo, &hi, 5)
            .expect("range");
        let want: Vec<_> = expected
            .iter()
            .filter(|(k, _)| k.as_slice() >= &lo[..] && k.as_slice() <= &hi[..])
            .take(5)
            .cloned()
            .collect();
        assert_eq!(some, want);
    }

    #[test]
    fn a_conflicting_entry_is_corruption_not_a_silent_overwrite() {
        let (_dir, db) = db();
        let history = History::new(&db, Path::new("test"));
        merge(&history, &entries(0..10, 1));
        let mut batch = sled::Batch::default();
        let conflicting = vec![(5u32.to_be_bytes().to_vec(), 7)];
        let error = history
            .index_merge(
                STREAM_BLOCK,
                &conflicting,
                STREAM_BLOCK_MAX_ENTRIES,
                &mut batch,
                |key, stored, new| history.same_position(key, stored, new),
            )
            .expect_err("refused");
        assert!(error.to_string().contains("is at 50 and at 7"), "{error}");
    }

    #[test]
    fn log_blocks_are_aligned() {
        assert_eq!(log_block_first(1), 1);
        assert_eq!(log_block_first(16), 1);
        assert_eq!(log_block_first(17), 17);
        assert_eq!(log_block_first(32), 17);
    }
}
