//! Linked identities: one person, several contact ids. An opt-out under any of them stops
//! sends to all, and consent is the most restrictive one on record.

use wagate_domain::decide::{
    self, ClaimDecision, LinkIdentities, ReceiveGroupMessage, ReceiveInbound,
};
use wagate_domain::{
    BusinessScopedUserId, ContactEvent, ContactId, ContactState, Event, IdentitySource, RuleId,
};

use crate::support::*;

fn bsuid() -> ContactId {
    ContactId::BusinessScoped(BusinessScopedUserId::parse("CH.1349120865530274191").expect("id"))
}

/// The state of another identity after `events` (only its own events are folded).
fn fold(id: &ContactId, events: &[Event]) -> ContactState {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Contact(e) if e.contact() == id => Some(e),
            _ => None,
        })
        .fold(ContactState::default(), |state, e| state.apply(e))
}

fn link(fx: &mut Fx, other: &ContactId) -> Vec<Event> {
    let command = LinkIdentities {
        contact: fx.contact_id.clone(),
        other: other.clone(),
        source: IdentitySource::Webhook,
    };
    let events = decide::link_identities(&fx.contact, &command, t0() - hours(2));
    fx.apply(&events);
    events
}

/// A STOP typed under `other`: its stream's events.
fn stop_under(
    other: &ContactId,
    linked_to: &ContactId,
    at: wagate_domain::Timestamp,
) -> ContactState {
    let mut state = ContactState::default().apply(&ContactEvent::IdentityLinked {
        contact: other.clone(),
        other: linked_to.clone(),
        source: IdentitySource::Webhook,
        at: at - hours(1),
    });
    let command = ReceiveInbound {
        details: Vec::new(),
        contact: other.clone(),
        sender: None,
        provider_ref: None,
        kind: "text".into(),
        text: "STOP".into(),
        provider_at: None,
    };
    let events = decide::inbound(&state, &command, &wagate_domain::Policy::default(), at)
        .expect("a STOP with no provider time is accepted");
    for event in events {
        if let Event::Contact(e) = event {
            state = state.apply(&e);
        }
    }
    state
}

#[test]
fn a_link_is_written_to_both_streams_once() {
    let mut fx = Fx::ready();
    let events = link(&mut fx, &bsuid());
    assert_eq!(events.len(), 2);
    assert!(fx.contact.linked.contains(&bsuid()));
    assert!(fold(&bsuid(), &events).linked.contains(&fx.contact_id));
    // Linked already, or to itself: nothing.
    assert_eq!(link(&mut fx, &bsuid()), vec![]);
    let own = fx.contact_id.clone();
    assert_eq!(link(&mut fx, &own), vec![]);
}

#[test]
fn a_stop_under_a_linked_identity_refuses_a_send_to_the_number() {
    let mut fx = Fx::ready();
    link(&mut fx, &bsuid());
    fx.linked = vec![stop_under(&bsuid(), &fx.contact_id, t0() - hours(1))];
    let command = fx.default_template_send();
    let refusal = fx.send(&command, t0()).expect_err("refused");
    assert_eq!(refusal.rule, RuleId::OptedOut);
    // Without the link's state the same send is allowed: the refusal comes from the link.
    fx.linked.clear();
    let command = fx.default_template_send();
    fx.send(&command, t0())
        .expect("allowed without the linked opt-out");
}

#[test]
fn a_stop_under_a_linked_identity_landing_before_the_claim_refuses_it() {
    let mut fx = Fx::ready();
    link(&mut fx, &bsuid());
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    fx.linked = vec![stop_under(&bsuid(), &fx.contact_id, t0() + mins(1))];
    match fx.claim(&message, t0() + mins(2)) {
        ClaimDecision::Refused { refusal, .. } => assert_eq!(refusal.rule, RuleId::OptedOut),
        other => panic!("{other:?}"),
    }
}

