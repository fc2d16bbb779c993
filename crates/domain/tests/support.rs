//! A small fixture: one sender, one contact, one template and their portfolio, built by running
//! the domain's own commands and folding the events they return (as the app does).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta};
use wagate_domain::decide::{
    self, ClaimDecision, ClaimDispatch, SendDecision, SendMessage, SendState,
};
use wagate_domain::{
    Aggregate, ApprovalStatus, ContactEvent, ContactFlag, ContactId, ContactState, Event,
    MessageEvent, MessageId, MessageState, MessagingLimit, OptInSource, PhoneNumber, Policy,
    PortfolioId, PortfolioState, ProviderKind, Recipient, Refusal, RuleId, SendContent,
    SenderState, TemplateCategory, TemplateId, TemplateState, Timestamp, WhatsAppAddress,
};

/// The consent wording every fixture opt-in cites, published (its `consent-wording` stream).
pub fn published_wording() -> wagate_domain::ConsentState {
    use wagate_domain::consent::{publish_wording, PublishWording};
    let events = publish_wording(
        &wagate_domain::ConsentState::default(),
        &PublishWording {
            business: "Acme Homes".into(),
            language: "en".into(),
            text: "I agree to receive WhatsApp messages from Acme Homes.".into(),
        },
        t0() - TimeDelta::days(400),
    )
    .expect("published");
    events.iter().fold(
        wagate_domain::ConsentState::default(),
        |state, event| match event {
            Event::Consent(e) => state.apply(e),
            _ => state,
        },
    )
}

/// The version of [`published_wording`].
pub fn published_wording_version() -> String {
    published_wording().wording.expect("published").version
}

/// 2026-11-25 09:00:00 UTC: every test counts from here, never from the wall clock.
pub fn t0() -> Timestamp {
    DateTime::from_timestamp(1_795_597_200, 0).expect("valid timestamp")
}

pub fn ms(n: i64) -> TimeDelta {
    TimeDelta::milliseconds(n)
}

pub fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

pub fn mins(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

pub fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

pub fn message_id(n: u64) -> MessageId {
    MessageId::parse(&format!("01900000-0000-7000-8000-{n:012x}")).expect("valid v7 id")
}

pub fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).expect("valid number")
}

pub fn contact_id(text: &str) -> ContactId {
    ContactId::Phone(phone(text))
}

pub fn address(text: &str) -> WhatsAppAddress {
    WhatsAppAddress::from_number(phone(text))
}

pub fn template_id(text: &str) -> TemplateId {
    TemplateId::parse(text).expect("valid template id")
}

pub fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub const SENDER: &str = "+15550001111";
pub const TO: &str = "+41790000001";
pub const TEMPLATE: &str = "viewing_reminder";
pub const WORKFLOW: &str = "appointment_scheduling";

/// The states a decision reads, plus the policy. Starts empty; the builders below fill it.
#[derive(Debug, Clone)]
pub struct Fx {
    pub policy: Policy,
    pub sender_address: WhatsAppAddress,
    pub sender: SenderState,
    pub contact_id: ContactId,
    pub contact: ContactState,
    /// The states of the contact's linked identities (the hub loads them).
    pub linked: Vec<ContactState>,
    pub template_id: TemplateId,
    pub template: TemplateState,
    pub portfolio: PortfolioState,
    pub log: Vec<Event>,
    next_id: u64,
}

impl Fx {
    pub fn empty() -> Self {
        Self {
            policy: Policy::default(),
            sender_address: address(SENDER),
            sender: SenderState::default(),
            contact_id: contact_id(TO),
            contact: ContactState::default(),
            linked: Vec::new(),
            template_id: template_id(TEMPLATE),
            template: TemplateState::default(),
            portfolio: PortfolioState::default(),
            log: Vec::new(),
            next_id: 0,
        }
    }

    /// Everything allowed for a template send at `t0()`: an authorized sender, an opted-in
    /// contact and an approved utility template with one placeholder `"1"`.
    pub fn ready() -> Self {
        let mut fx = Self::empty();
        fx.register_sender(t0() - hours(48));
        fx.authorize_sender(t0() - hours(48));
        fx.register_template(TemplateCategory::Utility, &["1"], t0() - hours(48));
        fx.set_template(ApprovalStatus::Approved, t0() - hours(47));
        fx.opt_in(OptInSource::WebForm, t0() - hours(30));
        fx
    }

