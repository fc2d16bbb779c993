//! Key layout of the single sled tree. Every key starts with a one-byte prefix naming its kind;
//! integers are big-endian so that byte order is numeric order.
//!
//! | prefix | key                              | value                                   |
//! |--------|----------------------------------|-----------------------------------------|
//! | `l`    | position u64                     | envelope (see `envelope`)               |
//! | `s`    | stream id, NUL, version u64      | position u64                            |
//! | `e`    | event id (16 bytes)              | position u64                            |
//! | `k`    | idempotency key                  | postcard `KeyRecordV1`                  |
//! | `c`    | checkpoint name                  | position u64                            |
//! | `m`    | meta name                        | meta value                              |
//! | `L`, `S`, `E` | packed blocks of the above three (older events; `crate::packed`) |  |
//! | `K`    | packed blocks of durable `k` records without a result (`crate::packed_keys`) | |
//!
//! Format 1 (wave 1 until issue 12) also wrote, per append, `h` + stream id → (version, position
//! of that event) and, per idempotency key, `x` + expiry (sortable i64) + key → empty (a sweep
//! index). sled costs roughly 500 bytes on disk per key written whatever its size
//! (docs/performance.md), so format 2 writes neither: a stream's head is its last `s` key, and the
//! sweep walks the `k` keys themselves. Opening a format-1 database deletes its `h` keys (they
//! would go stale) and marks it format 2; its `x` keys stay and are swept as before.

use uuid::Uuid;

pub(crate) const LOG: u8 = b'l';
pub(crate) const STREAM: u8 = b's';
/// Format 1 only: stream heads, deleted when such a database is opened.
pub(crate) const HEAD: u8 = b'h';
pub(crate) const EVENT_ID: u8 = b'e';
pub(crate) const IDEMPOTENCY: u8 = b'k';
/// Format 1 only: the sweep index of the keys written before format 2.
pub(crate) const EXPIRY: u8 = b'x';
pub(crate) const CHECKPOINT: u8 = b'c';

/// Meta key holding the magic bytes and on-disk format version.
pub(crate) const META_MAGIC: &[u8] = b"mmagic";
/// Value of [`META_MAGIC`]: the magic text followed by the format version (u32 big-endian).
pub(crate) const MAGIC: &[u8] = b"wagate-store\0";
/// The on-disk layout version this code writes (and migrates formats 1 to 3 to, on open):
/// format 3 plus packed idempotency keys (`crate::packed_keys`). A format-3 build must not open
/// it: it would not see the keys in blocks and would take a retried webhook as new.
pub(crate) const DISK_FORMAT: u32 = 4;
/// Format 3: format 2 plus packed events (`crate::packed`), every idempotency key a `k` key.
pub(crate) const DISK_FORMAT_PACKED_EVENTS: u32 = 3;
/// Format 2: one key per event and index entry, no packed blocks.
pub(crate) const DISK_FORMAT_UNPACKED: u32 = 2;
/// Wave 1's layout, with `h` and `x` keys; still opened (see the module comment).
pub(crate) const DISK_FORMAT_WITH_HEADS: u32 = 1;

pub(crate) fn magic_value() -> Vec<u8> {
    magic_value_of(DISK_FORMAT)
}

/// The magic key's value for on-disk format `format`.
pub(crate) fn magic_value_of(format: u32) -> Vec<u8> {
    let mut value = MAGIC.to_vec();
    value.extend_from_slice(&format.to_be_bytes());
    value
}

/// The stream-index range of a stream: its last key names its head (version and position).
pub(crate) fn stream_range(stream: &str) -> std::ops::RangeInclusive<Vec<u8>> {
    self::stream(stream, 0)..=self::stream(stream, u64::MAX)
}

pub(crate) fn log(position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = LOG;
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

/// Position encoded in a log key, if it is one.
pub(crate) fn log_position(key: &[u8]) -> Option<u64> {
    if key.len() != 9 || key[0] != LOG {
        return None;
    }
    be_u64(&key[1..])
}

pub(crate) fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 10);
    key.push(STREAM);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key
}

pub(crate) fn stream(stream: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The version at the end of a stream-index key.
pub(crate) fn stream_key_version(key: &[u8]) -> Option<u64> {
    key.len().checked_sub(8).and_then(|at| be_u64(&key[at..]))
}

pub(crate) fn event_id(id: Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = EVENT_ID;
    key[1..].copy_from_slice(id.as_bytes());
    key
}

pub(crate) fn idempotency(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(IDEMPOTENCY);
    out.extend_from_slice(key);
    out
}

/// Maps an i64 to a u64 whose big-endian bytes sort like the i64 (flip the sign bit).
pub(crate) fn sortable_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

pub(crate) fn expiry(expires_at_ms: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 9);
    out.push(EXPIRY);
    out.extend_from_slice(&sortable_i64(expires_at_ms).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// (expires_at_ms, key) from a sweep-index key.
pub(crate) fn parse_expiry(key: &[u8]) -> Option<(i64, &[u8])> {
    if key.len() < 9 || key[0] != EXPIRY {
        return None;
    }
    let sortable = be_u64(&key[1..9])?;
    Some(((sortable ^ (1 << 63)) as i64, &key[9..]))
}

pub(crate) fn checkpoint(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(CHECKPOINT);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ranges_of_prefix_ids_are_disjoint() {
        let short = stream("contact:+1234", u64::MAX);
        let long = stream("contact:+12345", 0);
        let short_prefix = stream_prefix("contact:+1234");
        assert!(!long.starts_with(&short_prefix));
        assert!(short < long);
    }

    #[test]
    fn expiry_keys_sort_by_time_including_negative() {
        let keys = [i64::MIN, -5, 0, 5, i64::MAX].map(|t| expiry(t, b"k"));
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parse_expiry(&keys[1]), Some((-5, &b"k"[..])));
    }

    #[test]
    fn log_keys_round_trip() {
        assert_eq!(log_position(&log(42)), Some(42));
        assert!(log(255) < log(256));
        assert_eq!(stream_key_version(&stream("a:b", 77)), Some(77));
    }
}
