//! The ops counts as a checkpointed reader of the durable log (see [`crate::counts`] and the
//! shared reader in [`crate::projection_reader`]): saved in their own snapshot slot next to the
//! projection's, restored on first use; a snapshot not used means the counts alone are rebuilt
//! from position 1 (the projection keeps its own snapshot).

use wagate_domain::Event;
use wagate_store::snapshot_forms;

use crate::counts::{Follower, COUNTS_SLOT};
use crate::error::Result;
use crate::hub::Hub;
use crate::projection_reader::{Restored, SnapshottedProjection};
use parking_lot::MappedMutexGuard;

impl SnapshottedProjection for Follower {
    const SLOT: &'static str = COUNTS_SLOT;
    const NAME: &'static str = "counts";

    fn position(&self) -> u64 {
        Follower::position(self)
    }

    fn observe(&mut self, position: u64, event: &Event, _hub: &Hub) {
        Follower::observe(self, position, event);
    }

    fn encode(&self) -> Vec<u8> {
        snapshot_forms::encode_counts(&self.to_form())
    }

    fn decode(position: u64, bytes: &[u8]) -> std::result::Result<Self, String> {
        snapshot_forms::decode_counts(bytes)
            .map_err(|e| e.to_string())
            .and_then(|form| Follower::from_form(position, form))
    }
}

impl Hub {
    /// Applies to `follower` every event after its position up to the durable head read now
    /// (see [`Hub::catch_up_reader`]).
    pub(crate) fn catch_up_counts(&self, follower: &mut Follower) -> Result<()> {
        self.catch_up_reader(follower)
    }

    /// The counts, locked, restored from their snapshot on first use.
    pub(crate) fn counts(&self) -> MappedMutexGuard<'_, Follower> {
        self.reader(&self.inner.counts)
    }

    /// What the counts' restore found (restoring them now if nothing used them yet).
    pub(crate) fn counts_restored(&self) -> Restored {
        self.reader_restored(&self.inner.counts)
    }

    /// Catches the counts up with the durable head and saves them in their slot at the
    /// position they then reflect.
    pub(crate) async fn save_counts(&self) -> Result<()> {
        let save = self.reader_snapshot(&mut *self.counts())?;
        Ok(self.inner.log.save_snapshot(COUNTS_SLOT, save).await?)
    }

    /// Funnel entries the counts hold (messages not yet terminal nor aged out): a test hook for
    /// their memory bound.
    pub fn counts_open_entries(&self) -> usize {
        self.counts().open_entries()
    }
}
