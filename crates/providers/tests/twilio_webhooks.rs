//! Twilio webhook fixtures parsed into provider-neutral events.

mod common;

use std::collections::BTreeSet;

use common::fixture;
use wagate_domain::{MessageStatus, ProviderKind};
use wagate_providers::twilio::{parse_inbound, parse_status};
use wagate_providers::{InboundContent, MediaRef, ParseError, WebhookEvent};

#[test]
fn inbound_text() {
    let msg = parse_inbound(&fixture("twilio_inbound_text.form")).expect("parses");
    assert_eq!(msg.id.as_str(), "SM41b8d2e6f0a9c3571e4d8b2f6a0c9e37");
    assert_eq!(msg.from.id.to_string(), "+41790000001");
    assert_eq!(msg.from.bsuid, None);
    assert_eq!(
        msg.to.number.as_ref().map(|n| n.as_str()),
        Some("+15555550100")
    );
    assert_eq!(
        msg.to.account.as_deref(),
        Some("AC3f9d2c41b7e85a06d1c4f0e9a2b7d315")
    );
    assert_eq!(msg.profile_name.as_deref(), Some("Lea Muster"));
    assert_eq!(msg.reply_to, None);
    assert_eq!(
        msg.content.typed_text(),
        Some("Hi, can I move my appointment to Thursday?")
    );
    let event = WebhookEvent::Inbound(msg);
    assert_eq!(event.provider(), ProviderKind::Twilio);
    assert_eq!(
        event.dedup_key().as_str(),
        "twilio/inbound/SM41b8d2e6f0a9c3571e4d8b2f6a0c9e37"
    );
}

#[test]
fn inbound_keywords() {
    for (file, text) in [
        ("twilio_inbound_stop.form", "STOP"),
        ("twilio_inbound_start.form", "START"),
    ] {
        let msg = parse_inbound(&fixture(file)).expect(file);
        assert_eq!(msg.content.typed_text(), Some(text), "{file}");
    }
}

#[test]
fn inbound_button_reply() {
    let msg = parse_inbound(&fixture("twilio_inbound_button_reply.form")).expect("parses");
    assert_eq!(
        msg.content,
        InboundContent::Button {
            text: "Confirm".into(),
            payload: Some("appt:7f3a:confirm".into())
        }
    );
    assert_eq!(
        msg.content.typed_text(),
        None,
        "a button tap is not typed text"
    );
    assert_eq!(
        msg.reply_to.map(|r| r.to_string()).as_deref(),
        Some("SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61")
    );
}

#[test]
fn inbound_media() {
    let msg = parse_inbound(&fixture("twilio_inbound_media.form")).expect("parses");
    assert_eq!(msg.id.as_str(), "MMe3b9f5a1c7d0284e3b9f5a1c7d0284b6");
    assert_eq!(
        msg.content,
        InboundContent::Media {
            kind: "image".into(),
            media: vec![MediaRef::Url {
                url: "https://api.twilio.com/2010-04-01/Accounts/AC3f9d2c41b7e85a06d1c4f0e9a2b7d315/Messages/MMe3b9f5a1c7d0284e3b9f5a1c7d0284b6/Media/ME0c6a2e8f4b1d937c0a6e2f8b4d1c9e72".into(),
                content_type: Some("image/jpeg".into()),
            }],
            caption: Some("Photo of the damaged parcel".into()),
        }
    );
    assert_eq!(
        msg.content.typed_text(),
        None,
        "a caption is not typed text"
    );
}

#[test]
fn status_lifecycle_and_dedup_keys() {
    let sid = "SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61";
    let cases = [
        ("twilio_status_queued.form", MessageStatus::Queued, None),
        ("twilio_status_sent.form", MessageStatus::Sent, None),
        (
            "twilio_status_delivered.form",
            MessageStatus::Delivered,
            Some("DELIVERED"),
        ),
        ("twilio_status_read.form", MessageStatus::Read, Some("READ")),
    ];
    let mut keys = BTreeSet::new();
    for (file, status, event_type) in cases {
        let update = parse_status(&fixture(file), "").expect(file);
        assert_eq!(update.id.as_str(), sid, "{file}");
        assert_eq!(update.status, status, "{file}");
        assert_eq!(update.errors, vec![], "{file}");
        assert_eq!(update.event_type.as_deref(), event_type, "{file}");
        assert_eq!(
            update
                .recipient
                .as_ref()
                .map(|r| r.id.to_string())
                .as_deref(),
            Some("+41790000001")
        );
        assert_eq!(
            update.business.number.as_ref().map(|n| n.as_str()),
            Some("+15555550100")
        );
        assert_eq!(update.message_id, None);
        let key = WebhookEvent::Status(update).dedup_key();
        assert_eq!(
            key.as_str(),
            format!("twilio/status/{sid}/{}/", status.as_str())
        );
        assert!(keys.insert(key), "{file}: keys are distinct per status");
        // A redelivery has the same key.
        let again = WebhookEvent::Status(parse_status(&fixture(file), "").expect(file)).dedup_key();
        assert!(keys.contains(&again));
    }
}

