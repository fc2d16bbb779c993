//! The reference check: which rules a request breaks, written from the rule table in
//! docs/compliance.md, folding the event log on its own. It shares no code with
//! the domain's gates or aggregates: only the event types and the ids.
//!
//! Where the table leaves a detail open, the reference follows what the table implies:
//! - rules about the contact (opted_out … not_on_whatsapp) need a valid number to name one;
//! - template_variables and marketing_paused need a registered template (placeholders, category);
//! - an inbound message proves the number is on WhatsApp (it clears not_on_whatsapp);
//! - the window is the business number's: it is kept per (sender, contact), closes `margin`
//!   before 24 h after the person last wrote to that sender (their time, never later than
//!   receipt), and a provider's window report closes that sender's window (every sender's when it
//!   names none) until the person writes to it again: a message written before the report and
//!   delivered late does not reopen it;
//! - an inbound written more than 7 days (the providers' retry horizon) before it arrived is a
//!   replay: it opens no window, proves nothing about WhatsApp, and its START opts nobody in;
//! - consent is derived here from the inputs, not from the domain's consent events: a keyword's
//!   effect from the inbound's text (classified by the world's own table of its texts), kind
//!   and time; a STOP (in a one-to-one or a group message) opts out however late it is, and
//!   dates the newest opt-out even when the person had already opted out; a START
//!   (or YES from an opted-out identity) opts in only if written no earlier than the identity's
//!   newest opt-out; an API opt-in is refused for the `keyword` source, for evidence in the
//!   future, and for evidence (or, without one, now) not after the newest opt-out; an operator's
//!   or a provider's opt-out is taken as recorded;
//! - identities linked by the provider are one person: any opt-out among them refuses every one
//!   of them; otherwise an opt-in on any of them counts; a marketing pause on any pauses all; the
//!   window and `not_on_whatsapp` stay each identity's own; a group message opens no window;
//! - re-registering a sender with another portfolio, provider or phone-number id withdraws its
//!   authorization until the next `SenderAuthorized`;
//! - a recipient counts toward the tier when a template to them is allowed (or claimed) outside
//!   an open window and they were not already reached in the last 24 h. The reference keeps its
//!   own count from the intents and claims; the domain's `RecipientReached` events are only
//!   collected, to be compared with it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use wagate_domain::{
    ApprovalStatus, ContactEvent, ContactFlag, ContactId, Event, MessageEvent, MessageId,
    MessagingLimit, OptInSource, OptOutSource, Policy, PortfolioEvent, PortfolioId, ProviderKind,
    RuleId, SendContent, SenderEvent, TemplateCategory, TemplateEvent, TemplateId, Timestamp,
    WhatsAppAddress,
};

use crate::world::{Keyword, TEXTS, TEXT_KEYWORDS};
use wagate_domain::consent::{CampaignMedium, ConsentEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefConsent {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, Default)]
struct RefWindow {
    /// The newest time the person wrote to this sender.
    last: Option<Timestamp>,
    /// When the provider reported this window closed, until a message written at or after it.
    closed_since: Option<Timestamp>,
}

#[derive(Debug, Clone, Default)]
struct RefContact {
    consent: Option<RefConsent>,
    /// When the newest opt-out was made (the person's time for a keyword).
    last_opt_out: Option<Timestamp>,
    windows: BTreeMap<WhatsAppAddress, RefWindow>,
    not_on_whatsapp: bool,
    marketing_paused: bool,
}

#[derive(Debug, Clone, Default)]
struct RefSender {
    registration: Option<(ProviderKind, PortfolioId, Option<String>)>,
    authorized: bool,
    suspended: bool,
    /// The provider's last quality report was a drop.
    quality_dropped: bool,
}

impl RefSender {
    fn portfolio(&self) -> Option<&PortfolioId> {
        self.registration
            .as_ref()
            .map(|(_, portfolio, _)| portfolio)
    }
}

#[derive(Debug, Clone)]
struct RefTemplate {
    category: TemplateCategory,
    placeholders: BTreeSet<String>,
    approval: ApprovalStatus,
}

