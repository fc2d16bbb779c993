//! Meta webhook fixtures parsed into provider-neutral events.

mod common;

use common::fixture;
use wagate_domain::{BusinessScopedUserId, MessageStatus, PhoneNumber, ProviderKind};
use wagate_providers::meta::{parse_webhook, MetaWebhook};
use wagate_providers::{
    InboundContent, InboundMessage, ParseError, PreferenceValue, StatusUpdate, SystemNotice,
    SystemNoticeKind, WebhookEvent,
};

fn parse(file: &str) -> MetaWebhook {
    let parsed = parse_webhook(&fixture(file)).expect(file);
    assert_eq!(parsed.rejected, vec![], "{file}");
    assert!(
        !parsed
            .events
            .iter()
            .any(|e| matches!(e, WebhookEvent::Notice(_))),
        "{file}"
    );
    parsed
}

fn only_inbound(file: &str) -> InboundMessage {
    match parse(file).events.as_slice() {
        [WebhookEvent::Inbound(m)] => m.clone(),
        other => panic!("{file}: {other:?}"),
    }
}

fn only_status(file: &str) -> StatusUpdate {
    match parse(file).events.as_slice() {
        [WebhookEvent::Status(s)] => s.clone(),
        other => panic!("{file}: {other:?}"),
    }
}

#[test]
fn inbound_text() {
    let msg = only_inbound("meta_webhook_inbound_text.json");
    assert_eq!(
        msg.id.as_str(),
        "wamid.HBgLNDE3OTAwMDAwMDEVAgASGBRBMUIyQzNENEU1RjYwNzE4MjkzQQA="
    );
    assert_eq!(msg.from.id.to_string(), "+41790000001");
    assert_eq!(msg.profile_name.as_deref(), Some("Lea Muster"));
    assert_eq!(msg.timestamp, Some(1_795_598_102));
    assert_eq!(msg.to.phone_number_id.as_deref(), Some("109876543210987"));
    assert_eq!(
        msg.to.number.as_ref().map(|n| n.as_str()),
        Some("+15555550100")
    );
    assert_eq!(msg.to.account.as_deref(), Some("102938475610293"));
    assert_eq!(
        msg.content.typed_text(),
        Some("Hi, can I move my appointment to Thursday?")
    );
    let event = WebhookEvent::Inbound(msg);
    assert_eq!(event.provider(), ProviderKind::Meta);
    assert_eq!(
        event.dedup_key().as_str(),
        "meta/inbound/wamid.HBgLNDE3OTAwMDAwMDEVAgASGBRBMUIyQzNENEU1RjYwNzE4MjkzQQA="
    );
}

#[test]
fn inbound_unicode() {
    let msg = only_inbound("meta_webhook_inbound_text_unicode.json");
    assert_eq!(msg.profile_name.as_deref(), Some("Zoë Müller"));
    assert_eq!(
        msg.content.typed_text(),
        Some("Grüezi! Können wir am Donnerstag um 10:00 reden? 👍")
    );
}

#[test]
fn inbound_bsuid_without_number() {
    let msg = only_inbound("meta_webhook_inbound_text_bsuid.json");
    assert_eq!(msg.from.id.to_string(), "bsuid:CH.1349120865530274191");
    assert_eq!(msg.from.id.phone(), None);
    assert_eq!(
        msg.from.bsuid.as_ref().map(|b| b.as_str()),
        Some("CH.1349120865530274191")
    );
    assert_eq!(msg.profile_name.as_deref(), Some("Lea M."));
    assert_eq!(msg.content.typed_text(), Some("Hello again"));
}

#[test]
fn inbound_template_button() {
    let msg = only_inbound("meta_webhook_inbound_button_reply.json");
    assert_eq!(
        msg.content,
        InboundContent::Button {
            text: "Confirm".into(),
            payload: Some("appt:7f3a:confirm".into())
        }
    );
    assert_eq!(
        msg.reply_to.map(|r| r.to_string()).as_deref(),
        Some("wamid.HBgLNDE3OTAwMDAwMDEVAgASGBQzRUIwQTFDMkQzRTRGNUE2QjdDOAA=")
    );
}

#[test]
fn inbound_interactive_button() {
    let msg = only_inbound("meta_webhook_inbound_interactive_button_reply.json");
    assert_eq!(msg.from.id.to_string(), "+41790000002");
    assert_eq!(msg.profile_name.as_deref(), Some("Jon Beispiel"));
    assert_eq!(
        msg.content,
        InboundContent::ButtonReply {
            id: "slot_thu_1000".into(),
            title: "Thu 10:00".into()
        }
    );
    assert_eq!(msg.content.kind(), "interactive");
}

