//! Adding an event type touches the domain, its persisted form, its export form, its golden
//! fixture and docs/events.md. This test fails (or, for `sample`, does not compile) when one of
//! them is forgotten: it walks `EventType::ALL`, which the domain generates from the same list
//! as the enum, and `Event::event_type` is an exhaustive match over every event variant.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wagate_domain::{
    ApprovalStatus, CampaignMedium, ConsentEvent, ContactEvent, ContactFlag, ContactId, Event,
    EventType, IdentitySource, MessageEvent, MessageId, MessageStatus, MessagingLimit, OptInSource,
    OptOutSource, PortfolioEvent, PortfolioId, ProviderError, ProviderEvent, ProviderKind,
    ProviderMessageRef, Retry, ReviewDecision, ReviewEvent, ReviewReason, ReviewSubject, RuleId,
    SenderEvent, StatusPricing, TemplateCategory, TemplateEvent, TemplateId, WhatsAppAddress,
    Workflow,
};
use wagate_domain::{EndpointEvent, EndpointId, OutgoingEventKind};
use wagate_export::ExportedEvent;
use wagate_store::persisted;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000, 0).expect("valid timestamp")
}

fn campaign_samples(t: DateTime<Utc>) -> Vec<Event> {
    use wagate_domain::campaign::{CampaignEvent, CampaignRow, OnLimit};
    let campaign = wagate_domain::CampaignId::from_uuid(Uuid::from_u128(
        0x0190_b5a2_7c1e_7000_8000_0000_0000_0c0d,
    ))
    .expect("campaign id");
    let message = MessageId::from_uuid(Uuid::from_u128(0x0190_b5a2_7c1e_7000_8000_0000_0000_0001))
        .expect("message id");
    vec![
        CampaignEvent::Created {
            campaign,
            sender: WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender"),
            workflow: Workflow::parse("lead_qualification").expect("workflow"),
            template: TemplateId::parse("deal_alert").expect("template"),
            rows: vec![
                CampaignRow {
                    to: wagate_domain::PhoneNumber::parse("+41790000001").expect("number"),
                    variables: vec![("1".into(), "Ana".into()), ("2".into(), "Zürich".into())],
                },
                CampaignRow {
                    to: wagate_domain::PhoneNumber::parse("+41790000002").expect("number"),
                    variables: vec![("1".into(), "Max".into()), ("2".into(), "Bern".into())],
                },
            ],
            on_limit: OnLimit::Wait,
            at: t,
        }
        .into(),
        CampaignEvent::Listed { campaign, at: t }.into(),
        CampaignEvent::Started { campaign, at: t }.into(),
        CampaignEvent::Paused { campaign, at: t }.into(),
        CampaignEvent::Cancelled {
            campaign,
            withdrawn: 1,
            at: t,
        }
        .into(),
        CampaignEvent::RowSent {
            campaign,
            row: 1,
            message,
            at: t,
        }
        .into(),
        CampaignEvent::RowRefused {
            campaign,
            row: 2,
            message,
            rule: RuleId::OptedOut,
            at: t,
        }
        .into(),
        CampaignEvent::Completed { campaign, at: t }.into(),
    ]
}

