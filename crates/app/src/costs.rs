//! The cost ledger: what delivered messages cost, summed per campaign, workflow, template,
//! sender and month (UTC), per currency. A checkpointed reader of the durable log like the ops
//! counts (`counts.rs`): [`Ledger`] holds the sums and the log position they reflect, is caught
//! up in bounded batches before every read and save (`costs_reader.rs`), and is saved in its own
//! snapshot slot ([`COSTS_SLOT`]).
//!
//! When a message is charged (docs/costs.md): on its first `delivered` status, or a `read`
//! without one (read implies delivered; Meta may skip `delivered`); a failed or undelivered
//! message is never charged. It is priced by the table ([`crate::PriceTable::quote`]) at the
//! time of that status, by the category the provider reported in its `pricing` object when it
//! did (else the template's; a freeform reply is `service`) and the recipient's country; a
//! provider `billable: false` (or a `free_*` pricing type) charges nothing. No rate: the message
//! is counted unpriced, never guessed.
//!
//! Bounded by open work: a message's entry is dropped once charged or failed, or once its intent
//! is [`COST_ENTRY_MAX_AGE`] behind the newest event (a delivery reported after that is not
//! charged); open windows are kept 24 h. The sums are exact integers (micro-units).

use std::collections::{BTreeMap, HashMap};

use chrono::TimeDelta;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wagate_domain::{
    CampaignEvent, ContactEvent, ContactId, Event, MessageEvent, MessageId, MessageStatus,
    ProviderDetails, ProviderKind, StatusPricing, Timestamp,
};
use wagate_store::snapshot_forms::{CostEntryV1, CostsV2};

use crate::counts::FREEFORM;
use crate::pricing::{PriceCategory, PriceQuery, PriceTable};

/// The name of the cost ledger's snapshot slot.
pub const COSTS_SLOT: &str = "costs";

/// The campaign key of messages sent outside any campaign.
pub const NO_CAMPAIGN: &str = "(none)";

/// How long after its intent a message waits to be charged: 30 days (Meta keeps trying to
/// deliver a message for up to 30 days).
pub const COST_ENTRY_MAX_AGE: TimeDelta = TimeDelta::days(30);

/// How long after its charge a Twilio message's reported price still replaces the table's: the
/// price follower gives up well before (docs/costs.md).
pub const PRICE_WAIT: TimeDelta = TimeDelta::days(2);

/// How long an inbound message keeps the customer-service window open.
const WINDOW: TimeDelta = TimeDelta::hours(24);

/// What the costs are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CostDimension {
    Campaign,
    Workflow,
    Template,
    Sender,
    Month,
}

impl CostDimension {
    pub const ALL: [Self; 5] = [
        Self::Campaign,
        Self::Workflow,
        Self::Template,
        Self::Sender,
        Self::Month,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Campaign => "campaign",
            Self::Workflow => "workflow",
            Self::Template => "template",
            Self::Sender => "sender",
            Self::Month => "month",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == input)
    }
}

/// Messages and money of one group in one currency (`currency: None`: the unpriced messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostSums {
    /// Delivered messages.
    pub messages: u64,
    /// Of them, the ones billed (the provider did not say `billable: false` or a free type).
    pub billable: u64,
    /// Of them, the ones the table has no rate for.
    pub unpriced: u64,
    pub provider_micros: i64,
    pub fee_micros: i64,
}

impl CostSums {
    pub fn total_micros(&self) -> i64 {
        self.provider_micros.saturating_add(self.fee_micros)
    }

    fn add(&mut self, other: &CostSums) {
        self.messages += other.messages;
        self.billable += other.billable;
        self.unpriced += other.unpriced;
        self.provider_micros = self.provider_micros.saturating_add(other.provider_micros);
        self.fee_micros = self.fee_micros.saturating_add(other.fee_micros);
    }
}

/// One row of a cost report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostGroup {
    pub key: String,
    pub currency: Option<String>,
    pub sums: CostSums,
}

/// The costs grouped one way, with the totals per currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostReport {
    pub position: u64,
    pub groups: Vec<CostGroup>,
    /// One row per currency (key empty), the unpriced row last.
    pub totals: Vec<CostGroup>,
}

