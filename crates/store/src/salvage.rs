//! Reading what can be saved from a damaged database: the log in position order up to the first
//! entry that is missing, out of place or undecodable. [`crate::Store::open`] refuses such a
//! database (its tail check fails); `wagate export --data` uses this read instead, to write the
//! good prefix and say where and why it stopped.
//!
//! Nothing is written: no magic key for an empty directory, no flush, no sync. The directory
//! must hold a wagate database of the format this build reads, and no process may hold it
//! (sled's lock).

use std::path::Path;

use crate::envelope;
use crate::error::{from_sled, Result, StoreError};
use crate::keys;
use crate::packed::History;
use crate::record::RecordedEvent;

/// Where a salvage read stopped before the end of the log, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvageStop {
    /// The first position that could not be read.
    pub position: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// How a salvage read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SalvageEnd {
    /// Every entry up to the end of the log (or to `to`) was read.
    Complete,
    /// The caller asked to stop.
    Stopped,
    /// A damaged entry: the events before it were handed over, none after.
    Damaged(SalvageStop),
}

/// Whether [`salvage`] should go on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SalvageFlow {
    Continue,
    Stop,
}

/// Hands the events of the stopped database at `path` from position `from` to `to` (inclusive)
/// to `each`, in order, stopping at the first damaged entry. An error is a database that cannot
/// be read at all (missing, foreign, in use); damage in the log is a [`SalvageEnd::Damaged`].
pub fn salvage(
    path: &Path,
    from: u64,
    to: Option<u64>,
    mut each: impl FnMut(RecordedEvent) -> SalvageFlow,
) -> Result<SalvageEnd> {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(16 * 1024 * 1024)
        .flush_every_ms(None)
        .open()
        .map_err(|e| from_sled(e, path))?;
    let magic = db.get(keys::META_MAGIC).map_err(|e| from_sled(e, path))?;
    // Formats 2 (never packed), 3 and 4 (key blocks, which salvage does not read) read alike
    // here; format 1 needs an open to migrate.
    let readable = [
        keys::DISK_FORMAT_UNPACKED,
        keys::DISK_FORMAT_PACKED_EVENTS,
        keys::DISK_FORMAT,
    ]
    .map(keys::magic_value_of);
    if !readable
        .iter()
        .any(|value| magic.as_deref() == Some(value.as_slice()))
    {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            detail: "no wagate magic key of the format this build reads".into(),
        });
    }
    let history = History::new(&db, path);
    let packed = history.packed_position()?;
    let from = from.max(1);
    let to = to.unwrap_or(u64::MAX);
    if from > to {
        return Ok(SalvageEnd::Complete);
    }
    let damaged =
        |position: u64, reason: String| Ok(SalvageEnd::Damaged(SalvageStop { position, reason }));
    // An export from a later position still needs the earlier ones to exist: a log that does not
    // start at 1 is damaged at its start.
    let mut expected = from;
    // The packed part first, block by block.
    while expected <= to.min(packed) {
        let block = match history.log_block(expected) {
            Ok(Some(block)) => block,
            Ok(None) => return damaged(expected, "its packed log block is missing".into()),
            Err(error) => return damaged(expected, format!("its packed log block: {error}")),
        };
        let (first, envelopes) = block;
        for (position, bytes) in (first..).zip(&envelopes) {
            if position < expected {
                continue;
            }
            if position > to {
                return Ok(SalvageEnd::Complete);
            }
            match check(position, bytes) {
                Ok(event) => {
                    if each(event) == SalvageFlow::Stop {
                        return Ok(SalvageEnd::Stopped);
                    }
                }
                Err(reason) => return damaged(position, reason),
            }
            expected = position + 1;
        }
    }
    if expected > to {
        return Ok(SalvageEnd::Complete);
    }
    for item in db.range(keys::log(expected)..=keys::log(to)) {
        let (key, value) = match item {
            Ok(entry) => entry,
            Err(error) => {
                return damaged(
                    expected,
                    format!("the database cannot read it: {}", from_sled(error, path)),
                )
            }
        };
        let Some(position) = keys::log_position(&key) else {
            return damaged(expected, "a log key that is not a position".into());
        };
        if position != expected {
            return damaged(
                expected,
                format!("missing from the log (the next entry is position {position})"),
            );
        }
        let event = match check(position, &value) {
            Ok(event) => event,
            Err(reason) => return damaged(position, reason),
        };
        if each(event) == SalvageFlow::Stop {
            return Ok(SalvageEnd::Stopped);
        }
        if position == u64::MAX {
            break;
        }
        expected = position + 1;
    }
    Ok(SalvageEnd::Complete)
}

/// The event stored for `position`, or what is wrong with it.
fn check(position: u64, bytes: &[u8]) -> std::result::Result<RecordedEvent, String> {
    let event =
        envelope::decode(bytes).map_err(|error| format!("undecodable envelope: {error}"))?;
    if event.position != position {
        return Err(format!(
            "the entry holds the envelope of position {}",
            event.position
        ));
    }
    Ok(event)
}

/// Test hook: replaces the stored envelope at `position` of the stopped database at `path` with
/// `bytes` (garbage, to test salvage and the open-time checks from crates that do not depend on
/// sled). Not stable API.
#[doc(hidden)]
pub fn overwrite_log_entry(path: &Path, position: u64, bytes: &[u8]) -> Result<()> {
    let db = sled::open(path).map_err(|e| from_sled(e, path))?;
    db.insert(keys::log(position), bytes)
        .map_err(|e| from_sled(e, path))?;
    db.flush().map_err(|e| from_sled(e, path))?;
    Ok(())
}
