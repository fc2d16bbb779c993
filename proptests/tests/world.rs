//! A small in-memory "world" for the property tests: an event log (`Vec<Event>`), the domain
//! aggregates folded from it one event at a time, and the steps that drive the domain's decide
//! functions the way the hub and the dispatcher would.
//!
//! The world never asserts anything itself: it records what the domain answered (and what the
//! reference check says, see `reference.rs`), and the properties in `props.rs` judge.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta};
use wagate_domain::decide::{
    self, ClaimDecision, ClaimDispatch, DispatchOutcome, LinkIdentities, ReceiveGroupMessage,
    ReceiveInbound, RecordOptIn, RecordOptOut, RecordOutcome, RecordStatus, SendMessage, SendState,
    SetContactFlag,
};
use wagate_domain::{
    Aggregate, ApprovalStatus, ContactFlag, ContactId, ContactState, Event, IdentitySource,
    MessageEvent, MessageId, MessageState, MessageStatus, MessagingLimit, OptInSource,
    OptOutSource, PhoneNumber, Policy, PortfolioId, PortfolioState, ProviderError, ProviderKind,
    ProviderMessageRef, Recipient, RuleId, SendContent, SenderState, TemplateCategory, TemplateId,
    TemplateState, Timestamp, WhatsAppAddress, Workflow,
};

use wagate_domain::consent::{self, CampaignMedium, ConsentEvent};

use crate::reference::{RefConsent, Reference};

// ---------------------------------------------------------------------------------------------
// The cast: fixed, small, so that steps collide on the same contacts, messages and templates.

/// Recipients: three valid numbers, one that is not E.164, and a second number of one of the
/// people (the `wa_id` Meta delivered to, e.g. Brazil's ninth digit), only linked by `Link` steps.
pub const RECIPIENTS: [&str; 5] = [
    "+41790000001",
    "+41790000002",
    "+41790000003",
    "+0790000004",
    "+5511987650001",
];
/// Identities that consent steps (inbounds, opt-ins, opt-outs, flags, links, groups) act on: the
/// three valid recipients, the second number, and a business-scoped user id (never sendable).
pub const IDENTITIES: [&str; 5] = [
    "+41790000001",
    "+41790000002",
    "+41790000003",
    "+5511987650001",
    "bsuid:BR.1234567890",
];
/// How long before receipt the person wrote an inbound (Meta's `timestamp`), in seconds:
/// `None` is a provider that gives no time (Twilio); negative ages are provider clocks ahead of
/// ours (within and beyond the allowed skew of 5 min); around 7 days is the retry horizon's edge
/// (an older inbound is a replay).
pub const INBOUND_AGES: [Option<i64>; 11] = [
    None,
    Some(0),
    Some(1),
    Some(90),
    Some(7_200),
    Some(72_000),
    Some(7 * 86_400 - 1),
    Some(7 * 86_400),
    Some(7 * 86_400 + 1),
    Some(-60),
    Some(-301),
];
/// When an API opt-in's evidence is dated, relative to the identity's newest opt-out (or now
/// when there is none): absent, now, 1 s before the STOP, the STOP's instant, 1 ms after it,
/// and 1 s in the future.
pub const EVIDENCE_AT: [&str; 6] = [
    "absent",
    "now",
    "before_stop",
    "at_stop",
    "after_stop",
    "future",
];
/// Portfolios a sender may be (re-)registered with.
pub const PORTFOLIOS: [&str; 2] = ["acme", "acme_two"];
/// Senders: a Twilio number (authorized at the start) and a Cloud API number (not authorized).
pub const SENDERS: [(&str, ProviderKind); 2] = [
    ("+15550001111", ProviderKind::Twilio),
    ("+15550002222", ProviderKind::Meta),
];
/// Templates: two registered (utility with `1`, marketing with `1`, `2`), one never registered.
pub const TEMPLATES: [(&str, TemplateCategory, &[&str]); 3] = [
    ("visit_reminder", TemplateCategory::Utility, &["1"]),
    ("spring_offer", TemplateCategory::Marketing, &["1", "2"]),
    ("ghost_template", TemplateCategory::Utility, &["1"]),
];
pub const WORKFLOWS: [Option<&str>; 5] = [
    Some("lead_qualification"),
    Some("appointment_scheduling"),
    Some("status_update"),
    Some("open_chat"),
    None,
];
/// Variable sets: right for template 0, right for template 1, missing, extra, empty value.
pub const VARIABLES: [&[(&str, &str)]; 5] = [
    &[("1", "Lea")],
    &[("1", "Lea"), ("2", "-20%")],
    &[],
    &[("1", "Lea"), ("3", "x")],
    &[("1", " ")],
];
/// Inbound texts: plain, STOP family, START family (YES included), and free-text mentions.
pub const TEXTS: [&str; 14] = [
    "When can I visit?",
    "yes please, send the brochure",
    "Can we cancel Thursday?",
    "STOP",
    " stop! ",
    "Unsubscribe",
    "opt-out",
    "ARRÊT",
    "START",
    "unstop",
    "yes",
    "YES!",
    "please stop texting me",
    "remove me from your list",
];
/// What each of `TEXTS` is, by the keyword table of docs/compliance.md (written by hand here,
/// not computed by the domain's classifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    None,
    Stop,
    Start,
    /// YES: opts in only an opted-out contact.
    Yes,
}
pub const TEXT_KEYWORDS: [Keyword; 14] = [
    Keyword::None,
    Keyword::None,
    Keyword::None,
    Keyword::Stop,
    Keyword::Stop,
    Keyword::Stop,
    Keyword::Stop,
    Keyword::Stop,
    Keyword::Start,
    Keyword::Start,
    Keyword::Yes,
    Keyword::Yes,
    Keyword::None,
    Keyword::None,
];
pub const INBOUND_KINDS: [&str; 4] = ["text", "button", "image", "document"];
pub const CALLBACK_STATUSES: [&str; 10] = [
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "undelivered",
    "accepted",
    "played",
    "canceled",
];
/// Error codes a callback may carry (index 0: none). The window-closed code is each provider's
/// own (63016 for Twilio, 131047 for Meta: `window_closed_code`), and comes often: the window
/// per sender needs reports.
pub const CALLBACK_CODES: [Option<u32>; 9] = [
    None,
    None,
    Some(63016),
    Some(63016),
    Some(63003),
    Some(63014),
    Some(131047),
    Some(131050),
    Some(63032),
];
pub const TWILIO_CODES: [u32; 15] = [
    63012, 63018, 20429, 20500, 20503, 63016, 63003, 63024, 63007, 63001, 63014, 63041, 21656,
    21211, 63032,
];
pub const META_CODES: [u32; 12] = [
    1, 130429, 131000, 131056, 131047, 131026, 131050, 368, 132001, 132015, 132000, 100,
];
pub const LIMITS: [MessagingLimit; 4] = [
    MessagingLimit::Limited(0),
    MessagingLimit::Limited(1),
    MessagingLimit::Limited(2),
    MessagingLimit::Unlimited,
];
pub const APPROVALS: [ApprovalStatus; 6] = ApprovalStatus::ALL;