/// A message waiting to be charged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    workflow: String,
    template: String,
    sender: String,
    campaign: Option<String>,
    category: PriceCategory,
    contact: ContactId,
    window_open: bool,
    intent_at: i64,
    provider_category: Option<String>,
    billable: Option<bool>,
}

type GroupKey = (CostDimension, String, Option<String>);

/// The sums and the log position they reflect.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Ledger {
    position: u64,
    /// The digest of the table the sums were priced with (empty: none yet).
    prices: String,
    groups: BTreeMap<GroupKey, CostSums>,
    messages: HashMap<MessageId, Entry>,
    pending_campaigns: HashMap<MessageId, (String, i64)>,
    windows: HashMap<(String, Option<String>), i64>,
    newest: Option<i64>,
    /// Charged Twilio messages whose provider price may still be reported.
    awaiting_price: HashMap<MessageId, Charged>,
}

/// How a message sent through Twilio was charged, kept until Twilio reports its price
/// (`ProviderPriceReported`) or [`PRICE_WAIT`] passes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Charged {
    /// Its keys in the five dimensions, in [`CostDimension::ALL`] order.
    keys: [String; 5],
    currency: Option<String>,
    provider_micros: i64,
    at: i64,
}

/// A digest of a table's entries: a ledger priced with another table is rebuilt.
pub(crate) fn table_digest(table: &PriceTable) -> String {
    let mut hash = Sha256::new();
    for e in table.entries() {
        hash.update(format!(
            "{}|{}|{}|{}|{}|{}\n",
            e.category, e.country, e.provider_micros, e.fee_micros, e.currency, e.from
        ));
    }
    hex::encode(hash.finalize())
}

impl Ledger {
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Whether this ledger is priced with `digest`, or with no table yet.
    pub(crate) fn priced_with_or_new(&self, digest: &str) -> bool {
        self.prices.is_empty() || self.prices == digest
    }

    /// A ledger priced with `digest`: this one when it matches, else an empty one to rebuild.
    pub(crate) fn for_table(&mut self, digest: &str) -> bool {
        if self.prices == digest {
            return false;
        }
        let fresh = self.position > 0 || !self.groups.is_empty();
        *self = Ledger {
            prices: digest.to_owned(),
            ..Ledger::default()
        };
        fresh
    }

    /// Applies the event at `position` if it is after the last one applied.
    pub(crate) fn observe(&mut self, position: u64, event: &Event, prices: &PriceTable) {
        if position <= self.position {
            return;
        }
        self.advance(event.at());
        match event {
            Event::Message(message) => self.observe_message(message, prices),
            Event::Contact(ContactEvent::InboundReceived {
                contact,
                sender,
                at,
                ..
            }) => {
                let sender = sender.as_ref().map(ToString::to_string);
                self.windows
                    .insert((contact.to_string(), sender), at.timestamp());
            }
            Event::Campaign(CampaignEvent::RowSent {
                campaign, message, ..
            }) => self.attribute_to_campaign(*message, &campaign.to_string()),
            _ => {}
        }
        self.position = position;
    }

    /// Attributes `message` to `campaign`: its cost is then summed under that campaign (the
    /// campaigns' `CampaignRowSent`, appended with the row's intent, calls it from `observe`).
    /// Messages never attributed are summed under [`NO_CAMPAIGN`]. An attribution seen before
    /// the message's intent is kept until the intent arrives (bounded like the entries).
    pub fn attribute_to_campaign(&mut self, message: MessageId, campaign: &str) {
        match self.messages.get_mut(&message) {
            Some(entry) => entry.campaign = Some(campaign.to_owned()),
            None => {
                let at = self.newest.unwrap_or(0);
                self.pending_campaigns
                    .insert(message, (campaign.to_owned(), at));
            }
        }
    }

    fn window_open(&self, contact: &ContactId, sender: &str, at: i64) -> bool {
        let contact = contact.to_string();
        [Some(sender.to_owned()), None].into_iter().any(|sender| {
            self.windows
                .get(&(contact.clone(), sender))
                .is_some_and(|last| at - last < WINDOW.num_seconds())
        })
    }

