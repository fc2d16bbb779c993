//! Packed idempotency keys: de-duplication keys kept in blocks instead of one sled key each.
//!
//! Why: sled 0.34 keeps, for every page of its tree, a page-table entry, its cache bookkeeping
//! and its segment accounting in memory, cached or not, and a leaf page holds at most 16 keys.
//! One `k` key per webhook, kept for the de-duplication horizon (30 days by default), made the
//! hub's memory grow with every webhook it ever took within that horizon: measured by a heap
//! profile of the soak, it was what still grew once everything of wagate's own was flat
//! (docs/performance.md, "Soak"). In blocks of [`KEY_BLOCK_MAX_ENTRIES`], a leaf holds up to
//! 16 × 16 keys.
//!
//! | prefix | key                           | value                                               |
//! |--------|-------------------------------|-----------------------------------------------------|
//! | `K`    | its first entry's key         | sorted (key, expiry, first position, result) of ≤ 16 keys |
//!
//! The blocks partition the key space like the log's index blocks (`crate::packed`): a key
//! belongs to the block with the greatest block key not above it.
//!
//! **What moves.** A record once it is durable, with its stored answer if that is at most
//! [`KEY_BLOCK_RESULT_MAX_BYTES`] (a webhook's de-duplication key has none, a send's
//! `Idempotency-Key` a digest and a message id or a refusal): the writer walks the `k` keys
//! between batches and moves each such key into its block in one sled batch (remove the key,
//! rewrite the block), which sled applies whole or not at all, across a crash too. A key still
//! syncing is left for the next walk; an expired one is dropped instead of moved. A record with
//! a larger answer (the store accepts up to 16 KiB) stays a key of its own, swept as before, so
//! a block stays small enough for sled to keep a leaf of them inline (below its 128 KiB blob
//! threshold).
//!
//! **Reads** look at the `k` key first and the block second, as for the log's indexes: a move
//! only takes keys out of `k` into blocks, so a key moved between the two reads is in its block
//! by the second. A key is recorded again only once expired, under `k`; a walk that later moves
//! it replaces the expired entry in its block (the newer record wins).
//!
//! **Sweep.** The writer's sweep also walks the blocks in slices and rewrites a block without
//! its expired entries (re-keyed when its first entry went, removed when none is left).

use serde::{Deserialize, Serialize};

use crate::error::{from_sled, Result};
use crate::keys;
use crate::packed::{block_key, encode_index_block, History};
use crate::record::IdempotencyRecord;
use crate::writer::decode_key_record;

pub(crate) const KEY_BLOCK: u8 = b'K';
/// Most entries of a key block; a fuller one is split evenly. Keys arrive in random order (a
/// provider's message id), so every moved key rewrites the block it lands in: small blocks keep
/// that rewrite small (a webhook's entry is ~70 bytes), while 16 × 16 keys per sled leaf is
/// already 16 times fewer pages than one key each.
pub(crate) const KEY_BLOCK_MAX_ENTRIES: usize = 16;
/// Largest stored answer a record may carry into a block. With keys of at most 512 bytes
/// (`MAX_IDEMPOTENCY_KEY_BYTES`), a block stays under 17 KiB.
pub(crate) const KEY_BLOCK_RESULT_MAX_BYTES: usize = 512;

/// A packed key's record: an [`IdempotencyRecord`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackedKeyV1 {
    expires_at_ms: i64,
    first_position: Option<u64>,
    result: Vec<u8>,
}

impl PackedKeyV1 {
    fn record(self) -> IdempotencyRecord {
        IdempotencyRecord {
            first_position: self.first_position,
            expires_at_ms: self.expires_at_ms,
            result: self.result,
        }
    }
}

impl History<'_> {
    /// The packed record of idempotency key `key`, if a block holds one (expired or not).
    pub(crate) fn packed_key(&self, key: &[u8]) -> Result<Option<IdempotencyRecord>> {
        Ok(self
            .index_get::<PackedKeyV1>(KEY_BLOCK, key)?
            .map(PackedKeyV1::record))
    }

    /// The record of idempotency key `key` as sled holds it: its `k` key, else its block.
    pub(crate) fn key_record(&self, key: &[u8]) -> Result<Option<IdempotencyRecord>> {
        match self
            .db
            .get(keys::idempotency(key))
            .map_err(|e| from_sled(e, self.path))?
        {
            Some(value) => decode_key_record(&value)
                .map(Some)
                .ok_or_else(|| self.corrupt("undecodable idempotency key record".into())),
            None => self.packed_key(key),
        }
    }
}

