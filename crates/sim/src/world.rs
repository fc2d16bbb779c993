//! The simulated world: a fake clock, the in-memory hub, the fake provider, a webhook queue
//! that duplicates, reorders, delays and drops callbacks, and a driver that runs the real
//! `Dispatcher::step` machine against them. Everything is single-threaded and deterministic:
//! a run is a list of [`Action`]s, and the same list gives the same run.
//!
//! The driver keeps effects and answers in one queue (`work`) and performs one item per
//! [`Action::Work`], chosen by index, so answers for different messages arrive in any order,
//! and [`Action::Crash`] can land between any two effects: it drops the machine and every
//! effect and answer not yet handled, and starts a new machine from the hub's state alone.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta};
use wagate_dispatch::{ClaimAnswer, Config, Dispatcher, Effect, HubAnswer, Input};
use wagate_domain::decide::{DispatchOutcome, RegisterTemplate, SendMessage};
use wagate_domain::{
    ApprovalStatus, ContactId, MessageId, MessageStatus, PhoneNumber, Policy, PortfolioId,
    Recipient, SendContent, TemplateCategory, TemplateId, Timestamp, WhatsAppAddress,
};

use crate::check::{self, Violation};
use crate::hub::{SimHub, SimRequest};
use crate::provider::{Callback, ProviderBehaviour, SimProvider};

/// Contacts in the world (indexes wrap).
pub const CONTACTS: usize = 3;
/// Templates: 0 is a utility template, 1 a marketing one, both approved at the start.
pub const TEMPLATES: usize = 2;

/// What an inbound message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundText {
    Hello,
    Stop,
    Start,
}

/// How the hub's answers fail (the HTTP link to a separate dispatcher, or a hub restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubFault {
    None,
    /// The request never reached the hub: nothing appended, `Unavailable`.
    LoseRequest,
    /// The hub did the work, the answer was lost: appended, yet `Unavailable`.
    LoseAnswer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    OptIn(usize),
    OptOut(usize),
    Inbound(usize, InboundText),
    SendTemplate {
        contact: usize,
        template: usize,
    },
    SendFreeform(usize),
    SetTemplateApproved {
        template: usize,
        approved: bool,
    },
    /// An operator authorizes the sender again (after a 63007 suspended it).
    AuthorizeSender,
    /// The driver asks the hub for open intents; the answer joins the work queue (it may
    /// arrive late, after newer answers).
    Poll,
    /// Performs one queued effect or delivers one queued answer (index wraps).
    Work(usize),
    Tick,
    Advance(TimeDelta),
    /// Jumps to the dispatcher's requested wake-up (a retry's `not_before`, a rate limit, an
    /// in-doubt expiry) plus `offset_ms` (negative: just before it), if that is in the future.
    AdvanceToWake {
        offset_ms: i64,
    },
    /// Jumps to where the contact's 24 h window closes (safety margin included) plus
    /// `offset_ms`, if that is in the future.
    AdvanceToWindowEdge {
        contact: usize,
        offset_ms: i64,
    },
    /// Kills the dispatcher between two effects and restarts it from the hub.
    Crash,
    Shutdown,
    /// Delivers a queued callback; `keep` leaves it queued, so it arrives again later.
    Deliver {
        index: usize,
        keep: bool,
    },
    /// Loses a queued callback for good.
    DropCallback(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    Effect(Effect<SimRequest>),
    Answer(Input<SimRequest>),
}

#[derive(Debug)]
pub struct World {
    pub now: Timestamp,
    pub hub: SimHub,
    pub provider: SimProvider,
    pub webhooks: Vec<Callback>,
    pub dispatcher: Dispatcher,
    work: Vec<Work>,
    config: Config,
    hub_faults: Vec<HubFault>,
    hub_fault_next: usize,
    incarnation: u64,
    shutdown_requested: bool,
    pub stopped: bool,
    sender: WhatsAppAddress,
    contacts: Vec<ContactId>,
    templates: Vec<TemplateId>,
    messages_sent: u64,
    /// Each message's status after the previous action (it must never move backwards).
    statuses: BTreeMap<MessageId, MessageStatus>,
    /// The next time the dispatcher asked to be woken.
    pub wake: Option<Timestamp>,
    pub crashes: u32,
    calls_checked: usize,
}