    fn advance(&mut self, at: Timestamp) {
        let at = at.timestamp();
        let previous = self.newest.unwrap_or(i64::MIN);
        if at <= previous {
            return;
        }
        self.newest = Some(at);
        if previous != i64::MIN && at.div_euclid(3600) == previous.div_euclid(3600) {
            return;
        }
        let oldest = at - COST_ENTRY_MAX_AGE.num_seconds();
        self.messages.retain(|_, entry| entry.intent_at >= oldest);
        self.pending_campaigns
            .retain(|_, (_, seen)| *seen >= oldest);
        let price_oldest = at - PRICE_WAIT.num_seconds();
        self.awaiting_price
            .retain(|_, charged| charged.at >= price_oldest);
        let window_oldest = at - WINDOW.num_seconds();
        self.windows.retain(|_, last| *last >= window_oldest);
    }

    fn intent(&mut self, message: MessageId, mut entry: Entry) {
        if let Some((campaign, _)) = self.pending_campaigns.remove(&message) {
            entry.campaign = Some(campaign);
        }
        self.messages.insert(message, entry);
    }

    fn observe_message(&mut self, event: &MessageEvent, prices: &PriceTable) {
        match event {
            MessageEvent::TemplateSent {
                message_id,
                contact,
                sender,
                template,
                category,
                workflow,
                at,
                ..
            } => {
                let sender = sender.to_string();
                let window_open = self.window_open(contact, &sender, at.timestamp());
                self.intent(
                    *message_id,
                    Entry {
                        workflow: workflow.to_string(),
                        template: template.to_string(),
                        sender,
                        campaign: None,
                        category: PriceCategory::of_template(*category),
                        contact: contact.clone(),
                        window_open,
                        intent_at: at.timestamp(),
                        provider_category: None,
                        billable: None,
                    },
                );
            }
            MessageEvent::ReplySent {
                message_id,
                contact,
                sender,
                workflow,
                at,
                ..
            } => self.intent(
                *message_id,
                Entry {
                    workflow: workflow.to_string(),
                    template: FREEFORM.to_owned(),
                    sender: sender.to_string(),
                    campaign: None,
                    category: PriceCategory::Service,
                    contact: contact.clone(),
                    // A freeform reply is only ever allowed inside an open window.
                    window_open: true,
                    intent_at: at.timestamp(),
                    provider_category: None,
                    billable: None,
                },
            ),
            MessageEvent::StatusChanged {
                message_id,
                provider_ref,
                status,
                details,
                pricing,
                at,
                ..
            } => {
                let Some(entry) = self.messages.get_mut(message_id) else {
                    return;
                };
                if let Some(pricing) = ProviderPricing::of_status(pricing.as_ref(), details) {
                    if pricing.category.is_some() {
                        entry.provider_category = pricing.category;
                    }
                    if pricing.billable.is_some() {
                        entry.billable = pricing.billable;
                    }
                }
                match status {
                    MessageStatus::Delivered | MessageStatus::Read => {
                        if let Some(entry) = self.messages.remove(message_id) {
                            let charged = self.charge(&entry, *at, prices);
                            // Twilio reports its price later, on the Message resource.
                            if provider_ref
                                .as_ref()
                                .is_some_and(|r| r.provider() == ProviderKind::Twilio)
                            {
                                self.awaiting_price.insert(*message_id, charged);
                            }
                        }
                    }
                    MessageStatus::Failed | MessageStatus::Undelivered => {
                        self.messages.remove(message_id);
                    }
                    _ => {}
                }
            }
            MessageEvent::SendRefused { message_id, .. }
            | MessageEvent::ClaimRefused { message_id, .. }
            | MessageEvent::InDoubtExpired { message_id, .. } => {
                self.messages.remove(message_id);
                self.pending_campaigns.remove(message_id);
            }
            MessageEvent::DispatchFailed {
                message_id,
                retry_at: None,
                ..
            } => {
                self.messages.remove(message_id);
            }
            MessageEvent::PriceReported {
                message_id,
                amount_micros,
                currency,
                ..
            } => self.reprice(*message_id, *amount_micros, currency),
            _ => {}
        }
    }

    /// Replaces the table's provider price of a charged message by the one its provider
    /// reported, in the reported currency (the fee stays the table's). A price for a message
    /// not charged (failed, or charged too long ago) changes nothing.
    fn reprice(&mut self, message: MessageId, amount_micros: i64, currency: &str) {
        let Some(charged) = self.awaiting_price.remove(&message) else {
            return;
        };
        for (dimension, key) in CostDimension::ALL.into_iter().zip(charged.keys) {
            if let Some(sums) =
                self.groups
                    .get_mut(&(dimension, key.clone(), charged.currency.clone()))
            {
                sums.provider_micros = sums.provider_micros.saturating_sub(charged.provider_micros);
            }
            let sums = self
                .groups
                .entry((dimension, key, Some(currency.to_owned())))
                .or_default();
            sums.provider_micros = sums.provider_micros.saturating_add(amount_micros);
        }
    }

