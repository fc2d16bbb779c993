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

/// A campaign's view reads the message of every row sent; a large campaign's view must not wash
/// the aggregates being decided on out of the cache.
#[tokio::test]
async fn a_campaign_view_reads_its_messages_without_caching_them() {
    use wagate_app::RowStep;
    use wagate_domain::campaign::RunCommand;

    use crate::reopen::{campaign, close, hub_on, open, ready_for};

    let dir = tempfile::tempdir().expect("dir");
    let t = hub_on(&open(dir.path()));
    ready_for(&t, 3).await;
    let new = campaign(3);
    let id = new.id;
    t.hub.campaign_create(new).await.expect("create");
    t.hub
        .campaign_command(id, RunCommand::Start)
        .await
        .expect("start");
    for row in 0..3 {
        let step = t.hub.process_campaign_row(id).await.expect("row");
        assert_eq!(step, RowStep::Sent, "row {row}");
    }
    let before = t.hub.aggregates_cached();
    let view = t.hub.campaign_view(id).expect("view");
    assert_eq!(view.counts.allowed, 3);
    assert_eq!(
        t.hub.aggregates_cached(),
        before,
        "three messages read, none cached"
    );
    close(t);
}
