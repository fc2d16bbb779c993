//! What the ops counts and the cost ledger have in common: each is a projection that reads the
//! durable log from its own position (never fed by the append path, so it sees each event once,
//! in log order), saves itself in its own snapshot slot at the position it reflects, and is
//! restored from that slot on its first use. A snapshot that is missing, of another form
//! version, unreadable or past the log's head is not used: that projection alone is rebuilt from
//! position 1.
//!
//! Why on first use rather than in `Hub::open`: their snapshots grow with the business (the cost
//! ledger's was ~20 MB at 1M events, the counts' ~4 MB) and decoding them took nearly all of
//! `Hub::open`'s time, while nothing the hub needs to be ready reads them. The first reader
//! (`/metrics`, the ops page, `/v1/costs`, a snapshot save) waits for the restore instead, and
//! sees exactly what a restore at open would have given.

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use tracing::warn;
use wagate_domain::Event;
use wagate_store::SnapshotSave;

use crate::error::Result;
use crate::hub::Hub;

/// Events read per batch when a projection catches up: a catch-up holds the projection's lock,
/// and reads (and holds in memory) at most this many events at a time.
pub const COUNTS_BATCH: usize = 1024;

/// A projection read from the durable log and kept in a snapshot slot of its own.
pub(crate) trait SnapshottedProjection: Default {
    /// Its snapshot slot.
    const SLOT: &'static str;
    /// How the log names it ("counts", "cost ledger").
    const NAME: &'static str;

    /// The position of the last event applied.
    fn position(&self) -> u64;
    /// Applies the event at `position` if it is after the last one applied.
    fn observe(&mut self, position: u64, event: &Event, hub: &Hub);
    /// The snapshot's bytes.
    fn encode(&self) -> Vec<u8>;
    /// The projection a snapshot at `position` holds, or why it cannot be used.
    fn decode(position: u64, bytes: &[u8]) -> std::result::Result<Self, String>;
}

/// What a restore found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Restored {
    /// The position of the snapshot used (0: rebuilt from the log).
    pub(crate) snapshot_position: u64,
    /// A snapshot was found and not used.
    pub(crate) snapshot_refused: bool,
}

/// A [`SnapshottedProjection`], restored from its slot by the first [`Hub::reader`].
#[derive(Debug, Default)]
pub(crate) struct ReaderCell<P> {
    slot: Mutex<Slot<P>>,
}

#[derive(Debug, Default)]
struct Slot<P> {
    /// What the restore found; `None` until the first use.
    restored: Option<Restored>,
    projection: P,
}

impl Hub {
    /// `cell`'s projection, locked (whoever catches it up holds this lock for the whole
    /// catch-up, so two readers never apply the same events), restored from its slot first
    /// when this is its first use.
    pub(crate) fn reader<'a, P: SnapshottedProjection>(
        &self,
        cell: &'a ReaderCell<P>,
    ) -> MappedMutexGuard<'a, P> {
        MutexGuard::map(self.restored_slot(cell), |slot| &mut slot.projection)
    }

    /// What `cell`'s restore found (restoring it now if nothing used it yet).
    pub(crate) fn reader_restored<P: SnapshottedProjection>(
        &self,
        cell: &ReaderCell<P>,
    ) -> Restored {
        self.restored_slot(cell).restored.unwrap_or_default()
    }

    fn restored_slot<'a, P: SnapshottedProjection>(
        &self,
        cell: &'a ReaderCell<P>,
    ) -> MutexGuard<'a, Slot<P>> {
        let mut slot = cell.slot.lock();
        if slot.restored.is_none() {
            let (projection, restored) = self.restore_reader::<P>().unwrap_or_else(|error| {
                // The slot could not be read: rebuilt from the log, as for a snapshot not used.
                warn!(%error, projection = P::NAME, "snapshot not read; rebuilding from the log");
                (
                    P::default(),
                    Restored {
                        snapshot_position: 0,
                        snapshot_refused: true,
                    },
                )
            });
            slot.projection = projection;
            slot.restored = Some(restored);
        }
        slot
    }

    /// Applies to `projection` every event after its position up to the durable head read now,
    /// in log order, [`COUNTS_BATCH`] at a time. Stops at an event this version cannot read
    /// (the projection then stays at the event before it, and the error is answered).
    pub(crate) fn catch_up_reader<P: SnapshottedProjection>(
        &self,
        projection: &mut P,
    ) -> Result<()> {
        let head = self.head_position();
        while projection.position() < head {
            let events = self.events_after(projection.position(), COUNTS_BATCH)?;
            if events.is_empty() {
                break;
            }
            for logged in &events {
                projection.observe(logged.position, &logged.event, self);
            }
        }
        Ok(())
    }

    /// The projection in its snapshot slot, or an empty one at position 0.
    fn restore_reader<P: SnapshottedProjection>(&self) -> Result<(P, Restored)> {
        let log = self.inner.log.as_ref();
        let mut open = Restored::default();
        let restored = match log.snapshot(P::SLOT)? {
            Some(snapshot) if snapshot.position <= log.head_position() => {
                match P::decode(snapshot.position, &snapshot.bytes) {
                    Ok(projection) => {
                        open.snapshot_position = snapshot.position;
                        projection
                    }
                    Err(reason) => {
                        warn!(%reason, projection = P::NAME, "snapshot not used; rebuilding from the log");
                        open.snapshot_refused = true;
                        P::default()
                    }
                }
            }
            Some(snapshot) => {
                warn!(
                    position = snapshot.position,
                    projection = P::NAME,
                    "snapshot is past the log's head; rebuilding from the log"
                );
                open.snapshot_refused = true;
                P::default()
            }
            None => P::default(),
        };
        Ok((restored, open))
    }

    /// Catches `projection` up with the durable head and answers its snapshot at the position
    /// it then reflects (saved by the caller, once the projection's lock is released).
    pub(crate) fn reader_snapshot<P: SnapshottedProjection>(
        &self,
        projection: &mut P,
    ) -> Result<SnapshotSave> {
        self.catch_up_reader(projection)?;
        Ok(SnapshotSave {
            position: projection.position(),
            bytes: projection.encode(),
            entries: Vec::new(),
            replace_entries: false,
        })
    }
}
