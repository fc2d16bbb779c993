//! The life of a message through the service, and the refusals on the way.

use chrono::TimeDelta;
use wagate_app::{AppError, SendOptions, SendRequest};
use wagate_domain::decide::{DispatchOutcome, RecordOptOut, RecordOutcome};
use wagate_domain::{
    DispatchPhase, Event, MessageEvent, MessageStatus, OptOutSource, ProviderMessageRef, RuleId,
    SendContent,
};

use crate::support::*;

fn rule(result: Result<impl std::fmt::Debug, AppError>) -> RuleId {
    match result {
        Err(AppError::Refused(refusal)) => refusal.rule,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn template_send_claim_and_outcome() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let accepted = t
        .hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("send");
    assert_eq!(accepted.status, "queued");
    let open = t.hub.open_intents().expect("open");
    assert_eq!(open.head, log(&t.hub).len() as u64);
    assert_eq!(open.intents.len(), 1);
    let intent = &open.intents[0];
    assert_eq!(intent.message_id, accepted.message_id);
    assert_eq!(intent.recipient, contact());
    assert_eq!(intent.sender, sender());
    // The sender's rate comes with it, from its registration (sandbox: Twilio's 80/s).
    assert_eq!(intent.sender_rate_per_second, Some(80));
    let (intent_position, _) = log(&t.hub)
        .into_iter()
        .find(|(_, event)| matches!(event.type_name(), "TemplateSent"))
        .expect("intent event");
    assert_eq!(intent.position, intent_position);
    // A reader of new events sees the same intent, announced by its event.
    let new = t.hub.intents_after(0, 1000).expect("new intents");
    assert_eq!(new.intents, open.intents);
    assert_eq!(new.last_position, Some(open.head));
    assert!(t
        .hub
        .intents_after(intent_position, 1000)
        .expect("new intents")
        .intents
        .is_empty());

    let claimed = t.hub.claim(accepted.message_id).await.expect("claim");
    assert_eq!(claimed.attempt, 1);
    let reference = ProviderMessageRef::parse("SM0123456789abcdef0123456789abcdef").expect("sid");
    let update = t
        .hub
        .record_outcome(RecordOutcome {
            message_id: accepted.message_id,
            attempt: 1,
            outcome: DispatchOutcome::Accepted {
                provider_ref: reference,
                provider_status: MessageStatus::Queued,
                recipient: None,
            },
            jitter: TimeDelta::zero(),
        })
        .await
        .expect("outcome");
    // The write answers the phase after it: an accepted call leaves nothing to dispatch.
    assert_eq!(update.phase, DispatchPhase::Done);
    assert_eq!(update.positions.len(), 1);
    assert_eq!(
        t.hub.dispatch_phase(accepted.message_id).expect("phase"),
        DispatchPhase::Done
    );
    let view = t.hub.message(accepted.message_id).expect("message");
    assert_eq!(
        view.state.status,
        MessageStatus::Sending,
        "provider's queued does not move sending back"
    );
    assert!(t.hub.open_intents().expect("open").intents.is_empty());
    let contact_view = t.hub.contact(&contact()).expect("contact");
    assert_eq!(contact_view.recent_messages.len(), 1);
}

/// A re-registration with another rate reaches the dispatcher through the work list, from the
/// full list and from the new-events reader alike.
#[tokio::test]
async fn the_work_list_carries_each_senders_registered_rate() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    t.hub
        .register_sender(wagate_domain::decide::RegisterSender {
            sender: sender(),
            provider: wagate_domain::ProviderKind::Sandbox,
            portfolio: wagate_domain::PortfolioId::parse("default").expect("portfolio"),
            rate: wagate_domain::SenderRate {
                upgraded: false,
                per_second: Some(15),
            },
            meta_phone_number_id: None,
        })
        .await
        .expect("re-register");
    t.hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("send");
    let open = t.hub.open_intents().expect("open").intents;
    assert_eq!(open[0].sender_rate_per_second, Some(15));
    let new = t.hub.intents_after(0, 1000).expect("new").intents;
    assert_eq!(new[0].sender_rate_per_second, Some(15));
}

#[tokio::test]
async fn refusals_are_recorded_and_dry_runs_are_not() {
    let t = hub();
    ready(&t.hub).await;
    assert_eq!(
        rule(t.hub.send(template_request(CONTACT), no_options()).await),
        RuleId::NoOptIn
    );
    let dry = SendOptions {
        dry_run: true,
        ..SendOptions::default()
    };
    assert_eq!(
        rule(t.hub.send(template_request("+41 79"), dry).await),
        RuleId::InvalidNumber
    );
    let refused: Vec<_> = log(&t.hub)
        .into_iter()
        .filter(|(_, event)| matches!(event, Event::Message(MessageEvent::SendRefused { .. })))
        .collect();
    assert_eq!(refused.len(), 1, "the dry run appended nothing");
}

