//! Consent capture's API: wordings, campaigns with their click-to-chat link and QR codes, and a
//! contact's receipts. The public page people use is [`crate::consent_page`].

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use qrcode::QrCode;
use rand::Rng;
use wagate_app::{ConsentReceiptEntry, Hub};
use wagate_domain::consent::{
    self, Campaign, CampaignMedium, CreateCampaign, PublishWording, Wording,
};
use wagate_domain::{TemplateId, WhatsAppAddress, Workflow};

use crate::api;
use crate::body::json;
use crate::commands::contact_id;
use crate::convert::timestamp;
use crate::error::ApiError;
use crate::metrics::Source;
use crate::state::{Acting, AppState};

/// Letters and digits that cannot be misread on paper (no 0/O, 1/I).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;

/// `POST /v1/consent/wordings`
pub async fn publish_wording(
    State(state): State<AppState>,
    Acting(hub): Acting,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: api::PublishWordingRequest = json(&body)?;
    let (wording, new) = hub
        .publish_wording(PublishWording {
            business: request.business,
            language: request.language,
            text: request.text,
        })
        .await?;
    state.metrics().appended(Source::Command, usize::from(new));
    // Publishing the same text again is the same version: 200, nothing appended.
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(wording_view(&wording))).into_response())
}

/// `GET /v1/consent/wordings/{version}`
pub async fn wording(
    Acting(hub): Acting,
    Path(version): Path<String>,
) -> Result<Json<api::ConsentWordingView>, ApiError> {
    let wording = hub
        .wording(&version)?
        .ok_or_else(|| ApiError::NotFound(format!("consent wording {version:?} not found")))?;
    Ok(Json(wording_view(&wording)))
}

pub(crate) fn wording_view(wording: &Wording) -> api::ConsentWordingView {
    api::ConsentWordingView {
        version: wording.version.clone(),
        business: wording.business.clone(),
        language: wording.language.clone(),
        text: wording.text.clone(),
        text_hash: wording.text_hash.clone(),
        published_at: timestamp(wording.at),
    }
}

