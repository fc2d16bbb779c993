//! The auditors' JSON form of one logged event, shared by `GET /v1/events` (NDJSON) and
//! `wagate export` (JSON Lines):
//!
//! ```json
//! {"position": 7, "stream": "contact:+41790000001", "version": 3,
//!  "event_id": "0193…", "type": "OptedOut", "timestamp": "2026-11-25T09:00:00.000Z",
//!  "payload": {"contact": "+41790000001", "source": "keyword", "detail": "STOP",
//!              "at": "2026-11-25T09:00:00.000Z"}}
//! ```
//!
//! `type` is [`Event::type_name`]; `timestamp` is the envelope's time (when it was appended);
//! the payload's fields are the event's own, snake_case, with ids as their canonical strings,
//! times as RFC 3339 UTC with milliseconds, and absent optional values as `null`.

use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::{json, Map, Value};
use wagate_domain::{
    ContactEvent, Event, MessageEvent, MessagingLimit, PortfolioEvent, ProviderError, SenderEvent,
    TemplateEvent, Timestamp,
};
use wagate_store::RecordedEvent;

fn time(at: Timestamp) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn opt<T: ToString>(value: Option<&T>) -> Value {
    value.map_or(Value::Null, |v| Value::String(v.to_string()))
}

fn envelope_time(timestamp_ms: i64) -> Value {
    match Utc.timestamp_millis_opt(timestamp_ms).single() {
        Some(at) => time(at),
        // Out of chrono's range: keep the raw number rather than invent a time.
        None => Value::from(timestamp_ms),
    }
}

/// One logged event as the auditors' JSON object. `event` is `record` decoded.
pub fn event_to_json(record: &RecordedEvent, event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("position".into(), Value::from(record.position));
    object.insert("stream".into(), Value::from(record.stream.as_str()));
    object.insert("version".into(), Value::from(record.version));
    object.insert("event_id".into(), Value::from(record.event_id.to_string()));
    object.insert("type".into(), Value::from(event.type_name()));
    object.insert("timestamp".into(), envelope_time(record.timestamp_ms));
    object.insert("payload".into(), payload(event));
    Value::Object(object)
}

/// The same shape when only the decoded event and its coordinates are at hand (message
/// history); `timestamp` is then the event's own time.
pub fn event_fields_to_json(position: u64, stream: &str, version: u64, event: &Event) -> Value {
    json!({
        "position": position,
        "stream": stream,
        "version": version,
        "type": event.type_name(),
        "timestamp": time(event.at()),
        "payload": payload(event),
    })
}

fn provider_error(error: &ProviderError) -> Value {
    json!({
        "provider": error.provider.as_str(),
        "code": error.code,
        "http_status": error.http_status,
        "message": error.message,
    })
}

/// The event's own fields.
pub fn payload(event: &Event) -> Value {
    match event {
        Event::Contact(event) => contact(event),
        Event::Message(event) => message(event),
        Event::Sender(event) => sender(event),
        Event::Template(event) => template(event),
        Event::Portfolio(event) => portfolio(event),
    }
}

fn contact(event: &ContactEvent) -> Value {
    match event {
        ContactEvent::OptedIn {
            contact,
            source,
            evidence,
            recorded_by,
            wording_version,
            at,
        } => json!({
            "contact": contact.to_string(),
            "source": source.as_str(),
            "evidence": evidence,
            "recorded_by": recorded_by,
            "wording_version": wording_version,
            "at": time(*at),
        }),
        ContactEvent::InboundReceived {
            contact,
            sender,
            provider_ref,
            kind,
            text,
            at,
        } => json!({
            "contact": contact.to_string(),
            "sender": opt(sender.as_ref()),
            "provider_ref": opt(provider_ref.as_ref()),
            "kind": kind,
            "text": text,
            "at": time(*at),
        }),
        ContactEvent::OptedOut {
            contact,
            source,
            detail,
            at,
        } => json!({
            "contact": contact.to_string(),
            "source": source.as_str(),
            "detail": detail,
            "at": time(*at),
        }),
        ContactEvent::OptOutReviewRequested {
            contact,
            text,
            matched,
            at,
        } => json!({
            "contact": contact.to_string(),
            "text": text,
            "matched": matched,
            "at": time(*at),
        }),
        ContactEvent::FlagRaised {
            contact,
            flag,
            reason,
            at,
        }
        | ContactEvent::FlagCleared {
            contact,
            flag,
            reason,
            at,
        } => json!({
            "contact": contact.to_string(),
            "flag": flag.as_str(),
            "reason": reason,
            "at": time(*at),
        }),
        ContactEvent::WindowReportedClosed { contact, code, at } => json!({
            "contact": contact.to_string(),
            "code": code,
            "at": time(*at),
        }),
    }
}