#[derive(Debug, Clone)]
pub struct RefIntent {
    pub contact: ContactId,
    pub sender: WhatsAppAddress,
    pub content: SendContent,
    pub workflow: String,
}

#[derive(Debug, Clone, Default)]
struct RefDispatch {
    claimed: bool,
    attempts: u32,
    retry_at: Option<Timestamp>,
    closed: bool,
}

#[derive(Debug, Clone)]
pub struct Reference {
    contacts: BTreeMap<ContactId, RefContact>,
    /// Identity links as the provider asserted them (both directions).
    links: BTreeSet<(ContactId, ContactId)>,
    senders: BTreeMap<WhatsAppAddress, RefSender>,
    templates: BTreeMap<TemplateId, RefTemplate>,
    limits: BTreeMap<PortfolioId, MessagingLimit>,
    /// The reference's own count of reaches, per portfolio.
    reaches: BTreeMap<PortfolioId, Vec<(ContactId, Timestamp)>>,
    /// What the domain recorded (`RecipientReached`), in log order.
    pub logged_reaches: Vec<(PortfolioId, ContactId, Timestamp)>,
    /// What the reference expects it to have recorded, in log order.
    pub expected_reaches: Vec<(PortfolioId, ContactId, Timestamp)>,
    margin: TimeDelta,
    pub intents: BTreeMap<MessageId, RefIntent>,
    dispatch: BTreeMap<MessageId, RefDispatch>,
    /// Consent campaigns by code: (their sender, whether a QR code alone opts in, closed).
    campaigns: BTreeMap<String, (WhatsAppAddress, bool, bool)>,
    /// Pending page opt-ins: (identity, campaign code).
    requested: BTreeSet<(ContactId, String)>,
}

const DAY: TimeDelta = TimeDelta::hours(24);
/// Meta retries a webhook for 7 days: anything written earlier is a replay.
const RETRY_HORIZON: TimeDelta = TimeDelta::days(7);
/// How far ahead of ours a provider's clock may be.
const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);
/// Message kinds whose text the person typed or tapped (a media body is never a keyword).
const TYPED: [&str; 3] = ["text", "button", "interactive"];

fn keyword(kind: &str, text: &str) -> Keyword {
    if !TYPED.contains(&kind) {
        return Keyword::None;
    }
    TEXTS
        .iter()
        .position(|t| *t == text)
        .map_or(Keyword::None, |index| TEXT_KEYWORDS[index])
}

/// E.164 by the book: `+`, 7 to 15 digits, the first not 0.
fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

impl RefContact {
    fn opt_out(&mut self, at: Timestamp) {
        self.consent = Some(RefConsent::Out);
        self.last_opt_out = Some(self.last_opt_out.map_or(at, |l| l.max(at)));
    }
}

