//! The inverse of [`crate::payload`]: an export line back to the domain event it was written
//! from, so `wagate import` can rebuild a database from an export file. Exact for every event
//! type (`tests/every_event_type.rs` checks `event(line(e)) == e` for each one).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use wagate_domain::{
    ApprovalStatus, CampaignMedium, ConsentEvent, ContactEvent, ContactFlag, ContactId,
    EndpointEvent, EndpointId, Event, IdentitySource, MediaKind, MessageEvent, MessageId,
    MessageStatus, MessagingLimit, OptInSource, OptOutSource, OutgoingEventKind, PortfolioEvent,
    PortfolioId, ProviderError, ProviderEvent, ProviderKind, ProviderMessageRef, ReplyButton,
    Retry, ReviewDecision, ReviewEvent, ReviewReason, ReviewSubject, RichReply, RuleId,
    SenderEvent, SenderRate, StatusPricing, TemplateCategory, TemplateEvent, TemplateId,
    TemplateMedia, Timestamp, WhatsAppAddress, Workflow,
};

use wagate_domain::template::{
    ButtonKind, HeaderFormat, TemplateButton, TemplateCard, TemplateContent, TemplateHeader,
};

use crate::ExportedEvent;

mod campaign;

/// Why a line's payload is not the event its type names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("payload field {field:?}: {reason}")]
    Field { field: String, reason: String },
}

struct Payload<'a>(&'a Map<String, Value>);

fn bad(field: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Field {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Payload<'_> {
    fn value(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|value| !value.is_null())
    }

    fn text(&self, field: &str) -> Result<String, DecodeError> {
        match self.value(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(other) => Err(bad(field, format!("expected text, found {other}"))),
            None => Err(bad(field, "missing")),
        }
    }

    fn optional_text(&self, field: &str) -> Result<Option<String>, DecodeError> {
        match self.value(field) {
            None => Ok(None),
            Some(_) => self.text(field).map(Some),
        }
    }

    fn parsed<T, E: std::fmt::Display>(
        &self,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, DecodeError> {
        let text = self.text(field)?;
        parse(&text).map_err(|error| bad(field, format!("{text:?}: {error}")))
    }

    fn optional<T, E: std::fmt::Display>(
        &self,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, DecodeError> {
        match self.value(field) {
            None => Ok(None),
            Some(_) => self.parsed(field, parse).map(Some),
        }
    }

    /// A stable snake_case id (`parse` answers `None` for an unknown one).
    fn id<T>(&self, field: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, DecodeError> {
        self.parsed(field, |text| parse(text).ok_or("not a known value"))
    }

    fn time(&self, field: &str) -> Result<Timestamp, DecodeError> {
        self.parsed(field, parse_time)
    }

    fn optional_time(&self, field: &str) -> Result<Option<Timestamp>, DecodeError> {
        self.optional(field, parse_time)
    }

    fn optional_number<T: TryFrom<u64>>(&self, field: &str) -> Result<Option<T>, DecodeError> {
        match self.value(field) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    bad(
                        field,
                        format!("expected an unsigned integer, found {value}"),
                    )
                }),
        }
    }

    fn optional_bool(&self, field: &str) -> Result<Option<bool>, DecodeError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(bad(field, format!("expected true or false, found {other}"))),
        }
    }

    fn number<T: TryFrom<u64>>(&self, field: &str) -> Result<T, DecodeError> {
        self.optional_number(field)?
            .ok_or_else(|| bad(field, "missing"))
    }

    fn contact(&self, field: &str) -> Result<ContactId, DecodeError> {
        self.parsed(field, ContactId::parse)
    }

    fn address(&self, field: &str) -> Result<WhatsAppAddress, DecodeError> {
        self.parsed(field, WhatsAppAddress::parse)
    }

    fn message_id(&self) -> Result<MessageId, DecodeError> {
        self.parsed("message_id", MessageId::parse)
    }

    fn rule(&self, field: &str) -> Result<RuleId, DecodeError> {
        self.id(field, RuleId::parse)
    }

    fn status(&self, field: &str) -> Result<MessageStatus, DecodeError> {
        self.parsed(field, |text| Ok::<_, &str>(MessageStatus::parse(text)))
    }

    fn object(&self, field: &str) -> Result<Payload<'_>, DecodeError> {
        match self.value(field) {
            Some(Value::Object(map)) => Ok(Payload(map)),
            Some(other) => Err(bad(field, format!("expected an object, found {other}"))),
            None => Err(bad(field, "missing")),
        }
    }

    /// `[[key, value], …]`; absent (an export of an older schema) is empty.
    fn pairs(&self, field: &str) -> Result<Vec<(String, String)>, DecodeError> {
        let pair = |item: &Value| match item {
            Value::Array(kv) => match kv.as_slice() {
                [Value::String(k), Value::String(v)] => Some((k.clone(), v.clone())),
                _ => None,
            },
            _ => None,
        };
        match self.value(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    pair(item).ok_or_else(|| {
                        bad(
                            field,
                            format!("expected [key, value] text pairs, found {item}"),
                        )
                    })
                })
                .collect(),
            Some(other) => Err(bad(field, format!("expected a list, found {other}"))),
        }
    }

    fn objects(&self, field: &str) -> Result<Vec<Payload<'_>>, DecodeError> {
        match self.value(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Object(map) => Ok(Payload(map)),
                    other => Err(bad(field, format!("expected objects, found {other}"))),
                })
                .collect(),
            Some(other) => Err(bad(field, format!("expected a list, found {other}"))),
        }
    }

    fn strings(&self, field: &str) -> Result<Vec<String>, DecodeError> {
        match self.value(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad(field, format!("expected text items, found {item}")))
                })
                .collect(),
            Some(other) => Err(bad(field, format!("expected a list, found {other}"))),
        }
    }
}

