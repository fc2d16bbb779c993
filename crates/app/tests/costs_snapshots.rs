//! The cost ledger as a checkpointed reader: restored from its own snapshot it equals the ledger
//! rebuilt from the whole log, a corrupt snapshot is rebuilt, another price table reprices the
//! whole history, and a charged message leaves memory.

use chrono::TimeDelta;
use wagate_app::{CostDimension, CostReport, Hub, PriceTable, StatusCallback, COSTS_SLOT};
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{MessageStatus, ProviderKind};
use wagate_store::{EventLog, SnapshotSave};

use crate::reopen::*;
use crate::support::*;

fn table(utility: &str) -> PriceTable {
    PriceTable::from_toml(&format!(
        "[[prices]]\ncategory = \"utility\"\ncountry = \"*\"\nprovider = \"{utility}\"\n\
         fee = \"0.005\"\ncurrency = \"USD\"\nfrom = \"2026-01-01\"\n"
    ))
    .expect("table")
}

/// Sends to contact `n`, claims, records the acceptance and `delivered`.
async fn delivered(hub: &Hub, n: usize) {
    let id = hub
        .send(template_request(&phone(n)), no_options())
        .await
        .expect("send")
        .message_id;
    hub.claim(id).await.expect("claim");
    hub.record_outcome(RecordOutcome {
        message_id: id,
        attempt: 1,
        outcome: DispatchOutcome::Accepted {
            provider_ref: reference(n),
            provider_status: MessageStatus::Queued,
            recipient: None,
        },
        jitter: TimeDelta::zero(),
    })
    .await
    .expect("outcome");
    hub.record_status_callback(
        None,
        StatusCallback {
            provider: ProviderKind::Twilio,
            provider_ref: Some(reference(n)),
            status: MessageStatus::Delivered,
            error_code: None,
            details: Vec::new(),
            pricing: None,
        },
        &format!("twilio:{n}:delivered"),
    )
    .await
    .expect("callback");
}

fn total(report: &CostReport) -> (u64, i64) {
    report
        .totals
        .iter()
        .find(|t| t.currency.as_deref() == Some("USD"))
        .map_or((0, 0), |t| (t.sums.messages, t.sums.total_micros()))
}

#[tokio::test]
async fn the_ledger_survives_a_restart_and_another_table_reprices_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (before, saved_at) = {
        let mut t = hub_on(&open(dir.path()));
        t.hub = t.hub.clone().with_price_table(table("0.02"));
        ready_for(&t, 3).await;
        delivered(&t.hub, 0).await;
        t.hub.save_snapshot().await.expect("snapshot");
        let saved_at = t.store.head_position();
        delivered(&t.hub, 1).await;
        // Sent but never delivered: waits in memory, not charged.
        t.hub
            .send(template_request(&phone(2)), no_options())
            .await
            .expect("send");
        let before = t.hub.costs(CostDimension::Month);
        assert_eq!(
            t.hub.costs_open_entries(),
            1,
            "charged messages left memory"
        );
        close(t);
        (before, saved_at)
    };
    assert_eq!(total(&before), (2, 50_000));

    let store = open(dir.path());
    let saved = store.snapshot(COSTS_SLOT).expect("read").expect("saved");
    assert_eq!(saved.position, saved_at, "saved with the projection");
    store.close().expect("close");

    let mut t = hub_on(&open(dir.path()));
    t.hub = t.hub.clone().with_price_table(table("0.02"));
    assert_eq!(t.hub.costs(CostDimension::Month), before);
    close(t);

    // Another table: the whole history is repriced.
    let mut t = hub_on(&open(dir.path()));
    t.hub = t.hub.clone().with_price_table(table("0.03"));
    assert_eq!(total(&t.hub.costs(CostDimension::Month)), (2, 70_000));
    close(t);

    // A corrupt snapshot: rebuilt from the log.
    let store = open(dir.path());
    EventLog::save_snapshot(
        &store,
        COSTS_SLOT,
        SnapshotSave {
            position: saved_at,
            bytes: vec![0, 1, 2],
            entries: Vec::new(),
            replace_entries: false,
        },
    )
    .await
    .expect("overwrite");
    store.close().expect("close");
    let mut t = hub_on(&open(dir.path()));
    t.hub = t.hub.clone().with_price_table(table("0.02"));
    assert_eq!(t.hub.costs(CostDimension::Month), before);
    close(t);
}
