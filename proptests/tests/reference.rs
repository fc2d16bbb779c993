//! The reference check: which rules a request breaks, written from the rule table in
//! docs/compliance.md, folding the event log on its own. It shares no code with
//! the domain's gates or aggregates: only the event types and the ids.
//!
//! Where the table leaves a detail open, the reference follows what the table implies:
//! - rules about the contact (opted_out … not_on_whatsapp) need a valid number to name one;
//! - template_variables and marketing_paused need a registered template (placeholders, category);
//! - an inbound message proves the number is on WhatsApp (it clears not_on_whatsapp);
//! - the window is the business number's: it is kept per (sender, contact), closes `margin`
//!   before 24 h after the person last wrote to that sender, and a provider's window report closes
//!   that sender's window (every sender's when it names none) until the next inbound (log order);
//! - a recipient counts toward the tier when a template to them is allowed (or claimed) outside
//!   an open window and they were not already reached in the last 24 h. The reference keeps its
//!   own count from the intents and claims; the domain's `RecipientReached` events are only
//!   collected, to be compared with it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use wagate_domain::{
    ApprovalStatus, ContactEvent, ContactFlag, ContactId, Event, MessageEvent, MessageId,
    MessagingLimit, Policy, PortfolioEvent, PortfolioId, RuleId, SendContent, SenderEvent,
    TemplateCategory, TemplateEvent, TemplateId, Timestamp, WhatsAppAddress,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefConsent {
    In,
    Out,
}

#[derive(Debug, Clone, Default)]
struct RefContact {
    consent: Option<RefConsent>,
    /// Per sender: the last time the person wrote to it, and whether a window report came after
    /// that (log order).
    windows: BTreeMap<WhatsAppAddress, (Option<Timestamp>, bool)>,
    not_on_whatsapp: bool,
    marketing_paused: bool,
}

#[derive(Debug, Clone, Default)]
struct RefSender {
    portfolio: Option<PortfolioId>,
    authorized: bool,
    suspended: bool,
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
}

const DAY: TimeDelta = TimeDelta::hours(24);

/// E.164 by the book: `+`, 7 to 15 digits, the first not 0.
fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

impl Reference {
    pub fn new(margin: TimeDelta) -> Self {
        Self {
            contacts: BTreeMap::new(),
            senders: BTreeMap::new(),
            templates: BTreeMap::new(),
            limits: BTreeMap::new(),
            reaches: BTreeMap::new(),
            logged_reaches: Vec::new(),
            expected_reaches: Vec::new(),
            margin,
            intents: BTreeMap::new(),
            dispatch: BTreeMap::new(),
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Contact(e) => {
                let contact = self.contacts.entry(e.contact().clone()).or_default();
                match e {
                    ContactEvent::OptedIn { .. } => contact.consent = Some(RefConsent::In),
                    ContactEvent::OptedOut { .. } => contact.consent = Some(RefConsent::Out),
                    ContactEvent::InboundReceived {
                        sender,
                        provider_at,
                        at,
                        ..
                    } => {
                        let written = provider_at.map_or(*at, |p| p.min(*at));
                        if let Some(sender) = sender {
                            let window = contact.windows.entry(sender.clone()).or_default();
                            window.0 = Some(window.0.map_or(written, |l| l.max(written)));
                            window.1 = false;
                        }
                        contact.not_on_whatsapp = false;
                    }
                    ContactEvent::WindowReportedClosed { sender, .. } => {
                        for (s, window) in contact.windows.iter_mut() {
                            if sender.as_ref().is_none_or(|sender| sender == s) {
                                window.1 = true;
                            }
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
                    // The reference world never links identities nor receives group messages
                    // (the lead's property tests model linked identities).
                    ContactEvent::IdentityLinked { .. }
                    | ContactEvent::GroupMessageReceived { .. } => {}
                }
            }
            Event::Sender(e) => {
                let sender = self.senders.entry(e.sender().clone()).or_default();
                match e {
                    SenderEvent::Registered { portfolio, .. } => {
                        sender.portfolio = Some(portfolio.clone())
                    }
                    SenderEvent::Authorized { .. } => {
                        sender.authorized = true;
                        sender.suspended = false;
                    }
                    SenderEvent::Suspended { .. } => sender.suspended = true,
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
                TemplateEvent::ApprovalChanged {
                    template, status, ..
                } => {
                    if let Some(t) = self.templates.get_mut(template) {
                        t.approval = *status;
                    }
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
            MessageEvent::SendRefused { .. } | MessageEvent::UnmatchedStatusReceived { .. } => {}
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
            .is_some_and(|(last, closed)| {
                !closed && last.is_some_and(|last| at < last + DAY - self.margin)
            });
        let Some(portfolio) = self.senders.get(sender).and_then(|s| s.portfolio.clone()) else {
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
            .and_then(|c| c.windows.values().filter_map(|(last, _)| *last).max())
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
            .is_some_and(|(last, closed)| {
                !closed && last.is_some_and(|last| now < last + DAY - policy.window_safety_margin)
            })
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
        if s.portfolio.is_none() || !s.authorized || s.suspended {
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
        let (is_template, template) = match content {
            SendContent::Template {
                template,
                variables,
            } => (true, Some((self.templates.get(template), variables))),
            SendContent::Freeform { .. } => (false, None),
        };
        let window_open = contact
            .as_ref()
            .is_some_and(|id| self.window_open(sender, id, policy, now));
        if contact.is_some() {
            // opted_out
            if c.consent == Some(RefConsent::Out) {
                broken.push(RuleId::OptedOut);
            }
            // no_opt_in
            if is_template && c.consent != Some(RefConsent::In) {
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
                    .portfolio
                    .as_ref()
                    .and_then(|p| self.limits.get(p))
                    .copied()
                    .unwrap_or(policy.default_messaging_limit);
                if let MessagingLimit::Limited(limit) = limit {
                    let recent: BTreeSet<&ContactId> = s
                        .portfolio
                        .as_ref()
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
            if marketing && c.marketing_paused {
                broken.push(RuleId::MarketingPaused);
            }
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
