//! A campaign run through the domain's functions, as the hub's runner drives them
//! (`decide::send`, then `campaign::row_outcome` appended with the send's events, and
//! `campaign::complete`), over generated rows and consent: contacts opted in, never opted in,
//! opted out before the run, or opting out (a STOP) between two rows of the run, with a cancel
//! at a generated point and rows tried again (a retry, another hub, a runner that read the
//! campaign before the cancel). Checked on the log in order, independently of the aggregates:
//! no row is processed twice, no template goes to a contact whose last consent event is not an
//! opt-in, and nothing of the campaign is appended after its cancel.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};
use wagate_domain::campaign::{
    self, CampaignEvent, CreateCampaign, OnLimit, RowInput, RunCommand, RunState,
};
use wagate_domain::decide::{self, RecordOptIn, RecordOptOut, SendMessage, SendState};
use wagate_domain::{
    CampaignId, CampaignState, ContactEvent, ContactId, Event, MessageEvent, MessageId,
    OptInSource, OptOutSource, PhoneNumber, Recipient, RuleId, SendContent,
};

use crate::strategy::config;
use crate::world::{sender_address, template_id, Setup, World};

/// A row's contact before and during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consent {
    OptedIn,
    NeverOptedIn,
    /// Opted in, then opted out before the campaign started.
    OptedOut,
    /// Opted in, then sends STOP just before the runner tries row `before` (1-based; beyond the
    /// rows: after the run).
    StopsBefore(u32),
}

/// What the runner does after processing a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Next,
    /// Tries the row just processed again (a retry after a timeout, or a second hub).
    Retry,
}

#[derive(Debug, Clone)]
struct Plan {
    rows: Vec<Consent>,
    after_row: Vec<Then>,
    /// Cancelled just before the runner tries this row (1-based; beyond the rows: never).
    cancel_before: u32,
    /// After the cancel, the runner tries this many more rows anyway (it read the campaign
    /// before the cancel was appended).
    stale_tries: u32,
}

fn plan() -> impl Strategy<Value = Plan> {
    (1_usize..10).prop_flat_map(|n| {
        let last = n as u32 + 2;
        let consent = prop_oneof![
            3 => Just(Consent::OptedIn),
            1 => Just(Consent::NeverOptedIn),
            1 => Just(Consent::OptedOut),
            2 => (1..=last).prop_map(Consent::StopsBefore),
        ];
        let then = prop_oneof![3 => Just(Then::Next), 1 => Just(Then::Retry)];
        (
            prop::collection::vec(consent, n),
            prop::collection::vec(then, n),
            1..=last,
            0_u32..3,
        )
            .prop_map(|(rows, after_row, cancel_before, stale_tries)| Plan {
                rows,
                after_row,
                cancel_before,
                stale_tries,
            })
    })
}

fn number(row: usize) -> PhoneNumber {
    PhoneNumber::parse(&format!("+417910{row:05}")).expect("valid number")
}

/// One campaign's world: the shared world folds the contacts, senders, templates and
/// portfolios; the campaign's stream is folded here (the world ignores campaign events).
struct Run {
    world: World,
    campaign: CampaignState,
    next_message: u64,
}

impl Run {
    fn new() -> Self {
        let setup = Setup {
            second_sender: false,
            margin_minutes: 30,
            default_limit: 1000,
            approved: [true, true],
        };
        Self {
            world: World::new(&setup),
            campaign: CampaignState::default(),
            next_message: 0,
        }
    }

    fn tick(&mut self) {
        self.world.now += TimeDelta::seconds(1);
    }

    fn append(&mut self, events: &[Event]) {
        for event in events {
            if let Event::Campaign(e) = event {
                self.campaign = std::mem::take(&mut self.campaign).apply(e);
            }
        }
        self.world.append(events);
    }

    fn opt_in(&mut self, row: usize) {
        self.tick();
        let id = ContactId::Phone(number(row));
        let command = RecordOptIn {
            contact: id.clone(),
            source: OptInSource::WebForm,
            evidence: "https://acme.example/form".into(),
            recorded_by: "operator".into(),
            wording_version: self
                .world
                .wording
                .wording
                .as_ref()
                .map_or_else(String::new, |w| w.version.clone()),
            evidence_at: Some(self.world.now),
        };
        let events = decide::opt_in(
            &self.world.contact(Some(&id)),
            &self.world.wording,
            &command,
            self.world.now,
        )
        .expect("an operator's web-form opt-in with evidence of now");
        self.append(&events);
    }

    fn stop(&mut self, row: usize) {
        self.tick();
        let id = ContactId::Phone(number(row));
        let command = RecordOptOut {
            contact: id.clone(),
            source: OptOutSource::Keyword,
            detail: "STOP".into(),
        };
        let events = decide::opt_out(&self.world.contact(Some(&id)), &command, self.world.now);
        self.append(&events);
    }