impl Reference {
    pub fn new(margin: TimeDelta) -> Self {
        Self {
            contacts: BTreeMap::new(),
            links: BTreeSet::new(),
            senders: BTreeMap::new(),
            templates: BTreeMap::new(),
            limits: BTreeMap::new(),
            reaches: BTreeMap::new(),
            logged_reaches: Vec::new(),
            expected_reaches: Vec::new(),
            margin,
            intents: BTreeMap::new(),
            dispatch: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            requested: BTreeSet::new(),
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Contact(e) => {
                let contact = self.contacts.entry(e.contact().clone()).or_default();
                match e {
                    // Keyword consent is derived from the message itself (below).
                    // A campaign code's confirmation is derived from the message itself
                    // ([`Reference::code_message`]), like keywords.
                    ContactEvent::OptedIn {
                        source,
                        recorded_by,
                        ..
                    } => {
                        if *source != OptInSource::Keyword && recorded_by != "wagate:consent" {
                            contact.consent = Some(RefConsent::In);
                        }
                    }
                    ContactEvent::OptedOut { source, at, .. } => {
                        if *source != OptOutSource::Keyword {
                            contact.opt_out(*at);
                        }
                    }
                    ContactEvent::InboundReceived {
                        sender,
                        kind,
                        text,
                        provider_at,
                        at,
                        ..
                    } => {
                        let written = provider_at.map_or(*at, |p| p.min(*at));
                        let replay = *at - written > RETRY_HORIZON;
                        if !replay {
                            if let Some(sender) = sender {
                                let window = contact.windows.entry(sender.clone()).or_default();
                                window.last = Some(window.last.map_or(written, |l| l.max(written)));
                                if window.closed_since.is_some_and(|closed| closed <= written) {
                                    window.closed_since = None;
                                }
                            }
                            contact.not_on_whatsapp = false;
                        }
                        let not_older_than_stop =
                            contact.last_opt_out.is_none_or(|stop| written >= stop);
                        match keyword(kind, text) {
                            // Every STOP is an opt-out, even from an opted-out person: a START
                            // written before it must not opt them in.
                            Keyword::Stop => contact.opt_out(written),
                            Keyword::Start if !replay && not_older_than_stop => {
                                contact.consent = Some(RefConsent::In);
                            }
                            Keyword::Yes
                                if !replay
                                    && not_older_than_stop
                                    && contact.consent == Some(RefConsent::Out) =>
                            {
                                contact.consent = Some(RefConsent::In);
                            }
                            _ => {}
                        }
                    }
                    ContactEvent::GroupMessageReceived { kind, text, at, .. } => {
                        if keyword(kind, text) == Keyword::Stop
                            && contact.consent != Some(RefConsent::Out)
                        {
                            contact.opt_out(*at);
                        }
                    }
                    ContactEvent::WindowReportedClosed { sender, at, .. } => {
                        for (s, window) in contact.windows.iter_mut() {
                            if sender.as_ref().is_none_or(|sender| sender == s) {
                                window.closed_since = Some(*at);
                            }
                        }
                        if let Some(sender) = sender {
                            contact
                                .windows
                                .entry(sender.clone())
                                .or_default()
                                .closed_since = Some(*at);
                        }
                    }
                    ContactEvent::FlagRaised { flag, .. }
                    | ContactEvent::FlagCleared { flag, .. } => {
                        let raised = matches!(e, ContactEvent::FlagRaised { .. });
                        match flag {
                            ContactFlag::NotOnWhatsapp => contact.not_on_whatsapp = raised,
                            ContactFlag::MarketingPaused => contact.marketing_paused = raised,
                        }
                    }
                    ContactEvent::OptOutReviewRequested { .. } => {}
                    ContactEvent::IdentityLinked { contact, other, .. } => {
                        self.links.insert((contact.clone(), other.clone()));
                        self.links.insert((other.clone(), contact.clone()));
                    }
                }
            }
            Event::Sender(e) => {
                let sender = self.senders.entry(e.sender().clone()).or_default();
                match e {
                    SenderEvent::Registered {
                        provider,
                        portfolio,
                        meta_phone_number_id,
                        ..
                    } => {
                        let registration =
                            (*provider, portfolio.clone(), meta_phone_number_id.clone());
                        if sender
                            .registration
                            .as_ref()
                            .is_some_and(|old| *old != registration)
                        {
                            sender.authorized = false;
                        }
                        sender.registration = Some(registration);
                    }
                    SenderEvent::Authorized { .. } => {
                        sender.authorized = true;
                        sender.suspended = false;
                    }
                    SenderEvent::Suspended { .. } => sender.suspended = true,
                    SenderEvent::QualityReported { dropped, .. } => {
                        sender.quality_dropped = *dropped;
                    }
                }
            }
            Event::Template(e) => match e {
                TemplateEvent::Registered {
                    template,
                    category,
                    placeholders,
                    ..
                } => {
                    let approval = self
                        .templates
                        .get(template)
                        .map_or(ApprovalStatus::Pending, |t| t.approval);
                    self.templates.insert(
                        template.clone(),
                        RefTemplate {
                            category: *category,
                            placeholders: placeholders.iter().cloned().collect(),
                            approval,
                        },
                    );
                }
                TemplateEvent::CategoryReported {
                    template, category, ..
                } => {
                    if let Some(t) = self.templates.get_mut(template) {
                        t.category = *category;
                    }
                }
                TemplateEvent::ApprovalChanged {
                    template, status, ..
                }
                | TemplateEvent::StatusReported {
                    template, status, ..
                } => {
                    if let Some(t) = self.templates.get_mut(template) {
                        t.approval = *status;
                    }
                }
                TemplateEvent::Created {
                    template,
                    category,
                    content,
                    ..
                } => {
                    // The keys between `{{` and `}}`, read here rather than taken from the domain.
                    let mut placeholders = BTreeSet::new();
                    let mut rest = content.body.as_str();
                    while let Some(start) = rest.find("{{") {
                        let after = &rest[start + 2..];
                        let Some(end) = after.find("}}") else { break };
                        placeholders.insert(after[..end].to_owned());
                        rest = &after[end + 2..];
                    }
                    let approval = self
                        .templates
                        .get(template)
                        .map_or(ApprovalStatus::Unsubmitted, |t| t.approval);
                    self.templates.insert(
                        template.clone(),
                        RefTemplate {
                            category: *category,
                            placeholders,
                            approval,
                        },
                    );
                }
            },
            Event::Portfolio(e) => match e {
                PortfolioEvent::MessagingLimitChanged {
                    portfolio, limit, ..
                } => {
                    self.limits.insert(portfolio.clone(), *limit);
                }
                PortfolioEvent::RecipientReached {
                    portfolio,
                    contact,
                    at,
                    ..
                } => self
                    .logged_reaches
                    .push((portfolio.clone(), contact.clone(), *at)),
            },
            Event::Message(e) => self.apply_message(e),
            // Provider notices are records for auditors: no rule reads them.
            Event::Provider(_) => {}
            // The review queue's bookkeeping: no rule reads it.
            Event::Review(_) => {}
            // Consent capture: pending requests let nothing through by themselves; what a
            // campaign code confirms is derived in `code_message`.
            Event::Consent(e) => match e {
                ConsentEvent::CampaignCreated {
                    campaign,
                    sender,
                    medium,
                    ..
                } => {
                    self.campaigns.insert(
                        campaign.clone(),
                        (sender.clone(), *medium != CampaignMedium::WebForm, false),
                    );
                }
                ConsentEvent::CampaignClosed { campaign, .. } => {
                    if let Some(c) = self.campaigns.get_mut(campaign) {
                        c.2 = true;
                    }
                }
                ConsentEvent::OptInRequested {
                    contact, campaign, ..
                } => {
                    self.requested.insert((contact.clone(), campaign.clone()));
                }
                // The world creates no campaign with a confirmation template, so sends none.
                ConsentEvent::WordingPublished { .. } | ConsentEvent::ConfirmationSent { .. } => {}
            },
            // A campaign's rows are ordinary sends (the world generates no campaign commands).
            Event::Endpoint(_) | Event::Campaign(_) => {}
        }
    }

