//! Campaign routes (docs/campaigns.md): create (JSON or CSV), list, show, preview, and the run
//! commands. The campaigns are the hub's (`Hub::campaign_*`); the binary runs them.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use wagate_app::{CampaignPreview, CampaignView, NewCampaign};
use wagate_domain::campaign::{OnLimit, RowInput, RunCommand};
use wagate_domain::{CampaignId, TemplateId, WhatsAppAddress};

use crate::api;
use crate::body::json;
use crate::convert::timestamp;
use crate::error::ApiError;
use crate::metrics::Source;
use crate::state::{Acting, AppState};

fn campaign_id(raw: &str) -> Result<CampaignId, ApiError> {
    CampaignId::parse(raw).map_err(|error| ApiError::invalid("id", error.to_string()))
}

fn new_id() -> Result<CampaignId, ApiError> {
    CampaignId::from_uuid(uuid::Uuid::now_v7())
        .map_err(|error| ApiError::Internal(error.to_string()))
}

/// The template as `content_sid` or `id`, one of them.
fn template(sid: Option<&str>, id: Option<&str>) -> Result<TemplateId, ApiError> {
    let (field, raw) = match (sid, id) {
        (Some(sid), None) => ("template.content_sid", sid),
        (None, Some(id)) => ("template.id", id),
        _ => {
            return Err(ApiError::invalid(
                "template",
                "name the template by content_sid or by id, one of them",
            ))
        }
    };
    TemplateId::parse(raw).map_err(|error| ApiError::invalid(field, error.to_string()))
}

fn on_limit(raw: Option<&str>) -> Result<OnLimit, ApiError> {
    match raw {
        None => Ok(OnLimit::Wait),
        Some(raw) => OnLimit::parse(raw)
            .ok_or_else(|| ApiError::invalid("on_limit", format!("{raw:?}: give wait or refuse"))),
    }
}

/// The rows of a CSV body: header `to,<placeholder>,…`, one recipient per record.
fn csv_rows(body: &[u8]) -> Result<Vec<RowInput>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|error| ApiError::invalid("body", format!("CSV header: {error}")))?
        .clone();
    let Some(to_column) = headers.iter().position(|name| name == "to") else {
        return Err(ApiError::invalid(
            "body",
            "the CSV header names no \"to\" column (header: to,<placeholder>,…)",
        ));
    };
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|error| {
            ApiError::invalid(format!("rows[{}]", index + 1), format!("CSV: {error}"))
        })?;
        if rows.len() == wagate_domain::campaign::ROWS_MAX {
            return Err(ApiError::invalid(
                "rows",
                format!(
                    "more than {} rows: a campaign holds at most {} (split the list)",
                    wagate_domain::campaign::ROWS_MAX,
                    wagate_domain::campaign::ROWS_MAX
                ),
            ));
        }
        let mut to = String::new();
        let mut variables = Vec::new();
        for (column, (name, value)) in headers.iter().zip(record.iter()).enumerate() {
            if column == to_column {
                to = value.to_owned();
            } else {
                variables.push((name.to_owned(), value.to_owned()));
            }
        }
        rows.push(RowInput { to, variables });
    }
    Ok(rows)
}

fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/csv"))
}

/// `POST /v1/campaigns` (JSON, or CSV with the rest as query parameters) → 201, nothing sent.
pub(crate) async fn create(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (id, sender, workflow, template, rows, on_limit) = if is_csv(&headers) {
        let required = |name: &str| {
            query.get(name).cloned().ok_or_else(|| {
                ApiError::invalid(
                    name,
                    "missing (with a CSV body, give it as a query parameter)",
                )
            })
        };
        (
            query.get("id").cloned(),
            required("sender")?,
            required("workflow")?,
            template(
                query.get("template_sid").map(String::as_str),
                query.get("template_id").map(String::as_str),
            )?,
            csv_rows(&body)?,
            on_limit(query.get("on_limit").map(String::as_str))?,
        )
    } else {
        let request: api::NewCampaignRequest = json(&body)?;
        (
            request.id,
            request.sender,
            request.workflow,
            template(
                request.template.content_sid.as_deref(),
                request.template.id.as_deref(),
            )?,
            request
                .rows
                .into_iter()
                .map(|row| RowInput {
                    to: row.to,
                    variables: row.variables.into_iter().collect(),
                })
                .collect(),
            on_limit(request.on_limit.as_deref())?,
        )
    };
    let id = match id {
        Some(raw) => campaign_id(&raw)?,
        None => new_id()?,
    };
    let sender = WhatsAppAddress::parse(&sender)
        .map_err(|error| ApiError::invalid("sender", error.to_string()))?;
    let (campaign, created) = hub
        .campaign_create(NewCampaign {
            id,
            sender,
            workflow,
            template,
            rows,
            on_limit,
        })
        .await?;
    if created {
        state.metrics().appended(Source::Command, 2);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&campaign))).into_response())
}