#[test]
fn status_lifecycle() {
    let wamid = "wamid.HBgLNDE3OTAwMDAwMDEVAgASGBQzRUIwQTFDMkQzRTRGNUE2QjdDOAA=";
    for (file, status, ts) in [
        (
            "meta_webhook_status_sent.json",
            MessageStatus::Sent,
            1_795_598_103,
        ),
        (
            "meta_webhook_status_delivered.json",
            MessageStatus::Delivered,
            1_795_598_105,
        ),
        (
            "meta_webhook_status_read.json",
            MessageStatus::Read,
            1_795_598_140,
        ),
    ] {
        let update = only_status(file);
        assert_eq!(update.id.as_str(), wamid);
        assert_eq!(update.status, status);
        assert_eq!(update.timestamp, Some(ts));
        assert_eq!(
            update
                .recipient
                .as_ref()
                .map(|r| r.id.to_string())
                .as_deref(),
            Some("+41790000001")
        );
        assert_eq!(update.errors, vec![]);
        assert_eq!(
            WebhookEvent::Status(update).dedup_key().as_str(),
            format!("meta/status/{wamid}/{}/", status.as_str())
        );
    }
}

#[test]
fn status_failed_with_error() {
    let update = only_status("meta_webhook_status_failed_131047.json");
    assert_eq!(update.status, MessageStatus::Failed);
    assert_eq!(update.errors.len(), 1);
    let error = &update.errors[0];
    assert_eq!(error.code, 131047);
    assert_eq!(error.title.as_deref(), Some("Re-engagement message"));
    assert_eq!(error.message.as_deref(), Some("Re-engagement message"));
    assert!(error
        .details
        .as_deref()
        .is_some_and(|d| d.contains("24 hours")));
    assert!(WebhookEvent::Status(update)
        .dedup_key()
        .as_str()
        .ends_with("/failed/131047"));
}

#[test]
fn batched_entries_and_changes_are_all_read() {
    let parsed = parse("meta_webhook_batched.json");
    let summary: Vec<String> = parsed
        .events
        .iter()
        .map(|e| match e {
            WebhookEvent::Status(s) => format!(
                "status {} {}",
                s.status,
                s.business.phone_number_id.as_deref().unwrap_or("")
            ),
            WebhookEvent::Inbound(m) => format!("inbound {} {}", m.content.kind(), m.from.id),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "status delivered 109876543210987",
            "status read 109876543210987",
            "inbound text +41790000001",
            "inbound interactive +41790000002",
            "status delivered 109876543210988",
        ]
    );
    // The second entry is another WABA.
    match &parsed.events[4] {
        WebhookEvent::Status(s) => {
            assert_eq!(s.business.account.as_deref(), Some("102938475610294"))
        }
        other => panic!("{other:?}"),
    }
    let keys: std::collections::BTreeSet<_> =
        parsed.events.iter().map(WebhookEvent::dedup_key).collect();
    assert_eq!(keys.len(), 5, "distinct events have distinct keys");
}