    fn apply_message(&mut self, event: &MessageEvent) {
        match event {
            MessageEvent::TemplateSent {
                message_id,
                contact,
                sender,
                template,
                variables,
                workflow,
                at,
                ..
            } => {
                self.count_reach(sender, contact, *at, false);
                self.intents.insert(
                    *message_id,
                    RefIntent {
                        contact: contact.clone(),
                        sender: sender.clone(),
                        content: SendContent::Template {
                            template: template.clone(),
                            variables: variables.iter().cloned().collect(),
                            media: Vec::new(),
                        },
                        workflow: workflow.to_string(),
                    },
                );
            }
            MessageEvent::ReplySent {
                message_id,
                contact,
                sender,
                text,
                workflow,
                ..
            } => {
                self.intents.insert(
                    *message_id,
                    RefIntent {
                        contact: contact.clone(),
                        sender: sender.clone(),
                        content: SendContent::Freeform { text: text.clone() },
                        workflow: workflow.to_string(),
                    },
                );
            }
            MessageEvent::DispatchClaimed {
                message_id,
                attempt,
                at,
            } => {
                if let Some(intent) = self.intents.get(message_id).cloned() {
                    if matches!(intent.content, SendContent::Template { .. }) {
                        self.count_reach(&intent.sender, &intent.contact, *at, true);
                    }
                }
                let d = self.dispatch.entry(*message_id).or_default();
                d.claimed = true;
                d.attempts = *attempt;
                d.retry_at = None;
            }
            MessageEvent::ClaimRefused { message_id, .. }
            | MessageEvent::DispatchSucceeded { message_id, .. }
            | MessageEvent::InDoubtExpired { message_id, .. } => {
                let d = self.dispatch.entry(*message_id).or_default();
                d.claimed = false;
                d.closed = true;
            }
            MessageEvent::DispatchFailed {
                message_id,
                retry_at,
                ..
            } => {
                let d = self.dispatch.entry(*message_id).or_default();
                d.claimed = false;
                if !d.closed {
                    match retry_at {
                        Some(due) => d.retry_at = Some(*due),
                        None => d.closed = true,
                    }
                }
            }
            MessageEvent::StatusChanged { message_id, .. } => {
                // The provider has the message: no claim stays open and no retry follows.
                let d = self.dispatch.entry(*message_id).or_default();
                if d.claimed || d.retry_at.is_some() {
                    d.claimed = false;
                    d.retry_at = None;
                    d.closed = true;
                }
            }
            // A provider's price changes nothing the rules read.
            MessageEvent::SendRefused { .. }
            | MessageEvent::UnmatchedStatusReceived { .. }
            | MessageEvent::PriceReported { .. } => {}
        }
    }

