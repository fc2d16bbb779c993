//! What the aggregate cache keeps: aggregates decided on again, not streams written once.

use wagate_app::AppError;

use crate::support::*;

/// A refused send is recorded on a message stream of its own that no decision reads again;
/// caching it would grow the cache by one entry per refusal until its bound (the soak's
/// slow climb, docs/performance.md "Soak").
#[tokio::test]
async fn a_refused_send_leaves_nothing_in_the_cache() {
    let t = hub();
    ready(&t.hub).await;
    // Warm up: the sender, template, portfolio and the contact streams a send reads.
    let first = t
        .hub
        .send(template_request("+41790000099"), no_options())
        .await;
    assert!(matches!(first, Err(AppError::Refused(_))), "{first:?}");
    let warm = t.hub.aggregates_cached();
    for _ in 0..50 {
        let refused = t
            .hub
            .send(template_request("+41790000099"), no_options())
            .await;
        assert!(matches!(refused, Err(AppError::Refused(_))), "{refused:?}");
    }
    assert_eq!(
        t.hub.aggregates_cached(),
        warm,
        "50 refusals recorded, each on its own message stream"
    );
}

/// A message admitted for dispatch is read again (claim, outcome, status callbacks): the
/// dispatcher's load caches it.
#[tokio::test]
async fn an_admitted_message_is_cached_once_the_dispatcher_reads_it() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let accepted = t
        .hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("admitted");
    let before = t.hub.aggregates_cached();
    t.hub
        .dispatch_phase(accepted.message_id)
        .expect("dispatch phase");
    assert_eq!(t.hub.aggregates_cached(), before + 1);
}