    fn create(&mut self, rows: usize) {
        let command = CreateCampaign {
            campaign: CampaignId::parse("01900000-0000-7000-8000-00000000ca01").expect("v7 id"),
            sender: sender_address(0),
            workflow: wagate_domain::Workflow::parse("lead_qualification").expect("workflow"),
            template: template_id(0),
            placeholders: Some(vec!["1".into()]),
            rows: (1..=rows)
                .map(|row| RowInput {
                    to: number(row).to_string(),
                    variables: vec![("1".into(), format!("row {row}"))],
                })
                .collect(),
            on_limit: OnLimit::Refuse,
        };
        let events = campaign::create(&self.campaign, &command, self.world.now).expect("created");
        self.append(&events);
    }

    fn command(&mut self, command: RunCommand) {
        self.tick();
        let events = campaign::run_command(&self.campaign, command, self.world.now)
            .expect("a legal command");
        self.append(&events);
    }

    /// The runner's step for `row`, as the hub does it: the send decided against the current
    /// states, then the row's outcome from the current campaign state; a withdrawn row appends
    /// nothing. Whether something was appended.
    fn try_row(&mut self, row: u32) -> bool {
        self.tick();
        let Some(definition) = self.campaign.definition.clone() else {
            return false;
        };
        let Some(input) = definition.rows.get(row as usize - 1) else {
            return false;
        };
        self.next_message += 1;
        let message_id = MessageId::parse(&format!(
            "01900000-0000-7000-9000-{:012x}",
            self.next_message
        ))
        .expect("v7 id");
        let command = SendMessage {
            message_id,
            sender: definition.sender.clone(),
            to: Recipient::parse(&input.to.to_string()),
            workflow: Some(definition.workflow.to_string()),
            content: SendContent::Template {
                template: definition.template.clone(),
                variables: input.variables.iter().cloned().collect(),
                media: Vec::new(),
            },
        };
        let contact_id = ContactId::Phone(input.to.clone());
        let sender = self.world.sender(&command.sender);
        let contact = self.world.contact(Some(&contact_id));
        let template = self.world.template(&definition.template);
        let portfolio = sender
            .registration
            .as_ref()
            .and_then(|r| self.world.portfolios.get(&r.portfolio))
            .cloned()
            .unwrap_or_default();
        let state = SendState {
            sender: &sender,
            contact: &contact,
            linked: &[],
            template: &template,
            portfolio: &portfolio,
            confirmation: None,
        };
        let (mut events, refusal) =
            decide::send(&state, &command, &self.world.policy, self.world.now).into_parts();
        match campaign::row_outcome(
            &self.campaign,
            row,
            message_id,
            refusal.as_ref(),
            self.world.now,
        ) {
            Ok(outcome) => {
                events.push(outcome);
                self.append(&events);
                true
            }
            Err(_) => false,
        }
    }

    fn complete(&mut self) {
        if let Some(event) = campaign::complete(&self.campaign, self.world.now) {
            self.append(&[event]);
        }
    }
}

/// What one run did, for the properties and the generator's coverage.
struct Outcome {
    log: Vec<Event>,
    /// Rows tried and withdrawn (nothing appended).
    withdrawn_tries: u32,
    state: RunState,
}

fn run(plan: &Plan) -> Outcome {
    let mut run = Run::new();
    let n = plan.rows.len();
    for (index, consent) in plan.rows.iter().enumerate() {
        let row = index + 1;
        match consent {
            Consent::NeverOptedIn => {}
            Consent::OptedIn | Consent::StopsBefore(_) => run.opt_in(row),
            Consent::OptedOut => {
                run.opt_in(row);
                run.stop(row);
            }
        }
    }
    run.create(n);
    run.command(RunCommand::Start);
    let mut withdrawn_tries = 0;
    let mut stale_left = plan.stale_tries;
    let mut cancelled = false;
    // The runner goes row by row, as `CampaignState::next_row` says; after the cancel it may
    // still try rows it had read as next.
    let mut row = 1_u32;
    while row as usize <= n {
        for (index, consent) in plan.rows.iter().enumerate() {
            if *consent == Consent::StopsBefore(row) {
                run.stop(index + 1);
            }
        }
        if row == plan.cancel_before && !cancelled {
            run.command(RunCommand::Cancel);
            cancelled = true;
        }
        if cancelled {
            if stale_left == 0 {
                break;
            }
            stale_left -= 1;
        }
        if !run.try_row(row) {
            withdrawn_tries += 1;
        }
        if plan.after_row[row as usize - 1] == Then::Retry && !run.try_row(row) {
            withdrawn_tries += 1;
        }
        row += 1;
    }
    run.complete();
    // Late STOPs (after the last row) change nothing the run did.
    for (index, consent) in plan.rows.iter().enumerate() {
        if matches!(consent, Consent::StopsBefore(before) if *before as usize > n) {
            run.stop(index + 1);
        }
    }
    Outcome {
        log: run.world.log,
        withdrawn_tries,
        state: run.campaign.run,
    }
}