#[test]
fn consent_is_the_most_restrictive_on_record() {
    let opted_in = Fx::ready().contact;
    let opted_out = stop_under(&bsuid(), &contact_id(TO), t0());
    let unknown = ContactState::default();

    // An opt-out anywhere wins, whichever identity holds it.
    assert!(opted_in
        .with_linked(std::slice::from_ref(&opted_out))
        .is_opted_out());
    assert!(opted_out
        .with_linked(std::slice::from_ref(&opted_in))
        .is_opted_out());
    assert!(unknown
        .with_linked(&[opted_in.clone(), opted_out.clone()])
        .is_opted_out());
    // An identity with nothing on record says nothing: it hides no opt-in.
    assert!(opted_in
        .with_linked(std::slice::from_ref(&unknown))
        .is_opted_in());
    assert!(unknown
        .with_linked(std::slice::from_ref(&opted_in))
        .is_opted_in());
    assert!(!unknown.with_linked(&[]).is_opted_in());
}

#[test]
fn a_marketing_pause_and_review_requests_follow_the_person_but_the_window_does_not() {
    let mut other = Fx::empty();
    other.contact_id = bsuid();
    other.flag(wagate_domain::ContactFlag::MarketingPaused, t0());
    other.inbound("text", "please stop texting me", t0());
    let number = Fx::ready().contact;
    let effective = number.with_linked(&[other.contact.clone()]);
    assert!(effective.marketing_paused_since.is_some());
    assert_eq!(effective.reviews_requested, 1);
    // The other identity's inbound opened its own window, not the number's.
    assert!(other.contact.last_inbound_at.is_some());
    assert_eq!(effective.last_inbound_at, None);
}

#[test]
fn a_group_message_opens_no_window_and_a_stop_in_it_opts_out_and_asks_for_review() {
    let mut fx = Fx::ready();
    let command = ReceiveGroupMessage {
        contact: fx.contact_id.clone(),
        group: "120363025246125486".into(),
        sender: Some(fx.sender_address.clone()),
        provider_ref: None,
        kind: "text".into(),
        text: "STOP".into(),
    };
    let events = decide::group_inbound(&fx.contact, &command, t0());
    fx.apply(&events);
    let types: Vec<&str> = events.iter().map(Event::type_name).collect();
    assert_eq!(
        types,
        ["GroupMessageReceived", "OptedOut", "OptOutReviewRequested"]
    );
    assert_eq!(fx.contact.last_inbound_at, None, "no one-to-one window");
    assert!(fx.contact.is_opted_out());

    // Any other group message: recorded, nothing else; START in a group is no consent.
    let mut fresh = Fx::empty();
    for text in ["hello all", "START"] {
        let command = ReceiveGroupMessage {
            text: text.into(),
            contact: fresh.contact_id.clone(),
            ..command.clone()
        };
        let events = decide::group_inbound(&fresh.contact, &command, t0());
        fresh.apply(&events);
        assert_eq!(events.len(), 1, "{text}");
    }
    assert!(!fresh.contact.is_opted_in());
    assert_eq!(fresh.contact.last_inbound_at, None);
}

#[test]
fn a_send_response_naming_another_wa_id_asks_for_a_link() {
    let mut fx = Fx::ready();
    let command = fx.default_template_send();
    let message = fx.allowed(&command, t0());
    let outcome = |recipient: Option<ContactId>| decide::RecordOutcome {
        message_id: command.message_id,
        attempt: 1,
        outcome: decide::DispatchOutcome::Accepted {
            provider_ref: wagate_domain::ProviderMessageRef::parse("wamid.ABC=").expect("wamid"),
            provider_status: wagate_domain::MessageStatus::Accepted,
            recipient,
        },
        jitter: chrono::TimeDelta::zero(),
    };
    let wa_id = contact_id("+551188887777");
    let link = outcome(Some(wa_id.clone()))
        .identity_link(&message)
        .expect("a link");
    assert_eq!(link.contact, fx.contact_id);
    assert_eq!(link.other, wa_id);
    assert_eq!(link.source, IdentitySource::SendResponse);
    assert_eq!(
        outcome(Some(fx.contact_id.clone())).identity_link(&message),
        None
    );
    assert_eq!(outcome(None).identity_link(&message), None);
}