    /// Folds events into the aggregate each belongs to (only this fixture's aggregates).
    pub fn apply(&mut self, events: &[Event]) {
        for event in events {
            self.log.push(event.clone());
            match event {
                Event::Contact(e) if e.contact() == &self.contact_id => {
                    self.contact = self.contact.clone().apply(e);
                }
                Event::Sender(e) if e.sender() == &self.sender_address => {
                    self.sender = self.sender.clone().apply(e);
                }
                Event::Template(e) if e.template() == &self.template_id => {
                    self.template = self.template.clone().apply(e);
                }
                Event::Portfolio(e) => self.portfolio = self.portfolio.clone().apply(e),
                _ => {}
            }
        }
    }

    pub fn register_sender(&mut self, at: Timestamp) {
        let command = decide::RegisterSender {
            sender: self.sender_address.clone(),
            provider: ProviderKind::Twilio,
            portfolio: PortfolioId::parse("acme").expect("valid"),
            rate: Default::default(),
            meta_phone_number_id: None,
        };
        let events = decide::register_sender(&self.sender, &command, at).expect("registers");
        self.apply(&events);
    }

    pub fn authorize_sender(&mut self, at: Timestamp) {
        let events = decide::authorize_sender(&self.sender, &self.sender_address, "ops@acme", at)
            .expect("authorizes");
        self.apply(&events);
    }

    pub fn suspend_sender(&mut self, at: Timestamp) {
        let events =
            decide::suspend_sender(&self.sender, &self.sender_address, "quality rating low", at)
                .expect("suspends");
        self.apply(&events);
    }

    pub fn register_template(
        &mut self,
        category: TemplateCategory,
        placeholders: &[&str],
        at: Timestamp,
    ) {
        let command = decide::RegisterTemplate {
            template: self.template_id.clone(),
            name: TEMPLATE.into(),
            language: "en".into(),
            category,
            placeholders: placeholders.iter().map(|p| (*p).to_owned()).collect(),
        };
        let events = decide::register_template(&self.template, &command, at).expect("registers");
        self.apply(&events);
    }

    pub fn set_template(&mut self, status: ApprovalStatus, at: Timestamp) {
        let events =
            decide::set_template_status(&self.template, &self.template_id, status, "test", at)
                .expect("template exists");
        self.apply(&events);
    }

    pub fn opt_in(&mut self, source: OptInSource, at: Timestamp) {
        let command = decide::RecordOptIn {
            contact: self.contact_id.clone(),
            source,
            evidence: "https://acme.example/form/42".into(),
            recorded_by: "agent:lea".into(),
            wording_version: published_wording_version(),
            evidence_at: None,
        };
        let events = decide::opt_in(&self.contact, &published_wording(), &command, at)
            .expect("valid opt-in");
        self.apply(&events);
    }

    pub fn opt_out(&mut self, at: Timestamp) {
        let command = decide::RecordOptOut {
            contact: self.contact_id.clone(),
            source: wagate_domain::OptOutSource::Operator,
            detail: "asked by phone".into(),
        };
        let events = decide::opt_out(&self.contact, &command, at);
        self.apply(&events);
    }

    /// An inbound message from the contact; returns what `decide::inbound` emitted.
    pub fn inbound(&mut self, kind: &str, text: &str, at: Timestamp) -> Vec<Event> {
        let command = decide::ReceiveInbound {
            details: Vec::new(),
            contact: self.contact_id.clone(),
            sender: Some(self.sender_address.clone()),
            provider_ref: None,
            kind: kind.into(),
            text: text.into(),
            provider_at: None,
        };
        let events =
            decide::inbound(&self.contact, &command, &self.policy, at).expect("valid inbound");
        self.apply(&events);
        events
    }

