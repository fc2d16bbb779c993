//! The ops counts projection: the counts kept after each append are the counts rebuilt from the
//! log when the hub opens again (so the ops page and `/metrics` do not change with a restart).

use wagate_app::{Stage, NO_WORKFLOW};

use crate::support::*;

/// A hub with the fixed clock on a store reopened from `dir` (the counts must not depend on
/// which process appended).
fn hub_on(store: wagate_store::Store) -> TestHub {
    let clock = wagate_app::FixedClock::new(
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 25, 9, 0, 0)
            .single()
            .expect("time"),
    );
    let hub = wagate_app::Hub::open(
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(clock.clone()),
        wagate_domain::Policy::default(),
    )
    .expect("hub");
    TestHub { hub, clock, store }
}

#[tokio::test]
async fn counts_kept_incrementally_equal_counts_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("dir");
    let before = {
        let store =
            wagate_store::Store::open(dir.path(), wagate_store::Options::default()).expect("open");
        let t = hub_on(store);
        ready(&t.hub).await;
        opt_in(&t.hub, &contact()).await;
        t.hub
            .send(template_request(CONTACT), no_options())
            .await
            .expect("allowed");
        // Never opted in: refused, and recorded.
        assert!(t
            .hub
            .send(template_request("+41790000002"), no_options())
            .await
            .is_err());
        let counts = t.hub.ops_counts();
        drop(t.hub);
        t.store.close().expect("close");
        counts
    };
    assert_eq!(before.refusals_24h.values().sum::<u64>(), 1);
    let allowed = before
        .funnel
        .iter()
        .find(|row| row.workflow == "appointment_scheduling")
        .expect("the allowed send's row");
    assert_eq!(allowed.count(Stage::Allowed), 1);
    let refused = before
        .funnel
        .iter()
        .find(|row| row.workflow == NO_WORKFLOW)
        .expect("the refused send's row");
    assert_eq!(refused.count(Stage::Refused), 1);

    let store =
        wagate_store::Store::open(dir.path(), wagate_store::Options::default()).expect("reopen");
    let t = hub_on(store);
    assert_eq!(t.hub.ops_counts(), before);
}
