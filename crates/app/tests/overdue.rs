//! `no_terminal_status`: a message the provider accepted that has no settled status after the
//! configured time is raised for a person, once, and a delivered one is not. `webhook_silence`:
//! messages waiting for their first callback with none arriving for the configured time.

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
                pricing: None,
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

async fn callback(t: &TestHub, reference: ProviderMessageRef, status: MessageStatus, key: &str) {
    t.hub
        .record_status_callback(
            None,
            StatusCallback {
                provider: ProviderKind::Sandbox,
                provider_ref: Some(reference),
                status,
                error_code: None,
                details: Vec::new(),
                pricing: None,
            },
            key,
        )
        .await
        .expect("callback");
}

#[tokio::test]
async fn silent_webhooks_are_raised_once_per_silence_while_messages_wait() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let after = TimeDelta::minutes(30);
    let silence = |t: &TestHub| {
        let hub = t.hub.clone();
        async move { hub.raise_webhook_silence(after).await.expect("sweep") }
    };
    // Nothing in flight: no silence however long.
    t.clock.advance(TimeDelta::hours(3));
    assert_eq!(silence(&t).await, None);

    let (_, first) = accepted(&t, 1).await;
    callback(&t, first, MessageStatus::Sent, "sent-1").await;
    let (_, second) = accepted(&t, 2).await;
    t.clock.advance(TimeDelta::minutes(29));
    assert_eq!(silence(&t).await, None, "not yet the configured time");
    t.clock.advance(TimeDelta::minutes(1));
    let id = silence(&t).await.expect("raised");
    t.clock.advance(TimeDelta::hours(2));
    assert_eq!(silence(&t).await, None, "once per silence");
    let item = t.hub.review_item(id).await.expect("item");
    assert_eq!(item.reason, ReviewReason::WebhookSilence);
    assert!(
        item.detail.starts_with("1 message waits"),
        "{}",
        item.detail
    );

    // Callbacks arrive again (the fix), then stop with a message waiting: a new item.
    callback(&t, second, MessageStatus::Delivered, "delivered-2").await;
    assert_eq!(silence(&t).await, None, "nothing waits");
    accepted(&t, 3).await;
    t.clock.advance(TimeDelta::minutes(30));
    let again = silence(&t).await.expect("a new silence");
    assert_ne!(again, id);
}
