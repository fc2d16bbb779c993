//! The cost ledger as a checkpointed reader of the durable log (see [`crate::costs`]): caught
//! up from its own position to the durable head, saved in its own snapshot slot, restored at
//! open. A snapshot that is missing, of another form version, unreadable, past the log's head,
//! or priced with another price table is not used: the ledger is rebuilt from position 1.

use tracing::warn;
use wagate_store::{snapshot_forms, SnapshotSave};

use crate::costs::{table_digest, CostDimension, CostReport, Ledger, COSTS_SLOT};
use crate::counts_reader::COUNTS_BATCH;
use crate::error::Result;
use crate::hub::Hub;

impl Hub {
    /// Applies to `ledger` every event after its position up to the durable head, priced with
    /// this hub's table (a ledger priced with another table starts over).
    fn catch_up_costs(&self, ledger: &mut Ledger) -> Result<()> {
        if ledger.for_table(&table_digest(self.price_table())) {
            warn!("the price table changed; rebuilding the cost ledger from the log");
        }
        let head = self.head_position();
        while ledger.position() < head {
            let events = self.events_after(ledger.position(), COUNTS_BATCH)?;
            if events.is_empty() {
                break;
            }
            for logged in &events {
                ledger.observe(logged.position, &logged.event, self.price_table());
            }
        }
        Ok(())
    }

    /// Restores the ledger from its snapshot, or starts it empty at position 0. Returns the
    /// snapshot position used (0: none).
    pub(crate) fn restore_costs(&self) -> Result<u64> {
        let log = self.inner.log.as_ref();
        let restored = match log.snapshot(COSTS_SLOT)? {
            Some(snapshot) if snapshot.position <= log.head_position() => {
                match snapshot_forms::decode_costs(&snapshot.bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|form| Ledger::from_form(snapshot.position, form))
                {
                    Ok(ledger) => ledger,
                    Err(reason) => {
                        warn!(%reason, "cost ledger snapshot not used; rebuilding it from the log");
                        Ledger::default()
                    }
                }
            }
            Some(snapshot) => {
                warn!(
                    position = snapshot.position,
                    "cost ledger snapshot is past the log's head; rebuilding it from the log"
                );
                Ledger::default()
            }
            None => Ledger::default(),
        };
        let position = restored.position();
        *self.inner.costs.lock() = restored;
        Ok(position)
    }

    /// Catches the ledger up and saves it in its slot at the position it then reflects.
    pub(crate) async fn save_costs(&self) -> Result<()> {
        let save = {
            let mut ledger = self.inner.costs.lock();
            // A handle made before the composition set the table must not reprice the ledger.
            if !ledger.priced_with_or_new(&table_digest(self.price_table())) {
                return Ok(());
            }
            self.catch_up_costs(&mut ledger)?;
            SnapshotSave {
                position: ledger.position(),
                bytes: snapshot_forms::encode_costs(&ledger.to_form()),
                entries: Vec::new(),
                replace_entries: false,
            }
        };
        Ok(self.inner.log.save_snapshot(COSTS_SLOT, save).await?)
    }

    /// What delivered messages cost, grouped `by`, caught up with the durable head first. When
    /// the catch-up fails the sums as of their position (`CostReport::position`) are answered.
    pub fn costs(&self, by: CostDimension) -> CostReport {
        let mut ledger = self.inner.costs.lock();
        if let Err(error) = self.catch_up_costs(&mut ledger) {
            warn!(%error, position = ledger.position(), "cost ledger not caught up");
        }
        ledger.report(by)
    }

    /// Messages the ledger still waits to charge: a test hook for its memory bound.
    pub fn costs_open_entries(&self) -> usize {
        self.inner.costs.lock().open_entries()
    }
}
