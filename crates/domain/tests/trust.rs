//! Issue 11's rules: facts come from their sources (keyword consent only from the contact, no
//! re-opt-in over a STOP without newer evidence, a changed registration withdraws the sender's
//! authorization), time and replay (consent ordered by when the person wrote, provider times in
//! the future refused, replays older than the retry horizon open nothing), and the 24 h window
//! per business number.

use wagate_domain::decide::{
    self, CommandError, ReceiveInbound, RecordOptIn, RegisterSender, SendDecision, SendState,
};
use wagate_domain::{
    Consent, ContactEvent, Event, OptInSource, OptOutSource, PortfolioId, ProviderKind, RuleId,
    SenderRate, SenderState, TemplateCategory, Timestamp, WhatsAppAddress,
};

use crate::support::*;

const OTHER_SENDER: &str = "+15550002222";

fn days(n: i64) -> chrono::TimeDelta {
    chrono::TimeDelta::days(n)
}

/// An inbound from the contact to `sender`, written at `provider_at` by the provider's clock and
/// received at `at`; folded into the fixture when it is accepted.
fn inbound_to(
    fx: &mut Fx,
    sender: &WhatsAppAddress,
    text: &str,
    provider_at: Option<Timestamp>,
    at: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    let command = ReceiveInbound {
        details: Vec::new(),
        contact: fx.contact_id.clone(),
        sender: Some(sender.clone()),
        provider_ref: None,
        kind: "text".into(),
        text: text.into(),
        provider_at,
    };
    let events = decide::inbound(&fx.contact, &command, &fx.policy, at)?;
    fx.apply(&events);
    Ok(events)
}

fn meta_inbound(fx: &mut Fx, text: &str, written: Timestamp, at: Timestamp) -> Vec<Event> {
    let sender = fx.sender_address.clone();
    inbound_to(fx, &sender, text, Some(written), at).expect("valid inbound")
}

fn api_opt_in(evidence_at: Option<Timestamp>, source: OptInSource, fx: &Fx) -> RecordOptIn {
    RecordOptIn {
        contact: fx.contact_id.clone(),
        source,
        evidence: "https://acme.example/form/43".into(),
        recorded_by: "ops@acme".into(),
        wording_version: published_wording_version(),
        evidence_at,
    }
}

