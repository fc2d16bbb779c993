//! Persisted event encodings: every domain event variant round-trips, and the golden byte files
//! in `fixtures/events/<Type>/v<N>.bin` decode forever.
//!
//! The golden files are the compatibility contract with every database ever written: a change
//! to a v1 mirror type, to the order of its fields, or to how a domain value is spelled makes
//! `golden_files_decode_forever` fail. To add the files of a new event type or schema version,
//! run `WAGATE_BLESS=1 cargo test -p wagate-store --test golden` once and commit the new files;
//! blessing writes only files that do not exist yet, never rewrites an existing one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wagate_domain::{
    ApprovalStatus, CampaignMedium, ConsentEvent, ContactEvent, ContactFlag, ContactId, Event,
    EventType, IdentitySource, MessageEvent, MessageId, MessageStatus, MessagingLimit, OptInSource,
    OptOutSource, PortfolioEvent, PortfolioId, ProviderError, ProviderEvent, ProviderKind,
    ProviderMessageRef, Refusal, Retry, ReviewDecision, ReviewEvent, ReviewReason, ReviewSubject,
    RuleId, SenderEvent, SenderRate, StatusPricing, TemplateCategory, TemplateEvent, TemplateId,
    WhatsAppAddress, Workflow,
};
use wagate_domain::{EndpointEvent, EndpointId, OutgoingEventKind};
use wagate_store::persisted::{self, current_version, EVENT_TYPES};
use wagate_store::send_result::{self, RequestDigest, SendResult, StoredSend};
use wagate_store::{AppendRequest, ExpectedVersion, Store, StreamId};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/events")
}

fn at(seconds: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, nanos).expect("valid timestamp")
}

fn contact() -> ContactId {
    ContactId::parse("+41790000001").expect("contact")
}

fn bsuid() -> ContactId {
    ContactId::parse("bsuid:US.13491208655302741918").expect("bsuid")
}

fn sender() -> WhatsAppAddress {
    WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender")
}

fn message_id() -> MessageId {
    MessageId::from_uuid(Uuid::from_u128(0x0190_b5a2_7c1e_7000_8000_0000_0000_0001))
        .expect("message id")
}

fn twilio_ref() -> ProviderMessageRef {
    ProviderMessageRef::parse("SM0123456789abcdef0123456789abcdef").expect("sid")
}

fn meta_ref() -> ProviderMessageRef {
    ProviderMessageRef::parse("wamid.HBgLMTU1NTAwMDExMTEVAgARGBI").expect("wamid")
}

fn template() -> TemplateId {
    TemplateId::parse("HXb5b62575e6e4ff6129ad7c8efe1f983e").expect("template")
}

fn workflow() -> Workflow {
    Workflow::parse("appointment_scheduling").expect("workflow")
}

fn portfolio() -> PortfolioId {
    PortfolioId::parse("default").expect("portfolio")
}