#[tokio::test]
async fn a_stop_between_send_and_claim_cancels_the_message() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let accepted = t
        .hub
        .send(template_request(CONTACT), no_options())
        .await
        .expect("send");
    t.hub
        .opt_out(RecordOptOut {
            contact: contact(),
            source: OptOutSource::Api,
            detail: "agent".into(),
        })
        .await
        .expect("opt out");
    assert_eq!(
        rule(t.hub.claim(accepted.message_id).await),
        RuleId::OptedOut
    );
    let view = t.hub.message(accepted.message_id).expect("message");
    assert_eq!(view.state.status, MessageStatus::Canceled);
    assert!(matches!(
        t.hub.claim(accepted.message_id).await,
        Err(AppError::NotClaimable { .. })
    ));
}

#[tokio::test]
async fn freeform_needs_the_window_and_the_clock_closes_it() {
    let t = hub();
    ready(&t.hub).await;
    let freeform = SendRequest {
        to: CONTACT.into(),
        sender: None,
        workflow: Some("lead_qualification".into()),
        content: SendContent::Freeform {
            text: "Thanks, when suits you?".into(),
        },
    };
    assert_eq!(
        rule(t.hub.send(freeform.clone(), no_options()).await),
        RuleId::WindowClosed
    );
    t.hub
        .receive_inbound(
            wagate_domain::decide::ReceiveInbound {
                details: Vec::new(),
                contact: contact(),
                sender: Some(sender()),
                provider_ref: None,
                kind: "text".into(),
                text: "Is the flat still available?".into(),
                provider_at: None,
            },
            "twilio:inbound:1",
        )
        .await
        .expect("inbound");
    t.hub
        .send(freeform.clone(), no_options())
        .await
        .expect("inside the window");
    t.clock
        .advance(TimeDelta::hours(24) - TimeDelta::minutes(10));
    assert_eq!(
        rule(t.hub.send(freeform, no_options()).await),
        RuleId::WindowClosed,
        "safety margin"
    );
}

#[tokio::test]
async fn idempotency_key_returns_the_first_answer() {
    let t = hub();
    ready(&t.hub).await;
    opt_in(&t.hub, &contact()).await;
    let options = SendOptions {
        idempotency_key: Some("agent-42".into()),
        dry_run: false,
    };
    let first = t
        .hub
        .send(template_request(CONTACT), options.clone())
        .await
        .expect("first");
    let second = t
        .hub
        .send(template_request(CONTACT), options)
        .await
        .expect("second");
    assert_eq!(first.message_id, second.message_id);
    assert!(!first.replayed && second.replayed);
    let intents = log(&t.hub)
        .into_iter()
        .filter(|(_, event)| matches!(event, Event::Message(MessageEvent::TemplateSent { .. })))
        .count();
    assert_eq!(intents, 1);
}

#[tokio::test]
async fn unknown_sender_and_missing_from() {
    let t = hub();
    assert!(matches!(
        t.hub.send(template_request(CONTACT), no_options()).await,
        Err(AppError::Invalid { field, .. }) if field == "from"
    ));
    let mut request = template_request(CONTACT);
    request.sender = Some(sender());
    assert_eq!(
        rule(t.hub.send(request, no_options()).await),
        RuleId::ChannelNotAuthorized
    );
}

#[tokio::test]
async fn the_event_reader_stops_before_an_unreadable_event() {
    let t = hub();
    ready(&t.hub).await;
    let readable = log(&t.hub).len() as u64;
    // An event this version cannot decode, written past the hub (only a damaged or newer log
    // holds one).
    t.store
        .append(wagate_store::AppendRequest::single(
            wagate_store::StreamId::new("contact:+41790000009").expect("stream"),
            wagate_store::ExpectedVersion::Any,
            vec![wagate_store::NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "FromTheFuture".into(),
                schema_version: 99,
                timestamp_ms: 0,
                payload: vec![1, 2, 3],
                origin: None,
            }],
        ))
        .await
        .expect("append");
    let events = t.hub.events_after(0, 100).expect("the readable prefix");
    assert_eq!(events.len() as u64, readable);
    match t.hub.events_after(readable, 100) {
        Err(AppError::Corrupt { position, .. }) => assert_eq!(position, readable + 1),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