/// `GET /v1/campaigns`
pub(crate) async fn list(Acting(hub): Acting) -> Result<Json<api::CampaignList>, ApiError> {
    Ok(Json(api::CampaignList {
        campaigns: hub.campaign_list()?.iter().map(view).collect(),
    }))
}

/// `GET /v1/campaigns/{id}`
pub(crate) async fn show(
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::CampaignView>, ApiError> {
    Ok(Json(view(&hub.campaign_view(campaign_id(&id)?)?)))
}

/// `GET /v1/campaigns/{id}/preview`: nothing is recorded.
pub(crate) async fn preview(
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::CampaignPreviewView>, ApiError> {
    Ok(Json(preview_view(
        &hub.campaign_preview(campaign_id(&id)?)?,
    )))
}

async fn command(
    hub: &wagate_app::Hub,
    id: &str,
    command: RunCommand,
) -> Result<Json<api::CampaignView>, ApiError> {
    Ok(Json(view(
        &hub.campaign_command(campaign_id(id)?, command).await?,
    )))
}

/// `POST /v1/campaigns/{id}/start`
pub(crate) async fn start(
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::CampaignView>, ApiError> {
    command(&hub, &id, RunCommand::Start).await
}

/// `POST /v1/campaigns/{id}/pause`
pub(crate) async fn pause(
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::CampaignView>, ApiError> {
    command(&hub, &id, RunCommand::Pause).await
}

/// `POST /v1/campaigns/{id}/resume`
pub(crate) async fn resume(
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::CampaignView>, ApiError> {
    command(&hub, &id, RunCommand::Resume).await
}

/// `POST /v1/campaigns/{id}/cancel`: the unprocessed rows are withdrawn.
pub(crate) async fn cancel(
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::CampaignView>, ApiError> {
    command(&hub, &id, RunCommand::Cancel).await
}

pub fn view(campaign: &CampaignView) -> api::CampaignView {
    let counts = &campaign.counts;
    api::CampaignView {
        id: campaign.id.to_string(),
        state: campaign.state.as_str().to_owned(),
        sender: campaign.sender.to_string(),
        workflow: campaign.workflow.to_string(),
        template: campaign.template.to_string(),
        on_limit: campaign.on_limit.as_str().to_owned(),
        rows: campaign.rows,
        created_at: timestamp(campaign.created_at),
        counts: api::CampaignCountsView {
            allowed: counts.allowed,
            refused: counts.refused,
            sent: counts.sent,
            delivered: counts.delivered,
            read: counts.read,
            failed: counts.failed,
            withdrawn: counts.withdrawn,
            queued: counts.queued,
        },
        refused_by_rule: counts.refused_by_rule.clone(),
    }
}

fn preview_view(preview: &CampaignPreview) -> api::CampaignPreviewView {
    api::CampaignPreviewView {
        id: preview.campaign.to_string(),
        rows: preview.rows,
        allowed: preview.allowed,
        refused: preview.refused.clone(),
        refused_rows: preview
            .refused_rows
            .iter()
            .map(|row| api::PreviewRefusedRowView {
                row: row.row,
                to: row.to.clone(),
                rule: row.rule.clone(),
                message: row.message.clone(),
            })
            .collect(),
        limit_headroom: preview.limit_headroom,
        outside_window: preview.outside_window,
        waiting: preview.waiting,
        on_limit: preview.on_limit.as_str().to_owned(),
        estimated_seconds: preview.estimated_seconds,
        next_headroom_at: preview.next_headroom_at.map(timestamp),
        estimated_cost: api::EstimatedCostView {
            currency: preview.estimated_cost.currency.clone(),
            total: wagate_app::format_micros(preview.estimated_cost.total_micros),
            priced_rows: preview.estimated_cost.priced_rows,
            unpriced_rows: preview.estimated_cost.unpriced_rows,
        },
    }
}