/// The golden sample of every event type: every optional field set, non-trivial values.
fn golden_samples() -> Vec<Event> {
    let t = at(1_764_000_000, 123_456_789);
    let mut samples = campaign_samples(t);
    samples.extend(golden_samples_before_campaigns(t));
    samples
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

fn golden_samples_before_campaigns(t: DateTime<Utc>) -> Vec<Event> {
    vec![
        Event::Contact(ContactEvent::OptedIn {
            contact: contact(),
            source: OptInSource::WebForm,
            evidence: "https://example.com/forms/42?submission=7".into(),
            recorded_by: "operator:alice".into(),
            wording_version: "2026-01".into(),
            evidence_at: at(1_763_990_000, 5),
            at: t,
        }),
        Event::Contact(ContactEvent::InboundReceived {
            contact: contact(),
            sender: Some(sender()),
            provider_ref: Some(twilio_ref()),
            kind: "text".into(),
            text: "Yes, Tuesday works ✓".into(),
            provider_at: Some(at(1_763_999_990, 0)),
            details: vec![
                ("ButtonPayload".into(), "slot-tue".into()),
                ("ReferralCtwaClid".into(), "ARAkLkA8rmlFeiCktEJQ".into()),
            ],
            at: t,
        }),
        Event::Contact(ContactEvent::OptedOut {
            contact: contact(),
            source: OptOutSource::Keyword,
            detail: "STOP".into(),
            evidence_at: at(1_763_999_990, 0),
            at: t,
        }),
        Event::Contact(ContactEvent::OptOutReviewRequested {
            contact: contact(),
            text: "please don't text me anymore".into(),
            matched: "don't text".into(),
            at: t,
        }),
        Event::Contact(ContactEvent::FlagRaised {
            contact: contact(),
            flag: ContactFlag::MarketingPaused,
            reason: "meta 131050".into(),
            at: t,
        }),
        Event::Contact(ContactEvent::FlagCleared {
            contact: contact(),
            flag: ContactFlag::NotOnWhatsapp,
            reason: "inbound received".into(),
            at: t,
        }),
        Event::Contact(ContactEvent::WindowReportedClosed {
            contact: contact(),
            sender: Some(sender()),
            code: 63016,
            at: t,
        }),
        Event::Message(MessageEvent::TemplateSent {
            media: vec![
                wagate_domain::TemplateMedia::new(
                    None,
                    wagate_domain::MediaKind::Image,
                    "https://cdn.example.com/listing/42.jpg",
                )
                .expect("valid media"),
                wagate_domain::TemplateMedia::new(
                    Some(0),
                    wagate_domain::MediaKind::Video,
                    "https://cdn.example.com/listing/42/tour.mp4",
                )
                .expect("valid media"),
            ],
            message_id: message_id(),
            contact: contact(),
            sender: sender(),
            template: template(),
            category: TemplateCategory::Utility,
            variables: vec![
                ("1".into(), "Alice".into()),
                ("2".into(), "Tue 10:00".into()),
            ],
            workflow: workflow(),
            at: t,
        }),
        Event::Message(MessageEvent::ReplySent {
            message_id: message_id(),
            contact: contact(),
            sender: sender(),
            text: "The flat on Tuesday.".into(),
            rich: Some(
                wagate_domain::RichReply::media(
                    wagate_domain::MediaKind::Image,
                    "https://cdn.example.com/listing/42.jpg",
                    "The flat on Tuesday.".into(),
                )
                .expect("valid media"),
            ),
            workflow: workflow(),
            at: t,
        }),
        Event::Message(MessageEvent::SendRefused {
            message_id: message_id(),
            to: "+41 79 not a number".into(),
            sender: sender(),
            template: Some(template()),
            rule: RuleId::TierLimit,
            message: "the portfolio reached its messaging limit".into(),
            also_broken: vec![RuleId::NotOnWhatsapp, RuleId::MarketingPaused],
            at: t,
        }),
        Event::Message(MessageEvent::DispatchClaimed {
            message_id: message_id(),
            attempt: 2,
            at: t,
        }),
        Event::Message(MessageEvent::ClaimRefused {
            message_id: message_id(),
            attempt: 1,
            rule: RuleId::OptedOut,
            message: "the contact opted out".into(),
            at: t,
        }),
        Event::Message(MessageEvent::DispatchSucceeded {
            message_id: message_id(),
            attempt: 1,
            provider_ref: twilio_ref(),
            provider_status: MessageStatus::Queued,
            at: t,
        }),
        Event::Message(MessageEvent::DispatchFailed {
            message_id: message_id(),
            attempt: 3,
            error: ProviderError {
                provider: ProviderKind::Twilio,
                code: Some(20429),
                http_status: Some(429),
                message: "Too Many Requests".into(),
            },
            retry: Retry::Retryable,
            retry_at: Some(at(1_764_000_004, 0)),
            at: t,
        }),
        Event::Message(MessageEvent::StatusChanged {
            message_id: message_id(),
            provider_ref: Some(meta_ref()),
            status: MessageStatus::Delivered,
            error_code: Some(0),
            details: vec![
                ("pricing.category".into(), "marketing".into()),
                ("errors[0].title".into(), "Re-engagement message".into()),
            ],
            pricing: Some(StatusPricing {
                billable: Some(true),
                pricing_model: Some("PMP".into()),
                category: Some("marketing".into()),
                kind: Some("regular".into()),
            }),
            at: t,
        }),
        Event::Message(MessageEvent::PriceReported {
            message_id: message_id(),
            provider: ProviderKind::Twilio,
            amount_micros: 5_000,
            currency: "USD".into(),
            at: t,
        }),
        Event::Message(MessageEvent::InDoubtExpired {
            message_id: message_id(),
            attempt: 4,
            at: t,
        }),
        Event::Message(MessageEvent::UnmatchedStatusReceived {
            provider_ref: twilio_ref(),
            status: MessageStatus::Other("played".into()),
            error_code: Some(63016),
            details: vec![("ErrorMessage".into(), "outside the window".into())],
            at: t,
        }),
        Event::Sender(SenderEvent::Registered {
            sender: sender(),
            provider: ProviderKind::Meta,
            portfolio: portfolio(),
            rate: SenderRate {
                upgraded: true,
                per_second: Some(500),
            },
            meta_phone_number_id: Some("106540352242922".into()),
            at: t,
        }),
        Event::Sender(SenderEvent::Authorized {
            sender: sender(),
            by: "operator:alice".into(),
            at: t,
        }),
        Event::Sender(SenderEvent::Suspended {
            sender: sender(),
            reason: "twilio 63007: sender not found".into(),
            at: t,
        }),
        Event::Review(ReviewEvent::Raised {
            reason: ReviewReason::AlertDeliveryFailed,
            subject: ReviewSubject {
                contact: Some(contact()),
                message_id: Some(message_id()),
                sender: Some(sender()),
                template: Some(template()),
            },
            detail: "discord answered 404 three times".into(),
            at: t,
        }),
        Event::Endpoint(EndpointEvent::Registered {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            url: "https://agent.example.com/wagate-events".into(),
            events: vec![
                OutgoingEventKind::InboundMessage,
                OutgoingEventKind::OptedOut,
            ],
            at: t,
        }),
        Event::Endpoint(EndpointEvent::Deleted {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            at: t,
        }),
        Event::Endpoint(EndpointEvent::Disabled {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            reason: "answered 503".into(),
            failing_since: t,
            at: t,
        }),
        Event::Endpoint(EndpointEvent::Enabled {
            endpoint: EndpointId::from_bytes([0x5a; 16]),
            at: t,
        }),
        Event::Review(ReviewEvent::Resolved {
            item: 7,
            reason: ReviewReason::OptOutRequest,
            decision: ReviewDecision::ConfirmOptOut,
            note: "wrote \"bitte nicht mehr\"".into(),
            at: t,
        }),
        Event::Consent(ConsentEvent::WordingPublished {
            version: "w-0123456789abcdef".into(),
            business: "Acme Homes".into(),
            language: "de".into(),
            text: "Ich möchte WhatsApp-Nachrichten von Acme Homes erhalten.".into(),
            text_hash: "ab".repeat(32),
            at: t,
        }),
        Event::Consent(ConsentEvent::CampaignCreated {
            campaign: "WG-OPEN1".into(),
            sender: sender(),
            wording_version: "w-0123456789abcdef".into(),
            workflows: vec![Workflow::parse("lead_qualification").expect("workflow")],
            medium: CampaignMedium::QrCode,
            confirmation_template: Some(TemplateId::parse("optin_confirm@en").expect("template")),
            at: t,
        }),
        Event::Consent(ConsentEvent::OptInRequested {
            contact: contact(),
            campaign: "WG-OPEN1".into(),
            wording_version: "w-0123456789abcdef".into(),
            text_hash: "ab".repeat(32),
            evidence: "submitted 2026-01-01T00:00:00Z from 192.0.2.1 (Mozilla/5.0)".into(),
            at: t,
        }),
        Event::Consent(ConsentEvent::CampaignClosed {
            campaign: "WG-OPEN1".into(),
            at: t,
        }),
        Event::Consent(ConsentEvent::ConfirmationSent {
            contact: contact(),
            campaign: "WG-OPEN1".into(),
            message_id: message_id(),
            at: t,
        }),
        Event::Template(TemplateEvent::Registered {
            template: template(),
            name: "appointment_reminder".into(),
            language: "en_US".into(),
            category: TemplateCategory::Marketing,
            placeholders: vec!["1".into(), "2".into()],
            at: t,
        }),
        Event::Template(TemplateEvent::ApprovalChanged {
            template: template(),
            status: ApprovalStatus::Approved,
            reason: "approved by Meta".into(),
            at: t,
        }),
        Event::Template(TemplateEvent::Created {
            template: template(),
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
            at: t,
        }),
        Event::Template(TemplateEvent::StatusReported {
            template: template(),
            status: ApprovalStatus::Paused,
            reason: "FIRST_PAUSE".into(),
            at: t,
        }),
        Event::Template(TemplateEvent::CategoryReported {
            template: template(),
            category: TemplateCategory::Marketing,
            previous: "UTILITY".into(),
            at: t,
        }),
        Event::Sender(SenderEvent::QualityReported {
            sender: sender(),
            event: "FLAGGED".into(),
            dropped: true,
            at: t,
        }),
        Event::Portfolio(PortfolioEvent::MessagingLimitChanged {
            portfolio: portfolio(),
            limit: MessagingLimit::Limited(2000),
            at: t,
        }),
        Event::Portfolio(PortfolioEvent::RecipientReached {
            portfolio: portfolio(),
            contact: contact(),
            message_id: message_id(),
            at: t,
        }),
        Event::Contact(ContactEvent::IdentityLinked {
            contact: contact(),
            other: bsuid(),
            source: IdentitySource::UserChangedNumber,
            at: t,
        }),
        Event::Contact(ContactEvent::GroupMessageReceived {
            contact: contact(),
            group: "120363025246125486".into(),
            sender: Some(sender()),
            provider_ref: Some(meta_ref()),
            kind: "text".into(),
            text: "STOP ✓".into(),
            at: t,
        }),
        Event::Provider(ProviderEvent::NoticeReceived {
            provider: ProviderKind::Meta,
            subject: "meta:102290129340398".into(),
            kind: "account_update".into(),
            details: vec![
                ("entry.time".into(), "1751247548".into()),
                ("value.event".into(), "ACCOUNT_RESTRICTION".into()),
                (
                    "value.restriction_info[0].restriction_type".into(),
                    "RESTRICTED_BIZ_INITIATED_MESSAGING".into(),
                ),
            ],
            at: t,
        }),
    ]
}

/// More shapes for the round trip: absent optional fields, other enum values, edge times.
fn other_samples() -> Vec<Event> {
    let mut events = vec![
        Event::Message(MessageEvent::ReplySent {
            message_id: message_id(),
            contact: contact(),
            sender: sender(),
            text: "Shall we meet?".into(),
            rich: Some(
                wagate_domain::RichReply::buttons(
                    "Shall we meet?".into(),
                    vec![
                        wagate_domain::ReplyButton {
                            id: "visit-yes".into(),
                            title: "Yes".into(),
                        },
                        wagate_domain::ReplyButton {
                            id: "visit-no".into(),
                            title: "No".into(),
                        },
                    ],
                )
                .expect("valid buttons"),
            ),
            workflow: workflow(),
            at: at(0, 0),
        }),
        Event::Contact(ContactEvent::InboundReceived {
            contact: bsuid(),
            sender: None,
            provider_ref: None,
            kind: "image".into(),
            text: String::new(),
            provider_at: None,
            details: Vec::new(),
            at: at(0, 0),
        }),
        Event::Contact(ContactEvent::WindowReportedClosed {
            contact: bsuid(),
            sender: None,
            code: 131047,
            at: at(0, 0),
        }),
        Event::Message(MessageEvent::DispatchFailed {
            message_id: message_id(),
            attempt: u32::MAX,
            error: ProviderError {
                provider: ProviderKind::Sandbox,
                code: None,
                http_status: None,
                message: "timeout".into(),
            },
            retry: Retry::Permanent,
            retry_at: None,
            at: at(-86_400, 999_999_999),
        }),
        Event::Message(MessageEvent::StatusChanged {
            message_id: message_id(),
            provider_ref: None,
            status: MessageStatus::Read,
            error_code: None,
            details: Vec::new(),
            at: at(1_764_000_000, 0),
            pricing: None,
        }),
        Event::Sender(SenderEvent::Registered {
            sender: sender(),
            provider: ProviderKind::Twilio,
            portfolio: portfolio(),
            rate: Default::default(),
            meta_phone_number_id: None,
            at: at(1_764_000_000, 1),
        }),
        Event::Portfolio(PortfolioEvent::MessagingLimitChanged {
            portfolio: portfolio(),
            limit: MessagingLimit::Unlimited,
            at: at(1_764_000_000, 0),
        }),
        Event::Template(TemplateEvent::Registered {
            template: TemplateId::parse("order_update").expect("meta template name"),
            name: "order_update".into(),
            language: "de".into(),
            category: TemplateCategory::Authentication,
            placeholders: Vec::new(),
            at: at(1_764_000_000, 0),
        }),
    ];
    let t = at(1_764_000_000, 0);
    for source in OptInSource::ALL {
        events.push(Event::Contact(ContactEvent::OptedIn {
            contact: contact(),
            source,
            evidence: String::new(),
            recorded_by: "api".into(),
            wording_version: "v1".into(),
            evidence_at: t,
            at: t,
        }));
    }
    for source in OptOutSource::ALL {
        events.push(Event::Contact(ContactEvent::OptedOut {
            contact: bsuid(),
            source,
            detail: String::new(),
            evidence_at: t,
            at: t,
        }));
    }
    for rule in RuleId::ALL {
        events.push(Event::Message(MessageEvent::SendRefused {
            message_id: message_id(),
            to: "+41790000001".into(),
            sender: sender(),
            template: None,
            rule,
            message: rule.to_string(),
            also_broken: RuleId::ALL
                .into_iter()
                .filter(|other| *other > rule)
                .collect(),
            at: t,
        }));
    }
    for status in ApprovalStatus::ALL {
        events.push(Event::Template(TemplateEvent::ApprovalChanged {
            template: template(),
            status,
            reason: String::new(),
            at: t,
        }));
    }
    for status in [
        MessageStatus::Accepted,
        MessageStatus::Scheduled,
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
        MessageStatus::Undelivered,
        MessageStatus::Canceled,
        MessageStatus::Other("scheduled_later".into()),
    ] {
        events.push(Event::Message(MessageEvent::DispatchSucceeded {
            message_id: message_id(),
            attempt: 1,
            provider_ref: meta_ref(),
            provider_status: status,
            at: t,
        }));
    }
    for flag in ContactFlag::ALL {
        events.push(Event::Contact(ContactEvent::FlagRaised {
            contact: contact(),
            flag,
            reason: String::new(),
            at: t,
        }));
    }
    events
}

#[test]
fn there_is_a_golden_sample_of_every_event_type() {
    let sampled: BTreeSet<&str> = golden_samples().iter().map(Event::type_name).collect();
    let known: BTreeSet<&str> = EVENT_TYPES.into_iter().collect();
    assert_eq!(sampled, known);
    let domain: BTreeSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        known, domain,
        "EVENT_TYPES lists every type the domain defines"
    );
    assert_eq!(golden_samples().len(), EVENT_TYPES.len());
}

