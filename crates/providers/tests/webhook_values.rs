//! Every value a genuine webhook carries reaches the events the parsers make (structured or in
//! their `details`), and the shapes the issue lists parse into the events they should: Flow
//! answers, locations, reactions and their removal, shared contacts, orders, media, referrals,
//! reply context, status pricing and errors, value-level errors beside a message, account
//! notices, a Twilio status with an informational `To` that does not parse.

mod common;

use common::fixture;
use serde_json::Value;
use wagate_domain::StatusPricing;
use wagate_providers::meta::{account_signals, parse_webhook, AccountSignal};
use wagate_providers::twilio::{parse_inbound, parse_status};
use wagate_providers::{PreferenceValue, WebhookEvent};

/// Envelope words that say which kind of webhook it is rather than what it says.
const ENVELOPE: [&str; 5] = [
    "whatsapp_business_account",
    "messages",
    "user_preferences",
    "whatsapp",
    "individual",
];

fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Null => {}
    }
}

/// Whether the `Debug` text of some events holds `value` (strings are escaped there, status
/// words are enum names).
fn holds(events: &str, value: &str) -> bool {
    let escaped = format!("{value:?}");
    let escaped = &escaped[1..escaped.len() - 1];
    events.contains(value)
        || events.contains(escaped)
        || events.to_lowercase().contains(&value.to_lowercase())
}

/// The values of `file` no event holds.
fn missing_meta_values(file: &str) -> Vec<String> {
    let body = fixture(file);
    let parsed = parse_webhook(&body).expect(file);
    assert_eq!(parsed.rejected, vec![], "{file}");
    let events = format!("{:?}", parsed.events);
    let mut values = Vec::new();
    leaves(&serde_json::from_slice(&body).expect("json"), &mut values);
    values
        .into_iter()
        .filter(|v| !v.is_empty() && !ENVELOPE.contains(&v.as_str()))
        .filter(|v| !holds(&events, v))
        .collect()
}

#[test]
fn every_value_of_every_meta_fixture_reaches_an_event() {
    for file in [
        "meta_webhook_inbound_rich.json",
        "meta_webhook_status_pricing.json",
        "meta_webhook_status_failed_131047.json",
        "meta_webhook_errors_beside_message.json",
        "meta_webhook_account_update_restriction.json",
        "meta_webhook_account_update_disabled.json",
        "meta_webhook_phone_number_quality_update.json",
        "meta_webhook_business_capability_update.json",
        "meta_webhook_user_preferences_signup.json",
        "meta_webhook_inbound_text.json",
        "meta_webhook_inbound_button_reply.json",
        "meta_webhook_inbound_interactive_button_reply.json",
        "meta_webhook_batched.json",
    ] {
        assert_eq!(missing_meta_values(file), Vec::<String>::new(), "{file}");
    }
}

#[test]
fn every_value_of_every_twilio_fixture_reaches_its_event() {
    for file in [
        "twilio_inbound_text.form",
        "twilio_inbound_button_reply.form",
        "twilio_inbound_media.form",
        "twilio_inbound_location.form",
        "twilio_inbound_referral.form",
    ] {
        let body = fixture(file);
        let event = format!("{:?}", parse_inbound(&body).expect(file));
        for (key, value) in url::form_urlencoded::parse(&body) {
            assert!(holds(&event, &value), "{file}: {key}={value}");
        }
    }
    for file in [
        "twilio_status_sent.form",
        "twilio_status_delivered.form",
        "twilio_status_read.form",
        "twilio_status_failed_63016.form",
        "twilio_status_failed_error_message.form",
        "twilio_status_undelivered_63024.form",
    ] {
        let body = fixture(file);
        let event = format!("{:?}", parse_status(&body, "").expect(file));
        for (key, value) in url::form_urlencoded::parse(&body) {
            assert!(holds(&event, &value), "{file}: {key}={value}");
        }
    }
}

