//! The provider id → message lookup keeps a settled message only for `PROVIDER_REF_HORIZON` of
//! event time: after it, a callback naming only the provider id is recorded unmatched, while one
//! carrying wagate's own message id (as both providers echo it) still matches.

use chrono::TimeDelta;
use wagate_app::{Hub, Ingested, StatusCallback, PROVIDER_REF_HORIZON};
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{MessageId, MessageStatus, ProviderKind, StreamKey};

use crate::reopen::*;
use crate::support::*;

async fn callback(hub: &Hub, id: Option<MessageId>, n: usize, status: MessageStatus) -> Ingested {
    let dedup = format!("twilio:{n}:{status}:{}", id.is_some());
    hub.record_status_callback(
        id,
        StatusCallback {
            provider: ProviderKind::Twilio,
            provider_ref: Some(reference(n)),
            status,
            error_code: None,
            details: Vec::new(),
            pricing: None,
        },
        &dedup,
    )
    .await
    .expect("callback")
}

/// The streams a callback's events went to.
fn streams(ingested: &Ingested) -> Vec<StreamKey> {
    match ingested {
        Ingested::Appended { events, .. } => events.iter().map(|event| event.stream()).collect(),
        other => panic!("not appended: {other:?}"),
    }
}

#[tokio::test]
async fn a_provider_id_matches_within_the_horizon_and_not_after() {
    let t = hub();
    ready_for(&t, 1).await;
    let id = t
        .hub
        .send(template_request(&phone(0)), no_options())
        .await
        .expect("send")
        .message_id;
    t.hub.claim(id).await.expect("claim");
    t.hub
        .record_outcome(RecordOutcome {
            message_id: id,
            attempt: 1,
            outcome: DispatchOutcome::Accepted {
                provider_ref: reference(0),
                provider_status: MessageStatus::Queued,
                recipient: None,
            },
            jitter: TimeDelta::zero(),
        })
        .await
        .expect("outcome");
    let delivered = callback(&t.hub, None, 0, MessageStatus::Delivered).await;
    assert_eq!(streams(&delivered), vec![StreamKey::Message(id)]);
    assert_eq!(t.hub.projection_sizes().provider_refs_in_memory, 1);

    // Event time moves past the horizon (any event: here a callback for an unknown id).
    t.clock.advance(PROVIDER_REF_HORIZON + TimeDelta::hours(1));
    callback(&t.hub, None, 1, MessageStatus::Sent).await;
    assert_eq!(t.hub.projection_sizes().provider_refs_in_memory, 0);

    let late = callback(&t.hub, None, 0, MessageStatus::Read).await;
    assert_eq!(
        streams(&late),
        vec![StreamKey::ProviderMessage(reference(0))],
        "recorded as unmatched"
    );
    assert_eq!(
        t.hub.message(id).expect("view").state.status,
        MessageStatus::Delivered
    );
    // With wagate's own id, as the providers send it, the same late status still matches.
    let echoed = callback(&t.hub, Some(id), 0, MessageStatus::Read).await;
    assert_eq!(streams(&echoed), vec![StreamKey::Message(id)]);
    assert_eq!(
        t.hub.message(id).expect("view").state.status,
        MessageStatus::Read
    );
}