#[test]
fn every_variant_round_trips() {
    for event in golden_samples().into_iter().chain(other_samples()) {
        let id = Uuid::now_v7();
        let record = persisted::encode(&event, id);
        assert_eq!(record.event_id, id);
        assert_eq!(record.event_type, event.type_name());
        assert_eq!(record.schema_version, current_version(&record.event_type));
        assert_eq!(record.timestamp_ms, event.at().timestamp_millis());
        let decoded =
            persisted::decode_payload(&record.event_type, record.schema_version, &record.payload)
                .unwrap_or_else(|e| panic!("{}: {e}", event.type_name()));
        assert_eq!(decoded, event);
    }
}

#[test]
fn every_variant_round_trips_through_the_log() {
    let store = Store::open_temporary().expect("open");
    let events: Vec<Event> = golden_samples()
        .into_iter()
        .chain(other_samples())
        .collect();
    for event in &events {
        let stream = StreamId::new(event.stream().to_string()).expect("stream id");
        let record = persisted::encode(event, Uuid::now_v7());
        store
            .append_blocking(AppendRequest::single(
                stream,
                ExpectedVersion::Any,
                vec![record],
            ))
            .expect("append");
    }
    let stored = store.read_from(1, usize::MAX).expect("read");
    assert_eq!(stored.len(), events.len());
    for (recorded, event) in stored.iter().zip(&events) {
        assert_eq!(&persisted::decode(recorded).expect("decode"), event);
    }
}