#[track_caller]
fn field_error(result: Result<Vec<Event>, CommandError>, field: &str, fragment: &str) {
    match result {
        Err(CommandError::InvalidField { field: f, reason }) => {
            assert_eq!(f, field, "{reason}");
            assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}");
        }
        other => panic!("expected an error naming {field}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Facts come from their sources

#[test]
fn keyword_consent_never_comes_from_the_api() {
    let fx = Fx::empty();
    let command = api_opt_in(None, OptInSource::Keyword, &fx);
    field_error(
        decide::opt_in(&fx.contact, &published_wording(), &command, t0()),
        "source",
        "only from the contact's own message",
    );
    // The contact's own START is where keyword consent comes from.
    let mut fx = Fx::empty();
    let events = meta_inbound(&mut fx, "START", t0(), t0());
    assert!(matches!(
        contact_events(&events)[..],
        [
            ContactEvent::InboundReceived { .. },
            ContactEvent::OptedIn {
                source: OptInSource::Keyword,
                ..
            }
        ]
    ));
}

#[test]
fn after_a_stop_only_newer_evidence_opts_in_again() {
    let mut fx = Fx::ready();
    meta_inbound(&mut fx, "STOP", t0(), t0());
    assert!(fx.contact.is_opted_out());
    let now = t0() + hours(2);
    let cases = [
        (None, "needs evidence_at"),
        (Some(t0() - hours(1)), "is not after the contact's opt-out"),
        (Some(t0()), "is not after the contact's opt-out"),
        (Some(now + mins(1)), "is in the future"),
    ];
    for (evidence_at, fragment) in cases {
        let command = api_opt_in(evidence_at, OptInSource::WebForm, &fx);
        field_error(
            decide::opt_in(&fx.contact, &published_wording(), &command, now),
            "evidence_at",
            fragment,
        );
    }
    assert!(fx.contact.is_opted_out());

    let command = api_opt_in(Some(t0() + hours(1)), OptInSource::WebForm, &fx);
    let events =
        decide::opt_in(&fx.contact, &published_wording(), &command, now).expect("newer evidence");
    fx.apply(&events);
    match &fx.contact.consent {
        Consent::OptedIn(receipt) => {
            assert_eq!(receipt.evidence_at, t0() + hours(1));
            assert_eq!(receipt.at, now);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_opt_in_without_a_stop_is_dated_now_unless_told() {
    let fx = Fx::empty();
    let command = api_opt_in(None, OptInSource::QrCode, &fx);
    let events = decide::opt_in(&fx.contact, &published_wording(), &command, t0()).expect("valid");
    assert!(matches!(
        contact_events(&events)[..],
        [ContactEvent::OptedIn { evidence_at, .. }] if evidence_at == t0()
    ));
    let command = api_opt_in(Some(t0() - days(3)), OptInSource::QrCode, &fx);
    let events = decide::opt_in(&fx.contact, &published_wording(), &command, t0()).expect("valid");
    assert!(matches!(
        contact_events(&events)[..],
        [ContactEvent::OptedIn { evidence_at, .. }] if evidence_at == t0() - days(3)
    ));
}

fn sender_state(events: &[Event]) -> SenderState {
    events
        .iter()
        .fold(SenderState::default(), |state, event| match event {
            Event::Sender(e) => state.apply(e),
            _ => state,
        })
}

/// A sender's rate (tier or an operator's figure) is part of its registration: a change is a
/// new registration event that keeps the authorization (same channel, other throughput), and a
/// figure no provider offers is refused naming the field.
#[test]
fn a_sender_rate_is_registered_validated_and_keeps_the_authorization() {
    let register = |rate: SenderRate| RegisterSender {
        sender: address(SENDER),
        provider: ProviderKind::Twilio,
        portfolio: PortfolioId::parse("acme").expect("valid"),
        rate,
        meta_phone_number_id: None,
    };
    let mut fx = Fx::ready();
    let own = SenderRate {
        upgraded: false,
        per_second: Some(20),
    };
    let events = decide::register_sender(&fx.sender, &register(own), t0()).expect("valid");
    assert_eq!(events.len(), 1, "a changed rate is recorded");
    fx.apply(&events);
    assert!(fx.sender.may_send(), "a rate change is not another channel");
    let registration = fx.sender.registration.as_ref().expect("registered");
    assert_eq!(registration.rate_per_second(), 20);
    assert!(decide::register_sender(&fx.sender, &register(own), t0())
        .expect("valid")
        .is_empty());
    for bad in [0, 1001] {
        let rate = SenderRate {
            upgraded: false,
            per_second: Some(bad),
        };
        match decide::register_sender(&fx.sender, &register(rate), t0()) {
            Err(CommandError::InvalidField { field, .. }) => assert_eq!(field, "rate_per_second"),
            other => panic!("{bad}/s was not refused: {other:?}"),
        }
    }
    // Tiers: Twilio has one; a Cloud API number is 80 until Meta upgrades it.
    let upgraded = SenderRate {
        upgraded: true,
        per_second: None,
    };
    assert_eq!(upgraded.per_second_for(ProviderKind::Twilio), 80);
    assert_eq!(upgraded.per_second_for(ProviderKind::Meta), 1000);
    assert_eq!(SenderRate::default().per_second_for(ProviderKind::Meta), 80);
}

#[test]
fn a_changed_registration_withdraws_the_authorization() {
    let register = |portfolio: &str, provider: ProviderKind, id: Option<&str>| RegisterSender {
        sender: address(SENDER),
        provider,
        portfolio: PortfolioId::parse(portfolio).expect("valid"),
        rate: Default::default(),
        meta_phone_number_id: id.map(str::to_owned),
    };
    let changes = [
        register("other", ProviderKind::Twilio, None),
        register("acme", ProviderKind::Meta, Some("1099")),
    ];
    for change in changes {
        let mut fx = Fx::ready();
        assert!(fx.sender.may_send());
        // The same registration again changes nothing.
        let same = decide::register_sender(
            &fx.sender,
            &register("acme", ProviderKind::Twilio, None),
            t0(),
        )
        .expect("valid");
        assert!(same.is_empty());

        let events = decide::register_sender(&fx.sender, &change, t0()).expect("valid");
        fx.apply(&events);
        assert!(!fx.sender.may_send(), "{change:?} kept the authorization");
        let command = fx.default_template_send();
        check_refusal(
            &fx.send(&command, t0() + mins(1)),
            RuleId::ChannelNotAuthorized,
            "registration changed since it was authorized",
            &[],
        );
        fx.authorize_sender(t0() + mins(2));
        let command = fx.default_template_send();
        assert!(fx.send(&command, t0() + mins(3)).is_ok());
    }
    // A Meta sender whose phone-number id changes is another channel too.
    let mut events = decide::register_sender(
        &SenderState::default(),
        &register("acme", ProviderKind::Meta, Some("1099")),
        t0(),
    )
    .expect("valid");
    let state = sender_state(&events);
    events.extend(decide::authorize_sender(&state, &address(SENDER), "ops", t0()).expect("ok"));
    let state = sender_state(&events);
    assert!(state.may_send());
    events.extend(
        decide::register_sender(
            &state,
            &register("acme", ProviderKind::Meta, Some("2088")),
            t0(),
        )
        .expect("valid"),
    );
    let state = sender_state(&events);
    assert!(!state.may_send() && state.authorization_withdrawn);
}

// ---------------------------------------------------------------------------------------------
// Time and replay

#[test]
fn a_late_start_never_reopts_in_over_a_newer_stop() {
    let mut fx = Fx::ready();
    // STOP written at t0, delivered at once.
    meta_inbound(&mut fx, "STOP", t0(), t0());
    // A START written five minutes before it, delivered after it: recorded, not applied.
    let events = meta_inbound(&mut fx, "START", t0() - mins(5), t0() + mins(1));
    assert_eq!(type_names(&events), ["InboundReceived"]);
    assert!(fx.contact.is_opted_out());
    // A START written after the STOP opts in again, dated when it was written.
    let events = meta_inbound(&mut fx, "START", t0() + mins(2), t0() + mins(3));
    assert_eq!(type_names(&events), ["InboundReceived", "OptedIn"]);
    assert!(matches!(
        contact_events(&events)[1],
        ContactEvent::OptedIn { evidence_at, at, .. } if evidence_at == t0() + mins(2) && at == t0() + mins(3)
    ));
}

#[test]
fn a_second_stop_from_an_opted_out_person_still_dates_the_newest_opt_out() {
    let mut fx = Fx::ready();
    meta_inbound(&mut fx, "STOP", t0(), t0());
    // Already opted out: the second STOP appends only the inbound, but it is the newest STOP.
    let events = meta_inbound(&mut fx, "STOP", t0() + mins(10), t0() + mins(10));
    assert_eq!(type_names(&events), ["InboundReceived"]);
    assert_eq!(fx.contact.last_opt_out_at, Some(t0() + mins(10)));
    // A START written between the two STOPs, delivered last, is older than the newest one.
    let events = meta_inbound(&mut fx, "START", t0() + mins(5), t0() + mins(20));
    assert_eq!(type_names(&events), ["InboundReceived"]);
    assert!(fx.contact.is_opted_out());
}

#[test]
fn a_late_stop_still_opts_out() {
    let mut fx = Fx::ready();
    meta_inbound(&mut fx, "STOP", t0(), t0());
    meta_inbound(&mut fx, "START", t0() + mins(10), t0() + mins(10));
    assert!(fx.contact.is_opted_in());
    // A STOP written between the two, delivered last: it sends less, so it counts.
    let events = meta_inbound(&mut fx, "STOP", t0() + mins(5), t0() + mins(20));
    assert_eq!(type_names(&events), ["InboundReceived", "OptedOut"]);
    match &fx.contact.consent {
        Consent::OptedOut {
            source,
            evidence_at,
            at,
            ..
        } => {
            assert_eq!(*source, OptOutSource::Keyword);
            assert_eq!(*evidence_at, t0() + mins(5));
            assert_eq!(*at, t0() + mins(20));
        }
        other => panic!("{other:?}"),
    }
    // The newest STOP is now the one written at +5 min: consent changes are ordered by it.
    assert_eq!(fx.contact.last_opt_out_at, Some(t0() + mins(5)));
}

#[test]
fn a_provider_time_in_the_future_is_refused_and_records_nothing() {
    let mut fx = Fx::ready();
    let sender = fx.sender_address.clone();
    let before = fx.log.len();
    field_error(
        inbound_to(&mut fx, &sender, "START", Some(t0() + mins(6)), t0()),
        "timestamp",
        "in the future",
    );
    assert_eq!(fx.log.len(), before);
    // Within the clock skew it is accepted, and the window runs from receipt, never later.
    inbound_to(&mut fx, &sender, "hello", Some(t0() + mins(4)), t0()).expect("within skew");
    assert_eq!(fx.contact.last_inbound_at, Some(t0()));
    assert_eq!(
        fx.contact.window_open_until_for(&sender, mins(10)),
        Some(t0() + hours(24) - mins(10))
    );
}

#[test]
fn the_window_runs_from_when_the_person_wrote() {
    let mut fx = Fx::ready();
    // Written 20 h ago, delivered now (Meta retried): 4 h of window remain, less the margin.
    meta_inbound(&mut fx, "Is Thursday ok?", t0() - hours(20), t0());
    let command = fx.freeform_send();
    assert!(fx.send(&command, t0() + hours(3)).is_ok());
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0() + hours(4) - mins(10)),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );
}

#[test]
fn an_inbound_older_than_the_retry_horizon_opens_nothing() {
    let mut fx = Fx::empty();
    fx.register_sender(t0() - days(30));
    fx.authorize_sender(t0() - days(30));
    // A START written eight days ago (longer than any provider retries): a replay.
    let events = meta_inbound(&mut fx, "START", t0() - days(8), t0());
    assert_eq!(type_names(&events), ["InboundReceived"]);
    assert_eq!(fx.contact.consent, Consent::Unknown);
    assert_eq!(fx.contact.last_inbound_at, None);
    assert!(fx.contact.windows.is_empty());
    // Six days late is a late delivery: recorded, but its window has long closed.
    meta_inbound(&mut fx, "hello", t0() - days(6), t0());
    assert_eq!(fx.contact.last_inbound_at, Some(t0() - days(6)));
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0()),
        RuleId::WindowClosed,
        "is closed",
        &[],
    );
}

// ---------------------------------------------------------------------------------------------
// The window per business number

/// A freeform send from `sender` (registered and authorized like the fixture's own sender).
fn freeform_from(fx: &mut Fx, sender: &str, now: Timestamp) -> SendDecision {
    let address = address(sender);
    let mut events = decide::register_sender(
        &SenderState::default(),
        &RegisterSender {
            sender: address.clone(),
            provider: ProviderKind::Twilio,
            portfolio: PortfolioId::parse("acme").expect("valid"),
            rate: Default::default(),
            meta_phone_number_id: None,
        },
        t0() - days(2),
    )
    .expect("valid");
    let state = sender_state(&events);
    events.extend(decide::authorize_sender(&state, &address, "ops", t0() - days(2)).expect("ok"));
    let state = sender_state(&events);
    let mut command = fx.freeform_send();
    command.sender = address;
    let send_state = SendState {
        sender: &state,
        ..fx.state()
    };
    decide::send(&send_state, &command, &fx.policy, now)
}

#[test]
fn the_window_belongs_to_the_number_the_person_wrote_to() {
    let mut fx = Fx::ready();
    meta_inbound(&mut fx, "Hi", t0(), t0());
    let other = freeform_from(&mut fx, OTHER_SENDER, t0() + hours(1));
    let refusal = other.refusal().expect("refused");
    assert_eq!(refusal.rule, RuleId::WindowClosed);
    assert!(
        refusal
            .message
            .contains("has never written to whatsapp:+15550002222"),
        "{refusal}"
    );
    assert!(freeform_from(&mut fx, SENDER, t0() + hours(1))
        .refusal()
        .is_none());
    // Once the person writes to the other number, it has its own window.
    let other_address = address(OTHER_SENDER);
    inbound_to(&mut fx, &other_address, "and you?", None, t0() + hours(2)).expect("valid");
    assert!(freeform_from(&mut fx, OTHER_SENDER, t0() + hours(3))
        .refusal()
        .is_none());
    assert_eq!(fx.contact.windows.len(), 2);
    // An inbound whose business number is unknown opens no window at all.
    let mut fx = Fx::ready();
    let command = ReceiveInbound {
        details: Vec::new(),
        contact: fx.contact_id.clone(),
        sender: None,
        provider_ref: None,
        kind: "text".into(),
        text: "hi".into(),
        provider_at: None,
    };
    let events = decide::inbound(&fx.contact, &command, &fx.policy, t0()).expect("valid");
    fx.apply(&events);
    assert_eq!(fx.contact.last_inbound_at, Some(t0()));
    assert_eq!(fx.contact.window_open_until(mins(10)), None);
}

#[test]
fn a_window_report_closes_that_senders_window_only() {
    let report = |fx: &mut Fx, sender: Option<&str>, at: Timestamp| {
        fx.apply(&[ContactEvent::WindowReportedClosed {
            contact: fx.contact_id.clone(),
            sender: sender.map(address),
            code: 131047,
            at,
        }
        .into()]);
    };
    let mut fx = Fx::ready();
    meta_inbound(&mut fx, "Hi A", t0(), t0());
    let other = address(OTHER_SENDER);
    inbound_to(&mut fx, &other, "Hi B", None, t0()).expect("valid");
    report(&mut fx, Some(SENDER), t0() + hours(1));
    assert!(freeform_from(&mut fx, SENDER, t0() + hours(2))
        .refusal()
        .is_some_and(|r| r.rule == RuleId::WindowClosed));
    assert!(freeform_from(&mut fx, OTHER_SENDER, t0() + hours(2))
        .refusal()
        .is_none());
    // A late inbound written before the report does not reopen it; a newer one does.
    meta_inbound(&mut fx, "late", t0() + mins(30), t0() + hours(2));
    assert!(freeform_from(&mut fx, SENDER, t0() + hours(2))
        .refusal()
        .is_some());
    meta_inbound(&mut fx, "new", t0() + hours(2), t0() + hours(2));
    assert!(freeform_from(&mut fx, SENDER, t0() + hours(2))
        .refusal()
        .is_none());
    // A report from before schema v2 names no sender: every window closes (it sends less).
    report(&mut fx, None, t0() + hours(3));
    for sender in [SENDER, OTHER_SENDER] {
        assert!(freeform_from(&mut fx, sender, t0() + hours(4))
            .refusal()
            .is_some());
    }
}

#[test]
fn a_providers_window_error_names_the_sender_that_sent() {
    use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
    use wagate_domain::{ProviderError, ProviderKind as Kind};
    let mut fx = Fx::ready();
    meta_inbound(&mut fx, "Hi", t0(), t0());
    let command = fx.freeform_send();
    let message = fx.allowed(&command, t0() + hours(1));
    fx.claim(&message, t0() + hours(1));
    // The intent and the claim, folded from the log (this is the only message in it).
    let message = message_state(&fx.log);
    let outcome = RecordOutcome {
        message_id: message.id.expect("id"),
        attempt: 1,
        outcome: DispatchOutcome::Rejected {
            error: ProviderError {
                provider: Kind::Meta,
                code: Some(131047),
                http_status: Some(400),
                message: "Re-engagement message".into(),
            },
        },
        jitter: chrono::TimeDelta::zero(),
    };
    let events = decide::record_outcome(&message, &outcome, &[], &fx.policy, t0() + hours(1))
        .expect("open claim");
    assert!(events.iter().any(|event| matches!(
        event,
        Event::Contact(ContactEvent::WindowReportedClosed { sender: Some(s), .. }) if *s == fx.sender_address
    )));
}

/// Meta made a utility template marketing, then flagged the number: marketing from it is
/// refused naming `sender_quality_dropped` while the policy says so, utility is not, and a
/// recovery report lifts it. The same drop reported again changes nothing.
#[test]
fn a_quality_drop_pauses_marketing_until_it_recovers() {
    let mut fx = Fx::ready();
    let sender = fx.sender_address.clone();
    let template = fx.template_id.clone();
    let drop = decide::report_sender_quality(&fx.sender, &sender, "FLAGGED", true, t0());
    assert_eq!(drop.len(), 1);
    fx.apply(&drop);
    assert!(
        decide::report_sender_quality(&fx.sender, &sender, "FLAGGED", true, t0()).is_empty(),
        "the same drop again is nothing new"
    );
    let command = fx.default_template_send();
    assert!(
        fx.send(&command, t0()).is_ok(),
        "a utility template is not paused"
    );

    let moved = decide::report_template_category(
        &fx.template,
        &template,
        TemplateCategory::Marketing,
        "UTILITY",
        t0(),
    );
    assert_eq!(moved.len(), 1);
    fx.apply(&moved);
    let command = fx.default_template_send();
    check_refusal(
        &fx.send(&command, t0() + mins(1)),
        RuleId::SenderQualityDropped,
        "quality dropped (FLAGGED)",
        &[],
    );
    fx.policy.pause_marketing_on_quality_drop = false;
    let command = fx.default_template_send();
    assert!(
        fx.send(&command, t0() + mins(2)).is_ok(),
        "the policy is off"
    );
    fx.policy.pause_marketing_on_quality_drop = true;

    let recovered = decide::report_sender_quality(&fx.sender, &sender, "UNFLAGGED", false, t0());
    fx.apply(&recovered);
    let command = fx.default_template_send();
    assert!(fx.send(&command, t0() + mins(3)).is_ok(), "recovered");
}
