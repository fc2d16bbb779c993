//! The command API for agents and operators: contacts, messages, templates, senders,
//! portfolios. JSON in, JSON out (shapes in [`wagate_api`]).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use wagate_app::{Hub, SendOptions, SendRequest};
use wagate_domain::decide::{RecordOptIn, RecordOptOut, RegisterSender, RegisterTemplate};
use wagate_domain::{
    ApprovalStatus, ContactId, MediaKind, MessageId, OptInSource, OptOutSource, PortfolioId,
    ProviderKind, ReplyButton, RichReply, SendContent, SenderRate, TemplateCategory, TemplateId,
    TemplateMedia, WhatsAppAddress,
};

use crate::api::{self, Recorded};
use crate::body::{json, json_or_default};
use crate::convert;
use crate::error::{ApiError, IDEMPOTENT_REPLAYED};
use crate::metrics::Source;
use crate::state::{Acting, AppState};

/// Longest accepted `Idempotency-Key`.
const IDEMPOTENCY_KEY_MAX: usize = 255;

pub(crate) fn contact_id(raw: &str) -> Result<ContactId, ApiError> {
    ContactId::parse(raw).map_err(|e| ApiError::invalid("contact", e.to_string()))
}

pub(crate) fn message_id(raw: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(raw).map_err(|e| ApiError::invalid("message_id", e.to_string()))
}

