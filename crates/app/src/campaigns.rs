//! Campaigns in the hub: create, run commands, the rows' sends, progress and the preview.
//!
//! Every row is an ordinary send (`Hub::send_as`) with the idempotency key
//! `campaign:<id>:<row>` and the row's outcome appended atomically with it; the decisions are
//! `wagate_domain::campaign`'s. The runner that drives the rows is `campaign_runner.rs`.

use std::collections::BTreeMap;

use tracing::info_span;
use tracing::Instrument;
use wagate_domain::campaign::preview::{self, PreviewState};
use wagate_domain::campaign::{
    self, CampaignDefinition, CreateCampaign, CreateError, OnLimit, RowInput, RowOutcome,
    RunCommand, RunState,
};
use wagate_domain::{
    CampaignId, CampaignState, ContactId, ContactState, MessageState, MessageStatus,
    PortfolioState, SendContent, SenderState, StreamKey, TemplateId, TemplateState, Timestamp,
    WhatsAppAddress, Workflow,
};

use crate::error::{AppError, Result};
use crate::hub::{Hub, Plan, SendOptions, SendRequest};
use crate::pricing::{PriceCategory, PriceQuery};

/// Which row of which campaign a send is, for [`Hub::send_as`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub campaign: CampaignId,
    pub row: u32,
    /// `on_limit: wait`: a row the messaging limit alone refuses is held, not recorded.
    pub hold_on_limit: bool,
}

impl RowRef {
    pub(crate) fn stream_key(&self) -> StreamKey {
        stream_key(self.campaign)
    }
}

fn stream_key(campaign: CampaignId) -> StreamKey {
    StreamKey::Campaign(campaign::stream_name(campaign))
}

/// The most campaigns the index is read for (a list past it is cut, oldest first kept).
pub const CAMPAIGNS_LISTED_MAX: usize = 10_000;

/// A campaign to create, as the API parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCampaign {
    pub id: CampaignId,
    pub sender: WhatsAppAddress,
    pub workflow: String,
    pub template: TemplateId,
    pub rows: Vec<RowInput>,
    pub on_limit: OnLimit,
}

/// A campaign's progress. `allowed`, `refused`, `withdrawn` and `queued` come from the campaign
/// stream; `sent`, `delivered`, `read` and `failed` from the allowed rows' messages' current
/// status, as a cumulative funnel (a read message counts as sent, delivered and read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignCounts {
    pub allowed: u32,
    pub refused: u32,
    pub refused_by_rule: BTreeMap<String, u32>,
    pub sent: u32,
    pub delivered: u32,
    pub read: u32,
    /// Failed, undelivered, or cancelled at the claim (a STOP that landed before it).
    pub failed: u32,
    pub withdrawn: u32,
    pub queued: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignView {
    pub id: CampaignId,
    pub state: RunState,
    pub sender: WhatsAppAddress,
    pub workflow: Workflow,
    pub template: TemplateId,
    pub on_limit: OnLimit,
    pub rows: u32,
    pub created_at: Timestamp,
    pub counts: CampaignCounts,
}

/// A refused row of a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRefusedRow {
    pub row: u32,
    pub to: String,
    pub rule: String,
    pub message: String,
}

/// The estimated cost of the allowed rows, by the hub's price table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimatedCost {
    /// `None` when no allowed row is priced.
    pub currency: Option<String>,
    /// Micro-units of `currency`.
    pub total_micros: i64,
    pub priced_rows: u32,
    /// Rows the table has no rate for (or in another currency than the first priced one).
    pub unpriced_rows: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignPreview {
    pub campaign: CampaignId,
    pub rows: u32,
    pub allowed: u32,
    pub refused: BTreeMap<String, u32>,
    pub refused_rows: Vec<PreviewRefusedRow>,
    pub limit_headroom: Option<u32>,
    pub outside_window: u32,
    pub waiting: u32,
    pub on_limit: OnLimit,
    pub estimated_seconds: Option<u64>,
    pub next_headroom_at: Option<Timestamp>,
    pub estimated_cost: EstimatedCost,
}

/// What processing the next row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStep {
    Sent,
    Refused,
    /// Held by the messaging limit until about then (`None`: unknown, look again later).
    Held(Option<Timestamp>),
    /// The campaign is not running (paused, cancelled, completed) or the row was processed
    /// meanwhile: nothing was appended.
    Withdrawn,
    /// No row left: the campaign was completed (now, or already).
    Finished,
}