type Checked = Result<(), TestCaseError>;

/// Scans the log in order: rows processed once, templates only to contacts whose last consent
/// event is an opt-in, and nothing of the campaign after its cancel (or completion).
fn the_run_holds(plan: &Plan, outcome: &Outcome) -> Checked {
    let mut opted_in: BTreeMap<ContactId, bool> = BTreeMap::new();
    let mut processed = BTreeSet::new();
    let mut ended = None;
    for (position, event) in outcome.log.iter().enumerate() {
        let campaign_row = match event {
            Event::Contact(ContactEvent::OptedIn { contact, .. }) => {
                opted_in.insert(contact.clone(), true);
                None
            }
            Event::Contact(ContactEvent::OptedOut { contact, .. }) => {
                opted_in.insert(contact.clone(), false);
                None
            }
            Event::Message(MessageEvent::TemplateSent { contact, .. }) => {
                prop_assert!(
                    opted_in.get(contact) == Some(&true),
                    "a template to {contact} at position {position}, not opted in: {plan:?}"
                );
                prop_assert!(ended.is_none(), "a send after the end: {plan:?}");
                None
            }
            Event::Message(MessageEvent::SendRefused { .. }) => {
                prop_assert!(ended.is_none(), "a refusal after the end: {plan:?}");
                None
            }
            Event::Campaign(CampaignEvent::RowSent { row, .. })
            | Event::Campaign(CampaignEvent::RowRefused { row, .. }) => Some(*row),
            Event::Campaign(CampaignEvent::Cancelled { .. } | CampaignEvent::Completed { .. }) => {
                prop_assert!(ended.is_none(), "ended twice: {plan:?}");
                ended = Some(position);
                None
            }
            _ => None,
        };
        if let Some(row) = campaign_row {
            prop_assert!(
                ended.is_none(),
                "row {row} at {position} after the end at {ended:?}: {plan:?}"
            );
            prop_assert!(processed.insert(row), "row {row} processed twice: {plan:?}");
            prop_assert!(row >= 1 && row as usize <= plan.rows.len());
        }
    }
    // Every row is processed, or withdrawn by the cancel.
    let n = plan.rows.len();
    if plan.cancel_before as usize > n {
        prop_assert_eq!(outcome.state, RunState::Completed);
        prop_assert_eq!(processed.len(), n);
    } else {
        prop_assert_eq!(outcome.state, RunState::Cancelled);
        prop_assert_eq!(processed.len(), plan.cancel_before as usize - 1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_campaign_sends_each_row_once_only_with_consent_and_nothing_after_its_cancel(
        plan in plan(),
    ) {
        let outcome = run(&plan);
        the_run_holds(&plan, &outcome)?;
    }
}

/// Guards against a property that holds because nothing happens: over a fixed sample, rows
/// are sent and refused for each consent rule, a STOP lands between two rows and refuses its
/// contact's later row, cancels land mid-run, and retried or stale rows are withdrawn.
#[test]
fn the_campaign_generator_reaches_every_case() {
    let mut runner = TestRunner::deterministic();
    let strategy = plan();
    let mut rules = BTreeSet::new();
    let (mut sent, mut mid_cancels, mut withdrawn, mut stop_mid_run) = (0, 0, 0, 0);
    for _ in 0..256 {
        let plan = strategy.new_tree(&mut runner).expect("a plan").current();
        let outcome = run(&plan);
        for event in &outcome.log {
            match event {
                Event::Campaign(CampaignEvent::RowSent { .. }) => sent += 1,
                Event::Campaign(CampaignEvent::RowRefused { rule, .. }) => {
                    rules.insert(*rule);
                }
                _ => {}
            }
        }
        let n = plan.rows.len() as u32;
        if plan.cancel_before > 1 && plan.cancel_before <= n {
            mid_cancels += 1;
        }
        withdrawn += outcome.withdrawn_tries;
        stop_mid_run += plan
            .rows
            .iter()
            .enumerate()
            .filter(|(index, consent)| {
                matches!(consent, Consent::StopsBefore(before)
                    if *before > 1 && *before <= n && *index as u32 + 1 >= *before)
            })
            .count();
    }
    assert!(sent > 0, "no row sent");
    assert!(
        rules.contains(&RuleId::OptedOut) && rules.contains(&RuleId::NoOptIn),
        "refusals reached: {rules:?}"
    );
    assert!(mid_cancels > 0 && withdrawn > 0 && stop_mid_run > 0);
}