/// Offsets from a contact's last inbound that the clock may jump to: the margin's edge and the
/// 24 h edge, each ± 1 ms.
pub fn window_edges(margin: TimeDelta) -> [TimeDelta; 6] {
    let day = TimeDelta::hours(24);
    let ms = TimeDelta::milliseconds(1);
    [
        day - margin - ms,
        day - margin,
        day - margin + ms,
        day - ms,
        day,
        day + ms,
    ]
}

pub fn t0() -> Timestamp {
    DateTime::from_timestamp(1_795_597_200, 0).expect("valid timestamp")
}

pub fn contact_of(recipient: &str) -> Option<ContactId> {
    PhoneNumber::parse(recipient).ok().map(ContactId::Phone)
}

pub fn identity(index: usize) -> ContactId {
    ContactId::parse(IDENTITIES[index % IDENTITIES.len()]).expect("valid identity")
}

pub fn sender_address(index: usize) -> WhatsAppAddress {
    WhatsAppAddress::parse(&format!("whatsapp:{}", SENDERS[index].0)).expect("valid sender")
}

pub fn template_id(index: usize) -> TemplateId {
    TemplateId::parse(TEMPLATES[index].0).expect("valid template")
}

fn portfolio_id() -> PortfolioId {
    PortfolioId::parse(PORTFOLIOS[0]).expect("valid portfolio")
}

// ---------------------------------------------------------------------------------------------
// Steps

/// Where the clock jumps to (always forward; a target in the past is no jump).
#[derive(Debug, Clone)]
pub enum Jump {
    Millis(u32),
    Minutes(u32),
    /// A contact's last inbound + one of `window_edges`.
    WindowEdge {
        contact: usize,
        edge: usize,
    },
    /// A message's retry due time + `offset` ms.
    RetryEdge {
        message: usize,
        offset: i64,
    },
    /// A claim's start + the in-doubt timeout + `offset` ms.
    InDoubtEdge {
        message: usize,
        offset: i64,
    },
    /// The oldest reach still counted + 24 h + `offset` ms.
    TierEdge {
        offset: i64,
    },
}

#[derive(Debug, Clone)]
pub enum Step {
    /// An opt-in recorded through the API (any source, `keyword` included: it must be refused),
    /// with its evidence dated per `EVIDENCE_AT`.
    OptIn {
        contact: usize,
        source: usize,
        evidence_at: usize,
    },
    /// A message from an identity to one of our numbers (`sender` 2: one to each), written
    /// `INBOUND_AGES[age]` before it arrives.
    Inbound {
        contact: usize,
        sender: usize,
        kind: usize,
        text: usize,
        age: usize,
        /// Written 1 ms before the provider last reported this window closed (when it did, and
        /// within the retry horizon), instead of `age`: a late delivery that must not reopen it.
        before_report: bool,
    },
    /// A message typed in a group chat.
    Group {
        contact: usize,
        kind: usize,
        text: usize,
    },
    /// The provider says two identities are one person.
    Link {
        contact: usize,
        other: usize,
        source: usize,
    },
    /// A sender is registered again (maybe with another portfolio).
    Reregister {
        sender: usize,
        portfolio: usize,
    },
    OperatorOptOut {
        contact: usize,
    },
    /// Consent capture: an operator creates a campaign for a sender (`code_alone`: a QR code
    /// campaign, whose prefilled message opts in by itself; otherwise a web form's).
    Campaign {
        sender: usize,
        code_alone: bool,
    },
    /// Someone submits a campaign's hosted page: a pending opt-in.
    PageOptIn {
        campaign: usize,
        contact: usize,
    },
    /// Someone sends a campaign's prefilled message to `sender`, written now or (`late`) 1 s
    /// before their newest opt-out.
    CodeMessage {
        campaign: usize,
        contact: usize,
        sender: usize,
        late: bool,
    },
    CloseCampaign {
        campaign: usize,
    },
    /// An operator or a webhook (Meta's `user_preferences`) raises or clears a flag.
    Flag {
        contact: usize,
        flag: usize,
        raised: bool,
    },
    TemplateApproval {
        template: usize,
        status: usize,
    },
    Sender {
        sender: usize,
        authorize: bool,
    },
    /// Meta reports a number's quality (a drop, or a recovery).
    Quality {
        sender: usize,
        dropped: bool,
    },
    /// Meta moves a template to another category.
    Category {
        template: usize,
        marketing: bool,
    },
    SetLimit {
        limit: usize,
    },
    SendTemplate {
        sender: usize,
        to: usize,
        template: usize,
        variables: usize,
        workflow: usize,
    },
    SendFreeform {
        sender: usize,
        to: usize,
        workflow: usize,
    },
    /// The agent answers the newest inbound with freeform text, from the number it was written
    /// to (or, with `other_sender`, from the other number: the window is per sender).
    Reply {
        other_sender: bool,
        workflow: usize,
        /// Dispatch it at once, and the provider refuses it as outside the window (its clock
        /// is not ours): the report closes that sender's window.
        provider_says_closed: bool,
    },
    /// Claims the `back`-th most recent message (recent ones are the interesting ones).
    Claim {
        back: usize,
    },
    /// Reports the outcome of the `back`-th most recently dispatched message's open attempt.
    /// Claims one of the messages waiting for a claim (allowed, not yet dispatched): these are
    /// the ones whose world may have changed since their decision.
    ClaimPending {
        index: usize,
    },
    Outcome {
        back: usize,
        outcome: usize,
        jitter_ms: i64,
    },
    Callback {
        message: usize,
        status: usize,
        code: usize,
    },
    /// Delivers an earlier callback again (providers retry and reorder).
    RepeatCallback {
        back: usize,
    },
    ExpireInDoubt {
        message: usize,
    },
    Advance(Jump),
}