    /// Adds one delivered message to its five groups; answers how it was charged.
    fn charge(&mut self, entry: &Entry, at: Timestamp, prices: &PriceTable) -> Charged {
        let category = match &entry.provider_category {
            Some(reported) => PriceCategory::parse(reported),
            None => Some(entry.category),
        };
        let quote = match (category, entry.contact.phone()) {
            (Some(category), Some(to)) => prices.quote(&PriceQuery {
                category,
                to,
                at,
                window_open: entry.window_open,
            }),
            // A category wagate does not price, or a recipient known only by a username: no
            // country, so no rate.
            _ => None,
        };
        let billable = entry.billable != Some(false);
        let (currency, sums) = match quote {
            Some(quote) => (
                Some(quote.currency.clone()),
                CostSums {
                    messages: 1,
                    billable: u64::from(billable),
                    unpriced: 0,
                    provider_micros: if billable { quote.provider_micros } else { 0 },
                    fee_micros: if billable { quote.fee_micros } else { 0 },
                },
            ),
            None => (
                None,
                CostSums {
                    messages: 1,
                    billable: u64::from(billable),
                    unpriced: u64::from(billable),
                    ..CostSums::default()
                },
            ),
        };
        let keys = [
            (
                CostDimension::Campaign,
                entry
                    .campaign
                    .clone()
                    .unwrap_or_else(|| NO_CAMPAIGN.to_owned()),
            ),
            (CostDimension::Workflow, entry.workflow.clone()),
            (CostDimension::Template, entry.template.clone()),
            (CostDimension::Sender, entry.sender.clone()),
            (CostDimension::Month, at.format("%Y-%m").to_string()),
        ];
        for (dimension, key) in keys.clone() {
            self.groups
                .entry((dimension, key, currency.clone()))
                .or_default()
                .add(&sums);
        }
        Charged {
            keys: keys.map(|(_, key)| key),
            currency,
            provider_micros: sums.provider_micros,
            at: at.timestamp(),
        }
    }

    /// The costs grouped by `by`, with the totals per currency.
    pub(crate) fn report(&self, by: CostDimension) -> CostReport {
        let mut totals: BTreeMap<Option<String>, CostSums> = BTreeMap::new();
        let groups = self
            .groups
            .iter()
            .filter(|((dimension, _, _), _)| *dimension == by)
            .map(|((_, key, currency), sums)| {
                totals.entry(currency.clone()).or_default().add(sums);
                CostGroup {
                    key: key.clone(),
                    currency: currency.clone(),
                    sums: sums.clone(),
                }
            })
            .collect();
        // Priced currencies first, the unpriced row (`None` sorts first) last.
        let mut totals: Vec<CostGroup> = totals
            .into_iter()
            .map(|(currency, sums)| CostGroup {
                key: String::new(),
                currency,
                sums,
            })
            .collect();
        totals.sort_by_key(|row| row.currency.is_none());
        CostReport {
            position: self.position,
            groups,
            totals,
        }
    }

