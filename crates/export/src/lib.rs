//! The auditors' format: the log as JSON Lines, one event per line.
//!
//! ```json
//! {"position":7,"stream":"contact:+41790000001","version":2,"type":"OptedOut",
//!  "timestamp":"2026-11-25T09:00:00.000000000Z","event_id":"0193…",
//!  "payload":{"contact":"+41790000001","source":"keyword","detail":"STOP","at":"2026-11-25T09:00:00.000000000Z"}}
//! ```
//!
//! This is a stable interface (docs/events.md, "Export format"): fields are only ever added.
//! Payload field names are the domain's, identifiers are in their canonical text form, times are
//! RFC 3339 UTC with nanoseconds, enums are their stable snake_case ids. docs/events.md documents
//! every type.
//! `ExportedEvent` reads a line back, so `wagate audit` can check an export file with the same
//! code it uses on a database.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use wagate_domain::{
    ConsentEvent, ContactEvent, EndpointEvent, Event, MessageEvent, MessagingLimit, PortfolioEvent,
    ProviderError, ProviderEvent, Retry, ReviewEvent, SenderEvent, TemplateEvent, Timestamp,
};
use wagate_store::RecordedEvent;

mod campaign;
mod decode;
pub use decode::DecodeError;

/// One line of the export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    pub event_id: String,
    pub payload: Map<String, Value>,
    /// Who asked for the event: a token's role and name, a webhook's provider, or the
    /// in-process dispatcher; `null` for events recorded before actors were (and in files
    /// exported before this field existed).
    #[serde(default)]
    pub actor: Option<ExportedActor>,
}

/// `{"kind": "operator", "name": "ops-alice"}`: `kind` is a role (`agent`, `operator`,
/// `dispatcher`, `auditor`) or `webhook`; `name` the token's name, the provider (`twilio`,
/// `meta`, `sandbox`) or `in-process` (the hub's own dispatcher).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedActor {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("line {line}: {reason}")]
    BadLine { line: u64, reason: String },
}

impl ExportedEvent {
    pub fn from_event(record: &RecordedEvent, event: &Event) -> Self {
        let line = Self::from_parts(
            record.position,
            record.stream.as_str(),
            record.version,
            &record.event_id.to_string(),
            event,
        );
        match &record.origin {
            Some(origin) => line.with_actor(&origin.kind, &origin.name),
            None => line,
        }
    }

    /// The line with who asked for the event.
    pub fn with_actor(mut self, kind: &str, name: &str) -> Self {
        self.actor = Some(ExportedActor {
            kind: kind.to_owned(),
            name: name.to_owned(),
        });
        self
    }

    /// The same line from an event's coordinates in the log.
    pub fn from_parts(
        position: u64,
        stream: &str,
        version: u64,
        event_id: &str,
        event: &Event,
    ) -> Self {
        Self {
            position,
            stream: stream.to_owned(),
            version,
            event_type: event.type_name().to_owned(),
            timestamp: time(event.at()),
            event_id: event_id.to_owned(),
            payload: payload(event),
            actor: None,
        }
    }

    /// Parses one line of an export file (`line` is its 1-based number, for the error).
    pub fn parse_line(text: &str, line: u64) -> Result<Self, ExportError> {
        serde_json::from_str(text).map_err(|error| ExportError::BadLine {
            line,
            reason: error.to_string(),
        })
    }

    /// The line, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self)
            .expect("a struct of strings, integers and a JSON map (string keys) always serializes")
    }

    /// The domain event this line was exported from (the inverse of [`payload`]): what
    /// `wagate import` appends again.
    pub fn to_event(&self) -> Result<Event, DecodeError> {
        decode::event(self)
    }

    /// A payload field as text (`""` when absent or not a string).
    pub fn text(&self, field: &str) -> &str {
        self.payload
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// A payload field as an unsigned integer.
    pub fn number(&self, field: &str) -> Option<u64> {
        self.payload.get(field).and_then(Value::as_u64)
    }
}

/// RFC 3339, UTC, nanoseconds: sorts as text and round-trips exactly.
pub fn time(at: Timestamp) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            unreachable!("every payload arm builds an object with json!({{...}}), got {other}")
        }
    }
}

/// Events written before `details` existed, and events with nothing more to say, export as
/// they always did: the field is left out (a reader takes a missing one as empty).
fn without_empty_details(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        if map
            .get("details")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            map.remove("details");
        }
    }
    value
}