/// One event of `event_type`. Exhaustive over `EventType`: a new type does not compile here.
fn sample(event_type: EventType) -> Event {
    let contact = ContactId::parse("+41790000001").expect("contact");
    let sender = WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender");
    let message_id =
        MessageId::from_uuid(Uuid::from_u128(0x0190_b5a2_7c1e_7000_8000_0000_0000_0001))
            .expect("message id");
    let provider_ref =
        ProviderMessageRef::parse("SM0123456789abcdef0123456789abcdef").expect("sid");
    let template = TemplateId::parse("appointment_reminder").expect("template");
    let workflow = Workflow::parse("appointment_scheduling").expect("workflow");
    let portfolio = PortfolioId::parse("default").expect("portfolio");
    let at = at();
    match event_type {
        EventType::OptedIn => ContactEvent::OptedIn {
            contact,
            source: OptInSource::WebForm,
            evidence: "form 42".into(),
            recorded_by: "operator".into(),
            wording_version: "v1".into(),
            evidence_at: at,
            at,
        }
        .into(),
        EventType::InboundReceived => ContactEvent::InboundReceived {
            contact,
            sender: Some(sender),
            provider_ref: Some(provider_ref),
            kind: "text".into(),
            text: "hello".into(),
            provider_at: Some(at),
            details: vec![("profile.name".into(), "Ana".into())],
            at,
        }
        .into(),
        EventType::OptedOut => ContactEvent::OptedOut {
            contact,
            source: OptOutSource::Keyword,
            detail: "STOP".into(),
            evidence_at: at,
            at,
        }
        .into(),
        EventType::OptOutReviewRequested => ContactEvent::OptOutReviewRequested {
            contact,
            text: "please stop".into(),
            matched: "stop".into(),
            at,
        }
        .into(),
        EventType::FlagRaised => ContactEvent::FlagRaised {
            contact,
            flag: ContactFlag::NotOnWhatsapp,
            reason: "twilio error 63003".into(),
            at,
        }
        .into(),
        EventType::FlagCleared => ContactEvent::FlagCleared {
            contact,
            flag: ContactFlag::MarketingPaused,
            reason: "operator".into(),
            at,
        }
        .into(),
        EventType::WindowReportedClosed => ContactEvent::WindowReportedClosed {
            contact,
            sender: Some(sender),
            code: 63016,
            at,
        }
        .into(),
        EventType::TemplateSent => MessageEvent::TemplateSent {
            media: vec![
                wagate_domain::TemplateMedia::new(
                    None,
                    wagate_domain::MediaKind::Video,
                    "https://cdn.example.com/tour.mp4",
                )
                .expect("valid"),
                wagate_domain::TemplateMedia::new(
                    Some(1),
                    wagate_domain::MediaKind::Image,
                    "https://cdn.example.com/2.jpg",
                )
                .expect("valid"),
            ],
            message_id,
            contact,
            sender,
            template,
            category: TemplateCategory::Utility,
            variables: vec![("1".into(), "Lea".into())],
            workflow,
            at,
        }
        .into(),
        EventType::ReplySent => MessageEvent::ReplySent {
            message_id,
            contact,
            sender,
            text: "see you".into(),
            rich: Some(
                wagate_domain::RichReply::buttons(
                    "see you".into(),
                    vec![wagate_domain::ReplyButton {
                        id: "ok".into(),
                        title: "OK".into(),
                    }],
                )
                .expect("valid buttons"),
            ),
            workflow,
            at,
        }
        .into(),
        EventType::SendRefused => MessageEvent::SendRefused {
            message_id,
            to: "+41790000001".into(),
            sender,
            template: None,
            rule: RuleId::OptedOut,
            message: "opted out".into(),
            also_broken: vec![RuleId::NoOptIn],
            at,
        }
        .into(),
        EventType::DispatchClaimed => MessageEvent::DispatchClaimed {
            message_id,
            attempt: 1,
            at,
        }
        .into(),
        EventType::ClaimRefused => MessageEvent::ClaimRefused {
            message_id,
            attempt: 1,
            rule: RuleId::WindowClosed,
            message: "window closed".into(),
            at,
        }
        .into(),
        EventType::DispatchSucceeded => MessageEvent::DispatchSucceeded {
            message_id,
            attempt: 1,
            provider_ref,
            provider_status: MessageStatus::Queued,
            at,
        }
        .into(),
        EventType::DispatchFailed => MessageEvent::DispatchFailed {
            message_id,
            attempt: 1,
            error: ProviderError {
                provider: ProviderKind::Twilio,
                code: Some(20429),
                http_status: Some(429),
                message: "Too Many Requests".into(),
            },
            retry: Retry::Retryable,
            retry_at: Some(at),
            at,
        }
        .into(),
        EventType::StatusChanged => MessageEvent::StatusChanged {
            message_id,
            provider_ref: Some(provider_ref),
            status: MessageStatus::Delivered,
            error_code: None,
            details: vec![("pricing.category".into(), "marketing".into())],
            pricing: Some(StatusPricing {
                billable: Some(true),
                pricing_model: Some("PMP".into()),
                category: Some("marketing".into()),
                kind: Some("regular".into()),
            }),
            at,
        }
        .into(),
        EventType::ProviderPriceReported => MessageEvent::PriceReported {
            message_id,
            provider: ProviderKind::Twilio,
            amount_micros: 5_000,
            currency: "USD".into(),
            at,
        }
        .into(),
        EventType::InDoubtExpired => MessageEvent::InDoubtExpired {
            message_id,
            attempt: 1,
            at,
        }
        .into(),
        EventType::UnmatchedStatusReceived => MessageEvent::UnmatchedStatusReceived {
            provider_ref,
            status: MessageStatus::Sent,
            error_code: None,
            details: vec![("conversation.id".into(), "c1".into())],
            at,
        }
        .into(),
        EventType::SenderRegistered => SenderEvent::Registered {
            sender,
            provider: ProviderKind::Twilio,
            portfolio,
            rate: Default::default(),
            meta_phone_number_id: None,
            at,
        }
        .into(),
        EventType::SenderAuthorized => SenderEvent::Authorized {
            sender,
            by: "operator".into(),
            at,
        }
        .into(),
        EventType::ReviewRaised => ReviewEvent::Raised {
            reason: ReviewReason::NoTerminalStatus,
            subject: ReviewSubject {
                message_id: Some(message_id),
                ..ReviewSubject::default()
            },
            detail: "no final status 61 minutes after it was sent".into(),
            at,
        }
        .into(),
        EventType::WebhookEndpointRegistered => EndpointEvent::Registered {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            url: "https://agent.example.com/wagate-events".into(),
            events: OutgoingEventKind::ALL.to_vec(),
            at,
        }
        .into(),
        EventType::CampaignCreated
        | EventType::CampaignListed
        | EventType::CampaignStarted
        | EventType::CampaignPaused
        | EventType::CampaignCancelled
        | EventType::CampaignRowSent
        | EventType::CampaignRowRefused
        | EventType::CampaignCompleted => campaign_samples(at)
            .into_iter()
            .find(|event| event.event_type() == event_type)
            .expect("a sample of every campaign event type"),
        EventType::WebhookEndpointDeleted => EndpointEvent::Deleted {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            at,
        }
        .into(),
        EventType::WebhookEndpointDisabled => EndpointEvent::Disabled {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            reason: "answered 503 for 3 days".into(),
            failing_since: at - chrono::TimeDelta::days(3),
            at,
        }
        .into(),
        EventType::WebhookEndpointEnabled => EndpointEvent::Enabled {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            at,
        }
        .into(),
        EventType::ConsentWordingPublished => ConsentEvent::WordingPublished {
            version: "w-0123456789abcdef".into(),
            business: "Acme Homes".into(),
            language: "en".into(),
            text: "I agree to WhatsApp messages from Acme Homes.".into(),
            text_hash: "ab".repeat(32),
            at,
        }
        .into(),
        EventType::ConsentCampaignCreated => ConsentEvent::CampaignCreated {
            campaign: "WG-OPEN1".into(),
            sender,
            wording_version: "w-0123456789abcdef".into(),
            workflows: vec![workflow],
            medium: CampaignMedium::WebForm,
            confirmation_template: Some(TemplateId::parse("optin_confirm@en").expect("template")),
            at,
        }
        .into(),
        EventType::OptInRequested => ConsentEvent::OptInRequested {
            contact,
            campaign: "WG-OPEN1".into(),
            wording_version: "w-0123456789abcdef".into(),
            text_hash: "ab".repeat(32),
            evidence: "submitted from 192.0.2.1".into(),
            at,
        }
        .into(),
        EventType::ConsentCampaignClosed => ConsentEvent::CampaignClosed {
            campaign: "WG-OPEN1".into(),
            at,
        }
        .into(),
        EventType::OptInConfirmationSent => ConsentEvent::ConfirmationSent {
            contact,
            campaign: "WG-OPEN1".into(),
            message_id,
            at,
        }
        .into(),
        EventType::ReviewResolved => ReviewEvent::Resolved {
            item: 42,
            reason: ReviewReason::OptOutRequest,
            decision: ReviewDecision::ConfirmOptOut,
            note: "asked us to stop by email".into(),
            at,
        }
        .into(),
        EventType::SenderSuspended => SenderEvent::Suspended {
            sender,
            reason: "operator".into(),
            at,
        }
        .into(),
        EventType::TemplateRegistered => TemplateEvent::Registered {
            template,
            name: "appointment_reminder".into(),
            language: "en".into(),
            category: TemplateCategory::Utility,
            placeholders: vec!["1".into()],
            at,
        }
        .into(),
        EventType::TemplateApprovalChanged => TemplateEvent::ApprovalChanged {
            template,
            status: ApprovalStatus::Approved,
            reason: "approved".into(),
            at,
        }
        .into(),
        EventType::TemplateCreated => TemplateEvent::Created {
            template,
            provider: ProviderKind::Meta,
            provider_ref: "572279198452421".into(),
            name: "listing_update".into(),
            language: "de".into(),
            category: TemplateCategory::Marketing,
            content: wagate_domain::template::TemplateContent {
                body: "Hallo {{1}}, neues Objekt in {{2}}.".into(),
                header: Some(wagate_domain::template::TemplateHeader {
                    format: wagate_domain::template::HeaderFormat::Image,
                    value: "https://cdn.example.com/p/1.jpg".into(),
                }),
                buttons: vec![wagate_domain::template::TemplateButton {
                    kind: wagate_domain::template::ButtonKind::Url,
                    text: "Details".into(),
                    value: "https://example.com/p/1".into(),
                }],
                cards: Vec::new(),
            },
            at,
        }
        .into(),
        EventType::SenderQualityReported => SenderEvent::QualityReported {
            sender,
            event: "FLAGGED".into(),
            dropped: true,
            at,
        }
        .into(),
        EventType::TemplateCategoryReported => TemplateEvent::CategoryReported {
            template,
            category: TemplateCategory::Marketing,
            previous: "UTILITY".into(),
            at,
        }
        .into(),
        EventType::TemplateStatusReported => TemplateEvent::StatusReported {
            template,
            status: ApprovalStatus::Paused,
            reason: "FIRST_PAUSE".into(),
            at,
        }
        .into(),
        EventType::MessagingLimitChanged => PortfolioEvent::MessagingLimitChanged {
            portfolio,
            limit: MessagingLimit::Limited(250),
            at,
        }
        .into(),
        EventType::RecipientReached => PortfolioEvent::RecipientReached {
            portfolio,
            contact,
            message_id,
            at,
        }
        .into(),
        EventType::IdentityLinked => ContactEvent::IdentityLinked {
            contact,
            other: ContactId::parse("bsuid:US.13491208655302741918").expect("bsuid"),
            source: IdentitySource::Webhook,
            at,
        }
        .into(),
        EventType::GroupMessageReceived => ContactEvent::GroupMessageReceived {
            contact,
            group: "120363025246125486".into(),
            sender: Some(sender),
            provider_ref: Some(provider_ref),
            kind: "text".into(),
            text: "STOP".into(),
            at,
        }
        .into(),
        EventType::ProviderNoticeReceived => ProviderEvent::NoticeReceived {
            provider: ProviderKind::Meta,
            subject: "meta:102290129340398".into(),
            kind: "account_update".into(),
            details: vec![("value.event".into(), "ACCOUNT_RESTRICTION".into())],
            at,
        }
        .into(),
    }
}

