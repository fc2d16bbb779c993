use chrono::{TimeZone, Utc};
use wagate_domain::{TemplateCategory, TemplateId, WhatsAppAddress, Workflow};
use wagate_store::snapshot_forms;

use super::*;

const TABLE: &str = r#"
[[prices]]
category = "marketing"
country = "DE"
provider = "0.1365"
fee = "0.005"
currency = "USD"
from = "2026-07-01"

[[prices]]
category = "utility"
country = "*"
provider = "0.02"
fee = "0.005"
currency = "USD"
from = "2026-01-01"

[[prices]]
category = "marketing"
country = "CH"
provider = "0.10"
fee = "0"
currency = "EUR"
from = "2026-01-01"
"#;

const MARKETING: &str = "HX0123456789abcdef0123456789abcdef";
const UTILITY: &str = "HXffffffffffffffffffffffffffffffff";

fn table() -> PriceTable {
    PriceTable::from_toml(TABLE).expect("table")
}

fn at(day: u32, hour: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
        .single()
        .expect("time")
}

fn message(n: u8) -> MessageId {
    MessageId::parse(&format!("0193b0c2-7c1e-7d4e-9d7a-1f2e3d4c5b{n:02x}")).expect("id")
}

fn sender() -> WhatsAppAddress {
    WhatsAppAddress::parse("whatsapp:+15555550100").expect("sender")
}

fn sent(n: u8, to: &str, template: &str, category: TemplateCategory, when: Timestamp) -> Event {
    Event::Message(MessageEvent::TemplateSent {
        message_id: message(n),
        contact: ContactId::parse(to).expect("contact"),
        sender: sender(),
        template: TemplateId::parse(template).expect("template"),
        category,
        variables: Vec::new(),
        workflow: Workflow::parse("deal_alerts").expect("workflow"),
        media: Vec::new(),
        at: when,
    })
}

fn status(n: u8, status: MessageStatus, details: &[(&str, &str)], when: Timestamp) -> Event {
    Event::Message(MessageEvent::StatusChanged {
        message_id: message(n),
        provider_ref: None,
        status,
        error_code: None,
        details: details
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        at: when,
        pricing: None,
    })
}

struct Feed(Ledger);

impl Default for Feed {
    /// A ledger priced with the test table, as the hub's catch-up makes it.
    fn default() -> Self {
        let mut ledger = Ledger::default();
        ledger.for_table(&table_digest(&table()));
        Self(ledger)
    }
}

impl Feed {
    fn observe(&mut self, event: &Event) {
        let position = self.0.position() + 1;
        self.0.observe(position, event, &table());
    }

    fn row(&self, by: CostDimension, key: &str, currency: Option<&str>) -> CostSums {
        self.0
            .report(by)
            .groups
            .into_iter()
            .find(|g| g.key == key && g.currency.as_deref() == currency)
            .map(|g| g.sums)
            .unwrap_or_default()
    }
}