/// The world's starting configuration.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Whether the Cloud API sender is authorized too from the start (the window per sender
    /// needs two senders that may send).
    pub second_sender: bool,
    pub margin_minutes: i64,
    pub default_limit: u32,
    pub approved: [bool; 2],
}

// ---------------------------------------------------------------------------------------------
// What the properties look at

/// A gate decision (a send, or a claim that reached the gates) and the reference's answer.
#[derive(Debug, Clone)]
pub struct Decision {
    pub what: String,
    pub at: Timestamp,
    /// `None`: allowed; otherwise the named rule and the others listed.
    pub refused: Option<(RuleId, Vec<RuleId>)>,
    /// Every rule the reference says is broken, in table order.
    pub reference: Vec<RuleId>,
}

/// A claim's claimability (phase) as the domain and the reference see it.
#[derive(Debug, Clone)]
pub struct Claimability {
    pub message: MessageId,
    pub at: Timestamp,
    pub domain: Result<(), String>,
    pub reference: bool,
}

/// A command the domain may refuse with an error (an API opt-in, an inbound's provider time):
/// what it answered and whether the reference expected it to be accepted.
#[derive(Debug, Clone)]
pub struct Answer {
    pub what: String,
    pub domain: Result<(), String>,
    pub reference: bool,
}

/// After a step, an identity whose own consent the domain and the reference disagree on.
#[derive(Debug, Clone)]
pub struct ConsentMismatch {
    pub after: String,
    pub contact: ContactId,
    pub domain: &'static str,
    pub reference: &'static str,
}

/// A callback delivered again: what the domain emitted and whether the state changed.
#[derive(Debug, Clone)]
pub struct Redelivery {
    pub callback: RecordStatus,
    pub emitted: Vec<Event>,
    pub state_changed: bool,
}

/// A status change of a message, as folded by the domain.
#[derive(Debug, Clone)]
pub struct Transition {
    pub message: MessageId,
    pub event: &'static str,
    pub from: MessageStatus,
    pub to: MessageStatus,
}

#[derive(Debug, Clone)]
pub struct World {
    pub policy: Policy,
    pub now: Timestamp,
    pub log: Vec<Event>,
    pub contacts: BTreeMap<ContactId, ContactState>,
    pub messages: BTreeMap<MessageId, MessageState>,
    pub senders: BTreeMap<WhatsAppAddress, SenderState>,
    pub templates: BTreeMap<TemplateId, TemplateState>,
    pub portfolios: BTreeMap<PortfolioId, PortfolioState>,
    /// Every message a send was decided for, allowed or refused, in order.
    pub message_ids: Vec<MessageId>,
    /// Messages claimed at least once: the only ones a provider can call back about.
    pub dispatched: Vec<MessageId>,
    pub callbacks: Vec<RecordStatus>,
    pub reference: Reference,
    pub decisions: Vec<Decision>,
    pub claimability: Vec<Claimability>,
    pub redeliveries: Vec<Redelivery>,
    pub transitions: Vec<Transition>,
    pub api_opt_ins: Vec<Answer>,
    pub inbound_times: Vec<Answer>,
    pub consent_mismatches: Vec<ConsentMismatch>,
    /// The consent wording every API opt-in and campaign cites, published in [`World::new`].
    pub wording: wagate_domain::ConsentState,
    /// Campaign codes in creation order, and each campaign's stream.
    pub campaign_codes: Vec<String>,
    pub campaigns: BTreeMap<String, wagate_domain::ConsentState>,
    /// Each identity's `consent-requests` stream (pending page opt-ins).
    pub requests: BTreeMap<ContactId, wagate_domain::ConsentState>,
    /// Page submissions: recorded by the domain, and whether the reference expected it.
    pub page_opt_ins: Vec<Answer>,
    next_id: u64,
}

impl World {
    pub fn new(setup: &Setup) -> Self {
        let policy = Policy {
            window_safety_margin: TimeDelta::minutes(setup.margin_minutes),
            default_messaging_limit: MessagingLimit::Limited(setup.default_limit),
            ..Policy::default()
        };
        let mut world = Self {
            policy,
            now: t0(),
            log: Vec::new(),
            contacts: BTreeMap::new(),
            messages: BTreeMap::new(),
            senders: BTreeMap::new(),
            templates: BTreeMap::new(),
            portfolios: BTreeMap::new(),
            message_ids: Vec::new(),
            dispatched: Vec::new(),
            callbacks: Vec::new(),
            reference: Reference::new(TimeDelta::minutes(setup.margin_minutes)),
            decisions: Vec::new(),
            claimability: Vec::new(),
            redeliveries: Vec::new(),
            transitions: Vec::new(),
            api_opt_ins: Vec::new(),
            inbound_times: Vec::new(),
            consent_mismatches: Vec::new(),
            wording: wagate_domain::ConsentState::default(),
            campaign_codes: Vec::new(),
            campaigns: BTreeMap::new(),
            requests: BTreeMap::new(),
            page_opt_ins: Vec::new(),
            next_id: 0,
        };
        let now = world.now;
        let events = wagate_domain::consent::publish_wording(
            &world.wording,
            &wagate_domain::consent::PublishWording {
                business: "Acme".into(),
                language: "en".into(),
                text: "I agree to receive WhatsApp messages from Acme.".into(),
            },
            now,
        )
        .expect("publishes");
        world.append(&events);
        for (index, (_, provider)) in SENDERS.iter().enumerate() {
            let address = sender_address(index);
            let command = decide::RegisterSender {
                sender: address.clone(),
                provider: *provider,
                portfolio: portfolio_id(),
                rate: Default::default(),
                meta_phone_number_id: (*provider == ProviderKind::Meta)
                    .then(|| "109876543210".to_owned()),
            };
            let events =
                decide::register_sender(&world.sender(&address), &command, now).expect("registers");
            world.append(&events);
        }
        world.set_sender(0, true);
        if setup.second_sender {
            world.set_sender(1, true);
        }
        for (index, (name, category, placeholders)) in TEMPLATES.iter().enumerate().take(2) {
            let id = template_id(index);
            let command = decide::RegisterTemplate {
                template: id.clone(),
                name: (*name).to_owned(),
                language: "en".into(),
                category: *category,
                placeholders: placeholders.iter().map(|p| (*p).to_owned()).collect(),
            };
            let events =
                decide::register_template(&world.template(&id), &command, now).expect("registers");
            world.append(&events);
            if setup.approved[index] {
                let events = decide::set_template_status(
                    &world.template(&id),
                    &id,
                    ApprovalStatus::Approved,
                    "setup",
                    now,
                )
                .expect("registered");
                world.append(&events);
            }
        }
        world
    }