fn header(p: &Payload<'_>) -> Result<TemplateHeader, DecodeError> {
    Ok(TemplateHeader {
        format: p.id("format", HeaderFormat::parse)?,
        value: p.text("value")?,
    })
}

fn buttons(p: &Payload<'_>, field: &str) -> Result<Vec<TemplateButton>, DecodeError> {
    p.objects(field)?
        .iter()
        .map(|button| {
            Ok(TemplateButton {
                kind: button.id("kind", ButtonKind::parse)?,
                text: button.text("text")?,
                value: button.text("value")?,
            })
        })
        .collect()
}

fn parse_time(text: &str) -> Result<Timestamp, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
}

/// The domain event `line` was exported from.
pub fn event(line: &ExportedEvent) -> Result<Event, DecodeError> {
    let p = Payload(&line.payload);
    if let Some(event) = campaign::event(&line.event_type, &p) {
        return event;
    }
    let at = || p.time("at");
    Ok(match line.event_type.as_str() {
        "OptedIn" => ContactEvent::OptedIn {
            contact: p.contact("contact")?,
            source: p.id("source", OptInSource::parse)?,
            evidence: p.text("evidence")?,
            recorded_by: p.text("recorded_by")?,
            wording_version: p.text("wording_version")?,
            evidence_at: p.time("evidence_at")?,
            at: at()?,
        }
        .into(),
        "InboundReceived" => ContactEvent::InboundReceived {
            contact: p.contact("contact")?,
            sender: p.optional("sender", WhatsAppAddress::parse)?,
            provider_ref: p.optional("provider_ref", ProviderMessageRef::parse)?,
            kind: p.text("kind")?,
            text: p.text("text")?,
            provider_at: p.optional_time("provider_at")?,
            details: p.pairs("details")?,
            at: at()?,
        }
        .into(),
        "OptedOut" => ContactEvent::OptedOut {
            contact: p.contact("contact")?,
            source: p.id("source", OptOutSource::parse)?,
            detail: p.text("detail")?,
            evidence_at: p.time("evidence_at")?,
            at: at()?,
        }
        .into(),
        "OptOutReviewRequested" => ContactEvent::OptOutReviewRequested {
            contact: p.contact("contact")?,
            text: p.text("text")?,
            matched: p.text("matched")?,
            at: at()?,
        }
        .into(),
        "FlagRaised" => ContactEvent::FlagRaised {
            contact: p.contact("contact")?,
            flag: p.id("flag", ContactFlag::parse)?,
            reason: p.text("reason")?,
            at: at()?,
        }
        .into(),
        "FlagCleared" => ContactEvent::FlagCleared {
            contact: p.contact("contact")?,
            flag: p.id("flag", ContactFlag::parse)?,
            reason: p.text("reason")?,
            at: at()?,
        }
        .into(),
        "WindowReportedClosed" => ContactEvent::WindowReportedClosed {
            contact: p.contact("contact")?,
            sender: p.optional("sender", WhatsAppAddress::parse)?,
            code: p.number("code")?,
            at: at()?,
        }
        .into(),
        "IdentityLinked" => ContactEvent::IdentityLinked {
            contact: p.contact("contact")?,
            other: p.contact("other")?,
            source: p.id("source", IdentitySource::parse)?,
            at: at()?,
        }
        .into(),
        "GroupMessageReceived" => ContactEvent::GroupMessageReceived {
            contact: p.contact("contact")?,
            group: p.text("group")?,
            sender: p.optional("sender", WhatsAppAddress::parse)?,
            provider_ref: p.optional("provider_ref", ProviderMessageRef::parse)?,
            kind: p.text("kind")?,
            text: p.text("text")?,
            at: at()?,
        }
        .into(),
        "TemplateSent" => {
            let variables = p.object("variables")?;
            let mut pairs = variables
                .0
                .iter()
                .map(|(key, value)| {
                    value
                        .as_str()
                        .map(|value| (key.clone(), value.to_owned()))
                        .ok_or_else(|| bad("variables", format!("{key:?} is not text")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // The domain keeps them sorted by key; so does a JSON object read back here.
            pairs.sort();
            MessageEvent::TemplateSent {
                message_id: p.message_id()?,
                contact: p.contact("contact")?,
                sender: p.address("sender")?,
                template: p.parsed("template", TemplateId::parse)?,
                category: p.id("category", TemplateCategory::parse)?,
                variables: pairs,
                media: template_media(&p)?,
                workflow: p.parsed("workflow", Workflow::parse)?,
                at: at()?,
            }
            .into()
        }
        "ReplySent" => MessageEvent::ReplySent {
            message_id: p.message_id()?,
            contact: p.contact("contact")?,
            sender: p.address("sender")?,
            text: p.text("text")?,
            rich: match p.value("rich") {
                None => None,
                Some(_) => Some(rich(&p.object("rich")?)?),
            },
            workflow: p.parsed("workflow", Workflow::parse)?,
            at: at()?,
        }
        .into(),
        "SendRefused" => MessageEvent::SendRefused {
            message_id: p.message_id()?,
            to: p.text("to")?,
            sender: p.address("sender")?,
            template: p.optional("template", TemplateId::parse)?,
            rule: p.rule("rule")?,
            message: p.text("message")?,
            also_broken: p
                .strings("also_broken")?
                .iter()
                .map(|rule| {
                    RuleId::parse(rule)
                        .ok_or_else(|| bad("also_broken", format!("{rule:?}: not a known rule")))
                })
                .collect::<Result<_, _>>()?,
            at: at()?,
        }
        .into(),
        "DispatchClaimed" => MessageEvent::DispatchClaimed {
            message_id: p.message_id()?,
            attempt: p.number("attempt")?,
            at: at()?,
        }
        .into(),
        "ClaimRefused" => MessageEvent::ClaimRefused {
            message_id: p.message_id()?,
            attempt: p.number("attempt")?,
            rule: p.rule("rule")?,
            message: p.text("message")?,
            at: at()?,
        }
        .into(),
        "DispatchSucceeded" => MessageEvent::DispatchSucceeded {
            message_id: p.message_id()?,
            attempt: p.number("attempt")?,
            provider_ref: p.parsed("provider_ref", ProviderMessageRef::parse)?,
            provider_status: p.status("provider_status")?,
            at: at()?,
        }
        .into(),
        "DispatchFailed" => {
            let error = p.object("error")?;
            let retryable = match p.value("retryable") {
                Some(Value::Bool(retryable)) => *retryable,
                other => {
                    return Err(bad(
                        "retryable",
                        format!("expected true or false, found {other:?}"),
                    ))
                }
            };
            MessageEvent::DispatchFailed {
                message_id: p.message_id()?,
                attempt: p.number("attempt")?,
                error: ProviderError {
                    provider: error.id("provider", ProviderKind::parse)?,
                    code: error.optional_number("code")?,
                    http_status: error.optional_number("http_status")?,
                    message: error.text("message")?,
                },
                retry: if retryable {
                    Retry::Retryable
                } else {
                    Retry::Permanent
                },
                retry_at: p.optional_time("retry_at")?,
                at: at()?,
            }
            .into()
        }
        "StatusChanged" => MessageEvent::StatusChanged {
            message_id: p.message_id()?,
            provider_ref: p.optional("provider_ref", ProviderMessageRef::parse)?,
            status: p.status("status")?,
            error_code: p.optional_number("error_code")?,
            details: p.pairs("details")?,
            pricing: match p.value("pricing") {
                None => None,
                Some(_) => {
                    let pricing = p.object("pricing")?;
                    Some(StatusPricing {
                        billable: pricing.optional_bool("billable")?,
                        pricing_model: pricing.optional_text("pricing_model")?,
                        category: pricing.optional_text("category")?,
                        kind: pricing.optional_text("type")?,
                    })
                }
            },
            at: at()?,
        }
        .into(),
        "ProviderPriceReported" => MessageEvent::PriceReported {
            message_id: p.message_id()?,
            provider: p.id("provider", ProviderKind::parse)?,
            amount_micros: match p.value("amount_micros") {
                Some(value) => value.as_i64().ok_or_else(|| {
                    bad(
                        "amount_micros",
                        format!("expected an integer, found {value}"),
                    )
                })?,
                None => return Err(bad("amount_micros", "missing")),
            },
            currency: p.text("currency")?,
            at: at()?,
        }
        .into(),
        "InDoubtExpired" => MessageEvent::InDoubtExpired {
            message_id: p.message_id()?,
            attempt: p.number("attempt")?,
            at: at()?,
        }
        .into(),
        "UnmatchedStatusReceived" => MessageEvent::UnmatchedStatusReceived {
            provider_ref: p.parsed("provider_ref", ProviderMessageRef::parse)?,
            status: p.status("status")?,
            error_code: p.optional_number("error_code")?,
            details: p.pairs("details")?,
            at: at()?,
        }
        .into(),
        "SenderRegistered" => SenderEvent::Registered {
            sender: p.address("sender")?,
            provider: p.id("provider", ProviderKind::parse)?,
            portfolio: p.parsed("portfolio", PortfolioId::parse)?,
            meta_phone_number_id: p.optional_text("meta_phone_number_id")?,
            rate: SenderRate {
                upgraded: p.optional_bool("upgraded")?.unwrap_or(false),
                per_second: p.optional_number("rate_per_second")?,
            },
            at: at()?,
        }
        .into(),
        "SenderAuthorized" => SenderEvent::Authorized {
            sender: p.address("sender")?,
            by: p.text("by")?,
            at: at()?,
        }
        .into(),
        "SenderSuspended" => SenderEvent::Suspended {
            sender: p.address("sender")?,
            reason: p.text("reason")?,
            at: at()?,
        }
        .into(),
        "SenderQualityReported" => SenderEvent::QualityReported {
            sender: p.address("sender")?,
            event: p.text("event")?,
            dropped: p
                .optional_bool("dropped")?
                .ok_or_else(|| bad("dropped", "missing"))?,
            at: at()?,
        }
        .into(),
        "TemplateCategoryReported" => TemplateEvent::CategoryReported {
            template: p.parsed("template", TemplateId::parse)?,
            category: p.id("category", TemplateCategory::parse)?,
            previous: p.text("previous")?,
            at: at()?,
        }
        .into(),
        "TemplateRegistered" => TemplateEvent::Registered {
            template: p.parsed("template", TemplateId::parse)?,
            name: p.text("name")?,
            language: p.text("language")?,
            category: p.id("category", TemplateCategory::parse)?,
            placeholders: p.strings("placeholders")?,
            at: at()?,
        }
        .into(),
        "TemplateApprovalChanged" => TemplateEvent::ApprovalChanged {
            template: p.parsed("template", TemplateId::parse)?,
            status: p.id("status", ApprovalStatus::parse)?,
            reason: p.text("reason")?,
            at: at()?,
        }
        .into(),
        "TemplateCreated" => TemplateEvent::Created {
            template: p.parsed("template", TemplateId::parse)?,
            provider: p.id("provider", ProviderKind::parse)?,
            provider_ref: p.text("provider_ref")?,
            name: p.text("name")?,
            language: p.text("language")?,
            category: p.id("category", TemplateCategory::parse)?,
            content: TemplateContent {
                body: p.text("body")?,
                header: match p.value("header") {
                    None => None,
                    Some(_) => Some(header(&p.object("header")?)?),
                },
                buttons: buttons(&p, "buttons")?,
                cards: p
                    .objects("cards")?
                    .iter()
                    .map(|card| {
                        Ok(TemplateCard {
                            header: header(&card.object("header")?)?,
                            body: card.text("body")?,
                            buttons: buttons(card, "buttons")?,
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?,
            },
            at: at()?,
        }
        .into(),
        "TemplateStatusReported" => TemplateEvent::StatusReported {
            template: p.parsed("template", TemplateId::parse)?,
            status: p.id("status", ApprovalStatus::parse)?,
            reason: p.text("reason")?,
            at: at()?,
        }
        .into(),
        "MessagingLimitChanged" => PortfolioEvent::MessagingLimitChanged {
            portfolio: p.parsed("portfolio", PortfolioId::parse)?,
            limit: match p.optional_number("limit")? {
                Some(limit) => MessagingLimit::Limited(limit),
                None => MessagingLimit::Unlimited,
            },
            at: at()?,
        }
        .into(),
        "RecipientReached" => PortfolioEvent::RecipientReached {
            portfolio: p.parsed("portfolio", PortfolioId::parse)?,
            contact: p.contact("contact")?,
            message_id: p.message_id()?,
            at: at()?,
        }
        .into(),
        "ProviderNoticeReceived" => ProviderEvent::NoticeReceived {
            provider: p.id("provider", ProviderKind::parse)?,
            subject: p.text("subject")?,
            kind: p.text("kind")?,
            details: p.pairs("details")?,
            at: at()?,
        }
        .into(),
        "ReviewRaised" => ReviewEvent::Raised {
            reason: p.id("reason", ReviewReason::parse)?,
            subject: ReviewSubject {
                contact: p.optional("contact", ContactId::parse)?,
                message_id: p.optional("message_id", MessageId::parse)?,
                sender: p.optional("sender", WhatsAppAddress::parse)?,
                template: p.optional("template", TemplateId::parse)?,
            },
            detail: p.text("detail")?,
            at: at()?,
        }
        .into(),
        "ReviewResolved" => ReviewEvent::Resolved {
            item: p.number("item")?,
            reason: p.id("reason", ReviewReason::parse)?,
            decision: p.id("decision", ReviewDecision::parse)?,
            note: p.text("note")?,
            at: at()?,
        }
        .into(),
        "ConsentWordingPublished" => ConsentEvent::WordingPublished {
            version: p.text("version")?,
            business: p.text("business")?,
            language: p.text("language")?,
            text: p.text("text")?,
            text_hash: p.text("text_hash")?,
            at: at()?,
        }
        .into(),
        "ConsentCampaignCreated" => ConsentEvent::CampaignCreated {
            campaign: p.text("campaign")?,
            sender: p.address("sender")?,
            wording_version: p.text("wording_version")?,
            workflows: p
                .strings("workflows")?
                .iter()
                .map(|w| Workflow::parse(w).map_err(|e| bad("workflows", e.to_string())))
                .collect::<Result<_, _>>()?,
            medium: p.id("medium", CampaignMedium::parse)?,
            confirmation_template: p.optional("confirmation_template", TemplateId::parse)?,
            at: at()?,
        }
        .into(),
        "OptInRequested" => ConsentEvent::OptInRequested {
            contact: p.contact("contact")?,
            campaign: p.text("campaign")?,
            wording_version: p.text("wording_version")?,
            text_hash: p.text("text_hash")?,
            evidence: p.text("evidence")?,
            at: at()?,
        }
        .into(),
        "ConsentCampaignClosed" => ConsentEvent::CampaignClosed {
            campaign: p.text("campaign")?,
            at: at()?,
        }
        .into(),
        "OptInConfirmationSent" => ConsentEvent::ConfirmationSent {
            contact: p.contact("contact")?,
            campaign: p.text("campaign")?,
            message_id: p.message_id()?,
            at: at()?,
        }
        .into(),
        "WebhookEndpointRegistered" => EndpointEvent::Registered {
            endpoint: p.parsed("endpoint", EndpointId::parse)?,
            url: p.text("url")?,
            events: p
                .strings("events")?
                .iter()
                .map(|kind| {
                    OutgoingEventKind::parse(kind)
                        .ok_or_else(|| bad("events", format!("{kind:?}: not a known value")))
                })
                .collect::<Result<_, _>>()?,
            at: at()?,
        }
        .into(),
        "WebhookEndpointDeleted" => EndpointEvent::Deleted {
            endpoint: p.parsed("endpoint", EndpointId::parse)?,
            at: at()?,
        }
        .into(),
        "WebhookEndpointDisabled" => EndpointEvent::Disabled {
            endpoint: p.parsed("endpoint", EndpointId::parse)?,
            reason: p.text("reason")?,
            failing_since: p.time("failing_since")?,
            at: at()?,
        }
        .into(),
        "WebhookEndpointEnabled" => EndpointEvent::Enabled {
            endpoint: p.parsed("endpoint", EndpointId::parse)?,
            at: at()?,
        }
        .into(),
        other => return Err(DecodeError::UnknownType(other.to_owned())),
    })
}

/// The inverse of `rich_payload`, validated as a send is.
fn rich(p: &Payload<'_>) -> Result<RichReply, DecodeError> {
    let invalid = |error: wagate_domain::CommandError| bad("rich", error.to_string());
    match p.text("type")?.as_str() {
        "media" => RichReply::media(
            p.id("kind", MediaKind::parse)?,
            &p.text("url")?,
            p.text("caption")?,
        )
        .map_err(invalid),
        "buttons" => {
            let buttons = match p.value("buttons") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::Object(map) => {
                            let button = Payload(map);
                            Ok(ReplyButton {
                                id: button.text("id")?,
                                title: button.text("title")?,
                            })
                        }
                        other => Err(bad("buttons", format!("expected an object, found {other}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(bad("buttons", "expected a list")),
            };
            RichReply::buttons(p.text("body")?, buttons).map_err(invalid)
        }
        other => Err(bad("type", format!("{other:?}: not media or buttons"))),
    }
}

/// `TemplateSent.media`: `[{"card": null|n, "type", "url"}]`, absent for none.
fn template_media(p: &Payload<'_>) -> Result<Vec<TemplateMedia>, DecodeError> {
    let items = match p.value("media") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(bad("media", format!("expected a list, found {other}"))),
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(map) = item else {
                return Err(bad("media", format!("expected an object, found {item}")));
            };
            let m = Payload(map);
            let card = m.optional_number::<u8>("card")?;
            TemplateMedia::new(card, m.id("type", MediaKind::parse)?, &m.text("url")?)
                .map_err(|e| bad("media", e.to_string()))
        })
        .collect()
}