    /// A template to `contact` outside an open window counts, unless (at a claim) the contact
    /// was already reached in the last 24 h.
    fn count_reach(
        &mut self,
        sender: &WhatsAppAddress,
        contact: &ContactId,
        at: Timestamp,
        unless_reached: bool,
    ) {
        let open = self
            .contacts
            .get(contact)
            .and_then(|c| c.windows.get(sender))
            .is_some_and(|w| {
                w.closed_since.is_none() && w.last.is_some_and(|last| at < last + DAY - self.margin)
            });
        let Some(portfolio) = self
            .senders
            .get(sender)
            .and_then(|s| s.portfolio().cloned())
        else {
            return;
        };
        let reaches = self.reaches.entry(portfolio.clone()).or_default();
        let reached = reaches
            .iter()
            .any(|(id, t)| id == contact && *t <= at && at - *t < DAY);
        if open || (unless_reached && reached) {
            return;
        }
        reaches.push((contact.clone(), at));
        self.expected_reaches.push((portfolio, contact.clone(), at));
    }

    /// The last time the person wrote to any sender.
    pub fn last_inbound(&self, contact: &ContactId) -> Option<Timestamp> {
        self.contacts
            .get(contact)
            .and_then(|c| c.windows.values().filter_map(|w| w.last).max())
    }

    pub fn oldest_reach_within(&self, now: Timestamp) -> Option<Timestamp> {
        self.reaches
            .values()
            .flatten()
            .map(|(_, at)| *at)
            .filter(|at| now - *at < DAY)
            .min()
    }

    fn window_open(
        &self,
        sender: &WhatsAppAddress,
        contact: &ContactId,
        policy: &Policy,
        now: Timestamp,
    ) -> bool {
        self.contacts
            .get(contact)
            .and_then(|c| c.windows.get(sender))
            .is_some_and(|w| {
                w.closed_since.is_none()
                    && w.last
                        .is_some_and(|last| now < last + DAY - policy.window_safety_margin)
            })
    }

    /// Every identity of the person `id` is (itself included), through the links.
    pub fn person(&self, id: &ContactId) -> Vec<ContactId> {
        let mut person = vec![id.clone()];
        let mut next = 0;
        while next < person.len() {
            let current = person[next].clone();
            for (a, b) in &self.links {
                if *a == current && !person.contains(b) {
                    person.push(b.clone());
                }
            }
            next += 1;
        }
        person
    }

    /// The identity's own consent (not its person's).
    pub fn consent(&self, id: &ContactId) -> Option<RefConsent> {
        self.contacts.get(id).and_then(|c| c.consent)
    }

