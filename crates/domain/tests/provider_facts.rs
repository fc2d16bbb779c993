//! What providers say beyond what the rules read: it is carried into the events unchanged
//! (`details`), and a provider notice is always recorded on its account's stream.

use wagate_domain::decide::{
    self, CommandError, ReceiveInbound, RecordProviderNotice, StatusCallback, StatusDecision,
};
use wagate_domain::{
    ContactEvent, ContactId, ContactState, Event, MessageEvent, MessageStatus, Policy,
    ProviderEvent, ProviderKind, ProviderMessageRef, StreamKey,
};

use crate::support::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn an_inbound_keeps_the_providers_details_and_they_decide_nothing() {
    let details = pairs(&[
        ("button.payload", "stop-marketing"),
        ("referral.ctwa_clid", "ARAkLkA8"),
    ]);
    let command = |details: Vec<(String, String)>| ReceiveInbound {
        contact: ContactId::parse("+41790000001").expect("contact"),
        sender: None,
        provider_ref: None,
        kind: "button".into(),
        text: "STOP".into(),
        provider_at: None,
        details,
    };
    let with = decide::inbound(
        &ContactState::default(),
        &command(details.clone()),
        &Policy::default(),
        t0(),
    )
    .expect("inbound");
    let without = decide::inbound(
        &ContactState::default(),
        &command(Vec::new()),
        &Policy::default(),
        t0(),
    )
    .expect("inbound");
    let Event::Contact(ContactEvent::InboundReceived { details: kept, .. }) = &with[0] else {
        panic!("{with:?}");
    };
    assert_eq!(kept, &details);
    // The same decisions either way: an opt-out from the label, not from the payload.
    assert_eq!(with.len(), without.len());
    assert_eq!(with[1..], without[1..]);
}

#[test]
fn a_status_keeps_its_details_matched_or_not() {
    let details = pairs(&[
        ("pricing.category", "marketing"),
        ("errors[0].title", "Re-engagement message"),
    ]);
    let callback = StatusCallback {
        provider: ProviderKind::Meta,
        provider_ref: Some(ProviderMessageRef::parse("wamid.HBgLNDE3OTAw").expect("wamid")),
        status: MessageStatus::Failed,
        error_code: Some(131047),
        details: details.clone(),
        pricing: None,
    };
    let decision = decide::status_callback(None, &callback, t0()).expect("kept");
    let StatusDecision::Unmatched { events, .. } = decision else {
        panic!("{decision:?}");
    };
    let Event::Message(MessageEvent::UnmatchedStatusReceived { details: kept, .. }) = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!(kept, &details);
    // Joined later, the early status's details travel into its StatusChanged.
    let early: Vec<_> = events.iter().filter_map(decide::EarlyStatus::of).collect();
    assert_eq!(early[0].details, details);
}

#[test]
fn a_provider_notice_is_recorded_on_its_accounts_stream() {
    let command = RecordProviderNotice {
        provider: ProviderKind::Meta,
        account: Some("102938475610293".into()),
        kind: "errors".into(),
        details: pairs(&[("value.errors[0].code", "130429")]),
    };
    let events = decide::record_provider_notice(&command, t0()).expect("recorded");
    assert_eq!(
        events,
        [Event::Provider(ProviderEvent::NoticeReceived {
            provider: ProviderKind::Meta,
            subject: "meta:102938475610293".into(),
            kind: "errors".into(),
            details: pairs(&[("value.errors[0].code", "130429")]),
            at: t0(),
        })]
    );
    assert_eq!(
        events[0].stream(),
        StreamKey::Provider("meta:102938475610293".into())
    );
    assert_eq!(
        events[0].stream().to_string(),
        "provider:meta:102938475610293"
    );
    let without_account = RecordProviderNotice {
        account: None,
        ..command.clone()
    };
    let events = decide::record_provider_notice(&without_account, t0()).expect("recorded");
    assert_eq!(events[0].stream().to_string(), "provider:meta");
    let nameless = RecordProviderNotice {
        kind: String::new(),
        ..command
    };
    assert!(matches!(
        decide::record_provider_notice(&nameless, t0()),
        Err(CommandError::InvalidField { field: "kind", .. })
    ));
}
