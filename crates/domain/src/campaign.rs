//! Campaigns: one template sent to a list of recipients, each row an ordinary send through every
//! gate (docs/campaigns.md).
//!
//! A campaign is the aggregate on stream `campaign:<id>`: its definition (`Created`), its run
//! state (`Started`, `Paused`, `Cancelled`, `Completed`) and one outcome per row (`RowSent`,
//! `RowRefused`). A row's outcome is appended in the same append as the send's own events, with
//! this stream's expected version, so the log orders a cancel against every row and a row is
//! processed at most once ([`row_outcome`]). `Listed` goes to the index stream `campaigns:index`, so a
//! hub finds every campaign (and resumes the running ones) by reading one stream.

pub mod preview;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::decide::CommandError;
use crate::events::Event;
use crate::ids::{CampaignId, MessageId, PhoneNumber, TemplateId, WhatsAppAddress, Workflow};
use crate::rules::{Refusal, RuleId};
use crate::Timestamp;

/// The most rows one campaign may hold: the whole list is one event (and one state in memory),
/// so a bigger list is split into several campaigns.
pub const ROWS_MAX: usize = 10_000;
/// How many row errors a refused create lists (the count says how many there were).
pub const ROW_ERRORS_LISTED: usize = 20;
/// The name of the index stream.
pub const INDEX_STREAM: &str = "campaigns:index";

/// What to do with a row that would exceed the portfolio's messaging limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnLimit {
    /// Hold the row until the rolling 24 h frees headroom (nothing is recorded meanwhile).
    Wait,
    /// Send it anyway, so the gate refuses it with `tier_limit`, recorded like any refusal.
    Refuse,
}

impl OnLimit {
    pub const ALL: [Self; 2] = [Self::Wait, Self::Refuse];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::Refuse => "refuse",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|value| value.as_str() == input)
    }
}

/// One recipient of a campaign with its template variables (sorted by key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CampaignRow {
    pub to: PhoneNumber,
    pub variables: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignEvent {
    /// A campaign and its whole list; nothing is sent until it is started.
    Created {
        campaign: CampaignId,
        sender: WhatsAppAddress,
        workflow: Workflow,
        template: TemplateId,
        rows: Vec<CampaignRow>,
        on_limit: OnLimit,
        at: Timestamp,
    },
    /// The campaign's entry in the index stream `campaigns:index` (appended with `Created`).
    Listed {
        campaign: CampaignId,
        at: Timestamp,
    },
    /// Started, or resumed after a pause: its rows are processed in order.
    Started {
        campaign: CampaignId,
        at: Timestamp,
    },
    Paused {
        campaign: CampaignId,
        at: Timestamp,
    },
    /// The rows not processed yet are withdrawn (`withdrawn` of them); messages already
    /// requested go on and stay tracked.
    Cancelled {
        campaign: CampaignId,
        withdrawn: u32,
        at: Timestamp,
    },
    /// Row `row` (1-based) was allowed: `message` is its intent, appended with this.
    RowSent {
        campaign: CampaignId,
        row: u32,
        message: MessageId,
        at: Timestamp,
    },
    /// Row `row` was refused by `rule`: `message` is its `SendRefused`, appended with this.
    RowRefused {
        campaign: CampaignId,
        row: u32,
        message: MessageId,
        rule: RuleId,
        at: Timestamp,
    },
    /// Every row was processed.
    Completed {
        campaign: CampaignId,
        at: Timestamp,
    },
}

impl CampaignEvent {
    pub fn campaign(&self) -> CampaignId {
        match self {
            Self::Created { campaign, .. }
            | Self::Listed { campaign, .. }
            | Self::Started { campaign, .. }
            | Self::Paused { campaign, .. }
            | Self::Cancelled { campaign, .. }
            | Self::RowSent { campaign, .. }
            | Self::RowRefused { campaign, .. }
            | Self::Completed { campaign, .. } => *campaign,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::Created { at, .. }
            | Self::Listed { at, .. }
            | Self::Started { at, .. }
            | Self::Paused { at, .. }
            | Self::Cancelled { at, .. }
            | Self::RowSent { at, .. }
            | Self::RowRefused { at, .. }
            | Self::Completed { at, .. } => *at,
        }
    }