/// `StatusChanged.pricing` (schema v3): `{"billable", "pricing_model", "category", "type"}`
/// with Meta's names, each only when reported; absent when there is no pricing object, so the
/// export of an older status is unchanged.
fn with_pricing(mut value: Value, pricing: Option<&wagate_domain::StatusPricing>) -> Value {
    if let (Value::Object(map), Some(pricing)) = (&mut value, pricing) {
        let mut object = serde_json::Map::new();
        if let Some(billable) = pricing.billable {
            object.insert("billable".into(), Value::Bool(billable));
        }
        for (key, field) in [
            ("pricing_model", &pricing.pricing_model),
            ("category", &pricing.category),
            ("type", &pricing.kind),
        ] {
            if let Some(text) = field {
                object.insert(key.into(), Value::String(text.clone()));
            }
        }
        map.insert("pricing".into(), Value::Object(object));
    }
    value
}

/// `value.pipe(f)` is `f(value)`, so a `json!` literal can be post-processed in place.
trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}

impl Pipe for Value {}

fn provider_error(error: &ProviderError) -> Value {
    json!({
        "provider": error.provider.as_str(),
        "code": error.code,
        "http_status": error.http_status,
        "message": error.message,
    })
}

fn variables(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The payload of an event as a JSON object.
pub fn payload(event: &Event) -> Map<String, Value> {
    object(match event {
        Event::Contact(event) => match event {
            ContactEvent::OptedIn {
                contact,
                source,
                evidence,
                recorded_by,
                wording_version,
                evidence_at,
                at,
            } => json!({
                "contact": contact.to_string(), "source": source.as_str(), "evidence": evidence,
                "recorded_by": recorded_by, "wording_version": wording_version,
                "evidence_at": time(*evidence_at), "at": time(*at),
            }),
            ContactEvent::InboundReceived {
                contact,
                sender,
                provider_ref,
                kind,
                text,
                provider_at,
                details,
                at,
            } => json!({
                "contact": contact.to_string(), "sender": sender.as_ref().map(ToString::to_string),
                "provider_ref": provider_ref.as_ref().map(ToString::to_string), "kind": kind,
                "text": text, "provider_at": provider_at.map(time), "details": details,
                "at": time(*at),
            })
            .pipe(without_empty_details),
            ContactEvent::OptedOut {
                contact,
                source,
                detail,
                evidence_at,
                at,
            } => json!({
                "contact": contact.to_string(), "source": source.as_str(), "detail": detail,
                "evidence_at": time(*evidence_at), "at": time(*at),
            }),
            ContactEvent::OptOutReviewRequested {
                contact,
                text,
                matched,
                at,
            } => json!({
                "contact": contact.to_string(), "text": text, "matched": matched, "at": time(*at),
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
                "contact": contact.to_string(), "flag": flag.as_str(), "reason": reason, "at": time(*at),
            }),
            ContactEvent::WindowReportedClosed {
                contact,
                sender,
                code,
                at,
            } => json!({
                "contact": contact.to_string(), "sender": sender.as_ref().map(ToString::to_string),
                "code": code, "at": time(*at),
            }),
            ContactEvent::IdentityLinked {
                contact,
                other,
                source,
                at,
            } => json!({
                "contact": contact.to_string(), "other": other.to_string(),
                "source": source.as_str(), "at": time(*at),
            }),
            ContactEvent::GroupMessageReceived {
                contact,
                group,
                sender,
                provider_ref,
                kind,
                text,
                at,
            } => json!({
                "contact": contact.to_string(), "group": group,
                "sender": sender.as_ref().map(ToString::to_string),
                "provider_ref": provider_ref.as_ref().map(ToString::to_string), "kind": kind,
                "text": text, "at": time(*at),
            }),
        },
        Event::Message(event) => message_payload(event),
        Event::Sender(event) => match event {
            SenderEvent::Registered {
                sender,
                provider,
                portfolio,
                meta_phone_number_id,
                rate,
                at,
            } => {
                let mut payload = json!({
                    "sender": sender.to_string(), "provider": provider.as_str(), "portfolio": portfolio.as_str(),
                    "meta_phone_number_id": meta_phone_number_id, "at": time(*at),
                });
                // Only when set, so a default-tier registration exports as it did before v2.
                if rate.upgraded {
                    payload["upgraded"] = json!(true);
                }
                if let Some(per_second) = rate.per_second {
                    payload["rate_per_second"] = json!(per_second);
                }
                payload
            }
            SenderEvent::Authorized { sender, by, at } => json!({
                "sender": sender.to_string(), "by": by, "at": time(*at),
            }),
            SenderEvent::Suspended { sender, reason, at } => json!({
                "sender": sender.to_string(), "reason": reason, "at": time(*at),
            }),
            SenderEvent::QualityReported {
                sender,
                event,
                dropped,
                at,
            } => json!({
                "sender": sender.to_string(), "event": event, "dropped": dropped,
                "source": "provider", "at": time(*at),
            }),
        },
        Event::Template(event) => match event {
            TemplateEvent::Registered {
                template,
                name,
                language,
                category,
                placeholders,
                at,
            } => json!({
                "template": template.as_str(), "name": name, "language": language,
                "category": category.as_str(), "placeholders": placeholders, "at": time(*at),
            }),
            TemplateEvent::ApprovalChanged {
                template,
                status,
                reason,
                at,
            } => json!({
                "template": template.as_str(), "status": status.as_str(), "reason": reason, "at": time(*at),
            }),
            TemplateEvent::Created {
                template,
                provider,
                provider_ref,
                name,
                language,
                category,
                content,
                at,
            } => json!({
                "template": template.as_str(), "provider": provider.as_str(),
                "provider_ref": provider_ref, "name": name, "language": language,
                "category": category.as_str(), "body": content.body,
                "header": content.header.as_ref().map(template_header),
                "buttons": template_buttons(&content.buttons),
                "cards": content.cards.iter().map(|card| json!({
                    "header": template_header(&card.header), "body": card.body,
                    "buttons": template_buttons(&card.buttons),
                })).collect::<Vec<_>>(),
                "at": time(*at),
            }),
            TemplateEvent::StatusReported {
                template,
                status,
                reason,
                at,
            } => json!({
                "template": template.as_str(), "status": status.as_str(), "source": "provider",
                "reason": reason, "at": time(*at),
            }),
            TemplateEvent::CategoryReported {
                template,
                category,
                previous,
                at,
            } => json!({
                "template": template.as_str(), "category": category.as_str(), "source": "provider",
                "previous": previous, "at": time(*at),
            }),
        },
        Event::Portfolio(event) => match event {
            PortfolioEvent::MessagingLimitChanged {
                portfolio,
                limit,
                at,
            } => json!({
                "portfolio": portfolio.as_str(),
                "limit": match limit { MessagingLimit::Limited(n) => Some(*n), MessagingLimit::Unlimited => None },
                "at": time(*at),
            }),
            PortfolioEvent::RecipientReached {
                portfolio,
                contact,
                message_id,
                at,
            } => json!({
                "portfolio": portfolio.as_str(), "contact": contact.to_string(),
                "message_id": message_id.to_string(), "at": time(*at),
            }),
        },
        Event::Provider(ProviderEvent::NoticeReceived {
            provider,
            subject,
            kind,
            details,
            at,
        }) => json!({
            "provider": provider.as_str(), "subject": subject, "kind": kind,
            "details": details, "at": time(*at),
        }),
        Event::Review(event) => match event {
            ReviewEvent::Raised {
                reason,
                subject,
                detail,
                at,
            } => json!({
                "reason": reason.as_str(),
                "contact": subject.contact.as_ref().map(ToString::to_string),
                "message_id": subject.message_id.as_ref().map(ToString::to_string),
                "sender": subject.sender.as_ref().map(ToString::to_string),
                "template": subject.template.as_ref().map(|t| t.as_str()),
                "detail": detail, "at": time(*at),
            }),
            ReviewEvent::Resolved {
                item,
                reason,
                decision,
                note,
                at,
            } => json!({
                "item": item, "reason": reason.as_str(), "decision": decision.as_str(),
                "note": note, "at": time(*at),
            }),
        },
        Event::Consent(event) => consent_payload(event),
        Event::Campaign(event) => campaign::payload(event),
        // The signing secret is not in the log, so not here either (docs/webhooks.md).
        Event::Endpoint(event) => match event {
            EndpointEvent::Registered {
                endpoint,
                url,
                events,
                at,
            } => json!({
                "endpoint": endpoint.as_str(), "url": url,
                "events": events.iter().map(|kind| kind.as_str()).collect::<Vec<_>>(),
                "at": time(*at),
            }),
            EndpointEvent::Deleted { endpoint, at } => json!({
                "endpoint": endpoint.as_str(), "at": time(*at),
            }),
            EndpointEvent::Disabled {
                endpoint,
                reason,
                failing_since,
                at,
            } => json!({
                "endpoint": endpoint.as_str(), "reason": reason,
                "failing_since": time(*failing_since), "at": time(*at),
            }),
            EndpointEvent::Enabled { endpoint, at } => json!({
                "endpoint": endpoint.as_str(), "at": time(*at),
            }),
        },
    })
}

fn consent_payload(event: &ConsentEvent) -> Value {
    match event {
        ConsentEvent::WordingPublished {
            version,
            business,
            language,
            text,
            text_hash,
            at,
        } => json!({
            "version": version, "business": business, "language": language, "text": text,
            "text_hash": text_hash, "at": time(*at),
        }),
        ConsentEvent::CampaignCreated {
            campaign,
            sender,
            wording_version,
            workflows,
            medium,
            confirmation_template,
            at,
        } => json!({
            "campaign": campaign, "sender": sender.to_string(),
            "wording_version": wording_version,
            "workflows": workflows.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "medium": medium.as_str(),
            "confirmation_template": confirmation_template.as_ref().map(|t| t.as_str()),
            "at": time(*at),
        }),
        ConsentEvent::OptInRequested {
            contact,
            campaign,
            wording_version,
            text_hash,
            evidence,
            at,
        } => json!({
            "contact": contact.to_string(), "campaign": campaign,
            "wording_version": wording_version, "text_hash": text_hash, "evidence": evidence,
            "at": time(*at),
        }),
        ConsentEvent::CampaignClosed { campaign, at } => json!({
            "campaign": campaign, "at": time(*at),
        }),
        ConsentEvent::ConfirmationSent {
            contact,
            campaign,
            message_id,
            at,
        } => json!({
            "contact": contact.to_string(), "campaign": campaign,
            "message_id": message_id.to_string(), "at": time(*at),
        }),
    }
}

fn message_payload(event: &MessageEvent) -> Value {
    match event {
        MessageEvent::TemplateSent {
            message_id,
            contact,
            sender,
            template,
            category,
            variables: vars,
            media,
            workflow,
            at,
        } => {
            let mut payload = json!({
                "message_id": message_id.to_string(), "contact": contact.to_string(), "sender": sender.to_string(),
                "template": template.as_str(), "category": category.as_str(), "variables": variables(vars),
                "workflow": workflow.as_str(), "at": time(*at),
            });
            // Absent when there is none, so a send without media exports exactly as before.
            if !media.is_empty() {
                payload["media"] = media
                    .iter()
                    .map(
                        |m| json!({"card": m.card, "type": m.kind.as_str(), "url": m.url.as_str()}),
                    )
                    .collect();
            }
            payload
        }
        MessageEvent::ReplySent {
            message_id,
            contact,
            sender,
            text,
            rich,
            workflow,
            at,
        } => {
            let mut payload = json!({
                "message_id": message_id.to_string(), "contact": contact.to_string(), "sender": sender.to_string(),
                "text": text, "workflow": workflow.as_str(), "at": time(*at),
            });
            // Absent for plain text, so a plain reply exports exactly as before rich content.
            if let Some(rich) = rich {
                payload["rich"] = rich_payload(rich);
            }
            payload
        }
        MessageEvent::SendRefused {
            message_id,
            to,
            sender,
            template,
            rule,
            message,
            also_broken,
            at,
        } => json!({
            "message_id": message_id.to_string(), "to": to, "sender": sender.to_string(),
            "template": template.as_ref().map(|template| template.to_string()),
            "rule": rule.as_str(), "message": message,
            "also_broken": also_broken.iter().map(|rule| rule.as_str()).collect::<Vec<_>>(),
            "at": time(*at),
        }),
        MessageEvent::DispatchClaimed {
            message_id,
            attempt,
            at,
        } => json!({
            "message_id": message_id.to_string(), "attempt": attempt, "at": time(*at),
        }),
        MessageEvent::ClaimRefused {
            message_id,
            attempt,
            rule,
            message,
            at,
        } => json!({
            "message_id": message_id.to_string(), "attempt": attempt, "rule": rule.as_str(),
            "message": message, "at": time(*at),
        }),
        MessageEvent::DispatchSucceeded {
            message_id,
            attempt,
            provider_ref,
            provider_status,
            at,
        } => json!({
            "message_id": message_id.to_string(), "attempt": attempt, "provider_ref": provider_ref.to_string(),
            "provider_status": provider_status.as_str(), "at": time(*at),
        }),
        MessageEvent::DispatchFailed {
            message_id,
            attempt,
            error,
            retry,
            retry_at,
            at,
        } => json!({
            "message_id": message_id.to_string(), "attempt": attempt, "error": provider_error(error),
            "retryable": *retry == Retry::Retryable, "retry_at": retry_at.map(time), "at": time(*at),
        }),
        MessageEvent::StatusChanged {
            message_id,
            provider_ref,
            status,
            error_code,
            details,
            pricing,
            at,
        } => json!({
            "message_id": message_id.to_string(), "provider_ref": provider_ref.as_ref().map(ToString::to_string),
            "status": status.as_str(), "error_code": error_code, "details": details, "at": time(*at),
        })
        .pipe(without_empty_details)
        .pipe(|value| with_pricing(value, pricing.as_ref())),
        MessageEvent::PriceReported {
            message_id,
            provider,
            amount_micros,
            currency,
            at,
        } => json!({
            "message_id": message_id.to_string(), "provider": provider.as_str(),
            "amount_micros": amount_micros, "currency": currency, "source": "provider",
            "at": time(*at),
        }),
        MessageEvent::InDoubtExpired {
            message_id,
            attempt,
            at,
        } => json!({
            "message_id": message_id.to_string(), "attempt": attempt, "at": time(*at),
        }),
        MessageEvent::UnmatchedStatusReceived {
            provider_ref,
            status,
            error_code,
            details,
            at,
        } => json!({
            "provider_ref": provider_ref.to_string(), "status": status.as_str(),
            "error_code": error_code, "details": details, "at": time(*at),
        })
        .pipe(without_empty_details),
    }
}

fn template_header(header: &wagate_domain::template::TemplateHeader) -> Value {
    json!({"format": header.format.as_str(), "value": header.value})
}

fn template_buttons(buttons: &[wagate_domain::template::TemplateButton]) -> Vec<Value> {
    buttons
        .iter()
        .map(|button| json!({"kind": button.kind.as_str(), "text": button.text, "value": button.value}))
        .collect()
}

/// `ReplySent.rich`: `{"type": "media", "kind", "url", "caption"}` or
/// `{"type": "buttons", "body", "buttons": [{"id", "title"}]}`.
fn rich_payload(rich: &wagate_domain::RichReply) -> Value {
    match rich {
        wagate_domain::RichReply::Media(media) => json!({
            "type": "media", "kind": media.kind.as_str(), "url": media.url.as_str(),
            "caption": media.caption,
        }),
        wagate_domain::RichReply::Buttons { body, buttons } => json!({
            "type": "buttons", "body": body,
            "buttons": buttons.iter().map(|b| json!({"id": b.id, "title": b.title})).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use wagate_domain::{ContactId, OptOutSource, PhoneNumber};
    use wagate_store::StreamId;

    #[test]
    fn a_line_round_trips_and_names_everything_an_auditor_needs() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
            .single()
            .expect("time");
        let contact = ContactId::Phone(PhoneNumber::parse("+41790000001").expect("number"));
        let event: Event = ContactEvent::OptedOut {
            contact,
            source: OptOutSource::Keyword,
            detail: "STOP".into(),
            evidence_at: at,
            at,
        }
        .into();
        let record = RecordedEvent {
            position: 7,
            stream: StreamId::new("contact:+41790000001").expect("stream"),
            version: 2,
            event_id: uuid_v7(),
            event_type: "OptedOut".into(),
            schema_version: 1,
            timestamp_ms: at.timestamp_millis(),
            payload: Vec::new(),
            origin: None,
        };
        let line = ExportedEvent::from_event(&record, &event).to_line();
        assert!(line.ends_with(r#","actor":null}"#), "{line}");
        assert!(line.starts_with(r#"{"position":7,"stream":"contact:+41790000001","version":2,"type":"OptedOut","timestamp":"2026-11-25T09:00:00.000000000Z""#), "{line}");
        let back = ExportedEvent::parse_line(&line, 1).expect("parse");
        assert_eq!(back.text("source"), "keyword");
        assert_eq!(back.text("contact"), "+41790000001");
        // Lines exported before the actor field existed still parse (no actor).
        let old = line.replace(r#","actor":null"#, "");
        assert_eq!(ExportedEvent::parse_line(&old, 1).expect("old").actor, None);
        let with = ExportedEvent::from_event(
            &RecordedEvent {
                origin: Some(wagate_store::Origin {
                    kind: "operator".into(),
                    name: "ops-alice".into(),
                }),
                ..record
            },
            &event,
        );
        assert!(
            with.to_line()
                .ends_with(r#","actor":{"kind":"operator","name":"ops-alice"}}"#),
            "{}",
            with.to_line()
        );
        assert_eq!(
            ExportedEvent::parse_line(&with.to_line(), 1).expect("parse"),
            with
        );
        assert!(ExportedEvent::parse_line("{not json", 3)
            .expect_err("bad")
            .to_string()
            .starts_with("line 3:"));
    }

    fn uuid_v7() -> uuid::Uuid {
        uuid::Uuid::parse_str("0192f0c1-7a3b-7c4d-8e5f-0123456789ab").expect("uuid")
    }
}