#[test]
fn unknown_types_and_versions_and_trailing_bytes_are_errors() {
    let record = persisted::encode(&golden_samples()[0], Uuid::now_v7());
    assert!(persisted::decode_payload("NoSuchEvent", 1, &record.payload).is_err());
    assert!(persisted::decode_payload(&record.event_type, 99, &record.payload).is_err());
    let mut longer = record.payload.clone();
    longer.push(0);
    assert!(persisted::decode_payload(&record.event_type, 1, &longer).is_err());
    let shorter = &record.payload[..record.payload.len() - 1];
    assert!(persisted::decode_payload(&record.event_type, 1, shorter).is_err());
}

#[test]
fn golden_files_decode_forever() {
    let dir = fixtures_dir();
    let bless = std::env::var_os("WAGATE_BLESS").is_some();
    let samples = golden_samples();
    if bless {
        for event in &samples {
            let path = dir
                .join(event.type_name())
                .join(format!("v{}.bin", current_version(event.type_name())));
            if path.exists() {
                continue;
            }
            std::fs::create_dir_all(path.parent().expect("parent")).expect("fixture dir");
            let record = persisted::encode(event, Uuid::nil());
            std::fs::write(&path, &record.payload).expect("write fixture");
            eprintln!("blessed {}", path.display());
        }
    }

    // Every file there decodes, whatever its version: old versions through their upcasters.
    let mut seen = BTreeSet::new();
    for type_dir in std::fs::read_dir(&dir).expect("fixtures/events exists") {
        let type_dir = type_dir.expect("entry").path();
        let event_type = type_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 type name")
            .to_owned();
        for file in std::fs::read_dir(&type_dir).expect("type dir") {
            let file = file.expect("entry").path();
            let name = file.file_name().and_then(|n| n.to_str()).expect("name");
            let version: u16 = name
                .strip_prefix('v')
                .and_then(|rest| rest.strip_suffix(".bin"))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("unexpected fixture {}", file.display()));
            let bytes = std::fs::read(&file).expect("read fixture");
            let decoded = persisted::decode_payload(&event_type, version, &bytes)
                .unwrap_or_else(|e| panic!("{} no longer decodes: {e}", file.display()));
            assert_eq!(decoded.type_name(), event_type);
            seen.insert((event_type.clone(), version));

            if version == current_version(&event_type) {
                // The current version must also still encode to exactly these bytes.
                let sample = samples
                    .iter()
                    .find(|e| e.type_name() == event_type)
                    .unwrap_or_else(|| panic!("no golden sample for {event_type}"));
                assert_eq!(&decoded, sample, "{} decodes differently", file.display());
                let encoded = persisted::encode(sample, Uuid::nil()).payload;
                assert_eq!(encoded, bytes, "{} encodes differently", file.display());
            }
        }
    }
    for event_type in EVENT_TYPES {
        assert!(
            seen.contains(&(event_type.to_owned(), 1)),
            "fixtures/events/{event_type}/v1.bin is missing (run with WAGATE_BLESS=1 once)"
        );
    }
}