    /// When the provider reported `sender`'s window with `contact` closed, if it still is.
    pub fn window_reported_closed(
        &self,
        sender: &WhatsAppAddress,
        contact: &ContactId,
    ) -> Option<Timestamp> {
        self.contacts
            .get(contact)
            .and_then(|c| c.windows.get(sender))
            .and_then(|w| w.closed_since)
    }

    pub fn last_opt_out(&self, id: &ContactId) -> Option<Timestamp> {
        self.contacts.get(id).and_then(|c| c.last_opt_out)
    }

    /// Whether the hosted page of `campaign` records a pending opt-in: only while it is open.
    pub fn page_records(&self, campaign: &str) -> bool {
        self.campaigns.get(campaign).is_some_and(|c| !c.2)
    }

    /// The person `id` sent `campaign`'s prefilled message to `to`, written at `written`: it
    /// opts them in when the campaign is open, it went to the campaign's number, it was written
    /// no earlier than their newest opt-out, and they asked on the page (a QR or direct-mail
    /// campaign's code alone is enough).
    pub fn code_message(
        &mut self,
        id: &ContactId,
        campaign: &str,
        to: &WhatsAppAddress,
        written: Timestamp,
    ) {
        let Some((sender, code_alone, closed)) = self.campaigns.get(campaign) else {
            return;
        };
        let asked = *code_alone || self.requested.contains(&(id.clone(), campaign.to_owned()));
        let in_order = self.last_opt_out(id).is_none_or(|stop| written >= stop);
        if !closed && sender == to && asked && in_order {
            self.contacts.entry(id.clone()).or_default().consent = Some(RefConsent::In);
        }
    }

    /// Whether an API opt-in for `id` should be recorded.
    pub fn api_opt_in_allowed(
        &self,
        id: &ContactId,
        source: OptInSource,
        evidence_at: Option<Timestamp>,
        now: Timestamp,
    ) -> bool {
        if source == OptInSource::Keyword {
            return false;
        }
        let opted_out = self.consent(id) == Some(RefConsent::Out);
        let dated = match evidence_at {
            Some(at) => at,
            None if opted_out => return false,
            None => now,
        };
        dated <= now && self.last_opt_out(id).is_none_or(|stop| dated > stop)
    }

    /// Whether an inbound's provider time is too far in the future to be believed.
    pub fn provider_time_refused(&self, provider_at: Option<Timestamp>, now: Timestamp) -> bool {
        provider_at.is_some_and(|at| at > now + CLOCK_SKEW)
    }

