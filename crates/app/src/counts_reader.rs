//! The ops counts as a checkpointed reader of the durable log (see [`crate::counts`]): caught
//! up from its own position to the durable head through the read side, saved in its own
//! snapshot slot next to the projection's, and restored at open. A counts snapshot that is
//! missing, of another form version, unreadable or past the log's head is ignored: the counts
//! alone are rebuilt from position 1 (the projection keeps its own snapshot).

use tracing::warn;
use wagate_store::{snapshot_forms, SnapshotSave};

use crate::counts::{Follower, COUNTS_SLOT};
use crate::error::Result;
use crate::hub::Hub;

/// Events read per batch when the counts catch up: a catch-up holds the counts' lock, and reads
/// (and holds in memory) at most this many events at a time.
pub const COUNTS_BATCH: usize = 1024;

/// Where the counts started at the last open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CountsOpen {
    /// The position of the counts snapshot used (0: rebuilt from the log).
    pub(crate) snapshot_position: u64,
    /// A counts snapshot was found and not used.
    pub(crate) snapshot_refused: bool,
}

impl Hub {
    /// Applies to `follower` every event after its position up to the durable head read now, in
    /// log order, [`COUNTS_BATCH`] at a time. Stops at an event this version cannot read (the
    /// counts then stay at the event before it, and the error is answered).
    pub(crate) fn catch_up_counts(&self, follower: &mut Follower) -> Result<()> {
        let head = self.head_position();
        while follower.position() < head {
            let events = self.events_after(follower.position(), COUNTS_BATCH)?;
            if events.is_empty() {
                break;
            }
            for logged in &events {
                follower.observe(logged.position, &logged.event);
            }
        }
        Ok(())
    }

    /// Restores the counts from their snapshot, or starts them empty at position 0.
    pub(crate) fn restore_counts(&self) -> Result<CountsOpen> {
        let log = self.inner.log.as_ref();
        let mut open = CountsOpen::default();
        let restored = match log.snapshot(COUNTS_SLOT)? {
            Some(snapshot) if snapshot.position <= log.head_position() => {
                match snapshot_forms::decode_counts(&snapshot.bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|form| Follower::from_form(snapshot.position, form))
                {
                    Ok(follower) => {
                        open.snapshot_position = snapshot.position;
                        follower
                    }
                    Err(reason) => {
                        warn!(%reason, "counts snapshot not used; rebuilding them from the log");
                        open.snapshot_refused = true;
                        Follower::default()
                    }
                }
            }
            Some(snapshot) => {
                warn!(
                    position = snapshot.position,
                    "counts snapshot is past the log's head; rebuilding them from the log"
                );
                open.snapshot_refused = true;
                Follower::default()
            }
            None => Follower::default(),
        };
        *self.inner.counts.lock() = restored;
        Ok(open)
    }

    /// Catches the counts up with the durable head and saves them in their slot at the
    /// position they then reflect.
    pub(crate) async fn save_counts(&self) -> Result<()> {
        let save = {
            let mut follower = self.inner.counts.lock();
            self.catch_up_counts(&mut follower)?;
            SnapshotSave {
                position: follower.position(),
                bytes: snapshot_forms::encode_counts(&follower.to_form()),
                entries: Vec::new(),
                replace_entries: false,
            }
        };
        Ok(self.inner.log.save_snapshot(COUNTS_SLOT, save).await?)
    }

    /// Funnel entries the counts hold (messages not yet terminal nor aged out): a test hook for
    /// their memory bound.
    pub fn counts_open_entries(&self) -> usize {
        self.inner.counts.lock().open_entries()
    }
}