    // -- folding ---------------------------------------------------------------------------

    /// Appends events to the log and folds each into its aggregate, one at a time.
    pub fn append(&mut self, events: &[Event]) {
        for event in events {
            self.log.push(event.clone());
            self.reference.apply(event);
            match event {
                Event::Contact(e) => {
                    let state = self.contacts.remove(e.contact()).unwrap_or_default();
                    self.contacts.insert(e.contact().clone(), state.apply(e));
                }
                Event::Message(e) => {
                    if let Some(id) = e.message_id() {
                        let state = self.messages.remove(&id).unwrap_or_default();
                        let from = state.status.clone();
                        let state = state.apply(e);
                        if state.status != from {
                            self.transitions.push(Transition {
                                message: id,
                                event: event.type_name(),
                                from,
                                to: state.status.clone(),
                            });
                        }
                        self.messages.insert(id, state);
                    }
                }
                Event::Sender(e) => {
                    let state = self.senders.remove(e.sender()).unwrap_or_default();
                    self.senders.insert(e.sender().clone(), state.apply(e));
                }
                Event::Template(e) => {
                    let state = self.templates.remove(e.template()).unwrap_or_default();
                    self.templates.insert(e.template().clone(), state.apply(e));
                }
                Event::Portfolio(e) => {
                    let state = self.portfolios.remove(e.portfolio()).unwrap_or_default();
                    self.portfolios
                        .insert(e.portfolio().clone(), state.apply(e));
                }
                Event::Provider(_) => {}
                // The review queue's bookkeeping: the world's decisions never read it.
                Event::Review(_) => {}
                // Consent capture: its confirmations are ordinary `OptedIn` events; the
                // wording is kept because API opt-ins cite it.
                Event::Consent(e) => match e {
                    ConsentEvent::WordingPublished { .. } => {
                        self.wording = self.wording.clone().apply(e);
                    }
                    ConsentEvent::CampaignCreated { campaign, .. }
                    | ConsentEvent::CampaignClosed { campaign, .. } => {
                        let state = self.campaigns.remove(campaign).unwrap_or_default();
                        self.campaigns.insert(campaign.clone(), state.apply(e));
                    }
                    ConsentEvent::OptInRequested { contact, .. }
                    | ConsentEvent::ConfirmationSent { contact, .. } => {
                        let state = self.requests.remove(contact).unwrap_or_default();
                        self.requests.insert(contact.clone(), state.apply(e));
                    }
                },
                // A campaign's rows are ordinary sends (the world generates no campaign commands).
                Event::Endpoint(_) | Event::Campaign(_) => {}
            }
        }
    }

    pub fn contact(&self, id: Option<&ContactId>) -> ContactState {
        id.and_then(|id| self.contacts.get(id))
            .cloned()
            .unwrap_or_default()
    }

    pub fn sender(&self, address: &WhatsAppAddress) -> SenderState {
        self.senders.get(address).cloned().unwrap_or_default()
    }

    pub fn template(&self, id: &TemplateId) -> TemplateState {
        self.templates.get(id).cloned().unwrap_or_default()
    }

    fn portfolio_of(&self, sender: &SenderState) -> PortfolioState {
        sender
            .registration
            .as_ref()
            .and_then(|r| self.portfolios.get(&r.portfolio))
            .cloned()
            .unwrap_or_default()
    }

    fn pick<T: Copy>(items: &[T], index: usize) -> Option<T> {
        (!items.is_empty()).then(|| items[index % items.len()])
    }

    fn next_message_id(&mut self) -> MessageId {
        self.next_id += 1;
        MessageId::parse(&format!("01900000-0000-7000-8000-{:012x}", self.next_id))
            .expect("valid v7 id")
    }

    fn provider_of(&self, message: &MessageState) -> ProviderKind {
        message
            .intent
            .as_ref()
            .and_then(|intent| self.sender(&intent.sender).registration)
            .map_or(ProviderKind::Twilio, |r| r.provider)
    }

    fn wording_version(&self) -> String {
        self.wording
            .wording
            .as_ref()
            .map_or_else(String::new, |w| w.version.clone())
    }

    fn campaign_code(&self, index: usize) -> Option<String> {
        (!self.campaign_codes.is_empty())
            .then(|| self.campaign_codes[index % self.campaign_codes.len()].clone())
    }

    /// As the hub does with a signed inbound carrying a campaign code: the inbound, then (in
    /// the same append) the opt-in it confirms, decided on the contact as the inbound left it.
    fn code_message(&mut self, code: &str, id: &ContactId, sender: usize, late: bool) {
        let now = self.now;
        let to = sender_address(sender % SENDERS.len());
        let provider_at = self
            .reference
            .last_opt_out(id)
            .filter(|_| late)
            .map(|stop| stop - TimeDelta::seconds(1))
            .filter(|written| now - *written < TimeDelta::days(7));
        let command = ReceiveInbound {
            contact: id.clone(),
            sender: Some(to.clone()),
            provider_ref: None,
            kind: "text".into(),
            text: consent::prefilled_message("Acme", code),
            provider_at,
            details: Vec::new(),
        };
        let Ok(events) = decide::inbound(&self.contact(Some(id)), &command, &self.policy, now)
        else {
            return;
        };
        self.append(&events);
        let written = wagate_domain::contact::written_at(provider_at, now);
        self.reference.code_message(id, code, &to, written);
        let campaign = self.campaigns[code].campaign.clone().expect("created");
        let wording = self.wording.wording.clone().expect("published");
        let requests = self.requests.get(id).cloned().unwrap_or_default();
        let message = consent::CodeMessage {
            contact: id.clone(),
            to: Some(to),
            message_ref: format!("wamid.{}", self.log.len()),
            written_at: written,
        };
        if let Ok(events) = consent::confirm(
            &campaign,
            &wording,
            &requests,
            &self.contact(Some(id)),
            &message,
            now,
        ) {
            self.append(&events);
        }
    }