/// `POST /v1/consent/campaigns`
pub async fn create_campaign(
    State(state): State<AppState>,
    Acting(hub): Acting,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: api::CreateCampaignRequest = json(&body)?;
    let sender = WhatsAppAddress::parse(&request.sender)
        .map_err(|e| ApiError::invalid("sender", e.to_string()))?;
    let medium = CampaignMedium::parse(&request.medium).ok_or_else(|| {
        ApiError::invalid(
            "medium",
            format!(
                "{:?} is not one of web_form, qr_code, direct_mail",
                request.medium
            ),
        )
    })?;
    let workflows = request
        .workflows
        .iter()
        .map(|w| Workflow::parse(w).map_err(|e| ApiError::invalid("workflows", e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let confirmation_template = request
        .confirmation_template
        .as_deref()
        .map(|t| {
            TemplateId::parse(t)
                .map_err(|e| ApiError::invalid("confirmation_template", e.to_string()))
        })
        .transpose()?;
    let code = new_code();
    let (campaign, wording) = hub
        .create_campaign(CreateCampaign {
            code,
            sender,
            wording_version: request.wording_version,
            workflows,
            medium,
            confirmation_template,
        })
        .await?;
    state.metrics().appended(Source::Command, 1);
    Ok((
        StatusCode::CREATED,
        Json(campaign_view(&state, &campaign, &wording)),
    )
        .into_response())
}

/// `GET /v1/consent/campaigns/{id}`
pub async fn campaign(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::ConsentCampaignView>, ApiError> {
    let (campaign, wording) = find(&hub, &id)?;
    Ok(Json(campaign_view(&state, &campaign, &wording)))
}

/// `POST /v1/consent/campaigns/{id}/close`: the page and the code record nothing from then on.
pub async fn close_campaign(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(id): Path<String>,
) -> Result<Json<api::ConsentCampaignView>, ApiError> {
    let ((campaign, wording), closed_now) = hub.close_campaign(&id).await?;
    state
        .metrics()
        .appended(Source::Command, usize::from(closed_now));
    Ok(Json(campaign_view(&state, &campaign, &wording)))
}

/// `GET /v1/consent/campaigns/{id}/qr.svg`: the click-to-chat link as a QR code.
pub async fn qr_svg(Acting(hub): Acting, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (campaign, wording) = find(&hub, &id)?;
    let code = qr(&wa_me_link(&campaign, &wording))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build();
    Ok(image(svg.into_bytes(), "image/svg+xml"))
}

/// `GET /v1/consent/campaigns/{id}/qr.png`
pub async fn qr_png(Acting(hub): Acting, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (campaign, wording) = find(&hub, &id)?;
    let code = qr(&wa_me_link(&campaign, &wording))?;
    let png = render_png(&code).map_err(|e| ApiError::Internal(format!("PNG encoding: {e}")))?;
    Ok(image(png, "image/png"))
}

/// `GET /v1/contacts/{contact}/consent`: every receipt, as the person may ask for it.
pub async fn receipts(
    Acting(hub): Acting,
    Path(raw): Path<String>,
) -> Result<Json<api::ConsentReceiptsResponse>, ApiError> {
    let contact = contact_id(&raw)?;
    let receipts = hub.consent_receipts(&contact)?;
    Ok(Json(api::ConsentReceiptsResponse {
        contact: contact.to_string(),
        receipts: receipts.iter().map(receipt_view).collect(),
    }))
}

fn receipt_view(entry: &ConsentReceiptEntry) -> api::ConsentReceipt {
    api::ConsentReceipt {
        source: entry.source.clone(),
        state: entry.state.into(),
        campaign: entry.campaign.clone(),
        wording_version: entry.wording_version.clone(),
        wording_text: entry.wording.as_ref().map(|w| w.text.clone()),
        text_hash: entry.wording.as_ref().map(|w| w.text_hash.clone()),
        evidence: entry.evidence.clone(),
        recorded_by: entry.recorded_by.clone(),
        requested_at: entry.requested_at.map(timestamp),
        confirmed_at: entry.confirmed_at.map(timestamp),
        withdrawn_at: entry.withdrawn_at.map(timestamp),
        position: entry.position,
    }
}

fn find(hub: &Hub, id: &str) -> Result<(Campaign, Wording), ApiError> {
    hub.campaign(id)?
        .ok_or_else(|| ApiError::NotFound(format!("consent campaign {id:?} not found")))
}

fn new_code() -> String {
    let mut rng = rand::thread_rng();
    let body: String = (0..CODE_LEN)
        .map(|_| char::from(CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())]))
        .collect();
    format!("{}{body}", consent::CAMPAIGN_CODE_PREFIX)
}

pub(crate) fn campaign_view(
    state: &AppState,
    campaign: &Campaign,
    wording: &Wording,
) -> api::ConsentCampaignView {
    let base = state.keys().public_url.trim_end_matches('/').to_owned();
    let api_base = format!("{base}/v1/consent/campaigns/{}", campaign.code);
    api::ConsentCampaignView {
        id: campaign.code.clone(),
        sender: campaign.sender.to_string(),
        business: wording.business.clone(),
        wording_version: wording.version.clone(),
        text_hash: wording.text_hash.clone(),
        workflows: campaign.workflows.iter().map(ToString::to_string).collect(),
        medium: campaign.medium.as_str().into(),
        prefilled_message: consent::prefilled_message(&wording.business, &campaign.code),
        page_url: format!("{base}/consent/{}", campaign.code),
        wa_me_link: wa_me_link(campaign, wording),
        qr_svg_url: format!("{api_base}/qr.svg"),
        qr_png_url: format!("{api_base}/qr.png"),
        created_at: timestamp(campaign.at),
        closed_at: campaign.closed_at.map(timestamp),
        confirmation_template: campaign
            .confirmation_template
            .as_ref()
            .map(ToString::to_string),
        confirmation_payload: campaign
            .confirmation_template
            .as_ref()
            .map(|_| wagate_domain::consent_confirmation::confirmation_payload(&campaign.code)),
    }
}

/// `https://wa.me/<digits>?text=<prefilled message>`, spaces as `%20` (WhatsApp's own form).
pub(crate) fn wa_me_link(campaign: &Campaign, wording: &Wording) -> String {
    let text = consent::prefilled_message(&wording.business, &campaign.code);
    let encoded: String = form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!(
        "https://wa.me/{}?text={encoded}",
        campaign.sender.number().digits()
    )
}

fn qr(data: &str) -> Result<QrCode, ApiError> {
    QrCode::new(data.as_bytes()).map_err(|e| ApiError::Internal(format!("QR code: {e}")))
}

/// Black modules on white, 8 pixels a module, the 4-module quiet zone scanners need.
fn render_png(code: &QrCode) -> Result<Vec<u8>, png::EncodingError> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..width {
        for x in 0..width {
            if colors[y * width + x] == qrcode::Color::Dark {
                for dy in 0..SCALE {
                    let row = (y + QUIET) * SCALE + dy;
                    let start = row * side + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).unwrap_or(u32::MAX);
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

fn image(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