    /// The store's stream name: the index for `Listed`, the campaign's own otherwise.
    pub fn stream_name(&self) -> String {
        match self {
            Self::Listed { .. } => INDEX_STREAM.to_owned(),
            other => stream_name(other.campaign()),
        }
    }
}

pub fn stream_name(campaign: CampaignId) -> String {
    format!("campaign:{campaign}")
}

impl From<CampaignEvent> for Event {
    fn from(event: CampaignEvent) -> Self {
        Self::Campaign(event)
    }
}

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RunState {
    /// Created, not started: nothing is sent.
    #[default]
    Draft,
    Running,
    Paused,
    Cancelled,
    Completed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Completed => "completed",
        }
    }

    /// Cancelled or completed: nothing more happens to its rows.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Cancelled | Self::Completed)
    }
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowOutcome {
    Sent(MessageId),
    Refused { message: MessageId, rule: RuleId },
}

/// A campaign's definition, as created (shared: it never changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDefinition {
    pub id: CampaignId,
    pub sender: WhatsAppAddress,
    pub workflow: Workflow,
    pub template: TemplateId,
    pub rows: Vec<CampaignRow>,
    pub on_limit: OnLimit,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CampaignState {
    pub definition: Option<Arc<CampaignDefinition>>,
    pub run: RunState,
    /// One entry per row, in row order (`None`: not processed).
    outcomes: Arc<Vec<Option<RowOutcome>>>,
    /// Rows before this one are all processed (rows are processed in order).
    next: usize,
    /// Rows withdrawn by the cancellation.
    pub withdrawn: u32,
}

impl CampaignState {
    pub fn apply(mut self, event: &CampaignEvent) -> Self {
        match event {
            CampaignEvent::Created {
                campaign,
                sender,
                workflow,
                template,
                rows,
                on_limit,
                at,
            } => {
                self.outcomes = Arc::new(vec![None; rows.len()]);
                self.definition = Some(Arc::new(CampaignDefinition {
                    id: *campaign,
                    sender: sender.clone(),
                    workflow: workflow.clone(),
                    template: template.clone(),
                    rows: rows.clone(),
                    on_limit: *on_limit,
                    created_at: *at,
                }));
            }
            CampaignEvent::Listed { .. } => {}
            CampaignEvent::Started { .. } => self.run = RunState::Running,
            CampaignEvent::Paused { .. } => self.run = RunState::Paused,
            CampaignEvent::Cancelled { withdrawn, .. } => {
                self.run = RunState::Cancelled;
                self.withdrawn = *withdrawn;
            }
            CampaignEvent::Completed { .. } => self.run = RunState::Completed,
            CampaignEvent::RowSent { row, message, .. } => {
                self.record(*row, RowOutcome::Sent(*message));
            }
            CampaignEvent::RowRefused {
                row, message, rule, ..
            } => self.record(
                *row,
                RowOutcome::Refused {
                    message: *message,
                    rule: *rule,
                },
            ),
        }
        self
    }

    fn record(&mut self, row: u32, outcome: RowOutcome) {
        let index = (row as usize).wrapping_sub(1);
        if let Some(slot) = Arc::make_mut(&mut self.outcomes).get_mut(index) {
            *slot = Some(outcome);
        }
        while self.outcomes.get(self.next).is_some_and(Option::is_some) {
            self.next += 1;
        }
    }

    /// The outcome of each row, in row order (`None`: not processed).
    pub fn outcomes(&self) -> &[Option<RowOutcome>] {
        &self.outcomes
    }

    /// The next row to process (1-based), `None` when every row is processed.
    pub fn next_row(&self) -> Option<u32> {
        (self.next < self.outcomes.len()).then(|| self.next as u32 + 1)
    }

    /// Rows not processed yet.
    pub fn unprocessed(&self) -> u32 {
        self.outcomes.iter().filter(|o| o.is_none()).count() as u32
    }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// A create, as the API or the CLI gave it: the rows as given, validated here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCampaign {
    pub campaign: CampaignId,
    pub sender: WhatsAppAddress,
    pub workflow: Workflow,
    pub template: TemplateId,
    /// The template's placeholders when it is registered (each row must give every one).
    pub placeholders: Option<Vec<String>>,
    pub rows: Vec<RowInput>,
    pub on_limit: OnLimit,
}

/// A row as given: the number as text, the variables as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowInput {
    pub to: String,
    pub variables: Vec<(String, String)>,
}