fn sender_address(field: &str, raw: &str) -> Result<WhatsAppAddress, ApiError> {
    WhatsAppAddress::parse(raw).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn template_id(field: &str, raw: &str) -> Result<TemplateId, ApiError> {
    TemplateId::parse(raw).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub(crate) fn recorded(state: &AppState, positions: Vec<u64>) -> Json<Recorded> {
    state.metrics().appended(Source::Command, positions.len());
    Json(Recorded { positions })
}

/// A query flag: absent, `true`/`1` or `false`/`0`.
pub(crate) fn flag(query: &BTreeMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match query.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            name,
            format!("{other:?} is not true or false"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Contacts

/// `GET /v1/contacts/{contact}`
pub async fn contact(
    Acting(hub): Acting,
    Path(raw): Path<String>,
) -> Result<Json<api::ContactResponse>, ApiError> {
    let contact = contact_id(&raw)?;
    let view = hub.contact(&contact)?;
    Ok(Json(convert::contact_view(&view)))
}

/// `POST /v1/contacts/{contact}/opt-in`
pub async fn opt_in(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<Recorded>, ApiError> {
    let contact = contact_id(&raw)?;
    let request: api::OptInRequest = json(&body)?;
    let source = OptInSource::parse(&request.source).ok_or_else(|| {
        ApiError::invalid(
            "source",
            format!(
                "{:?} is not one of web_form, qr_code, click_to_whatsapp_ad, keyword, operator, api",
                request.source
            ),
        )
    })?;
    // Every opt-in cites the wording the person agreed to. Opt-ins recorded before this was
    // required keep the `unversioned` they were given.
    let wording_version = request
        .wording_version
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "wording_version",
                "required: the version of the published consent wording the contact agreed to \
                 (POST /v1/consent/wordings answers it)",
            )
        })?;
    let evidence_at = request
        .evidence_at
        .as_deref()
        .map(|raw| {
            chrono::DateTime::parse_from_rfc3339(raw)
                .map(|at| at.to_utc())
                .map_err(|e| {
                    ApiError::invalid(
                        "evidence_at",
                        format!("{raw:?} is not an RFC 3339 time: {e}"),
                    )
                })
        })
        .transpose()?;
    let positions = hub
        .opt_in(RecordOptIn {
            contact,
            source,
            evidence: request.evidence,
            recorded_by: request.recorded_by,
            wording_version,
            evidence_at,
        })
        .await?;
    Ok(recorded(&state, positions))
}

/// `POST /v1/contacts/{contact}/opt-out`
pub async fn opt_out(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<Recorded>, ApiError> {
    let contact = contact_id(&raw)?;
    let request: api::OptOutRequest = json_or_default(&body)?;
    let source = match request.source.as_deref() {
        None => OptOutSource::Api,
        Some(raw) => OptOutSource::parse(raw).ok_or_else(|| {
            ApiError::invalid(
                "source",
                format!("{raw:?} is not one of api, operator, keyword, provider_report"),
            )
        })?,
    };
    let positions = hub
        .opt_out(RecordOptOut {
            contact,
            source,
            detail: request.detail.unwrap_or_default(),
        })
        .await?;
    Ok(recorded(&state, positions))
}

// ---------------------------------------------------------------------------------------------
// Messages

/// `POST /v1/messages` → 202 `{message_id, status, dry_run}`; 422 when a rule refuses; 409 when
/// the `Idempotency-Key` was used with a different request. The stored answer of an identical
/// earlier request (202 or 422) carries `Idempotent-Replayed: true`.
pub async fn send(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let dry_run = flag(&query, "dry_run")?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "not visible ASCII"))?
                .trim();
            if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX {
                return Err(ApiError::invalid(
                    "Idempotency-Key",
                    format!("must be 1 to {IDEMPOTENCY_KEY_MAX} characters"),
                ));
            }
            Some(key.to_owned())
        }
    };
    let request: api::SendMessageRequest = json(&body)?;
    let content = send_content(
        request.template,
        request.text,
        request.media,
        request.interactive,
    )?;
    created_template_media(&hub, &content)?;
    let sender = request
        .from
        .as_deref()
        .map(|raw| sender_address("from", raw))
        .transpose()?;
    let accepted = hub
        .send(
            SendRequest {
                to: request.to,
                sender,
                workflow: request.workflow,
                content,
            },
            SendOptions {
                idempotency_key,
                dry_run,
            },
        )
        .await?;
    // A dry run and a replay record nothing.
    if !accepted.dry_run && !accepted.replayed {
        state.metrics().appended(Source::Command, 1);
    }
    let body = api::SendMessageResponse {
        message_id: accepted.message_id.to_string(),
        status: accepted.status,
        dry_run: accepted.dry_run,
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if accepted.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /v1/messages/{message_id}`
pub async fn message(
    Acting(hub): Acting,
    Path(raw): Path<String>,
) -> Result<Json<api::MessageResponse>, ApiError> {
    let id = message_id(&raw)?;
    let view = hub.message(id)?;
    Ok(Json(convert::message_view(&view)))
}

/// `GET /v1/messages/{message_id}/explain`: why it was allowed or refused, citing log positions.
pub async fn explain(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<api::ExplainResponse>, ApiError> {
    let id = message_id(&raw)?;
    let explanation = state.hub().explain(id)?;
    Ok(Json(convert::explanation(&explanation)))
}

// ---------------------------------------------------------------------------------------------
// Templates

fn template_view(state: &AppState, id: &TemplateId) -> Result<api::TemplateView, ApiError> {
    let loaded = state.hub().template(id)?;
    Ok(convert::template_view(id.as_str(), &loaded.state))
}

/// `GET /v1/templates`
pub async fn templates(
    State(state): State<AppState>,
    Acting(hub): Acting,
) -> Result<Json<Vec<api::TemplateView>>, ApiError> {
    let views = hub
        .templates()
        .iter()
        .map(|id| template_view(&state, id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(views))
}

/// `POST /v1/templates` → 201 with the template.
pub async fn register_template(
    State(state): State<AppState>,
    Acting(hub): Acting,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: api::RegisterTemplateRequest = json(&body)?;
    let Some(content_sid) = request.content_sid.as_deref() else {
        let template = crate::templates::create(&state, &hub, request).await?;
        return Ok((StatusCode::CREATED, Json(template_view(&state, &template)?)).into_response());
    };
    if request.provider.is_some() || request.body.is_some() {
        return Err(ApiError::invalid(
            "content_sid",
            "give content_sid to register a template that exists at the provider, or provider and body (without content_sid) to create one, not both",
        ));
    }
    let template = template_id("content_sid", content_sid)?;
    let category = TemplateCategory::parse(&request.category).ok_or_else(|| {
        ApiError::invalid(
            "category",
            format!(
                "{:?} is not one of marketing, utility, authentication",
                request.category
            ),
        )
    })?;
    let positions = hub
        .register_template(RegisterTemplate {
            template: template.clone(),
            name: request.name,
            language: request.language,
            category,
            placeholders: request.placeholders,
        })
        .await?;
    state.metrics().appended(Source::Command, positions.len());
    Ok((StatusCode::CREATED, Json(template_view(&state, &template)?)).into_response())
}

/// `POST /v1/templates/sync`: what the poller does, now.
pub async fn sync_templates(
    State(state): State<AppState>,
    Acting(hub): Acting,
) -> Result<Json<api::TemplateSyncResponse>, ApiError> {
    let summary = crate::templates::sync(&hub, state.templates())
        .await
        .map_err(|error| match error {
            crate::templates::SyncError::Provider(error) => ApiError::Provider(error.to_string()),
            crate::templates::SyncError::Hub(error) => error,
        })?;
    state
        .metrics()
        .appended(Source::Command, summary.changed + summary.imported);
    Ok(Json(api::TemplateSyncResponse {
        listed: summary.listed as u64,
        imported: summary.imported as u64,
        changed: summary.changed as u64,
    }))
}

/// `POST /v1/templates/{content_sid}/status`
pub async fn template_status(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<api::TemplateView>, ApiError> {
    let template = template_id("content_sid", &raw)?;
    let request: api::TemplateStatusRequest = json(&body)?;
    let status = ApprovalStatus::parse(&request.status).ok_or_else(|| {
        ApiError::invalid(
            "status",
            format!(
                "{:?} is not one of unsubmitted, pending, approved, rejected, paused, disabled",
                request.status
            ),
        )
    })?;
    let positions = hub
        .set_template_status(&template, status, request.reason.as_deref().unwrap_or(""))
        .await?;
    state.metrics().appended(Source::Command, positions.len());
    Ok(Json(template_view(&state, &template)?))
}

// ---------------------------------------------------------------------------------------------
// Senders and portfolios

fn sender_view(state: &AppState, address: &WhatsAppAddress) -> Result<api::SenderView, ApiError> {
    let loaded = state.hub().sender(address)?;
    Ok(convert::sender_view(address, &loaded.state))
}

/// `GET /v1/senders`
pub async fn senders(
    State(state): State<AppState>,
    Acting(hub): Acting,
) -> Result<Json<Vec<api::SenderView>>, ApiError> {
    let views = hub
        .senders()
        .iter()
        .map(|address| sender_view(&state, address))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(views))
}

/// `POST /v1/senders` → 201 with the sender (not yet authorized).
pub async fn register_sender(
    State(state): State<AppState>,
    Acting(hub): Acting,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: api::RegisterSenderRequest = json(&body)?;
    let address = sender_address("address", &request.address)?;
    let provider = ProviderKind::parse(&request.provider).ok_or_else(|| {
        ApiError::invalid(
            "provider",
            format!("{:?} is not one of twilio, meta, sandbox", request.provider),
        )
    })?;
    let portfolio = PortfolioId::parse(request.portfolio.as_deref().unwrap_or("default"))
        .map_err(|e| ApiError::invalid("portfolio", e.to_string()))?;
    let positions = hub
        .register_sender(RegisterSender {
            sender: address.clone(),
            provider,
            portfolio,
            rate: SenderRate {
                upgraded: request.upgraded.unwrap_or(false),
                per_second: request.rate_per_second,
            },
            meta_phone_number_id: request.meta_phone_number_id,
        })
        .await?;
    state.metrics().appended(Source::Command, positions.len());
    Ok((StatusCode::CREATED, Json(sender_view(&state, &address)?)).into_response())
}

/// `POST /v1/senders/{address}/authorize`
pub async fn authorize_sender(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<api::SenderView>, ApiError> {
    let address = sender_address("address", &raw)?;
    let request: api::AuthorizeSenderRequest = json_or_default(&body)?;
    let positions = hub
        .authorize_sender(&address, request.by.as_deref().unwrap_or("api"))
        .await?;
    state.metrics().appended(Source::Command, positions.len());
    Ok(Json(sender_view(&state, &address)?))
}

/// `POST /v1/senders/{address}/suspend`
pub async fn suspend_sender(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<api::SenderView>, ApiError> {
    let address = sender_address("address", &raw)?;
    let request: api::SuspendSenderRequest = json(&body)?;
    let positions = hub.suspend_sender(&address, &request.reason).await?;
    state.metrics().appended(Source::Command, positions.len());
    Ok(Json(sender_view(&state, &address)?))
}

/// `POST /v1/portfolios/{portfolio}/messaging-limit`
pub async fn messaging_limit(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<Recorded>, ApiError> {
    let portfolio =
        PortfolioId::parse(&raw).map_err(|e| ApiError::invalid("portfolio", e.to_string()))?;
    let request: api::MessagingLimitRequest = json(&body)?;
    let text = match &request.limit {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => String::new(),
    };
    let limit = crate::settings::parse_messaging_limit(&text)
        .ok_or_else(|| ApiError::invalid("limit", "a number of recipients, or \"unlimited\""))?;
    let positions = hub.set_messaging_limit(&portfolio, limit).await?;
    Ok(recorded(&state, positions))
}

/// A send of a template created in wagate carries exactly the media its definition takes, or it
/// is a 400 naming the field, before anything is recorded: the provider would refuse it after
/// the send was allowed. A Cloud API template takes its media header and one header per
/// carousel card as parameters; a Twilio Content template takes none (its definition names
/// them). Templates only registered by `content_sid` have no definition here; the provider
/// checks those.
fn created_template_media(hub: &Hub, content: &SendContent) -> Result<(), ApiError> {
    let SendContent::Template {
        template, media, ..
    } = content
    else {
        return Ok(());
    };
    let loaded = hub.template(template)?;
    let Some(created) = &loaded.state.created else {
        return Ok(());
    };
    if created.provider != wagate_domain::ProviderKind::Meta {
        // A Twilio Content template names its media in its definition; media beside it make
        // its dispatch fail unsent.
        return match media.first() {
            None => Ok(()),
            Some(_) => Err(ApiError::invalid(
                "template.media",
                "a Twilio Content template names its media in its definition: give the URL as the variable it defines there, not as template.media",
            )),
        };
    }
    wagate_domain::template::check_send_media(&created.content, media).map_err(
        |error| match error {
            wagate_domain::CommandError::InvalidField { field, reason } => {
                ApiError::invalid(field, reason)
            }
            other => ApiError::invalid("template.media", other.to_string()),
        },
    )
}

/// Exactly one kind of content: a template, or (inside the window) text, media or buttons.
fn send_content(
    template: Option<api::TemplateContentRequest>,
    text: Option<String>,
    media: Option<api::MediaRequest>,
    interactive: Option<api::InteractiveRequest>,
) -> Result<SendContent, ApiError> {
    let given = [
        template.is_some(),
        text.is_some(),
        media.is_some(),
        interactive.is_some(),
    ]
    .into_iter()
    .filter(|given| *given)
    .count();
    if given > 1 {
        return Err(ApiError::invalid(
            "template",
            "give exactly one of template, text, media and interactive",
        ));
    }
    let command = |error: wagate_domain::CommandError| match error {
        wagate_domain::CommandError::InvalidField { field, reason } => {
            ApiError::invalid(field, reason)
        }
        other => ApiError::invalid("content", other.to_string()),
    };
    if let Some(template) = template {
        let media = template
            .media
            .into_iter()
            .map(|media| {
                let kind = MediaKind::parse(&media.kind).ok_or_else(|| {
                    ApiError::invalid(
                        "template.media.type",
                        format!("{:?}: give image, video or document", media.kind),
                    )
                })?;
                TemplateMedia::new(media.card, kind, &media.url).map_err(command)
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(SendContent::Template {
            template: match (&template.id, &template.content_sid) {
                (Some(id), None) => template_id("template.id", id)?,
                (None, Some(sid)) => template_id("template.content_sid", sid)?,
                _ => {
                    return Err(ApiError::invalid(
                        "template.id",
                        "name the template by its id (as GET /v1/templates lists it) or by content_sid, one of them",
                    ))
                }
            },
            variables: template.variables,
            media: TemplateMedia::normalize(media).map_err(command)?,
        });
    }
    if let Some(text) = text {
        return Ok(SendContent::Freeform { text });
    }
    if let Some(media) = media {
        let kind = MediaKind::parse(&media.kind).ok_or_else(|| {
            ApiError::invalid(
                "media.type",
                format!("{:?}: give image, video or document", media.kind),
            )
        })?;
        return RichReply::media(kind, &media.url, media.caption.unwrap_or_default())
            .map(SendContent::Rich)
            .map_err(command);
    }
    if let Some(interactive) = interactive {
        let buttons = interactive
            .buttons
            .into_iter()
            .map(|button| ReplyButton {
                id: button.id,
                title: button.title,
            })
            .collect();
        return RichReply::buttons(interactive.body, buttons)
            .map(SendContent::Rich)
            .map_err(command);
    }
    Err(ApiError::invalid(
        "template",
        "give a template (business-initiated), or text, media or interactive (a reply inside the 24 h window)",
    ))
}
