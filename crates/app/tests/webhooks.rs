//! Webhook ingestion: de-duplication, STOP keywords, callbacks before the send's response.

use chrono::TimeDelta;
use wagate_app::{Ingested, StatusCallback};
use wagate_domain::decide::{DispatchOutcome, ReceiveInbound, RecordOutcome};
use wagate_domain::{
    ContactState, Event, MessageEvent, MessageStatus, ProviderKind, ProviderMessageRef,
};

use crate::support::*;

fn stop() -> ReceiveInbound {
    ReceiveInbound {
        details: Vec::new(),
        contact: contact(),
        sender: Some(sender()),
        provider_ref: None,
        kind: "text".into(),
        text: "STOP".into(),
        provider_at: None,
    }
}

#[tokio::test]
async fn duplicate_webhooks_append_nothing() {
    let t = hub();
    let first = t
        .hub
        .receive_inbound(stop(), "twilio:SMaaa")
        .await
        .expect("first");
    assert!(
        matches!(first, Ingested::Appended { ref events, .. } if events.len() == 2),
        "{first:?}"
    );
    let second = t
        .hub
        .receive_inbound(stop(), "twilio:SMaaa")
        .await
        .expect("second");
    assert_eq!(second, Ingested::Duplicate);
    let view = t.hub.contact(&contact()).expect("contact");
    assert!(ContactState::is_opted_out(&view.state));
}

#[tokio::test]
async fn dedup_keys_outlive_the_providers_retry_horizon() {
    // Meta retries for 7 days; the keys are kept 30 (the default policy), so a retried or
    // replayed webhook is recognised long after a day.
    let t = hub();
    t.hub.receive_inbound(stop(), "k").await.expect("first");
    t.clock.advance(TimeDelta::days(29));
    assert_eq!(
        t.hub
            .receive_inbound(stop(), "k")
            .await
            .expect("within 30 days"),
        Ingested::Duplicate
    );
    t.clock.advance(TimeDelta::days(2));
    let again = t
        .hub
        .receive_inbound(stop(), "k")
        .await
        .expect("after 30 days");
    // Appended again: the inbound is recorded; the contact is already opted out, so no OptedOut.
    assert!(
        matches!(again, Ingested::Appended { ref events, .. } if events.len() == 1),
        "{again:?}"
    );
}

#[tokio::test]
async fn callbacks_before_the_response_are_joined() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let accepted = t
        .hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("send");
    t.hub.claim(accepted.message_id).await.expect("claim");
    let reference = ProviderMessageRef::parse("SM0123456789abcdef0123456789abcdef").expect("sid");
    // The provider posts `sent` before its HTTP response is recorded, without our message id.
    let early = t
        .hub
        .record_status_callback(
            None,
            StatusCallback {
                details: Vec::new(),
                provider: ProviderKind::Twilio,
                provider_ref: Some(reference.clone()),
                status: MessageStatus::Sent,
                error_code: None,
                pricing: None,
            },
            "twilio:SM0123:sent",
        )
        .await
        .expect("early callback");
    assert!(matches!(early, Ingested::Appended { ref events, .. }
        if matches!(events[0], Event::Message(MessageEvent::UnmatchedStatusReceived { .. }))));
    t.hub
        .record_outcome(RecordOutcome {
            message_id: accepted.message_id,
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
    assert_eq!(
        t.hub
            .message(accepted.message_id)
            .expect("view")
            .state
            .status,
        MessageStatus::Sent
    );
    // Later callbacks find the message by provider id.
    t.hub
        .record_status_callback(
            None,
            StatusCallback {
                details: Vec::new(),
                provider: ProviderKind::Twilio,
                provider_ref: Some(reference),
                status: MessageStatus::Read,
                error_code: None,
                pricing: None,
            },
            "twilio:SM0123:read",
        )
        .await
        .expect("read");
    assert_eq!(
        t.hub
            .message(accepted.message_id)
            .expect("view")
            .state
            .status,
        MessageStatus::Read
    );
}

#[tokio::test]
async fn the_projection_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let message_id = {
        let store =
            wagate_store::Store::open(dir.path(), wagate_store::Options::default()).expect("open");
        let t = hub_on(store);
        ready(&t.hub).await;
        opt_in(&t.hub, &contact()).await;
        let id = t
            .hub
            .send(template_request(CONTACT), no_options())
            .await
            .expect("send")
            .message_id;
        drop(t.hub);
        t.store.close().expect("close");
        id
    };
    let store =
        wagate_store::Store::open(dir.path(), wagate_store::Options::default()).expect("reopen");
    let t = hub_on(store);
    let open = t.hub.open_intents().expect("open").intents;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].message_id, message_id);
    // The intent's position is rebuilt from the log, not re-read from the message's stream.
    let intent_position = t
        .hub
        .message(message_id)
        .expect("view")
        .history
        .first()
        .expect("intent event")
        .position;
    assert_eq!(open[0].position, intent_position);
    assert_eq!(t.hub.senders(), vec![sender()]);
}

fn hub_on(store: wagate_store::Store) -> TestHub {
    use chrono::{TimeZone, Utc};
    let clock = wagate_app::FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
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