/// A row that cannot be part of a campaign, by its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u32,
    pub field: String,
    pub reason: String,
}

/// Why a create was refused: nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("a campaign has at least one row")]
    Empty,
    #[error("{given} rows: a campaign holds at most {max} (split the list)")]
    TooManyRows { given: usize, max: usize },
    /// Bad rows refuse the whole campaign: a list with a wrong number or a missing variable is
    /// fixed and uploaded again rather than sent in part (`errors` lists the first
    /// [`ROW_ERRORS_LISTED`], `count` says how many rows are wrong).
    #[error("{count} rows are invalid (first: row {}: {} {})", errors[0].row, errors[0].field, errors[0].reason)]
    InvalidRows { count: usize, errors: Vec<RowError> },
    #[error("campaign {0} already exists")]
    Exists(CampaignId),
}

/// Validates every row (a number, every placeholder's variable, no recipient twice) and records
/// the campaign; bad rows refuse it, listing them by row number.
pub fn create(
    state: &CampaignState,
    command: &CreateCampaign,
    now: Timestamp,
) -> Result<Vec<Event>, CreateError> {
    if state.definition.is_some() {
        return Err(CreateError::Exists(command.campaign));
    }
    if command.rows.is_empty() {
        return Err(CreateError::Empty);
    }
    if command.rows.len() > ROWS_MAX {
        return Err(CreateError::TooManyRows {
            given: command.rows.len(),
            max: ROWS_MAX,
        });
    }
    let mut errors = Vec::new();
    let mut rows = Vec::with_capacity(command.rows.len());
    let mut seen = BTreeSet::new();
    for (index, input) in command.rows.iter().enumerate() {
        let row = index as u32 + 1;
        let mut error = |field: &str, reason: String| {
            errors.push(RowError {
                row,
                field: field.to_owned(),
                reason,
            })
        };
        let mut variables = input.variables.clone();
        variables.sort();
        if let Some(placeholders) = &command.placeholders {
            for placeholder in placeholders {
                let given = variables.iter().find(|(key, _)| key == placeholder);
                if given.is_none_or(|(_, value)| value.trim().is_empty()) {
                    error(
                        &format!("variables.{placeholder}"),
                        "missing (the template needs it)".into(),
                    );
                }
            }
        }
        match PhoneNumber::parse(input.to.trim()) {
            Ok(number) => {
                if !seen.insert(number.clone()) {
                    error("to", format!("{number} is already in an earlier row"));
                }
                rows.push(CampaignRow {
                    to: number,
                    variables,
                });
            }
            Err(reason) => error("to", reason.to_string()),
        }
    }
    if !errors.is_empty() {
        let count = errors.len();
        errors.truncate(ROW_ERRORS_LISTED);
        return Err(CreateError::InvalidRows { count, errors });
    }
    Ok(vec![
        CampaignEvent::Created {
            campaign: command.campaign,
            sender: command.sender.clone(),
            workflow: command.workflow.clone(),
            template: command.template.clone(),
            rows,
            on_limit: command.on_limit,
            at: now,
        }
        .into(),
        CampaignEvent::Listed {
            campaign: command.campaign,
            at: now,
        }
        .into(),
    ])
}

/// What an operator asks of a campaign's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunCommand {
    Start,
    Pause,
    Resume,
    Cancel,
}

/// Starts, pauses, resumes or cancels; nothing is appended when it is already so, and a
/// finished campaign is a conflict.
pub fn run_command(
    state: &CampaignState,
    command: RunCommand,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    let Some(definition) = &state.definition else {
        return Err(CommandError::NotFound {
            what: "campaign".into(),
        });
    };
    let campaign = definition.id;
    let conflict = |verb: &str| {
        Err(CommandError::Conflict {
            reason: format!(
                "campaign {campaign} is {}: it cannot be {verb}",
                state.run.as_str()
            ),
        })
    };
    let event = match (command, state.run) {
        (RunCommand::Start | RunCommand::Resume, RunState::Running)
        | (RunCommand::Pause, RunState::Paused)
        | (RunCommand::Cancel, RunState::Cancelled) => return Ok(Vec::new()),
        (RunCommand::Start, RunState::Draft | RunState::Paused)
        | (RunCommand::Resume, RunState::Paused) => CampaignEvent::Started { campaign, at: now },
        (RunCommand::Resume, RunState::Draft) => return conflict("resumed before it started"),
        (RunCommand::Pause, RunState::Running) => CampaignEvent::Paused { campaign, at: now },
        (RunCommand::Pause, RunState::Draft) => return conflict("paused"),
        (RunCommand::Cancel, RunState::Draft | RunState::Running | RunState::Paused) => {
            CampaignEvent::Cancelled {
                campaign,
                withdrawn: state.unprocessed(),
                at: now,
            }
        }
        (RunCommand::Start | RunCommand::Resume, RunState::Cancelled | RunState::Completed) => {
            return conflict("started")
        }
        (RunCommand::Pause, RunState::Cancelled | RunState::Completed) => {
            return conflict("paused")
        }
        (RunCommand::Cancel, RunState::Completed) => return conflict("cancelled"),
    };
    Ok(vec![event.into()])
}

