//! Meta's template webhooks: `message_template_status_update` (approved, rejected, paused,
//! disabled, … with the reason), `message_template_quality_update` and
//! `template_category_update`. Field names per docs/providers.md, "Meta template webhooks".

use serde_json::Value;
use wagate_domain::{ApprovalStatus, TemplateCategory, TemplateId};

use super::json::Node;
use crate::templates::meta_status;
use crate::ParseError;

/// One template change Meta reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateNotice {
    /// `name@language` (Meta's `en-US` normalised to `en_US`).
    pub template: TemplateId,
    pub name: String,
    pub language: String,
    /// Meta's numeric template id, as text.
    pub provider_ref: String,
    pub change: TemplateChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChange {
    /// `event` as sent, what it means for sending (`None`: it does not change whether the
    /// template may be sent, e.g. FLAGGED), and the reason: `reason` (unless NONE),
    /// `other_info.title`/`description`, `rejection_info.reason`, `disable_info.disable_date`.
    Status {
        event: String,
        status: Option<ApprovalStatus>,
        reason: String,
    },
    /// Quality scores (GREEN, YELLOW, RED, UNKNOWN).
    Quality { previous: String, new: String },
    /// Meta moved the template to another category.
    Category {
        previous: String,
        new: String,
        category: Option<TemplateCategory>,
    },
}

/// `None` when `field` is not a template webhook; otherwise the notice or what was wrong.
pub(crate) fn parse(field: &str, change: Node<'_>) -> Option<Result<TemplateNotice, ParseError>> {
    if !matches!(
        field,
        "message_template_status_update"
            | "message_template_quality_update"
            | "template_category_update"
    ) {
        return None;
    }
    Some(notice(field, change))
}

fn text(value: &Value, name: &str) -> String {
    match value.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn notice(field: &str, change: Node<'_>) -> Result<TemplateNotice, ParseError> {
    let path = change.child_path("value");
    let value = change
        .value()
        .get("value")
        .filter(|v| v.is_object())
        .ok_or_else(|| ParseError::missing(path.clone()))?;
    let name = text(value, "message_template_name");
    let language = text(value, "message_template_language");
    let template = TemplateId::meta(&name, &language)
        .map_err(|e| ParseError::invalid(format!("{path}.message_template_name"), e.to_string()))?;
    let change = match field {
        "message_template_status_update" => {
            let event = text(value, "event");
            if event.is_empty() {
                return Err(ParseError::missing(format!("{path}.event")));
            }
            let mut reasons = Vec::new();
            let reason = text(value, "reason");
            if !reason.is_empty() && reason != "NONE" {
                reasons.push(reason);
            }
            for (object, member) in [
                ("other_info", "title"),
                ("other_info", "description"),
                ("rejection_info", "reason"),
                ("rejection_info", "recommendation"),
                ("disable_info", "disable_date"),
            ] {
                if let Some(inner) = value.get(object) {
                    let part = text(inner, member);
                    if !part.is_empty() {
                        reasons.push(part);
                    }
                }
            }
            TemplateChange::Status {
                status: meta_status(&event),
                event,
                reason: reasons.join("; "),
            }
        }
        "message_template_quality_update" => TemplateChange::Quality {
            previous: text(value, "previous_quality_score"),
            new: text(value, "new_quality_score"),
        },
        _ => {
            // Meta's page names `new_category`; older payloads carry `correct_category`.
            let mut new = text(value, "new_category");
            if new.is_empty() {
                new = text(value, "correct_category");
            }
            TemplateChange::Category {
                previous: text(value, "previous_category"),
                category: TemplateCategory::parse(&new),
                new,
            }
        }
    };
    Ok(TemplateNotice {
        language: template.meta_language().unwrap_or_default().to_owned(),
        template,
        name,
        provider_ref: text(value, "message_template_id"),
        change,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::parse_webhook;

    #[test]
    fn a_status_update_names_the_template_by_name_and_language_with_its_reason() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","time":1751247548,"changes":[{"field":"message_template_status_update","value":{"event":"PAUSED","message_template_id":1689556908129832,"message_template_name":"order_confirmation","message_template_language":"en-US","reason":"NONE","message_template_category":"UTILITY","other_info":{"title":"FIRST_PAUSE","description":"paused for 3 hours"}}}]}]}"#;
        let parsed = parse_webhook(body).expect("parsed");
        // Recorded whole as a provider notice beside the template change.
        assert!(
            matches!(&parsed.events[..], [crate::WebhookEvent::Notice(n)] if n.kind == "message_template_status_update"),
            "{:?}",
            parsed.events
        );
        let notice = &parsed.templates[0];
        assert_eq!(notice.template.as_str(), "order_confirmation@en_US");
        assert_eq!(notice.provider_ref, "1689556908129832");
        assert_eq!(
            notice.change,
            TemplateChange::Status {
                event: "PAUSED".into(),
                status: Some(ApprovalStatus::Paused),
                reason: "FIRST_PAUSE; paused for 3 hours".into(),
            }
        );
    }

    #[test]
    fn quality_and_category_updates_are_parsed() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"message_template_quality_update","value":{"previous_quality_score":"GREEN","new_quality_score":"RED","message_template_id":1,"message_template_name":"a","message_template_language":"de"}},{"field":"template_category_update","value":{"message_template_id":2,"message_template_name":"b","message_template_language":"de","previous_category":"UTILITY","new_category":"MARKETING"}}]}]}"#;
        let parsed = parse_webhook(body).expect("parsed");
        let kinds: Vec<&str> = parsed
            .events
            .iter()
            .filter_map(|event| match event {
                crate::WebhookEvent::Notice(n) => Some(n.kind.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "message_template_quality_update",
                "template_category_update"
            ],
            "each is a provider notice too"
        );
        assert_eq!(
            parsed.templates[0].change,
            TemplateChange::Quality {
                previous: "GREEN".into(),
                new: "RED".into()
            }
        );
        assert!(matches!(
            &parsed.templates[1].change,
            TemplateChange::Category {
                category: Some(TemplateCategory::Marketing),
                ..
            }
        ));
    }

    #[test]
    fn a_notice_without_a_template_name_is_rejected_naming_the_field() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"message_template_status_update","value":{"event":"APPROVED"}}]}]}"#;
        let parsed = parse_webhook(body).expect("parsed");
        assert!(parsed.templates.is_empty());
        assert!(parsed.rejected[0]
            .to_string()
            .contains("message_template_name"));
    }
}