/// One walk step over the `k` keys, ready to apply.
pub(crate) struct KeyStep {
    pub batch: sled::Batch,
    /// Keys moved into blocks.
    pub moved: usize,
    /// Expired keys removed instead.
    pub dropped: usize,
    /// Keys left because their batch was not durable yet.
    pub pending: usize,
    /// Where the walk resumes; `None`: it reached the last key.
    pub resume_at: Option<Vec<u8>>,
}

/// Plans one step of the walk over the `k` keys from `from` (the first key when `None`):
/// examines at most `max_examined` of them and moves those due (see the module documentation)
/// into their blocks. `pending`: whether a key's batch is not durable yet.
/// (A key with a larger answer stays; it is read by every walk, which is why walks are spaced
/// out by [`crate::Options::key_walk_after_keys`].)
pub(crate) fn plan_key_step(
    history: &History<'_>,
    from: Option<&[u8]>,
    now_ms: i64,
    max_examined: usize,
    pending: impl Fn(&[u8]) -> bool,
) -> Result<KeyStep> {
    let start = from.map_or_else(|| vec![keys::IDEMPOTENCY], <[u8]>::to_vec);
    let mut batch = sled::Batch::default();
    let mut moving: Vec<(Vec<u8>, PackedKeyV1)> = Vec::new();
    let mut dropped = 0;
    let mut left_pending = 0;
    let mut resume_at = None;
    let walk = history.db.range(start..vec![keys::IDEMPOTENCY + 1]);
    for (examined, item) in walk.enumerate() {
        let (stored_key, value) = item.map_err(|e| from_sled(e, history.path))?;
        if examined >= max_examined {
            resume_at = Some(stored_key.to_vec());
            break;
        }
        let key = &stored_key[1..];
        if pending(key) {
            left_pending += 1;
            continue;
        }
        let record = decode_key_record(&value)
            .ok_or_else(|| history.corrupt("undecodable idempotency key record".into()))?;
        if record.expires_at_ms <= now_ms {
            batch.remove(&stored_key[..]);
            dropped += 1;
        } else if record.result.len() <= KEY_BLOCK_RESULT_MAX_BYTES {
            batch.remove(&stored_key[..]);
            moving.push((
                key.to_vec(),
                PackedKeyV1 {
                    expires_at_ms: record.expires_at_ms,
                    first_position: record.first_position,
                    result: record.result,
                },
            ));
        }
    }
    // The walk is in key order, so `moving` is sorted and unique. The `k` record is the newer.
    history.index_merge(
        KEY_BLOCK,
        &moving,
        KEY_BLOCK_MAX_ENTRIES,
        &mut batch,
        |_, _, newer: &PackedKeyV1| Ok(newer.clone()),
    )?;
    Ok(KeyStep {
        batch,
        moved: moving.len(),
        dropped,
        pending: left_pending,
        resume_at,
    })
}

/// Reads every key block: each must decode and start with its key, and the keys must ascend
/// strictly across all of them (the partition every lookup relies on). Returns the entries.
pub(crate) fn check_key_blocks(history: &History<'_>) -> Result<u64> {
    let mut last: Option<Vec<u8>> = None;
    let mut entries = 0;
    for item in history.db.scan_prefix([KEY_BLOCK]) {
        let (stored_key, value) = item.map_err(|e| from_sled(e, history.path))?;
        for (key, _) in history.decode_index_block::<PackedKeyV1>(&stored_key, &value)? {
            if last.as_ref().is_some_and(|last| *last >= key) {
                return Err(history.corrupt(format!(
                    "key block {} is out of order",
                    String::from_utf8_lossy(&stored_key[1..])
                )));
            }
            last = Some(key);
            entries += 1;
        }
    }
    Ok(entries)
}

/// What one slice of the block sweep did.
pub(crate) struct BlockSweep {
    /// Expired entries removed.
    pub removed: usize,
    /// The block the next slice starts at; `None`: the sweep passed the last block.
    pub resume_at: Option<Vec<u8>>,
}