#[test]
fn delivered_messages_are_charged_once_by_category_and_country() {
    let mut feed = Feed::default();
    feed.observe(&sent(
        1,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.observe(&sent(
        2,
        "+4915123456780",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.observe(&sent(
        3,
        "+41790000001",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.observe(&status(1, MessageStatus::Sent, &[], at(2, 10)));
    feed.observe(&status(1, MessageStatus::Delivered, &[], at(2, 10)));
    feed.observe(&status(1, MessageStatus::Read, &[], at(2, 11)));
    // Read without delivered: delivered is implied.
    feed.observe(&status(2, MessageStatus::Read, &[], at(2, 11)));
    feed.observe(&status(3, MessageStatus::Delivered, &[], at(2, 11)));
    let usd = feed.row(CostDimension::Template, MARKETING, Some("USD"));
    assert_eq!(usd.messages, 2);
    assert_eq!(usd.billable, 2);
    assert_eq!(usd.provider_micros, 273_000);
    assert_eq!(usd.fee_micros, 10_000);
    assert_eq!(usd.total_micros(), 283_000);
    let eur = feed.row(CostDimension::Template, MARKETING, Some("EUR"));
    assert_eq!((eur.messages, eur.total_micros()), (1, 100_000));
    let month = feed.row(CostDimension::Month, "2026-11", Some("USD"));
    assert_eq!(month.total_micros(), 283_000);
    assert_eq!(
        feed.row(CostDimension::Campaign, NO_CAMPAIGN, Some("USD"))
            .messages,
        2
    );
    assert_eq!(
        feed.row(CostDimension::Workflow, "deal_alerts", Some("EUR"))
            .messages,
        1
    );
    let report = feed.0.report(CostDimension::Sender);
    assert_eq!(report.totals.len(), 2, "one total per currency");
    assert_eq!(feed.0.open_entries(), 0, "charged messages leave memory");
}

#[test]
fn failed_messages_cost_nothing_and_leave_memory() {
    let mut feed = Feed::default();
    feed.observe(&sent(
        1,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    assert_eq!(feed.0.open_entries(), 1);
    feed.observe(&status(1, MessageStatus::Failed, &[], at(2, 10)));
    assert_eq!(feed.0.open_entries(), 0);
    // A late delivered for a failed message is not charged.
    feed.observe(&status(1, MessageStatus::Delivered, &[], at(2, 11)));
    assert!(feed.0.report(CostDimension::Template).groups.is_empty());
}

#[test]
fn provider_pricing_overrides_the_template_category_and_billable_false_is_free() {
    let mut feed = Feed::default();
    // The template says utility; Meta reports it was billed as marketing.
    feed.observe(&sent(
        1,
        "+4915123456789",
        UTILITY,
        TemplateCategory::Utility,
        at(2, 9),
    ));
    feed.observe(&status(
        1,
        MessageStatus::Sent,
        &[
            ("pricing.category", "marketing"),
            ("pricing.billable", "true"),
        ],
        at(2, 10),
    ));
    feed.observe(&status(1, MessageStatus::Delivered, &[], at(2, 10)));
    let row = feed.row(CostDimension::Template, UTILITY, Some("USD"));
    assert_eq!(row.provider_micros, 136_500);
    feed.observe(&sent(
        2,
        "+4915123456789",
        UTILITY,
        TemplateCategory::Utility,
        at(2, 9),
    ));
    feed.observe(&status(
        2,
        MessageStatus::Delivered,
        &[
            ("pricing.type", "free_customer_service"),
            ("pricing.category", "utility"),
        ],
        at(2, 10),
    ));
    let row = feed.row(CostDimension::Template, UTILITY, Some("USD"));
    assert_eq!(
        (row.messages, row.billable, row.provider_micros),
        (2, 1, 136_500)
    );
}

/// A status recorded since `StatusChanged` v3 carries Meta's `pricing` typed: the ledger reads
/// it, and prefers it to `details` (the test above covers the `details` of older statuses).
#[test]
fn typed_pricing_is_read_and_preferred_to_the_details() {
    let mut feed = Feed::default();
    feed.observe(&sent(
        1,
        "+4915123456789",
        UTILITY,
        TemplateCategory::Utility,
        at(2, 9),
    ));
    let Event::Message(MessageEvent::StatusChanged {
        message_id,
        provider_ref,
        status: word,
        error_code,
        details,
        at: when,
        ..
    }) = status(
        1,
        MessageStatus::Delivered,
        // What an older build flattened: the typed field must win over it.
        &[("pricing.category", "utility")],
        at(2, 10),
    )
    else {
        unreachable!("status builds a StatusChanged")
    };
    feed.observe(&Event::Message(MessageEvent::StatusChanged {
        message_id,
        provider_ref,
        status: word,
        error_code,
        details,
        pricing: Some(StatusPricing {
            billable: Some(true),
            pricing_model: Some("PMP".into()),
            category: Some("marketing".into()),
            kind: Some("regular".into()),
        }),
        at: when,
    }));
    let row = feed.row(CostDimension::Template, UTILITY, Some("USD"));
    assert_eq!((row.messages, row.provider_micros), (1, 136_500));
    assert_eq!(
        ProviderPricing::of_status(
            Some(&StatusPricing {
                kind: Some("free_entry_point".into()),
                ..StatusPricing::default()
            }),
            &Vec::new()
        ),
        Some(ProviderPricing {
            category: None,
            billable: Some(false)
        })
    );
}

#[test]
fn messages_without_a_rate_are_unpriced_not_guessed() {
    let mut feed = Feed::default();
    // No authentication rate in the table.
    feed.observe(&sent(
        1,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Authentication,
        at(2, 9),
    ));
    feed.observe(&status(1, MessageStatus::Delivered, &[], at(2, 10)));
    let row = feed.row(CostDimension::Template, MARKETING, None);
    assert_eq!((row.messages, row.unpriced, row.total_micros()), (1, 1, 0));
    let report = feed.0.report(CostDimension::Template);
    assert_eq!(report.totals.last().map(|t| t.currency.clone()), Some(None));
}

#[test]
fn campaign_attribution_before_or_after_the_intent() {
    let mut feed = Feed::default();
    feed.observe(&status(9, MessageStatus::Sent, &[], at(2, 8)));
    feed.0.attribute_to_campaign(message(1), "black-friday");
    feed.observe(&sent(
        1,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.observe(&sent(
        2,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.0.attribute_to_campaign(message(2), "black-friday");
    feed.observe(&sent(
        3,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    for n in 1..=3 {
        feed.observe(&status(n, MessageStatus::Delivered, &[], at(2, 10)));
    }
    let campaign = feed.row(CostDimension::Campaign, "black-friday", Some("USD"));
    assert_eq!((campaign.messages, campaign.total_micros()), (2, 283_000));
    assert_eq!(
        feed.row(CostDimension::Campaign, NO_CAMPAIGN, Some("USD"))
            .messages,
        1
    );
}

#[test]
fn a_utility_template_inside_an_open_window_before_october_is_free_from_meta() {
    let mut feed = Feed::default();
    let early = Utc
        .with_ymd_and_hms(2026, 9, 1, 9, 0, 0)
        .single()
        .expect("time");
    feed.observe(&Event::Contact(ContactEvent::InboundReceived {
        contact: ContactId::parse("+4915123456789").expect("contact"),
        sender: Some(sender()),
        provider_ref: None,
        kind: "text".into(),
        text: "hi".into(),
        provider_at: None,
        details: Vec::new(),
        at: early,
    }));
    feed.observe(&sent(
        1,
        "+4915123456789",
        UTILITY,
        TemplateCategory::Utility,
        early,
    ));
    feed.observe(&status(1, MessageStatus::Delivered, &[], early));
    let row = feed.row(CostDimension::Month, "2026-09", Some("USD"));
    assert_eq!((row.provider_micros, row.fee_micros), (0, 5_000));
}

#[test]
fn entries_age_out_and_the_snapshot_round_trips() {
    let mut feed = Feed::default();
    feed.0.attribute_to_campaign(message(9), "later");
    feed.observe(&sent(
        1,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.observe(&sent(
        2,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.observe(&status(1, MessageStatus::Delivered, &[], at(2, 10)));
    feed.observe(&status(
        2,
        MessageStatus::Sent,
        &[("pricing.category", "marketing")],
        at(2, 10),
    ));
    assert!(!feed.0.for_table(&table_digest(&table())), "same table");
    let bytes = snapshot_forms::encode_costs(&feed.0.to_form());
    let form = snapshot_forms::decode_costs(&bytes).expect("decodes");
    let restored = Ledger::from_form(feed.0.position(), form).expect("restores");
    assert_eq!(restored, feed.0);
    // 30 days later the undelivered message is dropped.
    feed.observe(&sent(
        3,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(30, 9),
    ));
    assert_eq!(feed.0.open_entries(), 2);
    let later = Utc
        .with_ymd_and_hms(2026, 12, 3, 9, 0, 0)
        .single()
        .expect("time");
    feed.observe(&sent(
        4,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        later,
    ));
    assert_eq!(feed.0.open_entries(), 2, "message 2 aged out; 3 and 4 wait");
}

#[test]
fn another_price_table_starts_the_ledger_over() {
    let mut feed = Feed(Ledger::default());
    assert!(!feed.0.for_table("a"));
    feed.observe(&sent(
        1,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    assert!(!feed.0.for_table("a"));
    assert_eq!(feed.0.position(), 1);
    assert!(feed.0.for_table("b"));
    assert_eq!(feed.0.position(), 0);
    assert!(CostDimension::parse("month").is_some() && CostDimension::parse("day").is_none());
}

fn twilio_status(n: u8, status: MessageStatus, when: Timestamp) -> Event {
    let Event::Message(MessageEvent::StatusChanged {
        message_id,
        status,
        error_code,
        details,
        pricing,
        at,
        ..
    }) = self::status(n, status, &[], when)
    else {
        unreachable!("status builds a StatusChanged")
    };
    Event::Message(MessageEvent::StatusChanged {
        message_id,
        provider_ref: Some(
            wagate_domain::ProviderMessageRef::parse("SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61")
                .expect("sid"),
        ),
        status,
        error_code,
        details,
        pricing,
        at,
    })
}

fn price_reported(n: u8, amount_micros: i64, currency: &str, when: Timestamp) -> Event {
    Event::Message(MessageEvent::PriceReported {
        message_id: message(n),
        provider: ProviderKind::Twilio,
        amount_micros,
        currency: currency.into(),
        at: when,
    })
}

/// Twilio's reported price replaces the table's provider price of that message (the fee stays
/// the table's), also across a snapshot; a price for a message never charged changes nothing.
#[test]
fn the_provider_reported_price_replaces_the_table_price() {
    let mut feed = Feed::default();
    for n in [1, 2] {
        feed.observe(&sent(
            n,
            "+4915123456789",
            MARKETING,
            TemplateCategory::Marketing,
            at(2, 9),
        ));
        feed.observe(&twilio_status(n, MessageStatus::Delivered, at(2, 10)));
    }
    let row = feed.row(CostDimension::Template, MARKETING, Some("USD"));
    assert_eq!((row.provider_micros, row.fee_micros), (273_000, 10_000));

    feed.observe(&price_reported(1, 125_000, "USD", at(2, 11)));
    let row = feed.row(CostDimension::Template, MARKETING, Some("USD"));
    assert_eq!(
        (row.messages, row.provider_micros, row.fee_micros),
        (2, 136_500 + 125_000, 10_000)
    );
    // Reported twice (a repeated fetch): the first report counted, the second changes nothing.
    feed.observe(&price_reported(1, 999_000, "USD", at(2, 11)));

    // Through a snapshot: message 2 is still awaiting its price.
    let form = feed.0.to_form();
    let restored = Ledger::from_form(feed.0.position(), form).expect("restores");
    assert_eq!(restored, feed.0);
    let mut feed = Feed(restored);
    feed.observe(&price_reported(2, 110_000, "EUR", at(2, 12)));
    let usd = feed.row(CostDimension::Campaign, NO_CAMPAIGN, Some("USD"));
    let eur = feed.row(CostDimension::Campaign, NO_CAMPAIGN, Some("EUR"));
    assert_eq!((usd.provider_micros, usd.fee_micros), (125_000, 10_000));
    assert_eq!((eur.messages, eur.provider_micros), (0, 110_000));

    // A message that failed is never charged, whatever price arrives.
    feed.observe(&sent(
        3,
        "+4915123456789",
        MARKETING,
        TemplateCategory::Marketing,
        at(2, 9),
    ));
    feed.observe(&twilio_status(3, MessageStatus::Failed, at(2, 10)));
    feed.observe(&price_reported(3, 50_000, "USD", at(2, 12)));
    let usd = feed.row(CostDimension::Campaign, NO_CAMPAIGN, Some("USD"));
    assert_eq!(usd.provider_micros, 125_000);
}
