//! From the app's views to the API's JSON shapes ([`wagate_api`]). This stays in wagate-http
//! because it knows the app; the shapes themselves know nothing but serde.

use chrono::SecondsFormat;
use wagate_app::{ClaimedMessage, ContactView, MessageView, OpenIntent};
use wagate_domain::template::TemplateDefinition;
use wagate_domain::{
    Consent, DispatchPhase, Intent, MessageContent, MessageState, SenderState, TemplateState,
    Timestamp, WhatsAppAddress,
};

use crate::export_json;
use wagate_api::{
    ClaimResponse, ConsentReceiptView, ConsentView, ContactResponse, ContentView, FlagsView,
    IntentView, LinkedIdentityView, MessageResponse, MessageSummary, OptOutView, Phase,
    ProviderErrorView, RefusedView, SenderView, SenderWindow, StatusObservationView,
    TemplateDefinitionView, TemplateView,
};

/// RFC 3339, UTC, milliseconds: `2026-11-25T09:00:00.000Z`.
pub fn timestamp(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_timestamp(at: Option<Timestamp>) -> Option<String> {
    at.map(timestamp)
}

pub fn phase(phase: &DispatchPhase) -> Phase {
    match phase {
        DispatchPhase::NotAllowed => Phase::NotAllowed,
        DispatchPhase::Pending {
            next_attempt,
            not_before,
        } => Phase::Pending {
            next_attempt: *next_attempt,
            not_before: opt_timestamp(*not_before),
        },
        DispatchPhase::Claimed { attempt, since } => Phase::Claimed {
            attempt: *attempt,
            since: timestamp(*since),
        },
        DispatchPhase::Done => Phase::Done,
    }
}

pub fn contact_view(view: &ContactView) -> ContactResponse {
    let state = &view.state;
    let receipt = |r: &wagate_domain::ConsentReceipt| ConsentReceiptView {
        source: r.source.as_str().to_owned(),
        evidence: r.evidence.clone(),
        recorded_by: r.recorded_by.clone(),
        wording_version: r.wording_version.clone(),
        evidence_at: timestamp(r.evidence_at),
        at: timestamp(r.at),
    };
    let consent_view = |consent: &Consent| match consent {
        Consent::Unknown => ConsentView {
            state: "unknown".into(),
            receipt: None,
            opt_out: None,
        },
        Consent::OptedIn(r) => ConsentView {
            state: "opted_in".into(),
            receipt: Some(receipt(r)),
            opt_out: None,
        },
        Consent::OptedOut {
            source,
            detail,
            evidence_at,
            at,
            withdrawn,
        } => ConsentView {
            state: "opted_out".into(),
            receipt: withdrawn.as_ref().map(receipt),
            opt_out: Some(OptOutView {
                source: source.as_str().to_owned(),
                detail: detail.clone(),
                evidence_at: timestamp(*evidence_at),
                at: timestamp(*at),
            }),
        },
    };
    let consent = consent_view(&state.consent);
    let linked_states: Vec<wagate_domain::ContactState> = view
        .linked
        .iter()
        .map(|(_, linked)| linked.clone())
        .collect();
    let effective_consent = match state.with_linked(&linked_states).consent {
        Consent::Unknown => "unknown",
        Consent::OptedIn(_) => "opted_in",
        Consent::OptedOut { .. } => "opted_out",
    };
    let linked_identities = view
        .linked
        .iter()
        .map(|(id, linked)| LinkedIdentityView {
            contact: id.to_string(),
            consent: consent_view(&linked.consent),
        })
        .collect();
    ContactResponse {
        contact: view.contact.to_string(),
        version: view.version,
        consent,
        window_open_until: opt_timestamp(view.window_open_until),
        last_inbound_at: opt_timestamp(state.last_inbound_at),
        windows: view
            .windows
            .iter()
            .map(|window| SenderWindow {
                sender: window.sender.to_string(),
                last_inbound_at: opt_timestamp(window.last_inbound_at),
                open_until: opt_timestamp(window.open_until),
            })
            .collect(),
        flags: FlagsView {
            not_on_whatsapp: opt_timestamp(state.not_on_whatsapp_since),
            marketing_paused: opt_timestamp(state.marketing_paused_since),
        },
        reviews_requested: state.reviews_requested,
        recent_messages: view
            .recent_messages
            .iter()
            .map(|(id, message)| MessageSummary {
                message_id: id.to_string(),
                status: message.status.as_str().to_owned(),
                refused: message
                    .refused
                    .as_ref()
                    .map(|(rule, _)| rule.as_str().to_owned()),
            })
            .collect(),
        linked_identities,
        effective_consent: effective_consent.to_owned(),
    }
}

pub fn intent(intent: &Intent) -> IntentView {
    let content = match &intent.content {
        MessageContent::Template {
            template,
            category,
            variables,
            media,
        } => ContentView::Template {
            template: template.to_string(),
            category: category.as_str().to_owned(),
            variables: variables.iter().cloned().collect(),
            media: media
                .iter()
                .map(|m| wagate_api::TemplateMediaBody {
                    card: m.card,
                    kind: m.kind.as_str().to_owned(),
                    url: m.url.to_string(),
                })
                .collect(),
        },
        MessageContent::Freeform { text } => ContentView::Text { text: text.clone() },
        MessageContent::Rich(wagate_domain::RichReply::Media(media)) => ContentView::Media {
            kind: media.kind.as_str().to_owned(),
            url: media.url.to_string(),
            caption: media.caption.clone(),
        },
        MessageContent::Rich(wagate_domain::RichReply::Buttons { body, buttons }) => {
            ContentView::Buttons {
                body: body.clone(),
                buttons: buttons
                    .iter()
                    .map(|button| wagate_api::ReplyButtonBody {
                        id: button.id.clone(),
                        title: button.title.clone(),
                    })
                    .collect(),
            }
        }
    };
    IntentView {
        to: intent.contact.to_string(),
        from: intent.sender.to_string(),
        workflow: intent.workflow.to_string(),
        content,
        decided_at: timestamp(intent.decided_at),
    }
}

fn message_state(message_id: String, state: &MessageState) -> MessageResponse {
    MessageResponse {
        message_id,
        status: state.status.as_str().to_owned(),
        intent: state.intent.as_ref().map(intent),
        refused: state.refused.as_ref().map(|(rule, message)| RefusedView {
            rule: rule.as_str().to_owned(),
            message: message.clone(),
        }),
        canceled_by: state.canceled_by.map(|rule| rule.as_str().to_owned()),
        phase: phase(&state.phase()),
        attempts: state.attempts,
        provider_ref: state.provider_ref.as_ref().map(ToString::to_string),
        last_error: state.last_error.as_ref().map(|e| ProviderErrorView {
            provider: e.provider.as_str().to_owned(),
            code: e.code,
            http_status: e.http_status,
            message: e.message.clone(),
        }),
        statuses: state
            .history
            .iter()
            .map(|o| StatusObservationView {
                status: o.status.as_str().to_owned(),
                error_code: o.error_code,
                at: timestamp(o.at),
                applied: o.applied,
            })
            .collect(),
        history: Vec::new(),
    }
}

pub fn message_view(view: &MessageView) -> MessageResponse {
    let mut response = message_state(view.message_id.to_string(), &view.state);
    response.history = view
        .history
        .iter()
        .map(export_json::history_entry_to_json)
        .collect();
    response
}

pub fn sender_view(address: &WhatsAppAddress, state: &SenderState) -> SenderView {
    let registration = state.registration.as_ref();
    SenderView {
        address: address.to_string(),
        provider: registration.map(|r| r.provider.as_str().to_owned()),
        portfolio: registration.map(|r| r.portfolio.to_string()),
        meta_phone_number_id: registration.and_then(|r| r.meta_phone_number_id.clone()),
        upgraded: registration.is_some_and(|r| r.rate.upgraded),
        rate_per_second: registration.map(|r| r.rate_per_second()),
        authorized_by: state.authorized_by.clone(),
        suspended: state.suspended.clone(),
        may_send: state.may_send(),
    }
}

pub fn template_view(id: &str, state: &TemplateState) -> TemplateView {
    let definition = state.definition.as_ref();
    TemplateView {
        id: id.to_owned(),
        content_sid: id.to_owned(),
        name: definition.map(|d| d.name.clone()),
        language: definition.map(|d| d.language.clone()),
        category: definition.map(|d| d.category.as_str().to_owned()),
        placeholders: definition
            .map(|d| d.placeholders.clone())
            .unwrap_or_default(),
        status: state.approval.map(|s| s.as_str().to_owned()),
        source: state.source.map(|s| s.as_str().to_owned()),
        reason: Some(state.reason.clone()).filter(|r| !r.is_empty()),
        provider: state
            .created
            .as_ref()
            .map(|c| c.provider.as_str().to_owned()),
        provider_ref: state.created.as_ref().map(|c| c.provider_ref.clone()),
    }
}

fn template_definition(definition: &TemplateDefinition) -> TemplateDefinitionView {
    TemplateDefinitionView {
        name: definition.name.clone(),
        language: definition.language.clone(),
        category: definition.category.as_str().to_owned(),
        placeholders: definition.placeholders.clone(),
    }
}

pub fn claimed(claim: &ClaimedMessage) -> ClaimResponse {
    ClaimResponse {
        message_id: claim.message_id.to_string(),
        attempt: claim.attempt,
        intent: intent(&claim.intent),
        sender: sender_view(&claim.intent.sender, &claim.sender),
        template: claim.template.as_ref().map(template_definition),
    }
}

/// A message's dispatch entry.
pub fn pending(open: &OpenIntent) -> wagate_api::PendingMessageView {
    wagate_api::PendingMessageView {
        message_id: open.message_id.to_string(),
        sender: open.sender.to_string(),
        recipient: open.recipient.to_string(),
        phase: phase(&open.phase),
        position: open.position,
        sender_rate_per_second: open.sender_rate_per_second,
    }
}

pub fn explanation(explanation: &wagate_app::Explanation) -> wagate_api::ExplainResponse {
    wagate_api::ExplainResponse {
        message_id: explanation.message_id.to_string(),
        decision: match explanation.verdict {
            wagate_app::Verdict::Allowed => wagate_api::ExplainDecision::Allowed,
            wagate_app::Verdict::Refused => wagate_api::ExplainDecision::Refused,
        },
        rule: explanation.rule.map(|rule| rule.as_str().to_owned()),
        facts: explanation
            .facts
            .iter()
            .map(|fact| wagate_api::ExplainFact {
                position: fact.position,
                text: fact.text.clone(),
            })
            .collect(),
    }
}