/// Adds to `batch` the blocks from `from` (the first block when `None`) rewritten without their
/// entries expired at `now_ms`, until about `max_entries` entries were examined.
pub(crate) fn sweep_key_blocks(
    history: &History<'_>,
    from: Option<&[u8]>,
    now_ms: i64,
    max_entries: usize,
    batch: &mut sled::Batch,
) -> Result<BlockSweep> {
    let start = from.map_or_else(|| vec![KEY_BLOCK], <[u8]>::to_vec);
    let mut examined = 0;
    let mut removed = 0;
    let mut resume_at = None;
    for item in history.db.range(start..vec![KEY_BLOCK + 1]) {
        let (stored_key, value) = item.map_err(|e| from_sled(e, history.path))?;
        if examined >= max_entries {
            resume_at = Some(stored_key.to_vec());
            break;
        }
        let entries = history.decode_index_block::<PackedKeyV1>(&stored_key, &value)?;
        examined += entries.len();
        let before = entries.len();
        let kept: Vec<_> = entries
            .into_iter()
            .filter(|(_, entry)| entry.expires_at_ms > now_ms)
            .collect();
        if kept.len() == before {
            continue;
        }
        removed += before - kept.len();
        match kept.first() {
            // Still starts with the same key: rewritten in place.
            Some((first, _)) if first[..] == stored_key[1..] => {}
            // Re-keyed by its new first entry (or gone): the keys between belong to the block
            // before it now, which is where a later move puts them.
            _ => batch.remove(&stored_key[..]),
        }
        if let Some((first, _)) = kept.first() {
            batch.insert(block_key(KEY_BLOCK, first), encode_index_block(kept));
        }
    }
    Ok(BlockSweep { removed, resume_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::packed::tests::db;
    use crate::writer::encode_key_record;

    fn record(expires_at_ms: i64, result: &[u8]) -> IdempotencyRecord {
        IdempotencyRecord {
            first_position: Some(7),
            expires_at_ms,
            result: result.to_vec(),
        }
    }

    fn put(db: &sled::Db, key: &[u8], record: &IdempotencyRecord) {
        db.insert(keys::idempotency(key), encode_key_record(record))
            .expect("insert");
    }

    fn step(history: &History<'_>, pending: &[&[u8]]) -> (usize, usize) {
        let mut from: Option<Vec<u8>> = None;
        let (mut moved, mut dropped) = (0, 0);
        loop {
            let step = plan_key_step(history, from.as_deref(), 1_000, 7, |key| {
                pending.contains(&key)
            })
            .expect("plan");
            history.db.apply_batch(step.batch).expect("apply");
            moved += step.moved;
            dropped += step.dropped;
            match step.resume_at {
                Some(at) => from = Some(at),
                None => return (moved, dropped),
            }
        }
    }

    fn k_keys(db: &sled::Db) -> Vec<Vec<u8>> {
        db.scan_prefix([keys::IDEMPOTENCY])
            .keys()
            .map(|key| key.expect("key")[1..].to_vec())
            .collect()
    }

    #[test]
    fn a_walk_moves_durable_answerless_keys_and_keeps_the_rest() {
        let (_dir, db) = db();
        let history = History::new(&db, Path::new("test"));
        let names: Vec<Vec<u8>> = (0..100u32)
            .map(|n| format!("twilio:SM{:08x}", n.wrapping_mul(2_654_435_761)).into_bytes())
            .collect();
        for name in &names {
            put(&db, name, &record(5_000, b""));
        }
        put(&db, b"cmd:small-answer", &record(5_000, b"{\"id\":1}"));
        let large = vec![7u8; KEY_BLOCK_RESULT_MAX_BYTES + 1];
        put(&db, b"cmd:large-answer", &record(5_000, &large));
        put(&db, b"expired", &record(1_000, b""));
        put(&db, b"still-syncing", &record(5_000, b""));
        let (moved, dropped) = step(&history, &[b"still-syncing"]);
        assert_eq!((moved, dropped), (101, 1));
        assert_eq!(
            k_keys(&db),
            vec![b"cmd:large-answer".to_vec(), b"still-syncing".to_vec()]
        );
        for name in &names {
            assert_eq!(
                history.key_record(name).expect("read"),
                Some(record(5_000, b"")),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        assert_eq!(history.key_record(b"expired").expect("read"), None);
        assert_eq!(history.key_record(b"absent").expect("read"), None);
        assert_eq!(
            history.packed_key(b"cmd:small-answer").expect("read"),
            Some(record(5_000, b"{\"id\":1}"))
        );
        assert_eq!(
            history.key_record(b"cmd:large-answer").expect("read"),
            Some(record(5_000, &large))
        );
        let blocks = db.scan_prefix([KEY_BLOCK]).count();
        assert!((7..=13).contains(&blocks), "{blocks} blocks for 100 keys");
    }

    #[test]
    fn a_key_recorded_again_shadows_its_block_entry_and_replaces_it_when_moved() {
        let (_dir, db) = db();
        let history = History::new(&db, Path::new("test"));
        put(&db, b"a", &record(900, b""));
        // Moved at 500, before it expired.
        let step = plan_key_step(&history, None, 500, 10, |_| false).expect("plan");
        db.apply_batch(step.batch).expect("apply");
        assert_eq!(
            history.packed_key(b"a").expect("read"),
            Some(record(900, b""))
        );
        // Expired, recorded again with a later expiry: `k` answers first.
        put(&db, b"a", &record(9_000, b""));
        assert_eq!(
            history.key_record(b"a").expect("read"),
            Some(record(9_000, b""))
        );
        step_all(&history);
        assert!(k_keys(&db).is_empty());
        assert_eq!(
            history.key_record(b"a").expect("read"),
            Some(record(9_000, b""))
        );
    }

    fn step_all(history: &History<'_>) {
        step(history, &[]);
    }

    #[test]
    fn the_check_reads_every_block_and_refuses_overlapping_ones() {
        let (_dir, db) = db();
        let history = History::new(&db, Path::new("test"));
        for n in 0..50u32 {
            put(&db, &n.to_be_bytes(), &record(5_000, b""));
        }
        step_all(&history);
        assert_eq!(check_key_blocks(&history).expect("check"), 50);
        // A block whose entries reach past the next block's first key.
        let entry = PackedKeyV1 {
            expires_at_ms: 5_000,
            first_position: None,
            result: Vec::new(),
        };
        let overlapping = vec![
            (0u32.to_be_bytes().to_vec(), entry.clone()),
            (49u32.to_be_bytes().to_vec(), entry),
        ];
        db.insert(
            block_key(KEY_BLOCK, &0u32.to_be_bytes()),
            encode_index_block(overlapping),
        )
        .expect("insert");
        let error = check_key_blocks(&history).expect_err("refused");
        assert!(error.to_string().contains("out of order"), "{error}");
    }

    #[test]
    fn the_block_sweep_removes_expired_entries_rekeys_and_drops_blocks() {
        let (_dir, db) = db();
        let history = History::new(&db, Path::new("test"));
        // 40 keys: even ones expire at 1,500, odd ones at 5,000.
        for n in 0..40u32 {
            let expiry = if n % 2 == 0 { 1_500 } else { 5_000 };
            put(&db, &n.to_be_bytes(), &record(expiry, b""));
        }
        step_all(&history);
        let mut batch = sled::Batch::default();
        let mut from = None;
        let mut removed = 0;
        loop {
            let swept =
                sweep_key_blocks(&history, from.as_deref(), 2_000, 5, &mut batch).expect("sweep");
            removed += swept.removed;
            match swept.resume_at {
                Some(at) => from = Some(at),
                None => break,
            }
        }
        db.apply_batch(batch).expect("apply");
        assert_eq!(removed, 20);
        for n in 0..40u32 {
            let want = (n % 2 == 1).then(|| record(5_000, b""));
            assert_eq!(history.key_record(&n.to_be_bytes()).expect("read"), want);
        }
        // Every block starts with its key (decode checks it) and holds only live entries.
        for item in db.scan_prefix([KEY_BLOCK]) {
            let (key, value) = item.expect("block");
            let entries = history
                .decode_index_block::<PackedKeyV1>(&key, &value)
                .expect("decodes");
            assert!(entries.iter().all(|(_, entry)| entry.expires_at_ms > 2_000));
        }
        // Everything expired: no block is left.
        let mut batch = sled::Batch::default();
        let swept =
            sweep_key_blocks(&history, None, 10_000, usize::MAX, &mut batch).expect("sweep");
        db.apply_batch(batch).expect("apply");
        assert_eq!(swept.removed, 20);
        assert_eq!(db.scan_prefix([KEY_BLOCK]).count(), 0);
    }
}