/// Messages are read before statuses and errors within a change.
/// Shapes from Meta's documentation that no fixture covers: BSUID statuses, callback data,
/// list replies, media, unknown types, channel errors, user_preferences, other fields.
#[test]
fn documented_shapes_without_fixtures() {
    let body = br#"{
      "object": "whatsapp_business_account",
      "entry": [{
        "id": "1029",
        "changes": [
          {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15555550100", "phone_number_id": "1098"},
            "statuses": [{
              "id": "wamid.ABC=", "status": "played", "timestamp": "1795598200",
              "recipient_id": "", "recipient_user_id": "CH.42",
              "biz_opaque_callback_data": "0192f0c1-7a3b-7c4d-8e5f-0123456789ab",
              "new_field": {"anything": [1, 2]}
            }, {
              "id": "wamid.DEF=", "status": "failed", "timestamp": "1795598201",
              "recipient_id": "41790000001", "biz_opaque_callback_data": "crm-17",
              "errors": [{"code": 131050, "title": "t", "message": "m", "error_data": {"details": "d"}},
                         {"code": 131049, "title": "t2"}]
            }],
            "messages": [
              {"from": "41790000001", "id": "wamid.L1=", "timestamp": "1795598202", "type": "interactive",
               "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row", "description": "desc"}}},
              {"from": "41790000001", "id": "wamid.D1=", "timestamp": "1795598203", "type": "document",
               "document": {"id": "media-1", "mime_type": "application/pdf", "filename": "a.pdf"}},
              {"from": "41790000001", "id": "wamid.R1=", "timestamp": "1795598204", "type": "reaction",
               "reaction": {"message_id": "wamid.X=", "emoji": "\\ud83d\\udc4d"}},
              {"from": "41790000001", "id": "wamid.U1=", "timestamp": "1795598205", "type": "unsupported",
               "errors": [{"code": 131051, "title": "Message type unknown"}]}
            ],
            "errors": [{"code": 131000, "title": "Something went wrong", "error_data": {"details": "x"}}]
          }},
          {"field": "user_preferences", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15555550100", "phone_number_id": "1098"},
            "contacts": [{"wa_id": "41790000001", "profile": {"name": "Lea"}}],
            "user_preferences": [
              {"wa_id": "41790000001", "detail": "User requested to stop marketing messages",
               "category": "marketing_messages", "value": "stop", "timestamp": 1731705721},
              {"wa_id": "41790000001", "category": "marketing_messages", "value": "resume", "timestamp": 1731705800}
            ]
          }},
          {"field": "message_template_status_update", "value": {"event": "APPROVED",
            "message_template_id": 1689556908129832, "message_template_name": "order_confirmation",
            "message_template_language": "en_US", "reason": "NONE"}}
        ]
      }]
    }"#;
    let parsed = parse_webhook(body).expect("parses");
    assert_eq!(parsed.rejected, vec![]);
    // Template webhooks are parsed into their own list (they change a template, not a message).
    assert_eq!(parsed.templates.len(), 1);
    assert_eq!(
        parsed.templates[0].template.as_str(),
        "order_confirmation@en_US"
    );
    let events = &parsed.events;
    // The template's change is also kept whole as a provider notice, like any other field.
    assert_eq!(events.len(), 10, "{events:#?}");
    let WebhookEvent::Notice(template) = &events[9] else {
        panic!("{:?}", events[9])
    };
    assert_eq!(template.kind, "message_template_status_update");
    assert_eq!(template.get("value.event"), Some("APPROVED"));

    let WebhookEvent::Status(played) = &events[4] else {
        panic!("{:?}", events[4])
    };
    assert_eq!(played.status, MessageStatus::Other("played".into()));
    assert_eq!(
        played
            .recipient
            .as_ref()
            .map(|r| r.id.to_string())
            .as_deref(),
        Some("bsuid:CH.42")
    );
    assert_eq!(
        played.message_id.map(|m| m.to_string()).as_deref(),
        Some("0192f0c1-7a3b-7c4d-8e5f-0123456789ab")
    );
    assert_eq!(played.callback_data, None);

    let WebhookEvent::Status(failed) = &events[5] else {
        panic!("{:?}", events[5])
    };
    assert_eq!(failed.message_id, None);
    assert_eq!(failed.callback_data.as_deref(), Some("crm-17"));
    assert_eq!(
        failed.errors.iter().map(|e| e.code).collect::<Vec<_>>(),
        [131050, 131049]
    );
    assert_eq!(
        WebhookEvent::Status(failed.clone()).dedup_key().as_str(),
        "meta/status/wamid.DEF=/failed/131050,131049"
    );

    let WebhookEvent::Inbound(list) = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(
        list.content,
        InboundContent::ListReply {
            id: "r1".into(),
            title: "Row".into(),
            description: Some("desc".into())
        }
    );
    let WebhookEvent::Inbound(doc) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(doc.content.kind(), "document");
    assert_eq!(doc.content.typed_text(), None);
    let WebhookEvent::Inbound(reaction) = &events[2] else {
        panic!("{:?}", events[2])
    };
    assert_eq!(
        reaction.content,
        InboundContent::Other {
            kind: "reaction".into(),
            body: None
        }
    );
    let WebhookEvent::Inbound(unsupported) = &events[3] else {
        panic!("{:?}", events[3])
    };
    assert_eq!(unsupported.errors[0].code, 131051);

    // Value-level errors are a provider notice beside the items of the same change.
    let WebhookEvent::Notice(errors) = &events[6] else {
        panic!("{:?}", events[6])
    };
    assert_eq!(errors.kind, "errors");
    assert_eq!(errors.get("value.errors[0].code"), Some("131000"));
    assert_eq!(errors.get("value.errors[0].error_data.details"), Some("x"));
    assert_eq!(errors.get("value.metadata.phone_number_id"), Some("1098"));

    let WebhookEvent::UserPreference(stop) = &events[7] else {
        panic!("{:?}", events[7])
    };
    assert_eq!(stop.preference, PreferenceValue::Stop);
    assert_eq!(stop.category, "marketing_messages");
    assert_eq!(stop.contact.id.to_string(), "+41790000001");
    assert_eq!(stop.timestamp, Some(1_731_705_721));
    let WebhookEvent::UserPreference(resume) = &events[8] else {
        panic!("{:?}", events[8])
    };
    assert_eq!(resume.preference, PreferenceValue::Resume);
    assert_ne!(events[7].dedup_key(), events[8].dedup_key());
}