impl Hub {
    /// Records a campaign (nothing is sent); `false` when the same campaign was already created
    /// with this id (a retried create), a conflict when another was.
    pub async fn campaign_create(&self, new: NewCampaign) -> Result<(CampaignView, bool)> {
        let workflow =
            Workflow::parse(&new.workflow).map_err(|e| AppError::from_id("workflow", e))?;
        let template = self.template(&new.template)?;
        let command = CreateCampaign {
            campaign: new.id,
            sender: new.sender.clone(),
            workflow,
            template: new.template.clone(),
            placeholders: template
                .state
                .definition
                .as_ref()
                .map(|definition| definition.placeholders.clone()),
            rows: new.rows.clone(),
            on_limit: new.on_limit,
        };
        let key = stream_key(new.id);
        let span = info_span!("campaign_create", rows = new.rows.len());
        self.retrying(|| async {
            let loaded = self.load::<CampaignState>(&key)?;
            let now = self.now();
            let events = match campaign::create(&loaded.state, &command, now) {
                Ok(events) => events,
                Err(CreateError::Exists(_)) => {
                    let same = loaded.state.definition.as_deref().is_some_and(|existing| {
                        let fresh = campaign::create(&CampaignState::default(), &command, now);
                        matches!(fresh.as_deref(), Ok([wagate_domain::Event::Campaign(
                            campaign::CampaignEvent::Created { rows, sender, workflow, template, on_limit, .. }), ..])
                            if *rows == existing.rows && *sender == existing.sender
                                && *workflow == existing.workflow && *template == existing.template
                                && *on_limit == existing.on_limit)
                    });
                    return match same {
                        true => Ok((self.view(&loaded.state)?, false)),
                        false => Err(AppError::Conflict {
                            reason: format!(
                                "campaign {} already exists with other contents",
                                new.id
                            ),
                        }),
                    };
                }
                Err(error) => return Err(create_error(error)),
            };
            let mut plan = Plan::default();
            plan.read(key.clone(), loaded.version);
            plan.write(events);
            self.commit(plan).await?;
            let state = self.load::<CampaignState>(&key)?.state;
            Ok((self.view(&state)?, true))
        })
        .instrument(span)
        .await
    }

    /// Starts, pauses, resumes or cancels a campaign (nothing appended when it already is so).
    pub async fn campaign_command(
        &self,
        id: CampaignId,
        command: RunCommand,
    ) -> Result<CampaignView> {
        let key = stream_key(id);
        self.retrying(|| async {
            let loaded = self.load::<CampaignState>(&key)?;
            if loaded.state.definition.is_none() {
                return Err(not_found(id));
            }
            let events = campaign::run_command(&loaded.state, command, self.now())?;
            if !events.is_empty() {
                let mut plan = Plan::default();
                plan.read(key.clone(), loaded.version);
                plan.write(events);
                self.commit(plan).await?;
            }
            let state = self.load::<CampaignState>(&key)?.state;
            self.view(&state)
        })
        .await
    }

    /// One campaign's state and counts.
    pub fn campaign_view(&self, id: CampaignId) -> Result<CampaignView> {
        let state = self.load::<CampaignState>(&stream_key(id))?.state;
        if state.definition.is_none() {
            return Err(not_found(id));
        }
        self.view(&state)
    }

    /// Every campaign's id, oldest first (the index stream).
    pub fn campaign_ids(&self) -> Result<Vec<CampaignId>> {
        let stream =
            crate::codec::stream_id(&StreamKey::Campaign(campaign::INDEX_STREAM.to_owned()))?;
        let records = self
            .inner
            .log
            .read_stream(&stream, 0, CAMPAIGNS_LISTED_MAX)?;
        records
            .iter()
            .map(|record| match crate::codec::decode(record)? {
                wagate_domain::Event::Campaign(event) => Ok(event.campaign()),
                _ => Err(AppError::Corrupt {
                    position: record.position,
                    reason: "a non-campaign event in the campaign index".into(),
                }),
            })
            .collect()
    }

    /// Every campaign, oldest first.
    pub fn campaign_list(&self) -> Result<Vec<CampaignView>> {
        self.campaign_ids()?
            .into_iter()
            .map(|id| self.campaign_view(id))
            .collect()
    }

    /// Who started (or last resumed) the campaign: its rows are recorded as asked by them.
    pub(crate) fn campaign_starter(&self, id: CampaignId) -> Result<Option<wagate_domain::Actor>> {
        let stream = crate::codec::stream_id(&stream_key(id))?;
        let mut starter = None;
        let mut from = 0;
        loop {
            let records = self.inner.log.read_stream(&stream, from, 4096)?;
            let Some(last) = records.last() else {
                return Ok(starter);
            };
            from = last.version + 1;
            for record in &records {
                if record.event_type == "CampaignStarted" {
                    starter = crate::codec::actor(record);
                }
            }
        }
    }