#[test]
fn status_failures_carry_their_codes() {
    let update = parse_status(&fixture("twilio_status_failed_63016.form"), "").expect("parses");
    assert_eq!(update.status, MessageStatus::Failed);
    assert_eq!(update.errors.len(), 1);
    assert_eq!(update.errors[0].code, 63016);
    assert_eq!(
        update.errors[0].details.as_deref(),
        Some("Re-engagement message")
    );
    assert_eq!(
        WebhookEvent::Status(update).dedup_key().as_str(),
        "twilio/status/SM2d7f0b9e4c1a8356f2e0d7c4b9a1e583/failed/63016"
    );

    let update =
        parse_status(&fixture("twilio_status_undelivered_63024.form"), "").expect("parses");
    assert_eq!(update.status, MessageStatus::Undelivered);
    assert_eq!(update.errors[0].code, 63024);
    assert_eq!(
        update.recipient.map(|r| r.id.to_string()).as_deref(),
        Some("+41790000002")
    );
}

#[test]
fn status_callback_query_carries_the_message_id() {
    let id = "0192f0c1-7a3b-7c4d-8e5f-0123456789ab";
    let update = parse_status(
        &fixture("twilio_status_sent.form"),
        &format!("message_id={id}"),
    )
    .expect("parses");
    assert_eq!(
        update.message_id.map(|m| m.to_string()).as_deref(),
        Some(id)
    );
}

#[test]
fn unknown_fields_are_ignored_and_unknown_statuses_kept() {
    let mut body = fixture("twilio_status_sent.form");
    body.extend_from_slice(b"&SomethingNew=1&MessageStatus2=x");
    assert!(parse_status(&body, "").is_ok());
    let body = b"MessageSid=SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61&MessageStatus=partially_delivered";
    let update = parse_status(body, "").expect("parses");
    assert_eq!(
        update.status,
        MessageStatus::Other("partially_delivered".into())
    );
}

#[test]
fn errors_name_the_field() {
    let body = String::from_utf8(fixture("twilio_inbound_text.form"))
        .expect("utf-8")
        .replace("MessageSid=SM41b8d2e6f0a9c3571e4d8b2f6a0c9e37&", "");
    // SmsSid / SmsMessageSid are deprecated duplicates; MessageSid is required.
    assert_eq!(
        parse_inbound(body.as_bytes()),
        Err(ParseError::MissingField {
            field: "MessageSid".into()
        })
    );
    // An inbound's `To` is the business number whose window it opens: it must parse.
    let body = String::from_utf8(fixture("twilio_inbound_text.form"))
        .expect("utf-8")
        .replace("To=whatsapp%3A%2B", "To=whatsapp%3A");
    let error = parse_inbound(body.as_bytes()).expect_err("invalid To");
    assert_eq!(error.field(), Some("To"));
    assert!(error.to_string().contains("invalid field To"), "{error}");
}

/// A status's `To` is informational (the message is matched by its SID): one that does not
/// parse loses nothing, least of all a failure. It is kept verbatim in the details.
#[test]
fn a_status_with_an_unparsable_to_is_accepted_and_keeps_it() {
    let body = String::from_utf8(fixture("twilio_status_failed_63016.form"))
        .expect("utf-8")
        .replace("To=whatsapp%3A%2B", "To=whatsapp%3A");
    let update = parse_status(body.as_bytes(), "").expect("accepted");
    assert_eq!(update.recipient, None);
    assert_eq!(update.status, MessageStatus::Failed);
    assert_eq!(update.errors[0].code, 63016);
    assert!(
        update
            .details
            .iter()
            .any(|(k, v)| k == "To" && v.starts_with("whatsapp:") && !v.contains('+')),
        "{:?}",
        update.details
    );
}