/// `ConsentCampaignCreated` v1 (before confirmation templates) decodes with none: such a
/// campaign is confirmed by its prefilled message only.
#[test]
fn consent_campaign_created_v1_has_no_confirmation_template() {
    let v1 = std::fs::read(fixtures_dir().join("ConsentCampaignCreated/v1.bin")).expect("v1");
    let upcast = persisted::decode_payload("ConsentCampaignCreated", 1, &v1).expect("decodes");
    let Event::Consent(ConsentEvent::CampaignCreated {
        campaign,
        confirmation_template,
        ..
    }) = upcast
    else {
        panic!("not a campaign: {upcast:?}");
    };
    assert_eq!(campaign, "WG-OPEN1");
    assert_eq!(confirmation_template, None);
}

/// `SenderRegistered` v1 (before per-sender rates) decodes to the provider's default tier with
/// no override: the dispatcher holds an old registration to its provider's rate.
#[test]
fn sender_registered_v1_is_upcast_to_the_default_tier() {
    let v1 = std::fs::read(fixtures_dir().join("SenderRegistered/v1.bin")).expect("v1 fixture");
    let upcast = persisted::decode_payload("SenderRegistered", 1, &v1).expect("v1 decodes");
    let Event::Sender(SenderEvent::Registered {
        provider,
        rate,
        meta_phone_number_id,
        ..
    }) = upcast
    else {
        panic!("not a registration: {upcast:?}");
    };
    assert_eq!(rate, SenderRate::default());
    assert_eq!(provider, ProviderKind::Meta);
    assert_eq!(meta_phone_number_id.as_deref(), Some("106540352242922"));
    assert_eq!(rate.per_second_for(provider), 80);
}