#[test]
fn every_event_type_has_a_persisted_form_an_export_form_a_fixture_and_docs() {
    let docs = std::fs::read_to_string(repo().join("docs/events.md")).expect("docs/events.md");
    let mut missing = Vec::new();
    for &event_type in EventType::ALL {
        let name = event_type.as_str();
        let event = sample(event_type);
        assert_eq!(
            event.event_type(),
            event_type,
            "sample({name}) is another type"
        );

        // Persisted form: encodes under its name and decodes to the same event.
        let record = persisted::encode(&event, Uuid::nil());
        assert_eq!(record.event_type, name);
        match persisted::decode_payload(&record.event_type, record.schema_version, &record.payload)
        {
            Ok(decoded) if decoded == event => {}
            other => missing.push(format!("{name}: persisted round trip gave {other:?}")),
        }
        if !persisted::EVENT_TYPES.contains(&name) {
            missing.push(format!(
                "{name}: not in wagate_store::persisted::EVENT_TYPES"
            ));
        }

        // Export form: a line of its type whose payload names its time, read back unchanged.
        let line = ExportedEvent::from_parts(1, &event.stream().to_string(), 1, "id", &event);
        if line.event_type != name || line.text("at").is_empty() {
            missing.push(format!("{name}: export payload {:?}", line.payload));
        }
        match ExportedEvent::parse_line(&line.to_line(), 1) {
            Ok(read) if read == line => {}
            other => missing.push(format!("{name}: export line reads back as {other:?}")),
        }
        // ... and its payload decodes back to the very event (what `wagate import` appends).
        match line.to_event() {
            Ok(decoded) if decoded == event => {}
            other => missing.push(format!("{name}: export payload decodes to {other:?}")),
        }

        // Golden fixture of its current schema version.
        let fixture = repo()
            .join("fixtures/events")
            .join(name)
            .join(format!("v{}.bin", persisted::current_version(name)));
        match std::fs::read(&fixture) {
            Ok(bytes) => {
                if let Err(error) =
                    persisted::decode_payload(name, persisted::current_version(name), &bytes)
                {
                    missing.push(format!("{}: {error}", fixture.display()));
                }
            }
            Err(error) => missing.push(format!(
                "{}: {error} (bless it: WAGATE_BLESS=1 cargo test -p wagate-store --test golden)",
                fixture.display()
            )),
        }

        // A row in the catalogue of docs/events.md.
        if !docs.contains(&format!("| `{name}` |")) {
            missing.push(format!("{name}: no \"| `{name}` |\" row in docs/events.md"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The samples above take one side of each optional field; these take the other, so the
/// decoder is checked on both (`None`/`Some`, limited/unlimited, retryable/permanent, a status
/// word wagate does not know).
#[test]
fn the_export_decoder_inverts_the_other_side_of_every_optional_field() {
    let at = at();
    let other_sides: Vec<Event> = vec![
        ContactEvent::InboundReceived {
            contact: ContactId::parse("+41790000001").expect("contact"),
            sender: None,
            provider_ref: None,
            kind: "image".into(),
            text: String::new(),
            provider_at: None,
            details: Vec::new(),
            at,
        }
        .into(),
        MessageEvent::StatusChanged {
            message_id: MessageId::from_uuid(Uuid::from_u128(
                0x0190_b5a2_7c1e_7000_8000_0000_0000_0002,
            ))
            .expect("message id"),
            provider_ref: None,
            status: MessageStatus::parse("read_by_robot"),
            error_code: Some(63016),
            details: Vec::new(),
            pricing: None,
            at,
        }
        .into(),
        MessageEvent::DispatchFailed {
            message_id: MessageId::from_uuid(Uuid::from_u128(
                0x0190_b5a2_7c1e_7000_8000_0000_0000_0003,
            ))
            .expect("message id"),
            attempt: 3,
            error: ProviderError {
                provider: ProviderKind::Meta,
                code: None,
                http_status: None,
                message: "gone".into(),
            },
            retry: Retry::Permanent,
            retry_at: None,
            at,
        }
        .into(),
        MessageEvent::SendRefused {
            message_id: MessageId::from_uuid(Uuid::from_u128(
                0x0190_b5a2_7c1e_7000_8000_0000_0000_0004,
            ))
            .expect("message id"),
            to: "not a number".into(),
            sender: WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender"),
            template: Some(TemplateId::parse("appointment_reminder").expect("template")),
            rule: RuleId::NoOptIn,
            message: "no opt-in".into(),
            also_broken: Vec::new(),
            at,
        }
        .into(),
        SenderEvent::Registered {
            sender: WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender"),
            provider: ProviderKind::Meta,
            portfolio: PortfolioId::parse("default").expect("portfolio"),
            rate: wagate_domain::SenderRate {
                upgraded: true,
                per_second: Some(600),
            },
            meta_phone_number_id: Some("1234567890".into()),
            at,
        }
        .into(),
        PortfolioEvent::MessagingLimitChanged {
            portfolio: PortfolioId::parse("default").expect("portfolio"),
            limit: MessagingLimit::Unlimited,
            at,
        }
        .into(),
        ContactEvent::WindowReportedClosed {
            contact: ContactId::parse("+41790000001").expect("contact"),
            sender: None,
            code: 131047,
            at,
        }
        .into(),
    ];
    for event in other_sides {
        let line = ExportedEvent::from_parts(1, &event.stream().to_string(), 1, "id", &event);
        let read = ExportedEvent::parse_line(&line.to_line(), 1).expect("line");
        assert_eq!(read.to_event().expect("decodes"), event);
    }
}

#[test]
fn a_payload_that_is_not_its_type_is_refused_naming_the_field() {
    let event = sample(EventType::OptedOut);
    let mut line = ExportedEvent::from_parts(1, "contact:+41790000001", 1, "id", &event);
    line.payload.insert(
        "source".into(),
        serde_json::Value::String("telepathy".into()),
    );
    let error = line.to_event().expect_err("unknown source").to_string();
    assert!(error.contains("\"source\""), "{error}");
    line.event_type = "Teleported".into();
    assert!(line.to_event().is_err());
}
