//! Campaigns in the hub: a row's outcome is appended with its send, a cancel withdraws the rest
//! (appending nothing for them), and a reopened hub goes on at the next row.

use wagate_app::RowStep;
use wagate_domain::campaign::{RunCommand, RunState};
use wagate_domain::{CampaignEvent, Event, MessageEvent};

use crate::reopen::{campaign, close, hub_on, open, ready_for};
use crate::support::*;

#[tokio::test]
async fn each_row_outcome_is_in_the_same_append_as_its_send_and_a_cancel_withdraws_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let t = hub_on(&open(dir.path()));
    // Contacts 0 and 1 opted in; 2 and 3 never did.
    ready_for(&t, 2).await;
    let new = campaign(4);
    let id = new.id;
    let (view, created) = t.hub.campaign_create(new.clone()).await.expect("create");
    assert!(created);
    assert_eq!(view.state, RunState::Draft);
    // The same create again is answered, not repeated.
    assert!(!t.hub.campaign_create(new).await.expect("again").1);
    // Nothing is processed before the start.
    assert_eq!(
        t.hub.process_campaign_row(id).await.expect("draft"),
        RowStep::Withdrawn
    );
    t.hub
        .campaign_command(id, RunCommand::Start)
        .await
        .expect("start");
    assert_eq!(
        t.hub.process_campaign_row(id).await.expect("row 1"),
        RowStep::Sent
    );
    assert_eq!(
        t.hub.process_campaign_row(id).await.expect("row 2"),
        RowStep::Sent
    );
    assert_eq!(
        t.hub.process_campaign_row(id).await.expect("row 3"),
        RowStep::Refused
    );
    let view = t
        .hub
        .campaign_command(id, RunCommand::Cancel)
        .await
        .expect("cancel");
    assert_eq!((view.counts.allowed, view.counts.refused), (2, 1));
    assert_eq!((view.counts.withdrawn, view.counts.queued), (1, 0));
    let before = log(&t.hub).len();
    assert_eq!(
        t.hub.process_campaign_row(id).await.expect("after cancel"),
        RowStep::Withdrawn
    );
    assert_eq!(log(&t.hub).len(), before, "a withdrawn row appends nothing");

    // Every row outcome sits right after its send's own event (one append).
    let events = log(&t.hub);
    for (index, (_, event)) in events.iter().enumerate() {
        if let Event::Campaign(CampaignEvent::RowSent { message, .. }) = event {
            let sent = events[..index].iter().rev().find_map(|(_, e)| match e {
                Event::Message(MessageEvent::TemplateSent { message_id, .. }) => Some(*message_id),
                _ => None,
            });
            assert_eq!(sent, Some(*message));
        }
    }
    close(t);
}

#[tokio::test]
async fn a_reopened_hub_goes_on_at_the_next_row_and_completes() {
    let dir = tempfile::tempdir().expect("dir");
    let new = campaign(2);
    let id = new.id;
    {
        let t = hub_on(&open(dir.path()));
        ready_for(&t, 2).await;
        t.hub.campaign_create(new).await.expect("create");
        t.hub
            .campaign_command(id, RunCommand::Start)
            .await
            .expect("start");
        assert_eq!(
            t.hub.process_campaign_row(id).await.expect("row 1"),
            RowStep::Sent
        );
        close(t);
    }
    let t = hub_on(&open(dir.path()));
    assert_eq!(
        t.hub.process_campaign_row(id).await.expect("row 2"),
        RowStep::Sent
    );
    assert_eq!(
        t.hub.process_campaign_row(id).await.expect("done"),
        RowStep::Finished
    );
    let view = t.hub.campaign_view(id).expect("view");
    assert_eq!(view.state, RunState::Completed);
    assert_eq!(view.counts.allowed, 2);
    let sends = log(&t.hub)
        .iter()
        .filter(|(_, e)| matches!(e, Event::Message(MessageEvent::TemplateSent { .. })))
        .count();
    assert_eq!(sends, 2, "no row sent twice");
    close(t);
}
