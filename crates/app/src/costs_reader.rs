//! The cost ledger as a checkpointed reader of the durable log (see [`crate::costs`] and the
//! shared reader in [`crate::projection_reader`]): saved in its own snapshot slot, restored on
//! first use. Beside what the shared reader refuses, a ledger priced with another price table is not
//! used either: it is rebuilt from position 1.

use tracing::warn;
use wagate_domain::Event;
use wagate_store::snapshot_forms;

use crate::costs::{table_digest, CostDimension, CostReport, Ledger, COSTS_SLOT};
use crate::error::Result;
use crate::hub::Hub;
use crate::projection_reader::SnapshottedProjection;

impl SnapshottedProjection for Ledger {
    const SLOT: &'static str = COSTS_SLOT;
    const NAME: &'static str = "cost ledger";

    fn position(&self) -> u64 {
        Ledger::position(self)
    }

    fn observe(&mut self, position: u64, event: &Event, hub: &Hub) {
        Ledger::observe(self, position, event, hub.price_table());
    }

    fn encode(&self) -> Vec<u8> {
        snapshot_forms::encode_costs(&self.to_form())
    }

    fn decode(position: u64, bytes: &[u8]) -> std::result::Result<Self, String> {
        snapshot_forms::decode_costs(bytes)
            .map_err(|e| e.to_string())
            .and_then(|form| Ledger::from_form(position, form))
    }
}

impl Hub {
    /// Applies to `ledger` every event after its position up to the durable head, priced with
    /// this hub's table (a ledger priced with another table starts over).
    fn catch_up_costs(&self, ledger: &mut Ledger) -> Result<()> {
        if ledger.for_table(&table_digest(self.price_table())) {
            warn!("the price table changed; rebuilding the cost ledger from the log");
        }
        self.catch_up_reader(ledger)
    }

    /// Catches the ledger up and saves it in its slot at the position it then reflects.
    pub(crate) async fn save_costs(&self) -> Result<()> {
        let save = {
            let mut ledger = self.reader(&self.inner.costs);
            // A handle made before the composition set the table must not reprice the ledger.
            if !ledger.priced_with_or_new(&table_digest(self.price_table())) {
                return Ok(());
            }
            self.catch_up_costs(&mut ledger)?;
            self.reader_snapshot(&mut *ledger)?
        };
        Ok(self.inner.log.save_snapshot(COSTS_SLOT, save).await?)
    }

    /// What delivered messages cost, grouped `by`, caught up with the durable head first. When
    /// the catch-up fails the sums as of their position (`CostReport::position`) are answered.
    pub fn costs(&self, by: CostDimension) -> CostReport {
        let mut ledger = self.reader(&self.inner.costs);
        if let Err(error) = self.catch_up_costs(&mut ledger) {
            warn!(%error, position = ledger.position(), "cost ledger not caught up");
        }
        ledger.report(by)
    }

    /// Messages the ledger still waits to charge: a test hook for its memory bound.
    pub fn costs_open_entries(&self) -> usize {
        self.reader(&self.inner.costs).open_entries()
    }
}
