//! Campaigns (docs/campaigns.md): `POST /v1/campaigns`, `GET /v1/campaigns`,
//! `GET /v1/campaigns/{id}`, `GET /v1/campaigns/{id}/preview`, and the run commands
//! `POST /v1/campaigns/{id}/start|pause|resume|cancel`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The template a campaign sends: by `content_sid` (Twilio) or `id` (as `GET /v1/templates`
/// lists it), one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignTemplateRef {
    #[serde(default)]
    pub content_sid: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

/// One recipient and the template's variables for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignRowRequest {
    /// E.164.
    pub to: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// `POST /v1/campaigns` (JSON). A CSV body (`Content-Type: text/csv`, header
/// `to,<placeholder>,…`) gives the rows instead, with `sender`, `workflow`, `template_sid` or
/// `template_id`, `on_limit` and `id` as query parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewCampaignRequest {
    /// A UUID v7 naming the campaign; generated when absent. Creating again with the same id
    /// and the same contents answers the campaign (200), with other contents 409.
    #[serde(default)]
    pub id: Option<String>,
    /// `whatsapp:+E164`.
    pub sender: String,
    pub workflow: String,
    pub template: CampaignTemplateRef,
    /// At most 10,000 rows; row numbers are 1-based positions in this list.
    pub rows: Vec<CampaignRowRequest>,
    /// `wait` (default): rows over the messaging limit wait for the rolling 24 h; `refuse`:
    /// they are sent and refused (`tier_limit`).
    #[serde(default)]
    pub on_limit: Option<String>,
}

/// A campaign's progress. `allowed`, `refused`, `withdrawn`, `queued` count rows (from the
/// campaign's own stream); `sent`, `delivered`, `read`, `failed` count the allowed rows'
/// messages by their current status, cumulatively (a read message is also sent and delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignCountsView {
    pub allowed: u32,
    pub refused: u32,
    pub sent: u32,
    pub delivered: u32,
    pub read: u32,
    pub failed: u32,
    /// Rows not processed when the campaign was cancelled.
    pub withdrawn: u32,
    /// Rows not processed yet (0 once cancelled).
    pub queued: u32,
}

/// `GET /v1/campaigns/{id}` (and the answer of create and the run commands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignView {
    pub id: String,
    /// `draft`, `running`, `paused`, `cancelled`, `completed`.
    pub state: String,
    pub sender: String,
    pub workflow: String,
    pub template: String,
    pub on_limit: String,
    /// How many rows it has.
    pub rows: u32,
    pub created_at: String,
    pub counts: CampaignCountsView,
    /// Refused rows by rule id.
    pub refused_by_rule: BTreeMap<String, u32>,
}

/// `GET /v1/campaigns`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignList {
    /// Oldest first.
    pub campaigns: Vec<CampaignView>,
}

/// A row a preview finds refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreviewRefusedRowView {
    pub row: u32,
    pub to: String,
    pub rule: String,
    pub message: String,
}

/// What the allowed rows would cost by the hub's price table (docs/costs.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EstimatedCostView {
    /// ISO 4217; `null` when no allowed row is priced.
    pub currency: Option<String>,
    /// A decimal string with six decimals (`"12.345000"`).
    pub total: String,
    pub priced_rows: u32,
    /// Rows the table has no rate for (or priced in another currency): never guessed.
    pub unpriced_rows: u32,
}

/// `GET /v1/campaigns/{id}/preview`: every row through the gates now; nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignPreviewView {
    pub id: String,
    pub rows: u32,
    /// Rows every gate allows now, within the messaging limit's headroom.
    pub allowed: u32,
    /// Refused rows by rule id.
    pub refused: BTreeMap<String, u32>,
    /// The refused rows (row number, recipient, rule, why).
    pub refused_rows: Vec<PreviewRefusedRowView>,
    /// Unique recipients the portfolio may still reach in the rolling 24 h; `null`: unlimited.
    pub limit_headroom: Option<u32>,
    /// Allowed rows that count against the limit (outside the window, new in the period).
    pub outside_window: u32,
    /// With `on_limit: wait`, rows the limit holds until headroom frees (with `refuse` they are
    /// in `refused` as `tier_limit`).
    pub waiting: u32,
    pub on_limit: String,
    /// Seconds the sender's rate needs for the allowed rows; `null` for an unregistered sender.
    pub estimated_seconds: Option<u64>,
    /// When the earliest reach of the rolling 24 h expires (one recipient of headroom frees).
    pub next_headroom_at: Option<String>,
    pub estimated_cost: EstimatedCostView,
}
