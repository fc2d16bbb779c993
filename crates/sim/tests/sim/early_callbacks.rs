//! A callback that arrives before the send's response (it names only the provider id) is kept,
//! and joined when the outcome naming that id is recorded: the simulated hub decides this with
//! the same domain functions as the real one.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta};
use wagate_dispatch::ClaimAnswer;
use wagate_domain::decide::{DispatchOutcome, RecordOutcome, RegisterTemplate, SendMessage};
use wagate_domain::{
    ApprovalStatus, ContactId, Event, MessageEvent, MessageId, MessageStatus, PhoneNumber, Policy,
    PortfolioId, ProviderMessageRef, Recipient, SendContent, StreamKey, TemplateCategory,
    TemplateId, WhatsAppAddress,
};
use wagate_sim::SimHub;

#[test]
fn a_callback_before_the_response_is_joined_by_the_outcome() {
    let now = DateTime::from_timestamp(1_795_597_200, 0).expect("time");
    let mut hub = SimHub::new(Policy::default());
    let sender = WhatsAppAddress::from_number(PhoneNumber::parse("+15550001111").expect("number"));
    let portfolio = PortfolioId::parse("early").expect("portfolio");
    hub.add_sender(&sender, &portfolio, now);
    let template = TemplateId::parse("early_template").expect("template");
    hub.add_template(
        &RegisterTemplate {
            template: template.clone(),
            name: "early_template".into(),
            language: "en".into(),
            category: TemplateCategory::Utility,
            placeholders: Vec::new(),
        },
        now,
    );
    hub.set_template_status(&template, ApprovalStatus::Approved, now);
    let contact = ContactId::Phone(PhoneNumber::parse("+41790000001").expect("number"));
    hub.opt_in(&contact, now);
    let message_id = MessageId::from_uuid(uuid::Uuid::now_v7()).expect("message id");
    hub.send(
        &SendMessage {
            message_id,
            sender,
            to: Recipient::of_contact(&contact),
            workflow: Some("appointment_scheduling".into()),
            content: SendContent::Template {
                media: Vec::new(),
                template,
                variables: BTreeMap::new(),
            },
        },
        now,
    )
    .expect("allowed");
    let ClaimAnswer::Claimed { attempt, .. } = hub.claim(message_id, now) else {
        panic!("not claimed");
    };

    // The provider posts `delivered` before its HTTP response reaches the hub, without the
    // wagate message id: nothing matches it yet, so it is kept on the provider id's stream.
    let provider_ref =
        ProviderMessageRef::parse("SM0123456789abcdef0123456789abcdef").expect("sid");
    let kept = hub.status_callback(1, None, &provider_ref, &MessageStatus::Delivered, None, now);
    assert_eq!(kept, 1);
    let last = hub.log().last().expect("kept");
    assert_eq!(
        last.stream,
        StreamKey::ProviderMessage(provider_ref.clone())
    );
    assert!(matches!(
        last.event,
        Event::Message(MessageEvent::UnmatchedStatusReceived { .. })
    ));
    assert_eq!(
        hub.message(message_id).expect("message").status,
        MessageStatus::Sending
    );

    hub.record_outcome(
        &RecordOutcome {
            message_id,
            attempt,
            outcome: DispatchOutcome::Accepted {
                provider_ref: provider_ref.clone(),
                provider_status: MessageStatus::Queued,
                recipient: None,
            },
            jitter: TimeDelta::zero(),
        },
        now,
    );
    let message = hub.message(message_id).expect("message");
    assert_eq!(
        message.status,
        MessageStatus::Delivered,
        "the early callback was joined"
    );
    let joined = hub
        .log()
        .iter()
        .filter(|record| {
            matches!(
                &record.event,
                Event::Message(MessageEvent::StatusChanged {
                    message_id: id,
                    status: MessageStatus::Delivered,
                    ..
                }) if *id == message_id
            )
        })
        .count();
    assert_eq!(joined, 1);

    // A later callback naming only the provider id now matches the message.
    let appended = hub.status_callback(2, None, &provider_ref, &MessageStatus::Read, None, now);
    assert_eq!(appended, 1);
    assert_eq!(
        hub.message(message_id).expect("message").status,
        MessageStatus::Read
    );
}