    // -- steps -----------------------------------------------------------------------------

    pub fn run(&mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
            self.compare_consent(step);
        }
    }

    /// Each identity's own consent, as the domain folded it and as the reference derived it
    /// from the inputs (the inbound texts and times, the API and operator commands).
    fn compare_consent(&mut self, step: &Step) {
        for index in 0..IDENTITIES.len() {
            let id = identity(index);
            let state = self.contact(Some(&id));
            let domain = if state.is_opted_out() {
                "opted out"
            } else if state.is_opted_in() {
                "opted in"
            } else {
                "unknown"
            };
            let reference = match self.reference.consent(&id) {
                Some(RefConsent::Out) => "opted out",
                Some(RefConsent::In) => "opted in",
                None => "unknown",
            };
            if domain != reference {
                self.consent_mismatches.push(ConsentMismatch {
                    after: format!("{step:?} at {}", self.now),
                    contact: id,
                    domain,
                    reference,
                });
            }
        }
    }

    /// The states of every identity linked to `id`, directly or through others (as the hub
    /// loads them), `id` itself excluded.
    fn linked_states(&self, id: &ContactId) -> Vec<ContactState> {
        let mut seen = vec![id.clone()];
        let mut next = 0;
        while next < seen.len() {
            let state = self.contact(Some(&seen[next]));
            for other in &state.linked {
                if !seen.contains(other) {
                    seen.push(other.clone());
                }
            }
            next += 1;
        }
        seen.iter()
            .skip(1)
            .map(|other| self.contact(Some(other)))
            .collect()
    }

    pub fn step(&mut self, step: &Step) {
        let now = self.now;
        match step {
            Step::OptIn {
                contact,
                source,
                evidence_at,
            } => {
                let id = identity(*contact);
                let source = OptInSource::ALL[*source % OptInSource::ALL.len()];
                let stop = self.reference.last_opt_out(&id);
                let second = TimeDelta::seconds(1);
                let evidence_at = match EVIDENCE_AT[*evidence_at % EVIDENCE_AT.len()] {
                    "absent" => None,
                    "now" => Some(now),
                    "before_stop" => Some(stop.unwrap_or(now) - second),
                    "at_stop" => Some(stop.unwrap_or(now)),
                    "after_stop" => Some(stop.map_or(now, |s| s + TimeDelta::milliseconds(1))),
                    _ => Some(now + second),
                };
                let command = RecordOptIn {
                    contact: id.clone(),
                    source,
                    evidence: "https://acme.example/form".into(),
                    recorded_by: "operator".into(),
                    wording_version: self
                        .wording
                        .wording
                        .as_ref()
                        .map_or_else(String::new, |w| w.version.clone()),
                    evidence_at,
                };
                let expected = self
                    .reference
                    .api_opt_in_allowed(&id, source, evidence_at, now);
                let result = decide::opt_in(&self.contact(Some(&id)), &self.wording, &command, now);
                self.api_opt_ins.push(Answer {
                    what: format!("{command:?} at {now}"),
                    domain: result.as_ref().map(|_| ()).map_err(ToString::to_string),
                    reference: expected,
                });
                if let Ok(events) = result {
                    self.append(&events);
                }
            }
            Step::Inbound {
                contact,
                sender,
                kind,
                text,
                age,
                before_report,
            } => {
                // A late delivery written just before the newest window report, to the window
                // it reported on.
                let newest_report = self.log.iter().rev().find_map(|event| match event {
                    Event::Contact(wagate_domain::ContactEvent::WindowReportedClosed {
                        contact,
                        sender: Some(sender),
                        ..
                    }) => Some((contact.clone(), sender.clone())),
                    _ => None,
                });
                let (id, senders) = match newest_report.filter(|_| *before_report) {
                    Some((id, sender)) => (id, vec![sender]),
                    // Index 2: the person writes to both numbers.
                    None if *sender >= SENDERS.len() => (
                        identity(*contact),
                        (0..SENDERS.len()).map(sender_address).collect(),
                    ),
                    None => (identity(*contact), vec![sender_address(*sender)]),
                };
                for sender in senders {
                    let report = self
                        .reference
                        .window_reported_closed(&sender, &id)
                        .map(|at| at - TimeDelta::milliseconds(1))
                        .filter(|at| now - *at < TimeDelta::days(7) && *before_report);
                    let provider_at = report.or_else(|| {
                        INBOUND_AGES[*age % INBOUND_AGES.len()]
                            .map(|seconds| now - TimeDelta::seconds(seconds))
                    });
                    let command = ReceiveInbound {
                        contact: id.clone(),
                        sender: Some(sender),
                        provider_ref: None,
                        kind: INBOUND_KINDS[*kind % INBOUND_KINDS.len()].into(),
                        text: TEXTS[*text % TEXTS.len()].into(),
                        provider_at,
                        details: Vec::new(),
                    };
                    let expected = !self.reference.provider_time_refused(provider_at, now);
                    let result =
                        decide::inbound(&self.contact(Some(&id)), &command, &self.policy, now);
                    self.inbound_times.push(Answer {
                        what: format!("inbound written {provider_at:?}, received {now}"),
                        domain: result.as_ref().map(|_| ()).map_err(ToString::to_string),
                        reference: expected,
                    });
                    if let Ok(events) = result {
                        self.append(&events);
                    }
                }
            }
            Step::Group {
                contact,
                kind,
                text,
            } => {
                let id = identity(*contact);
                let command = ReceiveGroupMessage {
                    contact: id.clone(),
                    group: "120363000000000001".into(),
                    sender: Some(sender_address(1)),
                    provider_ref: None,
                    kind: INBOUND_KINDS[*kind % INBOUND_KINDS.len()].into(),
                    text: TEXTS[*text % TEXTS.len()].into(),
                };
                let events = decide::group_inbound(&self.contact(Some(&id)), &command, now);
                self.append(&events);
            }
            Step::Link {
                contact,
                other,
                source,
            } => {
                let command = LinkIdentities {
                    contact: identity(*contact),
                    other: identity(*other),
                    source: IdentitySource::ALL[*source % IdentitySource::ALL.len()],
                };
                let events =
                    decide::link_identities(&self.contact(Some(&command.contact)), &command, now);
                self.append(&events);
            }
            Step::Reregister { sender, portfolio } => {
                let index = *sender % SENDERS.len();
                let address = sender_address(index);
                let provider = SENDERS[index].1;
                let command = decide::RegisterSender {
                    sender: address.clone(),
                    provider,
                    portfolio: PortfolioId::parse(PORTFOLIOS[*portfolio % PORTFOLIOS.len()])
                        .expect("valid portfolio"),
                    rate: Default::default(),
                    meta_phone_number_id: (provider == ProviderKind::Meta)
                        .then(|| "109876543210".to_owned()),
                };
                let events = decide::register_sender(&self.sender(&address), &command, now)
                    .expect("a complete registration");
                self.append(&events);
            }
            Step::OperatorOptOut { contact } => {
                let id = identity(*contact);
                let command = RecordOptOut {
                    contact: id.clone(),
                    source: OptOutSource::Operator,
                    detail: "reviewed".into(),
                };
                let events = decide::opt_out(&self.contact(Some(&id)), &command, now);
                self.append(&events);
            }
            Step::Campaign { sender, code_alone } => {
                let code = format!("WG-CAMP{}", self.campaign_codes.len());
                let command = consent::CreateCampaign {
                    code: code.clone(),
                    sender: sender_address(*sender % SENDERS.len()),
                    wording_version: self.wording_version(),
                    workflows: vec![Workflow::parse("lead_qualification").expect("valid workflow")],
                    medium: if *code_alone {
                        CampaignMedium::QrCode
                    } else {
                        CampaignMedium::WebForm
                    },
                    confirmation_template: None,
                };
                let events = consent::create_campaign(&self.wording, true, None, &command, now)
                    .expect("a complete campaign");
                self.campaign_codes.push(code);
                self.append(&events);
            }
            Step::PageOptIn { campaign, contact } => {
                if let Some(code) = self.campaign_code(*campaign) {
                    let id = identity(*contact);
                    let result = consent::request_opt_in(
                        &self.campaigns[&code],
                        &self.wording,
                        &consent::RequestOptIn {
                            contact: id.clone(),
                            evidence: "ip 192.0.2.1".into(),
                        },
                        now,
                    );
                    self.page_opt_ins.push(Answer {
                        what: format!("page of {code} for {id} at {now}"),
                        domain: result.as_ref().map(|_| ()).map_err(ToString::to_string),
                        reference: self.reference.page_records(&code),
                    });
                    if let Ok(events) = result {
                        self.append(&events);
                    }
                }
            }
            Step::CodeMessage {
                campaign,
                contact,
                sender,
                late,
            } => {
                if let Some(code) = self.campaign_code(*campaign) {
                    self.code_message(&code, &identity(*contact), *sender, *late);
                }
            }
            Step::CloseCampaign { campaign } => {
                if let Some(code) = self.campaign_code(*campaign) {
                    let events = consent::close_campaign(&self.campaigns[&code], &code, now)
                        .expect("an existing campaign");
                    self.append(&events);
                }
            }
            Step::Flag {
                contact,
                flag,
                raised,
            } => {
                let id = identity(*contact);
                let command = SetContactFlag {
                    contact: id.clone(),
                    flag: ContactFlag::ALL[*flag % ContactFlag::ALL.len()],
                    raised: *raised,
                    reason: "operator".into(),
                };
                let events = decide::set_contact_flag(&self.contact(Some(&id)), &command, now);
                self.append(&events);
            }
            Step::TemplateApproval { template, status } => {
                let id = template_id(*template % TEMPLATES.len());
                let status = APPROVALS[*status % APPROVALS.len()];
                // The never-registered template cannot change status: NotFound, nothing appended.
                if let Ok(events) =
                    decide::set_template_status(&self.template(&id), &id, status, "meta", now)
                {
                    self.append(&events);
                }
            }
            Step::Sender { sender, authorize } => {
                self.set_sender(*sender % SENDERS.len(), *authorize)
            }
            Step::Quality { sender, dropped } => {
                let address = sender_address(*sender % SENDERS.len());
                let event = if *dropped { "FLAGGED" } else { "UNFLAGGED" };
                let events = decide::report_sender_quality(
                    &self.sender(&address),
                    &address,
                    event,
                    *dropped,
                    now,
                );
                self.append(&events);
            }
            Step::Category {
                template,
                marketing,
            } => {
                let id = template_id(*template % TEMPLATES.len());
                let category = if *marketing {
                    TemplateCategory::Marketing
                } else {
                    TemplateCategory::Utility
                };
                let events =
                    decide::report_template_category(&self.template(&id), &id, category, "", now);
                self.append(&events);
            }
            Step::SetLimit { limit } => {
                let portfolio = portfolio_id();
                let state = self.portfolios.get(&portfolio).cloned().unwrap_or_default();
                let events = decide::set_messaging_limit(
                    &state,
                    &portfolio,
                    LIMITS[*limit % LIMITS.len()],
                    now,
                );
                self.append(&events);
            }
            Step::SendTemplate {
                sender,
                to,
                template,
                variables,
                workflow,
            } => {
                let content = SendContent::Template {
                    template: template_id(*template % TEMPLATES.len()),
                    variables: VARIABLES[*variables % VARIABLES.len()]
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    media: Vec::new(),
                };
                self.send(*sender, *to, *workflow, content);
            }
            Step::SendFreeform {
                sender,
                to,
                workflow,
            } => {
                let content = SendContent::Freeform {
                    text: "Thursday 10:00 works".into(),
                };
                self.send(*sender, *to, *workflow, content);
            }
            Step::Reply {
                other_sender,
                workflow,
                provider_says_closed,
            } => {
                let newest = self.log.iter().rev().find_map(|event| match event {
                    Event::Contact(wagate_domain::ContactEvent::InboundReceived {
                        contact,
                        sender: Some(sender),
                        ..
                    }) => Some((contact.to_string(), sender.clone())),
                    _ => None,
                });
                let Some((contact, sender)) = newest else {
                    return;
                };
                let (Some(to), Some(mut from)) = (
                    RECIPIENTS.iter().position(|r| *r == contact),
                    (0..SENDERS.len()).find(|i| sender_address(*i) == sender),
                ) else {
                    return;
                };
                if *other_sender {
                    from = (from + 1) % SENDERS.len();
                }
                let content = SendContent::Freeform {
                    text: "Thursday 10:00 works".into(),
                };
                self.send(from, to, *workflow, content);
                if *provider_says_closed {
                    let id = *self.message_ids.last().expect("just decided");
                    self.claim(id);
                    if self.dispatched.contains(&id) {
                        self.outcome(id, WINDOW_CLOSED_OUTCOME, TimeDelta::zero());
                    }
                }
            }
            Step::Claim { back } => {
                let ids = &self.message_ids;
                if let Some(id) = ids
                    .len()
                    .checked_sub(1 + back % ids.len().max(1))
                    .map(|index| ids[index])
                {
                    self.claim(id);
                }
            }
            Step::ClaimPending { index } => {
                let pending: Vec<MessageId> = self
                    .message_ids
                    .iter()
                    .copied()
                    .filter(|id| {
                        self.messages.get(id).is_some_and(|m| {
                            matches!(m.phase(), wagate_domain::DispatchPhase::Pending { .. })
                        })
                    })
                    .collect();
                if let Some(id) = Self::pick(&pending, *index) {
                    self.claim(id);
                }
            }
            Step::Outcome {
                back,
                outcome,
                jitter_ms,
            } => {
                let ids = &self.dispatched;
                if let Some(id) = ids
                    .len()
                    .checked_sub(1 + back % ids.len().max(1))
                    .map(|index| ids[index])
                {
                    self.outcome(id, *outcome, TimeDelta::milliseconds(*jitter_ms));
                }
            }
            Step::Callback {
                message,
                status,
                code,
            } => {
                if let Some(id) = Self::pick(&self.dispatched, *message) {
                    let state = self.messages.get(&id).cloned().unwrap_or_default();
                    let command = RecordStatus {
                        message_id: id,
                        provider: self.provider_of(&state),
                        provider_ref: Some(provider_ref(id)),
                        status: MessageStatus::parse(
                            CALLBACK_STATUSES[*status % CALLBACK_STATUSES.len()],
                        ),
                        error_code: window_closed_code(
                            self.provider_of(&state),
                            CALLBACK_CODES[*code % CALLBACK_CODES.len()],
                        ),
                        details: Vec::new(),
                        pricing: None,
                    };
                    self.callback(command);
                }
            }
            Step::RepeatCallback { back } => {
                if let Some(command) = self
                    .callbacks
                    .len()
                    .checked_sub(1 + back % self.callbacks.len().max(1))
                    .and_then(|index| self.callbacks.get(index))
                    .cloned()
                {
                    self.callback(command);
                }
            }
            Step::ExpireInDoubt { message } => {
                if let Some(id) = Self::pick(&self.dispatched, *message) {
                    let state = self.messages.get(&id).cloned().unwrap_or_default();
                    let events = decide::expire_in_doubt(&state, &self.policy, now);
                    self.append(&events);
                }
            }
            Step::Advance(jump) => self.advance(jump),
        }
    }

    fn set_sender(&mut self, index: usize, authorize: bool) {
        let address = sender_address(index);
        let state = self.sender(&address);
        let result = if authorize {
            decide::authorize_sender(&state, &address, "operator", self.now)
        } else {
            decide::suspend_sender(&state, &address, "operator hold", self.now)
        };
        let events = result.expect("registered sender");
        self.append(&events);
    }

    fn send(&mut self, sender: usize, to: usize, workflow: usize, content: SendContent) {
        let now = self.now;
        let recipient = RECIPIENTS[to % RECIPIENTS.len()];
        let command = SendMessage {
            message_id: self.next_message_id(),
            sender: sender_address(sender % SENDERS.len()),
            to: Recipient::parse(recipient),
            workflow: WORKFLOWS[workflow % WORKFLOWS.len()].map(str::to_owned),
            content,
        };
        let sender_state = self.sender(&command.sender);
        let contact = self.contact(contact_of(recipient).as_ref());
        let linked = contact_of(recipient)
            .map(|id| self.linked_states(&id))
            .unwrap_or_default();
        let template = match &command.content {
            SendContent::Template { template, .. } => self.template(template),
            SendContent::Freeform { .. } | SendContent::Rich(_) => TemplateState::default(),
        };
        let portfolio = self.portfolio_of(&sender_state);
        let state = SendState {
            sender: &sender_state,
            contact: &contact,
            linked: &linked,
            template: &template,
            portfolio: &portfolio,
            confirmation: None,
        };
        let reference = self.reference.broken(
            &command.sender,
            recipient,
            &command.content,
            command.workflow.as_deref(),
            &self.policy,
            now,
        );
        let decision = decide::send(&state, &command, &self.policy, now);
        self.decisions.push(Decision {
            what: format!("send {} to {}", kind_of(&command.content), command.to),
            at: now,
            refused: decision.refusal().map(|r| (r.rule, r.also_broken.clone())),
            reference,
        });
        self.append(decision.events());
        self.message_ids.push(command.message_id);
    }

    fn claim(&mut self, id: MessageId) {
        let now = self.now;
        let message = self.messages.get(&id).cloned().unwrap_or_default();
        let linked = message
            .intent
            .as_ref()
            .map(|intent| self.linked_states(&intent.contact))
            .unwrap_or_default();
        let (sender_state, contact, template) = match &message.intent {
            Some(intent) => {
                let template = match &intent.content {
                    wagate_domain::MessageContent::Template { template, .. } => {
                        self.template(template)
                    }
                    wagate_domain::MessageContent::Freeform { .. }
                    | wagate_domain::MessageContent::Rich(_) => TemplateState::default(),
                };
                (
                    self.sender(&intent.sender),
                    self.contact(Some(&intent.contact)),
                    template,
                )
            }
            None => Default::default(),
        };
        let portfolio = self.portfolio_of(&sender_state);
        let state = SendState {
            sender: &sender_state,
            contact: &contact,
            linked: &linked,
            template: &template,
            portfolio: &portfolio,
            confirmation: None,
        };
        let claimable = self.reference.claimable(id, &self.policy, now);
        let reference = self.reference.broken_at_claim(id, &self.policy, now);
        let result = decide::claim(
            &message,
            &state,
            &ClaimDispatch { message_id: id },
            &self.policy,
            now,
        );
        self.claimability.push(Claimability {
            message: id,
            at: now,
            domain: result.as_ref().map(|_| ()).map_err(ToString::to_string),
            reference: claimable,
        });
        let Ok(decision) = result else {
            return;
        };
        let (refused, events) = match decision {
            ClaimDecision::Claimed { events, .. } => {
                if !self.dispatched.contains(&id) {
                    self.dispatched.push(id);
                }
                (None, events)
            }
            ClaimDecision::Refused { refusal, events } => {
                (Some((refusal.rule, refusal.also_broken)), events)
            }
        };
        if let Some(reference) = reference {
            self.decisions.push(Decision {
                what: format!("claim {id}"),
                at: now,
                refused,
                reference,
            });
        }
        self.append(&events);
    }

    fn outcome(&mut self, id: MessageId, outcome: usize, jitter: TimeDelta) {
        let message = self.messages.get(&id).cloned().unwrap_or_default();
        let provider = self.provider_of(&message);
        let codes: &[u32] = match provider {
            ProviderKind::Meta => &META_CODES,
            ProviderKind::Twilio | ProviderKind::Sandbox => &TWILIO_CODES,
        };
        let error = |code: Option<u32>, http: Option<u16>| DispatchOutcome::Rejected {
            error: ProviderError {
                provider,
                code,
                http_status: http,
                message: "provider error".into(),
            },
        };
        let outcome = match outcome % (codes.len() + 6) {
            0 => DispatchOutcome::Accepted {
                provider_ref: provider_ref(id),
                provider_status: MessageStatus::Queued,
                recipient: None,
            },
            1 => DispatchOutcome::Accepted {
                provider_ref: provider_ref(id),
                provider_status: MessageStatus::Accepted,
                recipient: None,
            },
            2 => DispatchOutcome::Transport {
                provider,
                message: "timeout".into(),
            },
            3 => error(None, Some(503)),
            4 => error(None, Some(400)),
            // The provider says the window is closed (its own code): the window per sender
            // needs reports, and among all codes this one would be rare.
            WINDOW_CLOSED_OUTCOME => error(window_closed_code(provider, Some(63016)), Some(400)),
            n => error(Some(codes[n - 6]), Some(400)),
        };
        let command = RecordOutcome {
            message_id: id,
            attempt: message.attempts,
            outcome,
            jitter,
        };
        if let Ok(events) = decide::record_outcome(&message, &command, &[], &self.policy, self.now)
        {
            self.append(&events);
        }
    }

    fn callback(&mut self, command: RecordStatus) {
        let before = self
            .messages
            .get(&command.message_id)
            .cloned()
            .unwrap_or_default();
        let events = decide::record_status(&before, &command, self.now);
        // Whether this exact observation was seen before, from the log alone.
        let seen_before = self.log.iter().any(|event| {
            matches!(event, Event::Message(MessageEvent::StatusChanged { message_id, status, error_code, .. })
                if *message_id == command.message_id
                    && *status == command.status
                    && *error_code == command.error_code)
        });
        if seen_before {
            let after = wagate_domain::MessageState::replay(
                before.clone(),
                events.iter().filter_map(|e| match e {
                    Event::Message(m) => Some(m),
                    _ => None,
                }),
            );
            self.redeliveries.push(Redelivery {
                callback: command.clone(),
                emitted: events.clone(),
                state_changed: after != before,
            });
        }
        self.append(&events);
        self.callbacks.push(command.clone());
        // And the same callback again, at once: a duplicate delivery.
        let before = self
            .messages
            .get(&command.message_id)
            .cloned()
            .unwrap_or_default();
        let again = decide::record_status(&before, &command, self.now);
        let after = wagate_domain::MessageState::replay(
            before.clone(),
            again.iter().filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            }),
        );
        self.redeliveries.push(Redelivery {
            callback: command,
            emitted: again.clone(),
            state_changed: after != before,
        });
        self.append(&again);
    }

    fn advance(&mut self, jump: &Jump) {
        let ms = TimeDelta::milliseconds;
        let target = match jump {
            Jump::Millis(n) => Some(self.now + ms(i64::from(*n))),
            Jump::Minutes(n) => Some(self.now + TimeDelta::minutes(i64::from(*n))),
            Jump::WindowEdge { contact, edge } => {
                let id = identity(*contact % 3);
                let edges = window_edges(self.policy.window_safety_margin);
                self.reference
                    .last_inbound(&id)
                    .map(|last| last + edges[*edge % edges.len()])
            }
            Jump::RetryEdge { message, offset } => Self::pick(&self.dispatched, *message)
                .and_then(|id| self.messages.get(&id))
                .and_then(|m| m.retry_at)
                .map(|due| due + ms(*offset)),
            Jump::InDoubtEdge { message, offset } => Self::pick(&self.dispatched, *message)
                .and_then(|id| self.messages.get(&id))
                .and_then(|m| m.claimed_at)
                .map(|since| since + self.policy.in_doubt_timeout + ms(*offset)),
            Jump::TierEdge { offset } => self
                .reference
                .oldest_reach_within(self.now)
                .map(|at| at + TimeDelta::hours(24) + ms(*offset)),
        };
        if let Some(target) = target.filter(|t| *t > self.now) {
            self.now = target;
        }
    }
}

/// The `outcome` index of the provider's window-closed error.
const WINDOW_CLOSED_OUTCOME: usize = 5;

/// A window-closed code in the message's provider's own numbering.
fn window_closed_code(provider: ProviderKind, code: Option<u32>) -> Option<u32> {
    match (provider, code) {
        (ProviderKind::Meta, Some(63016)) => Some(131047),
        (ProviderKind::Twilio | ProviderKind::Sandbox, Some(131047)) => Some(63016),
        (_, code) => code,
    }
}

pub fn provider_ref(id: MessageId) -> ProviderMessageRef {
    let hex = id.as_uuid().simple().to_string();
    ProviderMessageRef::parse(&format!("SM{hex}")).expect("valid sid")
}

fn kind_of(content: &SendContent) -> &'static str {
    match content {
        SendContent::Template { .. } => "template",
        SendContent::Freeform { .. } | SendContent::Rich(_) => "freeform",
    }
}