#[test]
fn bad_items_are_rejected_individually_naming_the_field() {
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
      {"field":"messages","value":{"messages":[
        {"from":"41790000001","timestamp":"1","type":"text","text":{"body":"no id"}},
        {"from":"41790000001","id":"wamid.OK=","timestamp":"1","type":"text","text":{"body":"fine"}},
        {"from":"","id":"wamid.NOFROM=","timestamp":"1","type":"text","text":{"body":"x"}},
        {"from":"41790000001","id":"not-a-wamid","type":"text","text":{"body":"x"}},
        {"from":"41790000001","id":"wamid.T=","timestamp":"yesterday","type":"text","text":{"body":"x"}}
      ],"statuses":[{"id":"wamid.S=","timestamp":"1","recipient_id":"41790000001"},
                    {"id":"wamid.S=","status":"failed","errors":[{"title":"no code"}]}]}},
      {"value":{}}
    ]}]}"#;
    let parsed = parse_webhook(body).expect("envelope is fine");
    assert_eq!(parsed.events.len(), 1);
    let fields: Vec<Option<&str>> = parsed.rejected.iter().map(ParseError::field).collect();
    assert_eq!(
        fields,
        [
            Some("entry[0].changes[0].value.messages[0].id"),
            Some("entry[0].changes[0].value.messages[2].from"),
            Some("entry[0].changes[0].value.messages[3].id"),
            Some("entry[0].changes[0].value.messages[4].timestamp"),
            Some("entry[0].changes[0].value.statuses[0].status"),
            Some("entry[0].changes[0].value.statuses[1].errors[0].code"),
            Some("entry[0].changes[1].field"),
        ]
    );
    // Errors name fields, never values.
    for error in &parsed.rejected {
        assert!(!error.to_string().contains("yesterday"), "{error}");
    }
}