fn start() -> Timestamp {
    // 2026-01-01T00:00:00Z.
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

fn number(n: u64) -> Result<PhoneNumber, Violation> {
    PhoneNumber::parse(&format!("+1555{n:07}")).map_err(|e| Violation(e.to_string()))
}

impl World {
    /// A world with one authorized Twilio sender, approved templates, contacts who have not
    /// opted in yet, and the given provider script, hub faults and machine seed.
    pub fn new(
        provider_script: Vec<ProviderBehaviour>,
        hub_faults: Vec<HubFault>,
        seed: u64,
    ) -> Result<Self, Violation> {
        let now = start();
        let policy = Policy::default();
        let mut hub = SimHub::new(policy.clone());
        let sender = WhatsAppAddress::from_number(number(9_000_000)?);
        let portfolio =
            PortfolioId::parse("sim_portfolio").map_err(|e| Violation(e.to_string()))?;
        hub.add_sender(&sender, &portfolio, now);
        let mut templates = Vec::new();
        for (index, category) in [TemplateCategory::Utility, TemplateCategory::Marketing]
            .into_iter()
            .enumerate()
        {
            let template = TemplateId::parse(&format!("sim_template_{index}"))
                .map_err(|e| Violation(e.to_string()))?;
            hub.add_template(
                &RegisterTemplate {
                    template: template.clone(),
                    name: format!("sim_template_{index}"),
                    language: "en".into(),
                    category,
                    placeholders: vec!["1".into()],
                },
                now,
            );
            hub.set_template_status(&template, ApprovalStatus::Approved, now);
            templates.push(template);
        }
        let contacts = (0..CONTACTS as u64)
            .map(|n| number(n).map(ContactId::Phone))
            .collect::<Result<Vec<_>, _>>()?;
        let config = Config::from_policy(&policy, seed);
        let mut world = Self {
            now,
            dispatcher: Dispatcher::new(config.clone(), 0),
            hub,
            provider: SimProvider::new(provider_script),
            webhooks: Vec::new(),
            work: Vec::new(),
            config,
            hub_faults,
            hub_fault_next: 0,
            incarnation: 0,
            shutdown_requested: false,
            stopped: false,
            sender,
            contacts,
            templates,
            messages_sent: 0,
            statuses: BTreeMap::new(),
            wake: None,
            crashes: 0,
            calls_checked: 0,
        };
        world.restart();
        Ok(world)
    }

    pub fn contact(&self, index: usize) -> &ContactId {
        &self.contacts[index % self.contacts.len()]
    }

    pub fn template(&self, index: usize) -> &TemplateId {
        &self.templates[index % self.templates.len()]
    }

    /// Effects and answers not yet handled.
    pub fn work_len(&self) -> usize {
        self.work.len()
    }

    pub fn set_hub_faults(&mut self, faults: Vec<HubFault>) {
        self.hub_faults = faults;
        self.hub_fault_next = 0;
    }

    /// Performs one action, then checks every invariant.
    pub fn apply(&mut self, action: &Action) -> Result<(), Violation> {
        match action {
            Action::OptIn(contact) => {
                let contact = self.contact(*contact).clone();
                self.hub.opt_in(&contact, self.now);
            }
            Action::OptOut(contact) => {
                let contact = self.contact(*contact).clone();
                self.hub.opt_out(&contact, self.now);
            }
            Action::Inbound(contact, text) => {
                let contact = self.contact(*contact).clone();
                let text = match text {
                    InboundText::Hello => "hello, is the viewing still on?",
                    InboundText::Stop => "STOP",
                    InboundText::Start => "START",
                };
                let sender = self.sender.clone();
                self.hub.inbound(&contact, &sender, text, self.now);
            }
            Action::SendTemplate { contact, template } => {
                let content = SendContent::Template {
                    media: Vec::new(),
                    template: self.template(*template).clone(),
                    variables: [("1".to_owned(), "Ada".to_owned())].into_iter().collect(),
                };
                self.send(*contact, content)?;
            }
            Action::SendFreeform(contact) => {
                let content = SendContent::Freeform {
                    text: "your viewing is at 10:00".into(),
                };
                self.send(*contact, content)?;
            }
            Action::SetTemplateApproved { template, approved } => {
                let template = self.template(*template).clone();
                let status = if *approved {
                    ApprovalStatus::Approved
                } else {
                    ApprovalStatus::Paused
                };
                self.hub.set_template_status(&template, status, self.now);
            }
            Action::AuthorizeSender => {
                let sender = self.sender.clone();
                self.hub.authorize_sender(&sender, self.now);
            }
            Action::Poll => self.work.push(Work::Answer(self.snapshot())),
            Action::Work(index) => self.work_one(*index)?,
            Action::Tick => self.feed(Input::Tick)?,
            Action::Advance(by) => {
                self.now += *by;
                self.feed(Input::Tick)?;
            }
            Action::AdvanceToWake { offset_ms } => {
                if let Some(wake) = self.wake {
                    self.advance_to(wake + TimeDelta::milliseconds(*offset_ms))?;
                }
            }
            Action::AdvanceToWindowEdge { contact, offset_ms } => {
                let margin = self.hub.policy.window_safety_margin;
                let closes = self
                    .hub
                    .contact(self.contact(*contact))
                    .window_open_until(margin);
                if let Some(closes) = closes {
                    self.advance_to(closes + TimeDelta::milliseconds(*offset_ms))?;
                }
            }
            Action::Crash => {
                self.crashes += 1;
                self.restart();
            }
            Action::Shutdown => {
                self.shutdown_requested = true;
                self.feed(Input::ShutdownRequested)?;
            }
            Action::Deliver { index, keep } => self.deliver(*index, *keep)?,
            Action::DropCallback(index) => {
                if !self.webhooks.is_empty() {
                    let index = index % self.webhooks.len();
                    self.webhooks.remove(index);
                }
            }
        }
        self.check()
    }

    fn advance_to(&mut self, at: Timestamp) -> Result<(), Violation> {
        if at > self.now {
            self.now = at;
            self.feed(Input::Tick)?;
        }
        Ok(())
    }

    fn send(&mut self, contact: usize, content: SendContent) -> Result<(), Violation> {
        self.messages_sent += 1;
        let mut random = [0_u8; 10];
        random[2..].copy_from_slice(&self.messages_sent.to_be_bytes());
        let millis = u64::try_from(self.now.timestamp_millis()).unwrap_or(0);
        let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
        let message_id = MessageId::from_uuid(uuid).map_err(|e| Violation(e.to_string()))?;
        let command = SendMessage {
            message_id,
            sender: self.sender.clone(),
            to: Recipient::of_contact(self.contact(contact)),
            workflow: Some("appointment_scheduling".into()),
            content,
        };
        // A refusal is recorded by the hub; nothing more to do here.
        let _ = self.hub.send(&command, self.now);
        Ok(())
    }

    fn snapshot(&self) -> Input<SimRequest> {
        Input::IntentsAvailable {
            intents: self.hub.open_intents(),
            read_up_to: self.hub.head(),
        }
    }

    /// A new machine, knowing only what the hub's log says.
    fn restart(&mut self) {
        self.incarnation += 1;
        let config = Config {
            seed: self.config.seed.wrapping_add(self.incarnation),
            ..self.config.clone()
        };
        self.dispatcher = Dispatcher::new(config, self.hub.checkpoint());
        self.work.clear();
        self.wake = None;
        self.shutdown_requested = false;
        self.stopped = false;
        self.work.push(Work::Answer(self.snapshot()));
    }

    fn next_fault(&mut self) -> HubFault {
        let fault = self
            .hub_faults
            .get(self.hub_fault_next % self.hub_faults.len().max(1))
            .copied()
            .unwrap_or(HubFault::None);
        self.hub_fault_next += 1;
        fault
    }

    /// Feeds the machine and queues what it asks for; waking and checkpoints are taken at
    /// once (they are not requests that can be answered late).
    fn feed(&mut self, input: Input<SimRequest>) -> Result<(), Violation> {
        let effects = self.dispatcher.step(input, self.now);
        for effect in effects {
            match effect {
                Effect::SleepUntil(at) => self.wake = Some(at),
                Effect::SaveCheckpoint(position) => {
                    if position < self.hub.checkpoint() {
                        return Err(Violation(format!(
                            "checkpoint moved back from {} to {position}",
                            self.hub.checkpoint()
                        )));
                    }
                    self.hub.save_checkpoint(position);
                }
                Effect::Stopped => self.stopped = true,
                Effect::Claim { message_id } if self.shutdown_requested => {
                    return Err(Violation(format!(
                        "claim of {message_id} after the shutdown request"
                    )));
                }
                other => self.work.push(Work::Effect(other)),
            }
        }
        Ok(())
    }

    fn work_one(&mut self, index: usize) -> Result<(), Violation> {
        if self.work.is_empty() {
            return Ok(());
        }
        let item = self.work.remove(index % self.work.len());
        let now = self.now;
        match item {
            Work::Answer(input) => self.feed(input)?,
            Work::Effect(Effect::Claim { message_id }) => {
                let answer = match self.next_fault() {
                    HubFault::None => self.hub.claim(message_id, now),
                    HubFault::LoseRequest => ClaimAnswer::Unavailable,
                    HubFault::LoseAnswer => {
                        self.hub.claim(message_id, now);
                        ClaimAnswer::Unavailable
                    }
                };
                self.work
                    .push(Work::Answer(Input::ClaimAnswered { message_id, answer }));
            }
            Work::Effect(Effect::CallProvider {
                message_id,
                attempt,
                request,
            }) => {
                if request.message_id != message_id || request.attempt != attempt {
                    return Err(Violation(format!(
                        "call for {message_id}#{attempt} carries the request of {}#{}",
                        request.message_id, request.attempt
                    )));
                }
                let (outcome, callbacks) = self.provider.call(&request, now, self.hub.head());
                self.webhooks.extend(callbacks);
                // The scripted provider's transport failures are timeouts and lost responses:
                // the provider may have the message, so the driver answers "in doubt" and
                // records nothing (wagate_dispatch::provider_answer).
                let answer = match outcome {
                    DispatchOutcome::Transport { .. } => Input::ProviderInDoubt {
                        message_id,
                        attempt,
                    },
                    outcome => Input::ProviderAnswered {
                        message_id,
                        attempt,
                        outcome,
                    },
                };
                self.work.push(Work::Answer(answer));
            }
            Work::Effect(Effect::RecordOutcome(command)) => {
                let message_id = command.message_id;
                let answer = match self.next_fault() {
                    HubFault::None => self.hub.record_outcome(&command, now),
                    HubFault::LoseRequest => HubAnswer::Unavailable,
                    HubFault::LoseAnswer => {
                        self.hub.record_outcome(&command, now);
                        HubAnswer::Unavailable
                    }
                };
                self.work
                    .push(Work::Answer(Input::OutcomeRecorded { message_id, answer }));
            }
            Work::Effect(Effect::ExpireInDoubt { message_id, .. }) => {
                let answer = match self.next_fault() {
                    HubFault::None => self.hub.expire_in_doubt(message_id, now),
                    HubFault::LoseRequest => HubAnswer::Unavailable,
                    HubFault::LoseAnswer => {
                        self.hub.expire_in_doubt(message_id, now);
                        HubAnswer::Unavailable
                    }
                };
                self.work
                    .push(Work::Answer(Input::ExpiryAnswered { message_id, answer }));
            }
            // Handled in `feed`, never queued.
            Work::Effect(Effect::SleepUntil(_) | Effect::SaveCheckpoint(_) | Effect::Stopped) => {}
        }
        Ok(())
    }

    fn deliver(&mut self, index: usize, keep: bool) -> Result<(), Violation> {
        if self.webhooks.is_empty() {
            return Ok(());
        }
        let index = index % self.webhooks.len();
        let callback = if keep {
            self.webhooks[index].clone()
        } else {
            self.webhooks.remove(index)
        };
        let seen_before = self.hub.has_webhook(callback.webhook_id);
        let appended = self.hub.status_callback(
            callback.webhook_id,
            Some(callback.message_id),
            &callback.provider_ref,
            &callback.status,
            callback.error_code,
            self.now,
        );
        if seen_before && appended > 0 {
            return Err(Violation(format!(
                "a duplicate callback ({}) appended {appended} events",
                callback.webhook_id
            )));
        }
        Ok(())
    }

    /// Runs the world to rest with no faults: every queued item handled, every callback
    /// delivered, time advanced to each wake-up the dispatcher asks for (a stopped dispatcher
    /// is started again), until the hub has no open message. Fails if a message stays open
    /// with no wake-up to move it, or after `rounds_max` rounds. Checks the invariants after
    /// every action.
    pub fn settle(&mut self, rounds_max: usize) -> Result<(), Violation> {
        self.set_hub_faults(Vec::new());
        for _ in 0..rounds_max {
            self.drain()?;
            while !self.webhooks.is_empty() {
                self.apply(&Action::Deliver {
                    index: 0,
                    keep: false,
                })?;
            }
            if self.stopped {
                self.apply(&Action::Crash)?;
            }
            self.apply(&Action::Poll)?;
            self.drain()?;
            let open = self.hub.open_intents();
            if open.is_empty() {
                return Ok(());
            }
            match self.wake {
                Some(wake) if wake > self.now => self.apply(&Action::Advance(wake - self.now))?,
                _ if self.stopped => {}
                _ => {
                    return Err(Violation(format!(
                        "stuck: {} open with no wake-up at {}: {:?}",
                        open.len(),
                        self.now,
                        open.iter()
                            .map(|intent| (intent.message_id, &intent.phase))
                            .collect::<Vec<_>>()
                    )))
                }
            }
        }
        Err(Violation(format!(
            "still open after {rounds_max} rounds: {:?}",
            self.hub.open_intents()
        )))
    }

    fn drain(&mut self) -> Result<(), Violation> {
        while !self.work.is_empty() {
            self.apply(&Action::Work(0))?;
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), Violation> {
        check::log_is_contiguous(&self.hub)?;
        self.calls_checked =
            check::calls_were_allowed(&self.hub, &self.provider.calls, self.calls_checked)?;
        check::statuses_move_forward(&self.hub, &mut self.statuses)?;
        check::checkpoint_passes_no_open_message(&self.hub)?;
        Ok(())
    }
}
