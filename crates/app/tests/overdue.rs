//! `no_terminal_status`: a message the provider accepted that has no settled status after the
//! configured time is raised for a person, once, and a delivered one is not.

use chrono::TimeDelta;
use wagate_app::ReviewFilter;
use wagate_domain::decide::{DispatchOutcome, RecordOutcome, StatusCallback};
use wagate_domain::{MessageId, MessageStatus, ProviderKind, ProviderMessageRef, ReviewReason};

use crate::support::*;

async fn accepted(t: &TestHub, n: u32) -> (MessageId, ProviderMessageRef) {
    let message_id = t
        .hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("send")
        .message_id;
    t.hub.claim(message_id).await.expect("claim");
    let reference = ProviderMessageRef::parse(&format!("SM{n:032x}")).expect("sid");
    t.hub
        .record_outcome(RecordOutcome {
            message_id,
            attempt: 1,
            outcome: DispatchOutcome::Accepted {
                provider_ref: reference.clone(),
                provider_status: MessageStatus::Queued,
                recipient: None,
            },
            jitter: TimeDelta::zero(),
        })
        .await
        .expect("outcome");
    (message_id, reference)
}

#[tokio::test]
async fn an_unsettled_message_is_raised_once_after_the_configured_time() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let (silent, _) = accepted(&t, 1).await;
    let (delivered, reference) = accepted(&t, 2).await;
    t.hub
        .record_status_callback(
            None,
            StatusCallback {
                provider: ProviderKind::Sandbox,
                provider_ref: Some(reference),
                status: MessageStatus::Delivered,
                error_code: None,
                details: Vec::new(),
            },
            "delivered-2",
        )
        .await
        .expect("callback");
    let hour = TimeDelta::hours(1);
    t.clock.advance(TimeDelta::minutes(59));
    assert!(t.hub.raise_overdue(hour).await.expect("sweep").is_empty());
    t.clock.advance(TimeDelta::minutes(1));
    let raised = t.hub.raise_overdue(hour).await.expect("sweep");
    assert_eq!(raised.len(), 1);
    t.clock.advance(TimeDelta::hours(5));
    assert!(
        t.hub.raise_overdue(hour).await.expect("sweep").is_empty(),
        "raised once"
    );
    let items = t
        .hub
        .review_items(ReviewFilter {
            reason: Some(ReviewReason::NoTerminalStatus),
            state: None,
        })
        .await
        .expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, raised[0]);
    assert_eq!(items[0].subject.message_id, Some(silent));
    assert_eq!(items[0].subject.contact, Some(contact()));
    assert_ne!(items[0].subject.message_id, Some(delivered));
}
