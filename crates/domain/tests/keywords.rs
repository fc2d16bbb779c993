//! STOP/START keywords through `decide::inbound`.

use wagate_domain::{Consent, ContactEvent, OptInSource, OptOutSource, RuleId};

use crate::support::*;

#[test]
fn stop_opts_out_and_blocks_every_send() {
    let mut fx = Fx::ready();
    let events = fx.inbound("text", " Stop! ", t0());
    assert_eq!(type_names(&events), ["InboundReceived", "OptedOut"]);
    match &contact_events(&events)[1] {
        ContactEvent::OptedOut { source, detail, .. } => {
            assert_eq!((*source, detail.as_str()), (OptOutSource::Keyword, "STOP"));
        }
        other => panic!("{other:?}"),
    }
    assert!(fx.contact.is_opted_out());
    // The STOP itself opened the window, but the opt-out wins.
    let command = fx.freeform_send();
    check_refusal(
        &fx.send(&command, t0() + mins(1)),
        RuleId::OptedOut,
        "opted out",
        &[],
    );
    // A second STOP changes nothing.
    let events = fx.inbound("text", "unsubscribe", t0() + mins(2));
    assert_eq!(type_names(&events), ["InboundReceived"]);
}

#[test]
fn every_stop_family_keyword_opts_out() {
    for word in [
        "STOP",
        "stopall",
        "Unsubscribe",
        "cancel",
        "END",
        "quit",
        "revoke",
        "opt-out",
        "Arrêt",
        "baja",
    ] {
        let mut fx = Fx::ready();
        let events = fx.inbound("text", word, t0());
        assert_eq!(
            type_names(&events),
            ["InboundReceived", "OptedOut"],
            "{word}"
        );
    }
}

#[test]
fn start_opts_back_in_with_a_keyword_receipt() {
    let mut fx = Fx::ready();
    fx.inbound("text", "STOP", t0());
    let events = fx.inbound("text", "start", t0() + hours(1));
    assert_eq!(type_names(&events), ["InboundReceived", "OptedIn"]);
    match &fx.contact.consent {
        Consent::OptedIn(receipt) => {
            assert_eq!(receipt.source, OptInSource::Keyword);
            assert_eq!(receipt.recorded_by, "wagate:keyword");
            assert_eq!(receipt.wording_version, fx.policy.keyword_wording_version);
            assert!(receipt.evidence.contains("START"), "{}", receipt.evidence);
            assert_eq!(receipt.at, t0() + hours(1));
        }
        other => panic!("{other:?}"),
    }
    let command = fx.default_template_send();
    assert!(fx.send(&command, t0() + hours(2)).is_ok());

    // START from a contact never seen is an explicit opt-in too; from an opted-in one, nothing.
    let mut fx = Fx::empty();
    let events = fx.inbound("text", "UNSTOP", t0());
    assert_eq!(type_names(&events), ["InboundReceived", "OptedIn"]);
    let events = fx.inbound("text", "START", t0());
    assert_eq!(type_names(&events), ["InboundReceived"]);
}

#[test]
fn yes_only_re_opts_in_an_opted_out_contact() {
    let mut fx = Fx::empty();
    let events = fx.inbound("text", "yes", t0());
    assert_eq!(
        type_names(&events),
        ["InboundReceived"],
        "unknown contact: yes is an ordinary answer"
    );
    assert!(!fx.contact.is_opted_in());

    let mut fx = Fx::ready();
    let events = fx.inbound("text", "Yes", t0());
    assert_eq!(type_names(&events), ["InboundReceived"], "already opted in");

    fx.inbound("text", "STOP", t0() + mins(1));
    let events = fx.inbound("text", "YES!", t0() + mins(2));
    assert_eq!(type_names(&events), ["InboundReceived", "OptedIn"]);
    assert!(fx.contact.is_opted_in());
}

#[test]
fn a_sentence_mentioning_stop_asks_a_person() {
    let mut fx = Fx::ready();
    let events = fx.inbound("text", "please stop texting me", t0());
    assert_eq!(
        type_names(&events),
        ["InboundReceived", "OptOutReviewRequested"]
    );
    match &contact_events(&events)[1] {
        ContactEvent::OptOutReviewRequested { text, matched, .. } => {
            assert_eq!(
                (text.as_str(), matched.as_str()),
                ("please stop texting me", "STOP")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(fx.contact.is_opted_in(), "not applied");
    assert_eq!(fx.contact.reviews_requested, 1);

    // "don't stop" is not an opt-out either; an ordinary sentence is nothing.
    let events = fx.inbound("text", "don't stop", t0());
    assert_eq!(
        type_names(&events),
        ["InboundReceived", "OptOutReviewRequested"]
    );
    let events = fx.inbound("text", "Can we cancel Thursday's viewing?", t0());
    assert_eq!(type_names(&events), ["InboundReceived"]);

    // Already opted out: nothing left to review.
    fx.opt_out(t0());
    let events = fx.inbound("text", "stop messaging me", t0());
    assert_eq!(type_names(&events), ["InboundReceived"]);
}

#[test]
fn media_bodies_are_ignored_but_taps_count() {
    for kind in ["image", "document", "audio", "location", "sticker"] {
        let mut fx = Fx::ready();
        // A document called "STOP" is a file name, not a keyword.
        let events = fx.inbound(kind, "STOP", t0());
        assert_eq!(type_names(&events), ["InboundReceived"], "{kind}");
        assert!(fx.contact.is_opted_in());
        assert_eq!(
            fx.contact.last_inbound_at,
            Some(t0()),
            "{kind} opens the window"
        );
    }
    for kind in ["button", "interactive"] {
        let mut fx = Fx::ready();
        let events = fx.inbound(kind, "Stop", t0());
        assert_eq!(
            type_names(&events),
            ["InboundReceived", "OptedOut"],
            "{kind}"
        );
    }
}

#[test]
fn an_inbound_is_not_an_opt_in() {
    let mut fx = Fx::empty();
    fx.inbound("text", "Hello, is the flat still available?", t0());
    assert!(!fx.contact.is_opted_in());
    assert_eq!(fx.contact.consent, Consent::Unknown);
}