    /// The running campaigns' ids and their states (the runner's work list).
    pub(crate) fn running_campaigns(&self) -> Result<Vec<CampaignState>> {
        let mut running = Vec::new();
        for id in self.campaign_ids()? {
            let state = self.load::<CampaignState>(&stream_key(id))?.state;
            if state.run == RunState::Running {
                running.push(state);
            }
        }
        Ok(running)
    }

    /// The dry run: every row through the gates against the current states, nothing recorded.
    pub fn campaign_preview(&self, id: CampaignId) -> Result<CampaignPreview> {
        let state = self.load::<CampaignState>(&stream_key(id))?.state;
        let definition = state.definition.clone().ok_or_else(|| not_found(id))?;
        let sender = self
            .load::<SenderState>(&StreamKey::Sender(definition.sender.clone()))?
            .state;
        let template = self
            .load::<TemplateState>(&StreamKey::Template(definition.template.clone()))?
            .state;
        let portfolio = match sender.registration.as_ref() {
            Some(registration) => {
                self.load::<PortfolioState>(&StreamKey::Portfolio(registration.portfolio.clone()))?
                    .state
            }
            None => PortfolioState::default(),
        };
        let contacts = definition
            .rows
            .iter()
            .map(|row| {
                let id = ContactId::Phone(row.to.clone());
                let contact = self.load::<ContactState>(&StreamKey::Contact(id.clone()))?;
                let linked: Vec<ContactState> = self
                    .load_linked(&id, &contact.state)?
                    .into_iter()
                    .map(|(_, loaded)| loaded.state)
                    .collect();
                Ok(contact.state.with_linked(&linked))
            })
            .collect::<Result<Vec<_>>>()?;
        let now = self.now();
        let result = preview::preview(
            &definition,
            &PreviewState {
                sender: &sender,
                template: &template,
                portfolio: &portfolio,
                contacts: &contacts,
            },
            self.policy(),
            now,
        );
        let estimated_cost = self.estimate_cost(&result.allowed, now);
        Ok(CampaignPreview {
            campaign: id,
            rows: definition.rows.len() as u32,
            allowed: result.allowed.len() as u32,
            refused: result
                .refused
                .iter()
                .map(|(rule, n)| (rule.as_str().to_owned(), *n))
                .collect(),
            refused_rows: result
                .refused_rows
                .into_iter()
                .map(|row| PreviewRefusedRow {
                    row: row.row,
                    to: row.to.to_string(),
                    rule: row.rule.as_str().to_owned(),
                    message: row.message,
                })
                .collect(),
            limit_headroom: result.limit_headroom,
            outside_window: result.outside_window,
            waiting: result.waiting,
            on_limit: definition.on_limit,
            estimated_seconds: result.estimated_seconds,
            next_headroom_at: result.next_headroom_at,
            estimated_cost,
        })
    }

    /// Quotes each allowed row by the price table (`pricing.rs`): by its template's category,
    /// its recipient, now, and whether its window is open. Rows in another currency than the
    /// first priced one are counted unpriced rather than summed across currencies.
    fn estimate_cost(&self, allowed: &[preview::AllowedRow], now: Timestamp) -> EstimatedCost {
        let mut cost = EstimatedCost {
            currency: None,
            total_micros: 0,
            priced_rows: 0,
            unpriced_rows: 0,
        };
        for row in allowed {
            let quote = row.category.and_then(|category| {
                self.price_table().quote(&PriceQuery {
                    category: PriceCategory::of_template(category),
                    to: &row.to,
                    at: now,
                    window_open: row.window_open,
                })
            });
            match quote {
                Some(quote) if cost.currency.as_ref().is_none_or(|c| *c == quote.currency) => {
                    cost.total_micros = cost.total_micros.saturating_add(quote.total_micros());
                    cost.currency.get_or_insert(quote.currency);
                    cost.priced_rows += 1;
                }
                _ => cost.unpriced_rows += 1,
            }
        }
        cost
    }

    /// Processes the campaign's next row: a send through every gate with the row's key, its
    /// outcome appended with it; `Completed` once no row is left.
    pub async fn process_campaign_row(&self, id: CampaignId) -> Result<RowStep> {
        let key = stream_key(id);
        let loaded = self.load::<CampaignState>(&key)?;
        let Some(definition) = loaded.state.definition.clone() else {
            return Err(not_found(id));
        };
        if loaded.state.run != RunState::Running {
            return Ok(RowStep::Withdrawn);
        }
        let Some(row) = loaded.state.next_row() else {
            return self.complete_campaign(id).await;
        };
        let row_ref = RowRef {
            campaign: id,
            row,
            hold_on_limit: definition.on_limit == OnLimit::Wait,
        };
        match self
            .send_as(
                row_request(&definition, row),
                row_options(id, row),
                Some(row_ref),
            )
            .await
        {
            Ok(_) => Ok(RowStep::Sent),
            Err(AppError::Refused(_)) => Ok(RowStep::Refused),
            // The row's key was already used: its outcome is in the campaign stream (the same
            // append), so the next look sees it processed.
            Err(AppError::ReplayedRefusal(_)) => Ok(RowStep::Refused),
            Err(AppError::CampaignRowHeld { until }) => Ok(RowStep::Held(until)),
            Err(AppError::CampaignRowWithdrawn { .. }) => Ok(RowStep::Withdrawn),
            Err(other) => Err(other),
        }
    }