fn detail<'a>(details: &'a [(String, String)], key: &str) -> Option<&'a str> {
    details
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn rich_inbound_shapes_keep_their_machine_readable_parts() {
    let parsed = parse_webhook(&fixture("meta_webhook_inbound_rich.json")).expect("parses");
    let inbound: Vec<_> = parsed
        .events
        .iter()
        .map(|e| match e {
            WebhookEvent::Inbound(m) => m,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(inbound.len(), 9);
    let flow = &inbound[0].details;
    assert!(detail(flow, "interactive.nfm_reply.response_json")
        .is_some_and(|j| j.contains("viewing-42")));
    assert!(inbound[0].reply_to.is_some());
    assert_eq!(
        detail(&inbound[1].details, "location.latitude"),
        Some("52.520008")
    );
    assert_eq!(detail(&inbound[2].details, "reaction.emoji"), Some("👍"));
    // A removed reaction is an empty emoji: kept as such.
    assert_eq!(detail(&inbound[3].details, "reaction.emoji"), Some(""));
    assert!(detail(&inbound[3].details, "reaction.message_id").is_some());
    assert_eq!(
        detail(&inbound[4].details, "contacts[0].phones[0].wa_id"),
        Some("41790000002")
    );
    assert_eq!(
        detail(
            &inbound[5].details,
            "order.product_items[0].product_retailer_id"
        ),
        Some("listing-B-117")
    );
    assert_eq!(
        detail(&inbound[6].details, "image.id"),
        Some("1466753517586094")
    );
    assert!(
        detail(&inbound[7].details, "referral.ctwa_clid").is_some_and(|c| c.starts_with("ARAk"))
    );
    // A text's body is the event's text, not repeated in the details.
    assert_eq!(detail(&inbound[7].details, "text.body"), None);
    assert_eq!(
        detail(&inbound[8].details, "button.payload"),
        Some("reschedule-viewing-42")
    );
    for message in &inbound {
        assert_eq!(message.profile_name.as_deref(), Some("Lea Muster"));
        assert_eq!(
            detail(&message.details, "contact.profile.name"),
            Some("Lea Muster")
        );
        assert_eq!(
            detail(&message.details, "metadata.phone_number_id"),
            Some("109876543210987")
        );
    }
}

#[test]
fn statuses_keep_pricing_conversation_and_every_error_compactly() {
    let parsed = parse_webhook(&fixture("meta_webhook_status_pricing.json")).expect("parses");
    let WebhookEvent::Status(sent) = &parsed.events[0] else {
        panic!("{:?}", parsed.events)
    };
    assert_eq!(detail(&sent.details, "pricing.category"), Some("marketing"));
    assert_eq!(
        detail(&sent.details, "conversation.origin.type"),
        Some("marketing")
    );
    // The id and the status word are the event's own fields.
    assert_eq!(detail(&sent.details, "id"), None);
    assert_eq!(detail(&sent.details, "status"), None);
    let parsed = parse_webhook(&fixture("meta_webhook_status_failed_131047.json")).expect("parses");
    let WebhookEvent::Status(failed) = &parsed.events[0] else {
        panic!("{:?}", parsed.events)
    };
    assert_eq!(detail(&failed.details, "errors[0].code"), Some("131047"));
    assert!(detail(&failed.details, "errors[0].title").is_some());
}

/// Meta's `pricing` object is a typed field of the status: the old per-conversation shape
/// (`CBP`, no `type`) and the per-message one (`PMP`, `type`); a status without one has none.
#[test]
fn statuses_carry_meta_pricing_typed() {
    let parsed = parse_webhook(&fixture("meta_webhook_status_pricing.json")).expect("parses");
    let [WebhookEvent::Status(sent), WebhookEvent::Status(delivered)] = parsed.events.as_slice()
    else {
        panic!("{:?}", parsed.events)
    };
    assert_eq!(
        sent.pricing,
        Some(StatusPricing {
            billable: Some(true),
            pricing_model: Some("CBP".into()),
            category: Some("marketing".into()),
            kind: None,
        })
    );
    assert_eq!(
        delivered.pricing,
        Some(StatusPricing {
            billable: Some(true),
            pricing_model: Some("PMP".into()),
            category: Some("marketing".into()),
            kind: Some("regular".into()),
        })
    );
    let parsed = parse_webhook(&fixture("meta_webhook_status_read.json")).expect("parses");
    let WebhookEvent::Status(read) = &parsed.events[0] else {
        panic!("{:?}", parsed.events)
    };
    assert_eq!(read.pricing, None);
}

#[test]
fn value_level_errors_are_a_notice_beside_the_message() {
    let parsed =
        parse_webhook(&fixture("meta_webhook_errors_beside_message.json")).expect("parses");
    assert_eq!(parsed.rejected, vec![]);
    let [WebhookEvent::Inbound(message), WebhookEvent::Notice(notice)] = parsed.events.as_slice()
    else {
        panic!("{:?}", parsed.events)
    };
    assert_eq!(message.content.typed_text(), Some("Still there?"));
    assert_eq!(notice.kind, "errors");
    assert_eq!(notice.get("value.errors[0].code"), Some("130429"));
    assert_eq!(notice.get("value.errors[1].code"), Some("131000"));
    assert_eq!(notice.get("entry.time"), Some("1795598502"));
}

#[test]
fn account_notices_become_signals() {
    let signals_of = |file: &str| {
        let parsed = parse_webhook(&fixture(file)).expect(file);
        let [WebhookEvent::Notice(notice)] = parsed.events.as_slice() else {
            panic!("{file}: {:?}", parsed.events)
        };
        assert_eq!(notice.account.as_deref(), Some("102938475610293"));
        account_signals(notice)
    };
    assert!(matches!(
        &signals_of("meta_webhook_account_update_restriction.json")[..],
        [AccountSignal::Restricted { .. }]
    ));
    assert!(matches!(
        &signals_of("meta_webhook_account_update_disabled.json")[..],
        [AccountSignal::Restricted { .. }]
    ));
    assert_eq!(
        signals_of("meta_webhook_business_capability_update.json"),
        vec![AccountSignal::MessagingLimit(
            wagate_domain::MessagingLimit::Limited(10_000)
        )]
    );
    let quality = signals_of("meta_webhook_phone_number_quality_update.json");
    assert!(matches!(
        &quality[..],
        [
            AccountSignal::MessagingLimit(_),
            AccountSignal::QualityDrop { .. }
        ]
    ));
}

#[test]
fn signup_resumes_marketing() {
    let parsed =
        parse_webhook(&fixture("meta_webhook_user_preferences_signup.json")).expect("parses");
    let prefs: Vec<_> = parsed
        .events
        .iter()
        .map(|e| match e {
            WebhookEvent::UserPreference(p) => p.preference.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(prefs, [PreferenceValue::Stop, PreferenceValue::Resume]);
}