    /// Every rule broken, in the table's order.
    pub fn broken(
        &self,
        sender: &WhatsAppAddress,
        to: &str,
        content: &SendContent,
        workflow: Option<&str>,
        policy: &Policy,
        now: Timestamp,
    ) -> Vec<RuleId> {
        let mut broken = Vec::new();
        let s = self.senders.get(sender).cloned().unwrap_or_default();
        // channel_not_authorized
        if s.registration.is_none() || !s.authorized || s.suspended {
            broken.push(RuleId::ChannelNotAuthorized);
        }
        // invalid_number
        let contact = if is_e164(to) {
            crate::world::contact_of(to)
        } else {
            broken.push(RuleId::InvalidNumber);
            None
        };
        let c = contact
            .as_ref()
            .and_then(|id| self.contacts.get(id))
            .cloned()
            .unwrap_or_default();
        // The person's consent and marketing pause, over every linked identity.
        let person: Vec<RefContact> = contact
            .as_ref()
            .map(|id| self.person(id))
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.contacts.get(id).cloned())
            .collect();
        let consent = if person.iter().any(|p| p.consent == Some(RefConsent::Out)) {
            Some(RefConsent::Out)
        } else if person.iter().any(|p| p.consent == Some(RefConsent::In)) {
            Some(RefConsent::In)
        } else {
            None
        };
        let marketing_paused = person.iter().any(|p| p.marketing_paused);
        let (is_template, template) = match content {
            SendContent::Template {
                template,
                variables,
                ..
            } => (true, Some((self.templates.get(template), variables))),
            // Media and buttons are freeform content: the window rule, like text.
            SendContent::Freeform { .. } | SendContent::Rich(_) => (false, None),
        };
        let window_open = contact
            .as_ref()
            .is_some_and(|id| self.window_open(sender, id, policy, now));
        if contact.is_some() {
            // opted_out
            if consent == Some(RefConsent::Out) {
                broken.push(RuleId::OptedOut);
            }
            // no_opt_in
            if is_template && consent != Some(RefConsent::In) {
                broken.push(RuleId::NoOptIn);
            }
            // window_closed
            if !is_template && !window_open {
                broken.push(RuleId::WindowClosed);
            }
        }
        // template_unknown / template_not_approved / template_variables
        if let Some((definition, variables)) = template {
            match definition {
                None => broken.push(RuleId::TemplateUnknown),
                Some(t) => {
                    if t.approval != ApprovalStatus::Approved {
                        broken.push(RuleId::TemplateNotApproved);
                    }
                    let keys: BTreeSet<String> = variables.keys().cloned().collect();
                    if keys != t.placeholders || variables.values().any(|v| v.trim().is_empty()) {
                        broken.push(RuleId::TemplateVariables);
                    }
                }
            }
        }
        // workflow_not_allowed
        let allowed = workflow.is_some_and(|w| {
            policy
                .workflows_allowed
                .iter()
                .any(|allowed| allowed.as_str() == w)
        });
        if !allowed {
            broken.push(RuleId::WorkflowNotAllowed);
        }
        if let Some(contact) = &contact {
            // tier_limit: business-initiated, outside an open window, a new recipient in a
            // full portfolio (rolling 24 h).
            if is_template && !window_open {
                let limit = s
                    .portfolio()
                    .and_then(|p| self.limits.get(p))
                    .copied()
                    .unwrap_or(policy.default_messaging_limit);
                if let MessagingLimit::Limited(limit) = limit {
                    let recent: BTreeSet<&ContactId> = s
                        .portfolio()
                        .and_then(|p| self.reaches.get(p))
                        .into_iter()
                        .flatten()
                        .filter(|(_, at)| *at <= now && now - *at < DAY)
                        .map(|(id, _)| id)
                        .collect();
                    if !recent.contains(contact) && recent.len() >= limit as usize {
                        broken.push(RuleId::TierLimit);
                    }
                }
            }
            // not_on_whatsapp
            if c.not_on_whatsapp {
                broken.push(RuleId::NotOnWhatsapp);
            }
            // marketing_paused
            let marketing = template
                .and_then(|(t, _)| t)
                .is_some_and(|t| t.category == TemplateCategory::Marketing);
            if marketing && marketing_paused {
                broken.push(RuleId::MarketingPaused);
            }
        }
        // sender_quality_dropped
        let marketing = template
            .and_then(|(t, _)| t)
            .is_some_and(|t| t.category == TemplateCategory::Marketing);
        if policy.pause_marketing_on_quality_drop && marketing && s.quality_dropped {
            broken.push(RuleId::SenderQualityDropped);
        }
        broken
    }

    /// The rules broken by dispatching message `id` now, from its intent in the log; `None`
    /// when there is no intent.
    pub fn broken_at_claim(
        &self,
        id: MessageId,
        policy: &Policy,
        now: Timestamp,
    ) -> Option<Vec<RuleId>> {
        let intent = self.intents.get(&id)?;
        Some(self.broken(
            &intent.sender,
            &intent.contact.to_string(),
            &intent.content,
            Some(&intent.workflow),
            policy,
            now,
        ))
    }

    /// Whether the dispatcher may claim message `id` now (rules aside).
    pub fn claimable(&self, id: MessageId, policy: &Policy, now: Timestamp) -> bool {
        if !self.intents.contains_key(&id) {
            return false;
        }
        let d = self.dispatch.get(&id).cloned().unwrap_or_default();
        !d.closed
            && !d.claimed
            && d.retry_at.is_none_or(|due| now >= due)
            && d.attempts < policy.dispatch_attempts_max
    }
}