    pub fn flag(&mut self, flag: ContactFlag, at: Timestamp) {
        let command = decide::SetContactFlag {
            contact: self.contact_id.clone(),
            flag,
            raised: true,
            reason: "test".into(),
        };
        let events = decide::set_contact_flag(&self.contact, &command, at);
        self.apply(&events);
    }

    pub fn set_limit(&mut self, limit: MessagingLimit, at: Timestamp) {
        let portfolio = PortfolioId::parse("acme").expect("valid");
        let events = decide::set_messaging_limit(&self.portfolio, &portfolio, limit, at);
        self.apply(&events);
    }

    pub fn state(&self) -> SendState<'_> {
        SendState {
            sender: &self.sender,
            contact: &self.contact,
            linked: &self.linked,
            template: &self.template,
            portfolio: &self.portfolio,
            confirmation: None,
        }
    }

    pub fn next_message_id(&mut self) -> MessageId {
        self.next_id += 1;
        message_id(self.next_id)
    }

    pub fn template_send(&mut self, variables: BTreeMap<String, String>) -> SendMessage {
        SendMessage {
            message_id: self.next_message_id(),
            sender: self.sender_address.clone(),
            to: Recipient::parse(TO),
            workflow: Some(WORKFLOW.into()),
            content: SendContent::Template {
                media: Vec::new(),
                template: self.template_id.clone(),
                variables,
            },
        }
    }

    pub fn default_template_send(&mut self) -> SendMessage {
        self.template_send(vars(&[("1", "Lea")]))
    }

    pub fn freeform_send(&mut self) -> SendMessage {
        SendMessage {
            message_id: self.next_message_id(),
            sender: self.sender_address.clone(),
            to: Recipient::parse(TO),
            workflow: Some(WORKFLOW.into()),
            content: SendContent::Freeform {
                text: "Thursday at 10 works".into(),
            },
        }
    }

    pub fn send(&mut self, command: &SendMessage, now: Timestamp) -> Result<Vec<Event>, Refusal> {
        let decision = decide::send(&self.state(), command, &self.policy, now);
        self.apply(decision.events());
        match decision {
            SendDecision::Allowed { events } => Ok(events),
            SendDecision::Refused { refusal, .. } => Err(refusal),
        }
    }

    /// Sends and expects it allowed; returns the message's state after the decision.
    pub fn allowed(&mut self, command: &SendMessage, now: Timestamp) -> MessageState {
        let events = self.send(command, now).expect("allowed");
        message_state(&events)
    }

    pub fn claim(&mut self, message: &MessageState, now: Timestamp) -> ClaimDecision {
        let id = message.id.expect("message has an id");
        let decision = decide::claim(
            message,
            &self.state(),
            &ClaimDispatch { message_id: id },
            &self.policy,
            now,
        )
        .expect("claimable");
        match &decision {
            ClaimDecision::Claimed { events, .. } | ClaimDecision::Refused { events, .. } => {
                self.apply(events)
            }
        }
        decision
    }
}

/// Folds the message events among `events` into a fresh message state.
pub fn message_state(events: &[Event]) -> MessageState {
    fold_message(MessageState::default(), events)
}

pub fn fold_message(state: MessageState, events: &[Event]) -> MessageState {
    let message_events: Vec<MessageEvent> = events
        .iter()
        .filter_map(|event| match event {
            Event::Message(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    state.replay(&message_events)
}

/// The contact events among `events`.
pub fn contact_events(events: &[Event]) -> Vec<ContactEvent> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Contact(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub fn type_names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::type_name).collect()
}

/// Asserts a refusal: the rule, a fragment of its sentence, and the other broken rules in order.
#[track_caller]
pub fn check_refusal(
    result: &Result<Vec<Event>, Refusal>,
    rule: RuleId,
    fragment: &str,
    also: &[RuleId],
) {
    match result {
        Ok(events) => panic!("expected {rule} refusal, got {:?}", type_names(events)),
        Err(refusal) => {
            assert_eq!(refusal.rule, rule, "{refusal}");
            assert!(
                refusal.message.contains(fragment),
                "{rule}: {:?} does not contain {fragment:?}",
                refusal.message
            );
            assert_eq!(refusal.also_broken, also, "{refusal}");
        }
    }
}