/// `SendRefused` v1 (no `also_broken`) is upcast to the current shape: every other field as
/// written, and an empty `also_broken`.
#[test]
fn send_refused_v1_is_upcast_to_v3() {
    let dir = fixtures_dir().join("SendRefused");
    let v1 = std::fs::read(dir.join("v1.bin")).expect("v1 fixture");
    let upcast = persisted::decode_payload("SendRefused", 1, &v1).expect("v1 decodes");
    let sample = golden_samples()
        .into_iter()
        .find(|event| event.type_name() == "SendRefused")
        .expect("sample");
    let Event::Message(MessageEvent::SendRefused {
        also_broken,
        template,
        ..
    }) = &upcast
    else {
        panic!("decoded {upcast:?}");
    };
    assert!(also_broken.is_empty());
    assert!(template.is_none(), "v1 did not record the template");
    let Event::Message(MessageEvent::SendRefused {
        message_id,
        to,
        sender,
        rule,
        message,
        at,
        ..
    }) = sample
    else {
        panic!("sample");
    };
    assert_eq!(
        upcast,
        Event::Message(MessageEvent::SendRefused {
            message_id,
            to,
            sender,
            template: None,
            rule,
            message,
            also_broken: Vec::new(),
            at
        })
    );
    assert_eq!(current_version("SendRefused"), 3);
    assert!(
        persisted::decode_payload("SendRefused", 4, &v1).is_err(),
        "no version from the future"
    );
}

/// `SendRefused` v2 (no `template`) is upcast to v3 with no template and every other field as
/// written.
#[test]
fn send_refused_v2_is_upcast_to_v3() {
    let dir = fixtures_dir().join("SendRefused");
    let v2 = std::fs::read(dir.join("v2.bin")).expect("v2 fixture");
    let upcast = persisted::decode_payload("SendRefused", 2, &v2).expect("v2 decodes");
    let Some(Event::Message(MessageEvent::SendRefused {
        template: None,
        also_broken,
        ..
    })) = golden_samples()
        .into_iter()
        .find(|event| event.type_name() == "SendRefused")
        .map(|sample| match sample {
            Event::Message(MessageEvent::SendRefused {
                message_id,
                to,
                sender,
                rule,
                message,
                also_broken,
                at,
                ..
            }) => Event::Message(MessageEvent::SendRefused {
                message_id,
                to,
                sender,
                template: None,
                rule,
                message,
                also_broken,
                at,
            }),
            other => other,
        })
        .filter(|expected| *expected == upcast)
    else {
        panic!("v2 decodes as {upcast:?}, not the sample without its template");
    };
    assert!(!also_broken.is_empty(), "v2 kept also_broken");
}

/// The v1 golden file of `type_name`, decoded through its upcaster, next to the current sample.
fn upcast_v1(type_name: &str) -> (Event, Event) {
    let v1 = std::fs::read(fixtures_dir().join(type_name).join("v1.bin")).expect("v1 fixture");
    let upcast = persisted::decode_payload(type_name, 1, &v1).expect("v1 decodes");
    let sample = golden_samples()
        .into_iter()
        .find(|event| event.type_name() == type_name)
        .expect("sample");
    let current = current_version(type_name);
    assert!(current >= 2, "{type_name} has no later version");
    assert!(
        persisted::decode_payload(type_name, current + 1, &v1).is_err(),
        "no version from the future"
    );
    (upcast, sample)
}

/// `OptedIn` v1 (no `evidence_at`) reads with the evidence dated when it was recorded.
#[test]
fn opted_in_v1_is_upcast_to_v2() {
    let (upcast, sample) = upcast_v1("OptedIn");
    let Event::Contact(ContactEvent::OptedIn {
        evidence_at, at, ..
    }) = &upcast
    else {
        panic!("decoded {upcast:?}");
    };
    assert_eq!(evidence_at, at);
    let Event::Contact(ContactEvent::OptedIn { at, .. }) = sample else {
        panic!("sample");
    };
    assert_eq!(upcast.at(), at);
}

