//! Snapshot slots: derived state saved with the point of the log it reflects, so a reader can
//! start from there instead of from position 1.
//!
//! A slot is named (like a checkpoint) and holds one record: a position (a log position, or a
//! stream version for an aggregate's slot: the writer says which) and opaque bytes, plus an
//! index of key → value entries written atomically with it (the projection keeps its
//! provider-id → message lookup and its per-contact recent messages there, so they need not sit
//! in memory). Snapshots are never the truth: a missing or unreadable one means "replay from
//! the start", and every reader checks the version of the bytes it finds.
//!
//! On sled the slots live in their own tree (`snapshots`), written outside the log's writer
//! thread: a save is one sled batch on that tree, then `flush` and `fdatasync`, like a commit.
//!
//! | key                          | value                        |
//! |------------------------------|------------------------------|
//! | `v`, name                    | position u64 (BE), bytes     |
//! | `e`, name, NUL, entry key    | entry value                  |

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::{from_sled, Result, StoreError};
use crate::store::{Pending, Store};
use crate::writer::Durability;
use crate::MAX_CHECKPOINT_NAME_BYTES;

/// The sled tree of the snapshot slots.
const TREE: &str = "snapshots";
const STATE: u8 = b'v';
const ENTRY: u8 = b'e';

/// Saves are serialized: two saves of one slot finishing out of order would leave the older.
static SAVES: Mutex<()> = Mutex::new(());

/// A saved snapshot: the point it reflects and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub position: u64,
    pub bytes: Vec<u8>,
}

/// What a save writes, atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotSave {
    /// The log position (or stream version) the state reflects.
    pub position: u64,
    pub bytes: Vec<u8>,
    /// Index entries to write (`Some`) or remove (`None`) with it.
    pub entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Remove every index entry of the slot first: a state rebuilt from the log replaces the
    /// index whole (entries of the old one may reflect another position).
    pub replace_entries: bool,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CHECKPOINT_NAME_BYTES || name.contains('\0') {
        return Err(StoreError::InvalidRequest(format!(
            "snapshot name must be 1 to {MAX_CHECKPOINT_NAME_BYTES} bytes without NUL"
        )));
    }
    Ok(())
}

fn state_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(STATE);
    key.extend_from_slice(name.as_bytes());
    key
}

fn entry_prefix(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 2);
    key.push(ENTRY);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key
}

fn entry_key(name: &str, entry: &[u8]) -> Vec<u8> {
    let mut key = entry_prefix(name);
    key.extend_from_slice(entry);
    key
}

impl Store {
    fn snapshot_tree(&self) -> Result<sled::Tree> {
        let (db, path) = self.sled_db();
        db.open_tree(TREE).map_err(|e| from_sled(e, path))
    }

    /// The snapshot in slot `name`; `None` when there is none, or when its record is too short
    /// to hold a position (it is derived data: the reader rebuilds it).
    pub fn snapshot(&self, name: &str) -> Result<Option<Snapshot>> {
        check_name(name)?;
        let (_, path) = self.sled_db();
        let value = self
            .snapshot_tree()?
            .get(state_key(name))
            .map_err(|e| from_sled(e, path))?;
        Ok(value.and_then(|value| {
            let position = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
            Some(Snapshot {
                position,
                bytes: value[8..].to_vec(),
            })
        }))
    }

    /// Entry `key` of slot `name`'s index, as the last save left it.
    pub fn snapshot_entry(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_name(name)?;
        let (_, path) = self.sled_db();
        Ok(self
            .snapshot_tree()?
            .get(entry_key(name, key))
            .map_err(|e| from_sled(e, path))?
            .map(|value| value.to_vec()))
    }

    /// Durably replaces slot `name` (and writes its index entries) in one batch; answers once
    /// it is on disk. Runs on a thread of its own: a save can be large and must not hold up the
    /// log's writer or an async runtime.
    pub fn save_snapshot(&self, name: &str, save: SnapshotSave) -> Pending<()> {
        let (reply, receiver) = oneshot::channel();
        let result = match (check_name(name), self.refusal()) {
            (Err(error), _) | (Ok(()), Some(error)) => Err(error),
            (Ok(()), None) => {
                let store = self.clone();
                let name = name.to_owned();
                std::thread::Builder::new()
                    .name("wagate-snapshot".into())
                    .spawn(move || {
                        let result = store.write_snapshot(&name, save);
                        // Before answering: a caller that closes the store next must hold
                        // its last handle.
                        drop(store);
                        let _ = reply.send(result);
                    })
                    .map(|_| ())
                    .map_err(StoreError::from)
            }
        };
        match result {
            Ok(()) => Pending::from_receiver(receiver),
            Err(error) => {
                let (reply, receiver) = oneshot::channel();
                let _ = reply.send(Err(error));
                Pending::from_receiver(receiver)
            }
        }
    }

    fn write_snapshot(&self, name: &str, save: SnapshotSave) -> Result<()> {
        let _serialized = SAVES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (db, path) = self.sled_db();
        let sled_error = |e| from_sled(e, path);
        let tree = self.snapshot_tree()?;
        let mut batch = sled::Batch::default();
        if save.replace_entries {
            for key in tree.scan_prefix(entry_prefix(name)).keys() {
                batch.remove(key.map_err(sled_error)?);
            }
        }
        for (key, value) in &save.entries {
            let key = entry_key(name, key);
            match value {
                Some(value) => batch.insert(key, value.as_slice()),
                None => batch.remove(key),
            }
        }
        let mut value = Vec::with_capacity(8 + save.bytes.len());
        value.extend_from_slice(&save.position.to_be_bytes());
        value.extend_from_slice(&save.bytes);
        batch.insert(state_key(name), value);
        tree.apply_batch(batch).map_err(sled_error)?;
        // The same two steps as a commit: sled's flush, then fdatasync of its files.
        db.flush().map_err(sled_error)?;
        Durability::new(path)?.sync()?;
        Ok(())
    }
}
