//! The hub, in memory: an append-only `Vec` of events with per-stream versions, aggregates
//! folded as events land, and every command decided by `wagate_domain::decide`. This is what
//! `wagate-app` does against sled, without the disk, the locks and the conflicts (the
//! simulation is single-threaded, so every decision reads the newest state).

use std::collections::{BTreeMap, BTreeSet};

use wagate_dispatch::{ClaimAnswer, HubAnswer, PendingIntent};
use wagate_domain::consent;
use wagate_domain::decide::{
    self, ClaimDecision, ClaimDispatch, EarlyStatus, ReceiveInbound, RecordOptIn, RecordOptOut,
    RecordOutcome, RegisterSender, RegisterTemplate, SendMessage, SendState, StatusCallback,
};
use wagate_domain::{
    Aggregate, ApprovalStatus, CommandError, ConsentState, ContactEvent, ContactId, ContactState,
    DispatchPhase, Event, MessageContent, MessageEvent, MessageId, MessageState, MessageStatus,
    MessagingLimit, OpenIntent, OptInSource, OptOutSource, Policy, PortfolioEvent, PortfolioId,
    PortfolioState, ProviderKind, ProviderMessageRef, Refusal, SendContent, SenderEvent,
    SenderState, StreamKey, TemplateEvent, TemplateId, TemplateState, Timestamp, WhatsAppAddress,
};

/// One event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Contiguous from 0.
    pub position: u64,
    pub stream: StreamKey,
    /// Contiguous from 1 within the stream.
    pub version: u64,
    pub event: Event,
}

/// What the dispatcher hands the provider: the claimed intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    pub message_id: MessageId,
    pub attempt: u32,
    pub sender: WhatsAppAddress,
    pub to: ContactId,
    pub content: MessageContent,
}

#[derive(Debug, Clone, Default)]
pub struct SimHub {
    pub policy: Policy,
    log: Vec<Recorded>,
    versions: BTreeMap<StreamKey, u64>,
    contacts: BTreeMap<ContactId, ContactState>,
    messages: BTreeMap<MessageId, MessageState>,
    senders: BTreeMap<WhatsAppAddress, SenderState>,
    templates: BTreeMap<TemplateId, TemplateState>,
    portfolios: BTreeMap<PortfolioId, PortfolioState>,
    intent_positions: BTreeMap<MessageId, u64>,
    /// Which message a provider id belongs to (as the app's projection indexes it).
    by_provider_ref: BTreeMap<ProviderMessageRef, MessageId>,
    /// Callbacks kept on a provider id's stream before its message was known.
    early: BTreeMap<ProviderMessageRef, Vec<EarlyStatus>>,
    webhook_ids: BTreeSet<u64>,
    checkpoint: u64,
    /// Consent streams (`consent-wording:…`, …) by name: opt-ins cite a published wording.
    consent: BTreeMap<String, ConsentState>,
}

impl SimHub {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    pub fn log(&self) -> &[Recorded] {
        &self.log
    }

