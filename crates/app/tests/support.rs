//! A hub on a temporary store with a fixed clock, and helpers to set up senders and templates.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use wagate_app::{FixedClock, Hub, SendOptions, SendRequest};
use wagate_domain::decide::{RecordOptIn, RegisterSender, RegisterTemplate};
use wagate_domain::{
    ApprovalStatus, ContactId, Event, OptInSource, PhoneNumber, Policy, PortfolioId, ProviderKind,
    SendContent, TemplateCategory, TemplateId, WhatsAppAddress,
};
use wagate_store::Store;

pub const SENDER: &str = "whatsapp:+15550001111";
pub const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
pub const CONTACT: &str = "+41790000001";

pub struct TestHub {
    pub hub: Hub,
    pub clock: FixedClock,
    /// The sled store behind the hub, for sled-only checks (`verify`, `close`): the tests are the
    /// composition root here.
    pub store: Store,
}

/// A hub whose store shares its fixed clock (so idempotency keys expire on the test's time).
pub fn hub() -> TestHub {
    let clock = FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
            .single()
            .expect("valid time"),
    );
    let store_clock = clock.clone();
    let options = wagate_store::Options {
        clock: wagate_store::Clock::from_fn(move || {
            wagate_app::Clock::now(&store_clock).timestamp_millis()
        }),
        ..wagate_store::Options::default()
    };
    let store = Store::open_temporary_with(options).expect("temporary store");
    let hub = Hub::open(
        Arc::new(store.clone()),
        Arc::new(clock.clone()),
        Policy::default(),
    )
    .expect("hub");
    TestHub { hub, clock, store }
}

pub fn sender() -> WhatsAppAddress {
    WhatsAppAddress::parse(SENDER).expect("sender")
}

pub fn contact() -> ContactId {
    ContactId::Phone(PhoneNumber::parse(CONTACT).expect("contact"))
}

pub fn template() -> TemplateId {
    TemplateId::parse(TEMPLATE).expect("template")
}

/// An authorized sender and an approved template with placeholders "1" and "2".
pub async fn ready(hub: &Hub) {
    hub.register_sender(RegisterSender {
        sender: sender(),
        provider: ProviderKind::Sandbox,
        portfolio: PortfolioId::parse("default").expect("portfolio"),
        rate: Default::default(),
        meta_phone_number_id: None,
    })
    .await
    .expect("register sender");
    hub.authorize_sender(&sender(), "ops@example.com")
        .await
        .expect("authorize");
    hub.register_template(RegisterTemplate {
        template: template(),
        name: "viewing_reminder".into(),
        language: "en".into(),
        category: TemplateCategory::Utility,
        placeholders: vec!["1".into(), "2".into()],
    })
    .await
    .expect("register template");
    hub.set_template_status(&template(), ApprovalStatus::Approved, "approved by Meta")
        .await
        .expect("approve");
}

/// Publishes the consent wording test opt-ins cite (opt-ins must cite a published one); the
/// same text again is the same version, so calling it twice is harmless. Answers the version.
pub async fn published_wording(hub: &Hub) -> String {
    hub.publish_wording(wagate_domain::consent::PublishWording {
        business: "Acme Homes".into(),
        language: "en".into(),
        text: "I agree to receive WhatsApp messages from Acme Homes.".into(),
    })
    .await
    .expect("publish wording")
    .0
    .version
}

pub async fn opt_in(hub: &Hub, contact: &ContactId) {
    let wording_version = published_wording(hub).await;
    hub.opt_in(RecordOptIn {
        contact: contact.clone(),
        source: OptInSource::WebForm,
        evidence: "https://example.com/forms/123".into(),
        recorded_by: "agent".into(),
        wording_version,
        evidence_at: None,
    })
    .await
    .expect("opt in");
}

pub fn template_request(to: &str) -> SendRequest {
    let variables: BTreeMap<String, String> = [
        ("1".to_owned(), "Lea".to_owned()),
        ("2".to_owned(), "Thu 10:00".to_owned()),
    ]
    .into();
    SendRequest {
        to: to.into(),
        sender: None,
        workflow: Some("appointment_scheduling".into()),
        content: SendContent::Template {
            media: Vec::new(),
            template: template(),
            variables,
        },
    }
}

pub fn no_options() -> SendOptions {
    SendOptions::default()
}

/// Every event in the log, in order, through the hub's read side.
pub fn log(hub: &Hub) -> Vec<(u64, Event)> {
    hub.events_after(0, usize::MAX)
        .expect("read log")
        .into_iter()
        .map(|logged| (logged.position, logged.event))
        .collect()
}