/// `OptedOut` v1 (no `evidence_at`) reads as made when it was recorded.
#[test]
fn opted_out_v1_is_upcast_to_v2() {
    let (upcast, _) = upcast_v1("OptedOut");
    let Event::Contact(ContactEvent::OptedOut {
        evidence_at, at, ..
    }) = &upcast
    else {
        panic!("decoded {upcast:?}");
    };
    assert_eq!(evidence_at, at);
}

/// `InboundReceived` v1 (no `provider_at`) reads with no provider time; the rest as written.
#[test]
fn inbound_received_v1_is_upcast_to_v2() {
    let (upcast, sample) = upcast_v1("InboundReceived");
    let Event::Contact(ContactEvent::InboundReceived {
        contact,
        sender,
        provider_ref,
        kind,
        text,
        at,
        ..
    }) = sample
    else {
        panic!("sample");
    };
    assert_eq!(
        upcast,
        Event::Contact(ContactEvent::InboundReceived {
            contact,
            sender,
            provider_ref,
            kind,
            text,
            provider_at: None,
            details: Vec::new(),
            at,
        })
    );
}

/// `InboundReceived` v2 (no `details`) reads with none; the rest as written.
#[test]
fn inbound_received_v2_is_upcast_to_v3() {
    let v2 = std::fs::read(fixtures_dir().join("InboundReceived").join("v2.bin")).expect("v2");
    let upcast = persisted::decode_payload("InboundReceived", 2, &v2).expect("v2 decodes");
    let sample = golden_samples()
        .into_iter()
        .find(|event| event.type_name() == "InboundReceived")
        .expect("sample");
    let Event::Contact(ContactEvent::InboundReceived { details, .. }) = &upcast else {
        panic!("decoded {upcast:?}");
    };
    assert!(details.is_empty());
    let Event::Contact(ContactEvent::InboundReceived {
        contact,
        sender,
        provider_ref,
        kind,
        text,
        provider_at,
        at,
        ..
    }) = sample
    else {
        panic!("sample");
    };
    assert_eq!(
        upcast,
        Event::Contact(ContactEvent::InboundReceived {
            contact,
            sender,
            provider_ref,
            kind,
            text,
            provider_at,
            details: Vec::new(),
            at,
        })
    );
}

/// `StatusChanged` v2 (pricing only in `details`) reads with no typed `pricing`, its details
/// kept: the cost ledger falls back to them.
#[test]
fn status_changed_v2_is_upcast_to_v3_without_pricing() {
    let v2 = std::fs::read(fixtures_dir().join("StatusChanged/v2.bin")).expect("v2 fixture");
    let upcast = persisted::decode_payload("StatusChanged", 2, &v2).expect("v2 decodes");
    let Event::Message(MessageEvent::StatusChanged {
        pricing, details, ..
    }) = upcast
    else {
        panic!("decoded {upcast:?}");
    };
    assert_eq!(pricing, None);
    assert!(details.iter().any(|(k, _)| k == "pricing.category"));
}

/// `StatusChanged` and `UnmatchedStatusReceived` v1 (no `details`) read with none.
#[test]
fn statuses_v1_are_upcast_to_v2() {
    for type_name in ["StatusChanged", "UnmatchedStatusReceived"] {
        let (upcast, sample) = upcast_v1(type_name);
        let (Event::Message(MessageEvent::StatusChanged { details, .. })
        | Event::Message(MessageEvent::UnmatchedStatusReceived { details, .. })) = &upcast
        else {
            panic!("decoded {upcast:?}");
        };
        assert!(details.is_empty(), "{type_name}");
        assert_eq!(upcast.at(), sample.at(), "{type_name}");
        assert_eq!(upcast.stream(), sample.stream(), "{type_name}");
    }
}

/// `WindowReportedClosed` v1 (no `sender`) reads as every sender's window closed.
#[test]
fn window_reported_closed_v1_is_upcast_to_v2() {
    let (upcast, sample) = upcast_v1("WindowReportedClosed");
    let Event::Contact(ContactEvent::WindowReportedClosed {
        contact, code, at, ..
    }) = sample
    else {
        panic!("sample");
    };
    assert_eq!(
        upcast,
        Event::Contact(ContactEvent::WindowReportedClosed {
            contact,
            sender: None,
            code,
            at,
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Send results kept with an idempotency key: the same contract, in `fixtures/send_results/`.

fn send_results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/send_results")
}

fn accepted_sample() -> SendResult {
    SendResult::Accepted {
        message_id: message_id(),
    }
}

fn refused_sample() -> SendResult {
    SendResult::Refused(Refusal {
        rule: RuleId::TierLimit,
        message: "the portfolio reached 2000 of its 2000 unique recipients ✓".into(),
        also_broken: vec![RuleId::NotOnWhatsapp, RuleId::MarketingPaused],
    })
}

/// A digest with every byte different, so a shifted or truncated field cannot decode equal.
fn request_digest() -> RequestDigest {
    std::array::from_fn(|i| 0xa0 ^ i as u8)
}

/// The golden sample of each shape of the current format (2), by fixture name.
fn send_result_samples() -> Vec<(&'static str, SendResult)> {
    vec![
        ("accepted.v2.bin", accepted_sample()),
        ("refused.v2.bin", refused_sample()),
    ]
}

#[test]
fn send_result_golden_files_decode_forever() {
    let dir = send_results_dir();
    if std::env::var_os("WAGATE_BLESS").is_some() {
        for (name, sample) in send_result_samples() {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::create_dir_all(&dir).expect("fixture dir");
                std::fs::write(&path, send_result::encode(&sample, &request_digest()))
                    .expect("write fixture");
                eprintln!("blessed {}", path.display());
            }
        }
    }
    for (name, sample) in send_result_samples() {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{} is missing (run with WAGATE_BLESS=1 once): {e}",
                path.display()
            )
        });
        let decoded = send_result::decode(&bytes)
            .unwrap_or_else(|e| panic!("{} no longer decodes: {e}", path.display()));
        assert_eq!(
            decoded,
            StoredSend {
                result: sample.clone(),
                request: Some(request_digest()),
            },
            "{} decodes differently",
            path.display()
        );
        assert_eq!(
            send_result::encode(&sample, &request_digest()),
            bytes,
            "{} encodes differently",
            path.display()
        );
    }
}