    /// Messages waiting to be charged: for tests of the memory bound.
    pub(crate) fn open_entries(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn to_form(&self) -> CostsV2 {
        CostsV2 {
            prices: self.prices.clone(),
            groups: self
                .groups
                .iter()
                .map(|((dimension, key, currency), s)| {
                    (
                        *dimension as u8,
                        key.clone(),
                        currency.clone(),
                        [s.messages, s.billable, s.unpriced],
                        s.provider_micros,
                        s.fee_micros,
                    )
                })
                .collect(),
            messages: self
                .messages
                .iter()
                .map(|(id, e)| {
                    (
                        *id.as_uuid().as_bytes(),
                        CostEntryV1 {
                            workflow: e.workflow.clone(),
                            template: e.template.clone(),
                            sender: e.sender.clone(),
                            campaign: e.campaign.clone(),
                            category: e.category.as_str().to_owned(),
                            contact: e.contact.to_string(),
                            window_open: e.window_open,
                            intent_at: e.intent_at,
                            provider_category: e.provider_category.clone(),
                            billable: e.billable,
                        },
                    )
                })
                .collect(),
            pending_campaigns: self
                .pending_campaigns
                .iter()
                .map(|(id, (campaign, at))| (*id.as_uuid().as_bytes(), campaign.clone(), *at))
                .collect(),
            windows: self
                .windows
                .iter()
                .map(|((contact, sender), at)| (contact.clone(), sender.clone(), *at))
                .collect(),
            newest: self.newest,
            awaiting_price: self
                .awaiting_price
                .iter()
                .map(|(id, c)| {
                    (
                        *id.as_uuid().as_bytes(),
                        c.keys.clone(),
                        c.currency.clone(),
                        c.provider_micros,
                        c.at,
                    )
                })
                .collect(),
        }
    }

    pub(crate) fn from_form(position: u64, form: CostsV2) -> Result<Self, String> {
        let message = |raw: [u8; 16]| {
            MessageId::from_uuid(Uuid::from_bytes(raw)).map_err(|e| format!("message id: {e}"))
        };
        let mut ledger = Ledger {
            position,
            prices: form.prices,
            newest: form.newest,
            ..Ledger::default()
        };
        for (dimension, key, currency, [messages, billable, unpriced], provider, fee) in form.groups
        {
            let dimension = *CostDimension::ALL
                .get(usize::from(dimension))
                .ok_or_else(|| format!("unknown cost dimension {dimension}"))?;
            ledger.groups.insert(
                (dimension, key, currency),
                CostSums {
                    messages,
                    billable,
                    unpriced,
                    provider_micros: provider,
                    fee_micros: fee,
                },
            );
        }
        for (raw, e) in form.messages {
            let category = PriceCategory::parse(&e.category)
                .ok_or_else(|| format!("unknown category {}", e.category))?;
            let contact =
                ContactId::parse(&e.contact).map_err(|error| format!("contact: {error}"))?;
            ledger.messages.insert(
                message(raw)?,
                Entry {
                    workflow: e.workflow,
                    template: e.template,
                    sender: e.sender,
                    campaign: e.campaign,
                    category,
                    contact,
                    window_open: e.window_open,
                    intent_at: e.intent_at,
                    provider_category: e.provider_category,
                    billable: e.billable,
                },
            );
        }
        for (raw, campaign, at) in form.pending_campaigns {
            ledger
                .pending_campaigns
                .insert(message(raw)?, (campaign, at));
        }
        for (contact, sender, at) in form.windows {
            ledger.windows.insert((contact, sender), at);
        }
        for (raw, keys, currency, provider_micros, at) in form.awaiting_price {
            ledger.awaiting_price.insert(
                message(raw)?,
                Charged {
                    keys,
                    currency,
                    provider_micros,
                    at,
                },
            );
        }
        Ok(ledger)
    }
}

/// What a provider reported about a message's price on a status: Meta's `pricing` object
/// (on one of `sent`/`delivered`), reduced to what the ledger prices by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderPricing {
    pub category: Option<String>,
    pub billable: Option<bool>,
}

impl ProviderPricing {
    /// From a status's typed `pricing` (`StatusChanged` v3), else from its `details`, where
    /// statuses recorded before v3 kept the object flattened as `pricing.*` pairs.
    pub fn of_status(pricing: Option<&StatusPricing>, details: &ProviderDetails) -> Option<Self> {
        let from_details;
        let pricing = match pricing {
            Some(pricing) => pricing,
            None => {
                from_details = StatusPricing::from_details(details)?;
                &from_details
            }
        };
        let category = pricing.category.clone();
        // `billable` is being deprecated by Meta; a `free_*` type says the same thing.
        let billable = pricing.is_billable();
        (category.is_some() || billable.is_some()).then_some(Self { category, billable })
    }

    /// From a status's `details` only (statuses recorded before `StatusChanged` v3).
    pub fn from_details(details: &ProviderDetails) -> Option<Self> {
        Self::of_status(None, details)
    }
}

/// The ledger, restored on first use (`crate::projection_reader`).
pub(crate) type Costs = crate::projection_reader::ReaderCell<Ledger>;

#[cfg(test)]
#[path = "costs_tests.rs"]
mod tests;