/// Why a row is not processed now: appended nothing (a withdrawal, not a compliance refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowWithdrawn {
    #[error("campaign {campaign} is {state}: its rows are not processed")]
    NotRunning {
        campaign: CampaignId,
        state: &'static str,
    },
    #[error("row {row} of campaign {campaign} was already processed")]
    AlreadyProcessed { campaign: CampaignId, row: u32 },
    #[error("campaign {campaign} has no row {row}")]
    NoSuchRow { campaign: CampaignId, row: u32 },
    #[error("no campaign")]
    NoCampaign,
}

/// The row's outcome to append with the send's own events: `RowSent` for an allowed send (its
/// intent's message id), `RowRefused` for a refused one; withdrawn unless the campaign is running
/// and the row not processed yet.
pub fn row_outcome(
    state: &CampaignState,
    row: u32,
    message: MessageId,
    refusal: Option<&Refusal>,
    now: Timestamp,
) -> Result<Event, RowWithdrawn> {
    check_row(state, row)?;
    let campaign = state
        .definition
        .as_ref()
        .map(|d| d.id)
        .ok_or(RowWithdrawn::NoCampaign)?;
    Ok(match refusal {
        None => CampaignEvent::RowSent {
            campaign,
            row,
            message,
            at: now,
        },
        Some(refusal) => CampaignEvent::RowRefused {
            campaign,
            row,
            message,
            rule: refusal.rule,
            at: now,
        },
    }
    .into())
}

/// `Ok` when row `row` may be processed now: the campaign runs and the row is not done.
pub fn check_row(state: &CampaignState, row: u32) -> Result<(), RowWithdrawn> {
    let Some(definition) = &state.definition else {
        return Err(RowWithdrawn::NoCampaign);
    };
    let campaign = definition.id;
    if state.run != RunState::Running {
        return Err(RowWithdrawn::NotRunning {
            campaign,
            state: state.run.as_str(),
        });
    }
    match state.outcomes.get((row as usize).wrapping_sub(1)) {
        None => Err(RowWithdrawn::NoSuchRow { campaign, row }),
        Some(Some(_)) => Err(RowWithdrawn::AlreadyProcessed { campaign, row }),
        Some(None) => Ok(()),
    }
}

/// `Completed` once a running campaign has processed every row.
pub fn complete(state: &CampaignState, now: Timestamp) -> Option<Event> {
    let definition = state.definition.as_ref()?;
    (state.run == RunState::Running && state.next_row().is_none()).then(|| {
        CampaignEvent::Completed {
            campaign: definition.id,
            at: now,
        }
        .into()
    })
}

/// The allowed and refused rows so far, and the refusals by rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub allowed: u32,
    pub refused: u32,
    pub refused_by_rule: std::collections::BTreeMap<RuleId, u32>,
    /// Not processed, not withdrawn.
    pub queued: u32,
    pub withdrawn: u32,
}

impl CampaignState {
    pub fn row_counts(&self) -> RowCounts {
        let mut counts = RowCounts::default();
        for outcome in self.outcomes.iter() {
            match outcome {
                Some(RowOutcome::Sent(_)) => counts.allowed += 1,
                Some(RowOutcome::Refused { rule, .. }) => {
                    counts.refused += 1;
                    *counts.refused_by_rule.entry(*rule).or_default() += 1;
                }
                None => {}
            }
        }
        let unprocessed = self.unprocessed();
        if self.run == RunState::Cancelled {
            counts.withdrawn = unprocessed;
        } else {
            counts.queued = unprocessed;
        }
        counts
    }
}