    async fn complete_campaign(&self, id: CampaignId) -> Result<RowStep> {
        let key = stream_key(id);
        self.retrying(|| async {
            let loaded = self.load::<CampaignState>(&key)?;
            if let Some(event) = campaign::complete(&loaded.state, self.now()) {
                let mut plan = Plan::default();
                plan.read(key.clone(), loaded.version);
                plan.write(vec![event]);
                self.commit(plan).await?;
            }
            Ok(RowStep::Finished)
        })
        .await
    }

    fn view(&self, state: &CampaignState) -> Result<CampaignView> {
        let definition = state
            .definition
            .as_deref()
            .ok_or_else(|| AppError::NotFound {
                what: "campaign".into(),
            })?;
        let rows = state.row_counts();
        let mut counts = CampaignCounts {
            allowed: rows.allowed,
            refused: rows.refused,
            refused_by_rule: rows
                .refused_by_rule
                .iter()
                .map(|(rule, n)| (rule.as_str().to_owned(), *n))
                .collect(),
            withdrawn: rows.withdrawn,
            queued: rows.queued,
            ..CampaignCounts::default()
        };
        for outcome in state.outcomes().iter().flatten() {
            let RowOutcome::Sent(message) = outcome else {
                continue;
            };
            // A view of a large campaign reads every sent row's message: it must not wash the
            // aggregates being decided on out of the cache.
            let status = self
                .load_without_caching::<MessageState>(&StreamKey::Message(*message))?
                .state
                .status;
            match status {
                MessageStatus::Read => {
                    counts.sent += 1;
                    counts.delivered += 1;
                    counts.read += 1;
                }
                MessageStatus::Delivered => {
                    counts.sent += 1;
                    counts.delivered += 1;
                }
                MessageStatus::Sent => counts.sent += 1,
                MessageStatus::Failed | MessageStatus::Undelivered | MessageStatus::Canceled => {
                    counts.failed += 1
                }
                _ => {}
            }
        }
        Ok(CampaignView {
            id: definition.id,
            state: state.run,
            sender: definition.sender.clone(),
            workflow: definition.workflow.clone(),
            template: definition.template.clone(),
            on_limit: definition.on_limit,
            rows: definition.rows.len() as u32,
            created_at: definition.created_at,
            counts,
        })
    }
}

/// The send a row is: the campaign's template with the row's variables.
fn row_request(definition: &CampaignDefinition, row: u32) -> SendRequest {
    let input = &definition.rows[row as usize - 1];
    SendRequest {
        to: input.to.to_string(),
        sender: Some(definition.sender.clone()),
        workflow: Some(definition.workflow.to_string()),
        content: SendContent::Template {
            template: definition.template.clone(),
            variables: input.variables.iter().cloned().collect(),
            media: Vec::new(),
        },
    }
}

/// The row's idempotency key: a retried or resumed row is answered, never sent again.
fn row_options(id: CampaignId, row: u32) -> SendOptions {
    SendOptions {
        idempotency_key: Some(format!("campaign:{id}:{row}")),
        dry_run: false,
    }
}

fn not_found(id: CampaignId) -> AppError {
    AppError::NotFound {
        what: format!("campaign {id}"),
    }
}

fn create_error(error: CreateError) -> AppError {
    match error {
        CreateError::InvalidRows { count, errors } => {
            let first = &errors[0];
            let listed = errors
                .iter()
                .map(|e| format!("row {}: {} {}", e.row, e.field, e.reason))
                .collect::<Vec<_>>()
                .join("; ");
            AppError::Invalid {
                field: format!("rows[{}].{}", first.row, first.field),
                reason: format!("{count} rows are invalid: {listed}"),
            }
        }
        CreateError::TooManyRows { .. } | CreateError::Empty => AppError::Invalid {
            field: "rows".into(),
            reason: error.to_string(),
        },
        CreateError::Exists(id) => AppError::Conflict {
            reason: format!("campaign {id} already exists"),
        },
    }
}