/// Version 1 (no request digest; live for 24 h after an upgrade) still decodes, digest-less, so
/// a retry against it gets its first answer.
#[test]
fn version_1_send_results_still_decode_without_a_digest() {
    let dir = send_results_dir();
    for (name, sample) in [
        ("accepted.v1.bin", accepted_sample()),
        ("refused.v1.bin", refused_sample()),
    ] {
        let bytes = std::fs::read(dir.join(name)).expect("v1 fixture");
        assert_eq!(bytes[0], 1, "{name} is format 1");
        assert_eq!(
            send_result::decode(&bytes).unwrap_or_else(|e| panic!("{name} no longer decodes: {e}")),
            StoredSend {
                result: sample,
                request: None,
            },
            "{name} decodes differently"
        );
    }
}

/// Keys written before the versioned form (text, live for 24 h) still answer after an upgrade.
#[test]
fn legacy_text_send_results_still_decode() {
    let dir = send_results_dir();
    let accepted = std::fs::read(dir.join("legacy_accepted.txt")).expect("legacy fixture");
    assert_eq!(
        send_result::decode(&accepted).expect("legacy ok decodes"),
        StoredSend {
            result: SendResult::Accepted {
                message_id: message_id()
            },
            request: None,
        }
    );
    let refused = std::fs::read(dir.join("legacy_refused.txt")).expect("legacy fixture");
    assert_eq!(
        send_result::decode(&refused).expect("legacy refusal decodes"),
        StoredSend {
            result: SendResult::Refused(Refusal {
                rule: RuleId::OptedOut,
                message: "+41790000001 opted out and has not opted in again\n(second line)".into(),
                also_broken: Vec::new(),
            }),
            request: None,
        }
    );
}

#[test]
fn corrupt_send_results_are_errors() {
    let mut bytes = send_result::encode(&refused_sample(), &request_digest());
    assert!(send_result::decode(&[]).is_err());
    assert!(send_result::decode(&[9]).is_err(), "unknown format");
    assert!(send_result::decode(b"ok\nnot-a-uuid").is_err());
    assert!(send_result::decode(b"refused\nno_such_rule\nwhy").is_err());
    assert!(send_result::decode(b"ok").is_err());
    assert!(
        send_result::decode(&bytes[..bytes.len() - 1]).is_err(),
        "truncated"
    );
    bytes.push(0);
    assert!(send_result::decode(&bytes).is_err(), "trailing bytes");
    // A format-2 record cut inside its digest is an error, not a digest-less answer.
    assert!(
        send_result::decode(&[2, 0xa0, 0xa1]).is_err(),
        "truncated digest"
    );
    // Both or neither of message id and refusal.
    let mut neither = vec![2];
    neither.extend(request_digest());
    neither.extend([0, 0]);
    assert!(send_result::decode(&neither).is_err(), "neither answer");
}

/// `ReplySent` v1 (plain text) reads as v2 with no rich content.
#[test]
fn reply_sent_v1_is_upcast_to_v2() {
    let (upcast, _) = upcast_v1("ReplySent");
    let Event::Message(MessageEvent::ReplySent { rich, text, .. }) = &upcast else {
        panic!("decoded {upcast:?}");
    };
    assert_eq!(rich, &None);
    assert_eq!(text, "See you on Tuesday.");
}

/// `TemplateSent` v1 (no media) reads as v2 with none.
#[test]
fn template_sent_v1_is_upcast_to_v2() {
    let (upcast, _) = upcast_v1("TemplateSent");
    let Event::Message(MessageEvent::TemplateSent {
        media, variables, ..
    }) = &upcast
    else {
        panic!("decoded {upcast:?}");
    };
    assert!(media.is_empty());
    assert_eq!(variables.len(), 2);
}