fn message(event: &MessageEvent) -> Value {
    match event {
        MessageEvent::TemplateSent {
            message_id,
            contact,
            sender,
            template,
            category,
            variables,
            workflow,
            at,
        } => {
            let variables: Map<String, Value> = variables
                .iter()
                .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
                .collect();
            json!({
                "message_id": message_id.to_string(),
                "contact": contact.to_string(),
                "sender": sender.to_string(),
                "template": template.to_string(),
                "category": category.as_str(),
                "variables": variables,
                "workflow": workflow.to_string(),
                "at": time(*at),
            })
        }
        MessageEvent::ReplySent {
            message_id,
            contact,
            sender,
            text,
            workflow,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "contact": contact.to_string(),
            "sender": sender.to_string(),
            "text": text,
            "workflow": workflow.to_string(),
            "at": time(*at),
        }),
        MessageEvent::SendRefused {
            message_id,
            to,
            sender,
            rule,
            message,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "to": to,
            "sender": sender.to_string(),
            "rule": rule.as_str(),
            "message": message,
            "at": time(*at),
        }),
        MessageEvent::DispatchClaimed {
            message_id,
            attempt,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "attempt": attempt,
            "at": time(*at),
        }),
        MessageEvent::ClaimRefused {
            message_id,
            attempt,
            rule,
            message,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "attempt": attempt,
            "rule": rule.as_str(),
            "message": message,
            "at": time(*at),
        }),
        MessageEvent::DispatchSucceeded {
            message_id,
            attempt,
            provider_ref,
            provider_status,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "attempt": attempt,
            "provider_ref": provider_ref.to_string(),
            "provider_status": provider_status.as_str(),
            "at": time(*at),
        }),
        MessageEvent::DispatchFailed {
            message_id,
            attempt,
            error,
            retry,
            retry_at,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "attempt": attempt,
            "error": provider_error(error),
            "retry": match retry {
                wagate_domain::Retry::Retryable => "retryable",
                wagate_domain::Retry::Permanent => "permanent",
            },
            "retry_at": retry_at.map_or(Value::Null, time),
            "at": time(*at),
        }),
        MessageEvent::StatusChanged {
            message_id,
            provider_ref,
            status,
            error_code,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "provider_ref": opt(provider_ref.as_ref()),
            "status": status.as_str(),
            "error_code": error_code,
            "at": time(*at),
        }),
        MessageEvent::InDoubtExpired {
            message_id,
            attempt,
            at,
        } => json!({
            "message_id": message_id.to_string(),
            "attempt": attempt,
            "at": time(*at),
        }),
        MessageEvent::UnmatchedStatusReceived {
            provider_ref,
            status,
            error_code,
            at,
        } => json!({
            "provider_ref": provider_ref.to_string(),
            "status": status.as_str(),
            "error_code": error_code,
            "at": time(*at),
        }),
    }
}

fn sender(event: &SenderEvent) -> Value {
    match event {
        SenderEvent::Registered {
            sender,
            provider,
            portfolio,
            meta_phone_number_id,
            at,
        } => json!({
            "sender": sender.to_string(),
            "provider": provider.as_str(),
            "portfolio": portfolio.to_string(),
            "meta_phone_number_id": meta_phone_number_id,
            "at": time(*at),
        }),
        SenderEvent::Authorized { sender, by, at } => json!({
            "sender": sender.to_string(),
            "by": by,
            "at": time(*at),
        }),
        SenderEvent::Suspended { sender, reason, at } => json!({
            "sender": sender.to_string(),
            "reason": reason,
            "at": time(*at),
        }),
    }
}

fn template(event: &TemplateEvent) -> Value {
    match event {
        TemplateEvent::Registered {
            template,
            name,
            language,
            category,
            placeholders,
            at,
        } => json!({
            "template": template.to_string(),
            "name": name,
            "language": language,
            "category": category.as_str(),
            "placeholders": placeholders,
            "at": time(*at),
        }),
        TemplateEvent::ApprovalChanged {
            template,
            status,
            reason,
            at,
        } => json!({
            "template": template.to_string(),
            "status": status.as_str(),
            "reason": reason,
            "at": time(*at),
        }),
    }
}

/// A limit as JSON: a number, or `"unlimited"`.
pub fn messaging_limit(limit: MessagingLimit) -> Value {
    match limit {
        MessagingLimit::Limited(n) => Value::from(n),
        MessagingLimit::Unlimited => Value::from("unlimited"),
    }
}

fn portfolio(event: &PortfolioEvent) -> Value {
    match event {
        PortfolioEvent::MessagingLimitChanged {
            portfolio,
            limit,
            at,
        } => json!({
            "portfolio": portfolio.to_string(),
            "limit": messaging_limit(*limit),
            "at": time(*at),
        }),
        PortfolioEvent::RecipientReached {
            portfolio,
            contact,
            message_id,
            at,
        } => json!({
            "portfolio": portfolio.to_string(),
            "contact": contact.to_string(),
            "message_id": message_id.to_string(),
            "at": time(*at),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_domain::{ContactId, OptOutSource, PhoneNumber};
    use wagate_store::StreamId;

    #[test]
    fn an_opt_out_exports_with_its_coordinates() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
            .single()
            .expect("time");
        let contact = ContactId::Phone(PhoneNumber::parse("+41790000001").expect("number"));
        let event: Event = ContactEvent::OptedOut {
            contact,
            source: OptOutSource::Keyword,
            detail: "STOP".into(),
            at,
        }
        .into();
        let record = RecordedEvent {
            position: 7,
            stream: StreamId::new("contact:+41790000001".to_owned()).expect("stream"),
            version: 3,
            event_id: uuid::Uuid::nil(),
            event_type: "OptedOut".into(),
            schema_version: 1,
            timestamp_ms: at.timestamp_millis(),
            payload: Vec::new(),
        };
        let value = event_to_json(&record, &event);
        assert_eq!(
            value,
            json!({
                "position": 7,
                "stream": "contact:+41790000001",
                "version": 3,
                "event_id": "00000000-0000-0000-0000-000000000000",
                "type": "OptedOut",
                "timestamp": "2026-11-25T09:00:00.000Z",
                "payload": {
                    "contact": "+41790000001",
                    "source": "keyword",
                    "detail": "STOP",
                    "at": "2026-11-25T09:00:00.000Z"
                }
            })
        );
    }
}