    /// The next position to be written: everything below it is in the log.
    pub fn head(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn message(&self, id: MessageId) -> Option<&MessageState> {
        self.messages.get(&id)
    }

    pub fn messages(&self) -> impl Iterator<Item = (&MessageId, &MessageState)> {
        self.messages.iter()
    }

    pub fn contact(&self, id: &ContactId) -> ContactState {
        self.contacts.get(id).cloned().unwrap_or_default()
    }

    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    pub fn save_checkpoint(&mut self, position: u64) {
        self.checkpoint = position;
    }

    fn append(&mut self, events: Vec<Event>) -> usize {
        let count = events.len();
        for event in events {
            let stream = event.stream();
            let version = self.versions.entry(stream.clone()).or_insert(0);
            *version += 1;
            let version = *version;
            let position = self.head();
            self.fold(&event, position);
            self.log.push(Recorded {
                position,
                stream,
                version,
                event,
            });
        }
        count
    }

    fn fold(&mut self, event: &Event, position: u64) {
        match event {
            Event::Contact(event) => {
                let state = self.contacts.remove(event.contact()).unwrap_or_default();
                self.contacts
                    .insert(event.contact().clone(), state.apply(event));
            }
            Event::Message(event) => {
                match event {
                    MessageEvent::DispatchSucceeded {
                        message_id,
                        provider_ref,
                        ..
                    } => {
                        self.by_provider_ref
                            .insert(provider_ref.clone(), *message_id);
                    }
                    MessageEvent::StatusChanged {
                        message_id,
                        provider_ref: Some(reference),
                        ..
                    } => {
                        self.by_provider_ref
                            .entry(reference.clone())
                            .or_insert(*message_id);
                    }
                    MessageEvent::UnmatchedStatusReceived { provider_ref, .. } => {
                        let early = EarlyStatus::of(&Event::Message(event.clone()));
                        self.early
                            .entry(provider_ref.clone())
                            .or_default()
                            .extend(early);
                    }
                    _ => {}
                }
                let Some(id) = event.message_id() else {
                    return;
                };
                if matches!(
                    event,
                    MessageEvent::TemplateSent { .. } | MessageEvent::ReplySent { .. }
                ) {
                    self.intent_positions.insert(id, position);
                }
                let state = self.messages.remove(&id).unwrap_or_default();
                self.messages.insert(id, state.apply(event));
            }
            Event::Sender(event) => {
                let state = self.senders.remove(event.sender()).unwrap_or_default();
                self.senders
                    .insert(event.sender().clone(), state.apply(event));
            }
            Event::Template(event) => {
                let state = self.templates.remove(event.template()).unwrap_or_default();
                self.templates
                    .insert(event.template().clone(), state.apply(event));
            }
            Event::Portfolio(event) => {
                let state = self
                    .portfolios
                    .remove(event.portfolio())
                    .unwrap_or_default();
                self.portfolios
                    .insert(event.portfolio().clone(), state.apply(event));
            }
            // Recorded for auditors; no aggregate folds them.
            Event::Provider(_) => {}
            // The review queue's bookkeeping: no decision the simulator makes reads it.
            Event::Review(_) | Event::Endpoint(_) | Event::Campaign(_) => {}
            // Consent capture: its confirmations are ordinary `OptedIn` events; the wording
            // streams are kept because an opt-in must cite a published one.
            Event::Consent(event) => {
                let state = self
                    .consent
                    .remove(&event.stream_name())
                    .unwrap_or_default();
                self.consent.insert(event.stream_name(), state.apply(event));
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Setup

    /// Registers and authorizes a sender; its portfolio is unlimited so the tier gate stays out
    /// of the way of what the simulation tests.
    pub fn add_sender(
        &mut self,
        sender: &WhatsAppAddress,
        portfolio: &PortfolioId,
        now: Timestamp,
    ) {
        let command = RegisterSender {
            sender: sender.clone(),
            provider: ProviderKind::Twilio,
            portfolio: portfolio.clone(),
            rate: Default::default(),
            meta_phone_number_id: None,
        };
        let state = self.senders.get(sender).cloned().unwrap_or_default();
        if let Ok(events) = decide::register_sender(&state, &command, now) {
            self.append(events);
        }
        self.authorize_sender(sender, now);
        self.append(vec![PortfolioEvent::MessagingLimitChanged {
            portfolio: portfolio.clone(),
            limit: MessagingLimit::Unlimited,
            at: now,
        }
        .into()]);
    }

    pub fn authorize_sender(&mut self, sender: &WhatsAppAddress, now: Timestamp) {
        let state = self.senders.get(sender).cloned().unwrap_or_default();
        if let Ok(events) = decide::authorize_sender(&state, sender, "sim-operator", now) {
            self.append(events);
        }
    }

    pub fn add_template(&mut self, command: &RegisterTemplate, now: Timestamp) {
        let state = self
            .templates
            .get(&command.template)
            .cloned()
            .unwrap_or_default();
        if let Ok(events) = decide::register_template(&state, command, now) {
            self.append(events);
        }
    }

    pub fn set_template_status(
        &mut self,
        template: &TemplateId,
        status: ApprovalStatus,
        now: Timestamp,
    ) {
        let state = self.templates.get(template).cloned().unwrap_or_default();
        if let Ok(events) = decide::set_template_status(&state, template, status, "sim", now) {
            self.append(events);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Contacts

    /// The wording the simulator's opt-ins cite, published on first use as an operator would.
    fn published_wording(&mut self, now: Timestamp) -> ConsentState {
        let command = consent::PublishWording {
            business: "Simulated Business".into(),
            language: "en".into(),
            text: "I agree to receive WhatsApp messages from Simulated Business.".into(),
        };
        let stream = consent::wording_stream(&consent::wording_version(
            &command.business,
            &command.language,
            &command.text,
        ));
        let existing = self.consent.get(&stream).cloned().unwrap_or_default();
        if let Ok(events) = consent::publish_wording(&existing, &command, now) {
            self.append(events);
        }
        self.consent.get(&stream).cloned().unwrap_or_default()
    }

    pub fn opt_in(&mut self, contact: &ContactId, now: Timestamp) {
        let wording = self.published_wording(now);
        let command = RecordOptIn {
            contact: contact.clone(),
            source: OptInSource::WebForm,
            evidence: "https://example.test/form".into(),
            recorded_by: "sim".into(),
            wording_version: wording
                .wording
                .as_ref()
                .map_or_else(String::new, |w| w.version.clone()),
            evidence_at: None,
        };
        if let Ok(events) = decide::opt_in(&self.contact(contact), &wording, &command, now) {
            self.append(events);
        }
    }

    pub fn opt_out(&mut self, contact: &ContactId, now: Timestamp) {
        let command = RecordOptOut {
            contact: contact.clone(),
            source: OptOutSource::Operator,
            detail: "sim operator".into(),
        };
        let events = decide::opt_out(&self.contact(contact), &command, now);
        self.append(events);
    }

    /// A message from `contact` to the business number `sender` (the window is that number's).
    pub fn inbound(
        &mut self,
        contact: &ContactId,
        sender: &WhatsAppAddress,
        text: &str,
        now: Timestamp,
    ) {
        let command = ReceiveInbound {
            contact: contact.clone(),
            sender: Some(sender.clone()),
            provider_ref: None,
            kind: "text".into(),
            text: text.into(),
            provider_at: None,
            details: Vec::new(),
        };
        // The simulated provider gives no time of its own, so nothing can be refused here.
        if let Ok(events) = decide::inbound(&self.contact(contact), &command, &self.policy, now) {
            self.append(events);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Sending and dispatch

    fn send_state<R>(
        &self,
        sender: &WhatsAppAddress,
        contact: Option<&ContactId>,
        template: Option<&TemplateId>,
        read: impl FnOnce(SendState<'_>) -> R,
    ) -> R {
        let empty_sender = SenderState::default();
        let empty_template = TemplateState::default();
        let empty_portfolio = PortfolioState::default();
        let empty_contact = ContactState::default();
        let sender = self.senders.get(sender).unwrap_or(&empty_sender);
        let portfolio = sender
            .registration
            .as_ref()
            .and_then(|registration| self.portfolios.get(&registration.portfolio))
            .unwrap_or(&empty_portfolio);
        // The person's other identities, as the hub loads them (the simulated providers never
        // name another identity today, so this is empty unless a test links some).
        let mut linked: Vec<ContactState> = Vec::new();
        if let Some(first) = contact.and_then(|contact| self.contacts.get(contact)) {
            let mut seen: std::collections::BTreeSet<&ContactId> = contact.into_iter().collect();
            let mut queue: Vec<&ContactId> = first.linked.iter().collect();
            while let Some(id) = queue.pop() {
                if seen.insert(id) {
                    if let Some(state) = self.contacts.get(id) {
                        queue.extend(state.linked.iter());
                        linked.push(state.clone());
                    }
                }
            }
        }
        read(SendState {
            sender,
            contact: contact
                .and_then(|contact| self.contacts.get(contact))
                .unwrap_or(&empty_contact),
            linked: &linked,
            template: template
                .and_then(|template| self.templates.get(template))
                .unwrap_or(&empty_template),
            portfolio,
            confirmation: None,
        })
    }

    /// Decides a send and records the intent or the refusal.
    pub fn send(&mut self, command: &SendMessage, now: Timestamp) -> Result<(), Refusal> {
        let contact = command.to.number().cloned().map(ContactId::Phone);
        let template = match &command.content {
            SendContent::Template { template, .. } => Some(template.clone()),
            SendContent::Freeform { .. } | SendContent::Rich(_) => None,
        };
        let decision = self.send_state(
            &command.sender,
            contact.as_ref(),
            template.as_ref(),
            |state| decide::send(&state, command, &self.policy, now),
        );
        let (events, refusal) = decision.into_parts();
        self.append(events);
        match refusal {
            None => Ok(()),
            Some(refusal) => Err(refusal),
        }
    }

    fn phase(&self, id: MessageId) -> DispatchPhase {
        self.messages
            .get(&id)
            .map_or(DispatchPhase::NotAllowed, MessageState::phase)
    }

    /// `decide::claim` against the newest state, appended at once.
    pub fn claim(&mut self, id: MessageId, now: Timestamp) -> ClaimAnswer<SimRequest> {
        let Some(message) = self.messages.get(&id) else {
            return ClaimAnswer::NotClaimable {
                phase: DispatchPhase::NotAllowed,
            };
        };
        let Some(intent) = message.intent.clone() else {
            return ClaimAnswer::NotClaimable {
                phase: message.phase(),
            };
        };
        let template = match &intent.content {
            MessageContent::Template { template, .. } => Some(template),
            MessageContent::Freeform { .. } | MessageContent::Rich(_) => None,
        };
        let decision = self.send_state(&intent.sender, Some(&intent.contact), template, |state| {
            decide::claim(
                message,
                &state,
                &ClaimDispatch { message_id: id },
                &self.policy,
                now,
            )
        });
        match decision {
            Ok(ClaimDecision::Claimed { attempt, events }) => {
                self.append(events);
                ClaimAnswer::Claimed {
                    attempt,
                    request: SimRequest {
                        message_id: id,
                        attempt,
                        sender: intent.sender,
                        to: intent.contact,
                        content: intent.content,
                    },
                }
            }
            Ok(ClaimDecision::Refused { refusal, events }) => {
                self.append(events);
                ClaimAnswer::Refused { rule: refusal.rule }
            }
            Err(
                CommandError::NotClaimable { .. }
                | CommandError::NotFound { .. }
                | CommandError::InvalidField { .. }
                | CommandError::Conflict { .. },
            ) => ClaimAnswer::NotClaimable {
                phase: self.phase(id),
            },
        }
    }

    pub fn record_outcome(&mut self, command: &RecordOutcome, now: Timestamp) -> HubAnswer {
        let id = command.message_id;
        let early = command
            .joins()
            .and_then(|provider_ref| self.early.get(provider_ref))
            .map_or(&[][..], Vec::as_slice);
        if let Some(message) = self.messages.get(&id) {
            if let Ok(events) = decide::record_outcome(message, command, early, &self.policy, now) {
                self.append(events);
            }
        }
        HubAnswer::Phase(self.phase(id))
    }

    pub fn expire_in_doubt(&mut self, id: MessageId, now: Timestamp) -> HubAnswer {
        if let Some(message) = self.messages.get(&id) {
            let events = decide::expire_in_doubt(message, &self.policy, now);
            self.append(events);
        }
        HubAnswer::Phase(self.phase(id))
    }

    pub fn has_webhook(&self, webhook_id: u64) -> bool {
        self.webhook_ids.contains(&webhook_id)
    }

    /// A provider status callback, de-duplicated by its webhook id (as the real hub does with
    /// idempotency keys), matched like the real hub: by the wagate message id when it names a
    /// known message, else by the provider id; one that matches nothing is kept for the outcome
    /// that names its provider id. Returns how many events it appended.
    pub fn status_callback(
        &mut self,
        webhook_id: u64,
        message_id: Option<MessageId>,
        provider_ref: &ProviderMessageRef,
        status: &MessageStatus,
        error_code: Option<u32>,
        now: Timestamp,
    ) -> usize {
        if !self.webhook_ids.insert(webhook_id) {
            return 0;
        }
        let matched = message_id
            .filter(|id| self.messages.contains_key(id))
            .or_else(|| self.by_provider_ref.get(provider_ref).copied())
            .and_then(|id| Some((id, self.messages.get(&id)?)));
        let callback = StatusCallback {
            provider: provider_ref.provider(),
            provider_ref: Some(provider_ref.clone()),
            status: status.clone(),
            error_code,
            details: Vec::new(),
            pricing: None,
        };
        let decision = decide::status_callback(matched, &callback, now)
            .expect("a callback that names a provider id can always be kept");
        self.append(decision.into_events())
    }

    /// What the dispatcher is told on start and on every poll: every message with dispatch
    /// work, rebuilt from the log alone.
    /// The dispatcher's work list, built by the domain's one definition (`OpenIntent::of`), as
    /// the hub's read side builds it.
    pub fn open_intents(&self) -> Vec<PendingIntent> {
        self.messages
            .iter()
            .filter_map(|(id, message)| {
                let position = self.intent_positions.get(id).copied();
                debug_assert!(
                    message.intent.is_none() || position.is_some(),
                    "a message with an intent has its intent event's position"
                );
                OpenIntent::of(*id, message, position.unwrap_or(0)).map(PendingIntent::from)
            })
            .collect()
    }

    pub fn intent_position(&self, id: MessageId) -> Option<u64> {
        self.intent_positions.get(&id).copied()
    }
}

/// Event kinds the invariant checks look for, without re-deciding anything.
pub(crate) fn contact_of(event: &Event) -> Option<&ContactId> {
    match event {
        Event::Contact(event) => Some(event.contact()),
        _ => None,
    }
}

pub(crate) fn is_consent(event: &Event) -> Option<bool> {
    match event {
        Event::Contact(ContactEvent::OptedIn { .. }) => Some(true),
        Event::Contact(ContactEvent::OptedOut { .. }) => Some(false),
        _ => None,
    }
}

pub(crate) fn template_status(event: &Event, template: &TemplateId) -> Option<ApprovalStatus> {
    match event {
        Event::Template(TemplateEvent::Registered { template: t, .. }) if t == template => {
            Some(ApprovalStatus::Pending)
        }
        Event::Template(TemplateEvent::ApprovalChanged {
            template: t,
            status,
            ..
        }) if t == template => Some(*status),
        _ => None,
    }
}

pub(crate) fn sender_may_send(event: &Event, sender: &WhatsAppAddress) -> Option<bool> {
    match event {
        Event::Sender(SenderEvent::Authorized { sender: s, .. }) if s == sender => Some(true),
        Event::Sender(SenderEvent::Suspended { sender: s, .. }) if s == sender => Some(false),
        _ => None,
    }
}