#[test]
fn envelope_errors() {
    assert!(matches!(
        parse_webhook(b"{not json"),
        Err(ParseError::Malformed { .. })
    ));
    assert_eq!(
        parse_webhook(b"[]").expect_err("array").field(),
        Some("(root)")
    );
    assert_eq!(
        parse_webhook(br#"{"entry":[]}"#),
        Err(ParseError::MissingField {
            field: "object".into()
        })
    );
    assert_eq!(
        parse_webhook(br#"{"object":"page","entry":[{}]}"#)
            .expect_err("page")
            .field(),
        Some("object")
    );
    assert_eq!(
        parse_webhook(br#"{"object":"whatsapp_business_account","entry":[]}"#),
        Err(ParseError::MissingField {
            field: "entry".into()
        })
    );
}

fn only_notice(file: &str) -> SystemNotice {
    match parse(file).events.as_slice() {
        [WebhookEvent::SystemNotice(n)] => n.clone(),
        other => panic!("{file}: {other:?}"),
    }
}

#[test]
fn user_changed_number_is_a_notice_naming_both_numbers_not_an_inbound() {
    let notice = only_notice("meta_webhook_system_user_changed_number.json");
    assert_eq!(notice.from.id.to_string(), "+41790000001");
    assert_eq!(
        notice.kind,
        SystemNoticeKind::ChangedNumber {
            new_number: PhoneNumber::parse("+41790000002").expect("number")
        }
    );
    assert_eq!(notice.kind.as_str(), "user_changed_number");
    assert_eq!(notice.timestamp, Some(1_795_598_600));
    assert!(notice
        .body
        .as_deref()
        .is_some_and(|b| b.contains("changed from")));
    assert_eq!(
        WebhookEvent::SystemNotice(notice).dedup_key().as_str(),
        "meta/system/wamid.HBgLNDE3OTAwMDAwMDEVAgASGBRTWVNURU1DSEFOR0VETlVNQkVSAA=="
    );
}

#[test]
fn user_changed_user_id_names_the_old_and_the_new_id() {
    let notice = only_notice("meta_webhook_system_user_changed_user_id.json");
    assert_eq!(notice.from.id.to_string(), "+41790000001");
    assert_eq!(
        notice.from.bsuid.as_ref().map(|b| b.as_str()),
        Some("CH.1349120865530274191")
    );
    assert_eq!(
        notice.kind,
        SystemNoticeKind::ChangedUserId {
            new_user_id: BusinessScopedUserId::parse("CH.2460231976641385202").expect("bsuid")
        }
    );
}

#[test]
fn customer_identity_changed_is_a_notice() {
    let notice = only_notice("meta_webhook_system_customer_identity_changed.json");
    assert_eq!(
        notice.kind,
        SystemNoticeKind::IdentityChanged {
            identity: Some("a1b2c3d4e5f6a7b8c9d0".into())
        }
    );
}

#[test]
fn older_and_unknown_system_shapes() {
    let body = br#"{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
      {"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [
        {"from": "41790000001", "id": "wamid.S1=", "timestamp": "1795598600", "type": "system",
         "system": {"body": "b", "wa_id": "41790000003", "type": "customer_changed_number"}},
        {"from": "41790000001", "id": "wamid.S2=", "timestamp": "1795598601", "type": "system",
         "system": {"body": "b", "type": "something_new"}},
        {"from": "41790000001", "id": "wamid.S3=", "timestamp": "1795598602", "type": "system",
         "system": {"body": "b", "new_wa_id": "0123", "type": "user_changed_number"}},
        {"from": "41790000001", "id": "wamid.S4=", "timestamp": "1795598603", "type": "system",
         "system": {"body": "b", "type": "user_changed_number"}}
      ]}}]}]}"#;
    let parsed = parse_webhook(body).expect("parses");
    match parsed.events.as_slice() {
        [WebhookEvent::SystemNotice(old), WebhookEvent::SystemNotice(other)] => {
            assert_eq!(
                old.kind,
                SystemNoticeKind::ChangedNumber {
                    new_number: PhoneNumber::parse("+41790000003").expect("number")
                }
            );
            assert_eq!(other.kind, SystemNoticeKind::Other("something_new".into()));
        }
        other => panic!("{other:?}"),
    }
    let fields: Vec<Option<&str>> = parsed.rejected.iter().map(ParseError::field).collect();
    assert_eq!(
        fields,
        [
            Some("entry[0].changes[0].value.messages[2].system.new_wa_id"),
            Some("entry[0].changes[0].value.messages[3].system.new_wa_id"),
        ]
    );
}

#[test]
fn a_group_message_carries_its_group() {
    let msg = only_inbound("meta_webhook_inbound_group_stop.json");
    assert_eq!(msg.group.as_deref(), Some("120363025246125486"));
    assert_eq!(msg.content.typed_text(), Some("STOP"));
    assert_eq!(only_inbound("meta_webhook_inbound_text.json").group, None);
}

#[test]
fn a_number_and_a_user_id_in_one_message_are_both_kept() {
    let msg = only_inbound("meta_webhook_inbound_text_number_and_bsuid.json");
    assert_eq!(msg.from.id.to_string(), "+41790000001");
    assert_eq!(
        msg.from.bsuid.as_ref().map(|b| b.as_str()),
        Some("CH.1349120865530274191")
    );
}

#[test]
fn a_from_that_is_no_number_is_recorded_under_the_user_id() {
    let msg = only_inbound("meta_webhook_inbound_username_from.json");
    assert_eq!(msg.from.id.to_string(), "bsuid:CH.1349120865530274191");
    assert_eq!(msg.content.typed_text(), Some("STOP"));
    // Without a user id, a `from` that is no number is still an error naming the field.
    let body = br#"{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
      {"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [
        {"from": "leamuster", "id": "wamid.N1=", "timestamp": "1795598600", "type": "text",
         "text": {"body": "hi"}}]}}]}]}"#;
    let parsed = parse_webhook(body).expect("parses");
    assert_eq!(parsed.events, vec![]);
    assert_eq!(
        parsed.rejected[0].field(),
        Some("entry[0].changes[0].value.messages[0].from")
    );
}
